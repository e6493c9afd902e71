"""The rectified outputs in-process (no worker): lazy ``image/rect``, overlay, rectified info."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from ros_harness import spin_until
from sensor_msgs.msg import CameraInfo, Image

from aria_perception.optics import Calibration, Pinhole, Rectification
from aria_perception.records import Detections, EngineResult, StageTimes
from aria_perception.ros.image_codec import image_from_array, image_to_frame
from aria_perception.ros.outputs import OutputPublishers, PendingFrame


def _pending() -> PendingFrame:
    msg = image_from_array(np.zeros((12, 16, 3), np.uint8), "rgb8")
    msg.header.frame_id = "cam"
    return PendingFrame(msg.header, time.monotonic(), image_to_frame(msg, 1000), msg)


def _result(rect: np.ndarray) -> EngineResult:
    dets = Detections(
        boxes=np.array([[1, 1, 4, 5]], np.float32),
        scores=np.array([0.5], np.float32),
        class_ids=np.array([0], np.int32),
        depth=np.array([0.7], np.float32),
    )
    return EngineResult(dets, None, StageTimes(), rectified=rect)


def _info() -> Any:
    calib = Calibration.from_camera_info(
        "plumb_bob", [9, 0, 7.5, 0, 9, 5.5, 0, 0, 1], [0] * 5, 16, 12
    )
    return Rectification(calib, Pinhole(10, 8, 9.0), 90).camera_info()


def test_image_rect_is_lazy_and_follows_the_rectified_frame(ros_context) -> None:
    node = rclpy.create_node("rect", context=ros_context)
    peer = rclpy.create_node("rect_peer", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(peer)
    got: dict[str, list] = {"rect": [], "overlay": [], "info": []}
    outputs = OutputPublishers(node, rectify=True)
    plain = OutputPublishers(peer)  # rectify off: no image/rect publisher at all
    try:
        outputs.create()
        plain.create()
        assert not outputs.rect_wanted() and not plain.rect_wanted()
        assert not peer.get_publishers_info_by_topic("/rect_peer/image/rect")
        peer.create_subscription(Image, "/rect/image/rect", got["rect"].append, 10)
        assert spin_until(executor, outputs.rect_wanted)

        rgb = np.random.default_rng(0).integers(0, 256, (10, 8, 3), dtype=np.uint8)
        assert outputs.publish(_pending(), _result(rgb), ("person",), None)
        assert spin_until(executor, lambda: got["rect"])
        [msg] = got["rect"]
        assert (msg.encoding, msg.width, msg.height, msg.header.frame_id) == ("rgb8", 8, 10, "cam")
        np.testing.assert_array_equal(
            np.frombuffer(bytes(msg.data), np.uint8).reshape(10, 8, 3), rgb
        )

        mono = rgb[..., :1].copy()
        assert outputs.publish(_pending(), _result(mono), ("person",), None)
        assert spin_until(executor, lambda: len(got["rect"]) == 2)
        assert got["rect"][1].encoding == "mono8"

        # The overlay draws on the rectified frame, at its size; the info is the pinhole's.
        peer.create_subscription(Image, "/rect/detections/overlay", got["overlay"].append, 10)
        peer.create_subscription(CameraInfo, "/rect/depth/camera_info", got["info"].append, 10)
        assert spin_until(executor, lambda: outputs.subscription_count("depth/camera_info"))
        assert spin_until(executor, lambda: outputs.subscription_count("detections/overlay"))
        assert outputs.publish(_pending(), _result(rgb), ("person",), _info())
        assert spin_until(executor, lambda: got["overlay"] and got["info"])
        assert (got["overlay"][0].width, got["overlay"][0].height) == (8, 10)
        info = got["info"][0]
        assert (info.width, info.height, info.header.frame_id) == (8, 10, "cam")
        assert list(info.k) == [9.0, 0.0, 3.5, 0.0, 9.0, 4.5, 0.0, 0.0, 1.0]
    finally:
        outputs.destroy()
        plain.destroy()
        executor.shutdown()
        peer.destroy_node()
        node.destroy_node()
