"""The process under test: starting and stopping it, watching its CPU, memory and GPU memory."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aria_perception.bench.errors import TargetError

# The perception node's entry point run with this interpreter: works in the venv and in a colcon
# install alike (the console script lives in lib/aria_perception there, not on PATH).
NODE_COMMAND = ("-c", "import sys; from aria_perception.ros.node import main; sys.exit(main())")
ECHO_COMMAND = ("-m", "aria_perception.bench.echo")
#: The component container (one perception node per camera stream) run with this interpreter.
CONTAINER_COMMAND = (
    "-c",
    "import sys; from aria_perception.ros.container import main; sys.exit(main())",
)


class TargetProcess:
    """A node started in its own process with ``--ros-args``, output to a log file.

    Args:
        command: Program and arguments before ``--ros-args``.
        ros_args: Arguments after ``--ros-args`` (remaps, ``-p``, ``--params-file``).
        env: Full environment of the child (domain id, Fast DDS transport).
        log_path: File that receives the child's stdout and stderr.
    """

    def __init__(
        self, command: list[str], ros_args: list[str], env: dict[str, str], log_path: Path
    ) -> None:
        self.argv = [*command, "--ros-args", *ros_args]
        self.log_path = Path(log_path)
        self._env = env
        self._proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> int:
        """Start the child (same process group: Ctrl-C in a terminal reaches it as well).

        Returns:
            Its process id.

        Raises:
            TargetError: The log file cannot be created or the program cannot be started.
        """
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
            self._proc = subprocess.Popen(
                self.argv, env=self._env, stdout=self._log, stderr=subprocess.STDOUT
            )
        except OSError as err:
            if self._log is not None:
                self._log.close()
                self._log = None
            raise TargetError(f"cannot start {shlex.join(self.argv[:1])}: {err}") from err
        return self._proc.pid

    @property
    def pid(self) -> int | None:
        """Process id, None before start."""
        return None if self._proc is None else self._proc.pid

    def alive(self) -> bool:
        """Whether the child is running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once it ended (negative: killed by that signal)."""
        return None if self._proc is None else self._proc.poll()

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Ask the child to stop (SIGINT, then SIGTERM, then SIGKILL) and wait for it.

        Returns:
            The exit status, or None if it was never started.
        """
        proc = self._proc
        if proc is None:
            return None
        try:
            for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0)):
                if proc.poll() is not None:
                    break
                proc.send_signal(sig)
                try:
                    proc.wait(wait_s)
                except subprocess.TimeoutExpired:
                    continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the child's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def stop_children(timeout_s: float = 10.0) -> None:
    """Stop whatever children of this process are still running (SIGINT, SIGTERM, SIGKILL).

    For an interrupted bench, after its own clean-up: an interruption that lands while a child
    is being started (inside ``Popen``) leaves a child no :class:`TargetProcess` knows of.
    """
    import psutil

    left = psutil.Process().children()
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for child in left:
            with contextlib.suppress(psutil.Error):
                child.send_signal(sig)
        _gone, left = psutil.wait_procs(left, timeout=wait_s)
        if not left:
            break


@dataclass
class ResourceUsage:
    """CPU, memory and GPU memory of a process and its children (the inference worker).

    CPU is in percent of one core (200 = two cores busy). ``gpu_mem_mb`` is what NVML reports
    for the process tree (context included), None where NVML is not available.
    """

    samples: int = 0
    cpu_percent: list[float] = field(default_factory=list)
    children_cpu_percent: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    children_rss_mb: list[float] = field(default_factory=list)
    gpu_mem_mb: list[float] = field(default_factory=list)


class ResourceMonitor:
    """Samples a process tree with psutil (and NVML if present) in a background thread.

    Args:
        pid: Root process (the node); its descendants are summed as ``children``.
        interval_s: Sampling period.
        children: Also sample the descendants (and their GPU memory).
    """

    def __init__(self, pid: int, interval_s: float = 0.5, children: bool = True) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)
        self._children: dict[int, object] = {}
        self._interval = interval_s
        self._usage = ResourceUsage()
        self._recording = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sample_lock = threading.Lock()
        self._with_children = children
        self._nvml = _Nvml.open() if children else None
        self._root.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._thread.start()

    def record(self, on: bool) -> None:
        """Start or pause keeping samples (warm-up is not recorded).

        Pausing takes one last sample first, so even a window shorter than the sampling period
        gets a figure (CPU over the time since the previous sample).
        """
        if not on and self._recording:
            self._sample()
        self._recording = on

    def usage(self) -> ResourceUsage:
        """A copy of what was recorded so far."""
        with self._lock:
            u = self._usage
            return ResourceUsage(
                u.samples,
                list(u.cpu_percent),
                list(u.children_cpu_percent),
                list(u.rss_mb),
                list(u.children_rss_mb),
                list(u.gpu_mem_mb),
            )

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self._nvml is not None:
            self._nvml.close()

    def _sample(self) -> None:
        with self._sample_lock:  # the sampling thread and record() both call this
            self._sample_locked()

    def _sample_locked(self) -> None:
        psutil = self._psutil
        try:
            cpu = self._root.cpu_percent(None)
            rss = self._root.memory_info().rss / 2**20
            kids = self._root.children(recursive=True) if self._with_children else []
        except psutil.Error:
            return
        kid_cpu = kid_rss = 0.0
        seen = set()
        for kid in kids:
            seen.add(kid.pid)
            proc = self._children.get(kid.pid)
            try:
                if proc is None:
                    # The first cpu_percent of a process is meaningless: prime it now.
                    self._children[kid.pid] = kid
                    kid.cpu_percent(None)
                    kid_rss += kid.memory_info().rss / 2**20
                    continue
                kid_cpu += proc.cpu_percent(None)  # type: ignore[attr-defined]
                kid_rss += proc.memory_info().rss / 2**20  # type: ignore[attr-defined]
            except psutil.Error:
                continue
        for pid in set(self._children) - seen:
            del self._children[pid]
        gpu = None
        if self._nvml is not None:
            gpu = self._nvml.used_mb({self._root.pid, *seen})
        if not self._recording:
            return
        with self._lock:
            u = self._usage
            u.samples += 1
            u.cpu_percent.append(cpu)
            u.children_cpu_percent.append(kid_cpu)
            u.rss_mb.append(rss)
            u.children_rss_mb.append(kid_rss)
            if gpu is not None:
                u.gpu_mem_mb.append(gpu)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()


class _Nvml:
    """Per-process GPU memory through NVML (nvidia-ml-py), when a driver is present."""

    def __init__(self, pynvml) -> None:
        self._nv = pynvml
        self._handles = [
            pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
        ]

    @classmethod
    def open(cls) -> _Nvml | None:
        if os.environ.get("ARIA_BENCH_NO_NVML"):
            return None
        try:
            import pynvml

            pynvml.nvmlInit()
            return cls(pynvml)
        except Exception:  # no library, no driver, no GPU: GPU memory comes from diagnostics
            return None

    def used_mb(self, pids: set[int]) -> float:
        total = 0
        for handle in self._handles:
            try:
                procs = self._nv.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:
                continue
            for p in procs:
                if p.pid in pids and p.usedGpuMemory:
                    total += p.usedGpuMemory
        return total / 2**20

    def close(self) -> None:
        with contextlib.suppress(Exception):  # shutting NVML down is best effort
            self._nv.nvmlShutdown()


def wait_for(predicate, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passed; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
