"""The node's output publishers in-process (no worker): lazy depth and what a result publishes."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from ros_harness import spin_until
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from aria_perception.records import Detections, EngineResult, StageTimes
from aria_perception.ros.image_codec import image_from_array, image_to_frame
from aria_perception.ros.outputs import OutputPublishers, PendingFrame

CLASS_NAMES = ("person", "car")


def _pending() -> PendingFrame:
    msg = image_from_array(np.zeros((6, 8, 3), np.uint8), "rgb8")
    msg.header.frame_id = "cam"
    msg.header.stamp.sec = 42
    return PendingFrame(msg.header, time.monotonic(), image_to_frame(msg, 100), msg)


def _result(depth: np.ndarray | None) -> EngineResult:
    dets = Detections(
        boxes=np.array([[1, 1, 4, 5]], np.float32),
        scores=np.array([0.5], np.float32),
        class_ids=np.array([1], np.int32),
        depth=np.array([0.7], np.float32),
    )
    return EngineResult(dets, depth, StageTimes())


def test_depth_is_wanted_only_with_depth_subscribers(ros_context) -> None:
    node = rclpy.create_node("lazy", context=ros_context)
    peer = rclpy.create_node("lazy_peer", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(peer)
    got: dict[str, list] = {"detections": [], "depth/normalized": [], "depth/camera_info": []}
    outputs = OutputPublishers(node)
    pending = _pending()
    try:
        assert not outputs.created
        assert not outputs.publish(pending, _result(None), CLASS_NAMES), "no publishers yet"
        outputs.create()
        assert outputs.created
        peer.create_subscription(
            Detection2DArray, "/lazy/detections", got["detections"].append, 10
        )
        assert spin_until(executor, lambda: outputs.subscription_count("detections"))
        assert not outputs.depth_wanted()  # detections alone: no dense map back from the worker

        assert outputs.publish(pending, _result(None), CLASS_NAMES)
        assert spin_until(executor, lambda: got["detections"])
        [arr] = got["detections"]
        assert arr.header.frame_id == "cam" and arr.header.stamp.sec == 42
        assert arr.detections[0].results[0].hypothesis.class_id == "car"

        peer.create_subscription(Image, "/lazy/depth/normalized", got["depth/normalized"].append,
                                 10)  # fmt: skip
        peer.create_subscription(
            CameraInfo, "/lazy/depth/camera_info", got["depth/camera_info"].append, 10
        )
        assert spin_until(executor, outputs.depth_wanted)
        assert spin_until(executor, lambda: outputs.subscription_count("depth/camera_info"))
        info = CameraInfo(width=8, height=6)
        depth = np.arange(48, dtype=np.float32).reshape(6, 8)
        assert outputs.publish(pending, _result(depth), CLASS_NAMES, info)
        assert spin_until(executor, lambda: got["depth/normalized"] and got["depth/camera_info"])
        [norm] = got["depth/normalized"]
        assert (norm.encoding, norm.width, norm.height) == ("mono8", 8, 6)
        assert norm.header.frame_id == "cam"
        [out_info] = got["depth/camera_info"]
        assert (out_info.width, out_info.height, out_info.header.frame_id) == (8, 6, "cam")

        outputs.destroy()
        assert not outputs.created and not outputs.depth_wanted()
        assert not outputs.publish(pending, _result(depth), CLASS_NAMES), "destroyed"
    finally:
        outputs.destroy()
        executor.shutdown()
        peer.destroy_node()
        node.destroy_node()
