"""The per-shape plan's static buffers: what CUDA graph capture relies on."""

from __future__ import annotations

import torch

from aria_perception.engine.plan import GraphRunner, ShapePlan, into
from aria_perception.engine.plan_cache import PlanCache


def test_into_allocates_once_then_writes_into_the_same_storage() -> None:
    first = into(None, torch.arange(6.0).reshape(2, 3))
    again = into(first, torch.ones(2, 3))
    assert again is first and torch.equal(first, torch.ones(2, 3))
    # Another shape or dtype is another buffer (a new input shape has its own plan anyway).
    assert into(first, torch.ones(3, 2)) is not first
    assert into(first, torch.ones(2, 3, dtype=torch.float64)) is not first


def test_into_keeps_the_memory_format() -> None:
    value = torch.rand(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    static = into(None, value)
    assert static.is_contiguous(memory_format=torch.channels_last)
    assert static.data_ptr() != value.data_ptr()


def test_runner_without_graphs_runs_steps_eagerly_every_time() -> None:
    plan = ShapePlan(1, 2, 3, "rgb8", torch.zeros(1, 2, 3, dtype=torch.uint8), (1, 2))
    calls = []

    def step(p: ShapePlan) -> None:
        calls.append(p)
        p.yolo_raw = into(p.yolo_raw, torch.full((2,), float(len(calls))))

    runner = GraphRunner(enabled=False, device=torch.device("cpu"))
    for _ in range(3):
        runner.run("detect", plan, None, step)
    assert len(calls) == 3 and torch.equal(plan.yolo_raw, torch.full((2,), 3.0))
    assert GraphRunner.counts([plan]) == (0, 0)


def _plan(height: int, width: int) -> ShapePlan:
    frame = torch.zeros(height, width, 3, dtype=torch.uint8)
    return ShapePlan(height, width, 3, "rgb8", frame, (height, width))


def test_plan_bytes_count_its_buffers() -> None:
    plan = _plan(10, 20)
    assert plan.nbytes() == 600
    plan.depth_full = torch.zeros(10, 20)
    assert plan.nbytes() == 600 + 800


def test_plan_cache_keeps_at_most_max_plans_least_recently_used_out() -> None:
    cache = PlanCache(torch.device("cpu"), max_plans=3, max_bytes=2**30)
    for size in (1, 2, 3):
        cache.add((size, size, 3, "rgb8"), lambda s=size: _plan(s, s))
    assert cache.get((1, 1, 3, "rgb8")) is not None  # 1 is now the most recent
    new = cache.add((4, 4, 3, "rgb8"), lambda: _plan(4, 4))
    assert len(cache) == 3 and new.height == 4
    assert cache.get((2, 2, 3, "rgb8")) is None  # the least recently used went
    assert [p.height for p in cache.plans()] == [3, 1, 4]


def test_plan_cache_keeps_the_bytes_of_the_older_plans_within_the_budget() -> None:
    cache = PlanCache(torch.device("cpu"), max_plans=100, max_bytes=1000)
    for size in (10, 11, 12):  # 300, 363, 432 bytes
        cache.add((size, size, 3, "rgb8"), lambda s=size: _plan(s, s))
    # Before 12 came in, 300 + 363 <= 1000 stayed; now 1095 > 1000: the next one evicts 10.
    assert [p.height for p in cache.plans()] == [10, 11, 12]
    cache.add((5, 5, 3, "rgb8"), lambda: _plan(5, 5))
    assert [p.height for p in cache.plans()] == [11, 12, 5]
    # A plan over the whole budget is still held (the one in use), alone.
    cache.add((40, 40, 3, "rgb8"), lambda: _plan(40, 40))
    cache.add((41, 41, 3, "rgb8"), lambda: _plan(41, 41))
    assert [p.height for p in cache.plans()] == [41]
    cache.clear()
    assert len(cache) == 0 and cache.nbytes() == 0
