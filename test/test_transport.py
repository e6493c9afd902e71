"""The wiring works: Detection2DArray and an Aria-size Image cross processes via Fast DDS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    rclpy.init()
    node = rclpy.create_node("transport_pub")
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                     history=HistoryPolicy.KEEP_LAST)
    pub_img = node.create_publisher(Image, "wiring/image", qos)
    pub_det = node.create_publisher(Detection2DArray, "wiring/detections", qos)
    deadline = time.monotonic() + 60
    while (pub_img.get_subscription_count() == 0 or pub_det.get_subscription_count() == 0):
        if time.monotonic() > deadline:
            sys.exit("publisher: no subscriber matched within 60 s")
        rclpy.spin_once(node, timeout_sec=0.05)

    h = w = 1408
    pixels = (np.arange(h * w * 3, dtype=np.uint32) * 2654435761 >> 24).astype(np.uint8)
    img = Image()
    img.header.stamp.sec, img.header.stamp.nanosec = 1732400000, 123456789
    img.header.frame_id = "camera-rgb"
    img.height, img.width, img.encoding, img.is_bigendian, img.step = h, w, "rgb8", 0, w * 3
    img.data = pixels.tobytes()

    arr = Detection2DArray()
    arr.header = img.header
    for i, (name, score) in enumerate([("person", 0.91), ("chair", 0.42)]):
        det = Detection2D()
        det.header = img.header
        det.bbox.center.position.x, det.bbox.center.position.y = 100.5 + i, 200.25 + i
        det.bbox.center.theta = 0.0
        det.bbox.size_x, det.bbox.size_y = 50.0 + i, 80.0 + i
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = name, score
        hyp.pose.pose.position.z = 3.5 + i
        det.results.append(hyp)
        det.id = f"track-{i}"
        arr.detections.append(det)

    # Reliable + a matched reader: keep publishing until the subscriber process exits.
    end = time.monotonic() + 60
    while time.monotonic() < end and (pub_img.get_subscription_count() > 0):
        pub_det.publish(arr)
        pub_img.publish(img)
        rclpy.spin_once(node, timeout_sec=0.2)
    node.destroy_node()
    rclpy.try_shutdown()
    """
)

SUBSCRIBER = textwrap.dedent(
    """
    import hashlib, json, sys, time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    out = {}
    rclpy.init()
    node = rclpy.create_node("transport_sub")
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE,
                     history=HistoryPolicy.KEEP_LAST)

    def on_image(msg):
        out.setdefault("image", {
            "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
            "frame_id": msg.header.frame_id, "height": msg.height, "width": msg.width,
            "encoding": msg.encoding, "is_bigendian": msg.is_bigendian, "step": msg.step,
            "nbytes": len(msg.data), "sha256": hashlib.sha256(bytes(msg.data)).hexdigest(),
        })

    def on_dets(msg):
        out.setdefault("detections", {
            "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
            "frame_id": msg.header.frame_id,
            "items": [{
                "stamp": [d.header.stamp.sec, d.header.stamp.nanosec],
                "frame_id": d.header.frame_id,
                "center": [d.bbox.center.position.x, d.bbox.center.position.y,
                           d.bbox.center.theta],
                "size": [d.bbox.size_x, d.bbox.size_y],
                "results": [[r.hypothesis.class_id, r.hypothesis.score,
                             r.pose.pose.position.z, list(r.pose.covariance)]
                            for r in d.results],
                "id": d.id,
            } for d in msg.detections],
        })

    node.create_subscription(Image, "wiring/image", on_image, qos)
    node.create_subscription(Detection2DArray, "wiring/detections", on_dets, qos)
    deadline = time.monotonic() + 90
    while len(out) < 2 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    json.dump(out, open(sys.argv[1], "w"))
    node.destroy_node()
    rclpy.try_shutdown()
    """
)


@pytest.mark.slow
def test_detections_and_aria_frame_cross_processes(tmp_path: Path) -> None:
    import hashlib

    import numpy as np

    result = tmp_path / "received.json"
    env = dict(os.environ)
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(result)], env=env)
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env)
    try:
        assert sub.wait(timeout=120) == 0
        assert pub.wait(timeout=60) == 0
    finally:
        for proc in (sub, pub):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    got = json.loads(result.read_text())
    assert set(got) == {"image", "detections"}, f"subscriber received only {sorted(got)}"

    h = w = 1408
    pixels = (np.arange(h * w * 3, dtype=np.uint32) * 2654435761 >> 24).astype(np.uint8)
    assert got["image"] == {
        "stamp": [1732400000, 123456789],
        "frame_id": "camera-rgb",
        "height": h,
        "width": w,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": w * 3,
        "nbytes": h * w * 3,
        "sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
    }

    dets = got["detections"]
    assert dets["stamp"] == [1732400000, 123456789]
    assert dets["frame_id"] == "camera-rgb"
    assert len(dets["items"]) == 2
    for i, (item, (name, score)) in enumerate(
        zip(dets["items"], [("person", 0.91), ("chair", 0.42)], strict=True)
    ):
        assert item["stamp"] == [1732400000, 123456789]
        assert item["frame_id"] == "camera-rgb"
        assert item["center"] == [100.5 + i, 200.25 + i, 0.0]
        assert item["size"] == [50.0 + i, 80.0 + i]
        assert item["id"] == f"track-{i}"
        [[class_id, got_score, z, covariance]] = item["results"]
        assert (class_id, got_score, z) == (name, score, 3.5 + i)
        assert covariance == [0.0] * 36
