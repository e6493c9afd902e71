"""Frames to replay: what the bench publishes, independent of where they came from.

A :class:`Frame` holds the message payload already as ``array.array('B')``: the rclpy message
setters take such an array by reference, so building a message per publish copies nothing in
Python (a 1408x1408 rgb8 frame is 5.9 MB).
"""

from __future__ import annotations

import array
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aria_perception.bench.camera_info import CameraInfoFields
from aria_perception.bench.errors import FrameDataError
from aria_perception.records import RAW_CHANNELS

RAW_ENCODINGS = RAW_CHANNELS
# image_transport's compressed plugin writes "<input encoding>; jpeg compressed <codec encoding>".
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


@dataclass(frozen=True)
class Frame:
    """One camera frame ready to publish.

    Attributes:
        stamp_ns: Header stamp as recorded (ns); the replay sets its own unique stamps.
        frame_id: Header frame_id, kept unchanged on replay.
        width: Pixels per row (also known for compressed frames: decoded once when loading).
        height: Rows.
        encoding: Image encoding (``rgb8`` ...) for raw frames, the ``format`` string otherwise.
        step: Bytes per row of raw frames (0 for compressed).
        data: The message's ``data`` field.
        compressed: True for a ``sensor_msgs/CompressedImage`` payload.
    """

    stamp_ns: int
    frame_id: str
    width: int
    height: int
    encoding: str
    step: int
    data: array.array
    compressed: bool = False

    @property
    def nbytes(self) -> int:
        """Size of the payload in bytes."""
        return len(self.data)

    @property
    def msgtype(self) -> str:
        """The ROS message type this frame is published as."""
        return COMPRESSED_TYPE if self.compressed else IMAGE_TYPE


@dataclass(frozen=True)
class FrameSet:
    """Frames loaded for one bench invocation, with where they came from.

    Attributes:
        frames: The frames, in recorded order.
        source: Human-readable origin (bag path or ``sample``).
        topic: Topic they were recorded on (empty for a generated sample).
        msgtype: Message type of the frames.
        frames_available: How many frames the source holds (the set may hold fewer).
        camera_infos: The CameraInfo recorded with each frame (same stamp), None where there is
            none; empty when the source has no CameraInfo topic for these frames.
        camera_info_topic: The topic they were recorded on.
    """

    frames: Sequence[Frame]
    source: str
    topic: str = ""
    msgtype: str = IMAGE_TYPE
    frames_available: int = 0
    camera_infos: Sequence[CameraInfoFields | None] = ()
    camera_info_topic: str = ""

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def width(self) -> int:
        """Width of the first frame."""
        return self.frames[0].width

    @property
    def height(self) -> int:
        """Height of the first frame."""
        return self.frames[0].height

    @property
    def compressed(self) -> bool:
        """Whether the frames are CompressedImage payloads."""
        return self.frames[0].compressed

    def periods_s(self) -> list[float]:
        """Recorded time between consecutive frames (seconds), one per frame.

        Entry ``i`` is the gap before frame ``i``; entry 0 (and any non-positive gap) is the
        median gap, so looping over the set keeps the recorded rate.
        """
        stamps = [f.stamp_ns for f in self.frames]
        gaps = [(b - a) / 1e9 for a, b in zip(stamps, stamps[1:], strict=False)]
        positive = sorted(g for g in gaps if g > 0)
        median = positive[len(positive) // 2] if positive else 1.0 / 30.0
        return [median] + [g if g > 0 else median for g in gaps]

    def recorded_fps(self) -> float:
        """Median recorded frame rate."""
        periods = sorted(self.periods_s())
        return 1.0 / periods[len(periods) // 2]

    def converted(self, compressed: bool, jpeg_quality: int = 90) -> FrameSet:
        """The same frames as raw rgb8 (``compressed=False``) or JPEG (``True``)."""
        if compressed == self.compressed:
            return self
        convert = to_jpeg if compressed else to_rgb8
        frames = [convert(f, jpeg_quality) if compressed else convert(f) for f in self.frames]
        return dataclasses.replace(
            self, frames=frames, msgtype=COMPRESSED_TYPE if compressed else IMAGE_TYPE
        )


def as_byte_array(data: np.ndarray | bytes | memoryview) -> array.array:
    """Copy a contiguous buffer into ``array.array('B')`` (one memcpy, no per-element work)."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(data)).cast("B"))
    return out


def raw_frame(
    rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera", encoding: str = "rgb8"
) -> Frame:
    """Make a raw frame from an HxWx3 RGB uint8 array in any of the 8-bit encodings.

    Args:
        rgb: Pixels in RGB order.
        stamp_ns: Recorded stamp.
        frame_id: Header frame_id.
        encoding: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` (opaque alpha) or ``mono8`` (luma).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise FrameDataError(f"frame pixels must be HxWx3 uint8, got {rgb.shape} {rgb.dtype}")
    channels = RAW_ENCODINGS.get(encoding)
    if channels is None:
        raise FrameDataError(
            f"unsupported encoding {encoding!r}; use one of {sorted(RAW_ENCODINGS)}"
        )
    if encoding == "mono8":
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        out = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
    else:
        out = rgb[..., ::-1] if encoding.startswith("bgr") else rgb
        if channels == 4:
            alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
            out = np.concatenate([out, alpha], axis=2)
    height, width = rgb.shape[:2]
    return Frame(
        stamp_ns=stamp_ns,
        frame_id=frame_id,
        width=width,
        height=height,
        encoding=encoding,
        step=width * channels,
        data=as_byte_array(out),
    )


def pixels(frame: Frame) -> np.ndarray:
    """Decode a frame to an HxWx3 RGB uint8 array (a copy)."""
    import cv2

    if frame.compressed:
        bgr = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FrameDataError(f"cannot decode compressed frame (format {frame.encoding!r})")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    channels = RAW_ENCODINGS.get(frame.encoding)
    if channels is None:
        raise FrameDataError(
            f"cannot convert encoding {frame.encoding!r} (bench handles only 8-bit)"
        )
    if frame.step < frame.width * channels or len(frame.data) < frame.step * frame.height:
        raise FrameDataError(
            f"frame data ({len(frame.data)} B, step {frame.step}) too small for "
            f"{frame.width}x{frame.height} {frame.encoding}"
        )
    rows = np.frombuffer(frame.data, np.uint8)[: frame.step * frame.height]
    rows = rows.reshape(frame.height, frame.step)
    img = rows[:, : frame.width * channels].reshape(frame.height, frame.width, channels)
    if frame.encoding in ("bgr8", "bgra8"):
        img = img[..., 2::-1]
    elif frame.encoding == "rgba8":
        img = img[..., :3]
    elif frame.encoding == "mono8":
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def to_rgb8(frame: Frame) -> Frame:
    """The frame as a raw rgb8 Image payload."""
    return raw_frame(pixels(frame), frame.stamp_ns, frame.frame_id)


def to_jpeg(frame: Frame, quality: int = 90) -> Frame:
    """The frame as a JPEG CompressedImage payload (image_transport's format string)."""
    import cv2

    bgr = cv2.cvtColor(pixels(frame), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FrameDataError("JPEG encoding failed")
    return Frame(
        stamp_ns=frame.stamp_ns,
        frame_id=frame.frame_id,
        width=frame.width,
        height=frame.height,
        encoding=JPEG_FORMAT,
        step=0,
        data=as_byte_array(buf),
        compressed=True,
    )
