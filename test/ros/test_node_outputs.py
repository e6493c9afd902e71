"""The node's output side in-process (no worker): lazy depth and what a result publishes."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from aria_perception.records import Detections, EngineResult, StageTimes
from aria_perception.ros.image_codec import image_from_array, image_to_frame
from aria_perception.ros.node import PerceptionNode, _Pending
from aria_perception.worker.supervisor import FrameResult, FrameTiming


def _spin_until(executor, predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return bool(predicate())


def test_depth_is_requested_only_with_depth_subscribers(ros_context) -> None:
    node = PerceptionNode(
        "lazy",
        context=ros_context,
        parameter_overrides=[Parameter("autostart", value=False)],
        use_global_arguments=False,
    )
    peer = rclpy.create_node("lazy_peer", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(peer)
    got: dict[str, list] = {"detections": [], "depth/raw": [], "depth/normalized": []}
    try:
        node._create_publishers()
        node._class_names = ("person", "car")
        node._active = True
        peer.create_subscription(
            Detection2DArray, "/lazy/detections", got["detections"].append, 10
        )
        assert _spin_until(executor, lambda: node._pubs["detections"].get_subscription_count())
        assert not node._depth_wanted()  # detections alone: no dense map back from the worker

        pixels = np.zeros((6, 8, 3), np.uint8)
        msg = image_from_array(pixels, "rgb8")
        msg.header.frame_id = "cam"
        pending = _Pending(msg.header, time.monotonic(), image_to_frame(msg, 100), msg)
        dets = Detections(
            boxes=np.array([[1, 1, 4, 5]], np.float32),
            scores=np.array([0.5], np.float32),
            class_ids=np.array([1], np.int32),
            depth=np.array([0.7], np.float32),
        )
        timing = FrameTiming(0.0, 0.0, 1.0, 0.0, 1.0)
        node._on_result(FrameResult(pending, 1, 1, EngineResult(dets, None, StageTimes()), timing))
        assert _spin_until(executor, lambda: got["detections"])
        assert got["detections"][0].detections[0].results[0].hypothesis.class_id == "car"

        peer.create_subscription(Image, "/lazy/depth/normalized", got["depth/normalized"].append,
                                 10)  # fmt: skip
        assert _spin_until(executor, node._depth_wanted)
        depth = np.arange(48, dtype=np.float32).reshape(6, 8)
        node._on_result(
            FrameResult(pending, 2, 1, EngineResult(dets, depth, StageTimes()), timing)
        )
        assert _spin_until(executor, lambda: got["depth/normalized"])
        norm = got["depth/normalized"][0]
        assert (norm.encoding, norm.width, norm.height) == ("mono8", 8, 6)
        assert norm.header.frame_id == "cam"
        assert node._latency.percentiles(50)[0] >= 0.0
    finally:
        executor.shutdown()
        peer.destroy_node()
        node.destroy_node()
