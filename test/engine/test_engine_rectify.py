"""``input.rectify`` in the engine: one bilinear sample through the grid, on the CPU and CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from aria_cases import RGB_PARAMS, fisheye624_fields, remap_bilinear

from aria_perception.engine.engine import Engine
from aria_perception.errors import ConfigError, FrameError
from aria_perception.optics import Calibration, Pinhole, Rectification
from aria_perception.records import EngineConfig

SCALE = 0.125  # the Aria RGB calibration at 176x176, so that CPU tests stay fast
SIZE = 176


def _calibration(shift: float = 0.0) -> Calibration:
    """The sample's RGB camera scaled to SIZE (projectaria-tools' rescale rule), cx shifted."""
    f, cx, cy = (v * SCALE for v in RGB_PARAMS[:3])
    cx, cy = (cx + 0.5 * SCALE - 0.5 + shift), (cy + 0.5 * SCALE - 0.5)
    return Calibration.from_camera_info(
        **fisheye624_fields((f, cx, cy, *RGB_PARAMS[3:]), SIZE, SIZE)
    )


def _rect(shift: float = 0.0, rotation: int = 90) -> Rectification:
    return Rectification(_calibration(shift), Pinhole(96, 80, 500.0 * SCALE), rotation)


def _config(**changes: object) -> EngineConfig:
    base = EngineConfig(
        device="cpu",
        allow_random_weights=True,
        confidence=1e-4,  # random YOLO weights score ~1.5e-4: keep boxes
        depth_input_size=64,
        detector_image_size=64,
        rectify=True,
        rotation=90,
    )
    return base.replace(**changes)


def _frame(seed: int, channels: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    base = np.stack([yy * 1.4, xx * 1.4, (yy + xx) * 0.7], -1) % 256
    noise = np.random.default_rng(seed).integers(0, 30, base.shape)
    frame = ((base + noise) % 256).astype(np.uint8)
    return frame[..., :channels] if channels == 3 else frame[..., 0].copy()


@pytest.fixture(scope="module")
def engine() -> Engine:
    torch.manual_seed(0)
    with Engine(_config()) as eng:
        yield eng


def _reference(frame: np.ndarray, rect: Rectification) -> np.ndarray:
    return np.clip(np.rint(remap_bilinear(frame, rect.grid())), 0, 255)


def test_frames_before_a_calibration_are_frame_errors() -> None:
    with Engine(_config(detector_enabled=False)) as eng:
        with pytest.raises(FrameError, match="no camera_info has arrived yet"):
            eng.process(_frame(0))
        eng.set_rectification(_rect())
        with pytest.raises(FrameError, match="does not match the camera_info size 176x176"):
            eng.process(_frame(0)[:100])
        assert eng.process(_frame(0)).depth.shape == (96, 80)


def test_a_calibration_without_rectify_is_refused(engine: Engine) -> None:
    with Engine(_config(rectify=False, detector_enabled=False)) as eng:
        with pytest.raises(ConfigError, match="input.rectify is off"):
            eng.set_rectification(_rect())


def test_rectified_frame_equals_the_numpy_remap_of_the_grid(engine: Engine) -> None:
    rect = _rect()
    engine.set_rectification(rect)
    frame = _frame(1)
    out = np.empty(96 * 80 * 3, np.uint8)  # a flat buffer, as a shared-memory slot is
    result = engine.process(frame, "rgb8", rect_out=out)
    assert result.rectified.shape == (96, 80, 3)  # 96x80 pinhole turned a quarter: 80 wide
    assert np.shares_memory(result.rectified, out)
    diff = np.abs(result.rectified.astype(int) - _reference(frame, rect))
    assert diff.max() <= 1, diff.max()
    # Depth and boxes are in the rectified image, not un-rotated to the received frame.
    assert result.depth.shape == (96, 80)
    boxes = result.detections.boxes
    assert len(boxes) > 0
    assert (boxes[:, [0, 2]] <= 80 + 1e-3).all() and (boxes[:, [1, 3]] <= 96 + 1e-3).all()
    # BGR input gives the same rectified RGB image.
    bgr = engine.process(np.ascontiguousarray(frame[..., ::-1]), "bgr8", rect_out=out)
    np.testing.assert_array_equal(bgr.rectified, result.rectified)


def test_a_second_calibration_is_picked_up_without_a_new_plan(engine: Engine) -> None:
    frame = _frame(2)
    engine.set_rectification(_rect())
    first = engine.process(frame, rect_out=np.empty((96, 80, 3), np.uint8)).rectified.copy()
    plans = engine.plan_count
    moved = _rect(shift=6.0, rotation=270)
    engine.set_rectification(moved)
    second = engine.process(frame, rect_out=np.empty((96, 80, 3), np.uint8)).rectified
    assert engine.plan_count == plans  # same output size: the grid buffer was kept
    assert np.abs(second.astype(int) - _reference(frame, moved)).max() <= 1
    assert np.abs(second.astype(int) - first.astype(int)).mean() > 10


def test_mono_frames_are_rectified_as_one_channel(engine: Engine) -> None:
    rect = _rect()
    engine.set_rectification(rect)
    frame = _frame(3, channels=1)
    result = engine.process(frame, "mono8", rect_out=np.empty(96 * 80 * 3, np.uint8))
    assert result.rectified.shape == (96, 80, 1)
    assert np.abs(result.rectified.astype(int) - _reference(frame, rect)).max() <= 1


def test_no_rectified_image_unless_asked(engine: Engine) -> None:
    engine.set_rectification(_rect())
    assert engine.process(_frame(4)).rectified is None


@pytest.mark.gpu
def test_gpu_rectify_with_graphs_equals_the_cpu() -> None:
    """CUDA graphs, fp16, parallel streams: the rectified frame of the CPU, a new grid followed."""
    frame = _frame(5)
    torch.manual_seed(0)
    cpu = Engine(_config())
    gpu = Engine(_config(device="cuda:0", compile="off"))
    gpu.midas.load_state_dict(cpu.midas.state_dict())
    gpu.detector.model.load_state_dict(cpu.detector.model.state_dict())
    for calibration in (_rect(), _rect(shift=6.0, rotation=270)):
        for eng in (cpu, gpu):
            eng.set_rectification(calibration)
        want = cpu.process(frame, rect_out=np.empty((96, 80, 3), np.uint8))
        for _ in range(5):  # first frames capture the graphs, later ones replay them
            got = gpu.process(frame, rect_out=np.empty((96, 80, 3), np.uint8))
        assert np.abs(got.rectified.astype(int) - want.rectified.astype(int)).max() <= 1
        rel = np.linalg.norm(got.depth - want.depth) / np.linalg.norm(want.depth)
        assert rel < 0.08, rel  # fp16 against fp32
        captured, failed = gpu.graph_counts()
        assert captured > 0 and failed == 0
    assert gpu.plan_count == 1  # the second calibration reused the plan and its graphs
    cpu.close()
    gpu.close()


def test_compiled_rectification_equals_the_uncompiled_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # worker.compile routes the remap through torch.compile too; dynamo's "eager" backend
    # traces it on the CPU (inductor: the GPU tests).
    monkeypatch.setattr("aria_perception.engine.compile.BACKEND", "eager")
    rect, frame = _rect(), _frame(4)
    with Engine(_config(detector_enabled=False, compile="on")) as compiled:
        compiled.set_rectification(rect)
        got = [compiled.process(frame, "rgb8", rect_out=np.empty(96 * 80 * 3, np.uint8))
               for _ in range(2)][-1]  # fmt: skip
        remap_step = {s.name: s for s in compiled.compiled}["rectification remap"]
        assert remap_step.failure is None and len(remap_step.compiled_keys) == 1
    diff = np.abs(got.rectified.astype(int) - _reference(frame, rect))
    assert diff.max() <= 1, diff.max()
