"""Records shared by the node process and the worker process.

Only numpy and the standard library are imported here: the node side must never import torch.
The frame checks live in :mod:`aria_perception.frame_checks` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from aria_perception.errors import ConfigError
from aria_perception.frame_checks import (
    COMPRESSED_FORMATS,
    MAX_FRAME_PIXELS,
    PNG_SIGNATURE,
    RAW_CHANNELS,
    check_encoded_frame,
    check_frame_size,
    check_png,
    check_raw_frame,
    raw_channels,
)
from aria_perception.optics.pinhole import Pinhole

__all__ = [
    "COMPILE_MODES",
    "COMPRESSED_FORMATS",
    "MAX_FRAME_PIXELS",
    "PNG_SIGNATURE",
    "PRECISIONS",
    "RAW_CHANNELS",
    "ROTATIONS",
    "BatchItem",
    "Detections",
    "EngineConfig",
    "EngineInfo",
    "EngineResult",
    "StageTimes",
    "Thresholds",
    "WorkerState",
    "check_class_names",
    "check_encoded_frame",
    "check_frame_size",
    "check_integer",
    "check_png",
    "check_raw_frame",
    "raw_channels",
    "validate_engine_config",
]

ROTATIONS = (0, 90, 180, 270)
PRECISIONS = ("auto", "fp16", "fp32")
#: ``worker.compile``: torch.compile both networks (auto: on CUDA only).
COMPILE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class EngineConfig:
    """Everything the inference engine needs to build itself.

    The defaults here are the package's defaults: the node's parameters, the worker and the
    benchmarks read them from this class instead of re-typing them.
    """

    device: str = "auto"
    precision: str = "auto"
    depth_enabled: bool = True
    depth_weights: str = ""
    depth_input_size: int = 256
    depth_frame_skip: int = 1
    detector_enabled: bool = True
    detector_weights: str = "yolov8n.pt"
    detector_trust_pickle: bool = False
    detector_image_size: int = 640
    confidence: float = 0.25
    iou: float = 0.45
    max_detections: int = 100
    classes: tuple[str, ...] = ()
    allow_random_weights: bool = False
    rotation: int = 0
    rectify: bool = False
    # Aria RGB (1408x1408 Fisheye624): 1024x1024 at 500 px spans 91 degrees across and 111 on
    # the diagonal, so every corner stays inside the 110-degree lens's image circle.
    rectify_width: int = 1024
    rectify_height: int = 1024
    rectify_focal_px: float = 500.0
    parallel_streams: bool = True
    cuda_graphs: bool = True
    compile: str = "auto"
    #: Where inductor keeps compiled kernels between starts ("" = the user's cache).
    compile_cache_dir: str = ""
    #: ``worker.batch_cameras``: frames of several cameras waiting together in one worker run
    #: through the networks as one batch (per network input shape).
    batch_cameras: bool = False

    def replace(self, **changes: object) -> EngineConfig:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Thresholds:
    """The detector settings that may change at run time.

    Raises:
        ConfigError: ``confidence`` or ``iou`` is not a number within [0, 1], or ``classes`` is
            not a sequence of names (checked on construction: a ``Thresholds`` is always valid).
    """

    confidence: float
    iou: float
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value in (("detector.confidence", self.confidence), ("detector.iou", self.iou)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number within [0, 1], got {value!r}")
            if not 0.0 <= float(value) <= 1.0:  # also refuses NaN
                raise ConfigError(f"{name} must be within [0, 1], got {value!r}")
        if isinstance(self.classes, str) or not all(isinstance(c, str) for c in self.classes):
            raise ConfigError(f"detector.classes must be a list of names, got {self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes))

    def check_classes(self, class_names: Sequence[str]) -> None:
        """Raise ConfigError for a name in ``classes`` that is not one of ``class_names``."""
        check_class_names(self.classes, class_names)


def check_class_names(classes: Sequence[str], class_names: Sequence[str]) -> None:
    """The rule of ``detector.classes``: every name is a class of the loaded detector.

    Raises:
        ConfigError: naming the unknown classes and a few of the model's.
    """
    known = set(class_names)
    unknown = [c for c in classes if c not in known]
    if unknown:
        sample = ", ".join(class_names[:8]) + (", ..." if len(class_names) > 8 else "")
        raise ConfigError(
            f"detector.classes: unknown class name(s) {unknown}; this model has "
            f"{len(class_names)} classes ({sample})"
        )


def check_integer(
    name: str, value: object, *, minimum: int = 1, multiple: int = 1, why: str = ""
) -> None:
    """The rule of an integer setting: an int (not a bool), at least ``minimum``.

    With ``multiple`` above 1 the rule is "a positive multiple of ``multiple``" instead.

    Args:
        name: the parameter, named in the message.
        value: the value to check.
        minimum: the smallest value allowed.
        multiple: the value must be a multiple of this (1: any integer).
        why: said after the multiple, e.g. " (the model stride)".

    Raises:
        ConfigError: naming the parameter, the rule and the value.
    """
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if multiple > 1:
        if not (is_int and value >= max(minimum, multiple) and value % multiple == 0):
            raise ConfigError(
                f"{name} must be a positive multiple of {multiple}{why}, got {value!r}"
            )
    elif not (is_int and value >= minimum):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def validate_engine_config(config: EngineConfig) -> None:
    """The checks of an :class:`EngineConfig` that need no model; ConfigError names the parameter.

    Confidence, IoU and class names follow the rules of :class:`Thresholds` (the same rules as a
    run-time change); what needs the model (class names known, image size a multiple of the
    model stride) is checked when the model is built.

    Raises:
        ConfigError: the first value out of range.
    """
    if not (config.depth_enabled or config.detector_enabled):
        raise ConfigError("depth.enabled and detector.enabled are both false: nothing to compute")
    check_integer("depth.input_size", config.depth_input_size, multiple=32)
    check_integer("depth.frame_skip", config.depth_frame_skip, minimum=1)
    check_integer("detector.image_size", config.detector_image_size, multiple=32)
    check_integer("detector.max_detections", config.max_detections, minimum=1)
    if config.rotation not in ROTATIONS:
        raise ConfigError(f"input.rotation must be one of {ROTATIONS}, got {config.rotation!r}")
    Pinhole(config.rectify_width, config.rectify_height, config.rectify_focal_px)
    if config.compile not in COMPILE_MODES:
        raise ConfigError(f"worker.compile must be one of {COMPILE_MODES}, got {config.compile!r}")
    Thresholds(config.confidence, config.iou, config.classes)


@dataclass
class Detections:
    """Detections of one frame; boxes are xyxy pixels of the image as received."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32
    depth: np.ndarray  # (N,) float32 median relative inverse depth in the box, NaN if none

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int32),
            depth=np.zeros((0,), np.float32),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class StageTimes:
    """Per-stage times of one frame in milliseconds (GPU event time on CUDA).

    ``host_ms`` is the host's own time in the engine call: the call's wall time less its waits
    for the device (queueing the frame's work, reading its results). On the CPU, where nothing
    is waited for, it is the call's wall time.

    A stage that was not timed is NaN: a frame run as one CUDA graph has only ``total_ms`` and
    ``host_ms`` (:mod:`aria_perception.engine.frame_graph`). Medians skip NaNs.
    """

    preprocess_ms: float = 0.0
    depth_ms: float = 0.0
    detect_ms: float = 0.0
    transfer_ms: float = 0.0
    total_ms: float = 0.0
    host_ms: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """The times as a plain dict."""
        return dataclasses.asdict(self)


@dataclass
class EngineResult:
    """What the engine returns for one frame."""

    detections: Detections
    depth: np.ndarray | None  # (H, W) float32 at the received resolution, or None
    times: StageTimes = field(default_factory=StageTimes)
    depth_fresh: bool = True  # False when depth.frame_skip reused an earlier map
    # With input.rectify, when asked for: the rectified frame the networks saw, (H', W', C)
    # uint8 (C = 1 for mono8 input, else 3 RGB); detections and depth are in its pixels.
    rectified: np.ndarray | None = None


@dataclass
class BatchItem:
    """One camera's frame in a batched engine call: the arguments of ``Engine.process``.

    ``process_batch(items)`` takes a sequence of these and returns, in the same order, an
    :class:`EngineResult` per item, or the :class:`~aria_perception.errors.FrameError` of an
    item whose frame cannot be used (the other items still run). The engine's current
    thresholds apply to every item.
    """

    frame: np.ndarray
    encoding: str = "rgb8"
    want_depth: bool = True
    depth_out: np.ndarray | None = None
    rect_out: np.ndarray | None = None
    camera: str = ""
    rotation: int | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What the engine tells its owner once it is built."""

    device: str  # e.g. "cuda:0" or "cpu"
    device_name: str  # GPU name or "cpu"
    precision: str  # "fp16" or "fp32"
    class_names: tuple[str, ...]
    weights: str  # "official" or "random" (random if either network is random)


class WorkerState(IntEnum):
    """Life of the inference worker as the supervisor sees it."""

    STOPPED = 0
    STARTING = 1
    READY = 2
    RESTARTING = 3
    FAILED = 4
