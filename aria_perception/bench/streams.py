"""Several camera streams replayed together: which frames, and in what order.

A multi-stream bench (``--preset headset``, or ``--bag`` with ``--topics``) replays one
:class:`Stream` per camera. Their frames are merged into one :class:`Timeline` of ticks: the
frames that share a recorded stamp go in one tick, ticks in stamp order, each at its recorded
offset (``--rate recorded``); at a fixed rate every tick holds one frame of every stream
(lockstep, like hardware-synchronised cameras). Every frame of a tick is published with the
same header stamp, so a target that matched results by stamp alone would be caught mixing
streams up (the bench matches answers by stream and stamp). Plain data, no ROS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from aria_perception.bench.bag import read_bag
from aria_perception.bench.errors import UsageError
from aria_perception.bench.frame import FrameSet
from aria_perception.bench.sample import SampleSpec, load_photos, sample_frames
from aria_perception.bench.topics import join_topic

#: The headset preset's cameras: (stream name, image topic, frame_id, encoding), as
#: ``launch/aria.launch.py`` and ``bench import`` name them.
HEADSET_CAMERAS = (
    ("rgb", "/camera_rgb/image_raw", "camera_rgb", "rgb8"),
    ("slam_left", "/camera_slam_left/image_raw", "camera_slam_left", "mono8"),
    ("slam_right", "/camera_slam_right/image_raw", "camera_slam_right", "mono8"),
)
#: Last topic tokens that name the image, not the camera.
_IMAGE_LEAVES = ("image_raw", "image", "image_rect", "image_color", "image_mono")


@dataclass(frozen=True)
class Stream:
    """One camera stream of a multi-stream bench.

    Attributes:
        name: Short name (``rgb``, ``slam_left``): the report's stream label.
        topic: Its image topic as recorded, without ``/compressed``; a target started here
            reads it under its own namespace (``/bench_node/camera_rgb/image_raw``).
        node_name: The perception node that reads it (``rgb_perception``).
        frames: Its frames.
    """

    name: str
    topic: str
    node_name: str
    frames: FrameSet

    def image_topic(self, namespace: str) -> str:
        """The topic its frames go to under ``namespace`` (``.../compressed`` for JPEG)."""
        leaf = "compressed" if self.frames.compressed else ""
        return join_topic(namespace, self.topic, leaf)


def stream_name(topic: str) -> str:
    """A stream's short name from its topic: ``/camera_slam_left/image_raw`` -> ``slam_left``."""
    tokens = [t for t in topic.removesuffix("/compressed").split("/") if t]
    if len(tokens) > 1 and tokens[-1] in _IMAGE_LEAVES:
        tokens = tokens[:-1]
    name = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(tokens)).removeprefix("camera_") or "camera"
    return name if name[0].isalpha() else f"s{name}"


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with repeats suffixed ``_2``, ``_3``... (each stream needs its own node)."""
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in out:
            n += 1
            candidate = f"{name}_{n}"
        out.append(candidate)
    return out


def headset_streams(
    rgb: SampleSpec, slam_size: tuple[int, int], compressed: bool = False
) -> list[Stream]:
    """The three Aria cameras from the sample photographs.

    Args:
        rgb: The RGB camera's sample (size, count, rate); the SLAM cameras get the same count
            and rate at ``slam_size`` in mono8, grey from the same photographs (the right one
            goes through them in the opposite order, so the two differ).
        slam_size: (width, height) of the SLAM cameras.
        compressed: JPEG payloads instead of raw frames.
    """
    photos = load_photos()
    streams = []
    for n, (name, topic, frame_id, encoding) in enumerate(HEADSET_CAMERAS):
        width, height = (rgb.width, rgb.height) if n == 0 else slam_size
        spec = replace(
            rgb,
            width=width,
            height=height,
            encoding=encoding,
            frame_id=frame_id,
            compressed=compressed,
        )
        frames = list(sample_frames(spec, photos[::-1] if n == 2 else photos))
        kind = "jpeg" if compressed else encoding
        frame_set = FrameSet(
            frames=frames,
            source=f"sample {width}x{height} {kind} x{spec.count} @ {spec.rate_hz:g} Hz",
            topic=topic,
            msgtype=frames[0].msgtype,
            frames_available=len(frames),
        )
        streams.append(Stream(name, topic, f"{name}_perception", frame_set))
    return streams


def bag_streams(path: str, topics: Sequence[str], limit: int | None) -> list[Stream]:
    """One stream per image topic of a bag, cut to the span every topic covers.

    Raises:
        UsageError: Fewer than two topics, a topic twice, or raw and compressed topics mixed.
        TopicError, BagError: As :func:`read_bag`.
    """
    if len(topics) < 2 or len(set(topics)) != len(topics):
        raise UsageError(f"--topics takes two or more different image topics, got {topics}")
    sets = [read_bag(path, topic, limit=limit) for topic in topics]
    if len({s.compressed for s in sets}) > 1:
        raise UsageError("--topics mixes raw and compressed topics; add --transport raw or jpeg")
    names = unique_names([stream_name(t) for t in topics])
    sets = common_span(sets)
    return [
        Stream(name, t.removesuffix("/compressed"), f"{name}_perception", s)
        for name, t, s in zip(names, topics, sets, strict=True)
    ]


def common_span(sets: Sequence[FrameSet]) -> list[FrameSet]:
    """The frame sets cut to the time all of them cover, so that looping keeps them together.

    A set's span ends one recorded period after its last frame; frames at or after the
    earliest such end are dropped (every set keeps at least its first frame).
    """
    ends = [s.frames[-1].stamp_ns + round(s.periods_s()[0] * 1e9) for s in sets]
    cut = min(ends)
    out = []
    for s in sets:
        kept = [f for f in s.frames if f.stamp_ns < cut] or list(s.frames[:1])
        infos = s.camera_infos[: len(kept)] if s.camera_infos else ()
        out.append(replace(s, frames=kept, camera_infos=infos))
    return out


@dataclass(frozen=True)
class Tick:
    """Frames published together under one stamp: ``(stream index, source frame index)``."""

    entries: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Timeline:
    """One loop of ticks over the streams' frames, and the recorded gap before each tick.

    Attributes:
        ticks: The ticks of one loop, in order.
        periods_s: ``periods_s[i]`` is the recorded gap before tick ``i``; entry 0 is the gap
            from the previous loop's last tick (a loop ends one recorded period after the last
            frame of the stream that ends first). A fixed rate ignores them.
    """

    ticks: tuple[Tick, ...]
    periods_s: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.ticks)

    @property
    def streams(self) -> int:
        """How many streams the ticks draw from."""
        return 1 + max(k for tick in self.ticks for k, _ in tick.entries)

    @classmethod
    def lockstep(cls, sets: Sequence[FrameSet]) -> Timeline:
        """Tick ``i`` holds frame ``i`` of every stream (a shorter stream loops within)."""
        count = max(len(s) for s in sets)
        ticks = tuple(
            Tick(tuple((k, i % len(s)) for k, s in enumerate(sets))) for i in range(count)
        )
        period = sets[0].periods_s()[0]
        return cls(ticks, (period,) * count)

    @classmethod
    def recorded(cls, sets: Sequence[FrameSet]) -> Timeline:
        """The streams' frames merged by recorded stamp; equal stamps share a tick."""
        events = sorted(
            (f.stamp_ns, k, i) for k, s in enumerate(sets) for i, f in enumerate(s.frames)
        )
        stamps: list[int] = []
        groups: list[list[tuple[int, int]]] = []
        for stamp, k, i in events:
            if stamps and stamps[-1] == stamp:
                groups[-1].append((k, i))
            else:
                stamps.append(stamp)
                groups.append([(k, i)])
        first = stamps[0]
        # A loop ends where the first stream's span ends (its last frame plus its period).
        loop_ns = min(s.frames[-1].stamp_ns + round(s.periods_s()[0] * 1e9) for s in sets) - first
        wrap = (loop_ns - (stamps[-1] - first)) / 1e9
        gaps = [(b - a) / 1e9 for a, b in zip(stamps, stamps[1:], strict=False)]
        return cls(tuple(Tick(tuple(g)) for g in groups), (wrap, *gaps))


def timeline_for(sets: Sequence[FrameSet], recorded: bool) -> Timeline:
    """The recorded mix for ``--rate recorded``, else every stream in lockstep."""
    if not sets:
        raise UsageError("no streams to replay")
    return Timeline.recorded(sets) if recorded else Timeline.lockstep(sets)
