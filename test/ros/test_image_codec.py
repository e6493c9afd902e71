"""Image <-> numpy conversions and the frame validation, with real messages."""

from __future__ import annotations

import array

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from aria_perception.errors import FrameError
from aria_perception.ros import image_codec as codec

MAX = 1408 * 1408 * 2
#: The two intakes of a raw frame: the deserialised message, and its serialized bytes read in
#: place (input.raw_intake). Each gets the same checks and must give the same answer.
INTAKES = ("message", "serialized")


def _intake(msg: Image, intake: str):
    if intake == "message":
        return msg
    return codec.serialized_image(serialize_message(msg))


def _header() -> Header:
    header = Header()
    header.stamp.sec, header.stamp.nanosec = 1700000000, 42
    header.frame_id = "camera-rgb"
    return header


def _pixels(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if c == 1 else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("encoding", list(codec.RAW_CHANNELS))
def test_every_encoding_is_a_zero_copy_view(encoding: str) -> None:
    c = codec.RAW_CHANNELS[encoding]
    pixels = _pixels(5, 7, c)
    msg = codec.image_from_array(pixels, encoding, _header())
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 7 * c, encoding)
    frame = codec.image_to_frame(msg, MAX)
    assert frame.encoding == encoding
    assert (frame.height, frame.width) == (5, 7)
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert np.shares_memory(frame.pixels, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("intake", INTAKES)
@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "bgra8"])
def test_step_padding_is_honoured_through_strides(encoding: str, intake: str) -> None:
    c = codec.RAW_CHANNELS[encoding]
    h, w, pad = 4, 6, 5
    pixels = _pixels(h, w, c, seed=1)
    rows = pixels.reshape(h, w * c)
    padded = np.concatenate([rows, np.full((h, pad), 0xEE, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, step=w * c + pad)
    msg.data = array.array("B", padded.tobytes())
    received = _intake(msg, intake)
    frame = codec.image_to_frame(received, MAX)
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert not frame.pixels.flags.c_contiguous
    buffer = msg.data if intake == "message" else received.buffer
    assert np.shares_memory(frame.pixels, np.frombuffer(buffer, np.uint8))


@pytest.mark.parametrize("intake", INTAKES)
def test_bigendian_flag_does_not_matter_for_8_bit_encodings(intake: str) -> None:
    pixels = _pixels(3, 3, 3)
    msg = codec.image_from_array(pixels, "rgb8")
    msg.is_bigendian = 1
    np.testing.assert_array_equal(codec.image_to_frame(_intake(msg, intake), MAX).pixels, pixels)


def test_after_serialisation_the_view_still_matches() -> None:
    pixels = _pixels(8, 9, 3, seed=3)
    msg = codec.image_from_array(pixels, "bgr8", _header())
    back = deserialize_message(serialize_message(msg), Image)
    assert back.header.frame_id == "camera-rgb"
    np.testing.assert_array_equal(codec.image_to_frame(back, MAX).pixels, pixels)


def _raw(h: int, w: int, encoding: str, step: int, size: int) -> Image:
    msg = Image(height=h, width=w, encoding=encoding, step=step)
    msg.header = _header()
    msg.data = array.array("B", bytes(size))
    return msg


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_raw(4, 4, "yuv422", 8, 32), "unsupported encoding 'yuv422'"),
        (_raw(4, 4, "mono16", 8, 32), "16-bit encoding 'mono16' is not supported"),
        (_raw(4, 4, "16UC1", 8, 32), "16-bit encoding '16UC1'"),
        (_raw(4, 4, "", 12, 48), "unsupported encoding ''"),
        (_raw(0, 4, "rgb8", 12, 0), "zero-size image (4x0)"),
        (_raw(4, 0, "rgb8", 0, 0), "zero-size image (0x4)"),
        (_raw(4, 4, "rgb8", 11, 44), "step 11 is smaller than a row of 4 rgb8 pixels (12 bytes)"),
        (_raw(4, 4, "rgb8", 12, 47), "truncated: data holds 47 bytes, step*height = 12*4 = 48"),
        (_raw(4, 4, "rgb8", 12, 0), "truncated: data holds 0 bytes"),
        (_raw(4, 4, "rgb8", 12, 60), "size mismatch: data holds 60 bytes"),
    ],
)
@pytest.mark.parametrize("intake", INTAKES)
def test_bad_raw_frames_are_refused_with_the_reason(msg: Image, reason: str, intake: str) -> None:
    with pytest.raises(FrameError) as err:
        codec.image_to_frame(_intake(msg, intake), MAX)
    assert reason in str(err.value)


@pytest.mark.parametrize("intake", INTAKES)
def test_frames_over_max_pixels_are_refused(intake: str) -> None:
    msg = _intake(_raw(10, 10, "mono8", 10, 100), intake)
    assert codec.image_to_frame(msg, 100).width == 10
    with pytest.raises(FrameError, match=r"10x10 has 100 pixels, more than input.max_pixels=99"):
        codec.image_to_frame(msg, 99)


@pytest.mark.parametrize("intake", INTAKES)
def test_upper_case_encoding_is_accepted(intake: str) -> None:
    msg = codec.image_from_array(_pixels(2, 2, 3), "rgb8")
    msg.encoding = "RGB8"
    assert codec.image_to_frame(_intake(msg, intake), MAX).encoding == "rgb8"


def test_a_serialized_image_carries_the_header_and_keeps_its_buffer() -> None:
    pixels = _pixels(4, 5, 3, seed=2)
    buf = serialize_message(codec.image_from_array(pixels, "rgb8", _header()))
    received = codec.serialized_image(buf)
    assert received.header == _header() and received.error is None
    assert received.buffer is buf
    frame = codec.image_to_frame(received, MAX)
    np.testing.assert_array_equal(frame.pixels, pixels)
    assert np.shares_memory(frame.pixels, np.frombuffer(buf, np.uint8))


# ----------------------------------------------------------------------------- compressed


def _encoded(ext: str, h: int = 24, w: int = 40) -> bytes:
    import cv2

    ok, buf = cv2.imencode(ext, _pixels(h, w, 3, seed=4))
    assert ok
    return buf.tobytes()


def _compressed(data: bytes, fmt: str) -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.header = _header()
    msg.data = array.array("B", data)
    return msg


@pytest.mark.parametrize(
    ("ext", "fmt", "expected"),
    [
        (".jpg", "jpeg", "jpeg"),
        (".jpg", "rgb8; jpeg compressed bgr8", "jpeg"),
        (".jpg", "", "jpeg"),
        (".png", "png", "png"),
        (".png", "bgr8; png compressed bgr8", "png"),
        (".png", "jpeg", "png"),  # the bytes decide: the decoder sees the bytes
    ],
)
def test_compressed_format_and_size_come_from_the_header(ext: str, fmt: str, expected: str):
    data = _encoded(ext)
    frame = codec.compressed_to_frame(_compressed(data, fmt), MAX)
    assert frame.format == expected
    assert (frame.height, frame.width) == (24, 40)
    assert frame.data.tobytes() == data


def test_progressive_jpeg_size_is_found() -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", _pixels(31, 17, 3), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    frame = codec.compressed_to_frame(_compressed(buf.tobytes(), "jpeg"), MAX)
    assert (frame.height, frame.width) == (31, 17)


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (b"", "jpeg", "empty compressed image"),
        (
            b"GIF89a" + bytes(40),
            "jpeg",
            "(format 'jpeg') is not JPEG or PNG data: it starts with 47 49 46",
        ),
        (bytes(range(64)), "", "(format '') is not JPEG or PNG data"),
        (b"\xff\xd8\xff\xd9", "jpeg", "corrupt JPEG: no frame header"),
        (b"\xff\xd8\xff\xe0\x00\x10" + bytes(20), "jpeg", "corrupt JPEG"),
        (b"\x89PNG\r\n\x1a\n" + bytes(8), "png", "PNG data without an IHDR header"),
        (b"\x89PNG\r\n\x1a\n", "16UC1; compressedDepth png", "compressedDepth"),
    ],
)
def test_garbage_compressed_frames_are_refused(data: bytes, fmt: str, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        codec.compressed_to_frame(_compressed(data, fmt), MAX)
    assert reason in str(err.value)


def test_compressed_limits() -> None:
    data = _encoded(".png", 24, 40)
    with pytest.raises(FrameError, match="40x24 has 960 pixels, more than input.max_pixels=959"):
        codec.compressed_to_frame(_compressed(data, "png"), 959)
    with pytest.raises(FrameError, match=f"png frame of {len(data)} bytes is over the 10 bytes"):
        codec.compressed_to_frame(_compressed(data, "png"), MAX, max_bytes=10)


# ----------------------------------------------------------------------------- builders


def test_depth_image_is_32fc1_with_the_header_and_exact_values() -> None:
    depth = np.random.default_rng(5).random((6, 11), dtype=np.float32) * 100
    header = _header()
    msg = codec.depth_to_image(depth, header)
    assert msg.header is header
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC1", 6, 11, 44)
    assert msg.is_bigendian == 0
    back = deserialize_message(serialize_message(msg), Image)
    np.testing.assert_array_equal(np.frombuffer(back.data, np.float32).reshape(6, 11), depth)


def test_depth_image_copies_a_strided_view() -> None:
    depth = np.arange(60, dtype=np.float32).reshape(6, 10)[:, ::2]
    msg = codec.depth_to_image(depth, _header())
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.float32).reshape(6, 5), depth)


def test_normalized_depth_matches_cv2_minmax() -> None:
    import cv2

    depth = np.random.default_rng(6).random((33, 47), dtype=np.float32) * 7 + 3
    msg = codec.normalized_depth_to_image(depth, _header())
    assert (msg.encoding, msg.step) == ("mono8", 47)
    got = np.frombuffer(msg.data, np.uint8).reshape(33, 47)
    want = cv2.normalize(depth, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    assert got.min() == 0 and got.max() == 255
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_normalized_depth_edge_cases() -> None:
    out = np.full((2, 3), 7, np.uint8)
    codec.normalize_depth(np.full((2, 3), 4.0, np.float32), out)
    assert (out == 0).all()
    depth = np.array([[np.nan, 1.0, 3.0], [np.inf, 2.0, 1.0]], np.float32)
    codec.normalize_depth(depth, out)
    np.testing.assert_array_equal(out, [[0, 0, 255], [0, 128, 0]])
    codec.normalize_depth(np.full((2, 3), np.nan, np.float32), out)
    assert (out == 0).all()


@pytest.mark.parametrize("with_opencv", [True, False])
@pytest.mark.parametrize("encoding", list(codec.RAW_CHANNELS))
def test_to_bgr(encoding: str, with_opencv: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not with_opencv:  # the numpy branch, run for real
        monkeypatch.setattr(codec, "opencv", lambda: None)
    c = codec.RAW_CHANNELS[encoding]
    pixels = _pixels(3, 4, c, seed=7)
    out = np.zeros((3, 4, 3), np.uint8)
    codec.to_bgr(pixels, encoding, out)
    if c == 1:
        want = np.repeat(pixels[..., None], 3, axis=2)
    elif encoding.startswith("rgb"):
        want = pixels[..., 2::-1]
    else:
        want = pixels[..., :3]
    np.testing.assert_array_equal(out, want)


def test_cv_bridge_agrees_where_installed() -> None:
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge is not installable here")
    bridge = cv_bridge.CvBridge()
    for encoding, c in codec.RAW_CHANNELS.items():
        pixels = _pixels(5, 6, c, seed=8)
        msg = codec.image_from_array(pixels, encoding, _header())
        np.testing.assert_array_equal(
            codec.image_to_frame(msg, MAX).pixels, bridge.imgmsg_to_cv2(msg)
        )
        back = bridge.cv2_to_imgmsg(pixels, encoding=encoding)
        np.testing.assert_array_equal(codec.image_to_frame(back, MAX).pixels, pixels)
    depth = np.random.default_rng(9).random((4, 5), dtype=np.float32)
    np.testing.assert_array_equal(
        bridge.imgmsg_to_cv2(codec.depth_to_image(depth, _header())), depth
    )
