"""Frames of several cameras in one engine call: each gets what a call of its own gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from yolo_helpers import CONF, sample_image

from aria_perception.engine.batch_plan import MAX_BATCH
from aria_perception.engine.engine import Engine
from aria_perception.errors import FrameError
from aria_perception.records import BatchItem, EngineConfig, EngineResult


def _config(**changes: object) -> EngineConfig:
    base = EngineConfig(device="cpu", allow_random_weights=True, confidence=CONF)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def weights(saved: tuple[Path, torch.nn.Module]) -> str:
    """A random YOLO under which each frame gets detections of its own (conftest)."""
    return str(saved[0])


def _engine(weights: str, **changes: object) -> Engine:
    torch.manual_seed(0)
    return Engine(_config(detector_weights=weights, **changes))


@pytest.fixture(scope="module")
def engine(weights: str) -> Engine:
    with _engine(weights) as eng:
        yield eng


def _frame(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rgb = sample_image(shape[0], shape[1], seed)
    return rgb if len(shape) == 3 else rgb[..., 1].copy()


def _items() -> list[BatchItem]:
    """Two cameras of one size (one network group), a rotated one and a smaller mono one."""
    return [
        BatchItem(_frame(1, (240, 320, 3)), "rgb8", camera="left"),
        BatchItem(_frame(2, (240, 320, 3)), "bgr8", camera="right"),
        BatchItem(_frame(3, (240, 320, 3)), "rgb8", camera="side", rotation=90),
        BatchItem(_frame(4, (120, 160)), "mono8", camera="slam"),
    ]


def _single(engine: Engine, item: BatchItem) -> EngineResult:
    return engine.process(item.frame, item.encoding, camera=item.camera, rotation=item.rotation)


def _assert_same(got: EngineResult, want: EngineResult) -> None:
    assert got.depth is not None and want.depth is not None
    assert got.depth.shape == want.depth.shape
    np.testing.assert_allclose(got.depth, want.depth, rtol=1e-4, atol=1e-4)
    assert len(got.detections) == len(want.detections) > 0
    np.testing.assert_allclose(got.detections.boxes, want.detections.boxes, atol=1e-2)
    np.testing.assert_allclose(got.detections.scores, want.detections.scores, atol=1e-6)
    np.testing.assert_array_equal(got.detections.class_ids, want.detections.class_ids)
    np.testing.assert_allclose(got.detections.depth, want.detections.depth, rtol=1e-4, atol=1e-4)


def test_each_camera_gets_what_its_own_call_gives(engine: Engine) -> None:
    items = _items()
    singles = [_single(engine, item) for item in items]
    # The frames differ, and so do their detections: a mix-up between cameras would show.
    assert not np.array_equal(singles[0].detections.scores, singles[1].detections.scores)
    before = engine.batch_plan_count
    results = engine.process_batch(items)
    assert len(results) == len(items)
    for item, got, want in zip(items, results, singles, strict=True):
        assert isinstance(got, EngineResult), got
        _assert_same(got, want)
        height, width = item.frame.shape[:2]
        assert got.depth.shape == (height, width)  # the camera's own received size
    # left and right share network inputs: they went through each network as one batch.
    assert engine.batch_plan_count > before


def test_a_bad_frame_fails_alone(engine: Engine) -> None:
    items = _items()[:2]
    bad = BatchItem(np.zeros(100, np.uint8), "rgb8", camera="broken")
    results = engine.process_batch([items[0], bad, items[1]])
    assert isinstance(results[1], FrameError)
    for item, got in zip(items, (results[0], results[2]), strict=True):
        assert isinstance(got, EngineResult)
        _assert_same(got, _single(engine, item))


def test_one_camera_twice_and_more_than_a_batch(engine: Engine) -> None:
    items = _items() + [BatchItem(_frame(9 + k, (240, 320, 3)), camera=f"c{k}") for k in range(3)]
    items.append(BatchItem(_frame(20, (240, 320, 3)), camera="left"))  # left again
    assert len(items) > MAX_BATCH
    results = engine.process_batch(items)
    for item, got in zip(items, results, strict=True):
        assert isinstance(got, EngineResult)
        _assert_same(got, _single(engine, item))


def test_depth_out_and_no_depth(engine: Engine) -> None:
    items = _items()[:2]
    out = np.full((240, 320), np.nan, np.float32)
    items[0].depth_out = out
    items[1].want_depth = False
    first, second = engine.process_batch(items)
    assert isinstance(first, EngineResult) and isinstance(second, EngineResult)
    assert np.shares_memory(first.depth, out) and np.isfinite(out).all()
    assert second.depth is None
    assert np.isfinite(second.detections.depth).all()  # box depth without the full map


def test_frame_skip_is_per_camera(weights: str) -> None:
    with _engine(weights, depth_frame_skip=2) as eng:
        items = _items()[:2]
        firsts = eng.process_batch(items)
        seconds = eng.process_batch(items)
        thirds = eng.process_batch(items[:1])
    assert all(r.depth_fresh for r in firsts)
    assert not any(r.depth_fresh for r in seconds)
    assert thirds[0].depth_fresh
    for first, second in zip(firsts, seconds, strict=True):
        np.testing.assert_array_equal(first.depth, second.depth)


@pytest.mark.gpu
def test_batched_graphs_on_cuda_match_single_frames(weights: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run on the GPU device)")
    with _engine(weights, device="cuda", compile="off") as eng:
        items = _items()
        singles = [_single(eng, item) for item in items]
        for _ in range(3):  # eager, captured, replayed
            results = eng.process_batch(items)
        captured, failed = eng.graph_counts()
    assert failed == 0 and captured > 0
    for got, want in zip(results, singles, strict=True):
        assert isinstance(got, EngineResult)
        assert got.depth.shape == want.depth.shape
        np.testing.assert_allclose(got.depth, want.depth, rtol=2e-2, atol=2e-2)
        assert len(got.detections) > 0


@pytest.mark.gpu
def test_a_host_buffer_is_unregistered_and_can_be_registered_again() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run on the GPU device)")
    from aria_perception.engine.host_memory import HostMemory

    host = HostMemory(is_cuda=True)
    buffer = np.zeros(1 << 20, np.uint8)
    assert host.register(buffer) and host.registered_tensor(buffer) is not None
    torch.cuda.synchronize()
    host.unregister(buffer)
    assert host.registered_tensor(buffer) is None
    assert host.register(buffer)  # cudaHostRegister refuses memory that is registered already
    host.close()


@pytest.mark.gpu
def test_frames_staged_one_after_another_each_arrive_whole() -> None:
    """Unregistered frames share one pinned staging buffer: a batch uploads several in a row."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run on the GPU device)")
    from aria_perception.engine.host_memory import HostMemory

    host = HostMemory(is_cuda=True)
    frames = [np.full(32 << 20, k, np.uint8) for k in range(1, 5)]  # 32 MB each
    targets = [torch.empty(f.size, dtype=torch.uint8, device="cuda") for f in frames]
    for frame, target in zip(frames, targets, strict=True):
        host.upload(frame, target)
    torch.cuda.synchronize()
    for k, target in enumerate(targets, start=1):
        assert int(target.min()) == int(target.max()) == k
    host.close()
