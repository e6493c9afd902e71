"""The engine's per-shape plan: static device buffers and the CUDA graphs that fill them.

A CUDA graph replays the kernels it captured on the very memory it captured them with, so
every tensor that a step hands to the next one lives in a :class:`ShapePlan` field that keeps
its storage from frame to frame: :func:`into` allocates it on the first run of a step and
copies into it on every later run (the warm-up runs, the captured run, eager runs).
:class:`GraphRunner` runs a step eagerly, or captures it once per plan and replays it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

__all__ = ["GRAPH_WARMUP", "GraphRunner", "ShapePlan", "into"]

_LOG = logging.getLogger(__name__)

#: Eager runs on the capture stream before capture (cuDNN/cuBLAS autotuning, lazy tables).
GRAPH_WARMUP = 3


@dataclass
class ShapePlan:
    """Static buffers (and graphs) of one input shape and encoding.

    Attributes:
        height: rows of the received frame.
        width: columns of the received frame.
        channels: channels of the received encoding.
        encoding: the raw encoding the frame is uploaded in (``rgb8`` after decoding).
        frame: (H, W, C) or (H, W) uint8 on the device: the upload target.
        rotated_hw: (height, width) of the image the networks see: after ``input.rotation``,
            or the rectified image's with ``input.rectify``.
        unrotate: the clockwise rotation that outputs undo to return to received pixels
            (``input.rotation``; 0 with ``input.rectify``, whose outputs stay rectified).
        grid: the camera's remap grid with ``input.rectify`` (its storage is the camera's, kept
            when a new calibration comes), else None.
        rect: (H', W', C) uint8 rectified frame (C = 1 for mono8 input, else 3 RGB), the
            networks' input and the source of the rectified image output.
        midas_in: MiDaS input.
        yolo_in: YOLO input.
        depth_low: (h, w) MiDaS output, kept between frames for ``depth.frame_skip``.
        depth_full: (H, W) float32 depth at the received size.
        yolo_raw: raw YOLO output.
        fixed_boxes: boxes of the fixed-shape post-processing.
        fixed_scores: their scores.
        fixed_classes: their class ids.
        fixed_stats: detection count, candidate count and exact flag, as float32.
        packed: the detections and stats in one flat float32 buffer: the one D2H source.
        graphs: captured graph by step name; None where capture failed (the step runs eagerly).
        pinned: what the plan's graphs read that a cache outside the plan holds (the letterbox's
            resize tables of this size), kept alive as long as the plan: a cache may drop it.
        depth_valid: ``depth_low`` holds a prediction of this shape.
        frames: the plan's whole-frame graphs by variant; None where capture failed
            (:mod:`.frame_graph`).
    """

    height: int
    width: int
    channels: int
    encoding: str
    frame: torch.Tensor
    rotated_hw: tuple[int, int]
    unrotate: int = 0
    grid: torch.Tensor | None = None
    rect: torch.Tensor | None = None
    midas_in: torch.Tensor | None = None
    yolo_in: torch.Tensor | None = None
    depth_low: torch.Tensor | None = None
    depth_full: torch.Tensor | None = None
    yolo_raw: torch.Tensor | None = None
    fixed_boxes: torch.Tensor | None = None
    fixed_scores: torch.Tensor | None = None
    fixed_classes: torch.Tensor | None = None
    fixed_stats: torch.Tensor | None = None
    packed: torch.Tensor | None = None
    graphs: dict[str, torch.cuda.CUDAGraph | None] = field(default_factory=dict)
    pinned: dict[str, object] = field(default_factory=dict)
    depth_valid: bool = False
    frames: dict[tuple, Any] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes of the plan's own buffers (not its graphs' memory pool, shared by all plans)."""
        tensors = (getattr(self, f.name) for f in fields(self))
        return sum(t.untyped_storage().nbytes() for t in tensors if isinstance(t, torch.Tensor))


def into(static: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    """``value`` written into the static buffer ``static``, which is returned.

    Assign the result to the plan field ``static`` came from: the first call (or one with
    another shape or dtype) allocates the buffer as a copy of ``value``, later calls copy
    ``value`` into the same storage, which a captured graph keeps writing to.
    """
    if static is None or static.shape != value.shape or static.dtype != value.dtype:
        return value.clone(memory_format=torch.preserve_format)
    static.copy_(value)
    return static


class GraphRunner:
    """Runs the engine's fixed-shape steps: eagerly, or as one CUDA graph per step and plan.

    With graphs enabled, a step's first run is eager (it allocates the plan's buffers), then
    the step is warmed up, captured on its stream and replayed; every later run replays. A
    capture that fails is logged and the step stays eager for that plan.

    Args:
        enabled: capture graphs (CUDA only).
        device: the engine's device (synchronised after a failed capture).
    """

    def __init__(self, enabled: bool, device: torch.device) -> None:
        self.enabled = enabled
        self._device = device
        self._pool = torch.cuda.graph_pool_handle() if enabled else None
        #: Captures attempted so far: a frame that made one timed the building, not the steps.
        self.captures = 0

    @property
    def pool(self) -> tuple[int, int] | None:
        """The memory pool every captured graph shares (None without graphs)."""
        return self._pool

    def run(
        self,
        name: str,
        plan: ShapePlan,
        stream: torch.cuda.Stream | None,
        step: Callable[[ShapePlan], None],
    ) -> None:
        """Run ``step`` for ``plan`` on ``stream`` (the current one): replay, capture or eager."""
        graph = plan.graphs.get(name)
        if graph is not None:
            graph.replay()
            return
        step(plan)
        if not self.enabled or name in plan.graphs:
            return
        plan.graphs[name] = None  # one capture attempt per step and plan
        self.captures += 1
        try:
            for _ in range(GRAPH_WARMUP):
                step(plan)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, stream=stream):
                step(plan)
            graph.replay()
            plan.graphs[name] = graph
        except RuntimeError as err:
            _LOG.warning("CUDA graph capture of %s failed, running it eagerly: %s", name, err)
            torch.cuda.synchronize(self._device)
            step(plan)

    @staticmethod
    def counts(plans: list[ShapePlan]) -> tuple[int, int]:
        """(captured, failed) graphs over ``plans``."""
        graphs = [g for plan in plans for g in plan.graphs.values()]
        captured = sum(g is not None for g in graphs)
        return captured, len(graphs) - captured
