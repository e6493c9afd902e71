"""A bench stopped by Ctrl-C or SIGTERM says so, and stops what it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start_bench(out: Path, domain_id: int, *args: str) -> subprocess.Popen:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "aria_perception.bench.cli", "--preset", "smoke", *args]
        + ["--size", "160x120", "--frames", "3000", "--warmup", "3", "--no-progress"]
        + ["--out", str(out), "--domain-id", str(domain_id)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt(bench: subprocess.Popen, sig: signal.Signals, started, timeout_s: float):
    """Send ``sig`` to the bench alone once ``started(descendants)``.

    Returns:
        The bench's children and all its descendants at that moment (all gone by now).
    """
    try:
        parent = psutil.Process(bench.pid)
        _wait_for(lambda: started(parent.children(recursive=True)), timeout_s, "the target")
        children, descendants = parent.children(), parent.children(recursive=True)
        bench.send_signal(sig)  # to the bench alone, as `timeout` or a supervisor sends it
        stdout, stderr = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert bench.returncode == 130, stdout + stderr
    assert "bench: interrupted" in stderr and "Traceback" not in stderr, stderr
    _wait_for(lambda: all(map(_gone, descendants)), 10, "the bench's processes to exit")
    return children, descendants


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_bench_says_so_and_leaves_nothing_running(
    tmp_path: Path, domain_id: int, sig: signal.Signals
) -> None:
    bench = _start_bench(tmp_path / "out", domain_id, "--echo-only")
    # Stopped while its target starts or runs: the echo reference is a child by then.
    _interrupt(bench, sig, lambda descendants: descendants, 60)


@pytest.mark.slow
def test_a_bench_stopped_while_its_node_runs_leaves_no_worker_and_no_segment(
    tmp_path: Path, domain_id: int
) -> None:
    args = ["--no-echo", "-p", "device:=cpu", "-p", "worker.frame_timeout_s:=60.0"]
    bench = _start_bench(tmp_path / "out", domain_id, *args)
    # The node has spawned its worker (and the resource tracker beside it).
    [node], descendants = _interrupt(bench, signal.SIGTERM, lambda d: len(d) >= 3, 180)
    assert len(descendants) >= 3  # the node, its worker and the resource tracker: all gone
    left = [name for name in os.listdir("/dev/shm") if name.startswith(f"aria_{node.pid}_")]
    assert not left, f"shared-memory segments left behind: {left}"
