"""The node's tracker and its ``~/label_info``: track IDs for each frame's detections.

One tracker state per node (camera), in the node process: a crash of the worker does not reach
it, and the frame after a restart continues the same tracks. Lifecycle activation and a change
of ``tracker.type`` or ``tracker.config`` reset it. See "Tracking" in docs/design.md.

Threads: :meth:`DetectionTracking.track` runs on the supervisor's result thread; activation,
parameter changes and :meth:`DetectionTracking.destroy` on the executor. A lock keeps the
tracker and the LabelInfo publisher from being swapped while a frame uses them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from vision_msgs.msg import LabelInfo

from aria_perception.records import Detections, Thresholds
from aria_perception.ros.messages import label_info_msg
from aria_perception.ros.node_config import NodeConfig
from aria_perception.tracking import NO_ID, ObjectTracker, load_tracker_config

__all__ = ["LABEL_INFO_QOS", "LABEL_INFO_TOPIC", "DetectionTracking", "Tracked"]

LABEL_INFO_TOPIC = "~/label_info"


#: Reliable, transient local, depth 1: a late subscriber gets the class map in use.
LABEL_INFO_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class Tracked(NamedTuple):
    """One frame's track IDs.

    Attributes:
        ids: each detection's track ID as decimal text ("" when no confirmed track has it);
            empty when tracking is off.
        ms: the tracker's time on the frame.
    """

    ids: tuple[str, ...]
    ms: float


class DetectionTracking:
    """The tracker of one node and its ``~/label_info`` publisher.

    Args:
        node: the node (its logger, clock and publishers).
        config: the node's parameters: ``tracker_type``, ``tracker_config`` and
            ``expected_fps`` (the frame rate the tracker's ``track_buffer`` follows).

    Raises:
        ConfigError: the tracker type or its config file is invalid.
    """

    def __init__(self, node: Any, config: NodeConfig) -> None:
        self._node = node
        self._logger = node.get_logger()
        self._lock = threading.Lock()
        self._type, self._path = config.tracker_type, config.tracker_config
        self._frame_rate = config.expected_fps
        self._tracker = ObjectTracker(
            load_tracker_config(self._type, self._path), self._frame_rate
        )
        self._label_pub: Any = None
        self._label_key: tuple[tuple[str, ...], float] | None = None
        self._failures = 0

    def activate(self, class_names: Sequence[str], thresholds: Thresholds) -> None:
        """Start from no tracks, and publish the class map (publisher created once)."""
        with self._lock:
            self._tracker.reset()
            if self._label_pub is None:
                self._label_pub = self._node.create_publisher(
                    LabelInfo, LABEL_INFO_TOPIC, LABEL_INFO_QOS
                )
            self._label_key = None
            self._publish_labels(class_names, thresholds.confidence)
        self._log_reset("activation")

    def destroy(self) -> None:
        """Destroy the LabelInfo publisher (idempotent)."""
        with self._lock:
            pub, self._label_pub, self._label_key = self._label_pub, None, None
        if pub is not None:
            self._node.destroy_publisher(pub)

    def prepare(self, changes: Mapping[str, Any]) -> Callable[[], None]:
        """Check validated parameter changes; what to call to put them in use.

        A change of ``tracker.type`` or ``tracker.config`` builds the new tracker here
        (importing Ultralytics the first time), and the returned call puts it in use, resetting
        the tracks. ``diagnostics.expected_fps`` is the frame rate of the next tracker built,
        so that the tracks in progress keep their IDs.

        Raises:
            ConfigError: the new tracker type or config file is invalid (nothing changed).
        """
        frame_rate = changes.get("diagnostics.expected_fps", self._frame_rate)
        if "tracker.type" not in changes and "tracker.config" not in changes:
            tracker = None
        else:
            tracker_type = changes.get("tracker.type", self._type)
            path = changes.get("tracker.config", self._path)
            tracker = ObjectTracker(load_tracker_config(tracker_type, path), frame_rate)

        def use() -> None:
            self._frame_rate = frame_rate
            if tracker is None:
                return
            with self._lock:
                self._tracker = tracker
                self._type, self._path = tracker.config.tracker_type, path
            self._log_reset("parameter change")

        return use

    def track(
        self, detections: Detections, class_names: Sequence[str], thresholds: Thresholds
    ) -> Tracked:
        """The track IDs of one frame's detections (result thread); the class map if it changed.

        A failure of the tracker is logged and resets it; the frame then gets no IDs.
        """
        started = time.perf_counter()
        with self._lock:
            self._publish_labels(class_names, thresholds.confidence)
            tracker = self._tracker
            if not tracker.config.enabled:
                return Tracked((), 0.0)
            try:
                ids = tracker.update(detections.boxes, detections.scores, detections.class_ids)
            except Exception as err:  # noqa: BLE001 - a tracker bug must not stop publishing
                tracker.reset()
                self._failures += 1
                self._logger.error(
                    f"tracker failed, tracks reset ({self._failures} time(s)): "
                    f"{type(err).__name__}: {err}",
                    throttle_duration_sec=5.0,
                )
                return Tracked(("",) * len(detections), (time.perf_counter() - started) * 1e3)
        text = tuple("" if i == NO_ID else str(i) for i in ids.tolist())
        return Tracked(text, (time.perf_counter() - started) * 1e3)

    def _publish_labels(self, class_names: Sequence[str], threshold: float) -> None:
        """Publish LabelInfo when the class map or threshold differ from the last published."""
        key = (tuple(class_names), float(threshold))
        if self._label_pub is None or not key[0] or key == self._label_key:
            return
        header = Header()
        header.stamp = self._node.get_clock().now().to_msg()
        self._label_pub.publish(label_info_msg(key[0], key[1], header))
        self._label_key = key

    def _log_reset(self, why: str) -> None:
        tracker = self._tracker
        text = tracker.config.describe()
        if tracker.config.enabled:
            text += f", lost tracks kept {tracker.buffer_frames} frames"
            forced = "; ".join(f"{k}: {v}" for k, v in tracker.config.forced.items())
            text += f"; forced {forced}" if forced else ""
        self._logger.info(f"tracker reset ({why}): {text}")
