"""Ultralytics YOLO detector with our own on-device letterbox, NMS and box rescaling.

Only the network comes from ``ultralytics`` (its checkpoint loader and model classes). The
pre- and post-processing reproduce ``YOLO.predict`` of ultralytics 8.4 for one image on the
device: letterbox (:mod:`aria_perception.engine.letterbox`), best-class confidence filter,
class-aware NMS with Ultralytics' class offset, ``max_det``, ``ops.scale_boxes``.

Weights are found, in this order: ``detector.weights`` as an absolute path; relative to the
current directory; in the models directory (``$ARIA_PERCEPTION_MODELS`` if set, else
``~/.cache/aria_perception/models``). Nothing is ever downloaded: a missing file is a
:class:`~aria_perception.errors.WeightsError` unless random weights are allowed, then the model
is built from the matching Ultralytics config (``yolov8n.pt`` -> ``yolov8n.yaml``) with random
weights and COCO class names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import torch
import torchvision

from aria_perception.engine import nms
from aria_perception.engine.letterbox import Letterbox, LetterboxGeometry, scale_boxes
from aria_perception.errors import ConfigError, WeightsError

__all__ = [
    "DEFAULT_WEIGHTS",
    "MODELS_ENV",
    "DetectionTensors",
    "FIXED_CANDIDATES",
    "YoloDetector",
    "find_weights",
    "models_dir",
]

LOG = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "yolov8n.pt"
MODELS_ENV = "ARIA_PERCEPTION_MODELS"
# ultralytics.utils.nms.non_max_suppression: class offset of class-aware NMS and the cap on
# boxes entering NMS. Using the same offset (instead of torchvision's batched_nms) gives the
# very same IoU arithmetic as YOLO.predict and needs no per-class loop or torch.unique sync.
_MAX_WH = 7680
_MAX_NMS = 30000
#: Boxes entering the fixed-shape NMS of :meth:`YoloDetector.postprocess_fixed` at most; a
#: frame with more candidates takes the exact variable-size path.
FIXED_CANDIDATES = 1024
_HEADS = ("Detect", "v10Detect")  # plain detection heads: (N, 4 + nc, anchors) outputs
_STATUS_FILE = "official"
_STATUS_RANDOM = "random"


def _xyxy_with_class_offset(
    xywh: torch.Tensor, cls: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The boxes as xyxy, and shifted by class (class-aware NMS in one pass, as Ultralytics)."""
    half_wh = xywh[:, 2:] / 2
    boxes = torch.cat((xywh[:, :2] - half_wh, xywh[:, :2] + half_wh), 1)
    return boxes, boxes + (cls.to(boxes.dtype) * _MAX_WH).unsqueeze(1)


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


def models_dir() -> Path:
    """The directory searched for weights: ``$ARIA_PERCEPTION_MODELS`` or ~/.cache/...models."""
    env = os.environ.get(MODELS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "aria_perception" / "models"


def find_weights(
    weights: str | Path, search_dir: Path | None = None
) -> tuple[Path | None, list[Path]]:
    """Find a weights file without touching the network.

    Args:
        weights: Absolute path, path relative to the current directory, or a file name.
        search_dir: Models directory (default :func:`models_dir`).

    Returns:
        The existing file (absolute) or None, and every place looked at, in order.
    """
    path = Path(weights).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path.cwd() / path, (search_dir or models_dir()) / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve(), candidates
    return None, candidates


@dataclass(frozen=True)
class DetectionTensors:
    """Detections of one image as device tensors, best score first.

    Attributes:
        boxes: (N, 4) float32 x1, y1, x2, y2 in pixels of the input image.
        scores: (N,) float32 confidences.
        class_ids: (N,) int64 indices into the detector's ``class_names``.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _ultralytics_offline() -> None:
    """Keep ultralytics off the network; must run before its first import to take effect."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no connectivity checks, no auto-update
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # no pip install of missing modules


def _coco_names() -> tuple[str, ...]:
    from ultralytics.utils import ROOT, YAML

    names = YAML.load(ROOT / "cfg" / "datasets" / "coco.yaml")["names"]
    return tuple(names[i] for i in range(len(names)))


def _names_tuple(names: Any, nc: int) -> tuple[str, ...]:
    if isinstance(names, dict):
        return tuple(str(names.get(i, i)) for i in range(nc))
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return tuple(str(n) for n in names)
    return tuple(str(i) for i in range(nc))


def _num_classes(model: torch.nn.Module) -> int:
    head = model.model[-1] if hasattr(model, "model") else None
    nc = getattr(head, "nc", None)
    return int(nc) if nc else len(getattr(model, "names", ()))


def _load_checkpoint(path: Path) -> torch.nn.Module:
    """Load an Ultralytics ``.pt`` checkpoint with ultralytics' own loader, offline."""
    _ultralytics_offline()
    from ultralytics.nn.tasks import load_checkpoint
    from ultralytics.utils.checks import check_yolov5u_filename

    # The loader renames legacy YOLOv3/v5 names (yolov5s.pt -> yolov5su.pt) and then downloads
    # the renamed file when it is missing: refuse such names instead of going online.
    renamed = check_yolov5u_filename(str(path), verbose=False)
    if renamed != str(path):
        raise WeightsError(
            f"detector weights {path}: ultralytics treats this name as a legacy YOLOv3/v5 model "
            f"and would load {Path(renamed).name} instead; rename the file"
        )
    try:
        model, _ = load_checkpoint(str(path), device="cpu", fuse=False)
    except Exception as err:  # any loader failure becomes a WeightsError at this boundary
        raise WeightsError(f"cannot load detector weights {path}: {err}") from err
    return model


def _build_from_config(config: str) -> torch.nn.Module:
    """Build a randomly initialised model from an Ultralytics model config (``*.yaml``)."""
    _ultralytics_offline()
    from ultralytics.nn.tasks import DetectionModel

    try:
        return DetectionModel(cfg=config, verbose=False)
    except Exception as err:  # any build failure becomes a WeightsError at this boundary
        raise WeightsError(
            f"cannot build a detector from model config {config!r}: {err}. Use the name of a "
            f"config that ultralytics ships (e.g. yolov8n.yaml, yolo11n.yaml) or a path to one"
        ) from err


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

    Weights are resolved as the module docstring says. The network is fused (Conv+BN), in eval
    mode, on ``device`` in ``dtype``; with the same weights and image, :meth:`detect` gives the
    detections of ``YOLO.predict(image_bgr, conf, iou, max_det, classes, imgsz)``.

    The three stages can be run separately so a caller can capture the fixed-shape ones in a
    CUDA graph: :meth:`preprocess` (letterbox, fixed shapes per input size, no host sync),
    :meth:`forward` (the network only), :meth:`postprocess` (variable-size outputs; it syncs
    with the host twice: the candidate count and torchvision's NMS).

    Args:
        weights: ``*.pt`` checkpoint (path or file name) or ``*.yaml`` Ultralytics model config
            (random weights, requires ``allow_random_weights``).
        device: Torch device, e.g. ``"cuda:0"`` or ``"cpu"``.
        dtype: ``torch.float16``/``"fp16"`` or ``torch.float32``/``"fp32"``.
        image_size: Square network size (``imgsz``), a multiple of the model stride.
        confidence: Minimum score (strictly greater passes), 0..1.
        iou: NMS IoU threshold, 0..1.
        max_detections: Most detections returned per image.
        classes: Class ids to keep; empty or None keeps all.
        allow_random_weights: Build a random model from the matching config when the
            checkpoint is missing (logged loudly; :attr:`weights_status` says ``"random"``).
        channels_last: Run the network in channels-last memory format.
        search_dir: Models directory (default :func:`models_dir`).

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
        WeightsError: Weights missing (and random not allowed) or unusable.
        ConfigError: A setting is out of range.
    """

    def __init__(
        self,
        weights: str | Path = DEFAULT_WEIGHTS,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        image_size: int = 640,
        confidence: float = 0.25,
        iou: float = 0.45,
        max_detections: int = 100,
        classes: Sequence[int] | None = None,
        allow_random_weights: bool = False,
        channels_last: bool = False,
        search_dir: Path | None = None,
    ) -> None:
        model, names, status, path = self._obtain(weights, allow_random_weights, search_dir)
        self._setup(
            model,
            names,
            status,
            path,
            device=device,
            dtype=dtype,
            image_size=image_size,
            confidence=confidence,
            iou=iou,
            max_detections=max_detections,
            classes=classes,
            channels_last=channels_last,
        )

    @classmethod
    def from_module(
        cls,
        model: torch.nn.Module,
        class_names: Sequence[str] | None = None,
        weights_status: str = _STATUS_RANDOM,
        **settings: Any,
    ) -> YoloDetector:
        """Wrap an in-memory Ultralytics ``DetectionModel`` (it is fused and moved in place).

        Args:
            model: The detection model.
            class_names: Names by class id (default: the model's ``names``).
            weights_status: ``"official"`` or ``"random"``, reported as :attr:`weights_status`.
            **settings: The keyword settings of the constructor (device, dtype, ...).
        """
        self = cls.__new__(cls)
        nc = _num_classes(model)
        names = tuple(class_names) if class_names else _names_tuple(model.names, nc)
        self._setup(model, names, weights_status, None, **settings)
        return self

    # ---------------------------------------------------------------- building
    @staticmethod
    def _obtain(
        weights: str | Path, allow_random: bool, search_dir: Path | None
    ) -> tuple[torch.nn.Module, tuple[str, ...], str, Path | None]:
        text = str(weights).strip()
        if not text:
            raise ConfigError("detector.weights must name a .pt checkpoint or a .yaml config")
        suffix = Path(text).suffix.lower()
        if suffix in (".yaml", ".yml"):
            if not allow_random:
                raise WeightsError(
                    f"detector.weights {text!r} is a model config: it gives random weights, "
                    f"which need allow_random_weights: true"
                )
            return YoloDetector._random(text, reason=f"{text} is a model config")
        if suffix != ".pt":
            raise ConfigError(
                f"detector.weights must be an Ultralytics .pt checkpoint or .yaml config, "
                f"got {text!r}"
            )
        path, looked = find_weights(text, search_dir)
        if path is not None:
            model = _load_checkpoint(path)
            nc = _num_classes(model)
            return model, _names_tuple(getattr(model, "names", None), nc), _STATUS_FILE, path
        places = ", ".join(str(p) for p in looked)
        if not allow_random:
            raise WeightsError(
                f"detector weights {text!r} not found (looked in: {places}). Nothing is "
                f"downloaded here: run the `models` command (ros2 run aria_perception models) "
                f"on a machine with internet and copy the file to {search_dir or models_dir()} "
                f"(or set ${MODELS_ENV}), give an absolute path, or set "
                f"allow_random_weights: true to run with random weights"
            )
        config = Path(text).with_suffix(".yaml").name
        try:
            return YoloDetector._random(config, reason=f"{text} not found (looked in: {places})")
        except WeightsError as err:
            raise WeightsError(
                f"detector weights {text!r} not found (looked in: {places}), and no random "
                f"model can be built for that name: {err}"
            ) from err

    @staticmethod
    def _random(
        config: str, reason: str
    ) -> tuple[torch.nn.Module, tuple[str, ...], str, Path | None]:
        model = _build_from_config(config)
        nc = _num_classes(model)
        names = _coco_names() if nc == 80 else tuple(str(i) for i in range(nc))
        LOG.warning(
            "\n%s\n!! DETECTOR RUNS WITH RANDOM WEIGHTS (%s; built from %s).\n"
            "!! Detections are meaningless; fine for tests and benchmarks only.\n%s",
            "!" * 78,
            reason,
            config,
            "!" * 78,
        )
        return model, names, _STATUS_RANDOM, None

    def _setup(
        self,
        model: torch.nn.Module,
        names: tuple[str, ...],
        status: str,
        path: Path | None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        image_size: int = 640,
        confidence: float = 0.25,
        iou: float = 0.45,
        max_detections: int = 100,
        classes: Sequence[int] | None = None,
        channels_last: bool = False,
    ) -> None:
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
        self.weights_status = status
        self.weights_path = path
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
        self._head = model.model[-1]
        self._anchor_grids: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
        self.num_classes = int(self._head.nc)
        if len(names) != self.num_classes:
            raise WeightsError(
                f"the detector has {self.num_classes} classes but {len(names)} class names"
            )
        self.stride = max(int(model.stride.max()), 32)
        if not isinstance(image_size, int) or image_size <= 0 or image_size % self.stride:
            raise ConfigError(
                f"detector.image_size must be a positive multiple of the model stride "
                f"{self.stride}, got {image_size!r}"
            )
        if not isinstance(max_detections, int) or max_detections < 1:
            raise ConfigError(f"detector.max_detections must be >= 1, got {max_detections!r}")
        self.image_size = image_size
        self.max_detections = max_detections
        self.channels_last = channels_last
        self.letterbox = Letterbox(image_size, self.stride, self.dtype, channels_last)
        self.confidence = 0.25
        self.iou = 0.45
        self.classes: tuple[int, ...] = ()
        # The thresholds again as device tensors, changed in place: a CUDA graph of
        # postprocess_fixed reads the current values at every replay (the class mask is also
        # the class filter of postprocess).
        self._confidence_t = torch.zeros((), dtype=torch.float32, device=self.device)
        self._iou_t = torch.zeros((), dtype=torch.float32, device=self.device)
        self._allowed_t = torch.ones(self.num_classes, dtype=torch.bool, device=self.device)
        self.set_thresholds(confidence=confidence, iou=iou, classes=classes or ())

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
        conf = self.confidence if confidence is None else confidence
        iou_ = self.iou if iou is None else iou
        for name, value in (("detector.confidence", conf), ("detector.iou", iou_)):
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {value!r}")
        ids = self.classes if classes is None else tuple(classes)
        bad = [c for c in ids if not isinstance(c, Integral) or not 0 <= c < self.num_classes]
        if bad:
            raise ConfigError(
                f"detector.classes must be class ids in [0, {self.num_classes}), got {bad}"
            )
        ids = tuple(int(c) for c in ids)
        allowed = torch.ones(self.num_classes, dtype=torch.bool)
        if ids:
            allowed[:] = False
            allowed[list(ids)] = True
        if self.device.type == "cuda":
            # Frames in flight read the old values: let them finish before changing them.
            torch.cuda.synchronize(self.device)
        self._confidence_t.fill_(float(conf))
        self._iou_t.fill_(float(iou_))
        self._allowed_t.copy_(allowed)
        if self.device.type == "cuda":
            # The tensors are read on the caller's detection stream: make the writes complete
            # before any stream can use them (a rare, run-time settings change).
            torch.cuda.synchronize(self.device)
        self.confidence, self.iou, self.classes = float(conf), float(iou_), ids

    def class_ids(self, names: Sequence[str]) -> tuple[int, ...]:
        """Class ids of class names (for ``detector.classes`` given as names).

        Raises:
            ConfigError: A name is not one of :attr:`class_names`.
        """
        index = {name: i for i, name in enumerate(self.class_names)}
        unknown = [n for n in names if n not in index]
        if unknown:
            sample = ", ".join(self.class_names[:8])
            raise ConfigError(
                f"detector.classes: unknown class name(s) {unknown}; this model has "
                f"{self.num_classes} classes ({sample}, ...)"
            )
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
        # grid, so keep one grid per shape alive here and hand it back before each run.
        key = tuple(batch.shape)
        grid = self._anchor_grids.get(key)
        if grid is not None:
            self._head.anchors, self._head.strides, self._head.shape = grid
        out = self.model(batch)
        if grid is None:
            self._anchor_grids[key] = (self._head.anchors, self._head.strides, self._head.shape)
        return out[0] if isinstance(out, (tuple, list)) else out

    def _best_class(
        self, raw: torch.Tensor, geometry: LetterboxGeometry | tuple[int, int]
    ) -> tuple[LetterboxGeometry, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The geometry, the (anchors, 4 + nc) float predictions, best score and class each."""
        if not isinstance(geometry, LetterboxGeometry):
            geometry = self.geometry(*geometry)
        pred = raw[0].transpose(0, 1).float()
        scores, cls = pred[:, 4 : 4 + self.num_classes].max(1)
        return geometry, pred, scores, cls

    @torch.no_grad()
    def postprocess(
        self, raw: torch.Tensor, geometry: LetterboxGeometry | tuple[int, int]
    ) -> DetectionTensors:
        """Decode the raw output of one image into detections in input pixels.

        Mirrors ``non_max_suppression`` (best class only, class-aware, not agnostic) and
        ``scale_boxes`` of ultralytics 8.4.

        Args:
            raw: Output of :meth:`forward` for one image, (1, 4 + nc, anchors).
            geometry: The image's :class:`LetterboxGeometry` or its input (H, W).
        """
        geometry, pred, scores, cls = self._best_class(raw, geometry)
        keep = scores > self.confidence
        if self.classes:
            keep &= self._allowed_t[cls]
        idx = keep.nonzero().squeeze(1)  # host sync: the number of candidates
        if idx.shape[0] > _MAX_NMS:
            idx = idx[scores[idx].argsort(descending=True)[:_MAX_NMS]]
        scores, cls = scores[idx], cls[idx]
        boxes, offset_boxes = _xyxy_with_class_offset(pred[idx, :4], cls)
        kept = torchvision.ops.nms(offset_boxes, scores, self.iou)[: self.max_detections]
        boxes, scores, cls = boxes[kept], scores[kept], cls[kept]
        return DetectionTensors(scale_boxes(boxes, geometry), scores, cls)

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
        geometry, pred, scores, cls = self._best_class(raw, geometry)
        passed = (scores > self._confidence_t) & self._allowed_t[cls]
        k = min(candidates, pred.shape[0])
        index, valid, count_in = nms.select_top_candidates(scores, passed, k)
        scores, cls = scores[index], cls[index]
        boxes, offset_boxes = _xyxy_with_class_offset(pred[index, :4], cls)
        keep, converged = nms.greedy_nms_fixed(offset_boxes, valid, self._iou_t)
        slot, count = nms.compact_rows(keep, self.max_detections)
        rows = self.max_detections + 1
        out_boxes = boxes.new_zeros((rows, 4)).index_put_((slot,), boxes)
        out_scores = scores.new_zeros(rows).index_put_((slot,), scores)
        out_cls = cls.new_zeros(rows).index_put_((slot,), cls)
        m = self.max_detections
        return nms.FixedDetections(
            boxes=scale_boxes(out_boxes[:m], geometry),
            scores=out_scores[:m],
            class_ids=out_cls[:m],
            count=count,
            candidates=count_in,
            exact=converged & (count_in <= k),
        )

    def detect(self, image: torch.Tensor) -> DetectionTensors:
        """Preprocess, run and postprocess one (H, W, 3) uint8 RGB image tensor."""
        batch = self.preprocess(image)
        return self.postprocess(self.forward(batch), self.geometry(*image.shape[:2]))
