"""Ultralytics YOLO detector with our own on-device letterbox, NMS and box rescaling.

Only the network comes from ``ultralytics`` (found, loaded or built by
:mod:`aria_perception.engine.yolo_weights`). The pre- and post-processing reproduce
``YOLO.predict`` of ultralytics 8.4 for one image on the device: letterbox
(:mod:`aria_perception.engine.letterbox`), then best-class confidence filter, class-aware NMS with
Ultralytics' class offset, ``max_det`` and ``ops.scale_boxes``
(:mod:`aria_perception.engine.yolo_post`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import torch

from aria_perception.engine import nms
from aria_perception.engine.letterbox import Letterbox, LetterboxGeometry
from aria_perception.engine.runtime import Runtime
from aria_perception.engine.yolo_post import (
    FIXED_CANDIDATES,
    DetectionTensors,
    DeviceThresholds,
    decode_exact,
    decode_fixed,
)
from aria_perception.engine.yolo_weights import (
    DEFAULT_WEIGHTS,
    STATUS_RANDOM,
    DetectorModel,
    class_names_of,
    load_detector_model,
)
from aria_perception.errors import ConfigError, WeightsError
from aria_perception.records import EngineConfig, Thresholds, check_class_names, check_integer

__all__ = ["YoloDetector"]

_DEFAULTS = EngineConfig()
_HEADS = ("Detect", "v10Detect")  # plain detection heads: (N, 4 + nc, anchors) outputs


class _ContiguousMaxPool(torch.nn.Module):
    """A max pool run in NCHW layout inside a channels-last network.

    PyTorch's channels-last max pool kernel is slow on small maps: the three 5x5 pools of
    YOLOv8's SPPF (20x20x128) took 0.13 ms a frame on the H100 against a few microseconds for
    the two layout copies and the NCHW kernel, and they sit on the detector's critical path.
    The values are the same (a max is exact).
    """

    def __init__(self, pool: torch.nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x.contiguous()).contiguous(memory_format=torch.channels_last)


def _pool_in_contiguous_layout(model: torch.nn.Module) -> None:
    """Wrap every ``MaxPool2d`` of ``model`` in :class:`_ContiguousMaxPool`, in place."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):
                setattr(module, name, _ContiguousMaxPool(child))


def _resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    table = {"fp16": torch.float16, "fp32": torch.float32}
    if isinstance(dtype, str):
        if dtype not in table:
            raise ConfigError(f"precision must be one of {sorted(table)}, got {dtype!r}")
        return table[dtype]
    if dtype not in (torch.float16, torch.float32):
        raise ConfigError(f"precision must be float16 or float32, got {dtype}")
    return dtype


class YoloDetector:
    """An Ultralytics YOLO detection network with on-device pre- and post-processing.

    Weights are resolved as :mod:`aria_perception.engine.yolo_weights` says. The network is
    fused (Conv+BN), in eval mode, on ``device`` in ``dtype``; with the same weights and image,
    :meth:`detect` gives the detections of ``YOLO.predict(image_bgr, conf, iou, max_det,
    classes, imgsz)``. Settings default to :class:`~aria_perception.records.EngineConfig`'s.

    The stages can be run separately so a caller can capture the fixed-shape ones in a CUDA
    graph: :meth:`preprocess` (letterbox, fixed shapes per input size, no host sync),
    :meth:`forward` (the network only), :meth:`postprocess_fixed` (fixed shapes, no host sync)
    or :meth:`postprocess` (variable-size outputs; it syncs with the host twice: the candidate
    count and torchvision's NMS).

    Args:
        weights: ``*.pt`` checkpoint (path or file name), ``*.yaml`` Ultralytics model config
            (random weights, requires ``allow_random_weights``), or an already loaded
            :class:`~aria_perception.engine.yolo_weights.DetectorModel` (used as it is; the
            three loading settings below are then ignored).
        device: Torch device, e.g. ``"cuda:0"`` or ``"cpu"``.
        dtype: ``torch.float16``/``"fp16"`` or ``torch.float32``/``"fp32"``.
        image_size: Square network size (``imgsz``), a multiple of the model stride.
        confidence: Minimum score (strictly greater passes), 0..1.
        iou: NMS IoU threshold, 0..1.
        max_detections: Most detections returned per image.
        classes: Class ids to keep; empty or None keeps all.
        allow_random_weights: Build a random model from the matching config when the
            checkpoint is missing (logged loudly; :attr:`weights_status` says ``"random"``).
        trust_pickle: Load a checkpoint that needs arbitrary code to unpickle
            (``detector.trust_pickle``); without it such a file is a WeightsError.
        channels_last: Run the network in channels-last memory format.
        search_dir: Models directory (default
            :func:`~aria_perception.engine.yolo_weights.models_dir`).

    Attributes:
        class_names: Names by class id (COCO names for random weights of an 80-class config).
        weights_status: ``"official"`` (loaded from a file) or ``"random"``.
        weights_path: The checkpoint file loaded, None for random weights.
        device: The torch device.
        dtype: The network and input dtype.
        stride: Largest model stride (32).
        image_size: Network size.
        num_classes: Number of classes.
        confidence: Current confidence threshold.
        iou: Current NMS IoU threshold.
        classes: Class ids kept (empty: all).
        max_detections: Most detections per image.
        model: The fused ``torch.nn.Module``.

    Raises:
        WeightsError: Weights missing (and random not allowed), unusable, or needing arbitrary
            code to load (and not trusted).
        ConfigError: A setting is out of range.
    """

    def __init__(
        self,
        weights: str | Path | DetectorModel = DEFAULT_WEIGHTS,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        image_size: int = _DEFAULTS.detector_image_size,
        confidence: float = _DEFAULTS.confidence,
        iou: float = _DEFAULTS.iou,
        max_detections: int = _DEFAULTS.max_detections,
        classes: Sequence[int] | None = None,
        allow_random_weights: bool = False,
        trust_pickle: bool = False,
        channels_last: bool = False,
        search_dir: Path | None = None,
    ) -> None:
        if isinstance(weights, DetectorModel):
            found = weights
        else:
            found = load_detector_model(
                weights, allow_random_weights, search_dir, trust_pickle=trust_pickle
            )
        model, names = found.model, found.class_names
        head = model.model[-1] if hasattr(model, "model") else None
        if type(head).__name__ not in _HEADS or getattr(model, "task", "detect") != "detect":
            raise WeightsError(
                f"detector weights must be an Ultralytics detection model (Detect head), got "
                f"{type(model).__name__} with head {type(head).__name__}"
            )
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            # "cuda" != "cuda:0" for torch.device equality; tensors always carry the index.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = _resolve_dtype(dtype)
        self.class_names = tuple(names)
        self.weights_status = found.status
        self.weights_path = found.path
        # YOLO.predict's default (nms=None) runs NMS-free heads (YOLO26/v10) through their
        # one-to-many branch and external NMS; do the same so one post-processing fits all.
        if getattr(head, "end2end", False):
            model.end2end = False
        model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
        model = model.to(self.device).eval()
        model = model.half() if self.dtype == torch.float16 else model.float()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            _pool_in_contiguous_layout(model)
        for param in model.parameters():
            param.requires_grad_(False)
        self.model = model
        # What forward() runs: the model, or a compiled wrapper of it (``worker.compile``).
        self.network: Callable[[torch.Tensor], Any] = model
        self._head = model.model[-1]
        self._anchor_grids: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
        self.num_classes = int(self._head.nc)
        if len(names) != self.num_classes:
            raise WeightsError(
                f"the detector has {self.num_classes} classes but {len(names)} class names"
            )
        self.stride = max(int(model.stride.max()), 32)
        check_integer(
            "detector.image_size", image_size, multiple=self.stride, why=" (the model stride)"
        )
        check_integer("detector.max_detections", max_detections, minimum=1)
        self.image_size = image_size
        self.max_detections = max_detections
        self.channels_last = channels_last
        self.letterbox = Letterbox(image_size, self.stride, self.dtype, channels_last)
        self.confidence, self.iou = confidence, iou
        self.classes: tuple[int, ...] = ()
        self._thresholds = DeviceThresholds(self.num_classes, self.device)
        self.set_thresholds(confidence=confidence, iou=iou, classes=classes or ())

    @classmethod
    def from_module(
        cls,
        model: torch.nn.Module,
        class_names: Sequence[str] | None = None,
        weights_status: str = STATUS_RANDOM,
        **settings: Any,
    ) -> YoloDetector:
        """Wrap an in-memory Ultralytics ``DetectionModel`` (it is fused and moved in place).

        Args:
            model: The detection model.
            class_names: Names by class id (default: the model's ``names``).
            weights_status: ``"official"`` or ``"random"``, reported as :attr:`weights_status`.
            **settings: The keyword settings of the constructor (device, dtype, ...).
        """
        names = tuple(class_names) if class_names else class_names_of(model)
        return cls(DetectorModel(model, names, weights_status, None), **settings)

    @classmethod
    def from_config(
        cls, config: EngineConfig, runtime: Runtime, *, channels_last: bool = False
    ) -> YoloDetector:
        """The detector ``config`` describes, on ``runtime``'s device and dtype.

        Applies the ``detector.*`` settings, ``allow_random_weights`` and ``detector.classes``
        (names, turned into this model's class ids).

        Args:
            config: The engine settings (checked by the caller).
            runtime: Device and dtype.
            channels_last: Run the network in channels-last memory format.

        Raises:
            WeightsError: As the constructor.
            ConfigError: A setting is out of range, or a class name is not one of the model's.
        """
        detector = cls(
            config.detector_weights,
            device=runtime.device,
            dtype=runtime.dtype,
            image_size=config.detector_image_size,
            confidence=config.confidence,
            iou=config.iou,
            max_detections=config.max_detections,
            allow_random_weights=config.allow_random_weights,
            trust_pickle=config.detector_trust_pickle,
            channels_last=channels_last,
        )
        if config.classes:
            detector.set_thresholds(classes=detector.class_ids(config.classes))
        return detector

    # ---------------------------------------------------------------- settings
    def set_thresholds(
        self,
        confidence: float | None = None,
        iou: float | None = None,
        classes: Sequence[int] | None = None,
    ) -> None:
        """Change thresholds at run time; None leaves a setting as it is.

        Args:
            confidence: Minimum score, 0..1.
            iou: NMS IoU threshold, 0..1.
            classes: Class ids to keep; an empty sequence keeps all.

        Raises:
            ConfigError: A value is out of range (nothing is changed then).
        """
        checked = Thresholds(
            self.confidence if confidence is None else confidence,
            self.iou if iou is None else iou,
        )
        ids = self.classes if classes is None else tuple(classes)
        bad = [c for c in ids if not isinstance(c, Integral) or not 0 <= c < self.num_classes]
        if bad:
            raise ConfigError(
                f"detector.classes must be class ids in [0, {self.num_classes}), got {bad}"
            )
        ids = tuple(int(c) for c in ids)
        self._thresholds.write(checked.confidence, checked.iou, ids)
        self.confidence, self.iou, self.classes = (
            float(checked.confidence),
            float(checked.iou),
            ids,
        )

    def class_ids(self, names: Sequence[str]) -> tuple[int, ...]:
        """Class ids of class names (for ``detector.classes`` given as names).

        Raises:
            ConfigError: A name is not one of :attr:`class_names`.
        """
        check_class_names(names, self.class_names)
        index = {name: i for i, name in enumerate(self.class_names)}
        return tuple(index[n] for n in names)

    # ---------------------------------------------------------------- stages
    def geometry(self, height: int, width: int) -> LetterboxGeometry:
        """Letterbox geometry of an input size (network input shape and box back-mapping)."""
        return self.letterbox.geometry(height, width)

    def input_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Shape of the network input :meth:`preprocess` makes for an input size."""
        hp, wp = self.geometry(height, width).padded_hw
        return (1, 3, hp, wp)

    @torch.no_grad()
    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """Letterbox an (H, W, 3) uint8 RGB device tensor to the (1, 3, Hp, Wp) network input.

        Fixed shapes per input size and no host sync (graph-capturable).
        """
        if image.device != self.device:
            image = image.to(self.device, non_blocking=True)
        return self.letterbox(image)

    @torch.no_grad()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the network on a preprocessed batch; returns the raw (N, 4 + nc, anchors) output.

        Boxes in the output are xywh in network-input pixels, scores are per-class sigmoid.
        Fixed output shape per input shape (graph-capturable).
        """
        # Ultralytics' head rebuilds its anchor grid whenever the input shape changes and drops
        # the old one. A CUDA graph captured for another shape still points at that freed
        # grid, so keep one grid per shape alive here and hand it back before each run. The
        # letterbox gives at most 2 * image_size / stride - 1 shapes (one side is image_size,
        # the other a multiple of the stride), so this holds a few MB at most.
        key = tuple(batch.shape)
        grid = self._anchor_grids.get(key)
        if grid is not None:
            self._head.anchors, self._head.strides, self._head.shape = grid
        out = self.network(batch)
        if grid is None:
            self._anchor_grids[key] = (self._head.anchors, self._head.strides, self._head.shape)
        return out[0] if isinstance(out, (tuple, list)) else out

    def _geometry_of(self, geometry: LetterboxGeometry | tuple[int, int]) -> LetterboxGeometry:
        return geometry if isinstance(geometry, LetterboxGeometry) else self.geometry(*geometry)

    @torch.no_grad()
    def postprocess(
        self, raw: torch.Tensor, geometry: LetterboxGeometry | tuple[int, int]
    ) -> DetectionTensors:
        """Decode the raw output of one image into detections in input pixels.

        Mirrors ``non_max_suppression`` (best class only, class-aware, not agnostic) and
        ``scale_boxes`` of ultralytics 8.4 (:func:`.yolo_post.decode_exact`).

        Args:
            raw: Output of :meth:`forward` for one image, (1, 4 + nc, anchors).
            geometry: The image's :class:`LetterboxGeometry` or its input (H, W).
        """
        return decode_exact(
            raw,
            self._geometry_of(geometry),
            self._thresholds,
            confidence=self.confidence,
            iou=self.iou,
            filter_classes=bool(self.classes),
            max_detections=self.max_detections,
        )

    @torch.no_grad()
    def postprocess_fixed(
        self,
        raw: torch.Tensor,
        geometry: LetterboxGeometry | tuple[int, int],
        candidates: int = FIXED_CANDIDATES,
    ) -> nms.FixedDetections:
        """:meth:`postprocess` with fixed shapes and no host sync (CUDA-graph capturable).

        The thresholds are read from device tensors that :meth:`set_thresholds` updates in
        place, so a captured graph follows them. The result is :meth:`postprocess`'s (padded to
        ``max_detections`` rows) whenever its ``exact`` flag is true: at most ``candidates``
        boxes passed the filter and the NMS iteration converged (:mod:`.nms`); otherwise call
        :meth:`postprocess`.

        Args:
            raw: Output of :meth:`forward` for one image, (1, 4 + nc, anchors).
            geometry: The image's :class:`LetterboxGeometry` or its input (H, W).
            candidates: Boxes entering NMS at most (capped at the number of anchors).
        """
        return decode_fixed(
            raw,
            self._geometry_of(geometry),
            self._thresholds,
            max_detections=self.max_detections,
            candidates=candidates,
        )

    def detect(self, image: torch.Tensor) -> DetectionTensors:
        """Preprocess, run and postprocess one (H, W, 3) uint8 RGB image tensor."""
        batch = self.preprocess(image)
        return self.postprocess(self.forward(batch), self.geometry(*image.shape[:2]))
