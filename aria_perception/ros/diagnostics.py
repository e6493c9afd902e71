"""Rates, latency percentiles and the node's DiagnosticStatus ("Topic contract" in docs/design.md).

The trackers are plain Python and thread-safe: frames are counted in the executor thread and
results in the supervisor's thread, while the diagnostics timer reads both.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from aria_perception.errors import shorten
from aria_perception.records import StageTimes
from aria_perception.stats import percentile, percentiles

#: Where a frame's time goes outside the GPU (:class:`PathTimes`), reported beside the stages.
PATH_KEYS: tuple[str, ...] = (
    "copy_in_ms",
    "queue_ms",
    "engine_ms",
    "transport_ms",
    "track_ms",
    "publish_ms",
)

#: Every key of the status (the contract's keys plus :data:`PATH_KEYS`), in publishing order.
KEYS: tuple[str, ...] = (
    "input_fps",
    "output_fps",
    "latency_ms_p50",
    "latency_ms_p95",
    "latency_ms_p99",
    "depth_ms",
    "detect_ms",
    "preprocess_ms",
    "transfer_ms",
    *PATH_KEYS,
    "dropped_frames",
    "rejected_frames",
    "poison_frames",
    "lost_samples",
    "worker_restarts",
    "worker_state",
    "worker_pid",
    "worker_cameras",
    "batched_frames",
    "gpu_mem_mb",
    "gpu_mem_peak_mb",
    "device",
    "precision",
    "depth_frame_skip",
    "weights",
)

# diagnostic_msgs/DiagnosticStatus levels (bytes in the message).
OK, WARN, ERROR, STALE = 0, 1, 2, 3


class RateTracker:
    """Events per second over a sliding time window."""

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self._window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        """Count one event (now, or at ``now`` on the tracker's clock)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        """Events per second over the window ending now (0 with fewer than two events).

        (n - 1) intervals over the time since the oldest event in the window: exact for a
        steady stream from its second event on, and decaying once the stream stops.
        """
        now = self._clock() if now is None else now
        with self._lock:
            self._trim(now)
            count = len(self._times)
            if count < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (count - 1) / span if span > 0 else 0.0

    def reset(self) -> None:
        """Forget every event."""
        with self._lock:
            self._times.clear()

    def _trim(self, now: float) -> None:
        limit = now - self._window_s
        while self._times and self._times[0] < limit:
            self._times.popleft()


@dataclass(frozen=True)
class PathTimes:
    """Where one frame's wall-clock time went between the image callback and the last publish.

    Attributes:
        copy_in_ms: validating the frame and copying it into shared memory.
        queue_ms: waiting for the worker to finish an earlier frame.
        engine_ms: ``Engine.process`` in the worker (wall clock, GPU work included).
        transport_ms: the process boundary: messages both ways and the worker's copy out.
        track_ms: the tracker assigning track IDs to the detections (0 with tracking off).
        publish_ms: building and publishing the output messages.
    """

    copy_in_ms: float = 0.0
    queue_ms: float = 0.0
    engine_ms: float = 0.0
    transport_ms: float = 0.0
    track_ms: float = 0.0
    publish_ms: float = 0.0

    @classmethod
    def of(
        cls, timing: Any, before_publish_ms: float, publish_ms: float, track_ms: float = 0.0
    ) -> PathTimes:
        """One frame's path from the supervisor's timing and the node's own clocks.

        Args:
            timing: the supervisor's ``FrameTiming`` (``copy_in_ms``, ``wait_ms``,
                ``engine_ms``, ``transport_ms`` without copy-in, ``roundtrip_ms``).
            before_publish_ms: from the image callback's start to the result callback's start.
            publish_ms: from the result callback's start to the last publish, tracking
                included (``track_ms`` is taken out of it).
            track_ms: the tracker's part of the result callback.
        """
        # Before submit: the callback's validation; from submit on, the supervisor's split.
        validate_ms = before_publish_ms - timing.roundtrip_ms
        return cls(
            copy_in_ms=validate_ms + timing.copy_in_ms,
            queue_ms=timing.wait_ms,
            engine_ms=timing.engine_ms,
            transport_ms=timing.transport_ms,
            track_ms=track_ms,
            publish_ms=publish_ms - track_ms,
        )


class LatencyTracker:
    """The last ``size`` latencies, stage and path times, for percentiles and medians."""

    def __init__(self, size: int = 300):
        self._latency: deque[float] = deque(maxlen=size)
        self._stages: deque[StageTimes] = deque(maxlen=size)
        self._paths: deque[PathTimes] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(
        self,
        latency_ms: float,
        stages: StageTimes | None = None,
        path: PathTimes | None = None,
    ) -> None:
        """Record one frame's latency (received -> published), engine stages and path times."""
        with self._lock:
            self._latency.append(latency_ms)
            if stages is not None:
                self._stages.append(stages)
            if path is not None:
                self._paths.append(path)

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Percentiles of the recorded latencies (NaN each while empty)."""
        with self._lock:
            values = list(self._latency)
        return percentiles(values, *qs)

    def stage_medians(self) -> StageTimes:
        """Median of every stage time over the recorded frames (zeros while empty).

        Medians, not means: a shape's first frames include cuDNN tuning and CUDA-graph capture
        (hundreds of ms), which would dominate a mean for the whole window.
        """
        with self._lock:
            stages = list(self._stages)
        return _medians(StageTimes, stages)

    def path_medians(self) -> PathTimes:
        """Median of every path time over the recorded frames (zeros while empty)."""
        with self._lock:
            paths = list(self._paths)
        return _medians(PathTimes, paths)

    def reset(self) -> None:
        """Forget every sample."""
        with self._lock:
            self._latency.clear()
            self._stages.clear()
            self._paths.clear()


def _medians(cls: type, records: list) -> Any:
    """A ``cls`` whose every field is the median of that field over ``records``."""
    if not records:
        return cls()
    return cls(
        **{f.name: percentile((getattr(r, f.name) for r in records), 50) for f in fields(cls)}
    )


@dataclass
class Snapshot:
    """Everything one diagnostics message reports."""

    input_fps: float = 0.0
    output_fps: float = 0.0
    latency_ms_p50: float = math.nan
    latency_ms_p95: float = math.nan
    latency_ms_p99: float = math.nan
    stages: StageTimes | None = None
    path: PathTimes | None = None
    dropped_frames: int = 0
    rejected_frames: int = 0
    poison_frames: int = 0
    lost_samples: int = 0
    worker_restarts: int = 0
    worker_state: str = "STOPPED"
    worker_pid: int = 0  # 0: no worker process now
    worker_cameras: int = 0  # cameras (nodes) sharing the worker
    batched_frames: int = 0  # this camera's frames run with other cameras' (batch_cameras)
    gpu_mem_mb: float = 0.0
    gpu_mem_peak_mb: float = 0.0
    device: str = "unknown"
    device_name: str = "unknown"
    precision: str = "unknown"
    depth_frame_skip: int = 1
    weights: str = "unknown"
    active: bool = False
    worker_down: bool = False
    last_error: str = ""


def _fmt(value: float, digits: int = 2) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.{digits}f}"


def values(snap: Snapshot) -> dict[str, str]:
    """The KeyValue strings of a snapshot, one per key of :data:`KEYS`."""
    stages = snap.stages or StageTimes()
    path = snap.path or PathTimes()
    return {
        "input_fps": _fmt(snap.input_fps),
        "output_fps": _fmt(snap.output_fps),
        "latency_ms_p50": _fmt(snap.latency_ms_p50),
        "latency_ms_p95": _fmt(snap.latency_ms_p95),
        "latency_ms_p99": _fmt(snap.latency_ms_p99),
        "depth_ms": _fmt(stages.depth_ms, 3),
        "detect_ms": _fmt(stages.detect_ms, 3),
        "preprocess_ms": _fmt(stages.preprocess_ms, 3),
        "transfer_ms": _fmt(stages.transfer_ms, 3),
        **{key: _fmt(getattr(path, key), 3) for key in PATH_KEYS},
        "dropped_frames": str(snap.dropped_frames),
        "rejected_frames": str(snap.rejected_frames),
        "poison_frames": str(snap.poison_frames),
        "lost_samples": str(snap.lost_samples),
        "worker_restarts": str(snap.worker_restarts),
        "worker_state": snap.worker_state,
        "worker_pid": str(snap.worker_pid),
        "worker_cameras": str(snap.worker_cameras),
        "batched_frames": str(snap.batched_frames),
        "gpu_mem_mb": _fmt(snap.gpu_mem_mb, 1),
        "gpu_mem_peak_mb": _fmt(snap.gpu_mem_peak_mb, 1),
        "device": snap.device,
        "precision": snap.precision,
        "depth_frame_skip": str(snap.depth_frame_skip),
        "weights": snap.weights,
    }


def level_and_message(
    snap: Snapshot, expected_fps: float, latency_budget_ms: float
) -> tuple[int, str]:
    """The status level and its one-line summary.

    ERROR while the worker is down; WARN below ``expected_fps`` (output rate, while active and
    frames arrive), over ``latency_budget_ms`` (p95) or on random weights; OK otherwise.
    A threshold of 0 turns its check off.
    """
    if snap.worker_down:
        text = f"worker down ({snap.worker_state})"
        if snap.last_error:
            text += f": {shorten(snap.last_error)}"  # it may quote what a sender sent
        return ERROR, text
    if not snap.active:
        return OK, "inactive (lifecycle): not consuming frames"
    warnings = []
    if snap.weights == "random":
        warnings.append("running RANDOM weights (outputs are meaningless)")
    if expected_fps > 0 and snap.output_fps < expected_fps:
        if snap.input_fps <= 0:
            warnings.append("no input frames")
        else:
            warnings.append(
                f"output {snap.output_fps:.1f} FPS below expected {expected_fps:g} "
                f"(input {snap.input_fps:.1f} FPS)"
            )
    if (
        latency_budget_ms > 0
        and math.isfinite(snap.latency_ms_p95)
        and snap.latency_ms_p95 > latency_budget_ms
    ):
        warnings.append(
            f"latency p95 {snap.latency_ms_p95:.1f} ms over budget {latency_budget_ms:g} ms"
        )
    if warnings:
        return WARN, "; ".join(warnings)
    return OK, f"{snap.output_fps:.1f} FPS, p50 {_fmt(snap.latency_ms_p50, 1)} ms"


def build_status(
    snap: Snapshot, node_name: str, expected_fps: float, latency_budget_ms: float
) -> Any:
    """The node's ``diagnostic_msgs/DiagnosticStatus``.

    Name ``aria_perception: <node name>``, ``hardware_id`` the GPU name or ``cpu``, one
    ``KeyValue`` per key of :data:`KEYS`.
    """
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    level, message = level_and_message(snap, expected_fps, latency_budget_ms)
    status = DiagnosticStatus()
    status.level = bytes([level])
    status.name = f"aria_perception: {node_name}"
    status.message = message
    status.hardware_id = snap.device_name
    status.values = [KeyValue(key=k, value=v) for k, v in values(snap).items()]
    return status
