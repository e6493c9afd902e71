"""Both intakes of sensor_msgs/Image at the node, in its own process, through real DDS.

``input.raw_intake: true`` (the default) takes frames serialized and reads them in place;
``false`` lets rclpy deserialise them. The same frames must give the same answers either way:
every output carries the input's header and size, for rgb8, mono8 and a padded ``step``. With
the raw intake, hostile serialized bytes (published as they are) are refused and counted, and
the log line names the header as far as it could be read.
"""

from __future__ import annotations

import array
import itertools
import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest
from ros_harness import FAST_CPU, Harness, NodeProcess, frame, running_node, wait_for
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow

NAME = "intake"
W, H = 320, 240
DETS = f"/{NAME}/detections"
OVERLAY = f"/{NAME}/detections/overlay"
DEPTH = f"/{NAME}/depth/raw"
_stamps = itertools.count(1)


@pytest.fixture(scope="module")
def harness(env: dict[str, str], domain_id: int) -> Iterator[Harness]:
    h = Harness.open(env, domain_id)
    h.subscribe(DETS, Detection2DArray)
    h.subscribe(OVERLAY, Image, keep=20)
    h.subscribe(DEPTH, Image, keep=20)
    yield h
    h.close()


@pytest.fixture(scope="module", params=[True, False], ids=["raw_intake", "deserialised"])
def node(
    request: pytest.FixtureRequest,
    env: dict[str, str],
    harness: Harness,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NodeProcess, bool]]:
    raw_intake = bool(request.param)
    log = tmp_path_factory.mktemp("node") / f"node-{request.param_index}.log"
    params = {**FAST_CPU, "input.raw_intake": raw_intake}
    with running_node(NAME, params, env, harness, log) as proc:
        yield proc, raw_intake


def _image(encoding: str, frame_id: str, pad: int = 0) -> Image:
    channels = 1 if encoding == "mono8" else 3
    pixels = frame(H, W, next(_stamps) % 7, channels)
    if pad:
        msg = Image(height=H, width=W, encoding=encoding, step=W * channels + pad)
        rows = np.concatenate([pixels.reshape(H, -1), np.full((H, pad), 0xAB, np.uint8)], 1)
        msg.data = array.array("B", rows.tobytes())
    else:
        msg = image_from_array(pixels, encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_950_000_000, next(_stamps)
    msg.header.frame_id = frame_id
    return msg


def _stamp(msg: object) -> tuple[int, int]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def _status(harness: Harness) -> dict[str, str]:
    return harness.last_status(NAME) or {}


@pytest.mark.parametrize(("encoding", "pad"), [("rgb8", 0), ("mono8", 0), ("rgb8", 7)])
def test_frames_are_answered_with_the_input_header_and_size(
    harness: Harness, node: tuple[NodeProcess, bool], encoding: str, pad: int
) -> None:
    proc, raw_intake = node
    frame_id = f"{encoding}-pad{pad}-{'raw' if raw_intake else 'msg'}-ü"
    start = time.monotonic()
    sent: set[tuple[int, int]] = set()

    def answered(topic: str) -> set[tuple[int, int]]:
        return {_stamp(m) for m in harness.messages(topic, start)} & sent

    with harness.publishing("/image", Image) as pub:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30), "the node never matched"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
            len(answered(t)) >= 2 for t in (DETS, OVERLAY, DEPTH)
        ):
            msg = _image(encoding, frame_id, pad)
            key = _stamp(msg)
            sent.add(key)
            pub.publish(msg)
            wait_for(lambda k=key: k in answered(DETS), 2.0)
    assert all(len(answered(t)) >= 2 for t in (DETS, OVERLAY, DEPTH)), proc.log()[-3000:]
    for topic in (DETS, OVERLAY, DEPTH):
        for out in harness.messages(topic, start):
            if _stamp(out) in sent:
                assert out.header.frame_id == frame_id, topic
    for out in harness.messages(OVERLAY, start):
        if _stamp(out) in sent:  # drawn on the received pixels: the input's size
            assert (out.encoding, out.width, out.height) == ("bgr8", W, H)
            assert np.frombuffer(out.data, np.uint8).any()
    for out in harness.messages(DEPTH, start):
        if _stamp(out) in sent:
            assert (out.encoding, out.width, out.height) == ("32FC1", W, H)
    expected = ", serialized, input.qos" if raw_intake else "(Image, input.qos"
    assert expected in proc.log()


def _serialized(frame_id: bytes, encoding: bytes = b"rgb8\0", rep: int = 0x0001) -> bytes:
    """A 1x1 frame's serialized bytes with exactly these string fields (little-endian CDR)."""
    out = bytearray(struct.pack(">HH", rep, 0))
    out += struct.pack("<iII", 1_960_000_000, 5, len(frame_id)) + frame_id
    out += bytes(-(len(out) - 4) % 4)
    out += struct.pack("<III", 1, 1, len(encoding)) + encoding + b"\0"
    out += bytes(-(len(out) - 4) % 4)
    return bytes(out + struct.pack("<II", 3, 3) + b"abc")


def test_hostile_serialized_bytes_are_refused_and_counted(
    harness: Harness, node: tuple[NodeProcess, bool]
) -> None:
    proc, raw_intake = node
    if not raw_intake:
        pytest.skip("bytes that rclpy cannot deserialise never reach a deserialising node")
    good = _serialized(b"hostile-ok\0")
    cases = {
        "truncated": good[:30],
        "representation": _serialized(b"cam\0", rep=0x000B),
        "not UTF-8": _serialized(b"c\xffm\0"),
        "bad encoding": _serialized(b"hostile-cam\0", b"yuv\xe9\0"),
    }
    with harness.publishing("/image", Image) as pub:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30), "the node never matched"
        assert wait_for(lambda: int(_status(harness).get("rejected_frames", -1)) >= 0, 30)
        expected = int(_status(harness)["rejected_frames"])
        for buf in cases.values():
            pub.publish(buf)  # the bytes as they are: rclpy sends them without a check
            expected += 1
            assert wait_for(
                lambda e=expected: int(_status(harness)["rejected_frames"]) >= e, 60
            ), (expected, _status(harness), proc.log()[-3000:])
    assert int(_status(harness)["rejected_frames"]) == expected
    log = proc.log()
    assert "truncated serialized image" in log
    assert "representation 0x000b (PL_CDR2_LE" in log
    assert "header.frame_id is not UTF-8" in log
    # The header was readable: the log line names the frame.
    assert "rejected frame 1960000000.000000005 ('hostile-cam')" in log
    assert "encoding is not UTF-8" in log
    # The node goes on: a good frame is answered.
    start = time.monotonic()
    with harness.publishing("/image", Image) as pub:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30)

        def answered() -> bool:
            pub.publish(_image("rgb8", "after-hostile"))
            return any(m.header.frame_id == "after-hostile" for m in harness.messages(DETS, start))

        assert wait_for(answered, 90, interval=1.0), proc.log()[-3000:]
