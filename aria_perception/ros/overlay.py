"""The ``detections/overlay`` image: the frame with boxes, labels, track IDs, scores, box depth.

Drawn with OpenCV when it is importable (labels need it); without it the boxes are still drawn
with numpy, so the node does not depend on OpenCV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from aria_perception.records import Detections
from aria_perception.ros.image_codec import bgr8_image, opencv, to_bgr
from aria_perception.ros.messages import class_name

# Ultralytics' palette (BGR), so colours look familiar to YOLO users.
_PALETTE = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip


def label_text(name: str, score: float, depth: float, track_id: str = "") -> str:
    """The label drawn above a box: class, track ID, score and relative inverse depth if known."""
    text = f"{name} #{track_id} {score:.2f}" if track_id else f"{name} {score:.2f}"
    if math.isfinite(depth):
        text += f" d={depth:.2f}"
    return text


def draw_detections(
    canvas: np.ndarray,
    detections: Detections,
    class_names: Sequence[str],
    track_ids: Sequence[str] = (),
) -> None:
    """Draw boxes and labels of ``detections`` into ``canvas`` (H, W, 3 uint8 BGR) in place.

    ``track_ids`` holds each detection's track ID as text ("" = none; empty = no tracking).
    """
    height, width = canvas.shape[:2]
    if len(detections) == 0:
        return
    cv2 = opencv()
    thickness = max(1, round(min(height, width) / 400))
    font_scale = max(0.4, min(height, width) / 1200)
    boxes = np.clip(np.rint(detections.boxes), 0, [width - 1, height - 1, width - 1, height - 1])
    for (x1, y1, x2, y2), score, cid, depth, track in zip(
        boxes.astype(int).tolist(),
        detections.scores.tolist(),
        detections.class_ids.tolist(),
        detections.depth.tolist(),
        list(track_ids) or [""] * len(detections),
        strict=True,
    ):
        colour = _PALETTE[int(cid) % len(_PALETTE)]
        if cv2 is None:
            _rectangle(canvas, x1, y1, x2, y2, colour, thickness)
            continue
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_8)
        text = label_text(class_name(class_names, int(cid)), score, depth, track)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1  # inside when no room above
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(
            canvas,
            text,
            (x1 + 1, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )


def _rectangle(
    canvas: np.ndarray, x1: int, y1: int, x2: int, y2: int, colour: tuple, thickness: int
) -> None:
    """Box outline with numpy slicing (fallback without OpenCV)."""
    t = thickness
    canvas[y1 : y1 + t, x1 : x2 + 1] = colour
    canvas[max(y2 - t + 1, 0) : y2 + 1, x1 : x2 + 1] = colour
    canvas[y1 : y2 + 1, x1 : x1 + t] = colour
    canvas[y1 : y2 + 1, max(x2 - t + 1, 0) : x2 + 1] = colour


def overlay_image(
    pixels: np.ndarray,
    encoding: str,
    detections: Detections,
    class_names: Sequence[str],
    header: Any,
    track_ids: Sequence[str] = (),
) -> Any:
    """Build the bgr8 overlay ``sensor_msgs/Image`` for one frame.

    Args:
        pixels: the received frame (H, W[, C]) uint8 in ``encoding`` (not modified).
        encoding: one of the raw encodings.
        detections: what to draw (boxes in the received image's pixels).
        class_names: the detector's class names.
        header: the input frame's header, attached unchanged.
        track_ids: each detection's track ID as text ("" = none; empty = no tracking).
    """
    height, width = pixels.shape[:2]
    msg, canvas = bgr8_image(height, width, header)
    to_bgr(pixels, encoding, canvas)
    draw_detections(canvas, detections, class_names, track_ids)
    return msg


def decode_compressed_bgr(data: np.ndarray) -> np.ndarray | None:
    """Decode JPEG/PNG bytes to BGR for the overlay (None when OpenCV is missing or fails)."""
    cv2 = opencv()
    if cv2 is None:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image
