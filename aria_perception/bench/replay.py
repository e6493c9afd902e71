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

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from aria_perception.bench.frame import FrameSet

PUBLISHER_QOS = ("reliable", "best_effort", "sensor_data")


class ReplayError(Exception):
    """The replay could not go on (target gone, never matched, nothing answered)."""


def _join(*parts: str) -> str:
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


@dataclass(frozen=True)
class Topics:
    """Fully resolved topics of one target.

    Attributes:
        image: Input topic the frames are published on.
        detections: The target's Detection2DArray output.
        depth: ``depth/raw`` (collected and checked when set).
        diagnostics: Where the target publishes its DiagnosticArray.
        overlay: ``detections/overlay`` (captured for a few frames when set).
        depth_normalized: ``depth/normalized`` (captured for a few frames when set).
    """

    image: str
    detections: str
    depth: str | None = None
    diagnostics: str = "/diagnostics"
    overlay: str | None = None
    depth_normalized: str | None = None


@dataclass(frozen=True)
class TopicPlan:
    """Where a target's topics may be, found on the ROS graph when it is up.

    A node's relative names resolve under its namespace (``/ns/image``) and its private names
    under its own name (``/ns/node/detections``); the perception node takes its input relative
    and publishes its outputs privately, but the bench accepts either for each, so it also
    measures nodes that do otherwise.

    Attributes:
        inputs: Candidate input topics, in order of preference.
        outputs: Candidate prefixes of the outputs (``<prefix>/detections``, ...).
        depth: Collect ``depth/raw``.
        images: Capture ``detections/overlay`` and ``depth/normalized``.
        diagnostics: Diagnostics topic.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    depth: bool = False
    images: bool = False
    diagnostics: str = "/diagnostics"

    @classmethod
    def for_node(
        cls,
        namespace: str,
        node_name: str,
        compressed: bool,
        depth: bool = False,
        images: bool = False,
    ) -> TopicPlan:
        """The candidates of a node called ``node_name`` in ``namespace``."""
        leaf = "image/compressed" if compressed else "image"
        relative, private = _join(namespace), _join(namespace, node_name)
        return cls(
            inputs=(_join(relative, leaf), _join(private, leaf)),
            outputs=(private, relative),
            depth=depth,
            images=images,
        )

    @classmethod
    def exact(
        cls, image: str, output_prefix: str, depth: bool = False, images: bool = False
    ) -> TopicPlan:
        """Given topics (``--image-topic``, ``--output-prefix``), no search."""
        return cls(inputs=(image,), outputs=(_join(output_prefix),), depth=depth, images=images)

    def resolve(self, image: str, prefix: str) -> Topics:
        """The topics for the chosen input and output prefix."""
        return Topics(
            image=image,
            detections=_join(prefix, "detections"),
            depth=_join(prefix, "depth/raw") if self.depth else None,
            diagnostics=self.diagnostics,
            overlay=_join(prefix, "detections/overlay") if self.images else None,
            depth_normalized=_join(prefix, "depth/normalized") if self.images else None,
        )


@dataclass(frozen=True)
class ReplaySettings:
    """How frames are published and answers awaited.

    Attributes:
        qos: Publisher reliability: ``reliable`` (default), ``best_effort`` or ``sensor_data``.
        qos_depth: Publisher history depth.
        window: Frames in flight at most in ``max`` pacing (publish the next one as soon as
            fewer than this many are unanswered).
        result_timeout_s: A frame unanswered for this long counts as dropped.
        status_node: Keep diagnostics statuses whose name ends in this node name.
    """

    qos: str = "reliable"
    qos_depth: int = 5
    window: int = 2
    result_timeout_s: float = 5.0
    status_node: str = "perception"

    def __post_init__(self) -> None:
        if self.qos not in PUBLISHER_QOS:
            raise ValueError(f"publisher qos must be one of {PUBLISHER_QOS}, got {self.qos!r}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.qos_depth < 1:
            raise ValueError(f"qos depth must be >= 1, got {self.qos_depth}")
        if not self.result_timeout_s > 0:
            raise ValueError(f"result timeout must be > 0 s, got {self.result_timeout_s}")


@dataclass
class FrameRecord:
    """What happened to one published frame (times are wall-clock ns).

    Attributes:
        phase: ``prime``, ``warmup``, ``latency`` or ``throughput``.
        index: Position within the phase.
        source_index: Which source frame was published.
        stamp_ns: The unique header stamp it carried (= its publish time).
        publish_call_ns: Time spent inside ``publish()`` (serialisation + hand-off to DDS).
        recv_ns: Reception time of its ``detections``; None if none came.
        detections: Number of detections in the answer.
        header_ok: Whether the answer's frame_id equals the frame's.
        sent_ns: When the target's middleware wrote the answer (``source_timestamp``): splits
            the latency into "to the node and through it" and "back" (None where unknown).
        depth_recv_ns: Reception time of its ``depth/raw``, if collected.
        depth_ok: Whether that depth image was 32FC1 at the frame's size.
    """

    phase: str
    index: int
    source_index: int
    stamp_ns: int
    frame_id: str
    publish_call_ns: int = 0
    recv_ns: int | None = None
    detections: int | None = None
    header_ok: bool | None = None
    sent_ns: int | None = None
    depth_recv_ns: int | None = None
    depth_ok: bool | None = None

    @property
    def latency_ms(self) -> float | None:
        """End-to-end latency in ms, None when the frame got no answer."""
        return None if self.recv_ns is None else (self.recv_ns - self.stamp_ns) / 1e6


@dataclass
class DiagSample:
    """One DiagnosticStatus of the target as received (``t_ns`` wall clock)."""

    t_ns: int
    level: int
    name: str
    message: str
    hardware_id: str
    values: dict[str, str] = field(default_factory=dict)


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _image_array(msg, channels: int) -> np.ndarray:
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    img = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    return img.copy() if channels > 1 else img[..., 0].copy()


def _result_qos():
    """Subscriptions match whatever reliability the target publishes with."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = getattr(ReliabilityPolicy, "BEST_AVAILABLE", ReliabilityPolicy.RELIABLE)
    return QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=reliability)


def _publisher_qos(settings: ReplaySettings):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if settings.qos == "sensor_data":
        return qos_profile_sensor_data
    reliability = (
        ReliabilityPolicy.RELIABLE if settings.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(
        depth=settings.qos_depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability
    )


def _with_info() -> bool:
    """Whether subscription callbacks can receive MessageInfo (Iron and later)."""
    import rclpy.subscription

    return hasattr(rclpy.subscription, "MessageInfo")


class Replayer:
    """Publishes frames to one target and records its answers.

    Args:
        frames: What to publish (looped when more frames are asked for than it holds).
        topics: The target's topics.
        settings: QoS, window and timeouts.
        name: Name of the bench's own node (unique per target).
    """

    def __init__(
        self, frames: FrameSet, plan: TopicPlan, settings: ReplaySettings, name: str = "bench"
    ) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CompressedImage, Image

        if len(frames) == 0:
            raise ValueError("no frames to replay")
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

        self.node = rclpy.create_node(name, start_parameter_services=False)
        self._with_info = _with_info()
        self._subscribe(DiagnosticArray, plan.diagnostics, self._on_diagnostics)
        self._executor = SingleThreadedExecutor(context=self.node.context)
        self._executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)
        self._spinner.start()

    def _subscribe(self, msg_t, topic: str, handler: Callable) -> None:
        if self._with_info:
            self.node.create_subscription(msg_t, topic, handler, _result_qos())
        else:
            self.node.create_subscription(msg_t, topic, lambda m: handler(m, None), _result_qos())

    def _find(self) -> tuple[str | None, str | None]:
        """The input with a subscriber and the output prefix with a detections publisher."""
        image = next((t for t in self.plan.inputs if self.node.count_subscribers(t) > 0), None)
        prefix = next(
            (
                p
                for p in self.plan.outputs
                if self.node.count_publishers(_join(p, "detections")) > 0
            ),
            None,
        )
        return image, prefix

    def connect(self, timeout_s: float, alive: Callable[[], bool]) -> Topics:
        """Find the target's topics on the graph, create the endpoints, wait until matched.

        Returns:
            The topics in use.

        Raises:
            ReplayError: The target died, or it did not appear (or did not match the
                publisher's QoS) within ``timeout_s``; the message lists where it looked.
        """
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        deadline = time.monotonic() + timeout_s
        image = prefix = None
        while image is None or prefix is None:
            image, prefix = self._find()
            if image is not None and prefix is not None:
                break
            if not alive():
                raise ReplayError("the target exited before it subscribed to its input")
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"within {timeout_s:.0f} s nothing subscribed to "
                    f"{' or '.join(self.plan.inputs)}"
                    + ("" if image is None else f" (found {image})")
                    + " and published "
                    + " or ".join(_join(p, "detections") for p in self.plan.outputs)
                    + ("" if prefix is None else f" (found under {prefix})")
                )
            time.sleep(0.05)
        topics = self.plan.resolve(image, prefix)
        self.topics = topics
        self.publisher = self.node.create_publisher(
            self._msg_t, topics.image, _publisher_qos(self.settings)
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
        while self.publisher.get_subscription_count() == 0:
            if not alive():
                raise ReplayError("the target exited before it subscribed to its input")
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"the subscriber(s) on {topics.image} did not match the bench's publisher "
                    f"QoS ({self.settings.qos}); try --qos reliable or check the node's input.qos"
                )
            time.sleep(0.05)
        return topics

    # -- callbacks (executor thread)

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self._executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    @staticmethod
    def _recv_time(info) -> int:
        if info:
            stamp = info.get("received_timestamp") if isinstance(info, dict) else None
            if stamp:
                return int(stamp)
        return time.time_ns()

    @staticmethod
    def _sent_time(info) -> int | None:
        stamp = info.get("source_timestamp") if isinstance(info, dict) else None
        return int(stamp) if stamp else None

    def _on_detections(self, msg, info) -> None:
        recv = self._recv_time(info)
        stamp = _stamp_ns(msg.header)
        with self._lock:
            rec = self._by_stamp.get(stamp)
            if rec is None:
                self.unmatched += 1
                return
            if rec.recv_ns is None:
                rec.recv_ns = recv
                rec.detections = len(msg.detections)
                rec.header_ok = msg.header.frame_id == rec.frame_id
                rec.sent_ns = self._sent_time(info)
            # Answers come in frame order: frames before this one that are still unanswered
            # were dropped by the target, so they no longer hold a place in the window. (A late
            # answer of one is still recorded: records are looked up by stamp.)
            for older in [s for s in self._open if s <= stamp]:
                del self._open[older]
            self._last_answered = max(self._last_answered, stamp)
            self._lock.notify_all()

    def _on_depth(self, msg, info) -> None:
        recv = self._recv_time(info)
        stamp = _stamp_ns(msg.header)
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
        stamp = _stamp_ns(msg.header)
        if stamp not in self._capture:
            return
        try:
            img = _image_array(msg, channels)
        except ValueError:
            return  # a wrongly sized image is not worth a crash of the bench; it shows as missing
        self.captured.setdefault(stamp, {})[kind] = img

    def _on_diagnostics(self, msg, info) -> None:
        recv = self._recv_time(info)
        want = self.settings.status_node
        for status in msg.status:
            tail = status.name.split(": ", 1)[-1]
            if tail == want or tail.endswith("/" + want):
                sample = DiagSample(
                    t_ns=recv,
                    level=int.from_bytes(status.level, "little")
                    if isinstance(status.level, bytes)
                    else int(status.level),
                    name=status.name,
                    message=status.message,
                    hardware_id=status.hardware_id,
                    values={kv.key: kv.value for kv in status.values},
                )
                with self._lock:
                    self._diag.append(sample)

    # -- publishing (calling thread)

    def _publish(self, phase: str, index: int, source_index: int) -> FrameRecord:
        if self.publisher is None:
            raise ReplayError("not connected: call connect() first")
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
            ReplayError: The target died or did not answer in time.
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
                raise ReplayError("the target exited before answering a frame")
            retry_s = min(retry_s * 1.5, 5.0)
        assert self.topics is not None
        raise ReplayError(
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
        periods = self.frames.periods_s() if pacing == "recorded" else None
        if pacing not in ("max", "recorded"):
            rate = float(pacing)
            if not rate > 0:
                raise ValueError(f"rate must be > 0 Hz, got {rate}")
        wanted = set(capture_indices)
        records: list[FrameRecord] = []
        next_t = time.monotonic()
        try:
            for i in range(count):
                source = (start_index + i) % len(self.frames)
                if pacing == "max":
                    self._wait_window(alive)
                else:
                    period = periods[source] if periods else 1.0 / rate
                    if i:
                        next_t += period
                    now = time.monotonic()
                    if next_t > now:
                        time.sleep(next_t - now)
                    elif now - next_t > 0.5 * period:
                        next_t = now  # late by over half a period (slow publish): never burst
                    if i % 16 == 0 and not alive():
                        raise ReplayError(f"the target exited during the {phase} phase")
                rec = self._publish(phase, i, source)
                if i in wanted:
                    self.capture([rec.stamp_ns])
                records.append(rec)
                if progress is not None:
                    progress.update(1)
        except ReplayError as err:
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
                    raise ReplayError("the target exited while frames were in flight")

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
        self._executor.shutdown(timeout_sec=2.0)
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()
