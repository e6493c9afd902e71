"""Replay several camera streams through one target and collect each stream's answers.

Like :class:`~aria_perception.bench.replay.Replayer` for one stream, with one publisher and one
``detections`` subscription per stream (a *lane*). The frames of a tick of the
:class:`~aria_perception.bench.streams.Timeline` share one header stamp and are published one
after another; each frame's latency runs from its own publish call. An answer counts for a frame
only when it arrives on that frame's own stream with that frame's stamp: an answer carrying a
stamp that only another stream's frame had is counted as *crossed*, and one that matches its
stream's stamp but carries another camera's ``frame_id`` as a header mismatch. Either means a
target mixed its streams up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aria_perception.bench.errors import TargetError, TargetExitedError, TargetTimeoutError
from aria_perception.bench.observations import DiagSample, FrameRecord
from aria_perception.bench.pacing import MAX, Schedule, check_pacing
from aria_perception.bench.replay_messages import (
    diag_sample,
    received_ns,
    stamp_ns,
)
from aria_perception.bench.replay_node import (
    BenchNode,
    reports_for,
    take_answer,
    wait_for_target,
)
from aria_perception.bench.replay_settings import (
    ReplaySettings,
    camera_info_qos,
    publisher_qos,
)
from aria_perception.bench.streams import Stream, Timeline
from aria_perception.ros.messages import camera_info_msg

Alive = Callable[[], bool]


@dataclass(frozen=True)
class StreamTopics:
    """Where one stream goes in a target.

    Attributes:
        image: Input topic its frames are published on.
        detections: The target's answers for it.
        camera_info: Where its CameraInfo goes (None: the frames have none).
        node_name: The node answering it (its diagnostics status ends in this name).
    """

    image: str
    detections: str
    camera_info: str | None
    node_name: str


@dataclass
class _Lane:
    """One stream's endpoints and what was observed on them (guarded by the replayer's lock)."""

    stream: Stream
    topics: StreamTopics
    infos: list = field(default_factory=list)
    publisher: object = None
    info_publisher: object = None
    records: dict[int, FrameRecord] = field(default_factory=dict)
    open: dict[int, FrameRecord] = field(default_factory=dict)
    last_answered: int = 0
    unmatched: int = 0
    crossed: int = 0
    diag: list[DiagSample] = field(default_factory=list)


class StreamReplayer:
    """Publishes several streams to one target and records each stream's answers.

    Args:
        streams: The streams, in the timeline's stream order.
        topics: Each stream's topics in the target.
        timeline: The order and recorded timing of the frames.
        settings: QoS, window (per stream) and timeouts.
        name: Name of the bench's own node.
    """

    def __init__(
        self,
        streams: Sequence[Stream],
        topics: Sequence[StreamTopics],
        timeline: Timeline,
        settings: ReplaySettings,
        name: str = "bench",
    ) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.timeline = timeline
        self.settings = settings
        self.lanes = [_Lane(s, t) for s, t in zip(streams, topics, strict=True)]
        for lane in self.lanes:
            infos = lane.stream.frames.camera_infos
            lane.infos = [None if f is None else camera_info_msg(f) for f in infos]
        self._lock = threading.Condition()
        self._last_stamp = 0
        self._cursor = 0  # next tick: phases continue through the timeline
        self.failure: str | None = None
        self._bench = BenchNode(name)
        self.node = self._bench.node
        self._subscribe = self._bench.subscribe
        self._subscribe(DiagnosticArray, "/diagnostics", self._on_diagnostics)
        self._bench.start()

    def connect(self, timeout_s: float, alive: Alive) -> None:
        """Create every lane's endpoints and wait until the target matched all of them.

        Raises:
            TargetExitedError: The target died.
            TargetTimeoutError: A stream's input or output did not appear within ``timeout_s``.
        """
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        deadline = time.monotonic() + timeout_s
        qos = publisher_qos(self.settings)
        for k, lane in enumerate(self.lanes):
            msg_t = CompressedImage if lane.stream.frames.compressed else Image
            lane.publisher = self.node.create_publisher(msg_t, lane.topics.image, qos)
            if lane.topics.camera_info and any(i is not None for i in lane.infos):
                lane.info_publisher = self.node.create_publisher(
                    CameraInfo, lane.topics.camera_info, camera_info_qos(self.settings)
                )
            self._subscribe(
                Detection2DArray,
                lane.topics.detections,
                lambda m, i, k=k: self._on_detections(k, m, i),
            )
        for lane in self.lanes:
            waits = [(lane.publisher, lane.topics.image)]
            if lane.info_publisher is not None and self.node.count_subscribers(
                lane.topics.camera_info
            ):
                waits.append((lane.info_publisher, lane.topics.camera_info))
            wait_for_target(
                lambda waits=waits, lane=lane: (
                    all(p.get_subscription_count() > 0 for p, _ in waits)  # type: ignore[attr-defined]
                    and self.node.count_publishers(lane.topics.detections) > 0
                ),
                deadline,
                alive,
                "the target exited before it subscribed to its inputs",
                lambda lane=lane: (
                    f"within {timeout_s:.0f} s nothing subscribed to {lane.topics.image} "
                    f"(QoS {self.settings.qos}) and published {lane.topics.detections}"
                ),
            )

    # -- callbacks (executor thread)

    def _on_detections(self, k: int, msg, info) -> None:
        recv = received_ns(info)
        stamp = stamp_ns(msg.header)
        with self._lock:
            lane = self.lanes[k]
            rec = lane.records.get(stamp)
            if rec is None:
                if any(stamp in other.records for other in self.lanes if other is not lane):
                    lane.crossed += 1
                else:
                    lane.unmatched += 1
                return
            take_answer(rec, lane.open, msg, info, recv)
            lane.last_answered = max(lane.last_answered, stamp)
            self._lock.notify_all()

    def _on_diagnostics(self, msg, info) -> None:
        recv = received_ns(info)
        for status in msg.status:
            for lane in self.lanes:
                if reports_for(status.name, lane.topics.node_name):
                    with self._lock:
                        lane.diag.append(diag_sample(status, recv))

    # -- publishing (calling thread)

    def _next_stamp(self) -> int:
        with self._lock:
            self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
            return self._last_stamp

    def _publish(self, k: int, phase: str, index: int, source: int, stamp: int) -> FrameRecord:
        from sensor_msgs.msg import CompressedImage, Image

        lane = self.lanes[k]
        frame = lane.stream.frames.frames[source]
        if frame.compressed:
            msg = CompressedImage()
            msg.format = frame.encoding
        else:
            msg = Image()
            msg.height, msg.width = frame.height, frame.width
            msg.encoding, msg.is_bigendian, msg.step = frame.encoding, 0, frame.step
        msg.data = frame.data
        msg.header.frame_id = frame.frame_id
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        rec = FrameRecord(phase, index, source, stamp, frame.frame_id)
        with self._lock:
            lane.records[stamp] = rec
            lane.open[stamp] = rec
        info = lane.infos[source] if lane.infos else None
        if info is not None and lane.info_publisher is not None:
            info.header = msg.header
            lane.info_publisher.publish(info)  # type: ignore[attr-defined]
        rec.published_ns = time.time_ns()
        t0 = time.perf_counter_ns()
        lane.publisher.publish(msg)  # type: ignore[attr-defined]
        rec.publish_call_ns = time.perf_counter_ns() - t0
        return rec

    def prime(self, timeout_s: float, alive: Alive) -> float:
        """Publish one frame of every silent stream until each stream was answered once.

        Returns:
            Seconds until the last stream answered.

        Raises:
            TargetExitedError: The target died.
            TargetTimeoutError: A stream got no answer in time (the message names it).
        """
        start = time.monotonic()
        retry_s, index = 0.5, 0
        while time.monotonic() - start < timeout_s:
            with self._lock:
                silent = [k for k, lane in enumerate(self.lanes) if lane.last_answered == 0]
            if not silent:
                with self._lock:
                    for lane in self.lanes:
                        lane.open.clear()
                return time.monotonic() - start
            stamp = self._next_stamp()
            for k in silent:
                self._publish(k, "prime", index, index % len(self.lanes[k].stream.frames), stamp)
            index += 1
            deadline = time.monotonic() + retry_s
            with self._lock:
                while time.monotonic() < deadline and any(
                    self.lanes[k].last_answered == 0 for k in silent
                ):
                    self._lock.wait(0.05)
            if not alive():
                raise TargetExitedError("the target exited before answering every stream")
            retry_s = min(retry_s * 1.5, 5.0)
        names = [lane.topics.detections for lane in self.lanes if lane.last_answered == 0]
        raise TargetTimeoutError(f"no answer on {', '.join(names)} within {timeout_s:.0f} s")

    def run(
        self, phase: str, count: int, pacing: str | float, alive: Alive, progress=None
    ) -> list[list[FrameRecord]]:
        """Publish ``count`` frames per stream (on average) and wait for the answers.

        The timeline goes on from where the previous phase ended. A fixed rate or ``max``
        publishes exactly ``count`` frames of each stream; ``recorded`` publishes
        ``count x streams`` frames in the recording's own mix.

        Returns:
            Each stream's records, answered or not. The phase ends early when the target
            dies; :attr:`failure` then says so.
        """
        check_pacing(pacing)
        schedule = (
            None
            if pacing == MAX
            else Schedule(pacing, self.timeline.periods_s, start=time.monotonic())
        )
        out: list[list[FrameRecord]] = [[] for _ in self.lanes]
        total, sent = count * len(self.lanes), 0
        try:
            while sent < total:
                position = self._cursor % len(self.timeline)
                tick = self.timeline.ticks[position]
                self._cursor += 1
                if schedule is None:
                    self._wait_window([k for k, _ in tick.entries], alive)
                else:
                    now = time.monotonic()
                    due = schedule.next_due(position, now)
                    if due > now:
                        time.sleep(due - now)
                    if self._cursor % 16 == 0 and not alive():
                        raise TargetExitedError(f"the target exited during the {phase} phase")
                stamp = self._next_stamp()
                for k, source in tick.entries[: total - sent]:
                    out[k].append(self._publish(k, phase, len(out[k]), source, stamp))
                    sent += 1
                    if progress is not None:
                        progress.update(1)
        except TargetError as err:
            self.failure = str(err)
        self.drain(out, alive)
        return out

    def _expire(self) -> None:
        limit = time.time_ns() - int(self.settings.result_timeout_s * 1e9)
        for lane in self.lanes:
            for stamp in [s for s in lane.open if s < limit]:
                del lane.open[stamp]

    def _wait_window(self, lanes: list[int], alive: Alive) -> None:
        checks = 0
        with self._lock:
            while True:
                self._expire()
                if all(len(self.lanes[k].open) < self.settings.window for k in lanes):
                    return
                self._lock.wait(0.02)
                checks += 1
                if checks % 50 == 0 and not alive():
                    raise TargetExitedError("the target exited while frames were in flight")

    def drain(self, records: list[list[FrameRecord]], alive: Alive) -> None:
        """Wait until every record is answered, passed by a later answer, or timed out."""
        deadline = time.time_ns() + int(self.settings.result_timeout_s * 1e9)
        checks = 0

        def waiting() -> bool:
            return any(
                r.recv_ns is None and r.stamp_ns > lane.last_answered
                for lane, recs in zip(self.lanes, records, strict=True)
                for r in recs
            )

        with self._lock:
            while time.time_ns() < deadline and waiting():
                self._lock.wait(0.02)
                checks += 1
                if checks % 50 == 0 and not alive():
                    break
            for lane in self.lanes:
                lane.open.clear()

    def counts(self, k: int) -> tuple[int, int]:
        """(unmatched, crossed) answers seen on stream ``k`` so far."""
        with self._lock:
            return self.lanes[k].unmatched, self.lanes[k].crossed

    def diagnostics(self, k: int) -> list[DiagSample]:
        """Diagnostics statuses of stream ``k``'s node received so far."""
        with self._lock:
            return list(self.lanes[k].diag)

    def wait_diagnostics_after(self, t_ns: int, timeout_s: float) -> bool:
        """Wait until every stream's node reported after ``t_ns`` (final counters)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(lane.diag and lane.diag[-1].t_ns > t_ns for lane in self.lanes):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Stop spinning and destroy the bench node."""
        self._bench.close(lane.info_publisher for lane in self.lanes)
