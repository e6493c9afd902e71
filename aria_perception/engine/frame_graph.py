"""One CUDA graph per frame: a single frame's upload, steps and output copies in one replay.

At a camera's rate the host, idle since the last frame, takes about 0.8 ms to queue a frame's
five graph replays, its events and its stream switches, and the GPU waits for it. A *frame
graph* holds all of it: the frame's upload from page-locked memory and the prepare step on the
upload stream; MiDaS, the upsampling and the
depth map's copy into its destination on the depth stream, and YOLO with the fixed-shape NMS,
the box depth and the detections' copy into a page-locked buffer on the detect stream (both
forked from the upload stream inside the capture, and joined back into it). A frame then costs
one replay and one wait.

A frame graph is captured per plan and *variant*: whether MiDaS runs this frame
(``depth.frame_skip``), where the frame comes from (the address of a page-locked input buffer,
which the graph's upload holds; or anywhere else, uploaded just before the replay) and where the
depth map goes (nowhere, or the address of a page-locked output buffer, which the graph's copy
holds). A plan gets its frame graphs once its per-step
graphs are captured (:class:`~aria_perception.engine.plan.GraphRunner`: their warm-up and
first runs allocated every buffer the steps write). Frames that fit no variant (a depth map
wanted in memory that is not page-locked, a rectified frame wanted, a batch of cameras, the
exact NMS path) keep the per-step graphs. A capture that fails is logged once per variant and
that variant keeps the per-step graphs.

Timing events cannot be recorded inside a graph: a frame-graph frame reports its total, and
NaN (not measured) for its stages (preparation, depth, detection, transfers). So that the stage
times stay measured, one frame in :data:`STAGE_SAMPLE_EVERY` that would fit a frame graph runs
the per-step graphs instead (once a second at 30 Hz); medians of stage times skip the NaNs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from aria_perception.engine.host_memory import HostMemory
from aria_perception.engine.lanes import Lanes
from aria_perception.engine.networks import Networks
from aria_perception.engine.plan import ShapePlan

__all__ = ["STAGE_SAMPLE_EVERY", "FrameGraphs", "FrameVariant"]

_LOG = logging.getLogger(__name__)

#: Steps whose per-step graph must exist before a plan's frame graph is captured.
_STEPS = ("prepare", "depth", "detect", "fuse")
#: Frame graphs kept per plan: a camera's four input slots times two output slots and no depth
#: map (MiDaS runs every frame by default), with room to spare.
MAX_VARIANTS = 16
#: One frame in this many that fits a frame graph runs the per-step graphs, to time its stages.
STAGE_SAMPLE_EVERY = 30


@dataclass
class FrameVariant:
    """One captured frame graph and the page-locked buffer its detections land in.

    Attributes:
        graph: the captured graph.
        rows: flat float32 page-locked host array the packed detections are copied into.
    """

    graph: torch.cuda.CUDAGraph
    rows: np.ndarray


class FrameGraphs:
    """Captures the frame graphs of the engine's plans (the engine replays them).

    Args:
        nets: the engine's networks (the steps).
        lanes: its three lanes (CUDA streams).
        host: the engine's host memory, which page-locks the detections' buffers.
        pool: the graph memory pool the per-step graphs share.

    A plan keeps its frame graphs (``ShapePlan.frames``): they go when it leaves the cache.
    Every frame graph copies its detections into one page-locked buffer per row count (one
    frame runs at a time, and its rows are copied out before the next): the buffers do not grow
    with the plans a long run sees, and :meth:`HostMemory.close` unregisters them.
    """

    def __init__(
        self, nets: Networks, lanes: Lanes, host: HostMemory, pool: tuple[int, int]
    ) -> None:
        self._nets, self._lanes, self._host, self._pool = nets, lanes, host, pool
        self._rows: dict[int, np.ndarray] = {}  # the detections' buffers by size, page-locked
        self._fitting = 0  # frames that fitted a frame graph so far

    def stage_sample(self) -> bool:
        """Whether this fitting frame runs the per-step graphs, to time its stages.

        True for the first and then every :data:`STAGE_SAMPLE_EVERY`-th call.
        """
        self._fitting += 1
        return self._fitting % STAGE_SAMPLE_EVERY == 1

    def ready(self, plan: ShapePlan, want_depth: bool) -> bool:
        """Whether ``plan``'s per-step graphs exist, so a frame graph may be captured."""
        steps = (*_STEPS, "upsample") if want_depth else _STEPS
        return all(plan.graphs.get(step) is not None for step in steps)

    def variant(
        self,
        plan: ShapePlan,
        due: bool,
        depth_dest: torch.Tensor | None,
        source: torch.Tensor | None = None,
    ) -> FrameVariant | None:
        """The frame's graph, captured first if new (the engine replays it on the upload lane).

        Args:
            plan: the frame's plan, its frame already uploaded (queued on the upload lane).
            due: MiDaS runs this frame.
            depth_dest: flat float32 tensor over page-locked host memory to copy the depth map
                into, or None for no depth map.
            source: flat uint8 tensor over page-locked host memory holding the frame, which
                the graph uploads; None when the caller uploads the frame before the replay.

        Returns:
            The variant, whose ``rows`` hold the packed detections once the upload lane's
            work is waited for; None when this variant has no graph (run the per-step graphs).
        """
        key = (
            due,
            None if depth_dest is None else depth_dest.data_ptr(),
            None if source is None else source.data_ptr(),
        )
        variants = plan.frames
        if key in variants:
            return variants[key]
        if len(variants) >= MAX_VARIANTS:
            return None
        variants[key] = self._capture(plan, due, depth_dest, source)
        return variants[key]

    def _capture(
        self,
        plan: ShapePlan,
        due: bool,
        depth_dest: torch.Tensor | None,
        source: torch.Tensor | None,
    ) -> FrameVariant | None:
        nets, lanes = self._nets, self._lanes
        upload, depth, detect = lanes.upload.stream, lanes.depth.stream, lanes.detect.stream
        assert upload is not None and depth is not None and detect is not None
        assert plan.packed is not None
        rows = self._rows.get(plan.packed.numel())
        if rows is None:
            rows = np.empty(plan.packed.numel(), np.float32)
            if not self._host.register(rows):
                return None
            self._rows[rows.size] = rows
        rows_dest = torch.from_numpy(rows)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self._pool, stream=upload):
                if source is not None:
                    plan.frame.view(-1).copy_(source, non_blocking=True)
                nets.prepare(plan)
                depth.wait_stream(upload)
                detect.wait_stream(upload)
                with torch.cuda.stream(depth):
                    if due:
                        nets.depth(plan)
                    network_done = torch.cuda.Event()
                    network_done.record(depth)
                    if depth_dest is not None:
                        nets.upsample(plan)
                        assert plan.depth_full is not None
                        depth_dest.copy_(plan.depth_full.reshape(-1), non_blocking=True)
                with torch.cuda.stream(detect):
                    nets.detect(plan)
                    detect.wait_event(network_done)
                    nets.fuse(plan)
                    rows_dest.copy_(plan.packed.reshape(-1), non_blocking=True)
                upload.wait_stream(depth)
                upload.wait_stream(detect)
        except RuntimeError as err:
            _LOG.warning("CUDA graph capture of a whole frame failed, the frame's steps run as "
                         "separate graphs: %s", err)  # fmt: skip
            torch.cuda.synchronize(upload.device)
            return None
        _LOG.info("frame graph captured: %dx%d %s, depth %s, depth map %s, upload %s",
                  plan.width, plan.height, plan.encoding, "due" if due else "reused",
                  "copied back" if depth_dest is not None else "not wanted",
                  "in the graph" if source is not None else "before it")  # fmt: skip
        return FrameVariant(graph, rows)
