"""``bench import`` on the public Aria sample recordings: what the bag holds, record for record."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from aria_data import GEN1, GEN2, aria_recording, calibration, recorded
from bag_messages import bag_messages, msgtypes, stamp_ns

from aria_perception.bench.aria_import import ImportSpec, import_recording
from aria_perception.bench.bag import read_bag
from aria_perception.bench.frame import COMPRESSED_TYPE, IMAGE_TYPE

INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def image_array(msg) -> np.ndarray:
    channels = {"rgb8": 3, "mono8": 1}[msg.encoding]
    assert msg.step == msg.width * channels and not msg.is_bigendian
    rows = np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, channels)
    return rows if channels == 3 else rows[..., 0]


def check_camera_info(msg, path: Path, label: str) -> None:
    """K, D, size, R and P follow the fisheye624 convention for this camera's calibration."""
    model, params, (width, height) = calibration(path, label)
    assert model.endswith("FISHEYE624") and len(params) == 15
    f, cx, cy = params[:3]
    assert msg.distortion_model == "fisheye624"
    assert (msg.width, msg.height) == (width, height)
    assert list(msg.k) == [f, 0, cx, 0, f, cy, 0, 0, 1]
    assert list(msg.d) == params[3:] and len(msg.d) == 12
    assert list(msg.r) == [1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert list(msg.p) == [f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0]


def check_camera(
    messages: dict, path: Path, camera: str, stream: str, label: str, encoding: str
) -> None:
    """Every record of ``stream`` is one image and one CameraInfo with the record's stamp."""
    want = recorded(path, stream)
    images = messages[f"/{camera}/image_raw"]
    infos = messages[f"/{camera}/camera_info"]
    assert len(images) == len(infos) == len(want)
    for image, info, (capture_ns, pixels) in zip(images, infos, want, strict=True):
        assert stamp_ns(image) == stamp_ns(info) == capture_ns
        assert image.header.frame_id == info.header.frame_id == camera
        assert image.encoding == encoding
        assert np.array_equal(image_array(image), pixels)  # as recorded: no rotation
        check_camera_info(info, path, label)


def test_gen1_rgb_and_slam_cameras_with_their_calibration(tmp_path: Path) -> None:
    path = aria_recording(GEN1)
    result = import_recording(ImportSpec(path, tmp_path / "bag", progress=False))
    bag = tmp_path / "bag"
    assert any(p.suffix == ".mcap" for p in bag.iterdir())  # mcap is the default
    cameras = ("camera_rgb", "camera_slam_left", "camera_slam_right")
    assert msgtypes(bag) == {
        **{f"/{c}/image_raw": IMAGE_TYPE for c in cameras},
        **{f"/{c}/camera_info": INFO_TYPE for c in cameras},
    }
    messages = bag_messages(bag)
    check_camera(messages, path, "camera_rgb", "214-1", "camera-rgb", "rgb8")
    check_camera(messages, path, "camera_slam_left", "1201-1", "camera-slam-left", "mono8")
    check_camera(messages, path, "camera_slam_right", "1201-2", "camera-slam-right", "mono8")
    assert result.counts == {topic: 3 for topic in msgtypes(bag)}
    assert result.absent == [] and "et" in result.others
    first = recorded(path, "214-1")[0][0]
    last = max(recorded(path, s)[-1][0] for s in ("214-1", "1201-1", "1201-2"))
    assert (result.first_ns, result.last_ns) == (first, last)
    assert "/camera_rgb/image_raw 3" in result.summary()


def test_gen2_rgb_in_sqlite3_and_absent_defaults_named(tmp_path: Path) -> None:
    path = aria_recording(GEN2)
    bag = tmp_path / "bag"
    result = import_recording(ImportSpec(path, bag, storage="sqlite3", progress=False))
    assert any(p.suffix == ".db3" for p in bag.iterdir())
    assert msgtypes(bag) == {
        "/camera_rgb/image_raw": IMAGE_TYPE,
        "/camera_rgb/camera_info": INFO_TYPE,
    }
    messages = bag_messages(bag)
    check_camera(messages, path, "camera_rgb", "214-1", "camera-rgb", "rgb8")
    assert messages["/camera_rgb/image_raw"][0].width == 2016
    # Gen2 names its SLAM cameras differently: the defaults are absent, the others are listed.
    assert result.absent == ["slam-left", "slam-right"]
    assert "slam-front-left" in result.others and "et-left" in result.others


def test_eye_tracking_cameras_by_the_et_name(tmp_path: Path) -> None:
    gen2 = aria_recording(GEN2)
    import_recording(ImportSpec(gen2, tmp_path / "g2", streams=("et",), progress=False))
    messages = bag_messages(tmp_path / "g2")
    assert sorted(messages) == sorted(
        f"/camera_et_{side}/{leaf}"
        for side in ("left", "right")
        for leaf in ("image_raw", "camera_info")
    )
    for side, stream in (("left", "211-1"), ("right", "211-2")):
        want = recorded(gen2, stream)
        images = messages[f"/camera_et_{side}/image_raw"]
        assert [stamp_ns(m) for m in images] == [t for t, _ in want]
        assert all(
            np.array_equal(image_array(m), p)
            for m, p in zip(images, [p for _, p in want], strict=True)
        )
        # Kannala-Brandt K3 is OpenCV's fisheye model: ROS's equidistant, 4 coefficients.
        _, params, size = calibration(gen2, f"camera-et-{side}")
        info = messages[f"/camera_et_{side}/camera_info"][0]
        assert info.distortion_model == "equidistant" and (info.width, info.height) == size
        assert list(info.k) == [params[0], 0, params[2], 0, params[1], params[3], 0, 0, 1]
        assert list(info.d) == params[4:]

    # Gen1 records both eyes in one stream, which has no calibration of its own: no CameraInfo.
    gen1 = aria_recording(GEN1)
    result = import_recording(ImportSpec(gen1, tmp_path / "g1", streams=("et",), progress=False))
    assert msgtypes(tmp_path / "g1") == {"/camera_et/image_raw": IMAGE_TYPE}
    assert any("camera_et: no CameraInfo" in n for n in result.notes)
    images = bag_messages(tmp_path / "g1")["/camera_et/image_raw"]
    assert [image_array(m).shape for m in images] == [p.shape for _, p in recorded(gen1, "211-1")]


def test_compressed_passes_the_recorded_jpeg_through(tmp_path: Path) -> None:
    path = aria_recording(GEN1)  # Gen1 stores its RGB frames as JPEG
    bag = tmp_path / "bag"
    result = import_recording(
        ImportSpec(path, bag, streams=("rgb",), compressed=True, progress=False)
    )
    assert msgtypes(bag) == {
        "/camera_rgb/image_raw/compressed": COMPRESSED_TYPE,
        "/camera_rgb/camera_info": INFO_TYPE,
    }
    assert (result.passed_through, result.encoded) == (3, 0)
    vrs = path.read_bytes()
    from PIL import Image

    messages = bag_messages(bag)["/camera_rgb/image_raw/compressed"]
    for msg, (capture_ns, pixels) in zip(messages, recorded(path, "214-1"), strict=True):
        data = bytes(np.asarray(msg.data, np.uint8))
        assert data[:3] == b"\xff\xd8\xff" and data.endswith(b"\xff\xd9")
        assert data in vrs  # the recorded bytes, byte for byte: not re-encoded
        assert stamp_ns(msg) == capture_ns and msg.format.startswith("rgb8; jpeg")
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.abs(decoded.astype(int) - pixels.astype(int)).mean() < 1.0


def test_compressed_encodes_once_where_the_recording_holds_no_jpeg(tmp_path: Path) -> None:
    path = aria_recording(GEN2)  # Gen2 stores its RGB frames as H.265 video
    bag = tmp_path / "bag"
    result = import_recording(
        ImportSpec(path, bag, compressed=True, jpeg_quality=95, progress=False)
    )
    assert (result.passed_through, result.encoded) == (0, 3)
    from PIL import Image

    messages = bag_messages(bag)["/camera_rgb/image_raw/compressed"]
    for msg, (capture_ns, pixels) in zip(messages, recorded(path, "214-1"), strict=True):
        decoded = np.asarray(
            Image.open(io.BytesIO(bytes(np.asarray(msg.data, np.uint8)))).convert("RGB")
        )
        assert stamp_ns(msg) == capture_ns and decoded.shape == pixels.shape
        assert np.abs(decoded.astype(int) - pixels.astype(int)).mean() < 3.0


def test_time_window_from_the_first_image(tmp_path: Path) -> None:
    path = aria_recording(GEN2)  # RGB at 10 Hz: 0, 0.1 and 0.2 s
    times = [t for t, _ in recorded(path, "214-1")]
    spec = ImportSpec(path, tmp_path / "bag", start_s=0.05, duration_s=0.1, progress=False)
    import_recording(spec)
    images = bag_messages(tmp_path / "bag")["/camera_rgb/image_raw"]
    assert [stamp_ns(m) for m in images] == [
        t for t in times if times[0] + 0.05e9 <= t < times[0] + 0.15e9
    ]
    assert len(images) == 1


def test_bench_reads_an_imported_bag_rgb_first_with_its_camera_info(tmp_path: Path) -> None:
    path = aria_recording(GEN1)
    import_recording(ImportSpec(path, tmp_path / "bag", progress=False))
    frames = read_bag(tmp_path / "bag")  # three image topics: Aria's RGB camera is the default
    assert frames.topic == "/camera_rgb/image_raw" and len(frames) == 3
    assert frames.camera_info_topic == "/camera_rgb/camera_info"
    _, params, size = calibration(path, "camera-rgb")
    for frame, info in zip(frames.frames, frames.camera_infos, strict=True):
        assert info is not None and (info.width, info.height) == size
        assert info.d == tuple(params[3:]) and frame.frame_id == "camera_rgb"
    slam = read_bag(tmp_path / "bag", topic="/camera_slam_left/image_raw")
    assert (
        slam.camera_info_topic == "/camera_slam_left/camera_info"
        and slam.frames[0].encoding == "mono8"
    )


@pytest.mark.parametrize(
    "option", [{"start_s": -1.0}, {"duration_s": 0.0}, {"jpeg_quality": 0}, {"storage": "rosbag1"}]
)
def test_spec_refuses_bad_values(tmp_path: Path, option: dict) -> None:
    with pytest.raises(ValueError):
        ImportSpec(tmp_path / "x.vrs", tmp_path / "bag", **option)
