"""Corrupt PNG messages are refused by the node with a reason, before they reach the worker.

These are the PNGs that crashed the worker's decoder (torchvision's ``decode_png`` segfaults
when libpng fails while reading rows). The corruptions are built in memory from a PNG that
OpenCV encodes, with correct CRCs wherever only the content is meant to be wrong.
"""

from __future__ import annotations

import array
import struct
import zlib

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from aria_perception.errors import FrameError
from aria_perception.ros import image_codec as codec

MAX = 1408 * 1408 * 2
SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _valid(height: int = 240, width: int = 320) -> bytes:
    import cv2

    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(".png", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = len(SIGNATURE), []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _with_size(data: bytes, width: int, height: int) -> bytes:
    """The same data under an IHDR that announces another size, its CRC recomputed."""
    out = SIGNATURE
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            body = struct.pack(">II", width, height) + body[8:]
        out += _chunk(kind, body)
    return out


def _message(data: bytes) -> CompressedImage:
    msg = CompressedImage(format="png")
    msg.data = array.array("B", data)
    return msg


VALID = _valid()
ZEROED = bytearray(VALID)
ZEROED[60:200] = bytes(140)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(ZEROED), "corrupt PNG: CRC error in the IDAT chunk at byte 33"),
        (_with_size(VALID, 320, 241), "IHDR size 320x241 needs 231601 bytes of image data"),
        (_with_size(VALID, 321, 240), "IHDR size 321x240 needs 231360 bytes of image data"),
        (_with_size(VALID, 1990, 1990), "IHDR size 1990x1990 needs 11882290 bytes"),
        (VALID[: len(VALID) // 2], "truncated PNG"),
        (VALID[:-12], "truncated PNG: it ends at byte"),
        (b"\x89PNG\r\n\x1a\x00" + VALID[8:], "is not JPEG or PNG data"),
    ],
    ids=["idat_crc", "320x241", "321x240", "1990x1990", "truncated", "no_iend", "signature"],
)
def test_corrupt_png_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        codec.compressed_to_frame(_message(data), MAX)
    assert reason in str(err.value)


def test_the_valid_png_is_accepted() -> None:
    frame = codec.compressed_to_frame(_message(VALID), MAX)
    assert (frame.format, frame.height, frame.width) == ("png", 240, 320)
    assert frame.data.tobytes() == VALID


def test_the_size_is_checked_before_anything_is_inflated() -> None:
    # A 1990x1990 IHDR over 320x240 data is refused for its size when that is over the limit.
    with pytest.raises(FrameError, match="1990x1990 has 3960100 pixels, more than"):
        codec.compressed_to_frame(_message(_with_size(VALID, 1990, 1990)), 1408 * 1408)
