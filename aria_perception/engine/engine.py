"""The inference engine: MiDaS small and YOLO on one uploaded frame, two CUDA streams, graphs.

Per frame on CUDA (DESIGN 7): one H2D copy of the frame as received (pinned host memory), the
encoding conversion, ``input.rotation`` and both networks' preprocessing in a *prepare* step on
the upload stream; MiDaS on the depth stream and YOLO on the detect stream, in parallel, joined
with CUDA events (no device-wide synchronisation); NMS, box depth (fusion) and box un-rotation
on the detect stream once the depth event has fired; D2H copies into pinned memory; the host
waits for one final event. Each fixed-shape step (prepare, MiDaS, YOLO forward) is captured as
a CUDA graph per input shape and replayed; when capture fails the engine runs them eagerly.

On the CPU the same steps run eagerly in fp32, in order, with wall-clock stage times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from aria_perception.engine import frames
from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.fold import fold_batchnorm
from aria_perception.engine.fusion import box_depth_median_lowres
from aria_perception.engine.preprocess import MidasPreprocess, upsample_depth
from aria_perception.engine.runtime import Runtime, Stopwatch, resolve_runtime
from aria_perception.engine.weights import create_midas_small
from aria_perception.errors import ConfigError, EngineError, FrameError
from aria_perception.records import (
    ROTATIONS,
    Detections,
    EngineConfig,
    EngineInfo,
    EngineResult,
    StageTimes,
    Thresholds,
)

__all__ = ["Engine", "validate_engine_config"]

_LOG = logging.getLogger(__name__)
_GRAPH_WARMUP = 3  # eager runs on the capture stream before capture (cuDNN/cuBLAS autotuning)


def validate_engine_config(config: EngineConfig) -> None:
    """Check the values that need no torch (ranges); raise ConfigError naming the parameter."""
    checks: list[tuple[bool, str]] = [
        (config.depth_enabled or config.detector_enabled, "depth.enabled and detector.enabled "
         "are both false: nothing to compute"),
        (config.depth_input_size >= 32 and config.depth_input_size % 32 == 0,
         f"depth.input_size must be a positive multiple of 32, got {config.depth_input_size}"),
        (config.depth_frame_skip >= 1,
         f"depth.frame_skip must be >= 1, got {config.depth_frame_skip}"),
        (config.detector_image_size >= 32 and config.detector_image_size % 32 == 0,
         "detector.image_size must be a positive multiple of 32, got "
         f"{config.detector_image_size}"),
        (0.0 <= config.confidence <= 1.0,
         f"detector.confidence must be within [0, 1], got {config.confidence}"),
        (0.0 <= config.iou <= 1.0, f"detector.iou must be within [0, 1], got {config.iou}"),
        (config.max_detections >= 1,
         f"detector.max_detections must be >= 1, got {config.max_detections}"),
        (config.rotation in ROTATIONS,
         f"input.rotation must be one of {ROTATIONS}, got {config.rotation}"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclass
class _Plan:
    """Static buffers (and graphs) of one input shape and encoding."""

    height: int
    width: int
    channels: int
    encoding: str
    frame: torch.Tensor  # (H, W, C) uint8 on the device: the H2D target
    rotated_hw: tuple[int, int]
    midas_in: torch.Tensor | None = None
    yolo_in: torch.Tensor | None = None
    depth_low: torch.Tensor | None = None  # (h, w) MiDaS output, kept for depth.frame_skip
    yolo_raw: torch.Tensor | None = None
    fixed_boxes: torch.Tensor | None = None  # postprocess_fixed outputs (static buffers)
    fixed_scores: torch.Tensor | None = None
    fixed_classes: torch.Tensor | None = None
    fixed_stats: torch.Tensor | None = None
    post_out: torch.Tensor | None = None  # packed detections + stats, the one D2H source
    depth_full: torch.Tensor | None = None  # (H, W) float32 depth at the received size
    graphs: dict[str, torch.cuda.CUDAGraph] = field(default_factory=dict)
    depth_valid: bool = False  # depth_low holds a prediction of this shape


class Engine:
    """MiDaS v2.1 small + Ultralytics YOLO on one frame at a time (see the module docstring).

    Args:
        config: what to build (DESIGN 4); thresholds may change later with
            :meth:`set_thresholds`.

    Raises:
        ConfigError: a value is out of range or the device does not exist.
        WeightsError: weights are missing (and random weights not allowed) or do not fit.
    """

    def __init__(self, config: EngineConfig, *, fixed_nms: bool = True) -> None:
        validate_engine_config(config)
        self.config = config
        self.runtime: Runtime = resolve_runtime(config.device, config.precision)
        rt = self.runtime
        channels_last = rt.is_cuda
        self._graphs_enabled = config.cuda_graphs and rt.is_cuda
        statuses: list[str] = []

        self._midas = None
        self._midas_pre = None
        if config.depth_enabled:
            midas, status = create_midas_small(
                config.depth_weights, allow_random_weights=config.allow_random_weights
            )
            midas, _ = fold_batchnorm(midas)  # the official layout stays for loading only
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            self._midas = midas.to(rt.device, rt.dtype, memory_format=memory_format).eval()
            self._midas_pre = MidasPreprocess(config.depth_input_size, rt.dtype, channels_last).to(
                rt.device
            )
            statuses.append(status)

        self._detector: YoloDetector | None = None
        class_names: tuple[str, ...] = ()
        if config.detector_enabled:
            self._detector = YoloDetector(
                config.detector_weights,
                device=rt.device,
                dtype=rt.dtype,
                image_size=config.detector_image_size,
                confidence=config.confidence,
                iou=config.iou,
                max_detections=config.max_detections,
                allow_random_weights=config.allow_random_weights,
                channels_last=channels_last,
            )
            class_names = tuple(self._detector.class_names)
            if config.classes:
                self._detector.set_thresholds(classes=self._detector.class_ids(config.classes))
            statuses.append(self._detector.weights_status)

        if rt.is_cuda:
            parallel = config.parallel_streams
            self._upload = torch.cuda.Stream(rt.device)
            self._depth_stream = torch.cuda.Stream(rt.device) if parallel else self._upload
            self._detect_stream = torch.cuda.Stream(rt.device) if parallel else self._upload
            self._pool = torch.cuda.graph_pool_handle() if self._graphs_enabled else None
        self._plans: dict[tuple[int, int, int, str], _Plan] = {}
        self._pinned_in: torch.Tensor | None = None
        self._registered: list[tuple[int, int]] = []  # (address, nbytes) page-locked by us
        self._pinned_depth: torch.Tensor | None = None
        self._pinned_dets: torch.Tensor | None = None
        self._pinned_exact: torch.Tensor | None = None
        # Fixed-shape NMS in the detect graph (no host sync) on CUDA; the CPU runs the exact
        # variable-size path, which is also the fallback when a frame's result is not exact.
        self._fixed_post = rt.is_cuda and fixed_nms
        self.fixed_post_frames = 0
        self.exact_post_frames = 0
        self._frame_index = 0
        self._closed = False
        self._watch = {
            name: Stopwatch(rt) for name in ("h2d", "prepare", "depth", "detect", "d2h")
        }
        self.info = EngineInfo(
            device=str(rt.device),
            device_name=rt.device_name,
            precision=rt.precision,
            class_names=class_names,
            weights="random" if "random" in statuses else "official",
        )
        _LOG.info(
            "engine ready on %s (%s, %s), depth %s, detector %s, streams %s, graphs %s",
            self.info.device,
            self.info.device_name,
            self.info.precision,
            "on" if self._midas is not None else "off",
            "on" if self._detector is not None else "off",
            "parallel" if rt.is_cuda and config.parallel_streams else "one",
            "on" if self._graphs_enabled else "off",
        )

    # ------------------------------------------------------------------------------ public
    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Change confidence, IoU and the class filter (names) at run time.

        Raises:
            ConfigError: a value is out of range or a class name is unknown.
        """
        if self._detector is None:
            return
        ids = self._detector.class_ids(thresholds.classes)
        self._detector.set_thresholds(
            confidence=thresholds.confidence, iou=thresholds.iou, classes=ids
        )

    def register_host_buffer(self, array: np.ndarray) -> bool:
        """Page-lock ``array``'s memory so frames and depth maps move by DMA, without staging.

        For long-lived buffers such as the worker's shared-memory slots: frames read from and
        depth maps written to registered memory skip a host-side copy of several MB. Does
        nothing on the CPU. Registrations end with :meth:`close`.

        Returns:
            Whether the memory is now registered.
        """
        if not self.runtime.is_cuda or array.nbytes == 0:
            return False
        address = array.__array_interface__["data"][0]
        if self._is_registered(address, array.nbytes):
            return True
        err = torch.cuda.cudart().cudaHostRegister(address, array.nbytes, 0)
        if int(err) != 0:
            _LOG.warning("cudaHostRegister of %d bytes failed (%s); staging copies", array.nbytes,
                         err)  # fmt: skip
            return False
        self._registered.append((address, array.nbytes))
        return True

    def _is_registered(self, address: int, nbytes: int) -> bool:
        return any(a <= address and address + nbytes <= a + n for a, n in self._registered)

    def _host_tensor(self, array: np.ndarray) -> torch.Tensor | None:
        """``array`` as a tensor if it lies in registered memory (DMA-able), else None."""
        if not self._registered or not array.flags.c_contiguous:
            return None
        address = array.__array_interface__["data"][0]
        if not self._is_registered(address, array.nbytes):
            return None
        return torch.from_numpy(array).reshape(-1)

    def memory_mb(self) -> tuple[float, float]:
        """(current, peak) GPU memory reserved by this process's allocator, in MB (0 on CPU)."""
        if not self.runtime.is_cuda:
            return 0.0, 0.0
        dev = self.runtime.device
        return (
            torch.cuda.memory_reserved(dev) / 2**20,
            torch.cuda.max_memory_reserved(dev) / 2**20,
        )

    def close(self) -> None:
        """Release the models, graphs and buffers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._plans.clear()
        self._midas = self._midas_pre = self._detector = None
        self._pinned_in = self._pinned_depth = self._pinned_dets = self._pinned_exact = None
        if self.runtime.is_cuda:
            torch.cuda.synchronize(self.runtime.device)
            for address, _ in self._registered:
                torch.cuda.cudart().cudaHostUnregister(address)
            self._registered.clear()
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
    ) -> EngineResult:
        """Run both networks on one frame as received.

        Args:
            frame: (H, W, C) or (H, W) uint8 pixels in ``encoding`` (rgb8, bgr8, mono8, rgba8,
                bgra8), or a 1-D uint8 array of compressed bytes (jpeg, png).
            encoding: the message's encoding or compressed format.
            want_depth: return the full-resolution depth map (else it is neither upsampled
                nor copied back; box depth is still computed).
            depth_out: optional (H, W) float32 array, or a flat float32 buffer of at least
                H * W elements, to receive the depth map (e.g. a shared-memory slot), saving
                a copy; the returned depth is then a view of it.

        Returns:
            Detections in the received image's pixels, the depth map (or None) and stage times.

        Raises:
            FrameError: the frame cannot be used; the engine stays usable.
            EngineError: the device failed (CUDA error, out of memory).
        """
        if self._closed:
            raise EngineError("the engine is closed")
        try:
            with torch.inference_mode():
                return self._process(frame, encoding, want_depth, depth_out)
        except (FrameError, ConfigError):
            raise
        except torch.cuda.OutOfMemoryError as err:
            raise EngineError(f"CUDA out of memory: {err}") from err
        except RuntimeError as err:
            raise EngineError(f"inference failed: {err}") from err

    # ------------------------------------------------------------------------------ steps
    def _process(
        self, frame: np.ndarray, encoding: str, want_depth: bool, depth_out: np.ndarray | None
    ) -> EngineResult:
        rt = self.runtime
        watch = self._watch
        self._frame_index += 1
        run_depth = self._midas is not None
        frame_skip = self.config.depth_frame_skip

        # --- upload (and decode) ---------------------------------------------------------
        stream = self._upload if rt.is_cuda else None
        with _on(stream):
            watch["h2d"].start(stream)
            if encoding in frames.COMPRESSED:
                rgb = frames.decode(self._upload_bytes(frame), encoding, rt.device)
                height, width = int(rgb.shape[0]), int(rgb.shape[1])
                plan = self._plan(height, width, 3, "rgb8")
                plan.frame.copy_(rgb)
            else:
                height, width, channels = _frame_shape(frame, encoding)
                plan = self._plan(height, width, channels, encoding)
                self._upload_pixels(frame, plan)
            watch["h2d"].stop(stream)

            # --- prepare: encoding, rotation, both networks' inputs -------------------------
            watch["prepare"].start(stream)
            self._run("prepare", plan, stream, self._prepare)
            watch["prepare"].stop(stream)
            prepared = torch.cuda.Event() if rt.is_cuda else None
            if prepared is not None:
                prepared.record(stream)

        # A shape's first frame always runs depth; later ones every depth.frame_skip-th frame.
        fresh = run_depth and (not plan.depth_valid or (self._frame_index - 1) % frame_skip == 0)

        # --- depth stream -------------------------------------------------------------------
        dstream = self._depth_stream if rt.is_cuda else None
        with _on(dstream):
            if prepared is not None:
                dstream.wait_event(prepared)
            watch["depth"].start(dstream)
            if fresh:
                self._run("depth", plan, dstream, self._depth)
                plan.depth_valid = True
            # Fusion needs only the network's map: let it start while the upsample runs.
            depth_done = torch.cuda.Event() if rt.is_cuda else None
            if depth_done is not None:
                depth_done.record(dstream)
            want_full = run_depth and want_depth
            if want_full:
                self._run("upsample", plan, dstream, self._upsample)
            watch["depth"].stop(dstream)
            depth_end = torch.cuda.Event() if rt.is_cuda else None
            if depth_end is not None:
                depth_end.record(dstream)

        # --- detect stream: network, NMS, box depth, packing ---------------------------------
        tstream = self._detect_stream if rt.is_cuda else None
        with _on(tstream):
            if prepared is not None:
                tstream.wait_event(prepared)
            watch["detect"].start(tstream)
            if self._detector is not None:
                self._run("detect", plan, tstream, self._detect)
            if depth_done is not None:
                tstream.wait_event(depth_done)
            if self._detector is None:
                packed = None
            elif self._fixed_post:
                self._run("fuse", plan, tstream, self._fuse)
                packed = plan.post_out
            else:
                packed = self._exact_packed(plan)
            watch["detect"].stop(tstream)

            # --- back to the host -------------------------------------------------------------
            if depth_end is not None:  # the depth map (and the depth stream's timing events)
                tstream.wait_event(depth_end)
            watch["d2h"].start(tstream)
            direct = None
            depth_full = plan.depth_full if want_full else None
            if depth_full is not None and depth_out is not None:
                depth_out = _depth_target(depth_out, tuple(depth_full.shape))
                direct = self._host_tensor(depth_out)
            if direct is not None:  # straight into registered memory (a shared-memory slot)
                direct.copy_(depth_full.view(-1), non_blocking=True)
                fetch_depth = None
            else:
                fetch_depth = self._download(depth_full, "_pinned_depth")
            fetch_dets = self._download(packed, "_pinned_dets")
            watch["d2h"].stop(tstream)
            self._wait(tstream)
            dets_host = fetch_dets()
            if packed is not None and self._fixed_post:
                dets_host = self._fixed_rows(dets_host, plan, tstream)
            else:
                dets_host = dets_host.reshape(-1, 7).copy()
        depth_host = None
        if depth_full is not None:
            if fetch_depth is None:
                depth_host = depth_out
            elif depth_out is not None:
                depth_out[...] = fetch_depth().reshape(depth_out.shape)
                depth_host = depth_out
            else:
                depth_host = fetch_depth().reshape(depth_full.shape).copy()

        times = StageTimes(
            preprocess_ms=watch["prepare"].elapsed_ms(),
            depth_ms=watch["depth"].elapsed_ms(),
            detect_ms=watch["detect"].elapsed_ms(),
            transfer_ms=watch["h2d"].elapsed_ms() + watch["d2h"].elapsed_ms(),
        )
        times.total_ms = (
            times.preprocess_ms + max(times.depth_ms, times.detect_ms) + times.transfer_ms
        )
        return EngineResult(
            detections=_unpack(dets_host),
            depth=depth_host,
            times=times,
            depth_fresh=fresh,
        )

    def _prepare(self, plan: _Plan) -> None:
        rgb = frames.to_rgb(plan.frame, plan.encoding)
        rotated = frames.rotate_image(rgb, self.config.rotation)
        if self._midas_pre is not None:
            _assign(plan, "midas_in", self._midas_pre(rotated))
        if self._detector is not None:
            _assign(plan, "yolo_in", self._detector.preprocess(rotated))

    def _depth(self, plan: _Plan) -> None:
        _assign(plan, "depth_low", self._midas(plan.midas_in)[0])

    def _upsample(self, plan: _Plan) -> None:
        full = upsample_depth(plan.depth_low[None], plan.rotated_hw, torch.float32)[0]
        _assign(plan, "depth_full", frames.unrotate_image(full, self.config.rotation).contiguous())

    def _detect(self, plan: _Plan) -> None:
        _assign(plan, "yolo_raw", self._detector.forward(plan.yolo_in))
        if self._fixed_post:
            fixed = self._detector.postprocess_fixed(plan.yolo_raw, plan.rotated_hw)
            _assign(plan, "fixed_boxes", fixed.boxes)
            _assign(plan, "fixed_scores", fixed.scores)
            _assign(plan, "fixed_classes", fixed.class_ids)
            stats = torch.stack((fixed.count, fixed.candidates, fixed.exact.long())).float()
            _assign(plan, "fixed_stats", stats)

    def _fuse(self, plan: _Plan) -> None:
        """Box depth, boxes back to received pixels, one flat float32 buffer for the D2H.

        Layout: ``max_detections`` rows of (x1, y1, x2, y2, score, class, depth), then the
        detection count, the candidate count and the exact flag (3 floats).
        """
        rows = self._pack(plan, plan.fixed_boxes, plan.fixed_scores, plan.fixed_classes)
        _assign(plan, "post_out", torch.cat((rows.reshape(-1), plan.fixed_stats)))

    def _pack(
        self, plan: _Plan, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor
    ) -> torch.Tensor:
        """(N, 7) float32 rows: boxes in received pixels, score, class, box depth."""
        if self._midas is not None:
            box_depth = box_depth_median_lowres(plan.depth_low, plan.rotated_hw, boxes)
        else:
            box_depth = torch.full_like(scores, float("nan"))
        boxes = frames.unrotate_boxes(boxes, self.config.rotation, plan.height, plan.width)
        return torch.cat(
            (
                boxes.float(),
                scores.float()[:, None],
                classes.float()[:, None],
                box_depth.float()[:, None],
            ),
            1,
        )

    def _exact_packed(self, plan: _Plan) -> torch.Tensor:
        """The detections by the variable-size path (host syncs), as flat packed rows."""
        dets = self._detector.postprocess(plan.yolo_raw, plan.rotated_hw)
        return self._pack(plan, dets.boxes, dets.scores, dets.class_ids).reshape(-1)

    def _fixed_rows(
        self, host: np.ndarray, plan: _Plan, stream: torch.cuda.Stream | None
    ) -> np.ndarray:
        """The real rows of the fixed-shape result, or the exact path's if it was not exact."""
        count, _candidates, exact = (float(v) for v in host[-3:])
        if exact:
            self.fixed_post_frames += 1
            return host[:-3].reshape(-1, 7)[: int(count)].copy()
        # Too many candidates or a long suppression chain: recompute exactly (rare).
        self.exact_post_frames += 1
        fetch = self._download(self._exact_packed(plan), "_pinned_exact")
        self._wait(stream)
        return fetch().reshape(-1, 7).copy()

    def _wait(self, stream: torch.cuda.Stream | None) -> None:
        """Block until everything queued on ``stream`` (and what it waited for) is done."""
        if stream is not None:
            done = torch.cuda.Event()
            done.record(stream)
            done.synchronize()

    def _run(
        self,
        name: str,
        plan: _Plan,
        stream: torch.cuda.Stream | None,
        step: Callable[[_Plan], None],
    ) -> None:
        """Run ``step`` for ``plan``: replay its graph, capture one, or run it eagerly."""
        graph = plan.graphs.get(name)
        if graph is not None:
            graph.replay()
            return
        step(plan)
        if not self._graphs_enabled or name in plan.graphs:
            return
        plan.graphs[name] = None  # type: ignore[assignment]  # one capture attempt per step
        try:
            for _ in range(_GRAPH_WARMUP):
                step(plan)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, stream=stream):
                step(plan)
            graph.replay()
            plan.graphs[name] = graph
        except RuntimeError as err:
            _LOG.warning("CUDA graph capture of %s failed, running it eagerly: %s", name, err)
            torch.cuda.synchronize(self.runtime.device)
            step(plan)

    # ------------------------------------------------------------------------------ buffers
    def _plan(self, height: int, width: int, channels: int, encoding: str) -> _Plan:
        key = (height, width, channels, encoding)
        plan = self._plans.get(key)
        if plan is None:
            shape = (height, width, channels) if channels > 1 else (height, width)
            rotated = (height, width) if self.config.rotation in (0, 180) else (width, height)
            plan = _Plan(
                height=height,
                width=width,
                channels=channels,
                encoding=encoding,
                frame=torch.empty(shape, dtype=torch.uint8, device=self.runtime.device),
                rotated_hw=rotated,
            )
            self._plans[key] = plan
            _LOG.info("new input shape %dx%d %s", width, height, encoding)
        return plan

    def _upload_pixels(self, frame: np.ndarray, plan: _Plan) -> None:
        src = torch.from_numpy(np.ascontiguousarray(frame))
        if not self.runtime.is_cuda:
            plan.frame.copy_(src.view(plan.frame.shape))
            return
        direct = self._host_tensor(frame)
        if direct is not None:
            plan.frame.view(-1).copy_(direct, non_blocking=True)
            return
        pinned = self._staging("_pinned_in", src.numel(), torch.uint8)
        pinned.copy_(src.reshape(-1))
        plan.frame.view(-1).copy_(pinned, non_blocking=True)

    def _upload_bytes(self, data: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(np.asarray(data, dtype=np.uint8).reshape(-1))
        # decode_jpeg on the GPU reads a CPU tensor: hand it a copy we own.
        return torch.from_numpy(array.copy())

    def _download(self, tensor: torch.Tensor | None, staging: str) -> Callable[[], np.ndarray]:
        """Start copying ``tensor`` to the host; the returned function reads it once synced.

        On CUDA the copy goes to a reused pinned buffer without blocking; the caller must
        synchronise before calling the returned function, whose array is only valid until the
        next frame (copy it to keep it).
        """
        if tensor is None:
            return lambda: np.zeros(0, np.float32)
        flat = tensor.reshape(-1)
        if not self.runtime.is_cuda:
            return flat.numpy
        pinned = self._staging(staging, flat.numel(), torch.float32)
        pinned.copy_(flat, non_blocking=True)
        return pinned.numpy

    def _staging(self, attr: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
        """A pinned host buffer of at least ``numel`` elements, grown as needed, reused."""
        buf = getattr(self, attr)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(max(numel, 1), dtype=dtype, pin_memory=True)
            setattr(self, attr, buf)
        return buf[:numel]


def _assign(plan: _Plan, name: str, value: torch.Tensor) -> None:
    """Write ``value`` into the plan's static buffer ``name`` (allocated on first use)."""
    current = getattr(plan, name)
    if current is None or current.shape != value.shape or current.dtype != value.dtype:
        setattr(plan, name, value.clone(memory_format=torch.preserve_format))
    else:
        current.copy_(value)


def _depth_target(out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` as the (H, W) float32 array to write the depth map into.

    ``out`` is either that array or a flat float32 buffer of at least H * W elements (a
    shared-memory slot, for compressed frames whose size is known only once decoded).
    """
    size = int(np.prod(shape))
    if out.dtype == np.float32 and out.ndim == 1 and out.size >= size:
        return out[:size].reshape(shape)
    if out.dtype != np.float32 or out.shape != shape:
        raise FrameError(
            f"depth_out must be float32 {shape} (or a flat float32 buffer of at least "
            f"{size} elements), got {out.dtype} {out.shape}"
        )
    return out


def _frame_shape(frame: np.ndarray, encoding: str) -> tuple[int, int, int]:
    channels = frames.RAW_CHANNELS.get(encoding)
    if channels is None:
        raise FrameError(
            f"unsupported encoding {encoding!r} (supported: "
            f"{', '.join((*frames.RAW_CHANNELS, *frames.COMPRESSED))})"
        )
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise FrameError(f"frame must be a uint8 numpy array, got {type(frame).__name__}")
    shape = frame.shape
    ok = (frame.ndim == 3 and shape[2] == channels) or (frame.ndim == 2 and channels == 1)
    if not ok:
        raise FrameError(f"{encoding} frame must be (H, W, {channels}), got shape {shape}")
    if shape[0] < 1 or shape[1] < 1:
        raise FrameError(f"frame has zero size: {shape}")
    return int(shape[0]), int(shape[1]), channels


def _unpack(packed: np.ndarray) -> Detections:
    return Detections(
        boxes=np.ascontiguousarray(packed[:, 0:4], dtype=np.float32),
        scores=np.ascontiguousarray(packed[:, 4], dtype=np.float32),
        class_ids=packed[:, 5].astype(np.int32),
        depth=np.ascontiguousarray(packed[:, 6], dtype=np.float32),
    )


class _on:  # noqa: N801 - reads like a function at the call site
    """``torch.cuda.stream(s)`` when ``s`` is a stream, nothing on the CPU."""

    def __init__(self, stream: torch.cuda.Stream | None) -> None:
        self._ctx = torch.cuda.stream(stream) if stream is not None else None

    def __enter__(self) -> None:
        if self._ctx is not None:
            self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
