"""Frames of ever new sizes: the engine keeps a bounded number of plans and its memory stays put.

A publisher sending frames of new sizes took the worker from 990 to 1387 MB over 60 sizes
around 400x300 (every size kept its buffers). The acceptance bound here: at most
``ENGINE_MAX_PLANS`` plans at any time, and at most 250 MB of resident memory growth over 60
new sizes after a warm-up.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from aria_perception.engine.engine import Engine
from aria_perception.engine.plan_cache import ENGINE_MAX_PLANS
from aria_perception.records import EngineConfig

# Random YOLO weights score every box about 1.5e-4: a confidence below that yields boxes.
LOW_CONF = 1e-4
RSS_GROWTH_MB = 250


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _frame(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * 10_000 + width).integers(
        0, 256, (height, width, 3), dtype=np.uint8
    )


@pytest.mark.slow
def test_sixty_new_sizes_keep_the_plans_bounded_and_the_memory_flat() -> None:
    torch.manual_seed(0)
    sizes = [(300 + i, 400 + 2 * i) for i in range(70)]
    config = EngineConfig(device="cpu", allow_random_weights=True, confidence=LOW_CONF)
    with Engine(config) as engine:
        first = engine.process(_frame(*sizes[0]))
        for size in sizes[1:10]:  # warm-up: the plans fill up, the allocator settles
            engine.process(_frame(*size))
        assert engine.plan_count == ENGINE_MAX_PLANS
        start = _rss_mb()
        for size in sizes[10:]:
            engine.process(_frame(*size))
            assert engine.plan_count <= ENGINE_MAX_PLANS
        growth = _rss_mb() - start
        assert engine.graph_counts() == (0, 0)
        # The first size's plan is long gone: processed again, it gives the same result.
        again = engine.process(_frame(*sizes[0]))
    assert growth <= RSS_GROWTH_MB, f"resident memory grew {growth:.0f} MB over 60 new sizes"
    np.testing.assert_array_equal(again.depth, first.depth)
    assert len(first.detections) > 0
    np.testing.assert_array_equal(again.detections.boxes, first.detections.boxes)
    np.testing.assert_array_equal(again.detections.scores, first.detections.scores)
    np.testing.assert_array_equal(again.detections.depth, first.detections.depth)


@pytest.mark.gpu
def test_gpu_graphs_of_kept_evicted_and_rebuilt_plans_give_the_eager_results() -> None:
    """CUDA graphs read buffers and tables that eviction and the caches' turnover free.

    One size is used all along, so its plan (and graphs) outlive the letterbox cache entry of
    its resize tables; another is evicted and comes back. Both must replay to the results of an
    engine without graphs.
    """
    torch.manual_seed(0)
    config = EngineConfig(
        device="cuda:0", allow_random_weights=True, confidence=LOW_CONF, compile="off"
    )
    with Engine(config.replace(cuda_graphs=False)) as eager, Engine(config) as graphs:
        graphs.midas.load_state_dict(eager.midas.state_dict())
        graphs.detector.model.load_state_dict(eager.detector.model.state_dict())
        kept, *others = [(300 + 8 * i, 400 + 24 * i) for i in range(ENGINE_MAX_PLANS + 4)]
        for size in others:
            graphs.process(_frame(*kept))
            graphs.process(_frame(*size))
            assert graphs.plan_count <= ENGINE_MAX_PLANS
        captured, failed = graphs.graph_counts()
        assert captured > 0 and failed == 0
        for size in (kept, others[0], others[-1]):  # kept all along, evicted, the newest
            got, expected = graphs.process(_frame(*size)), eager.process(_frame(*size))
            np.testing.assert_array_equal(got.depth, expected.depth, err_msg=str(size))
            np.testing.assert_array_equal(
                got.detections.boxes, expected.detections.boxes, err_msg=str(size)
            )
