"""YOLO post-processing on the device: best class, confidence and class filter, NMS, rescaling.

Reproduces ``non_max_suppression`` (best class only, class-aware, not agnostic, ``max_det``)
and ``ops.scale_boxes`` of ultralytics 8.4 for one image, in two forms: :func:`decode_exact`
(variable-size outputs; it syncs with the host twice: the candidate count and torchvision's
NMS) and :func:`decode_fixed` (fixed shapes, no host sync, CUDA-graph capturable; exact
whenever its ``exact`` flag says so, see :mod:`aria_perception.engine.nms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchvision

from aria_perception.engine import nms
from aria_perception.engine.letterbox import LetterboxGeometry, scale_boxes

__all__ = [
    "FIXED_CANDIDATES",
    "DetectionTensors",
    "DeviceThresholds",
    "decode_exact",
    "decode_fixed",
]

# ultralytics.utils.nms.non_max_suppression: class offset of class-aware NMS and the cap on
# boxes entering NMS. Using the same offset (instead of torchvision's batched_nms) gives the
# very same IoU arithmetic as YOLO.predict and needs no per-class loop or torch.unique sync.
_MAX_WH = 7680
_MAX_NMS = 30000
#: Boxes entering the fixed-shape NMS of :func:`decode_fixed` at most; a frame with more
#: candidates takes the exact variable-size path.
FIXED_CANDIDATES = 1024


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


class DeviceThresholds:
    """Confidence, IoU and the class mask as device tensors, changed in place.

    A CUDA graph of :func:`decode_fixed` reads the current values at every replay; the class
    mask is also the class filter of :func:`decode_exact`.

    Args:
        num_classes: classes of the detector (length of the mask).
        device: where the tensors live.
    """

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.device = device
        self.confidence = torch.zeros((), dtype=torch.float32, device=device)
        self.iou = torch.zeros((), dtype=torch.float32, device=device)
        self.allowed = torch.ones(num_classes, dtype=torch.bool, device=device)

    def write(self, confidence: float, iou: float, class_ids: Sequence[int]) -> None:
        """Store new values (already checked); an empty ``class_ids`` allows every class."""
        allowed = torch.ones(self.allowed.shape[0], dtype=torch.bool)
        if class_ids:
            allowed[:] = False
            allowed[list(class_ids)] = True
        if self.device.type == "cuda":
            # Frames in flight read the old values: let them finish before changing them.
            torch.cuda.synchronize(self.device)
        self.confidence.fill_(float(confidence))
        self.iou.fill_(float(iou))
        self.allowed.copy_(allowed)
        if self.device.type == "cuda":
            # The tensors are read on the caller's detection stream: make the writes complete
            # before any stream can use them (a rare, run-time settings change).
            torch.cuda.synchronize(self.device)


def _xyxy_with_class_offset(
    xywh: torch.Tensor, cls: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The boxes as xyxy, and shifted by class (class-aware NMS in one pass, as Ultralytics)."""
    half_wh = xywh[:, 2:] / 2
    boxes = torch.cat((xywh[:, :2] - half_wh, xywh[:, :2] + half_wh), 1)
    return boxes, boxes + (cls.to(boxes.dtype) * _MAX_WH).unsqueeze(1)


def _best_class(
    raw: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (anchors, 4 + nc) float predictions, and the best score and class of each."""
    pred = raw[0].transpose(0, 1).float()
    scores, cls = pred[:, 4 : 4 + num_classes].max(1)
    return pred, scores, cls


@torch.no_grad()
def decode_exact(
    raw: torch.Tensor,
    geometry: LetterboxGeometry,
    thresholds: DeviceThresholds,
    *,
    confidence: float,
    iou: float,
    filter_classes: bool,
    max_detections: int,
) -> DetectionTensors:
    """Decode the raw output of one image into detections in input pixels (variable size).

    Args:
        raw: the network's output for one image, (1, 4 + nc, anchors).
        geometry: the image's letterbox.
        thresholds: the device class mask (read when ``filter_classes``).
        confidence: minimum score (strictly greater passes).
        iou: NMS IoU threshold.
        filter_classes: keep only the classes the mask allows.
        max_detections: most detections returned.
    """
    pred, scores, cls = _best_class(raw, thresholds.allowed.shape[0])
    keep = scores > confidence
    if filter_classes:
        keep &= thresholds.allowed[cls]
    idx = keep.nonzero().squeeze(1)  # host sync: the number of candidates
    if idx.shape[0] > _MAX_NMS:
        idx = idx[scores[idx].argsort(descending=True)[:_MAX_NMS]]
    scores, cls = scores[idx], cls[idx]
    boxes, offset_boxes = _xyxy_with_class_offset(pred[idx, :4], cls)
    kept = torchvision.ops.nms(offset_boxes, scores, iou)[:max_detections]
    boxes, scores, cls = boxes[kept], scores[kept], cls[kept]
    return DetectionTensors(scale_boxes(boxes, geometry), scores, cls)


@torch.no_grad()
def decode_fixed(
    raw: torch.Tensor,
    geometry: LetterboxGeometry,
    thresholds: DeviceThresholds,
    *,
    max_detections: int,
    candidates: int = FIXED_CANDIDATES,
) -> nms.FixedDetections:
    """:func:`decode_exact` with fixed shapes and no host sync (CUDA-graph capturable).

    The thresholds are read from ``thresholds``' device tensors. The result is
    :func:`decode_exact`'s (padded to ``max_detections`` rows) whenever its ``exact`` flag is
    true: at most ``candidates`` boxes passed the filter and the NMS iteration converged.

    Args:
        raw: the network's output for one image, (1, 4 + nc, anchors).
        geometry: the image's letterbox.
        thresholds: confidence, IoU and class mask on the device.
        max_detections: rows of the result.
        candidates: boxes entering NMS at most (capped at the number of anchors).
    """
    pred, scores, cls = _best_class(raw, thresholds.allowed.shape[0])
    passed = (scores > thresholds.confidence) & thresholds.allowed[cls]
    k = min(candidates, pred.shape[0])
    index, valid, count_in = nms.select_top_candidates(scores, passed, k)
    scores, cls = scores[index], cls[index]
    boxes, offset_boxes = _xyxy_with_class_offset(pred[index, :4], cls)
    keep, converged = nms.greedy_nms_fixed(offset_boxes, valid, thresholds.iou)
    slot, count = nms.compact_rows(keep, max_detections)
    rows = max_detections + 1
    out_boxes = boxes.new_zeros((rows, 4)).index_put_((slot,), boxes)
    out_scores = scores.new_zeros(rows).index_put_((slot,), scores)
    out_cls = cls.new_zeros(rows).index_put_((slot,), cls)
    m = max_detections
    return nms.FixedDetections(
        boxes=scale_boxes(out_boxes[:m], geometry),
        scores=out_scores[:m],
        class_ids=out_cls[:m],
        count=count,
        candidates=count_in,
        exact=converged & (count_in <= k),
    )
