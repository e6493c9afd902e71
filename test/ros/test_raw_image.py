"""The serialized-Image reader against rclpy's own serialisation, and against broken bytes.

Property-style without a property library: seeded random messages (every encoding, odd widths,
padded rows, frame ids of every length modulo 4, empty, long and non-ASCII), every truncation of
valid buffers, and random corruptions, checked against what rclpy's deserialiser makes of the
same bytes.
"""

from __future__ import annotations

import array
import random
import struct

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from aria_perception.errors import FrameError
from aria_perception.records import RAW_CHANNELS
from aria_perception.ros import image_codec as codec
from aria_perception.ros.raw_image import parse_header, parse_image

MAX = 4096 * 4096
FRAME_IDS = ["", "c", "ca", "cam", "camera", "camera-rgb", "x" * 1000, "kamera-ü-相机-🎥"]


def _message(rng: random.Random, encoding: str, frame_id: str, pad: int = 0) -> Image:
    channels = RAW_CHANNELS[encoding]
    height, width = rng.randint(1, 9), rng.randint(1, 13)
    step = width * channels + pad
    msg = Image(height=height, width=width, encoding=encoding, step=step)
    msg.is_bigendian = rng.randint(0, 1)
    msg.header.stamp.sec = rng.randint(-(2**31), 2**31 - 1)
    msg.header.stamp.nanosec = rng.randint(0, 2**32 - 1)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", rng.randbytes(step * height))
    return msg


def _messages(count: int, seed: int = 0) -> list[Image]:
    rng = random.Random(seed)
    return [
        _message(rng, rng.choice(list(RAW_CHANNELS)), rng.choice(FRAME_IDS), rng.choice([0, 1, 5]))
        for _ in range(count)
    ]


def _cdr(msg: Image, order: str = "<", rep: int | None = None) -> bytes:
    """An independent CDR writer (its little-endian output is checked against rclpy's)."""
    if rep is None:
        rep = 0x0001 if order == "<" else 0x0000
    out = bytearray(struct.pack(">HH", rep, 0))

    def put(fmt: str, *values: int) -> None:
        size = struct.calcsize(fmt)
        while (len(out) - 4) % size:
            out.append(0)
        out.extend(struct.pack(order + fmt, *values))

    def string(text: str) -> None:
        raw = text.encode() + b"\0"
        put("I", len(raw))
        out.extend(raw)

    put("i", msg.header.stamp.sec)
    put("I", msg.header.stamp.nanosec)
    string(msg.header.frame_id)
    put("I", msg.height)
    put("I", msg.width)
    string(msg.encoding)
    put("B", msg.is_bigendian)
    put("I", msg.step)
    put("I", len(msg.data))
    out.extend(bytes(msg.data))
    return bytes(out)


def _padding_zeroed(buf: bytes, reference: bytes) -> bytes:
    """``buf`` with the bytes zero in ``reference`` zeroed (rclpy leaves padding bytes as is)."""
    return bytes(0 if r == 0 else b for b, r in zip(buf, reference, strict=True))


def _same(parsed: codec.RawFrame, msg: Image) -> None:
    want = codec.image_to_frame(msg, MAX)
    assert parsed.encoding == want.encoding
    np.testing.assert_array_equal(parsed.pixels, want.pixels)


@pytest.mark.parametrize("seed", range(4))
def test_fields_and_pixels_are_exactly_the_messages(seed: int) -> None:
    for msg in _messages(60, seed):
        buf = serialize_message(msg)
        assert _padding_zeroed(buf, _cdr(msg)) == _cdr(msg), "the test's writer is rclpy's CDR"
        image = parse_image(buf)
        head = msg.header
        assert (image.sec, image.nanosec, image.frame_id) == (
            head.stamp.sec, head.stamp.nanosec, head.frame_id
        )  # fmt: skip
        assert (image.height, image.width, image.encoding, image.is_bigendian, image.step) == (
            msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step
        )  # fmt: skip
        assert image.data.tobytes() == bytes(msg.data)
        assert np.shares_memory(image.data, np.frombuffer(buf, np.uint8)), "a view, not a copy"
        serialized = codec.serialized_image(buf)
        assert serialized.header == head
        frame = codec.image_to_frame(serialized, MAX)
        _same(frame, deserialize_message(buf, Image))
        assert np.shares_memory(frame.pixels, np.frombuffer(buf, np.uint8))


@pytest.mark.parametrize("rep", [0x0000, 0x0006, 0x0007])
def test_big_endian_and_plain_xcdr2_read_the_same(rep: int) -> None:
    order = "<" if rep & 1 else ">"
    for msg in _messages(20, seed=rep):
        image = parse_image(_cdr(msg, order, rep))
        assert (image.sec, image.nanosec, image.frame_id, image.height, image.width) == (
            msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id,
            msg.height, msg.width,
        )  # fmt: skip
        assert (image.encoding, image.step, image.data.tobytes()) == (
            msg.encoding, msg.step, bytes(msg.data)
        )  # fmt: skip


@pytest.mark.parametrize(
    ("rep", "name"),
    [(0x0002, "PL_CDR_BE"), (0x0003, "PL_CDR_LE"), (0x0004, "XML"), (0x0009, "D_CDR2_LE"),
     (0x000A, "PL_CDR2_BE"), (0x000B, "PL_CDR2_LE"), (0x1234, "unknown")],
)  # fmt: skip
def test_other_representations_are_refused_by_name(rep: int, name: str) -> None:
    buf = struct.pack(">H", rep) + serialize_message(_messages(1)[0])[2:]
    with pytest.raises(FrameError, match=f"representation 0x{rep:04x} \\({name}"):
        parse_image(buf)


def test_trailing_padding_is_ignored_and_an_empty_length_string_is_empty() -> None:
    msg = _messages(1, seed=9)[0]
    msg.header.frame_id = ""
    buf = serialize_message(msg)
    assert parse_image(buf + bytes(3)).data.tobytes() == bytes(msg.data)
    # frame_id with length 0 (no NUL at all): Fast CDR reads it as "", so does the reader.
    zero = bytearray(_cdr(msg))
    assert zero[12:17] == b"\x01\x00\x00\x00\x00"
    del zero[16:20]  # the NUL and its padding
    zero[12] = 0
    image = parse_image(bytes(zero))
    assert image.frame_id == "" and image.data.tobytes() == bytes(msg.data)


def _with_string(frame_id: bytes, encoding: bytes = b"rgb8\0") -> bytes:
    """A 1x1 rgb8 message whose frame id and encoding fields hold exactly these bytes."""
    out = bytearray(b"\x00\x01\x00\x00") + struct.pack("<iII", 7, 8, len(frame_id)) + frame_id

    def pad() -> None:
        while (len(out) - 4) % 4:
            out.append(0)

    pad()
    out += struct.pack("<III", 1, 1, len(encoding)) + encoding + b"\0"
    pad()
    return bytes(out + struct.pack("<II", 3, 3) + b"abc")


@pytest.mark.parametrize(
    ("buf", "reason"),
    [
        (b"", "not even the encapsulation header"),
        (b"\x00\x01\x00", "not even the encapsulation header"),
        (b"\x00\x01\x00\x00", "header.stamp needs bytes 4..12 of a 4-byte payload"),
        (_with_string(b"cam"), "header.frame_id does not end with a NUL byte"),
        (_with_string(b"c\xffm\0"), "header.frame_id is not UTF-8"),
        (_with_string(b"cam\0", b"rg\xe9\0"), "encoding is not UTF-8"),
        (_with_string(b"cam\0", b"rgb8"), "encoding does not end with a NUL byte"),
    ],
)
def test_broken_fields_are_refused_with_the_reason(buf: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match="serialized image") as err:
        codec.image_to_frame(codec.serialized_image(buf), MAX)
    assert reason in str(err.value)


def test_a_nul_inside_a_string_ends_it_as_for_rclpy() -> None:
    buf = _with_string(b"ca\0\xffm\0")
    assert parse_image(buf).frame_id == "ca" == deserialize_message(buf, Image).header.frame_id


def test_a_rejected_frame_keeps_the_header_it_could_read() -> None:
    assert _with_string(b"cam\0")[-3:] == b"abc" and parse_image(_with_string(b"cam\0"))
    bad = codec.serialized_image(_with_string(b"cam\0", b"rg\xe9\0"))
    assert bad.image is None and isinstance(bad.error, FrameError)
    assert (bad.header.stamp.sec, bad.header.stamp.nanosec, bad.header.frame_id) == (7, 8, "cam")
    unreadable = codec.serialized_image(b"\x00\x01\x00\x00\x01")
    assert unreadable.header.frame_id == "" and unreadable.header.stamp.sec == 0
    assert parse_header(_with_string(b"cam\0")).frame_id == "cam"


def test_not_bytes_is_a_frame_error() -> None:
    for junk in (None, 3, "text", np.zeros(4, np.float32)[::2]):
        with pytest.raises(FrameError):
            codec.image_to_frame(codec.serialized_image(junk), MAX)


def test_every_truncation_is_refused() -> None:
    for msg in _messages(6, seed=11):
        buf = serialize_message(msg)
        for end in range(len(buf)):
            with pytest.raises(FrameError):
                codec.image_to_frame(codec.serialized_image(buf[:end]), MAX)


def test_random_corruption_is_a_frame_error_or_what_rclpy_reads() -> None:
    """Flipped bytes: refused, or read as rclpy's deserialiser reads the same bytes."""
    rng = random.Random(5)
    outcomes = {"refused": 0, "read": 0}
    for msg in _messages(40, seed=12):
        buf = serialize_message(msg)
        for _ in range(50):
            broken = bytearray(buf)
            for _ in range(rng.randint(1, 4)):
                broken[rng.randrange(len(broken))] = rng.randrange(256)
            broken_bytes = bytes(broken)
            try:
                frame = codec.image_to_frame(codec.serialized_image(broken_bytes), MAX)
            except FrameError:
                outcomes["refused"] += 1
                continue
            outcomes["read"] += 1
            back = deserialize_message(broken_bytes, Image)
            _same(frame, back)
            assert parse_image(broken_bytes).frame_id == back.header.frame_id
    assert outcomes["refused"] and outcomes["read"], outcomes


def test_a_large_frame_is_read_in_place() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (1408, 1408, 3), dtype=np.uint8)
    msg = codec.image_from_array(pixels, "rgb8")
    msg.header.frame_id = "aria-rgb"
    buf = serialize_message(msg)
    frame = codec.image_to_frame(codec.serialized_image(buf), MAX)
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert np.shares_memory(frame.pixels, np.frombuffer(buf, np.uint8))
