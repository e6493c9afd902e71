"""ObjectTracker with the trackers Ultralytics ships, on synthetic box sequences (no weights).

Each scenario moves boxes along known paths, feeds them in a shuffled order every frame (so
the IDs must follow the detection index the trackers return, not the input order) and checks
the IDs each object got.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from aria_perception.errors import ConfigError
from aria_perception.tracking import (
    NO_ID,
    NO_TRACKER,
    ObjectTracker,
    buffer_frames,
    load_tracker_config,
    shipped_trackers,
)

#: Box of (centre x, centre y) at frame f, or None when the object is not seen then.
Path = Callable[[int], "tuple[float, float] | None"]
SIZE = np.array([40.0, 80.0])


def run(
    tracker: ObjectTracker, paths: list[Path], frames: int, seed: int = 0
) -> list[dict[int, int]]:
    """Feed ``frames`` frames; per frame, object number -> the ID its detection got."""
    rng = np.random.default_rng(seed)
    out = []
    for f in range(frames):
        objects = [(k, c) for k, path in enumerate(paths) if (c := path(f)) is not None]
        order = rng.permutation(len(objects))
        objects = [objects[i] for i in order]
        centres = np.array([c for _, c in objects], dtype=np.float64).reshape(-1, 2)
        boxes = np.concatenate([centres - SIZE / 2, centres + SIZE / 2], axis=1)
        ids = tracker.update(boxes, np.full(len(objects), 0.9), np.zeros(len(objects)))
        assert ids.shape == (len(objects),) and ids.dtype == np.int64
        out.append({k: int(i) for (k, _), i in zip(objects, ids, strict=True)})
    return out


def ids_of(history: list[dict[int, int]], obj: int, frames: range | None = None) -> set[int]:
    """The confirmed IDs object ``obj`` got over ``frames`` (every frame by default)."""
    frames = frames or range(len(history))
    return {history[f][obj] for f in frames if history[f].get(obj, NO_ID) != NO_ID}


def moving(x0: float, y0: float, vx: float, vy: float = 0.0) -> Path:
    return lambda f: (x0 + vx * f, y0 + vy * f)


def tracker(kind: str = "bytetrack", frame_rate: float = 30.0) -> ObjectTracker:
    return ObjectTracker(load_tracker_config(kind), frame_rate)


@pytest.mark.parametrize("kind", shipped_trackers())
def test_constant_velocity_objects_keep_their_ids(kind: str) -> None:
    paths = [moving(60 + 150 * k, 100 + 40 * k, 3.0, 1.0 * (k % 3 - 1)) for k in range(5)]
    history = run(tracker(kind), paths, 100)
    confirmed = range(10, 100)  # after any tracker's confirmation frames
    per_object = [ids_of(history, k) for k in range(5)]
    assert all(len(ids) == 1 for ids in per_object), per_object  # 0 ID switches
    assert len(set().union(*per_object)) == 5, per_object  # one ID per object
    assert all(history[f][k] != NO_ID for f in confirmed for k in range(5))


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
def test_two_crossing_objects_keep_their_ids(kind: str) -> None:
    # They meet in the middle at frame 50, overlapping for about 14 frames.
    a, b = moving(100, 200, 3.0, 0.4), moving(400, 220, -3.0, -0.4)
    history = run(tracker(kind), [a, b], 100)
    ids_a, ids_b = ids_of(history, 0), ids_of(history, 1)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b, (ids_a, ids_b)
    assert history[99][0] == history[5][0] and history[99][1] == history[5][1]


def test_an_object_occluded_for_less_than_the_buffer_keeps_its_id() -> None:
    t = tracker()
    assert t.buffer_frames == 30  # bytetrack.yaml's track_buffer at 30 FPS
    seen = moving(100, 200, 2.0)
    hidden = lambda f: None if 40 <= f < 60 else seen(f)  # noqa: E731 - 20 frames < 30
    history = run(t, [hidden, moving(500, 300, -1.0)], 100)
    assert all(0 not in history[f] for f in range(40, 60))
    assert ids_of(history, 0) == {history[39][0]} == {history[60][0]}


def test_track_buffer_follows_the_frame_rate() -> None:
    # At 10 FPS a lost track is kept 10 frames (the same second as 30 frames at 30 FPS).
    assert buffer_frames(30, 10.0) == 10 and buffer_frames(30, 60.0) == 60
    assert buffer_frames(30, 0.0) == 30 and buffer_frames(1, 1.0) == 1
    t = tracker(frame_rate=10.0)
    assert t.buffer_frames == 10
    seen = moving(100, 200, 2.0)
    hidden = lambda f: None if 40 <= f < 60 else seen(f)  # noqa: E731 - 20 frames > 10
    history = run(t, [hidden], 80)
    before, after = ids_of(history, 0, range(40)), ids_of(history, 0, range(60, 80))
    assert len(before) == 1 and len(after) == 1 and before != after


def test_a_new_object_gets_a_new_id() -> None:
    late = lambda f: None if f < 50 else (600.0, 100.0 + f)  # noqa: E731
    history = run(tracker(), [moving(100, 200, 2.0), moving(300, 400, -1.0), late], 100)
    earlier = ids_of(history, 0) | ids_of(history, 1)
    new = ids_of(history, 2)
    assert len(new) == 1 and not new & earlier, (new, earlier)


def test_unconfirmed_and_low_score_detections_get_no_id() -> None:
    t = tracker()
    boxes = np.array([[10, 10, 50, 90], [200, 10, 240, 90], [400, 10, 440, 90]], np.float32)
    scores = np.array([0.9, 0.05, 0.9])  # 0.05 is below bytetrack's track_low_thresh
    for _ in range(3):
        ids = t.update(boxes, scores, np.zeros(3))
    assert ids[1] == NO_ID and ids[0] != NO_ID and ids[2] != NO_ID
    assert t.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0)).shape == (0,)
    t.reset()
    assert t.frames == 0 and set(t.update(boxes[[0, 2]], scores[[0, 2]], np.zeros(2))) == {1, 2}


def test_none_gives_no_ids() -> None:
    t = tracker(NO_TRACKER)
    assert not t.config.enabled and t.buffer_frames == 0
    history = run(t, [moving(100, 200, 2.0), moving(300, 200, -2.0)], 5)
    assert all(i == NO_ID for frame in history for i in frame.values())


def test_a_config_file_overrides_the_shipped_defaults(tmp_path) -> None:
    path = tmp_path / "tracker.yaml"
    path.write_text("track_high_thresh: 0.00001\ntrack_low_thresh: 0\ntrack_buffer: 5\n")
    config = load_tracker_config("bytetrack", str(path))
    assert config.settings["track_high_thresh"] == 0.00001
    assert config.settings["track_low_thresh"] == 0 and config.settings["track_buffer"] == 5
    assert config.settings["match_thresh"] == 0.8  # the shipped default
    assert config.source == str(path) and "bytetrack" in config.describe()
    assert ObjectTracker(config).buffer_frames == 5
    botsort = load_tracker_config("botsort")
    assert botsort.settings["gmc_method"] == "none" and "gmc_method" in botsort.forced


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (
            "deepsort",
            None,
            r"tracker.type must be 'none' or a tracker Ultralytics ships \(botsort",
        ),
        ("bytetrack", "track_buffer: [1\n", "is not valid YAML"),
        ("bytetrack", "- 1\n- 2\n", "must hold a mapping"),
        ("bytetrack", "track_bufer: 3\n", r"unknown setting\(s\) \['track_bufer'\].*known:"),
        ("bytetrack", "track_buffer: 0.5\n", "track_buffer must be an integer"),
        ("bytetrack", "track_high_thresh: high\n", "track_high_thresh must be a number"),
        ("bytetrack", "fuse_score: 1\n", "fuse_score must be true or false"),
        ("bytetrack", "match_thresh: -1\n", "must not be negative"),
        ("bytetrack", "tracker_type: botsort\n", "is for tracker_type 'botsort'"),
        ("botsort", "with_reid: true\n", "with_reid: true is not supported"),
    ],
)
def test_bad_tracker_type_or_config_is_a_clear_error(tmp_path, kind, text, message) -> None:
    path = ""
    if text is not None:
        path = str(tmp_path / "tracker.yaml")
        (tmp_path / "tracker.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_tracker_config(kind, path)


def test_a_missing_config_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="tracker.config: no such file"):
        load_tracker_config("bytetrack", str(tmp_path / "missing.yaml"))
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="tracker.config: no such file"):
        load_tracker_config("bytetrack", str(tmp_path / "dir.yaml"))
