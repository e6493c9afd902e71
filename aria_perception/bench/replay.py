"""Replay frames through real DDS and collect what the node answers, matched by header stamp.

The bench process holds one rclpy context. For each target (echo, our node, a second
configuration) a :class:`Replayer` creates a node with a publisher for the target's input topic
and subscriptions to its outputs, spun by an executor in a background thread while the calling
thread publishes. Every published frame gets a unique stamp (the wall-clock time it is
published, made strictly increasing), so each answer is matched to its frame by stamp alone.

Latency of a frame is publish time (wall clock just before ``publish``) to the DDS reception time
of the matching ``detections`` message in this process (``MessageInfo.received_timestamp``, taken
by the middleware when the sample arrives, so executor scheduling here does not count; on Humble,
which lacks it, the callback's own clock reading).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from aria_perception.bench.errors import (
    TargetError,
    TargetExitedError,
    TargetTimeoutError,
    UsageError,
)
from aria_perception.bench.frame import FrameSet
from aria_perception.bench.observations import DiagSample, FrameRecord
from aria_perception.bench.pacing import MAX, Schedule, check_pacing
from aria_perception.bench.replay_messages import (
    diag_sample,
    image_array,
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
from aria_perception.bench.topics import TopicPlan, Topics, camera_info_topic, join_topic
from aria_perception.ros.messages import camera_info_msg


class Replayer:
    """Publishes frames to one target and records its answers.

    Args:
        frames: What to publish (looped when more frames are asked for than it holds).
        plan: Where the target's topics may be (found by :meth:`connect`).
        settings: QoS, window and timeouts.
        name: Name of the bench's own node (unique per target).
    """

    def __init__(
        self, frames: FrameSet, plan: TopicPlan, settings: ReplaySettings, name: str = "bench"
    ) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CompressedImage, Image

        if len(frames) == 0:
            raise UsageError("no frames to replay")
        self.frames = frames
        self.plan = plan
        self.topics: Topics | None = None  # known once connect() found the target
        self.settings = settings
        self._msg_t = CompressedImage if frames.compressed else Image
        self._lock = threading.Condition()
        self._by_stamp: dict[int, FrameRecord] = {}
        self._open: dict[int, FrameRecord] = {}  # published, not answered, not expired
        self._last_stamp = 0
        self._last_answered = 0
        self.unmatched = 0  # answers whose stamp matched nothing we sent
        self.depth_unmatched = 0
        self.failure: str | None = None  # why a phase ended early
        self._diag: list[DiagSample] = []
        self._capture: set[int] = set()
        self.captured: dict[int, dict[str, np.ndarray]] = {}
        self.publisher = None
        # The frames' CameraInfo, published with each frame under the frame's header.
        self._infos = [None if f is None else camera_info_msg(f) for f in frames.camera_infos]
        self._info_publisher = None

        self._bench = BenchNode(name)
        self.node = self._bench.node
        self._subscribe = self._bench.subscribe
        self._subscribe(DiagnosticArray, plan.diagnostics, self._on_diagnostics)
        self._bench.start()

    def _find(self) -> tuple[str | None, str | None]:
        """The input with a subscriber and the output prefix with a detections publisher."""
        image = next((t for t in self.plan.inputs if self.node.count_subscribers(t) > 0), None)
        prefix = next(
            (
                p
                for p in self.plan.outputs
                if self.node.count_publishers(join_topic(p, "detections")) > 0
            ),
            None,
        )
        return image, prefix

    def connect(self, timeout_s: float, alive: Callable[[], bool]) -> Topics:
        """Find the target's topics on the graph, create the endpoints, wait until matched.

        Returns:
            The topics in use.

        Raises:
            TargetExitedError: The target died.
            TargetTimeoutError: It did not appear (or did not match the publisher's QoS)
                within ``timeout_s``; the message lists where it looked.
        """
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        deadline = time.monotonic() + timeout_s
        exited = "the target exited before it subscribed to its input"
        found: tuple[str | None, str | None] = (None, None)

        def matched() -> bool:
            nonlocal found
            found = self._find()
            return None not in found

        def missing() -> str:
            image, prefix = found
            return (
                f"within {timeout_s:.0f} s nothing subscribed to "
                f"{' or '.join(self.plan.inputs)}"
                + ("" if image is None else f" (found {image})")
                + " and published "
                + " or ".join(join_topic(p, "detections") for p in self.plan.outputs)
                + ("" if prefix is None else f" (found under {prefix})")
            )

        wait_for_target(matched, deadline, alive, exited, missing)
        topics = self.plan.resolve(*found)
        if any(info is not None for info in self._infos):
            from sensor_msgs.msg import CameraInfo

            topics = dataclasses.replace(topics, camera_info=camera_info_topic(topics.image))
            self._info_publisher = self.node.create_publisher(
                CameraInfo, topics.camera_info, camera_info_qos(self.settings)
            )
        self.topics = topics
        self.publisher = self.node.create_publisher(
            self._msg_t, topics.image, publisher_qos(self.settings)
        )
        self._subscribe(Detection2DArray, topics.detections, self._on_detections)
        if topics.depth:
            self._subscribe(Image, topics.depth, self._on_depth)
        if topics.overlay:
            self._subscribe(Image, topics.overlay, lambda m, i: self._on_capture(m, "overlay", 3))
        if topics.depth_normalized:
            self._subscribe(
                Image, topics.depth_normalized, lambda m, i: self._on_capture(m, "depth", 1)
            )
        # A target that reads camera_info (rectification needs it) gets it from the first frame.
        waits = [(self.publisher, topics.image)]
        if self._info_publisher is not None and self.node.count_subscribers(topics.camera_info):
            waits.append((self._info_publisher, topics.camera_info))
        for publisher, topic in waits:
            wait_for_target(
                lambda p=publisher: p.get_subscription_count() > 0,
                deadline,
                alive,
                exited,
                lambda t=topic: (
                    f"the subscriber(s) on {t} did not match the bench's publisher "
                    f"QoS ({self.settings.qos}); try --qos reliable or check the node's input.qos"
                ),
            )
        return topics

    # -- callbacks (executor thread)

    def _on_detections(self, msg, info) -> None:
        recv = received_ns(info)
        stamp = stamp_ns(msg.header)
        with self._lock:
            rec = self._by_stamp.get(stamp)
            if rec is None:
                self.unmatched += 1
                return
            take_answer(rec, self._open, msg, info, recv)
            self._last_answered = max(self._last_answered, stamp)
            self._lock.notify_all()

    def _on_depth(self, msg, info) -> None:
        recv = received_ns(info)
        stamp = stamp_ns(msg.header)
        with self._lock:
            rec = self._by_stamp.get(stamp)
            if rec is None:
                self.depth_unmatched += 1
                return
            frame = self.frames.frames[rec.source_index]
            rec.depth_recv_ns = recv
            rec.depth_ok = (
                msg.encoding == "32FC1"
                and msg.width == frame.width
                and msg.height == frame.height
                and msg.header.frame_id == rec.frame_id
            )

    def _on_capture(self, msg, kind: str, channels: int) -> None:
        stamp = stamp_ns(msg.header)
        if stamp not in self._capture:
            return
        try:
            img = image_array(msg, channels)
        except ValueError:
            return  # a wrongly sized image is not worth a crash of the bench; it shows as missing
        self.captured.setdefault(stamp, {})[kind] = img

    def _on_diagnostics(self, msg, info) -> None:
        recv = received_ns(info)
        want = self.settings.status_node
        for status in msg.status:
            if reports_for(status.name, want):
                sample = diag_sample(status, recv)
                with self._lock:
                    self._diag.append(sample)

    # -- publishing (calling thread)

    def _publish(self, phase: str, index: int, source_index: int) -> FrameRecord:
        if self.publisher is None:
            raise RuntimeError("not connected: call connect() first")
        frame = self.frames.frames[source_index]
        msg = self._msg_t()
        if frame.compressed:
            msg.format = frame.encoding
        else:
            msg.height, msg.width = frame.height, frame.width
            msg.encoding, msg.is_bigendian, msg.step = frame.encoding, 0, frame.step
        msg.data = frame.data  # array.array('B'): taken by reference, no copy
        msg.header.frame_id = frame.frame_id
        with self._lock:
            stamp = max(time.time_ns(), self._last_stamp + 1)
            self._last_stamp = stamp
            rec = FrameRecord(phase, index, source_index, stamp, frame.frame_id)
            self._by_stamp[stamp] = rec
            self._open[stamp] = rec
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        info = self._infos[source_index] if self._infos else None
        if info is not None and self._info_publisher is not None:
            info.header = msg.header  # just before the frame it describes
            self._info_publisher.publish(info)
        t0 = time.perf_counter_ns()
        self.publisher.publish(msg)
        rec.publish_call_ns = time.perf_counter_ns() - t0
        return rec

    def _expire(self) -> None:
        """Forget frames unanswered for longer than the result timeout (caller holds the lock)."""
        limit = time.time_ns() - int(self.settings.result_timeout_s * 1e9)
        for stamp in [s for s in self._open if s < limit]:
            del self._open[stamp]

    def capture(self, stamps: Iterable[int]) -> None:
        """Keep the overlay and normalized depth images of these frames."""
        self._capture.update(stamps)

    def prime(self, timeout_s: float, alive: Callable[[], bool]) -> float:
        """Publish single frames until the first answer arrives (after :meth:`connect`).

        Returns:
            Seconds until the first answer.

        Raises:
            TargetExitedError: The target died.
            TargetTimeoutError: It did not answer in time.
        """
        start = time.monotonic()
        retry_s = 0.5
        index = 0
        while time.monotonic() - start < timeout_s:
            rec = self._publish("prime", index, index % len(self.frames))
            index += 1
            deadline = time.monotonic() + retry_s
            with self._lock:
                while rec.recv_ns is None and time.monotonic() < deadline:
                    self._lock.wait(0.05)
            if rec.recv_ns is not None:
                with self._lock:
                    self._open.clear()
                return time.monotonic() - start
            if not alive():
                raise TargetExitedError("the target exited before answering a frame")
            retry_s = min(retry_s * 1.5, 5.0)
        assert self.topics is not None
        raise TargetTimeoutError(
            f"no detections on {self.topics.detections} within {timeout_s:.0f} s of publishing "
            f"on {self.topics.image}"
        )

    def run(
        self,
        phase: str,
        count: int,
        pacing: str | float,
        alive: Callable[[], bool],
        progress=None,
        start_index: int = 0,
        capture_indices: Iterable[int] = (),
    ) -> list[FrameRecord]:
        """Publish ``count`` frames and wait for their answers.

        Args:
            phase: Label stored in each record.
            count: Frames to publish.
            pacing: A rate in Hz, ``"recorded"`` (the source's own timing) or ``"max"``
                (closed loop: at most ``settings.window`` frames unanswered).
            alive: Returns False once the target process is gone (ends the phase early).
            progress: Optional tqdm-like object, ``update(1)`` per frame.
            start_index: Source frame to start from (phases continue through the source).
            capture_indices: Phase indices whose overlay/depth images to keep.

        Returns:
            One record per published frame, answered or not. The phase ends early when the
            target dies; :attr:`failure` then says so.
        """
        check_pacing(pacing)
        schedule = (
            None
            if pacing == MAX
            else Schedule(pacing, self.frames.periods_s(), start=time.monotonic())
        )
        wanted = set(capture_indices)
        records: list[FrameRecord] = []
        try:
            for i in range(count):
                source = (start_index + i) % len(self.frames)
                if schedule is None:
                    self._wait_window(alive)
                else:
                    now = time.monotonic()
                    due = schedule.next_due(source, now)
                    if due > now:
                        time.sleep(due - now)
                    if i % 16 == 0 and not alive():
                        raise TargetExitedError(f"the target exited during the {phase} phase")
                rec = self._publish(phase, i, source)
                if i in wanted:
                    self.capture([rec.stamp_ns])
                records.append(rec)
                if progress is not None:
                    progress.update(1)
        except TargetError as err:
            self.failure = str(err)
        self.drain(records, alive)
        return records

    def _wait_window(self, alive: Callable[[], bool]) -> None:
        checks = 0
        with self._lock:
            while True:
                self._expire()
                if len(self._open) < self.settings.window:
                    return
                self._lock.wait(0.02)
                checks += 1
                if checks % 50 == 0 and not alive():
                    raise TargetExitedError("the target exited while frames were in flight")

    def drain(self, records: list[FrameRecord], alive: Callable[[], bool]) -> None:
        """Wait until every record is answered, passed by a later answer, or timed out."""
        if not records:
            return
        deadline = time.time_ns() + int(self.settings.result_timeout_s * 1e9)
        checks = 0
        with self._lock:
            while time.time_ns() < deadline and any(
                r.recv_ns is None and r.stamp_ns > self._last_answered for r in records
            ):
                self._lock.wait(0.02)
                checks += 1
                if checks % 50 == 0 and not alive():
                    break
            self._open.clear()
        # Depth and captured images travel separately (and are bigger): give them a moment.
        if self.topics is not None and (self.topics.depth or self.topics.overlay):
            end = time.monotonic() + 1.0
            while time.monotonic() < end and any(
                r.recv_ns is not None and r.depth_recv_ns is None for r in records[-3:]
            ):
                time.sleep(0.02)

    def diagnostics(self) -> list[DiagSample]:
        """Diagnostics statuses of the target received so far."""
        with self._lock:
            return list(self._diag)

    def wait_diagnostics_after(self, t_ns: int, timeout_s: float) -> bool:
        """Wait for a diagnostics status received after ``t_ns`` (final counters)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._diag and self._diag[-1].t_ns > t_ns:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Stop spinning and destroy the bench node."""
        self._bench.close([self._info_publisher])
