"""The per-shape plan's static buffers: what CUDA graph capture relies on."""

from __future__ import annotations

import torch

from aria_perception.engine.plan import GraphRunner, ShapePlan, into


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
