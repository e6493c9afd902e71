"""worker.compile: compiled networks, the fallback when a compile fails, the cache directory."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aria_perception.engine.compile import (
    CACHE_ENV,
    CompiledStep,
    compile_wanted,
    default_cache_dir,
    use_cache_dir,
)
from aria_perception.engine.engine import Engine
from aria_perception.errors import ConfigError
from aria_perception.records import EngineConfig, validate_engine_config


def _network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 2, 1)).eval()


def _failing_backend(graph_module, example_inputs):  # a torch.compile backend
    raise RuntimeError("the backend cannot build this graph")


@pytest.mark.parametrize(
    ("mode", "cuda", "wanted"),
    [("auto", True, True), ("auto", False, False), ("on", False, True), ("off", True, False)],
)
def test_auto_compiles_on_cuda_only(mode: str, cuda: bool, wanted: bool) -> None:
    assert compile_wanted(mode, cuda) is wanted


def test_compiled_network_equals_the_network_and_compiles_each_shape_once() -> None:
    net = _network()
    compiled = CompiledStep(net, "toy", backend="eager")  # dynamo only: fast on any CPU
    with torch.no_grad():
        for shape in [(1, 3, 16, 16), (1, 3, 16, 16), (1, 3, 8, 24)]:
            x = torch.randn(shape)
            torch.testing.assert_close(compiled(x), net(x))
    assert compiled.compiled_keys == {((1, 3, 16, 16),), ((1, 3, 8, 24),)}
    assert compiled.failure is None


def test_a_failed_compile_falls_back_for_good_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = _network()
    compiled = CompiledStep(net, "toy", backend=_failing_backend)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad(), caplog.at_level(logging.WARNING, "aria_perception.engine.compile"):
        first = compiled(x)
        second = compiled(torch.randn(1, 3, 8, 8))
    torch.testing.assert_close(first, net(x).detach())
    assert second.shape == (1, 2, 8, 8)
    assert compiled.failure is not None and "cannot build this graph" in compiled.failure
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "toy" in warnings[0] and "runs uncompiled" in warnings[0]
    assert not compiled.compiled_keys


def test_a_compile_ticks_the_progress_while_it_runs() -> None:
    # The worker takes a frame whose progress stands still for a hung one; a compile of tens
    # of seconds runs no layer, so the step ticks on its own meanwhile.
    ticks: list[int] = []
    two_ticks = threading.Event()

    def tick() -> None:
        ticks.append(1)
        if len(ticks) >= 2:
            two_ticks.set()

    def slow_backend(graph_module, example_inputs):  # compiles until the progress has moved
        assert two_ticks.wait(60), "no progress while compiling"
        return graph_module.forward

    net = _network()
    compiled = CompiledStep(net, "toy", backend=slow_backend)
    compiled.ticker = tick
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), net(x))
        after_compile = len(ticks)
        compiled(x)  # compiled already: runs without a ticker
    assert after_compile >= 2 and compiled.failure is None
    assert len(ticks) == after_compile  # the ticker stopped with the compile


def test_cache_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache_dir() == tmp_path / "xdg" / "aria_perception" / "inductor"
    assert use_cache_dir("") == default_cache_dir() and default_cache_dir().is_dir()
    assert os.environ[CACHE_ENV] == str(default_cache_dir())
    chosen = tmp_path / "kernels"
    assert use_cache_dir(str(chosen)) == chosen and chosen.is_dir()
    assert os.environ[CACHE_ENV] == str(chosen)
    # Not creatable (a file is in the way): inductor keeps what it had, the engine goes on.
    (tmp_path / "file").write_text("")
    use_cache_dir(str(tmp_path / "file" / "sub"))
    assert os.environ[CACHE_ENV] == str(chosen)


def test_compile_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"worker\.compile"):
        validate_engine_config(EngineConfig(compile="sometimes"))


STEPS = [
    "MiDaS small",
    "MiDaS preprocessing",
    "depth upsampling",
    "YOLO",
    "YOLO letterbox",
    "YOLO post-processing",
    "box depth and packing",
]


def test_cpu_default_runs_uncompiled() -> None:
    with Engine(EngineConfig(device="cpu", allow_random_weights=True)) as engine:
        assert engine.compiled == ()


def test_every_step_runs_through_torch_compile_and_gives_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The "eager" backend traces each step with dynamo and runs the traced graph with the same
    # kernels: the engine's wiring of worker.compile, at CPU speed (inductor: the GPU test).
    monkeypatch.setattr("aria_perception.engine.compile.BACKEND", "eager")
    frame = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    config = EngineConfig(
        device="cpu", allow_random_weights=True, confidence=1e-4, depth_input_size=64,
        detector_image_size=96, max_detections=20,
    )  # fmt: skip
    torch.manual_seed(0)
    with Engine(config) as plain, Engine(config.replace(compile="on")) as compiled:
        compiled.midas.load_state_dict(plain.midas.state_dict())
        compiled.detector.model.load_state_dict(plain.detector.model.state_dict())
        ref = plain.process(frame)
        for _ in range(2):
            got = compiled.process(frame)
        assert [s.name for s in compiled.compiled] == STEPS
        assert [s.failure for s in compiled.compiled] == [None] * len(STEPS)
        # The fixed-shape post-processing runs on CUDA only (the CPU takes the exact NMS path).
        used = {s.name: len(s.compiled_keys) for s in compiled.compiled}
        assert used == {**dict.fromkeys(STEPS[:5], 1), **dict.fromkeys(STEPS[5:], 0)}, used
    np.testing.assert_allclose(got.depth, ref.depth, rtol=1e-5, atol=1e-6)
    assert len(ref.detections.boxes) > 0
    np.testing.assert_allclose(got.detections.boxes, ref.detections.boxes, rtol=1e-5)


# ----------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_gpu_compiled_engine_agrees_with_the_uncompiled_one(tmp_path: Path) -> None:
    frame = np.random.default_rng(5).integers(0, 256, (1408, 1408, 3), dtype=np.uint8)
    base = EngineConfig(device="cuda:0", allow_random_weights=True, confidence=1e-4)
    torch.manual_seed(0)
    plain = Engine(base.replace(compile="off"))
    compiled = Engine(base.replace(compile="on", compile_cache_dir=str(tmp_path / "cache")))
    compiled.midas.load_state_dict(plain.midas.state_dict())
    compiled.detector.model.load_state_dict(plain.detector.model.state_dict())
    ref = plain.process(frame)
    for _ in range(4):  # compile, capture, replay
        got = compiled.process(frame)
    rel = np.linalg.norm(got.depth - ref.depth) / np.linalg.norm(ref.depth)
    assert rel < 0.02, rel
    assert len(got.detections.boxes) == len(ref.detections.boxes)
    captured, failed = compiled.graph_counts()
    assert captured > 0 and failed == 0
    assert [s.name for s in compiled.compiled] == STEPS
    assert all(s.failure is None and s.compiled_keys for s in compiled.compiled)
    assert any((tmp_path / "cache").iterdir()), "inductor wrote nothing to the cache directory"
    plain.close()
    compiled.close()
