"""Test side of the node acceptance tests (no mocks).

The node runs in its own process; this side publishes frames and collects outputs and diagnostics
through real DDS.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "config" / "fastdds_large_data.xml"
NODE_MAIN = "import sys; from aria_perception.ros.node import main; sys.exit(main(sys.argv))"
CONTAINER_MAIN = (
    "import sys; from aria_perception.ros.container import main; sys.exit(main(sys.argv))"
)

#: Parameters every test node uses: CPU, random weights, small networks, every box reported.
FAST_CPU = {
    "device": "cpu",
    "allow_random_weights": True,
    "detector.confidence": 0.0,  # random YOLO weights score ~1e-4: keep every box
    "depth.input_size": 128,
    "detector.image_size": 160,
    "detector.max_detections": 20,
    "worker.frame_timeout_s": 30.0,  # 2 busy cores: a slow frame is not a hang
    "diagnostics.period_s": 0.5,
    "diagnostics.expected_fps": 0.0,
    "diagnostics.latency_budget_ms": 0.0,
    # No tracker: the node process then loads no torch (tests check it) and starts faster;
    # test_node_tracking.py runs the tracker.
    "tracker.type": "none",
}


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def node_env(domain_id: int) -> dict[str, str]:
    """Environment of a node process and of this side: one domain, the large-data profile."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        # The shipped profile: FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA delivered nothing with
        # localhost-only discovery in our measurements (Fast DDS 3.2), the profile does.
        FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONUNBUFFERED="1",
    )
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    return env


def spin_until(executor: Any, predicate: Callable[[], Any], timeout: float = 30.0) -> bool:
    """Spin ``executor`` until ``predicate`` holds or ``timeout``; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return bool(predicate())


def ros_args(params: dict[str, Any], *extra: str) -> list[str]:
    """``--ros-args -p name:=value ...`` for ``params``."""
    args = ["--ros-args"]
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(str(v) for v in value) + "]"
        else:
            text = str(value)
        args += ["-p", f"{name}:={text}"]
    return [*args, *extra]


class NodeProcess:
    """A perception node (or container) in a process of its own, its log in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, main: str = NODE_MAIN):
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", main, *argv],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """Pids of the spawned worker processes (children running spawn_main, not the tracker)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.pid and b"spawn_main" in cmdline:
                pids.append(int(entry))
        return pids

    def maps(self) -> str:
        return Path(f"/proc/{self.pid}/maps").read_text()

    def interrupt(self, timeout: float = 15.0, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (or ``sig``) the node and wait for it to exit; return its exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def running_node(
    name: str,
    params: dict[str, Any],
    env: dict[str, str],
    harness: Harness,
    log: Path,
    timeout: float = 180.0,
) -> Iterator[NodeProcess]:
    """A node ``name`` with ``params`` in its own process, once its worker reports READY.

    Fails with the node's log if it exits or is not ready within ``timeout``; stopped on exit.
    """
    started = time.monotonic()  # statuses of an earlier node of that name do not count
    proc = NodeProcess(ros_args(params, "-r", f"__node:={name}"), env, log)
    try:
        ready = wait_for(
            lambda: (
                proc.proc.poll() is not None
                or (harness.last_status(name, started) or {}).get("worker_state") == "READY"
            ),
            timeout=timeout,
        )
        assert ready and proc.proc.poll() is None, proc.log()
        yield proc
    finally:
        proc.stop()


class Harness:
    """Publishers and subscribers of the test side, spun by a background executor."""

    def __init__(self, context: Any, name: str = "harness") -> None:
        self.context = context
        self.node = rclpy.create_node(name, context=context)
        self._lock = threading.Lock()
        self._received: dict[str, collections.deque[tuple[float, Any]]] = {}
        self._executor = MultiThreadedExecutor(num_threads=2, context=context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self.spin_errors: list[str] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self.subscribe("/diagnostics", DiagnosticArray)

    @classmethod
    def open(cls, env: dict[str, str], domain_id: int) -> Harness:
        """A harness on a context of its own, created under ``env``.

        Fast DDS reads the profile variables of ``env`` when the participant is created.
        """
        from rclpy.context import Context

        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            context = Context()
            rclpy.init(context=context, domain_id=domain_id)
            harness = cls(context)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        harness._owns_context = True
        return harness

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except Exception as err:  # noqa: BLE001
                # Destroying a publisher while this thread waits on it races inside rclpy
                # (InvalidHandle); keep spinning, and keep the error for a failing test's report.
                self.spin_errors.append(repr(err))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        if getattr(self, "_owns_context", False):
            self.context.try_shutdown()

    def subscribe(self, topic: str, msg_type: Any, reliable: bool = True, keep: int = 500) -> None:
        """Collect the last ``keep`` messages on ``topic`` (with their arrival time)."""
        self._received.setdefault(topic, collections.deque(maxlen=keep))
        qos = QoSProfile(
            depth=50,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )

        def store(msg: Any) -> None:
            with self._lock:
                self._received[topic].append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, store, qos)

    def publisher(self, topic: str, msg_type: Any, reliable: bool = True, depth: int = 5) -> Any:
        qos = QoSProfile(
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        return self.node.create_publisher(msg_type, topic, qos)

    @contextlib.contextmanager
    def publishing(self, topic: str, msg_type: Any, reliable: bool = True) -> Iterator[Any]:
        """A publisher that is destroyed when the block ends, also when a test fails in it."""
        pub = self.publisher(topic, msg_type, reliable=reliable)
        try:
            yield pub
        finally:
            self.node.destroy_publisher(pub)

    def messages(self, topic: str, since: float = 0.0) -> list[Any]:
        with self._lock:
            return [m for t, m in self._received.get(topic, []) if t >= since]

    def statuses(self, node_name: str, since: float = 0.0) -> list[Any]:
        """The node's DiagnosticStatus messages (newest last)."""
        name = f"aria_perception: {node_name}"
        return [
            s for arr in self.messages("/diagnostics", since) for s in arr.status if s.name == name
        ]

    def last_status(self, node_name: str, since: float = 0.0) -> dict[str, str] | None:
        """Key values of the newest status, plus ``level`` and ``message``."""
        statuses = self.statuses(node_name, since)
        if not statuses:
            return None
        status = statuses[-1]
        values = {kv.key: kv.value for kv in status.values}
        values["level"] = status.level[0] if isinstance(status.level, bytes) else status.level
        values["message"] = status.message
        values["hardware_id"] = status.hardware_id
        return values


def frame(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    """A deterministic frame with structure (gradients) and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = ((x * 255) // max(width - 1, 1) + (y * 128) // max(height - 1, 1)) % 256
    img = np.stack([base, base[::-1], (base + seed * 37) % 256], axis=-1).astype(np.int32)
    img = img + rng.integers(-20, 20, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return (
        img[..., :channels]
        if channels <= 3
        else np.concatenate([img, np.full((height, width, channels - 3), 255, np.uint8)], axis=-1)
    )
