"""Hostile input and hostile timing at the node, in its own process, through real DDS.

A flood of distinct bad frames, a frame the worker dies on, SIGTERM while the worker is still
starting, and the lifecycle ``shutdown`` transition. The module's node (real engine, CPU,
random weights, larger network inputs so that a frame keeps the worker busy for a while) serves
the first tests; the shutdown test ends it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from ros_harness import FAST_CPU, Harness, NodeProcess, frame, ros_args, wait_for
from ros_harness import running_node as _running_node
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow

NAME = "hostile"
W, H = 640, 480
DETS = f"/{NAME}/detections"
# Larger network inputs: a frame keeps the CPU worker busy long enough to be caught inside it.
PARAMS = {
    **FAST_CPU,
    "depth.input_size": 384,
    "detector.image_size": 1280,
    "diagnostics.period_s": 0.1,
}
#: The node's shortest time between two log lines of one kind of reason.
LOG_PERIOD_S = 5.0
_stamps = iter(range(1, 10**6))


@pytest.fixture(scope="module")
def harness(env: dict[str, str], domain_id: int) -> Iterator[Harness]:
    h = Harness.open(env, domain_id)
    h.subscribe(DETS, Detection2DArray)
    yield h
    h.close()


@pytest.fixture(scope="module")
def node(
    env: dict[str, str], harness: Harness, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("node") / "node.log"
    with _running_node(NAME, PARAMS, env, harness, log) as proc:
        yield proc


def _image(frame_id: str, pixels: Any = None, encoding: str = "rgb8") -> Image:
    msg = image_from_array(frame(H, W, 1) if pixels is None else pixels, "rgb8")
    msg.encoding = encoding
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_900_000_000, next(_stamps)
    msg.header.frame_id = frame_id
    return msg


def _status(harness: Harness, since: float = 0.0) -> dict[str, Any]:
    return harness.last_status(NAME, since) or {}


def _count(harness: Harness, key: str, since: float = 0.0) -> int:
    return int(_status(harness, since).get(key, -1))


def _cpu_s(pid: int) -> float:
    """CPU time of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _leftovers(pid: int, workers: list[int]) -> list[str]:
    alive = [f"worker {p}" for p in workers if Path(f"/proc/{p}").exists()]
    return alive + [n for n in os.listdir("/dev/shm") if n.startswith(f"aria_{pid}_")]


def _change_state(harness: Harness, label: str) -> bool:
    client = harness.node.create_client(ChangeState, f"/{NAME}/change_state")
    try:
        assert client.wait_for_service(timeout_sec=30), "no change_state service"
        future = client.call_async(ChangeState.Request(transition=Transition(label=label)))
        assert wait_for(future.done, 60), f"no answer to {label}"
        return bool(future.result().success)
    finally:
        harness.node.destroy_client(client)


def test_a_flood_of_distinct_bad_frames_logs_a_few_short_lines(harness: Harness, node) -> None:
    """100 frames, each with its own 5,000-character encoding and hex-garbage frame id."""
    rng = random.Random(3)
    with harness.publishing("/image", Image) as pub:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30), "the node never matched"
        start = time.monotonic()
        expected = _count(harness, "rejected_frames")
        for _ in range(100):
            encoding = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz'\" ") for _ in range(5000))
            frame_id = rng.randbytes(64).hex(" ")
            pub.publish(_image(frame_id, frame(8, 8, 0), encoding))
            expected += 1
            # One at a time: the input queue keeps the newest 2 frames only.
            assert wait_for(lambda e=expected: _count(harness, "rejected_frames") >= e, 30)
        elapsed = time.monotonic() - start
    assert _count(harness, "rejected_frames") == expected, "every bad frame counted once"
    lines = [line for line in node.log().splitlines() if "rejected frame 1900000000." in line]
    # One kind of reason: one line per period at most, however varied the frames were.
    assert 1 <= len(lines) <= 1 + elapsed / LOG_PERIOD_S, lines
    assert all(len(line) < 600 for line in lines), max(map(len, lines))
    assert "unsupported encoding" in lines[0] and " chars)" in lines[0]  # cut, and says so


def test_a_frame_the_worker_dies_on_is_counted_poison(harness: Harness, node) -> None:
    """The worker is killed (SIGSEGV) while it runs a frame, as a crashing decoder would.

    Inside a frame the worker burns CPU; idle, it does not. Should the frame have been answered
    before the signal landed, the worker died between frames (not poison): try again.
    """
    assert wait_for(lambda: _status(harness).get("worker_state") == "READY", 120)
    before = _status(harness)
    poison, rejected = int(before["poison_frames"]), int(before["rejected_frames"])
    with harness.publishing("/image", Image) as pub:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30), "the node never matched"
        for attempt in range(5):
            if _killed_inside_a_frame(harness, node, pub, f"poison-{attempt}", poison):
                break
        else:
            pytest.fail("the worker was never caught inside a frame")
    after = _status(harness)
    assert int(after["poison_frames"]) == poison + 1
    assert int(after["rejected_frames"]) == rejected + 1, "a poison frame is a rejected frame"
    log = node.log()
    assert "rejected frame" in log and "was killed by SIGSEGV while running frame" in log
    assert "(poison)" in log


def _killed_inside_a_frame(
    harness: Harness, node: NodeProcess, pub: Any, frame_id: str, poison: int
) -> bool:
    """Publish a frame, SIGSEGV the worker once it is busy with it; whether it was poison."""
    [worker] = node.workers()
    base = _cpu_s(worker)
    msg = _image(frame_id)
    stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
    pub.publish(msg)

    def answered() -> bool:
        return any(
            (m.header.stamp.sec, m.header.stamp.nanosec) == stamp for m in harness.messages(DETS)
        )

    assert wait_for(lambda: answered() or _cpu_s(worker) - base > 0.5, 120)
    if answered():
        return False
    os.kill(worker, signal.SIGSEGV)

    def replaced() -> bool:
        workers = node.workers()  # once: the old worker may vanish between two reads
        return bool(workers) and workers != [worker]

    # The new worker is spawned only after the death was handled (and counted): a status
    # published after it appeared has the counts.
    assert wait_for(replaced, 60)
    respawned = time.monotonic()
    assert wait_for(lambda: _status(harness, respawned).get("worker_state") == "READY", 180)
    return _count(harness, "poison_frames", respawned) > poison


def test_lifecycle_shutdown_ends_the_node_process(harness: Harness, node) -> None:
    pid, workers = node.pid, node.workers()
    assert workers, node.log()[-3000:]
    assert _change_state(harness, "shutdown")
    assert node.proc.wait(timeout=60) == 0, node.log()[-3000:]
    assert not _leftovers(pid, workers)
    assert "the node is finalized" in node.log()


def test_sigterm_while_the_worker_starts_exits_0_and_leaves_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    proc = NodeProcess(ros_args(FAST_CPU, "-r", "__node:=early"), env, tmp_path / "early.log")
    with contextlib.ExitStack() as stack:
        stack.callback(proc.stop)
        assert wait_for(lambda: proc.workers() or proc.proc.poll() is not None, 120)
        assert proc.proc.poll() is None, proc.log()
        workers = proc.workers()
        assert "worker ready" not in proc.log()  # still importing torch
        sent = time.monotonic()
        code = proc.interrupt(timeout=60, sig=signal.SIGTERM)
        took = time.monotonic() - sent
        print(f"SIGTERM during the worker's start-up: exit code {code} after {took:.2f} s")
        assert code == 0, proc.log()[-3000:]
        assert took < 10.0, proc.log()[-3000:]  # loose: a loaded 2-core machine
        assert not _leftovers(proc.pid, workers)
        log = proc.log()
        assert "Failed to complete transition" not in log and "context is invalid" not in log
