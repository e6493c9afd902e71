"""The inference engine: MiDaS small and YOLO on one uploaded frame, two CUDA streams, graphs.

Per frame on CUDA: one H2D copy of the frame as received (pinned host memory), the encoding
conversion, ``input.rotation`` (or, with ``input.rectify``, one bilinear sample through the
camera's remap grid that rectifies and rotates: :mod:`.rectifier`) and both networks'
preprocessing in a *prepare* step on the upload stream; MiDaS on the depth stream and YOLO on
the detect stream, in parallel, joined with CUDA events (no device-wide synchronisation); NMS,
box depth (fusion) and box un-rotation on the detect stream once the depth network's event has
fired. Each output's D2H copy into pinned memory starts on its own stream as soon as the output
is ready: the depth map's on the depth stream right after its upsampling, while the detector
is still at work; the rectified frame's on the upload stream; the detections' last, on the
detect stream, which waits for the other two; the host waits for one final event. Each fixed-shape
step (prepare, MiDaS, upsampling, YOLO forward with the fixed-shape NMS, fusion) is captured as
a CUDA graph per input shape and replayed, or run eagerly where capture fails. An input shape's
buffers and graphs are its plan; :mod:`.plan_cache` keeps the most recently used. Frames of
several cameras run through the networks together with :meth:`Engine.process_batch`.

On the CPU the same steps run eagerly in fp32, in order, with wall-clock stage times: the
streams and events are :class:`~aria_perception.engine.lanes.Lane` objects that do nothing
there (:mod:`.lanes`), the host copies are plain ones (:mod:`.host_memory`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from aria_perception.engine import frames
from aria_perception.engine.batch_plan import BatchPlans
from aria_perception.engine.batched import BatchedFrames
from aria_perception.engine.compile import CompiledStep
from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.frame_graph import FrameGraphs
from aria_perception.engine.host_memory import HostMemory
from aria_perception.engine.lanes import make_lanes
from aria_perception.engine.midas import MidasSmall
from aria_perception.engine.networks import ROW_FLOATS, Networks, unpack_rows
from aria_perception.engine.plan import GraphRunner, ShapePlan
from aria_perception.engine.plan_cache import PlanCache
from aria_perception.engine.preprocess import MidasPreprocess
from aria_perception.engine.rectifier import CameraGrid
from aria_perception.engine.runtime import StageClock, resolve_runtime
from aria_perception.errors import ConfigError, FrameError
from aria_perception.optics import Rectification
from aria_perception.records import (
    COMPRESSED_FORMATS,
    BatchItem,
    EngineConfig,
    EngineInfo,
    EngineResult,
    Thresholds,
    check_encoded_frame,
    check_raw_frame,
    validate_engine_config,
)

__all__ = ["Engine", "validate_engine_config"]

_LOG = logging.getLogger(__name__)


class Engine(BatchedFrames):
    """MiDaS v2.1 small + Ultralytics YOLO on a frame, or several cameras' (:mod:`.batched`).

    Args:
        config: what to build (docs/design.md, "Parameters"); thresholds may change later with
            :meth:`set_thresholds`.
        fixed_nms: on CUDA, run the fixed-shape NMS inside the detect graph (no host sync) and
            fall back to the exact path for a frame it cannot do exactly; False always takes
            the exact variable-size path (which the CPU always does).
        frame_graph: on CUDA with graphs, fixed-shape NMS and parallel streams, run a single
            frame as one CUDA graph once its steps' graphs exist (:mod:`.frame_graph`).

    Attributes:
        config: the configuration built from.
        runtime: the resolved device and precision.
        info: what the engine tells its owner (device, precision, class names, weights).
        fixed_post_frames: frames whose detections came from the fixed-shape NMS.
        exact_post_frames: frames that fell back to the exact path on CUDA.
        progress: raised at each stage of a frame (the worker tells slow from hung by it).

    Raises:
        ConfigError: a value is out of range or the device does not exist.
        WeightsError: weights are missing (and random weights not allowed), do not fit, or
            need arbitrary code to load (and ``detector.trust_pickle`` is off).
    """

    def __init__(
        self, config: EngineConfig, *, fixed_nms: bool = True, frame_graph: bool = True
    ) -> None:
        validate_engine_config(config)
        self.config = config
        rt = self.runtime = resolve_runtime(config.device, config.precision)
        # Fixed-shape NMS in the detect graph (no host sync) on CUDA; the CPU runs the exact
        # variable-size path, which is also the fallback when a frame's result is not exact.
        self._fixed_post = rt.is_cuda and fixed_nms
        self._nets = Networks(config, rt, fixed_post=self._fixed_post)
        self._lanes = make_lanes(rt.device, config.parallel_streams)
        self._graphs = GraphRunner(config.cuda_graphs and rt.is_cuda, rt.device)
        self._host = HostMemory(rt.is_cuda)
        whole = frame_graph and self._graphs.pool is not None and self._fixed_post
        self._frame_graphs = (
            FrameGraphs(self._nets, self._lanes, self._host, self._graphs.pool)
            if whole and config.parallel_streams
            else None
        )
        self._plans = PlanCache(rt.device)
        self._batches = BatchPlans(self._plans.holds, rt.device)  # process_batch's groups
        self._cameras: dict[str, CameraGrid] = {}  # with input.rectify: each camera's grid
        self.fixed_post_frames = self.exact_post_frames = 0
        self._frame_index: dict[str, int] = {}  # frames per camera (depth.frame_skip)
        self.progress, self._closed = 0, False
        self._nets.watch_progress(self._tick)  # on the CPU: progress within a network too
        self._clock = StageClock(rt)
        self.info = EngineInfo(
            device=str(rt.device),
            device_name=rt.device_name,
            precision=rt.precision,
            class_names=self._nets.class_names,
            weights=self._nets.weights,
        )
        info = self.info
        _LOG.info("engine ready on %s (%s, %s): %s", info.device, info.device_name,
                  info.precision, self._nets.describe(config))  # fmt: skip

    def _tick(self) -> None:
        self.progress += 1

    # ------------------------------------------------------------------------------ public
    @property
    def compiled(self) -> tuple[CompiledStep, ...]:
        """The networks that run through ``torch.compile`` (empty with ``worker.compile`` off)."""
        return tuple(self._nets.compiled)

    @property
    def midas(self) -> MidasSmall | None:
        """The depth network (BatchNorm folded), None when depth is off or after close."""
        return self._nets.midas

    @property
    def midas_preprocess(self) -> MidasPreprocess | None:
        """The depth network's input preparation, None when depth is off or after close."""
        return self._nets.midas_preprocess

    @property
    def detector(self) -> YoloDetector | None:
        """The detector, None when detection is off or after close."""
        return self._nets.detector

    @property
    def plan_count(self) -> int:
        """Input shapes whose plan (buffers, graphs) is held now: at most ``ENGINE_MAX_PLANS``."""
        return len(self._plans)

    def graph_counts(self) -> tuple[int, int]:
        """(captured, failed) CUDA graphs of the plans held now (both 0 without graphs)."""
        return GraphRunner.counts(self._plans.plans())

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Change confidence, IoU and the class filter (names) at run time.

        Raises:
            ConfigError: a class name is unknown (``Thresholds`` checks the values).
        """
        detector = self._nets.detector
        if detector is None:
            return
        ids = detector.class_ids(thresholds.classes)
        detector.set_thresholds(confidence=thresholds.confidence, iou=thresholds.iou, classes=ids)

    def set_rectification(self, rectification: Rectification, camera: str = "") -> None:
        """Rectify ``camera``'s frames through ``rectification`` from the next frame on.

        The grid is computed here, once per calibration; one of the same output size is copied
        into the buffer the captured graphs read (no recapture).

        Raises:
            ConfigError: ``input.rectify`` is off.
        """
        if not self.config.rectify:
            raise ConfigError("a camera calibration came, but input.rectify is off")
        grid = self._cameras.setdefault(camera, CameraGrid(self.runtime.device))
        with torch.inference_mode():
            grid.update(rectification, self._lanes.upload.stream)

    def register_host_buffer(self, array: np.ndarray) -> bool:
        """Page-lock ``array``'s memory so frames and depth maps move by DMA, without staging.

        For long-lived buffers such as the worker's shared-memory slots: frames read from and
        depth maps written to registered memory skip a host-side copy of several MB. Does
        nothing on the CPU. Registrations end with :meth:`unregister_host_buffer` or
        :meth:`close`. Returns whether the memory is registered.
        """
        return self._host.register(array)

    def unregister_host_buffer(self, array: np.ndarray) -> None:
        """End :meth:`register_host_buffer` of ``array`` (a camera left): it may be unmapped."""
        if self.runtime.is_cuda:
            torch.cuda.synchronize(self.runtime.device)  # no copy may still use it
        self._host.unregister(array)

    def memory_mb(self) -> tuple[float, float]:
        """(current, peak) GPU memory reserved by this process's allocator, in MB (0 on CPU)."""
        if not self.runtime.is_cuda:
            return 0.0, 0.0
        dev, mb = self.runtime.device, 2**20
        return torch.cuda.memory_reserved(dev) / mb, torch.cuda.max_memory_reserved(dev) / mb

    def close(self) -> None:
        """Release the models, graphs and buffers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._batches.clear()
        self._plans.clear()
        self._nets.close()
        if self.runtime.is_cuda:
            torch.cuda.synchronize(self.runtime.device)
        self._host.close()
        if self.runtime.is_cuda:
            torch.cuda.empty_cache()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(
        self,
        frame: np.ndarray,
        encoding: str = "rgb8",
        *,
        want_depth: bool = True,
        depth_out: np.ndarray | None = None,
        rect_out: np.ndarray | None = None,
        camera: str = "",
        rotation: int | None = None,
    ) -> EngineResult:
        """Run both networks on one frame as received.

        Args:
            frame: (H, W, C) or (H, W) uint8 pixels in ``encoding`` (rgb8, bgr8, mono8, rgba8,
                bgra8), or a 1-D uint8 array of compressed bytes (jpeg, png).
            encoding: the message's encoding or compressed format.
            want_depth: return the full-resolution depth map (else it is neither upsampled
                nor copied back; box depth is still computed).
            depth_out: an (H, W) float32 array, or a flat float32 buffer of H * W elements or
                more, to receive the depth map (saves a copy); the depth is then a view of it.
            rect_out: with ``input.rectify``, a uint8 (H', W', C) array or flat buffer for the
                rectified frame the networks saw (C = 1 for mono8 input, else 3 RGB).
            camera: whose frame: its calibration rectifies it (:meth:`set_rectification`);
                its plans (and the depth map ``depth.frame_skip`` reuses) are its own.
            rotation: the camera's ``input.rotation`` (None: the configuration's).

        Returns:
            Detections in the received image's pixels (with ``input.rectify``: the rectified
            image's), the depth map at that size (or None) and stage times.

        Raises:
            FrameError: the frame cannot be used; the engine stays usable.
            EngineError: the device failed (CUDA error, out of memory).
        """
        item = BatchItem(frame, encoding, want_depth, depth_out, rect_out, camera, rotation)
        [result] = self.process_batch([item])  # one flow for one frame and for several
        if isinstance(result, FrameError):
            raise result
        return result

    # ------------------------------------------------------------------------------ per frame
    def _upload(self, frame: np.ndarray, encoding: str, camera: str, rotation: int) -> ShapePlan:
        """Check the frame and put it on the device in its plan's frame buffer (upload lane)."""
        if encoding not in COMPRESSED_FORMATS:
            plan = self._raw_plan(frame, encoding, camera, rotation)
            self._transfer(frame, plan)
            return plan
        stream = self._lanes.upload.stream
        self._clock.h2d.start(stream)
        check_encoded_frame(frame, encoding)
        # decode_jpeg on the GPU reads a CPU tensor: hand it a copy we own.
        rgb = frames.decode(torch.from_numpy(frame.copy()), encoding, self.runtime.device)
        plan = self._plan(int(rgb.shape[0]), int(rgb.shape[1]), 3, "rgb8", camera, rotation)
        plan.frame.copy_(rgb)
        self._clock.h2d.stop(stream)
        return plan

    def _raw_plan(self, frame: np.ndarray, encoding: str, camera: str, rotation: int) -> ShapePlan:
        """Check a raw frame and find (or make) its plan; nothing is uploaded yet."""
        height, width, channels = check_raw_frame(frame, encoding)
        return self._plan(height, width, channels, encoding, camera, rotation)

    def _transfer(self, frame: np.ndarray, plan: ShapePlan) -> None:
        """Queue a raw frame's upload into its plan's frame buffer (upload lane)."""
        stream = self._lanes.upload.stream
        self._clock.h2d.start(stream)
        self._host.upload(frame, plan.frame)
        self._clock.h2d.stop(stream)

    def _prepare(self, plan: ShapePlan) -> None:
        """Encoding, rotation and both networks' inputs (upload lane)."""
        stream = self._lanes.upload.stream
        self._clock.prepare.start(stream)
        self._graphs.run("prepare", plan, stream, self._nets.prepare)
        self._clock.prepare.stop(stream)

    def _depth_due(self, plan: ShapePlan, index: int) -> bool:
        """A plan's first frame runs depth; later ones the camera's every frame_skip-th."""
        skip = self.config.depth_frame_skip
        return self._nets.midas is not None and (not plan.depth_valid or (index - 1) % skip == 0)

    def _start_fetch(
        self, tensor: torch.Tensor, out: np.ndarray | None, what: str, index: int
    ) -> Callable[[], np.ndarray]:
        """Queue the D2H copy of an output (current lane); the returned function reads it.

        Into ``out`` (straight by DMA when it is registered memory), else into a new array.
        The function is called once the copy is known to be done (after the frame's wait).

        Args:
            tensor: the device output (depth map, rectified frame).
            out: the caller's array or flat buffer for it, or None.
            what: the output's argument name (for errors, and its staging buffer).
            index: the frame's place in its round (its staging buffer).
        """
        host = self._host
        staging = host.output_staging(what, index, tensor.dtype)
        if out is not None:
            return host.fetch_into(tensor, out, what, staging)
        staged, shape = host.download(tensor, staging), tensor.shape
        return lambda: staged().reshape(shape).copy()

    def _download(self, plan: ShapePlan, packed: torch.Tensor | None) -> np.ndarray:
        """The detections' D2H copy, the frame's one host wait, and its rows (detect lane).

        The lane has waited for the other lanes' output copies: after the wait all are done.

        Returns:
            (N, 7) detection rows.
        """
        lane = self._lanes.detect
        self._clock.d2h.start(lane.stream)
        fetch_rows = self._host.download(packed, self._host.detections_staging)
        self._clock.d2h.stop(lane.stream)
        lane.finish()
        rows = fetch_rows()
        if packed is not None and self._fixed_post:
            return self._fixed_rows(rows, plan)
        return rows.reshape(-1, ROW_FLOATS).copy()

    def _whole_frame(
        self, item: BatchItem, plan: ShapePlan, due: bool, *, uploaded: bool
    ) -> EngineResult | None:
        """A frame as one CUDA graph (:mod:`.frame_graph`), on the upload lane.

        ``uploaded``: the frame is on the device already (decoded). Else it is a raw frame,
        uploaded inside the graph from registered memory, or just before the replay. Returns
        None, having queued nothing, where the frame fits no frame graph: the caller uploads it
        (if not ``uploaded``) and runs the steps' graphs.
        """
        graphs, nets = self._frame_graphs, self._nets
        want_depth = item.want_depth and nets.midas is not None
        if graphs is None or item.rect_out is not None or not graphs.ready(plan, want_depth):
            return None
        target = dest = None
        if want_depth:
            if item.depth_out is None or plan.depth_full is None:
                return None
            shape = tuple(plan.depth_full.shape)
            target, dest = self._host.output_dest(item.depth_out, shape, np.float32, "depth_out")
            if dest is None:
                return None  # not page-locked: the steps' path stages it
        if graphs.stage_sample():
            return None  # this one times its stages on the steps' graphs
        # A raw frame in registered memory is uploaded inside the graph.
        source = None if uploaded else self._host.registered_tensor(item.frame)
        variant = graphs.variant(plan, due, dest, source)
        if variant is None:
            return None
        upload, clock = self._lanes.upload, self._clock
        clock.whole.start(upload.stream)
        if source is None and not uploaded:
            self._host.upload(item.frame, plan.frame)
        variant.graph.replay()
        clock.whole.stop(upload.stream)
        if due:
            plan.depth_valid = True
        self.progress += 2
        upload.finish()
        rows = self._fixed_rows(variant.rows, plan)
        return EngineResult(unpack_rows(rows), target, clock.times(), due)

    def _fixed_rows(self, host_rows: np.ndarray, plan: ShapePlan) -> np.ndarray:
        """The real rows of the fixed-shape result, or the exact path's if it was not exact."""
        count, _candidates, exact = (float(v) for v in host_rows[-3:])
        if exact:
            self.fixed_post_frames += 1
            return host_rows[:-3].reshape(-1, ROW_FLOATS)[: int(count)].copy()
        # Too many candidates or a long suppression chain: recompute exactly (rare).
        self.exact_post_frames += 1
        with self._lanes.detect:
            fetch = self._host.download(self._nets.exact_packed(plan), self._host.exact_staging)
        self._lanes.detect.finish()
        return fetch().reshape(-1, ROW_FLOATS).copy()

    def _plan(
        self, height: int, width: int, channels: int, encoding: str, camera: str, rotation: int
    ) -> ShapePlan:
        grid = None
        if self.config.rectify:
            cam = self._cameras.get(camera) or CameraGrid(self.runtime.device)
            out_w, out_h = cam.check_frame(height, width).output_size
            grid, rotated, unrotate = cam.grid, (out_h, out_w), 0
            # A camera's plans follow its grid buffer: one of another output size is new.
            key: tuple = (height, width, channels, encoding, camera, rotated)
        else:
            # A camera's plans are its own: its rotation, the depth map frame_skip keeps.
            unrotate = rotation
            rotated = (height, width) if rotation in (0, 180) else (width, height)
            key = (height, width, channels, encoding, camera, rotation)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        shape = (height, width, channels) if channels > 1 else (height, width)
        _LOG.info("new input shape %dx%d %s", width, height, encoding)
        return self._plans.add(
            key,
            lambda: ShapePlan(
                height=height,
                width=width,
                channels=channels,
                encoding=encoding,
                frame=torch.empty(shape, dtype=torch.uint8, device=self.runtime.device),
                rotated_hw=rotated,
                unrotate=unrotate,
                grid=grid,
            ),
        )
