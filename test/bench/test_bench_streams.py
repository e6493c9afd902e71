"""Several image topics of one bag replayed together: names, common span, the merged timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aria_perception.bench.bag import write_topics
from aria_perception.bench.errors import UsageError
from aria_perception.bench.frame import raw_frame
from aria_perception.bench.pacing import Schedule
from aria_perception.bench.streams import Timeline, bag_streams, stream_name, unique_names

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def frames(count: int, period_ms: int, offset_ms: int, frame_id: str, encoding: str) -> list:
    rgb = np.zeros((6, 8, 3), np.uint8)
    return [
        raw_frame(rgb + i, T0 + (offset_ms + i * period_ms) * MS, frame_id, encoding)
        for i in range(count)
    ]


def three_topic_bag(path: Path) -> list[str]:
    """RGB at 10 Hz; both SLAM cameras at 20 Hz, 25 ms after it and sharing their stamps."""
    topics = {
        "/camera_rgb/image_raw": frames(4, 100, 0, "camera_rgb", "rgb8"),
        "/camera_slam_left/image_raw": frames(9, 50, 25, "camera_slam_left", "mono8"),
        "/camera_slam_right/image_raw": frames(9, 50, 25, "camera_slam_right", "mono8"),
    }
    assert write_topics(path, topics, storage="mcap") == 22
    return list(topics)


def test_a_bag_of_three_topics_replays_interleaved_at_recorded_offsets(tmp_path: Path) -> None:
    topics = three_topic_bag(tmp_path / "bag")
    streams = bag_streams(str(tmp_path / "bag"), topics, limit=None)
    assert [(s.name, s.node_name) for s in streams] == [
        ("rgb", "rgb_perception"),
        ("slam_left", "slam_left_perception"),
        ("slam_right", "slam_right_perception"),
    ]
    assert [s.topic for s in streams] == topics
    assert [s.frames.frames[0].encoding for s in streams] == ["rgb8", "mono8", "mono8"]
    # RGB's span ends at 400 ms (its last frame + its period): the SLAM frames at 425 go.
    assert [len(s.frames) for s in streams] == [4, 8, 8]

    timeline = Timeline.recorded([s.frames for s in streams])
    assert timeline.streams == 3
    offsets, entries = [], []
    schedule = Schedule("recorded", timeline.periods_s, start=0.0)
    due = 0.0
    for n in range(2 * len(timeline)):  # two loops: the second continues the first's rhythm
        position = n % len(timeline)
        due = schedule.next_due(position, now=due)  # each frame published when due
        offsets.append(round(due * 1000, 6))
        entries.append(timeline.ticks[position].entries)
    # Each frame at its recorded offset: RGB every 100 ms, the SLAM pair every 50 ms from 25,
    # the two SLAM frames of one instant in one tick (one stamp).
    first_loop = [0, 25, 75, 100, 125, 175, 200, 225, 275, 300, 325, 375]
    assert offsets == first_loop + [400 + t for t in first_loop]
    assert entries[:4] == [((0, 0),), ((1, 0), (2, 0)), ((1, 1), (2, 1)), ((0, 1),)]
    per_stream = [[i for tick in entries[:12] for k, i in tick if k == s] for s in range(3)]
    assert per_stream == [[0, 1, 2, 3], list(range(8)), list(range(8))]


def test_lockstep_timeline_and_stream_names() -> None:
    a = frames(3, 33, 0, "a", "rgb8")
    b = frames(2, 33, 0, "b", "mono8")
    from aria_perception.bench.frame import FrameSet

    timeline = Timeline.lockstep([FrameSet(a, "x"), FrameSet(b, "y")])
    assert [t.entries for t in timeline.ticks] == [
        ((0, 0), (1, 0)),
        ((0, 1), (1, 1)),
        ((0, 2), (1, 0)),
    ]
    assert stream_name("/camera_slam_left/image_raw/compressed") == "slam_left"
    assert stream_name("/cam/left/image") == "cam_left" and stream_name("/3d/image_raw") == "s3d"
    assert unique_names(["cam", "cam", "x"]) == ["cam", "cam_2", "x"]


def test_topics_must_be_two_or_more_of_one_kind(tmp_path: Path) -> None:
    topics = three_topic_bag(tmp_path / "bag")
    with pytest.raises(UsageError, match="two or more"):
        bag_streams(str(tmp_path / "bag"), topics[:1], limit=None)
    with pytest.raises(UsageError, match="two or more"):
        bag_streams(str(tmp_path / "bag"), [topics[0], topics[0]], limit=None)
