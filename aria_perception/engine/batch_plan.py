"""Frames of several cameras through one network call: batch plans and how frames group.

A batched engine call (:meth:`~aria_perception.engine.engine.Engine.process_batch`) prepares
each frame in its own :class:`~aria_perception.engine.plan.ShapePlan` (its camera's rotation,
rectification and letterbox), then runs each network once over every frame whose network input
has the same shape: the step concatenates the plans' input buffers, runs the network and writes
each frame's slice of the output back into its plan, where the per-frame steps (upsampling,
NMS, box depth) find it as after a single frame. A :class:`BatchPlan` is such a group of plans
for one network; a CUDA graph of it reads and writes exactly those plans' buffers, so it is
only valid while every member plan is the engine's: :class:`BatchPlans` drops a batch plan as
soon as one of its members has left the engine's :class:`~aria_perception.engine.plan_cache.
PlanCache`, and keeps at most :data:`MAX_BATCH_PLANS` of them, least recently used out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from aria_perception.engine.plan import ShapePlan

__all__ = ["MAX_BATCH", "MAX_BATCH_PLANS", "BatchPlan", "BatchPlans", "group_by"]

#: Most frames in one batched engine call: well below the plan cache's bound, so that no plan
#: of a batch is evicted while the batch is running.
MAX_BATCH = 4
#: Most batch plans (member combinations with their graphs) kept at once.
MAX_BATCH_PLANS = 8


@dataclass(eq=False)
class BatchPlan:
    """Plans whose frames go through one network together.

    Attributes:
        plans: the member plans, in batch order.
        graphs: captured graph by step name (the :class:`~aria_perception.engine.plan.
            GraphRunner` protocol of a plan).
    """

    plans: tuple[ShapePlan, ...]
    graphs: dict[str, torch.cuda.CUDAGraph | None] = field(default_factory=dict)


class BatchPlans:
    """Batch plans by step name and member plans, bounded, least recently used out.

    Args:
        held: whether a plan is still the engine's (its plan cache holds it).
        device: the engine's device (synchronised before graphs are dropped on CUDA).
        max_plans: most batch plans kept.
    """

    def __init__(
        self,
        held: Callable[[ShapePlan], bool],
        device: torch.device,
        max_plans: int = MAX_BATCH_PLANS,
    ) -> None:
        self._held = held
        self._device = device
        self.max_plans = max_plans
        self._batches: OrderedDict[tuple, BatchPlan] = OrderedDict()

    def __len__(self) -> int:
        return len(self._batches)

    def get(self, name: str, plans: Sequence[ShapePlan]) -> BatchPlan:
        """The batch plan of step ``name`` over ``plans`` (made on first use)."""
        stale = [k for k, b in self._batches.items() if not all(map(self._held, b.plans))]
        key = (name, *(id(plan) for plan in plans))
        batch = self._batches.get(key)
        if batch is not None:
            self._batches.move_to_end(key)
        else:
            batch = self._batches[key] = BatchPlan(tuple(plans))
        excess = len(self._batches) - self.max_plans
        stale.extend(list(self._batches)[: max(excess, 0)])
        self._drop(stale)
        return batch

    def clear(self) -> None:
        """Drop every batch plan."""
        self._drop(list(self._batches))

    def _drop(self, keys: list[tuple]) -> None:
        doomed = [self._batches.pop(k) for k in dict.fromkeys(keys) if k in self._batches]
        if not doomed:
            return
        if self._device.type == "cuda":  # a graph of these may still be running
            torch.cuda.synchronize(self._device)
        for batch in doomed:
            batch.graphs.clear()


def group_by(plans: Sequence[ShapePlan], shape: Callable[[ShapePlan], object]) -> list[list]:
    """``plans`` grouped by ``shape`` (a network input's shape), each group in batch order."""
    groups: dict[object, list[ShapePlan]] = {}
    for plan in plans:
        groups.setdefault(shape(plan), []).append(plan)
    return list(groups.values())
