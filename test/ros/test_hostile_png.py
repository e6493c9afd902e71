"""Corrupt PNG messages are refused by the node with a reason, before they reach the worker.

These are the PNGs that crashed the worker's decoder (torchvision's ``decode_png`` segfaults
when libpng fails while reading rows). The corruptions are built in memory from a PNG that
Pillow encodes (png_cases), with correct CRCs wherever only the content is meant to be wrong.
"""

from __future__ import annotations

import array

import pytest
from png_cases import encode, pixels, with_size
from sensor_msgs.msg import CompressedImage

from aria_perception.errors import FrameError
from aria_perception.ros import image_codec as codec

MAX = 1408 * 1408 * 2


def _message(data: bytes) -> CompressedImage:
    msg = CompressedImage(format="png")
    msg.data = array.array("B", data)
    return msg


VALID = encode(pixels(240, 320))
ZEROED = bytearray(VALID)
ZEROED[60:200] = bytes(140)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(ZEROED), "corrupt PNG: CRC error in the IDAT chunk at byte 33"),
        (with_size(VALID, 320, 241), "IHDR size 320x241 needs 231601 bytes of image data"),
        (with_size(VALID, 321, 240), "IHDR size 321x240 needs 231360 bytes of image data"),
        (with_size(VALID, 1990, 1990), "IHDR size 1990x1990 needs 11882290 bytes"),
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
        codec.compressed_to_frame(_message(with_size(VALID, 1990, 1990)), 1408 * 1408)
