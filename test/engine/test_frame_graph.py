"""A frame as one CUDA graph gives what the steps' own graphs give, in every variant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aria_perception.engine.engine import Engine
from aria_perception.engine.frame_graph import STAGE_SAMPLE_EVERY
from aria_perception.records import EngineConfig, EngineResult

pytestmark = pytest.mark.gpu

SIZE = (704, 704)


def _config(**changes: object) -> EngineConfig:
    # Uncompiled (test_compile.py covers compiling); random YOLO weights score every box about
    # 1.5e-4, so this confidence yields boxes.
    base = EngineConfig(device="cuda:0", allow_random_weights=True, confidence=1e-4)
    return base.replace(compile="off", **changes)


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8) for _ in range(3)]


def _slots(engine: Engine) -> list[np.ndarray]:
    """Two page-locked depth outputs, as a camera's two output slots in the worker."""
    slots = [np.empty(SIZE, np.float32) for _ in range(2)]
    for slot in slots:
        assert engine.register_host_buffer(slot)
    return slots


def _twins(**changes: object) -> tuple[Engine, Engine]:
    """An engine on the steps' graphs and one with frame graphs, with the same weights."""
    torch.manual_seed(0)
    steps = Engine(_config(**changes), frame_graph=False)
    whole = Engine(_config(**changes))
    whole.midas.load_state_dict(steps.midas.state_dict())
    whole.detector.model.load_state_dict(steps.detector.model.state_dict())
    return steps, whole


def _assert_same(a: EngineResult, b: EngineResult, slot: np.ndarray, want: bool, i: int) -> None:
    """``b`` (frame graphs, depth map into ``slot``) gives what ``a`` (the steps) gives."""
    assert a.depth_fresh == b.depth_fresh, i
    for name in ("boxes", "scores", "class_ids", "depth"):
        np.testing.assert_allclose(
            getattr(b.detections, name),
            getattr(a.detections, name),
            rtol=1e-4,
            atol=1e-5,
            err_msg=f"{name}, frame {i}",
        )
    if want:
        assert b.depth is not None and np.shares_memory(b.depth, slot)
        np.testing.assert_allclose(b.depth, a.depth, rtol=1e-4, atol=1e-5)
    else:
        assert b.depth is None


def test_every_variant_gives_the_step_graphs_results() -> None:
    steps, whole = _twins(depth_frame_skip=2)
    frames, step_slots, whole_slots = _frames(), _slots(steps), _slots(whole)
    try:
        # Depth due and reused (frame_skip 2), both output slots, and no depth map wanted; each
        # variant more than once, as one frame in STAGE_SAMPLE_EVERY takes the steps' graphs.
        for i in range(24):
            frame, want = frames[i % 3], i % 5 != 4
            a = steps.process(frame, want_depth=want, depth_out=step_slots[i % 2])
            b = whole.process(frame, want_depth=want, depth_out=whole_slots[i % 2])
            _assert_same(a, b, whole_slots[i % 2], want, i)
        [plan] = whole._plans.plans()
        variants = plan.frames
        # (due, slot 0), (due, slot 1), (reused, ...), (.., no map): several, all captured.
        assert len(variants) >= 4 and all(v is not None for v in variants.values()), variants
        # One frame runs at a time: every variant copies its detections into the same buffer.
        assert len({variant.rows.ctypes.data for variant in variants.values()}) == 1
        [step_plan] = steps._plans.plans()
        assert not step_plan.frames
    finally:
        steps.close()
        whole.close()


def test_a_depth_map_in_memory_that_is_not_page_locked_takes_the_steps() -> None:
    with Engine(_config()) as engine:
        frame = _frames()[0]
        outs = [engine.process(frame, depth_out=np.empty(SIZE, np.float32)) for _ in range(6)]
        [plan] = engine._plans.plans()
        assert not plan.frames  # every frame staged its depth map: no frame graph
        np.testing.assert_array_equal(outs[-1].depth, outs[-2].depth)
        slot = _slots(engine)[0]
        for _ in range(5):
            got = engine.process(frame, depth_out=slot)
        assert any(v is not None for v in plan.frames.values())
        np.testing.assert_allclose(got.depth, outs[-1].depth, rtol=1e-4, atol=1e-5)


def test_a_frame_graph_leaves_the_stages_untimed_and_one_frame_in_n_times_them() -> None:
    with Engine(_config()) as engine:
        slot, frame = _slots(engine)[0], _frames()[0]
        frames = range(STAGE_SAMPLE_EVERY + 12)
        times = [engine.process(frame, depth_out=slot).times for _ in frames]
    # The first frame captured the steps' graphs: its stages timed that, so they are NaN.
    building, times = times[0], times[1:]
    assert math.isnan(building.depth_ms) and math.isnan(building.preprocess_ms)
    assert building.total_ms > 0
    # The next fitted a frame graph, and timed its stages on the steps' graphs.
    whole = [math.isnan(t.depth_ms) for t in times]
    assert not whole[0]
    assert all(whole[1:STAGE_SAMPLE_EVERY]), whole
    assert not whole[STAGE_SAMPLE_EVERY]
    for t, graphed in zip(times, whole, strict=True):
        if graphed:
            assert math.isnan(t.preprocess_ms) and math.isnan(t.detect_ms)
            assert math.isnan(t.transfer_ms) and t.total_ms > 0
        else:
            # Steady: a sampled frame's stages are the steps' replays, not seconds of capture.
            assert 0 < t.depth_ms < 100 and 0 < t.detect_ms < 100 and t.total_ms > 0


def test_a_frame_in_page_locked_memory_is_uploaded_inside_the_graph() -> None:
    steps, whole = _twins()
    frames, step_slots, whole_slots = _frames(), _slots(steps), _slots(whole)
    inputs = [np.empty((*SIZE, 3), np.uint8) for _ in range(2)]  # a camera's input slots
    for buffer in inputs:
        assert whole.register_host_buffer(buffer)
    try:
        for i in range(12):
            # The next frame lands in an input slot, as the node copies it there.
            buffer, frame = inputs[i % 2], frames[i % 3]
            buffer[...] = frame
            a = steps.process(frame, depth_out=step_slots[i % 2])
            b = whole.process(buffer, depth_out=whole_slots[i % 2])
            _assert_same(a, b, whole_slots[i % 2], True, i)
        [plan] = whole._plans.plans()
        sources = {key[2] for key, variant in plan.frames.items() if variant is not None}
        assert sources == {buffer.ctypes.data for buffer in inputs}, plan.frames
        # One frame runs at a time: every variant copies its detections into the same buffer.
        assert len({variant.rows.ctypes.data for variant in plan.frames.values()}) == 1
    finally:
        steps.close()
        whole.close()
