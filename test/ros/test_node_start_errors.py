"""The console scripts refuse to start with a clear message and a non-zero exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ros_harness import CONTAINER_MAIN, NODE_MAIN, ROOT, node_env, ros_args

pytestmark = pytest.mark.slow


def _run(
    argv: list[str], env: dict[str, str], timeout: float, main: str = NODE_MAIN
) -> tuple[int, str, int]:
    """Run the node (or ``main``); return its exit code, its output and its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", main, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, proc.pid


def test_invalid_parameter_exits_2_naming_it(domain_id: int) -> None:
    code, out, _ = _run(ros_args({"detector.iou": 3.0}), node_env(domain_id), 60)
    assert code == 2, out
    assert "detector.iou" in out and "between 0 and 1" in out


def test_a_container_with_an_invalid_parameter_exits_2_naming_it(domain_id: int) -> None:
    argv = ["cam_a", *ros_args({"detector.iou": 3.0})]
    code, out, _ = _run(argv, node_env(domain_id), 60, main=CONTAINER_MAIN)
    assert code == 2, out
    assert "perception_container: invalid parameter" in out and "detector.iou" in out


def test_missing_weights_exit_1_with_the_workers_reason(domain_id: int, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_yolo.pt"
    params = {
        "device": "cpu",
        "depth.enabled": False,
        "detector.weights": str(missing),
        "allow_random_weights": False,
    }
    code, out, pid = _run(ros_args(params), node_env(domain_id), 180)
    assert code == 1, out[-3000:]
    assert "configure failed" in out and "WeightsError" in out and "no_such_yolo.pt" in out
    assert out.count("joining the inference worker") == 1, "no restart loop"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"aria_{pid}_")]


class _RunsCode:
    """Unpickled in full, would create ``marker`` (``os.system`` is in no allowlist)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_runs_code_is_refused_and_says_why(
    domain_id: int, tmp_path: Path
) -> None:
    import torch

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil_yolo.pt"
    torch.save({"model": _RunsCode(marker), "train_args": {}}, evil)
    params = {
        "device": "cpu",
        "depth.enabled": False,
        "detector.weights": str(evil),
        "allow_random_weights": False,
    }
    code, out, pid = _run(ros_args(params), node_env(domain_id), 180)
    assert code == 1, out[-3000:]
    assert "needs arbitrary code to load" in out and "detector.trust_pickle" in out, out[-3000:]
    assert not marker.exists(), "the checkpoint's code ran"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"aria_{pid}_")]
