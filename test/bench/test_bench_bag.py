"""Sample sequences and rosbag2 round trips (both storages, Image and CompressedImage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aria_perception.bench.bag import BagError, image_topics, read_bag, write_bag
from aria_perception.bench.frame import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    JPEG_FORMAT,
    pixels,
    raw_frame,
    to_jpeg,
)
from aria_perception.bench.sample import (
    SAMPLE_EPOCH_NS,
    SampleSpec,
    find_photos,
    sample_frames,
    sample_set,
)

SPEC = SampleSpec(width=96, height=64, count=6, rate_hz=15.0, frame_id="aria-rgb")


def test_sample_uses_installed_photographs_and_moves() -> None:
    photos = find_photos()
    assert photos, "ultralytics' bus.jpg / zidane.jpg or matplotlib's grace_hopper.jpg expected"
    assert all(p.suffix == ".jpg" and p.is_file() for p in photos)

    frames = list(sample_frames(SampleSpec(width=160, height=120, count=12)))
    imgs = [pixels(f) for f in frames]
    assert all(img.shape == (120, 160, 3) for img in imgs)
    # Real photographs: plenty of distinct colours, nothing flat.
    assert all(len(np.unique(img.reshape(-1, 3), axis=0)) > 1000 for img in imgs)
    # The camera moves: consecutive frames differ, but smoothly within one photo's stretch.
    diffs = [
        np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(imgs, imgs[1:], strict=False)
    ]
    assert min(diffs) > 0.5
    # Reproducible: the same spec gives the same pixels.
    again = [pixels(f) for f in sample_frames(SampleSpec(width=160, height=120, count=12))]
    assert all(np.array_equal(a, b) for a, b in zip(imgs, again, strict=True))


def test_sample_stamps_follow_the_rate_and_aria_size_is_square() -> None:
    fs = sample_set(SampleSpec(width=1408, height=1408, count=3, rate_hz=10.0))
    assert (fs.width, fs.height) == (1408, 1408)
    assert [f.stamp_ns for f in fs.frames] == [SAMPLE_EPOCH_NS + i * 100_000_000 for i in range(3)]
    assert fs.recorded_fps() == pytest.approx(10.0)
    assert fs.frames[0].nbytes == 1408 * 1408 * 3


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("compressed", [False, True], ids=["Image", "CompressedImage"])
def test_bag_round_trip(tmp_path: Path, storage: str, compressed: bool) -> None:
    spec = SampleSpec(**{**SPEC.__dict__, "compressed": compressed})
    written = list(sample_frames(spec))
    bag = tmp_path / "bag"
    assert write_bag(bag, written, storage=storage) == spec.count
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert any(p.suffix == suffix for p in bag.iterdir()), list(bag.iterdir())

    topic = "/camera/image_raw" + ("/compressed" if compressed else "")
    msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    assert image_topics(bag) == {topic: msgtype}
    fs = read_bag(bag)  # the only image topic is picked automatically
    assert (fs.topic, fs.msgtype, len(fs), fs.frames_available) == (topic, msgtype, 6, 6)
    assert fs.recorded_fps() == pytest.approx(15.0)
    for got, want in zip(fs.frames, written, strict=True):
        assert (got.stamp_ns, got.frame_id) == (want.stamp_ns, "aria-rgb")
        assert (got.width, got.height, got.compressed) == (96, 64, compressed)
        assert got.encoding == (JPEG_FORMAT if compressed else "rgb8")
        assert got.data == want.data  # byte for byte, JPEG included
        if not compressed:
            assert got.step == 96 * 3
    limited = read_bag(bag, topic=topic, limit=2)
    assert len(limited) == 2 and limited.frames_available == 6


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8", "mono8"])
def test_other_encodings_round_trip(tmp_path: Path, encoding: str) -> None:
    rgb = pixels(next(sample_frames(SPEC)))
    frame = raw_frame(rgb, 5, "cam", encoding)
    write_bag(tmp_path / "bag", [frame], storage="mcap")
    [got] = read_bag(tmp_path / "bag").frames
    assert got.encoding == encoding and got.data == frame.data
    back = pixels(got)
    if encoding == "mono8":
        assert back.shape == rgb.shape and np.all(back[..., 0] == back[..., 1])
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        assert np.abs(back[..., 0].astype(np.float32) - luma).max() <= 1.0
    else:
        assert np.array_equal(back, rgb)


def test_conversions_between_raw_and_jpeg() -> None:
    fs = sample_set(SampleSpec(width=128, height=96, count=2))
    jpeg = fs.converted(compressed=True, jpeg_quality=95)
    assert jpeg.compressed and jpeg.msgtype == COMPRESSED_TYPE
    assert bytes(jpeg.frames[0].data[:2]) == b"\xff\xd8"  # JPEG start-of-image
    raw = jpeg.converted(compressed=False)
    err = np.abs(pixels(raw.frames[0]).astype(int) - pixels(fs.frames[0]).astype(int)).mean()
    assert err < 4.0
    assert to_jpeg(fs.frames[0]).encoding == JPEG_FORMAT


def test_reader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        read_bag(tmp_path / "missing")

    bag = tmp_path / "two"
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    frames = list(sample_frames(SPEC))
    with Writer(bag, version=9) as w:
        for topic in ("/left/image_raw", "/right/image_raw"):
            conn = w.add_connection(topic, IMAGE_TYPE, typestore=ts)
            f = frames[0]
            header = ts.types["std_msgs/msg/Header"](
                stamp=ts.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="x"
            )
            msg = ts.types[IMAGE_TYPE](
                header=header,
                height=f.height,
                width=f.width,
                encoding="rgb8",
                is_bigendian=0,
                step=f.step,
                data=np.frombuffer(f.data, np.uint8),
            )
            w.write(conn, 1, ts.serialize_cdr(msg, IMAGE_TYPE))
        w.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
    with pytest.raises(BagError, match="2 image topics.*--topic"):
        read_bag(bag)
    with pytest.raises(BagError, match=r"no image topic '/chatter'"):
        read_bag(bag, topic="/chatter")
    assert len(read_bag(bag, topic="/right/image_raw")) == 1

    with pytest.raises(BagError, match="exists"):
        write_bag(bag, frames)
    with pytest.raises(BagError, match="storage"):
        write_bag(tmp_path / "new", frames, storage="rosbag1")
    with pytest.raises(BagError, match="mix"):
        write_bag(tmp_path / "mixed", [frames[0], to_jpeg(frames[1])])


def test_sample_spec_validation() -> None:
    with pytest.raises(ValueError, match="size"):
        SampleSpec(width=4, height=4)
    with pytest.raises(ValueError, match="count"):
        SampleSpec(count=0)
    with pytest.raises(ValueError, match="encoding"):
        SampleSpec(encoding="16UC1")
