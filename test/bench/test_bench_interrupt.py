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


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_bench_says_so_and_leaves_nothing_running(
    tmp_path: Path, domain_id: int, sig: signal.Signals
) -> None:
    out = tmp_path / "out"
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    args = "--preset smoke --echo-only --size 160x120 --frames 3000 --warmup 3 --no-progress"
    bench = subprocess.Popen(
        [sys.executable, "-m", "aria_perception.bench.cli", *args.split()]
        + ["--out", str(out), "--domain-id", str(domain_id)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        parent = psutil.Process(bench.pid)
        # Stopped while its target starts or runs: the echo reference is a child by then.
        _wait_for(lambda: parent.children(recursive=True), 60, "the bench's target process")
        children = parent.children(recursive=True)
        bench.send_signal(sig)  # to the bench alone, as `timeout` or a supervisor sends it
        stdout, stderr = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert bench.returncode == 130, stdout + stderr
    assert "bench: interrupted" in stderr and "Traceback" not in stderr, stderr
    _wait_for(lambda: all(map(_gone, children)), 10, "the bench's children to exit")
