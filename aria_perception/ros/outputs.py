"""The node's outputs: its publishers and the messages of one frame's result.

Outputs are private names, ``<namespace>/<node name>/...``: several nodes in one container or
namespace never collide, and each camera's results sit under its node. Dense outputs (depth,
overlay, output CameraInfo, the rectified image) are built only while someone subscribes to
them. ``image/rect`` exists only with ``input.rectify``: the frame the networks saw.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from aria_perception.optics import CameraInfoFields
from aria_perception.records import EngineResult
from aria_perception.ros.image_codec import (
    CompressedFrame,
    RawFrame,
    depth_to_image,
    image_from_array,
    normalized_depth_to_image,
)
from aria_perception.ros.messages import (
    camera_info_for_output,
    detections_to_msg,
    rectified_camera_info,
)
from aria_perception.ros.overlay import decode_compressed_bgr, overlay_image

__all__ = ["OUTPUT_QOS", "OUTPUT_TOPICS", "OutputPublishers", "PendingFrame"]

#: Output key -> topic name (private to the node).
OUTPUT_TOPICS: dict[str, str] = {
    name: f"~/{name}"
    for name in (
        "detections",
        "depth/raw",
        "depth/normalized",
        "detections/overlay",
        "depth/camera_info",
        "image/rect",
    )
}
#: Reliable, keep last 2: a slow subscriber gets the newest results, not a backlog.
OUTPUT_QOS = QoSProfile(depth=2)
_TYPES: dict[str, Any] = {
    "detections": Detection2DArray,
    "depth/raw": Image,
    "depth/normalized": Image,
    "detections/overlay": Image,
    "depth/camera_info": CameraInfo,
    "image/rect": Image,
}
_DEPTH_KEYS = ("depth/raw", "depth/normalized")


@dataclass(frozen=True)
class PendingFrame:
    """What the node remembers about a submitted frame (the supervisor's tag; never pickled).

    Attributes:
        header: the input message's header, copied onto every output.
        received: ``time.monotonic()`` when the image callback started.
        frame: the validated frame (raw pixels or compressed bytes).
        message: the input message (a ``SerializedImage`` with ``input.raw_intake``: its
            ``header`` and serialized bytes); keeps the buffer behind ``frame`` alive until the
            result is published.
    """

    header: Any
    received: float
    frame: RawFrame | CompressedFrame
    message: Any


class OutputPublishers:
    """The output publishers of one node, and publishing one frame's result on them.

    ``publish`` runs on the worker supervisor's result thread while ``create``/``destroy`` run
    on the executor: a lock keeps a publisher from being destroyed while it publishes. Each
    publisher is used by that one result thread only.

    Args:
        node: the node that owns the publishers.
        qos: profile of every output.
        rectify: ``input.rectify`` is on: results are in the rectified image, which
            ``image/rect`` publishes and the overlay draws on.
    """

    def __init__(self, node: Any, qos: QoSProfile = OUTPUT_QOS, rectify: bool = False) -> None:
        self._node = node
        self._qos = qos
        self._rectify = rectify
        self._pubs: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        """True between ``create`` and ``destroy``."""
        return bool(self._pubs)

    def subscription_count(self, key: str) -> int:
        """Subscribers matched to output ``key`` (0 while the publishers do not exist)."""
        pub = self._pubs.get(key)
        return pub.get_subscription_count() if pub is not None else 0

    def create(self) -> None:
        """Create the publishers (idempotent)."""
        with self._lock:
            if self._pubs:
                return
            self._pubs = {
                key: self._node.create_publisher(msg_type, OUTPUT_TOPICS[key], self._qos)
                for key, msg_type in _TYPES.items()
                if key != "image/rect" or self._rectify
            }

    def destroy(self) -> None:
        """Destroy the publishers (idempotent); a result being published finishes first."""
        with self._lock:
            pubs, self._pubs = self._pubs, {}
        for pub in pubs.values():
            self._node.destroy_publisher(pub)

    def depth_wanted(self) -> bool:
        """Whether the dense map must come back (box depth is computed in the worker anyway)."""
        return any(self.subscription_count(key) > 0 for key in _DEPTH_KEYS)

    def rect_wanted(self) -> bool:
        """Whether the rectified frame must come back: for ``image/rect`` or the overlay."""
        if not self._rectify:
            return False
        return any(self.subscription_count(k) > 0 for k in ("image/rect", "detections/overlay"))

    def publish(
        self,
        pending: PendingFrame,
        result: EngineResult,
        class_names: Sequence[str],
        camera_info: Any = None,
        track_ids: Sequence[str] = (),
    ) -> bool:
        """Publish one frame's outputs, each stamped with the input's header.

        Args:
            pending: the frame the result belongs to.
            result: the engine's result for it.
            class_names: the detector's class names (index = class id).
            camera_info: the newest input CameraInfo, or with ``input.rectify`` the rectified
                pinhole's :class:`~aria_perception.optics.CameraInfoFields`; None: no output
                CameraInfo.
            track_ids: each detection's track ID as text ("" = none); empty = no tracking.

        Returns:
            False when the publishers do not exist (nothing published), else True.
        """
        with self._lock:
            if not self._pubs:
                return False
            self._publish(self._pubs, pending, result, class_names, camera_info, track_ids)
            return True

    @staticmethod
    def _publish(
        pubs: dict[str, Any],
        pending: PendingFrame,
        result: EngineResult,
        class_names: Sequence[str],
        camera_info: Any,
        track_ids: Sequence[str] = (),
    ) -> None:
        header, frame, depth = pending.header, pending.frame, result.depth
        dets = result.detections
        pubs["detections"].publish(detections_to_msg(dets, class_names, header, track_ids))
        if depth is not None:
            if pubs["depth/raw"].get_subscription_count() > 0:
                pubs["depth/raw"].publish(depth_to_image(depth, header))
            if pubs["depth/normalized"].get_subscription_count() > 0:
                pubs["depth/normalized"].publish(normalized_depth_to_image(depth, header))
        rect = result.rectified
        rect_pub = pubs.get("image/rect")
        if rect is not None and rect_pub is not None and rect_pub.get_subscription_count() > 0:
            rect_pub.publish(image_from_array(rect, _rect_encoding(rect), header))
        overlay = pubs["detections/overlay"]
        if overlay.get_subscription_count() > 0:
            if rect_pub is not None:  # rectified: boxes are in the rectified image
                pixels, encoding = rect, "rgb8" if rect is None else _rect_encoding(rect)
            elif isinstance(frame, RawFrame):
                pixels, encoding = frame.pixels, frame.encoding
            else:
                pixels, encoding = decode_compressed_bgr(frame.data), "bgr8"
            if pixels is not None:
                overlay.publish(
                    overlay_image(pixels, encoding, dets, class_names, header, track_ids)
                )
        info_pub = pubs["depth/camera_info"]
        if isinstance(camera_info, CameraInfoFields):
            if info_pub.get_subscription_count() > 0:
                info_pub.publish(rectified_camera_info(camera_info, header))
        elif camera_info is not None and info_pub.get_subscription_count() > 0:
            size = (frame.width, frame.height)
            out_size = (depth.shape[1], depth.shape[0]) if depth is not None else size
            info_pub.publish(camera_info_for_output(camera_info, header, size, out_size))


def _rect_encoding(image: Any) -> str:
    """rgb8 for a colour rectified frame, mono8 for a mono one."""
    return "mono8" if image.ndim == 2 or image.shape[2] == 1 else "rgb8"
