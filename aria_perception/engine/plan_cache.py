"""The engine's per-shape plans, bounded by count and by bytes, least recently used out.

Every new input shape (height, width, channels, encoding) gets a
:class:`~aria_perception.engine.plan.ShapePlan`: device buffers and, on CUDA, its graphs. A
publisher sending frames of ever new sizes must not grow the worker without bound, so when a
new shape comes in, the least recently used plans are evicted until at most
:data:`ENGINE_MAX_PLANS` - 1 remain and they hold at most :data:`ENGINE_MAX_PLAN_BYTES` of
buffers; then the new plan joins them. The engine thus holds at most :data:`ENGINE_MAX_PLANS`
plans, and their buffers take at most :data:`ENGINE_MAX_PLAN_BYTES` plus the newest plan's.

An evicted plan's buffers and graphs are freed. On CUDA the device is synchronised first (no
graph of the plan may still be running) and the allocator's cache is emptied afterwards, so the
freed memory goes back to the driver. The graphs of all plans share one memory pool
(:class:`~aria_perception.engine.plan.GraphRunner`) that each capture reuses: it is as large as
the largest capture needs, not a sum over shapes, and it is released when the engine closes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import torch

from aria_perception.engine.plan import ShapePlan

__all__ = ["ENGINE_MAX_PLANS", "ENGINE_MAX_PLAN_BYTES", "PlanCache", "PlanKey"]

_LOG = logging.getLogger(__name__)

#: Most per-shape plans (input sizes and encodings with their buffers and graphs) kept at once.
ENGINE_MAX_PLANS = 8
#: Most bytes of buffers the plans kept beside a new one may hold (the newest plan comes on top).
ENGINE_MAX_PLAN_BYTES = 256 * 2**20

#: (height, width, channels, encoding) of the frames a plan serves; with ``input.rectify`` also
#: the camera and the rectified (height, width).
PlanKey = tuple


class PlanCache:
    """Plans by input shape in least-recently-used order, evicted as the module docstring says.

    Args:
        device: the engine's device (synchronised before an eviction on CUDA).
        max_plans: most plans kept.
        max_bytes: most bytes the plans kept beside a new one may hold.
    """

    def __init__(
        self,
        device: torch.device,
        max_plans: int = ENGINE_MAX_PLANS,
        max_bytes: int = ENGINE_MAX_PLAN_BYTES,
    ) -> None:
        self.device = device
        self.max_plans = max_plans
        self.max_bytes = max_bytes
        self._plans: OrderedDict[PlanKey, ShapePlan] = OrderedDict()

    def __len__(self) -> int:
        return len(self._plans)

    def plans(self) -> list[ShapePlan]:
        """The plans held, least recently used first."""
        return list(self._plans.values())

    def holds(self, plan: ShapePlan) -> bool:
        """Whether ``plan`` is one of the plans held (not evicted)."""
        return any(held is plan for held in self._plans.values())

    def nbytes(self) -> int:
        """Bytes of the buffers of every plan held."""
        return sum(plan.nbytes() for plan in self._plans.values())

    def get(self, key: PlanKey) -> ShapePlan | None:
        """The plan of ``key`` (now the most recently used), or None."""
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
        return plan

    def add(self, key: PlanKey, build: Callable[[], ShapePlan]) -> ShapePlan:
        """Evict least recently used plans as needed, then build the plan of ``key`` and hold it.

        Args:
            key: the new plan's input shape.
            build: makes the plan (called after the eviction, so that its buffers can reuse the
                memory just freed).

        Returns:
            The new plan, now the most recently used.
        """
        sizes = {k: p.nbytes() for k, p in self._plans.items()}
        evicted: list[ShapePlan] = []
        while self._plans and (
            len(self._plans) >= self.max_plans or sum(sizes.values()) > self.max_bytes
        ):
            oldest = next(iter(self._plans))
            evicted.append(self._plans.pop(oldest))
            del sizes[oldest]
        if evicted:
            count = len(evicted)
            self._free(evicted)
            _LOG.info(
                "evicted %d input shape plan(s); %d kept (at most %d), %.0f MB",
                count,
                len(self._plans),
                self.max_plans,
                sum(sizes.values()) / 2**20,
            )
        plan = self._plans[key] = build()
        return plan

    def clear(self) -> None:
        """Drop every plan (their buffers and graphs)."""
        plans = list(self._plans.values())
        self._plans.clear()
        self._free(plans)

    def _free(self, plans: list[ShapePlan]) -> None:
        """Free ``plans``, which the caller hands over: this list holds their last references."""
        cuda = self.device.type == "cuda"
        if cuda:  # a graph of these plans may still be running on some stream
            torch.cuda.synchronize(self.device)
        while plans:  # no name may keep one alive past the emptying of the cache
            doomed = plans.pop()
            doomed.graphs.clear()
            doomed.pinned.clear()
            del doomed
        if cuda:
            torch.cuda.empty_cache()
