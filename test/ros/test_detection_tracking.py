"""Track IDs in the messages and the overlay; DetectionTracking on a real rclpy node.

The tracker is Ultralytics' (no weights needed); the node, its LabelInfo publisher and the
late subscriber are real rclpy in one process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from ros_harness import wait_for
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from aria_perception.errors import ConfigError
from aria_perception.records import Detections, Thresholds
from aria_perception.ros import overlay
from aria_perception.ros.detection_tracking import DetectionTracking
from aria_perception.ros.messages import detections_to_msg, label_info_msg
from aria_perception.ros.node_config import NodeConfig

NAMES = ("person", "bicycle", "car")


def _detections(shift: float = 0.0) -> Detections:
    return Detections(
        boxes=np.array([[10 + shift, 20, 50 + shift, 100], [200 - shift, 20, 240 - shift, 100]],
                       np.float32),
        scores=np.array([0.9, 0.8], np.float32),
        class_ids=np.array([0, 2], np.int32),
        depth=np.array([2.5, np.nan], np.float32),
    )  # fmt: skip


def test_track_ids_go_into_detection2d_id() -> None:
    msg = detections_to_msg(_detections(), NAMES, Header(), ("7", ""))
    back = deserialize_message(serialize_message(msg), Detection2DArray)
    assert [d.id for d in back.detections] == ["7", ""]
    assert [d.results[0].hypothesis.class_id for d in back.detections] == ["person", "car"]
    assert [d.id for d in detections_to_msg(_detections(), NAMES, Header()).detections] == [
        "",
        "",
    ]
    with pytest.raises(ValueError):
        detections_to_msg(_detections(), NAMES, Header(), ("7",))


def test_label_info_maps_class_ids_to_names() -> None:
    header = Header()
    header.stamp.sec = 5
    msg = deserialize_message(serialize_message(label_info_msg(NAMES, 0.25, header)), LabelInfo)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == list(enumerate(NAMES))
    assert msg.threshold == pytest.approx(0.25) and msg.header.stamp.sec == 5


def test_overlay_shows_the_track_id_beside_the_label() -> None:
    assert overlay.label_text("car", 0.75, 1.25, "12") == "car #12 0.75 d=1.25"
    assert overlay.label_text("car", 0.75, float("nan"), "") == "car 0.75"
    plain, tracked = np.zeros((120, 300, 3), np.uint8), np.zeros((120, 300, 3), np.uint8)
    overlay.draw_detections(plain, _detections(), NAMES)
    overlay.draw_detections(tracked, _detections(), NAMES, ("12345", ""))
    assert not np.array_equal(plain, tracked)  # the first label is longer


@pytest.fixture
def node(ros_context: Any) -> Iterator[Any]:
    node = rclpy.create_node("tracking_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: [executor.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)]
    )
    thread.start()
    yield node
    stop.set()
    thread.join()
    node.destroy_node()


def test_detection_tracking_on_a_node(node: Any, tmp_path: Path) -> None:
    low = tmp_path / "low.yaml"
    # Scores of 1e-5 (random weights): fuse_score would multiply the IoU by them, so it is off.
    low.write_text(
        "track_high_thresh: 0.00001\ntrack_low_thresh: 0.0\nnew_track_thresh: 0.00001\n"
        "fuse_score: false\n"
    )
    tracking = DetectionTracking(node, NodeConfig(tracker_config=str(low)))
    tracking.activate(NAMES, Thresholds(0.25, 0.45))
    # A late subscriber (transient local, reliable) still gets the class map.
    received: list[LabelInfo] = []
    qos = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    node.create_subscription(LabelInfo, "~/label_info", received.append, qos)
    assert wait_for(lambda: received, 10), "no LabelInfo for a late subscriber"
    assert [c.class_name for c in received[0].class_map] == list(NAMES)
    assert received[0].threshold == pytest.approx(0.25)

    scores = Detections(**{**_detections().__dict__, "scores": np.array([2e-4, 1e-5], np.float32)})
    ids = [tracking.track(scores, NAMES, Thresholds(0.25, 0.45)).ids for _ in range(5)]
    assert ids[-1] == ids[-2] == ids[-3] and all(i.isdigit() for i in ids[-1]), ids
    assert len(set(ids[-1])) == 2
    tracked = tracking.track(_detections(2.0), NAMES, Thresholds(0.1, 0.45))
    assert tracked.ids == ids[-1] and tracked.ms >= 0.0  # moved a little: same objects
    assert wait_for(lambda: len(received) == 2, 10), "no LabelInfo for a new threshold"
    assert received[1].threshold == pytest.approx(0.1)

    with pytest.raises(ConfigError, match="no such file"):
        tracking.prepare({"tracker.config": str(tmp_path / "missing.yaml")})
    with pytest.raises(ConfigError, match="tracker.type must be 'none' or"):
        tracking.prepare({"tracker.type": "deepsort"})
    assert tracking.track(_detections(4.0), NAMES, Thresholds(0.1, 0.45)).ids == ids[-1]

    tracking.prepare({"tracker.type": "none"})()
    assert tracking.track(_detections(), NAMES, Thresholds(0.1, 0.45)).ids == ()
    tracking.prepare({"tracker.type": "botsort", "tracker.config": ""})()
    fresh = [tracking.track(_detections(), NAMES, Thresholds(0.1, 0.45)).ids for _ in range(3)]
    assert set(fresh[-1]) == {"1", "2"}  # a new tracker: IDs start again
    tracking.destroy()
    tracking.destroy()
