"""A ``sensor_msgs/Image`` read straight from its serialized (CDR) bytes (numpy, no rclpy).

A raw subscription (``create_subscription(..., raw=True)``) hands the callback the message as
DDS sent it. Deserialising it into a Python message copies the pixels; this module only reads
the few fields around them and returns a zero-copy view of the pixel bytes, which the supervisor
then copies once, into shared memory.

The layout (OMG DDS-XTypes, "Extended CDR"; every offset below is relative to the payload, the
bytes after the 4-byte encapsulation header, and each primitive is aligned to its size)::

    encapsulation  uint16 representation id (big-endian), uint16 options (its low two bits:
                   padding bytes at the end of the buffer that are not payload)
    header.stamp   int32 sec, uint32 nanosec
    header.frame_id, encoding   uint32 length (terminating NUL included), bytes, NUL; read up
                   to the first NUL, as rclpy's deserialiser reads them
    height, width  uint32, uint32
    is_bigendian   uint8
    step           uint32
    data           uint32 length, bytes

Plain CDR (ids 0x0000 big-endian, 0x0001 little-endian; what Fast DDS sends for ROS types) and
plain XCDR2 (0x0006, 0x0007) are read. For this message they are the same bytes: XCDR2 differs
only in aligning 8-byte primitives to 4, and ``sensor_msgs/Image`` has none. The parameter-list
and delimited representations (0x0002, 0x0003, 0x0008 to 0x000b) frame the members with extra
headers and are refused by name, as is XML (0x0004).

Every length is checked against the buffer before it is used: a truncated or corrupt buffer is a
:class:`~aria_perception.errors.FrameError` naming the field, never an IndexError or a read past
the end. What the fields must hold (encodings, sizes, ``step``, ``input.max_pixels``) is checked
afterwards by :func:`aria_perception.ros.image_codec.image_to_frame`, the same rules for a
deserialised message and a parsed one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from aria_perception.errors import FrameError

__all__ = ["ENCAPSULATION_HEADER_BYTES", "CdrHeader", "CdrImage", "parse_header", "parse_image"]

#: Bytes of the encapsulation header in front of the CDR payload.
ENCAPSULATION_HEADER_BYTES = 4
# Representation ids read here -> struct byte order of the payload.
_READ = {0x0000: ">", 0x0001: "<", 0x0006: ">", 0x0007: "<"}
# Representation ids that lay the message out differently: refused by name.
_REFUSED = {
    0x0002: "PL_CDR_BE (parameter list)",
    0x0003: "PL_CDR_LE (parameter list)",
    0x0004: "XML",
    0x0008: "D_CDR2_BE (delimited XCDR2)",
    0x0009: "D_CDR2_LE (delimited XCDR2)",
    0x000A: "PL_CDR2_BE (parameter-list XCDR2)",
    0x000B: "PL_CDR2_LE (parameter-list XCDR2)",
}
_U32 = {order: struct.Struct(order + "I") for order in "<>"}
_TIME = {order: struct.Struct(order + "iI") for order in "<>"}
_SIZE = {order: struct.Struct(order + "II") for order in "<>"}


@dataclass(frozen=True)
class CdrHeader:
    """The ``std_msgs/Header`` of a serialized message, and where the next field starts.

    Attributes:
        sec: ``stamp.sec``.
        nanosec: ``stamp.nanosec``.
        frame_id: ``frame_id``.
        end: offset in the buffer of the first byte after the header.
        order: ``<`` or ``>``, the payload's byte order.
    """

    sec: int
    nanosec: int
    frame_id: str
    end: int
    order: str


@dataclass(frozen=True)
class CdrImage:
    """The fields of a serialized ``sensor_msgs/Image``, its pixels a view of the buffer.

    Attributes:
        sec: ``header.stamp.sec``.
        nanosec: ``header.stamp.nanosec``.
        frame_id: ``header.frame_id``.
        height: rows.
        width: columns.
        encoding: the encoding string as sent (not yet checked).
        is_bigendian: the flag as sent (0..255).
        step: bytes per row as sent (not yet checked against the width).
        data: 1-D uint8 view of the ``data`` bytes inside the buffer (read-only for ``bytes``);
            valid as long as the buffer is alive.
    """

    sec: int
    nanosec: int
    frame_id: str
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


class _Reader:
    """Reads aligned CDR primitives from a buffer, every read checked against its end."""

    __slots__ = ("buf", "order", "pos", "size")

    def __init__(self, buf: memoryview, order: str, size: int) -> None:
        self.buf = buf
        self.order = order
        self.pos = ENCAPSULATION_HEADER_BYTES
        self.size = size

    def take(self, nbytes: int, align: int, what: str) -> int:
        """Align to ``align``, claim ``nbytes`` for ``what``; the offset where they start."""
        start = self.pos + (-(self.pos - ENCAPSULATION_HEADER_BYTES) % align)
        if start + nbytes > self.size:
            raise FrameError(
                f"truncated serialized image: {what} needs bytes {start}..{start + nbytes} of a "
                f"{self.size}-byte payload"
            )
        self.pos = start + nbytes
        return start

    def u32(self, what: str) -> int:
        return _U32[self.order].unpack_from(self.buf, self.take(4, 4, what))[0]

    def string(self, what: str) -> str:
        length = self.u32(f"the length of {what}")
        if length == 0:  # no terminator at all; Fast CDR reads it as "", so do we
            return ""
        if length > self.size - self.pos:
            raise FrameError(
                f"corrupt serialized image: {what} of {length} bytes runs past the end of the "
                f"{self.size}-byte payload"
            )
        start = self.take(length, 1, what)
        if self.buf[start + length - 1] != 0:
            raise FrameError(f"corrupt serialized image: {what} does not end with a NUL byte")
        # A NUL inside ends the string, as it does for rclpy's deserialiser (a C string).
        text = bytes(self.buf[start : start + length - 1]).split(b"\0", 1)[0]
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise FrameError(f"corrupt serialized image: {what} is not UTF-8 ({err})") from err


def _reader(buffer: Any) -> _Reader:
    try:
        view = memoryview(buffer).cast("B")
    except TypeError as err:  # not a bytes-like object, or not one of bytes
        raise FrameError(f"a serialized image must be bytes, got {type(buffer).__name__}") from err
    if len(view) < ENCAPSULATION_HEADER_BYTES:
        raise FrameError(
            f"truncated serialized image: {len(view)} bytes, not even the encapsulation header"
        )
    rep = (view[0] << 8) | view[1]
    order = _READ.get(rep)
    if order is None:
        name = _REFUSED.get(rep, "unknown")
        raise FrameError(
            f"serialized image in representation 0x{rep:04x} ({name}) is not supported: "
            "plain CDR (0x0000, 0x0001) or plain XCDR2 (0x0006, 0x0007) only"
        )
    # The low two bits of the options count padding bytes at the end that are not payload.
    return _Reader(view, order, len(view) - (view[3] & 0x03))


def _header(reader: _Reader) -> CdrHeader:
    sec, nanosec = _TIME[reader.order].unpack_from(reader.buf, reader.take(8, 4, "header.stamp"))
    frame_id = reader.string("header.frame_id")
    return CdrHeader(sec, nanosec, frame_id, reader.pos, reader.order)


def parse_header(buffer: Any) -> CdrHeader:
    """Read only the ``std_msgs/Header`` at the start of a serialized message.

    Args:
        buffer: the serialized message, encapsulation header included (``bytes`` or any
            bytes-like object).

    Raises:
        FrameError: an unsupported representation, a truncated buffer, a ``frame_id`` that runs
            past the end, lacks its NUL or is not UTF-8.
    """
    return _header(_reader(buffer))


def parse_image(buffer: Any) -> CdrImage:
    """Read a serialized ``sensor_msgs/Image``; the pixel bytes stay where they are.

    Args:
        buffer: the serialized message, encapsulation header included (``bytes`` as a raw
            subscription delivers it, or any bytes-like object).

    Returns:
        The fields, with ``data`` a zero-copy uint8 view of the pixel bytes. Bytes after the
        data (alignment padding) are ignored, as a deserialiser ignores them.

    Raises:
        FrameError: an unsupported representation, a truncated buffer, a string or the data
            sequence running past the end, a string without its NUL or not UTF-8.
    """
    reader = _reader(buffer)
    header = _header(reader)
    height, width = _SIZE[reader.order].unpack_from(
        reader.buf, reader.take(8, 4, "height and width")
    )
    encoding = reader.string("encoding")
    is_bigendian = reader.buf[reader.take(1, 1, "is_bigendian")]
    step = reader.u32("step")
    length = reader.u32("the length of data")
    if length > reader.size - reader.pos:
        raise FrameError(
            f"truncated serialized image: data of {length} bytes starts at byte {reader.pos} "
            f"of a {reader.size}-byte payload"
        )
    data = np.frombuffer(reader.buf, np.uint8, count=length, offset=reader.pos)
    return CdrImage(
        header.sec, header.nanosec, header.frame_id, height, width, encoding, is_bigendian,
        step, data,
    )  # fmt: skip
