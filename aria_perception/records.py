"""Records shared by the node process and the worker process.

Only numpy and the standard library are imported here: the node side must never import torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

ROTATIONS = (0, 90, 180, 270)
#: Raw image encodings the pipeline takes, with their channel counts (DESIGN 3).
RAW_CHANNELS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}
#: Compressed formats the worker decodes.
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")
PRECISIONS = ("auto", "fp16", "fp32")


@dataclass(frozen=True)
class EngineConfig:
    """Everything the inference engine needs to build itself (DESIGN 4)."""

    device: str = "auto"
    precision: str = "auto"
    depth_enabled: bool = True
    depth_weights: str = ""
    depth_input_size: int = 256
    depth_frame_skip: int = 1
    detector_enabled: bool = True
    detector_weights: str = "yolov8n.pt"
    detector_image_size: int = 640
    confidence: float = 0.25
    iou: float = 0.45
    max_detections: int = 100
    classes: tuple[str, ...] = ()
    allow_random_weights: bool = False
    rotation: int = 0
    parallel_streams: bool = True
    cuda_graphs: bool = True

    def replace(self, **changes: object) -> EngineConfig:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Thresholds:
    """The detector settings that may change at run time."""

    confidence: float
    iou: float
    classes: tuple[str, ...] = ()


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
    """Per-stage times of one frame in milliseconds (GPU event time on CUDA)."""

    preprocess_ms: float = 0.0
    depth_ms: float = 0.0
    detect_ms: float = 0.0
    transfer_ms: float = 0.0
    total_ms: float = 0.0

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
