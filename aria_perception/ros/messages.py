"""Engine results to ROS messages: Detection2DArray, LabelInfo and the output CameraInfo."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from aria_perception.records import Detections


def class_name(class_names: Sequence[str], class_id: int) -> str:
    """The name of ``class_id``, or its number as text if the model has no name for it."""
    if 0 <= class_id < len(class_names):
        return class_names[class_id]
    return str(class_id)


def detections_to_msg(
    detections: Detections,
    class_names: Sequence[str],
    header: Any,
    track_ids: Sequence[str] = (),
) -> Any:
    """Build a ``vision_msgs/Detection2DArray`` as "Topic contract" in docs/design.md defines it.

    Args:
        detections: boxes (xyxy, pixels of the image as received), scores, class ids, box depth.
        class_names: the detector's names; ``class_id`` in the message is the name.
        header: the input frame's header, attached unchanged to the array and every detection.
        track_ids: each detection's track ID as text ("" = none); empty = no tracking.
    """
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    out = Detection2DArray()
    out.header = header
    # tolist() once: per-element numpy scalar access is several times slower than Python floats.
    boxes = detections.boxes.tolist()
    scores = detections.scores.tolist()
    ids = detections.class_ids.tolist()
    depths = detections.depth.tolist()
    tracks = list(track_ids) or [""] * len(scores)
    items = []
    for (x1, y1, x2, y2), score, cid, depth, track in zip(
        boxes, scores, ids, depths, tracks, strict=True
    ):
        det = Detection2D()
        det.header = header
        det.id = track
        det.bbox.center.position.x = (x1 + x2) * 0.5
        det.bbox.center.position.y = (y1 + y2) * 0.5
        det.bbox.center.theta = 0.0
        det.bbox.size_x = x2 - x1
        det.bbox.size_y = y2 - y1
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = class_name(class_names, int(cid))
        hyp.hypothesis.score = score
        # Relative inverse depth (bigger = nearer), NaN when depth is off; covariance stays 0.
        hyp.pose.pose.position.z = depth
        det.results.append(hyp)
        items.append(det)
    out.detections = items
    return out


def label_info_msg(class_names: Sequence[str], threshold: float, header: Any) -> Any:
    """The ``vision_msgs/LabelInfo`` of a detector: class id -> name, and its score threshold.

    Args:
        class_names: the detector's class names (index = class id).
        threshold: ``detector.confidence``, under which detections are not reported.
        header: stamped when the class map was published (no frame).
    """
    from vision_msgs.msg import LabelInfo, VisionClass

    msg = LabelInfo()
    msg.header = header
    msg.class_map = [VisionClass(class_id=i, class_name=n) for i, n in enumerate(class_names)]
    msg.threshold = float(threshold)
    return msg


def camera_info_for_output(
    info: Any, header: Any, image_size: tuple[int, int], output_size: tuple[int, int]
) -> Any:
    """Re-publish ``info`` for an output image aligned pixel for pixel with the received one.

    Args:
        info: the latest ``sensor_msgs/CameraInfo`` of the input camera.
        header: the input frame's header, attached unchanged.
        image_size: (width, height) of the received image that ``info`` describes.
        output_size: (width, height) of the output image.

    When both sizes are equal (the case today: depth comes at the input resolution) the
    calibration is copied unchanged, binning and ROI included. Otherwise the intrinsics are
    re-expressed for the output pixels: the received image's ROI and binning are folded into K and
    P, which are then scaled, and the result describes a plain image of ``output_size``.
    """
    out = copy.copy(info)
    out.header = header
    if tuple(image_size) == tuple(output_size):
        return out
    in_w, in_h = image_size
    out_w, out_h = output_size
    bin_x = max(int(info.binning_x), 1)
    bin_y = max(int(info.binning_y), 1)
    # output pixel = (full-resolution pixel - roi offset) / binning * scale
    sx = out_w / in_w / bin_x
    sy = out_h / in_h / bin_y
    ox, oy = float(info.roi.x_offset), float(info.roi.y_offset)
    k = [float(v) for v in info.k]
    k[0], k[1], k[2] = k[0] * sx, k[1] * sx, (k[2] - ox) * sx
    k[3], k[4], k[5] = k[3] * sy, k[4] * sy, (k[5] - oy) * sy
    p = [float(v) for v in info.p]
    # P's fourth column holds fx*Tx: it scales with fx (the offset term does not apply to it).
    p[0], p[1], p[2], p[3] = p[0] * sx, p[1] * sx, (p[2] - ox) * sx, p[3] * sx
    p[4], p[5], p[6], p[7] = p[4] * sy, p[5] * sy, (p[6] - oy) * sy, p[7] * sy
    out.k = k
    out.p = p
    out.width, out.height = int(out_w), int(out_h)
    out.binning_x = out.binning_y = 0
    out.roi = type(info.roi)()
    return out


def camera_info_msg(fields: Any) -> Any:
    """A ``sensor_msgs/CameraInfo`` with these calibration fields, its header left empty.

    Args:
        fields: a :class:`~aria_perception.optics.CameraInfoFields` (or anything with its
            ``width``, ``height``, ``distortion_model``, ``d``, ``k``, ``r`` and ``p``).
    """
    from sensor_msgs.msg import CameraInfo

    out = CameraInfo()
    out.width, out.height = int(fields.width), int(fields.height)
    out.distortion_model = fields.distortion_model
    out.d = [float(v) for v in fields.d]
    out.k = [float(v) for v in fields.k]
    out.r = [float(v) for v in fields.r]
    out.p = [float(v) for v in fields.p]
    return out


def rectified_camera_info(fields: Any, header: Any) -> Any:
    """The ``sensor_msgs/CameraInfo`` of the rectified image (``input.rectify``).

    Args:
        fields: the :class:`~aria_perception.optics.CameraInfoFields` of the rectified pinhole
            after rotation (K, P, R, no distortion, its size).
        header: the input frame's header, attached unchanged.
    """
    out = camera_info_msg(fields)
    out.header = header
    return out
