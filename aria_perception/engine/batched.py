"""The engine's frame flow, for one frame or several cameras' at once.

:class:`BatchedFrames` is the part of :class:`~aria_perception.engine.engine.Engine` that runs
frames: :meth:`~BatchedFrames.process_batch`, and ``Engine.process`` as a batch of one. Every
frame is uploaded and prepared in its own plan; MiDaS and YOLO then run once over each group of
frames whose network input has the same shape (:mod:`.batch_plan`; a group of one runs the
plan's own graphs), and the per-frame steps follow: the depth upsampling, the NMS, box depth
and packing, and the downloads.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from aria_perception.engine.batch_plan import MAX_BATCH, BatchPlans, group_by
from aria_perception.engine.networks import Networks, unpack_rows
from aria_perception.engine.plan import GraphRunner, ShapePlan
from aria_perception.errors import ConfigError, EngineError, FrameError
from aria_perception.records import COMPRESSED_FORMATS, BatchItem, EngineResult

__all__ = ["BatchedFrames"]


class BatchedFrames:
    """:meth:`process_batch` for the engine that inherits it (its members are the engine's)."""

    _closed: bool
    _nets: Networks
    _graphs: GraphRunner
    _batches: BatchPlans
    _fixed_post: bool
    progress: int

    @property
    def batch_plan_count(self) -> int:
        """Groups of plans held for batched network calls (:meth:`process_batch`)."""
        return len(self._batches)

    def process_batch(self, items: Sequence[BatchItem]) -> list[EngineResult | FrameError]:
        """Run the frames of several cameras together: each network once per input shape.

        Each item holds :meth:`Engine.process`'s arguments and gets what it returns, in order;
        an item whose frame cannot be used gets its :class:`FrameError` instead, and the others
        still run. A call takes at most :data:`~.batch_plan.MAX_BATCH` frames and one frame per
        camera through the networks at once; further ones run in later rounds of the same call.
        The engine's current thresholds apply to every frame. Stage times: depth and detection
        are the whole round's, preprocessing and transfers those of the round's last frame.

        Raises:
            EngineError: the device failed (no frame of the call has a result).
        """
        if self._closed:
            raise EngineError("the engine is closed")
        results: list[EngineResult | FrameError | None] = [None] * len(items)
        pending = list(range(len(items)))
        try:
            with torch.inference_mode():
                while pending:
                    chosen: dict[str, int] = {}
                    for k in pending:
                        if len(chosen) < MAX_BATCH:
                            chosen.setdefault(items[k].camera, k)
                    batch = list(chosen.values())
                    pending = [k for k in pending if k not in batch]
                    done = self._run_batch([items[k] for k in batch])
                    for k, result in zip(batch, done, strict=True):
                        results[k] = result
        except ConfigError:
            raise
        except torch.cuda.OutOfMemoryError as err:
            raise EngineError(f"CUDA out of memory: {err}") from err
        except RuntimeError as err:
            raise EngineError(f"inference failed: {err}") from err
        return results  # type: ignore[return-value]

    def _run_batch(self, items: list[BatchItem]) -> list[EngineResult | FrameError]:
        """One round: distinct cameras, at most MAX_BATCH frames."""
        lanes, clock, nets, graphs = self._lanes, self._clock, self._nets, self._graphs
        started, waited = time.perf_counter(), sum(lane.waited_s for lane in lanes)
        captures = graphs.captures
        out: list[EngineResult | FrameError | None] = [None] * len(items)
        staged: list[tuple[int, BatchItem, ShapePlan, bool]] = []
        with lanes.upload:
            for k, item in enumerate(items):
                rotation = self.config.rotation if item.rotation is None else item.rotation
                # A refused frame counts too: depth.frame_skip follows the camera's frames.
                index = self._frame_index[item.camera] = self._frame_index.get(item.camera, 0) + 1
                # A frame alone may run as one graph, a raw frame's upload included.
                alone = len(items) == 1
                raw = item.encoding not in COMPRESSED_FORMATS
                try:
                    if alone and raw:
                        plan = self._raw_plan(item.frame, item.encoding, item.camera, rotation)
                    else:
                        plan = self._upload(item.frame, item.encoding, item.camera, rotation)
                except FrameError as err:
                    out[k] = err
                    continue
                staged.append((k, item, plan, self._depth_due(plan, index)))
                if alone:
                    whole = self._whole_frame(item, plan, staged[-1][3], uploaded=not raw)
                    if whole is not None:
                        whole.times.host_ms = self._host_ms(started, waited)
                        return [whole]
                    if raw:
                        self._transfer(item.frame, plan)
                self._prepare(plan)
        if not staged:
            return out  # type: ignore[return-value]
        self.progress += 1
        prepared = lanes.upload.mark()
        plans = [plan for _, _, plan, _ in staged]
        # Each output's copy back starts on its own lane as soon as it is ready: the rectified
        # frame's behind the preparation, the depth map's behind its upsampling (the detector
        # is still at work); the detect lane waits for both before the frame's one host wait.
        fetch_rect: dict[int, Callable[[], np.ndarray]] = {}
        rects = [
            (n, k, item, plan)
            for n, (k, item, plan, _) in enumerate(staged)
            if item.rect_out is not None and plan.rect is not None
        ]
        if rects:
            with lanes.upload:
                clock.rect_out.start(lanes.upload.stream)
                for n, k, item, plan in rects:
                    fetch_rect[k] = self._start_fetch(plan.rect, item.rect_out, "rect_out", n)
                clock.rect_out.stop(lanes.upload.stream)
        rect_done = lanes.upload.mark() if rects else None
        fetch_depth: dict[int, Callable[[], np.ndarray]] = {}
        with lanes.depth:
            lanes.depth.wait(prepared)
            clock.depth.start(lanes.depth.stream)
            fresh = [plan for _, _, plan, due in staged if due]
            self._batched("depth", fresh, lambda p: p.midas_in.shape, nets.depth, nets.depth_batch)
            for plan in fresh:
                plan.depth_valid = True
            depth_network_done = lanes.depth.mark()
            wanted = [
                (n, k, item, plan)
                for n, (k, item, plan, _) in enumerate(staged)
                if item.want_depth and nets.midas is not None
            ]
            for _, _, _, plan in wanted:
                graphs.run("upsample", plan, lanes.depth.stream, nets.upsample)
            clock.depth.stop(lanes.depth.stream)
            if wanted:
                clock.depth_out.start(lanes.depth.stream)
                for n, k, item, plan in wanted:
                    full, dest = plan.depth_full, item.depth_out
                    fetch_depth[k] = self._start_fetch(full, dest, "depth_out", n)
                clock.depth_out.stop(lanes.depth.stream)
        self.progress += 1
        depth_done = lanes.depth.mark()
        with lanes.detect:
            lanes.detect.wait(prepared)
            clock.detect.start(lanes.detect.stream)
            packed: dict[int, torch.Tensor | None] = {id(plan): None for plan in plans}
            if nets.detector is not None:
                shape: Callable[[ShapePlan], object] = lambda p: p.yolo_in.shape  # noqa: E731
                batched = self._batched("detect", plans, shape, nets.detect, nets.detect_batch)
                if self._fixed_post:  # the exact path runs its own NMS below
                    for plan in batched:
                        graphs.run("post", plan, lanes.detect.stream, nets.post)
                lanes.detect.wait(depth_network_done)
                for plan in plans:
                    if self._fixed_post:
                        graphs.run("fuse", plan, lanes.detect.stream, nets.fuse)
                        packed[id(plan)] = plan.packed
                    else:
                        packed[id(plan)] = nets.exact_packed(plan)
            clock.detect.stop(lanes.detect.stream)
            lanes.detect.wait(depth_done)
            lanes.detect.wait(rect_done)
            downloads = []
            for k, _, plan, fresh_depth in staged:
                rows = self._download(plan, packed[id(plan)])
                downloads.append((k, fresh_depth, rows))
        # A round that captured graphs (a shape's first frame) timed compiling and capturing.
        times = clock.times(steady=graphs.captures == captures)
        times.host_ms = self._host_ms(started, waited)
        for k, fresh_depth, rows in downloads:
            depth = fetch_depth[k]() if k in fetch_depth else None
            rect = fetch_rect[k]() if k in fetch_rect else None
            out[k] = EngineResult(
                unpack_rows(rows), depth, dataclasses.replace(times), fresh_depth, rectified=rect
            )
        return out  # type: ignore[return-value]

    def _host_ms(self, started: float, waited: float) -> float:
        """The host's time since ``started`` less its waits since the lanes had ``waited``."""
        waits = sum(lane.waited_s for lane in self._lanes) - waited
        return (time.perf_counter() - started - waits) * 1000.0

    def _batched(
        self,
        name: str,
        plans: list[ShapePlan],
        shape: Callable[[ShapePlan], object],
        single: Callable[[ShapePlan], None],
        batched: Callable,
    ) -> list[ShapePlan]:
        """Step ``name`` over ``plans``: once per group of one input shape (current lane).

        Returns:
            The plans that ran in a group of two or more (their per-frame rest is still due).
        """
        stream = torch.cuda.current_stream() if self.runtime.is_cuda else None
        together: list[ShapePlan] = []
        for group in group_by(plans, shape):
            if len(group) == 1:
                self._graphs.run(name, group[0], stream, single)
            else:
                self._graphs.run(name, self._batches.get(name, group), stream, batched)
                together.extend(group)
        return together
