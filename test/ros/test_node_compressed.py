"""The node with CompressedImage input and ``input.qos: reliable``, in its own process."""

from __future__ import annotations

import array
import random
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from ros_harness import FAST_CPU, Harness, NodeProcess, frame, node_env, running_node, wait_for
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

pytestmark = pytest.mark.slow

NAME = "cam"
W, H = 320, 240
DETS = f"/{NAME}/detections"
RAW = f"/{NAME}/depth/raw"
OVERLAY = f"/{NAME}/detections/overlay"


@pytest.fixture(scope="module")
def harness(domain_id: int) -> Iterator[Harness]:
    h = Harness.open(node_env(domain_id), domain_id)
    h.subscribe(DETS, Detection2DArray)
    h.subscribe(RAW, Image, keep=20)
    h.subscribe(OVERLAY, Image, keep=20)
    yield h
    h.close()


@pytest.fixture(scope="module")
def node(domain_id: int, harness: Harness, tmp_path_factory) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("node") / "node.log"
    params = {**FAST_CPU, "input.transport": "compressed", "input.qos": "reliable"}
    with running_node(NAME, params, node_env(domain_id), harness, log) as proc:
        yield proc


_count = iter(range(1, 10**6))


def _compressed(data: bytes, fmt: str, frame_id: str) -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_800_000_000, next(_count)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", data)
    return msg


def _encoded(ext: str, seed: int) -> bytes:
    ok, buf = cv2.imencode(ext, frame(H, W, seed)[..., ::-1])
    assert ok
    return buf.tobytes()


def _answered(harness: Harness, frame_id: str, since: float) -> list[Detection2DArray]:
    return [m for m in harness.messages(DETS, since) if m.header.frame_id == frame_id]


def _feed(pub, harness: Harness, make, frame_id: str, timeout: float = 90.0) -> bool:
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        pub.publish(make())
        if wait_for(lambda: len(_answered(harness, frame_id, start)) >= 2, 0.5):
            return True
    return False


@pytest.mark.parametrize(
    ("ext", "fmt"), [(".jpg", "jpeg"), (".png", "png"), (".jpg", "rgb8; jpeg compressed bgr8")]
)
def test_jpeg_and_png_frames_are_answered(harness: Harness, node, ext: str, fmt: str) -> None:
    frame_id = f"compressed-{fmt}"
    start = time.monotonic()
    data = _encoded(ext, 3)
    with harness.publishing("/image/compressed", CompressedImage) as pub:
        assert _feed(pub, harness, lambda: _compressed(data, fmt, frame_id), frame_id)
    [answer, *_] = _answered(harness, frame_id, start)
    assert answer.header.frame_id == frame_id
    depth = [m for m in harness.messages(RAW, start) if m.header.frame_id == frame_id]
    assert depth and (depth[0].width, depth[0].height, depth[0].encoding) == (W, H, "32FC1")
    overlay = [m for m in harness.messages(OVERLAY, start) if m.header.frame_id == frame_id]
    assert overlay and (overlay[0].width, overlay[0].height, overlay[0].encoding) == (W, H, "bgr8")
    # The overlay is the decoded frame under the boxes: the bottom-right corner is untouched
    # only where no box is; compare the mean colour instead, which boxes barely move.
    pixels = np.frombuffer(overlay[0].data, np.uint8).reshape(H, W, 3).astype(float)
    expected = cv2.imdecode(np.frombuffer(_encoded(ext, 3), np.uint8), cv2.IMREAD_COLOR)
    assert abs(pixels.mean() - expected.mean()) < 40


def _rejected(harness: Harness, since: float = 0.0) -> int:
    return int((harness.last_status(NAME, since) or {}).get("rejected_frames", -1))


def test_corrupt_and_garbage_frames_are_rejected(harness: Harness, node) -> None:
    with harness.publishing("/image/compressed", CompressedImage) as pub:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30), "the node never matched"
        expected = _rejected(harness)
        good = _encoded(".jpg", 4)
        bad = [
            _compressed(good[: len(good) // 2], "jpeg", "bad"),  # corrupt: found by the decoder
            _compressed(b"GIF89a" + bytes(100), "jpeg", "bad"),  # not JPEG/PNG at all
            _compressed(b"\x89PNG\r\n\x1a\n" + bytes(30), "16UC1; compressedDepth png", "bad"),
            _compressed(b"", "jpeg", "bad"),
        ]
        for msg in bad:
            # One at a time: the input queue keeps the newest 2 frames only.
            pub.publish(msg)
            expected += 1
            assert wait_for(lambda e=expected: _rejected(harness) >= e, 30), harness.last_status(
                NAME
            )
        assert _feed(pub, harness, lambda: _compressed(good, "jpeg", "after-bad"), "after-bad")
    after = time.monotonic()
    assert wait_for(lambda: _rejected(harness, after) >= 0, 30)
    status = harness.last_status(NAME, after)
    assert int(status["rejected_frames"]) == expected, "every bad frame counted once"
    assert not [m for m in harness.messages(DETS) if m.header.frame_id == "bad"]
    assert status["worker_restarts"] == "0", "a bad frame killed the worker"
    log = node.log()
    for reason in ("corrupt jpeg", "is not JPEG or PNG data", "compressedDepth", "empty"):
        assert reason in log, reason


def test_distinct_garbage_frames_give_a_few_short_log_lines(harness: Harness, node) -> None:
    """Each frame quotes its own bytes (a hex prefix) and a 5,000-character format string."""
    rng = random.Random(5)
    with harness.publishing("/image/compressed", CompressedImage) as pub:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30), "the node never matched"
        start = time.monotonic()
        expected = _rejected(harness)
        for _ in range(30):
            fmt = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz'\" ;") for _ in range(5000))
            pub.publish(_compressed(b"\x00" + rng.randbytes(63), fmt, "garbage"))
            expected += 1
            # One at a time: the input queue keeps the newest 2 frames only.
            assert wait_for(lambda e=expected: _rejected(harness) >= e, 30)
        elapsed = time.monotonic() - start
    lines = [line for line in node.log().splitlines() if "('garbage'): compressed" in line]
    # One kind of reason: one line per 5 s at most, however varied the frames were.
    assert 1 <= len(lines) <= 1 + elapsed / 5.0, lines
    assert all(len(line) < 600 for line in lines), max(map(len, lines))


def test_forced_reliable_tells_about_a_best_effort_publisher(harness: Harness, node) -> None:
    """A publisher the forced profile cannot match is logged, and nothing arrives from it."""
    good = _encoded(".jpg", 5)
    start = time.monotonic()
    with (
        harness.publishing("/image/compressed", CompressedImage, reliable=False) as best_effort,
        harness.publishing("/image/compressed", CompressedImage) as reliable,
    ):
        assert wait_for(lambda: "NO frames will arrive from it" in node.log(), 30), node.log()
        # Frames from both: the reliable ones are answered, the best-effort ones never arrive.
        best_effort.publish(_compressed(good, "jpeg", "best-effort"))
        assert _feed(reliable, harness, lambda: _compressed(good, "jpeg", "reliable"), "reliable")
        best_effort.publish(_compressed(good, "jpeg", "best-effort"))
        assert _feed(reliable, harness, lambda: _compressed(good, "jpeg", "reliable2"),
                     "reliable2")  # fmt: skip
    assert not _answered(harness, "best-effort", start)
