"""Detection2DArray, output CameraInfo and the overlay image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from aria_perception.records import Detections
from aria_perception.ros import overlay
from aria_perception.ros.image_codec import image_from_array, image_to_frame
from aria_perception.ros.messages import camera_info_for_output, detections_to_msg

NAMES = ("person", "bicycle", "car")


def _header() -> Header:
    header = Header()
    header.stamp.sec, header.stamp.nanosec = 1732400000, 987654321
    header.frame_id = "camera-rgb"
    return header


def _detections() -> Detections:
    return Detections(
        boxes=np.array([[10, 20, 50, 100], [0.5, 1.5, 3.5, 9.5]], np.float32),
        scores=np.array([0.9, 0.3], np.float32),
        class_ids=np.array([0, 7], np.int32),
        depth=np.array([2.5, np.nan], np.float32),
    )


def test_detection_array_fields() -> None:
    header = _header()
    msg = detections_to_msg(_detections(), NAMES, header)
    back = deserialize_message(serialize_message(msg), Detection2DArray)
    assert back.header == header
    assert len(back.detections) == 2
    first, second = back.detections
    assert first.header == header and second.header == header
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (30.0, 60.0)
    assert (first.bbox.size_x, first.bbox.size_y, first.bbox.center.theta) == (40.0, 80.0, 0.0)
    [hyp] = first.results
    assert hyp.hypothesis.class_id == "person"
    assert hyp.hypothesis.score == pytest.approx(0.9, abs=1e-6)
    assert hyp.pose.pose.position.z == 2.5
    assert list(hyp.pose.covariance) == [0.0] * 36
    assert first.id == ""
    # An id the model has no name for keeps its number; unknown depth stays NaN.
    assert second.results[0].hypothesis.class_id == "7"
    assert math.isnan(second.results[0].pose.pose.position.z)
    assert (second.bbox.center.position.x, second.bbox.size_y) == (2.0, 8.0)


def test_empty_detections_still_carry_the_header() -> None:
    msg = detections_to_msg(Detections.empty(), NAMES, _header())
    assert msg.header.frame_id == "camera-rgb" and len(msg.detections) == 0


def _info(width: int, height: int) -> CameraInfo:
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.header.frame_id = "other"
    info.d = [0.1, -0.2, 0.0, 0.0, 0.0]
    info.k = [600.0, 0.0, 320.0, 0.0, 610.0, 240.0, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [600.0, 0.0, 320.0, -30.0, 0.0, 610.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def test_camera_info_same_size_passes_through_with_the_frame_header() -> None:
    info = _info(640, 480)
    info.binning_x = 2
    out = camera_info_for_output(info, _header(), (320, 240), (320, 240))
    assert out.header == _header()
    assert (out.width, out.height, out.binning_x) == (640, 480, 2)
    np.testing.assert_array_equal(out.k, info.k)
    assert info.header.frame_id == "other"  # the stored message is not modified


def test_camera_info_rescaled_to_another_output_size() -> None:
    info = _info(640, 480)
    out = camera_info_for_output(info, _header(), (640, 480), (320, 240))
    assert (out.width, out.height) == (320, 240)
    np.testing.assert_allclose(out.k, [300, 0, 160, 0, 305, 120, 0, 0, 1])
    np.testing.assert_allclose(out.p, [300, 0, 160, -15, 0, 305, 120, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(out.d, info.d)
    # A ROI/binning source: calibration is in full-resolution pixels.
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 40, 400, 300
    info.binning_x = info.binning_y = 2
    out = camera_info_for_output(info, _header(), (200, 150), (400, 300))
    np.testing.assert_allclose(out.k, [600, 0, 220, 0, 610, 200, 0, 0, 1])
    assert (out.binning_x, out.roi.width) == (0, 0)


def test_overlay_keeps_pixels_and_draws_boxes() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 200, (120, 160, 3), dtype=np.uint8)
    frame = image_to_frame(image_from_array(pixels, "rgb8"), 10**6)
    dets = Detections(
        boxes=np.array([[20, 30, 80, 90]], np.float32),
        scores=np.array([0.75], np.float32),
        class_ids=np.array([2], np.int32),
        depth=np.array([1.25], np.float32),
    )
    msg = overlay.overlay_image(frame.pixels, frame.encoding, dets, NAMES, _header())
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("bgr8", 120, 160, 480)
    assert msg.header == _header()
    out = np.frombuffer(deserialize_message(serialize_message(msg), Image).data, np.uint8)
    out = out.reshape(120, 160, 3)
    bgr = pixels[..., ::-1]
    np.testing.assert_array_equal(out[100:, :], bgr[100:, :])  # far from the box: untouched
    colour = overlay._PALETTE[2]
    assert (out[60, 80] == colour).all()  # right edge
    assert (out[90, 50] == colour).all()  # bottom edge
    np.testing.assert_array_equal(out[60, 50], bgr[60, 50])  # inside: untouched
    assert overlay.label_text("car", 0.75, 1.25) == "car 0.75 d=1.25"
    assert overlay.label_text("car", 0.75, float("nan")) == "car 0.75"


def test_overlay_without_opencv_still_draws_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not a mock of the code under test: the OpenCV-less branch runs for real.
    monkeypatch.setattr(overlay, "opencv", lambda: None)
    canvas = np.zeros((50, 60, 3), np.uint8)
    dets = Detections(
        boxes=np.array([[5, 6, 30, 40]], np.float32),
        scores=np.array([0.5], np.float32),
        class_ids=np.array([0], np.int32),
        depth=np.array([1.0], np.float32),
    )
    overlay.draw_detections(canvas, dets, NAMES)
    colour = overlay._PALETTE[0]
    assert (canvas[6, 5:31] == colour).all() and (canvas[6:41, 30] == colour).all()
    assert (canvas[20, 15] == 0).all() and (canvas[45, 45] == 0).all()
