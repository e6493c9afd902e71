"""The records of one measured run in ``report.json``: phases, depth, diagnostics, resources.

Every record is a dataclass whose fields are its JSON keys (see :mod:`.json_record`); the runner
fills a :class:`RunRecord` per target and :mod:`.figures` computes the parts from what the replay
observed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from aria_perception.bench.json_record import OMIT_EMPTY, JsonRecord


class Role(str, Enum):
    """Which run of an invocation a record is: the echo reference, the node, its compare run."""

    ECHO = "echo"
    NODE = "node"
    NODE_B = "node_b"


class TargetKind(str, Enum):
    """What was measured: the echo reference, a node the bench started, or a running node."""

    ECHO = "echo"
    NODE = "node"
    ATTACHED = "attached"


@dataclass(frozen=True)
class LatencySummary(JsonRecord):
    """Distribution of latencies in ms (None each when no frame was answered)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class PhaseStats(JsonRecord):
    """Figures of one replay phase (the paced ``latency`` phase or the max-rate ``throughput``).

    Attributes:
        pacing: ``30 Hz``, ``recorded`` or ``max``.
        published: Frames published.
        received: Frames answered.
        dropped: Frames not answered within the result timeout.
        drop_rate: ``dropped / published``.
        input_fps: Frames published per second over the publishing span.
        output_fps: Answers per second from the first publish to the last answer.
        duration_s: First publish to last answer.
        latency_ms: Publish to ``detections`` received.
        publish_call_ms_p50: Median time inside ``publish()``.
        to_output_ms_p50: Median publish to the target writing its answer.
        return_ms_p50: Median answer written to received here.
        detections_mean: Mean detections per answer.
        header_mismatches: Answers whose frame_id differs from the frame's.
    """

    pacing: str
    published: int
    received: int
    dropped: int
    drop_rate: float | None
    input_fps: float | None
    output_fps: float | None
    duration_s: float | None
    latency_ms: LatencySummary
    publish_call_ms_p50: float | None
    to_output_ms_p50: float | None
    return_ms_p50: float | None
    detections_mean: float | None
    header_mismatches: int


@dataclass(frozen=True)
class DepthStats(JsonRecord):
    """How ``depth/raw`` answers arrived (figures only when the bench subscribed to it)."""

    collected: bool = False
    received: int | None = None
    bad: int | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


@dataclass(frozen=True)
class StageTimes(JsonRecord):
    """Mean GPU stage times (ms) the node reported in the measured window."""

    preprocess_ms: float | None = None
    depth_ms: float | None = None
    detect_ms: float | None = None
    transfer_ms: float | None = None


@dataclass(frozen=True)
class NodePathTimes(JsonRecord):
    """Mean times (ms) of a frame's path outside the GPU, as the node reports them.

    The fields are the node's diagnostics keys of the same names (``PATH_KEYS`` of
    :mod:`aria_perception.ros.diagnostics`); ``transport_ms`` excludes ``copy_in_ms``, and
    ``track_ms`` (the tracker's time) is not part of ``publish_ms``.
    """

    copy_in_ms: float | None = None
    queue_ms: float | None = None
    engine_ms: float | None = None
    transport_ms: float | None = None
    track_ms: float | None = None
    publish_ms: float | None = None


@dataclass(frozen=True)
class NodeLatency(JsonRecord):
    """The latency percentiles the node itself last reported (ms)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True)
class DiagnosticsSummary(JsonRecord):
    """What the target's own diagnostics said about the measured window.

    Counters are increases over the window; ``values`` is the last status's key/values as
    published.
    """

    samples: int = 0
    status_name: str | None = None
    hardware_id: str | None = None
    level_max: int | None = None
    last_message: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    stage_ms: StageTimes = StageTimes()
    path_ms: NodePathTimes = NodePathTimes()
    node_latency_ms: NodeLatency = NodeLatency()
    rejected_frames: int | None = None
    node_dropped_frames: int | None = None
    lost_samples: int | None = None
    worker_restarts: int | None = None
    batched_frames: int | None = None  # frames run with other cameras' (worker.batch_cameras)
    gpu_mem_mb: float | None = None
    gpu_mem_peak_mb: float | None = None
    weights: str | None = None
    device: str | None = None
    precision: str | None = None


@dataclass(frozen=True)
class ResourceSummary(JsonRecord):
    """CPU (percent of one core) and memory of the target and its worker; the bench's own CPU."""

    samples: int = 0
    cpu_percent_mean: float | None = None
    cpu_percent_max: float | None = None
    rss_mb_max: float | None = None
    worker_cpu_percent_mean: float | None = None
    worker_rss_mb_max: float | None = None
    gpu_mem_nvml_mb_max: float | None = None
    bench_cpu_percent_mean: float | None = None


@dataclass(frozen=True)
class FramesTable(JsonRecord):
    """Per-frame columns of the measured phases (for plots and later analysis)."""

    phase: list[str] = field(default_factory=list)
    latency_ms: list[float | None] = field(default_factory=list)
    detections: list[int | None] = field(default_factory=list)


@dataclass(frozen=True)
class RunTopics(JsonRecord):
    """The topics a run used (found on the ROS graph)."""

    image: str
    detections: str
    depth: str | None = None


@dataclass(frozen=True)
class StreamRun(JsonRecord):
    """One camera stream of a multi-stream run: its own figures and its node's diagnostics.

    Attributes:
        name: The stream (``rgb``, ``slam_left``...).
        node_name: The node that answered it.
        topics: Its input and ``detections`` topics.
        latency: Its paced phase.
        throughput: Its max-rate phase (None when skipped).
        unmatched: Answers on its ``detections`` whose stamp matched no frame sent.
        crossed: Answers on its ``detections`` that carried another stream's frame (a target
            that mixed its streams up; header mismatches in ``latency`` count the same where
            the frames shared a stamp).
        diagnostics: Its node's diagnostics over the measured window.
    """

    name: str
    node_name: str
    topics: RunTopics
    latency: PhaseStats | None = None
    throughput: PhaseStats | None = None
    unmatched: int = 0
    crossed: int = 0
    diagnostics: DiagnosticsSummary = DiagnosticsSummary()

    @property
    def mixed_up(self) -> int:
        """Answers that belonged to another stream: crossed ones and header mismatches."""
        phases = (self.latency, self.throughput)
        return self.crossed + sum(p.header_mismatches for p in phases if p is not None)


@dataclass
class RunRecord(JsonRecord):
    """One target's run: how it went and what was measured (filled in as the run goes).

    Attributes:
        label: Name of the run (``echo``, ``node`` or the ``--labels``).
        role: Which run of the invocation it is.
        target: What was measured.
        command: Command line the target was started with (None when attached).
        pid: Process id of the target.
        namespace: Namespace of the target.
        node_name: Its node name.
        topics: The topics it used (None when it never appeared).
        params: Parameters it was given.
        ok: It ran to the end of the measurement.
        error: Why not, in words (None when ``ok``).
        crashed: Its process exited before the bench stopped it.
        exit_code: Its exit status after the bench stopped it.
        log: File with its output.
        startup_s: Start until it answered its first frame.
        stop_s: Time it took to stop.
        latency: The paced phase (None when the run never got there).
        throughput: The max-rate phase (None when skipped).
        depth: ``depth/raw`` answers.
        diagnostics: Its diagnostics over the measured window.
        resources: CPU and memory.
        frames: Per-frame columns.
        streams: Each stream of a multi-stream run (left out of a one-stream report); the
            phases, diagnostics and frames above are then the totals over all streams.
    """

    label: str
    role: Role
    target: TargetKind
    command: str | None = None
    pid: int | None = None
    namespace: str = "/"
    node_name: str = "perception"
    topics: RunTopics | None = None
    params: list[str] = field(default_factory=list)
    ok: bool = False
    error: str | None = None
    crashed: bool = False
    exit_code: int | None = None
    log: str | None = None
    startup_s: float | None = None
    stop_s: float | None = None
    latency: PhaseStats | None = None
    throughput: PhaseStats | None = None
    depth: DepthStats = DepthStats()
    diagnostics: DiagnosticsSummary = DiagnosticsSummary()
    resources: ResourceSummary = ResourceSummary()
    frames: FramesTable = FramesTable()
    streams: list[StreamRun] = field(default_factory=list, metadata=OMIT_EMPTY)

    def for_stream(self, name: str) -> RunRecord | None:
        """This run seen through one stream (label ``run/stream``); None without that stream."""
        stream = next((s for s in self.streams if s.name == name), None)
        if stream is None:
            return None
        return dataclasses.replace(
            self,
            label=f"{self.label}/{name}",
            topics=stream.topics,
            latency=stream.latency,
            throughput=stream.throughput,
            diagnostics=stream.diagnostics,
            streams=[],
        )

    @property
    def is_node(self) -> bool:
        """A run of the perception node (not the echo reference)."""
        return self.role is not Role.ECHO

    @property
    def max_rate_phase(self) -> PhaseStats | None:
        """The max-rate phase, else the paced one (what FPS criteria judge)."""
        return self.throughput or self.latency

    @property
    def dropped(self) -> int:
        """Frames dropped over both measured phases."""
        return sum(p.dropped for p in (self.latency, self.throughput) if p is not None)
