"""The engine's two networks on the device, and the fixed-shape steps that run them.

:class:`Networks` builds MiDaS small (BatchNorm folded) and the YOLO detector from an
:class:`~aria_perception.records.EngineConfig`, and runs each per-frame step on a
:class:`~aria_perception.engine.plan.ShapePlan`: every step reads the plan's static buffers and
writes its outputs into them with :func:`~aria_perception.engine.plan.into`, so that the
engine can capture it as a CUDA graph (:class:`~aria_perception.engine.plan.GraphRunner`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn.modules.module import register_module_forward_hook

from aria_perception.engine import frames
from aria_perception.engine.batch_plan import BatchPlan
from aria_perception.engine.compile import CompiledStep, compile_wanted, use_cache_dir
from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.fold import fold_batchnorm
from aria_perception.engine.fusion import box_depth_median_lowres
from aria_perception.engine.midas import MidasSmall
from aria_perception.engine.midas_weights import create_midas_small
from aria_perception.engine.plan import ShapePlan, into
from aria_perception.engine.preprocess import MidasPreprocess, upsample_depth
from aria_perception.engine.rectifier import remap
from aria_perception.engine.runtime import Runtime
from aria_perception.records import Detections, EngineConfig

__all__ = ["ROW_FLOATS", "Networks", "unpack_rows"]

#: Floats per packed detection row: x1, y1, x2, y2, score, class, box depth.
ROW_FLOATS = 7


class Networks:
    """MiDaS v2.1 small and the YOLO detector as ``config`` asks, on ``runtime``'s device.

    Both run in channels-last layout on CUDA.

    Args:
        config: what to build (checked by the caller).
        runtime: device and dtype.
        fixed_post: the YOLO step also runs the fixed-shape NMS (the ``fuse`` step packs it).

    Attributes:
        midas: the depth network, None when depth is off.
        midas_preprocess: its input preparation, None when depth is off.
        detector: the detector, None when detection is off.
        class_names: the detector's class names (empty without one).
        weights: ``"random"`` if either network has random weights, else ``"official"``.

    Raises:
        ConfigError: a value is out of range.
        WeightsError: weights are missing (and random weights not allowed), do not fit, or
            need arbitrary code to load (and ``detector.trust_pickle`` is off).
    """

    def __init__(self, config: EngineConfig, runtime: Runtime, *, fixed_post: bool) -> None:
        self.rotation = config.rotation
        self.fixed_post = fixed_post
        self.runtime = runtime
        self._progress_hook: Any = None
        channels_last = runtime.is_cuda
        statuses: list[str] = []
        self.midas: MidasSmall | None = None
        self.midas_preprocess: MidasPreprocess | None = None
        if config.depth_enabled:
            midas, status = create_midas_small(
                config.depth_weights, allow_random_weights=config.allow_random_weights
            )
            midas, _ = fold_batchnorm(midas)  # the official layout stays for loading only
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            self.midas = midas.to(runtime.device, runtime.dtype, memory_format=memory_format)
            self.midas.eval()
            self.midas_preprocess = MidasPreprocess(
                config.depth_input_size, runtime.dtype, channels_last
            ).to(runtime.device)
            statuses.append(status)

        self.detector: YoloDetector | None = None
        self.class_names: tuple[str, ...] = ()
        if config.detector_enabled:
            self.detector = YoloDetector.from_config(config, runtime, channels_last=channels_last)
            self.class_names = tuple(self.detector.class_names)
            statuses.append(self.detector.weights_status)
        self.weights = "random" if "random" in statuses else "official"
        # What the steps call: the networks and the fixed-shape work around them, or (with
        # worker.compile) the same through torch.compile; the graphs capture either.
        self.depth_network: Callable[..., Any] | None = self.midas
        self._midas_prep: Callable[..., Any] | None = self.midas_preprocess
        self._upsample: Callable[..., Any] = upsample_depth
        self._pack_rows: Callable[..., Any] = self._pack
        self._remap: Callable[..., Any] = remap
        self._yolo_prep: Callable[..., Any] | None = None
        self._yolo_post: Callable[..., Any] | None = None
        if self.detector is not None:
            self._yolo_prep = self.detector.preprocess
            self._yolo_post = self.detector.postprocess_fixed
        self.compiled: list[CompiledStep] = []
        if compile_wanted(config.compile, runtime.is_cuda):
            use_cache_dir(config.compile_cache_dir)
            self._compile(config.rectify)

    def watch_progress(self, tick: Callable[[], None]) -> None:
        """Call ``tick`` after every layer's forward on the CPU, each second of a compile on CUDA.

        The worker tells a slow frame from a hung one by this progress. On the CPU one network
        can take seconds on a loaded machine, so the count must move within a network: torch's
        process-wide module hook (not one per module, so the networks stay picklable and
        copyable; undone by :meth:`close`). On CUDA the graphs replay without Python and a
        frame's stages are fine-grained enough, but a step's compile (``worker.compile``) runs
        tens of seconds without a layer: the step ticks meanwhile. (On the CPU, where compiling
        is for tests, dynamo traces the hook and must not see the count move under it.)
        """
        if self.runtime.is_cuda:
            for step in self.compiled:  # a compile takes tens of seconds, no layer running
                step.ticker = tick
            return
        self._progress_hook = register_module_forward_hook(lambda *_: tick())

    def describe(self, config: EngineConfig) -> str:
        """What runs, for the log: "depth on, detector on, streams parallel, ..."."""
        cuda = self.runtime.is_cuda
        return (
            f"depth {'on' if self.midas is not None else 'off'}, "
            f"detector {'on' if self.detector is not None else 'off'}, "
            f"streams {'parallel' if cuda and config.parallel_streams else 'one'}, "
            f"graphs {'on' if cuda and config.cuda_graphs else 'off'}, "
            f"compile {'on' if self.compiled else 'off'}"
        )

    def _compile(self, rectify: bool) -> None:
        """Route every step through :class:`~aria_perception.engine.compile.CompiledStep`.

        Compiling only the two networks saves about 0.5 ms a frame on an H200; compiling the
        pre- and post-processing around them as well saves another 0.7 (docs/performance.md).
        """

        def step(fn: Callable[..., Any], name: str, **kw: Any) -> CompiledStep:
            compiled = CompiledStep(fn, name, **kw)
            self.compiled.append(compiled)
            return compiled

        if self.midas is not None:
            self.depth_network = step(self.midas, "MiDaS small")
            self._midas_prep = step(self.midas_preprocess, "MiDaS preprocessing")
            self._upsample = step(upsample_depth, "depth upsampling")
        if self.detector is not None:
            self.detector.network = step(self.detector.model, "YOLO")
            self._yolo_prep = step(self.detector.preprocess, "YOLO letterbox")
            self._yolo_post = step(self.detector.postprocess_fixed, "YOLO post-processing")
        if rectify:
            self._remap = step(remap, "rectification remap")
        self._pack_rows = step(
            self._pack,
            "box depth and packing",
            key=lambda plan, *_: (plan.height, plan.width, plan.rotated_hw, plan.unrotate),
        )

    def close(self) -> None:
        """Drop the networks."""
        if self._progress_hook is not None:
            self._progress_hook.remove()
            self._progress_hook = None
        self.midas = self.midas_preprocess = self.detector = self.depth_network = None
        self._midas_prep = self._yolo_prep = self._yolo_post = None
        self.compiled = []

    # Each step below writes its outputs into the plan's static buffers.
    def prepare(self, plan: ShapePlan) -> None:
        """Encoding to RGB, ``input.rotation`` or rectification, and both networks' inputs."""
        if plan.grid is not None:
            # One bilinear sample through the grid undistorts and turns the frame upright;
            # mono8 is sampled as one channel (the rectified output is mono8 too).
            mono = plan.encoding == "mono8"
            source = plan.frame if mono else frames.to_rgb(plan.frame, plan.encoding)
            source = source.unsqueeze(-1) if source.dim() == 2 else source
            plan.rect = into(plan.rect, self._remap(source, plan.grid))
            rotated = plan.rect.expand(-1, -1, 3) if mono else plan.rect
        else:
            rgb = frames.to_rgb(plan.frame, plan.encoding)
            rotated = frames.rotate_image(rgb, plan.unrotate)  # the plan's camera's rotation
        if self.midas_preprocess is not None:
            plan.midas_in = into(plan.midas_in, self._midas_prep(rotated))
        if self.detector is not None:
            height, width = plan.rotated_hw
            letterbox = self.detector.letterbox
            plan.pinned["letterbox"] = letterbox.resize_tables(height, width, rotated.device)
            plan.yolo_in = into(plan.yolo_in, self._yolo_prep(rotated))

    def depth(self, plan: ShapePlan) -> None:
        """MiDaS: the low-resolution depth map of the rotated frame."""
        plan.depth_low = into(plan.depth_low, self.depth_network(plan.midas_in)[0])

    def upsample(self, plan: ShapePlan) -> None:
        """The depth map at the received size and orientation (rectified: its own), float32."""
        full = self._upsample(plan.depth_low[None], plan.rotated_hw, torch.float32)[0]
        unrotated = frames.unrotate_image(full, plan.unrotate).contiguous()
        plan.depth_full = into(plan.depth_full, unrotated)

    def detect(self, plan: ShapePlan) -> None:
        """YOLO's network, and with ``fixed_post`` the fixed-shape post-processing."""
        plan.yolo_raw = into(plan.yolo_raw, self.detector.forward(plan.yolo_in))
        self.post(plan)

    def depth_batch(self, batch: BatchPlan) -> None:
        """MiDaS once over the batch's frames; each plan gets its own low-resolution map."""
        out = self.depth_network(torch.cat([plan.midas_in for plan in batch.plans]))
        for k, plan in enumerate(batch.plans):
            plan.depth_low = into(plan.depth_low, out[k])

    def detect_batch(self, batch: BatchPlan) -> None:
        """YOLO's network once over the batch's frames; each plan gets its own raw output.

        The post-processing stays per plan (:meth:`post`): each frame has its own geometry.
        """
        raw = self.detector.forward(torch.cat([plan.yolo_in for plan in batch.plans]))
        for k, plan in enumerate(batch.plans):
            plan.yolo_raw = into(plan.yolo_raw, raw[k : k + 1])

    def post(self, plan: ShapePlan) -> None:
        """With ``fixed_post``: the fixed-shape NMS of the plan's raw YOLO output."""
        if self.fixed_post:
            fixed = self._yolo_post(plan.yolo_raw, plan.rotated_hw)
            plan.fixed_boxes = into(plan.fixed_boxes, fixed.boxes)
            plan.fixed_scores = into(plan.fixed_scores, fixed.scores)
            plan.fixed_classes = into(plan.fixed_classes, fixed.class_ids)
            stats = torch.stack((fixed.count, fixed.candidates, fixed.exact.long())).float()
            plan.fixed_stats = into(plan.fixed_stats, stats)

    def fuse(self, plan: ShapePlan) -> None:
        """Box depth, boxes back to received pixels, one flat float32 buffer for the D2H.

        Layout of ``plan.packed``: ``max_detections`` rows of (x1, y1, x2, y2, score, class,
        depth), then the detection count, the candidate count and the exact flag (3 floats).
        """
        rows = self._pack_rows(plan, plan.fixed_boxes, plan.fixed_scores, plan.fixed_classes)
        plan.packed = into(plan.packed, torch.cat((rows.reshape(-1), plan.fixed_stats)))

    def exact_packed(self, plan: ShapePlan) -> torch.Tensor:
        """The detections by the variable-size path (host syncs), as flat packed rows."""
        dets = self.detector.postprocess(plan.yolo_raw, plan.rotated_hw)
        return self._pack(plan, dets.boxes, dets.scores, dets.class_ids).reshape(-1)

    def _pack(
        self, plan: ShapePlan, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor
    ) -> torch.Tensor:
        """(N, 7) float32 rows: boxes in output pixels, score, class, box depth."""
        if self.midas is not None:
            box_depth = box_depth_median_lowres(plan.depth_low, plan.rotated_hw, boxes)
        else:
            box_depth = torch.full_like(scores, float("nan"))
        boxes = frames.unrotate_boxes(boxes, plan.unrotate, plan.height, plan.width)
        return torch.cat(
            (
                boxes.float(),
                scores.float()[:, None],
                classes.float()[:, None],
                box_depth.float()[:, None],
            ),
            1,
        )


def unpack_rows(rows: np.ndarray) -> Detections:
    """(N, 7) packed rows (see :meth:`Networks.fuse`) as :class:`Detections`."""
    return Detections(
        boxes=np.ascontiguousarray(rows[:, 0:4], dtype=np.float32),
        scores=np.ascontiguousarray(rows[:, 4], dtype=np.float32),
        class_ids=rows[:, 5].astype(np.int32),
        depth=np.ascontiguousarray(rows[:, 6], dtype=np.float32),
    )
