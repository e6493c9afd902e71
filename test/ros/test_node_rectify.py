"""The node with ``input.rectify`` on a real Aria RGB frame, in its own process (real DDS).

The frame and the camera's factory calibration come from the Gen1 sample recording through
projectaria-tools; the camera_info carries the calibration by the package's Fisheye624
convention. ``~/image/rect`` is compared with projectaria-tools' own rectification
(``distort_by_calibration`` to ``get_linear_camera_calibration``), turned 90 degrees clockwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from aria_cases import RGB_STREAM, aria_provider, fisheye624_fields
from ros_harness import FAST_CPU, Harness, NodeProcess, node_env, running_node, wait_for
from sensor_msgs.msg import CameraInfo, Image

from aria_perception.optics import rotation_matrix
from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow

NAME = "rectify_cam"
RECT = f"/{NAME}/image/rect"
INFO = f"/{NAME}/depth/camera_info"
# 960x768 at 500 px: inside the lens, and not square, so that the quarter turn shows.
WIDTH, HEIGHT, FOCAL = 960, 768, 500.0
PARAMS = {
    **FAST_CPU,
    "input.rectify": True,
    "input.rotation": 90,
    "rectify.width": WIDTH,
    "rectify.height": HEIGHT,
    "rectify.focal_px": FOCAL,
}


@pytest.fixture(scope="module")
def aria() -> dict[str, Any]:
    """The sample's first RGB frame, its calibration fields and projectaria-tools' reference."""
    from projectaria_tools.core import calibration
    from projectaria_tools.core.stream_id import StreamId

    provider = aria_provider()
    image = provider.get_image_data_by_index(StreamId(RGB_STREAM), 0)[0].to_numpy_array()
    src = provider.get_device_calibration().get_camera_calib("camera-rgb")
    dst = calibration.get_linear_camera_calibration(WIDTH, HEIGHT, FOCAL, "camera-rgb")
    reference = calibration.distort_by_calibration(image, dst, src)
    lit = calibration.distort_by_calibration(np.full_like(image, 255), dst, src)
    width, height = (int(v) for v in src.get_image_size())
    return {
        "image": image,
        "fields": fisheye624_fields(src.get_projection_params(), width, height),
        "reference": np.rot90(reference, k=-1),
        "valid": np.rot90(lit[..., 0] > 0, k=-1),
    }


@pytest.fixture(scope="module")
def harness(domain_id: int) -> Iterator[Harness]:
    h = Harness.open(node_env(domain_id), domain_id)
    h.subscribe(RECT, Image, keep=4)
    h.subscribe(INFO, CameraInfo, keep=20)
    yield h
    h.close()


@pytest.fixture(scope="module")
def node(domain_id: int, harness: Harness, aria, tmp_path_factory) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("node") / "node.log"
    with running_node(NAME, PARAMS, node_env(domain_id), harness, log) as proc:
        yield proc


_stamps = iter(range(1, 10**6))


def _frame(aria: dict[str, Any], frame_id: str) -> Image:
    msg = image_from_array(aria["image"], "rgb8")
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_800_000_000, next(_stamps)
    return msg


def _info(fields: dict[str, Any], frame_id: str = "camera-rgb") -> CameraInfo:
    msg = CameraInfo(distortion_model=fields["distortion_model"])
    msg.header.frame_id = frame_id
    msg.width, msg.height = fields["width"], fields["height"]
    msg.k, msg.d = [float(v) for v in fields["k"]], [float(v) for v in fields["d"]]
    return msg


def _rects(harness: Harness, frame_id: str, since: float) -> list[Image]:
    return [m for m in harness.messages(RECT, since) if m.header.frame_id == frame_id]


def _feed(harness: Harness, aria, frame_id: str, info: CameraInfo | None = None) -> Image:
    """Publish the frame (with ``info`` before each) until a rectified answer comes back."""
    start = time.monotonic()
    with (
        harness.publishing("/image", Image) as frames,
        harness.publishing("/camera_info", CameraInfo) as infos,
    ):
        deadline = start + 120.0
        while time.monotonic() < deadline:
            if info is not None:
                infos.publish(info)
            frames.publish(_frame(aria, frame_id))
            if wait_for(lambda: _rects(harness, frame_id, start), 3.0):
                return _rects(harness, frame_id, start)[-1]
    raise AssertionError(f"no {RECT} for {frame_id}")


def _psnr(msg: Image, aria: dict[str, Any]) -> float:
    got = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
    valid = aria["valid"]
    err = got[valid].astype(np.float64) - aria["reference"][valid]
    return 10 * math.log10(255**2 / max(float(np.mean(err**2)), 1e-12))


def test_frames_before_the_camera_info_are_rejected_and_counted(harness, node, aria) -> None:
    start = time.monotonic()
    with harness.publishing("/image", Image) as frames:

        def counted() -> bool:
            frames.publish(_frame(aria, "early"))
            status = harness.last_status(NAME, start) or {}
            return int(status.get("rejected_frames", 0)) >= 1

        assert wait_for(counted, 60.0, interval=0.5), node.log()
    assert "no camera_info has arrived yet" in node.log()
    assert not _rects(harness, "early", 0.0)


def test_rect_matches_projectaria_tools_rotated(harness, node, aria) -> None:
    msg = _feed(harness, aria, "rect", _info(aria["fields"]))
    assert (msg.width, msg.height, msg.encoding) == (HEIGHT, WIDTH, "rgb8")
    assert msg.header.stamp.sec == 1_800_000_000  # the input header, unchanged
    assert aria["valid"].mean() > 0.9
    psnr = _psnr(msg, aria)
    assert psnr >= 30.0, psnr


def test_depth_camera_info_is_the_rotated_pinhole(harness, node, aria) -> None:
    start = time.monotonic()
    _feed(harness, aria, "info", _info(aria["fields"]))
    assert wait_for(lambda: harness.messages(INFO, start), 30.0)
    info = harness.messages(INFO, start)[-1]
    assert (info.width, info.height) == (HEIGHT, WIDTH)  # turned a quarter
    cx, cy = (HEIGHT - 1) / 2, (WIDTH - 1) / 2
    np.testing.assert_allclose(info.k, [FOCAL, 0, cx, 0, FOCAL, cy, 0, 0, 1])
    np.testing.assert_allclose(info.p, [FOCAL, 0, cx, 0, 0, FOCAL, cy, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(np.reshape(info.r, (3, 3)), rotation_matrix(90))
    assert info.distortion_model == "plumb_bob" and not any(info.d)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"distortion_model": "kannala_brandt"}, "is not one of"),
        ({"d": [0.1] * 5}, "D has 5 values; fisheye624 takes 12"),
        ({"k": [math.nan, 0, 715.0, 0, math.nan, 716.0, 0, 0, 1]}, "NaN"),
    ],
)
def test_a_bad_camera_info_is_refused_and_the_last_good_one_kept(
    harness, node, aria, change: dict, reason: str
) -> None:
    bad = _info({**aria["fields"], **change}, frame_id=f"bad {reason}")
    with harness.publishing("/camera_info", CameraInfo) as infos:

        def refused() -> bool:
            infos.publish(bad)
            return reason in node.log()

        assert wait_for(refused, 60.0, interval=0.5), node.log()[-3000:]
    assert "refused camera_info" in node.log()
    # Frames after the refusal are rectified with the last good calibration.
    msg = _feed(harness, aria, f"after {reason}")
    assert _psnr(msg, aria) >= 30.0
    assert node.proc.poll() is None
