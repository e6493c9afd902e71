"""sensor_msgs images to numpy views and back, with their validation (no cv_bridge).

What is specific to the messages is checked here (``step``, the data length, 16-bit encodings,
the compressed formats' magic bytes and headers); the rules every frame follows (encodings,
size, ``input.max_pixels``, compressed bytes, the structure of PNG data) are the shared ones of
:mod:`aria_perception.records`.

Incoming frames become zero-copy numpy views of the message buffer (``step`` padding is honoured
through strides); the supervisor copies them once into shared memory. With a raw subscription
(``input.raw_intake``) the buffer is the serialized message itself: :class:`SerializedImage`,
its fields read by :mod:`aria_perception.ros.raw_image`, then checked like a message's.
Outgoing images are built on an ``array.array('B')``, which the generated setter keeps or copies
with one memcpy and rclpy serialises from its buffer: no per-element Python conversion
(assigning ``bytes`` or a list to ``msg.data`` walks every element).
"""

from __future__ import annotations

import array
import functools
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from aria_perception.errors import FrameError
from aria_perception.records import (
    PNG_SIGNATURE,
    RAW_CHANNELS,
    check_encoded_frame,
    check_frame_size,
    check_png,
    check_raw_frame,
    raw_channels,
)
from aria_perception.ros.raw_image import CdrImage, parse_header, parse_image

# Encodings a camera driver may plausibly send that we name explicitly when refusing them.
_SIXTEEN_BIT = ("mono16", "16uc1", "16sc1", "rgb16", "bgr16", "rgba16", "bgra16")
_JPEG_MAGIC = b"\xff\xd8\xff"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): all carry the size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_HOST_BIGENDIAN = int(sys.byteorder == "big")


@dataclass(frozen=True)
class RawFrame:
    """A received raw image as a numpy view of the message buffer.

    Attributes:
        pixels: (H, W, C) uint8 view, or (H, W) for mono8; not C-contiguous when the message's
            ``step`` has padding. Valid as long as the message is alive.
        encoding: one of :data:`RAW_CHANNELS`.
    """

    pixels: np.ndarray
    encoding: str

    @property
    def height(self) -> int:
        """Rows of the received image."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns of the received image."""
        return int(self.pixels.shape[1])


@dataclass(frozen=True)
class CompressedFrame:
    """A received compressed image: its bytes and what its header says.

    Attributes:
        data: 1-D uint8 view of the message buffer.
        format: ``jpeg`` or ``png`` (from the magic bytes, which the decoder will see).
        height: rows according to the JPEG frame header / PNG IHDR chunk.
        width: columns according to the same header.
    """

    data: np.ndarray
    format: str
    height: int
    width: int


def image_to_frame(msg: Any, max_pixels: int) -> RawFrame:
    """Validate a received ``sensor_msgs/Image`` and return a zero-copy view of its pixels.

    One set of rules for both intakes: a deserialised message and a :class:`SerializedImage`
    (``input.raw_intake``) are checked by the same code once their fields are read.

    Args:
        msg: the received message, or the :class:`SerializedImage` of its serialized bytes.
        max_pixels: frames with more pixels (``input.max_pixels``) are refused.

    Raises:
        FrameError: serialized bytes that could not be parsed; an unknown or unsupported
            encoding, zero size, too many pixels, a ``step`` smaller than a row, or a data size
            that is not ``step * height``.
    """
    if isinstance(msg, SerializedImage):
        image = msg.image
        if image is None:
            assert msg.error is not None
            raise msg.error
        return _raw_frame(
            image.height, image.width, image.encoding, image.step, image.data, max_pixels
        )
    return _raw_frame(
        int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), msg.data, max_pixels
    )


def _raw_frame(
    height: int, width: int, encoding: str, step: int, data: Any, max_pixels: int
) -> RawFrame:
    """The checks of :func:`image_to_frame` on the fields of either intake."""
    if encoding not in RAW_CHANNELS:
        lowered = encoding.lower()
        if lowered in _SIXTEEN_BIT:
            raise FrameError(
                f"16-bit encoding {encoding!r} is not supported: publish mono8 or an 8-bit colour "
                f"encoding ({', '.join(RAW_CHANNELS)})"
            )
        if lowered in RAW_CHANNELS:
            # ROS encodings are case-sensitive lowercase names; accept an upper-case spelling
            # rather than drop every frame of a sloppy driver.
            encoding = lowered
    channels = raw_channels(encoding)
    check_frame_size(width, height, max_pixels, "image")
    row_bytes = width * channels
    if step < row_bytes:
        raise FrameError(
            f"step {step} is smaller than a row of {width} {encoding} pixels ({row_bytes} bytes)"
        )
    # is_bigendian only matters for multi-byte channels; every accepted encoding is 8-bit.
    size = len(data)
    if size != step * height:
        what = "truncated" if size < step * height else "size mismatch"
        raise FrameError(
            f"{what}: data holds {size} bytes, step*height = {step}*{height} = {step * height}"
        )
    buffer = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    if channels == 1:
        pixels = np.ndarray((height, width), np.uint8, buffer, 0, (step, 1))
    else:
        pixels = np.ndarray((height, width, channels), np.uint8, buffer, 0, (step, channels, 1))
    return RawFrame(pixels=pixels, encoding=encoding)


@dataclass(frozen=True)
class SerializedImage:
    """A ``sensor_msgs/Image`` received as serialized bytes (``input.raw_intake``), read in place.

    It stands in for the message wherever the node keeps one: ``header`` is what the outputs
    and the log lines of a rejected frame carry, and ``buffer`` keeps the pixel view alive.
    Build it with :func:`serialized_image`, which never raises: bytes that cannot be parsed are
    refused by :func:`image_to_frame`, with the header as far as it could be read.

    Attributes:
        header: a ``std_msgs/Header`` with the parsed stamp and ``frame_id`` (an empty one when
            not even the header could be read).
        image: the parsed fields, or None when the bytes could not be parsed.
        error: why they could not (None when they could).
        buffer: the serialized bytes the pixel view points into.
    """

    header: Any
    image: CdrImage | None
    error: FrameError | None
    buffer: Any


def serialized_image(buffer: Any) -> SerializedImage:
    """Parse the serialized bytes of a ``sensor_msgs/Image`` (a raw subscription's message).

    Only the fields are read (:func:`~aria_perception.ros.raw_image.parse_image`); the pixels
    stay in ``buffer``, and one ``std_msgs/Header`` is built from the parsed stamp and frame id.
    """
    try:
        image = parse_image(buffer)
    except FrameError as err:
        try:
            head = parse_header(buffer)
        except FrameError:
            return SerializedImage(_header(0, 0, ""), None, err, buffer)
        return SerializedImage(_header(head.sec, head.nanosec, head.frame_id), None, err, buffer)
    return SerializedImage(_header(image.sec, image.nanosec, image.frame_id), image, None, buffer)


def _header(sec: int, nanosec: int, frame_id: str) -> Any:
    from std_msgs.msg import Header

    header = Header()
    header.stamp.sec = sec
    header.stamp.nanosec = nanosec
    header.frame_id = frame_id
    return header


def compressed_to_frame(
    msg: Any, max_pixels: int, max_bytes: int | None = None
) -> CompressedFrame:
    """Validate a ``sensor_msgs/CompressedImage`` and return a view of its bytes.

    The format comes from the magic bytes (what the decoder will see); the ``format`` string must
    not contradict them in a way that says the data is something else (``compressedDepth``, a
    format we do not decode). PNG data is checked whole, its chunks, CRCs and image data against
    the IHDR size (:func:`~aria_perception.records.check_png`): a decoder may crash on what it
    cannot read. Corruption inside JPEG data is found by the decoder in the worker.

    Args:
        msg: the received message.
        max_pixels: frames whose header announces more pixels are refused.
        max_bytes: compressed frames larger than this are refused (the worker's slot capacity).

    Raises:
        FrameError: empty data, not JPEG/PNG, a header without a size, too many pixels or bytes,
            PNG data that is corrupt or truncated.
    """
    if "compresseddepth" in str(msg.format).lower():
        raise FrameError(f"compressedDepth images are not supported (format {msg.format!r})")
    data = msg.data
    if len(data) == 0:
        raise FrameError("empty compressed image")
    buffer = np.frombuffer(data, dtype=np.uint8)
    head = buffer[:32].tobytes()
    if head.startswith(_JPEG_MAGIC):
        fmt = "jpeg"
    elif head.startswith(PNG_SIGNATURE):
        fmt = "png"
    else:
        raise FrameError(
            f"compressed image (format {msg.format!r}) is not JPEG or PNG data: "
            f"it starts with {head[:8].hex(' ')}"
        )
    check_encoded_frame(buffer, fmt, max_bytes)
    if fmt == "png":
        height, width = check_png(buffer, max_pixels)
    else:
        height, width = _jpeg_size(buffer)
        check_frame_size(width, height, max_pixels, "jpeg image")
    return CompressedFrame(data=buffer, format=fmt, height=height, width=width)


def _jpeg_size(buffer: np.ndarray) -> tuple[int, int]:
    """Height and width from the first JPEG start-of-frame segment (walks segment headers only)."""
    size = buffer.shape[0]
    pos = 2
    while pos + 4 <= size:
        if buffer[pos] != 0xFF:
            raise FrameError(f"corrupt JPEG: no marker at byte {pos}")
        marker = int(buffer[pos + 1])
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = (int(buffer[pos + 2]) << 8) | int(buffer[pos + 3])
        if marker in _JPEG_SOF:
            if pos + 9 > size:
                break
            height = (int(buffer[pos + 5]) << 8) | int(buffer[pos + 6])
            width = (int(buffer[pos + 7]) << 8) | int(buffer[pos + 8])
            return height, width
        if marker in (0xDA, 0xD9) or length < 2:  # scan data or end before any frame header
            break
        pos += 2 + length
    raise FrameError("corrupt JPEG: no frame header with the image size")


def _byte_buffer(nbytes: int) -> array.array:
    """A zero-filled ``array.array('B')`` that rclpy accepts for ``msg.data`` without a copy."""
    return array.array("B", bytes(nbytes))


def _image(header: Any, height: int, width: int, encoding: str, step: int, data: array.array):
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = _HOST_BIGENDIAN
    msg.step = step
    msg.data = data
    return msg


def depth_to_image(depth: np.ndarray, header: Any) -> Any:
    """Build a 32FC1 ``sensor_msgs/Image`` from an (H, W) float32 depth map (one copy).

    Args:
        depth: relative inverse depth, (H, W) float32 (copied; it may be a shared-memory view).
        header: the input frame's header, attached unchanged.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth map must be 2-D, got shape {depth.shape}")
    if depth.dtype != np.float32:
        depth = depth.astype(np.float32)
    height, width = depth.shape
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(depth)).cast("B"))
    return _image(header, height, width, "32FC1", width * 4, data)


def normalize_depth(depth: np.ndarray, out: np.ndarray) -> None:
    """Write the per-frame min-max normalisation of ``depth`` to 0..255 into ``out`` (uint8).

    Non-finite values map to 0; a constant map becomes all zeros.
    """
    finite = np.isfinite(depth)
    all_finite = bool(finite.all())
    if all_finite:
        low, high = float(depth.min()), float(depth.max())
    elif finite.any():
        low, high = float(depth[finite].min()), float(depth[finite].max())
    else:
        out[...] = 0
        return
    span = high - low
    if span <= 0.0:
        out[...] = 0
        return
    scaled = np.subtract(depth, np.float32(low), dtype=np.float32)
    # +0.5 then truncation = round half up, like cv2.normalize(..., NORM_MINMAX, CV_8U).
    np.multiply(scaled, np.float32(255.0 / span), out=scaled)
    np.add(scaled, np.float32(0.5), out=scaled)
    if not all_finite:
        scaled[~finite] = 0.0
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.copyto(out, scaled, casting="unsafe")


def normalized_depth_to_image(depth: np.ndarray, header: Any) -> Any:
    """Build a mono8 ``sensor_msgs/Image`` with the per-frame min-max of ``depth`` (0..255)."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth map must be 2-D, got shape {depth.shape}")
    height, width = depth.shape
    msg = _image(header, height, width, "mono8", width, _byte_buffer(height * width))
    normalize_depth(depth, _pixels_of(msg, (height, width)))
    return msg


def bgr8_image(height: int, width: int, header: Any) -> tuple[Any, np.ndarray]:
    """A bgr8 ``sensor_msgs/Image`` and a writable (H, W, 3) view of its pixels to draw into."""
    msg = _image(header, height, width, "bgr8", width * 3, _byte_buffer(height * width * 3))
    return msg, _pixels_of(msg, (height, width, 3))


def _pixels_of(msg: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A writable view of ``msg.data`` as stored in the message.

    Kilted's generated setter copies an ``array.array`` unless ROS_PYTHON_CHECK_FIELDS is set
    (Humble keeps it), so the view is taken from the message after assignment.
    """
    return np.frombuffer(msg.data, np.uint8).reshape(shape)


_CV2_TO_BGR = {"rgb8": "COLOR_RGB2BGR", "rgba8": "COLOR_RGBA2BGR", "bgra8": "COLOR_BGRA2BGR",
               "mono8": "COLOR_GRAY2BGR"}  # fmt: skip


def to_bgr(pixels: np.ndarray, encoding: str, out: np.ndarray) -> None:
    """Convert a received frame in ``encoding`` to BGR into ``out`` (H, W, 3 uint8).

    Uses OpenCV when importable (a strided numpy copy of a 1408x1408 frame costs ~10 ms, OpenCV
    ~0.2 ms); numpy otherwise.
    """
    if encoding == "bgr8":
        np.copyto(out, pixels)
        return
    code = _CV2_TO_BGR.get(encoding)
    if code is None:
        raise FrameError(f"cannot convert encoding {encoding!r} to bgr8")
    cv2 = opencv()
    if cv2 is not None:
        cv2.cvtColor(pixels, getattr(cv2, code), dst=out)
    elif encoding == "rgb8":
        np.copyto(out, pixels[..., ::-1])
    elif encoding == "bgra8":
        np.copyto(out, pixels[..., :3])
    elif encoding == "rgba8":
        np.copyto(out, pixels[..., 2::-1])
    else:
        np.copyto(out, pixels.reshape(*pixels.shape[:2], 1))


@functools.cache
def opencv() -> Any | None:
    """OpenCV if installed (imported on first use: importing the node does not need it)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def image_from_array(pixels: np.ndarray, encoding: str, header: Any | None = None) -> Any:
    """Build a ``sensor_msgs/Image`` from an (H, W[, C]) uint8 array (tests, bench, demos)."""
    from std_msgs.msg import Header

    pixels = np.ascontiguousarray(pixels)
    height, width, channels = check_raw_frame(pixels, encoding)
    data = array.array("B")
    data.frombytes(memoryview(pixels).cast("B"))
    return _image(header or Header(), height, width, encoding, width * channels, data)
