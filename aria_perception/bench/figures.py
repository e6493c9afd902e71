"""The figures of a run, computed from what the replay observed (no ROS here).

Plain data in (:class:`FrameRecord` lists, :class:`DiagSample` statuses, a
:class:`ResourceUsage`), typed records out (:mod:`.run_record`). Percentiles come from
:mod:`aria_perception.stats`; figures are rounded for the report.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

from aria_perception.bench.observations import DiagSample, FrameRecord
from aria_perception.bench.process import ResourceUsage
from aria_perception.bench.run_record import (
    DepthStats,
    DiagnosticsSummary,
    FramesTable,
    LatencySummary,
    NodeLatency,
    NodePathTimes,
    PhaseStats,
    ResourceSummary,
    StageTimes,
)
from aria_perception.stats import Summary, percentile

#: Node counters reported as increases over the window, and their report names.
COUNTERS = {
    "dropped_frames": "node_dropped_frames",
    "rejected_frames": "rejected_frames",
    "lost_samples": "lost_samples",
    "worker_restarts": "worker_restarts",
    "batched_frames": "batched_frames",
}


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``value`` rounded for the report; None for None, NaN and infinities."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _median_ms(values_ns: Iterable[float]) -> float | None:
    values = list(values_ns)
    return rounded(percentile(values, 50) / 1e6) if values else None


def _mean(values: Sequence[float], digits: int) -> float | None:
    return rounded(sum(values) / len(values), digits) if values else None


def latency_summary(latencies_ms: Sequence[float]) -> LatencySummary:
    """p50/p95/p99/mean/std/min/max of latencies (None each when there are none)."""
    if not latencies_ms:
        return LatencySummary()
    s = Summary.of(latencies_ms)
    return LatencySummary(
        p50=rounded(s.p50),
        p95=rounded(s.p95),
        p99=rounded(s.p99),
        mean=rounded(s.mean),
        std=rounded(s.std),
        min=rounded(s.min),
        max=rounded(s.max),
    )


def phase_stats(records: Sequence[FrameRecord], pacing: str) -> PhaseStats | None:
    """Figures of one replay phase (None when it published nothing).

    ``output_fps`` is answers per second from the first publish to the last answer;
    ``input_fps`` is frames published per second over the publishing span.
    """
    if not records:
        return None
    got = [r for r in records if r.recv_ns is not None]
    first = records[0].stamp_ns
    pub_span = (records[-1].stamp_ns - first) / 1e9
    end = max((r.recv_ns for r in got if r.recv_ns is not None), default=first)
    duration = (end - first) / 1e9
    dets = [r.detections for r in got if r.detections is not None]
    # Publish -> the answer written by the target, and written -> received back here.
    split = [r for r in got if r.sent_ns is not None]
    return PhaseStats(
        pacing=pacing,
        published=len(records),
        received=len(got),
        dropped=len(records) - len(got),
        drop_rate=rounded((len(records) - len(got)) / len(records), 4),
        input_fps=rounded((len(records) - 1) / pub_span, 2) if pub_span > 0 else None,
        output_fps=rounded(len(got) / duration, 2) if duration > 0 else None,
        duration_s=rounded(duration),
        latency_ms=latency_summary([r.latency_ms for r in got if r.latency_ms is not None]),
        publish_call_ms_p50=_median_ms(r.publish_call_ns for r in records),
        to_output_ms_p50=_median_ms((r.sent_ns or 0) - r.stamp_ns for r in split),
        return_ms_p50=_median_ms((r.recv_ns or 0) - (r.sent_ns or 0) for r in split),
        detections_mean=_mean(dets, 2),
        header_mismatches=sum(1 for r in got if r.header_ok is False),
    )


def depth_stats(records: Sequence[FrameRecord], collected: bool) -> DepthStats:
    """How ``depth/raw`` answers arrived (only when the bench subscribed to it)."""
    with_depth = [r for r in records if r.depth_recv_ns is not None]
    summary = latency_summary([((r.depth_recv_ns or 0) - r.stamp_ns) / 1e6 for r in with_depth])
    return DepthStats(
        collected=collected,
        received=len(with_depth) if collected else None,
        bad=sum(1 for r in with_depth if r.depth_ok is False) if collected else None,
        latency_p50_ms=summary.p50,
        latency_p95_ms=summary.p95,
    )


def _float(value: str | None) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _window_means(inside: Sequence[DiagSample], keys: Iterable[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in keys:
        vals = [v for v in (_float(s.values.get(key)) for s in inside) if v is not None]
        out[key] = _mean(vals, 3)
    return out


def diagnostics_summary(
    samples: Sequence[DiagSample], start_ns: int, end_ns: int
) -> DiagnosticsSummary:
    """What the target's own diagnostics said about the measured window.

    Counters (``dropped_frames``, ``rejected_frames``, ``lost_samples``, ``worker_restarts``)
    are the increase from the last status before the window to the last status received
    (the node reports running totals). Stage times are the mean of the statuses within the
    window; GPU memory is the maximum reported.
    """
    if not samples:
        return DiagnosticsSummary()
    before = [s for s in samples if s.t_ns <= start_ns]
    inside = [s for s in samples if start_ns < s.t_ns <= end_ns] or list(samples[-1:])
    last = samples[-1]
    base = before[-1] if before else samples[0]
    counters: dict[str, int | None] = dict.fromkeys(COUNTERS.values())
    for key, name in COUNTERS.items():
        now, then = _float(last.values.get(key)), _float(base.values.get(key))
        if now is not None:
            # If the first status already came inside the window, count from zero.
            delta = now - (then if then is not None and before else 0.0)
            counters[name] = int(max(delta, 0))
    gpu: dict[str, float | None] = {}
    for key in ("gpu_mem_mb", "gpu_mem_peak_mb"):
        vals = [v for v in (_float(s.values.get(key)) for s in samples) if v is not None]
        gpu[key] = rounded(max(vals), 1) if vals else None
    return DiagnosticsSummary(
        samples=len(inside),
        status_name=last.name,
        hardware_id=last.hardware_id,
        level_max=max(s.level for s in inside),
        last_message=last.message,
        values=dict(last.values),
        stage_ms=StageTimes(**_window_means(inside, StageTimes.keys())),
        path_ms=NodePathTimes(**_window_means(inside, NodePathTimes.keys())),
        node_latency_ms=NodeLatency(
            *(_float(last.values.get(f"latency_ms_{q}")) for q in NodeLatency.keys())
        ),
        rejected_frames=counters["rejected_frames"],
        node_dropped_frames=counters["node_dropped_frames"],
        lost_samples=counters["lost_samples"],
        worker_restarts=counters["worker_restarts"],
        batched_frames=counters["batched_frames"],
        gpu_mem_mb=gpu["gpu_mem_mb"],
        gpu_mem_peak_mb=gpu["gpu_mem_peak_mb"],
        weights=last.values.get("weights"),
        device=last.values.get("device"),
        precision=last.values.get("precision"),
    )


def resource_summary(
    usage: ResourceUsage | None, bench_cpu_percent_mean: float | None = None
) -> ResourceSummary:
    """CPU (percent of one core) and memory of the target process and its worker children.

    Args:
        usage: What the target's monitor recorded (None: no figures).
        bench_cpu_percent_mean: The bench process's own mean CPU while measuring.
    """
    if usage is None or usage.samples == 0:
        return ResourceSummary(bench_cpu_percent_mean=bench_cpu_percent_mean)

    def peak(xs: Sequence[float]) -> float | None:
        return rounded(max(xs), 1) if xs else None

    return ResourceSummary(
        samples=usage.samples,
        cpu_percent_mean=_mean(usage.cpu_percent, 1),
        cpu_percent_max=peak(usage.cpu_percent),
        rss_mb_max=peak(usage.rss_mb),
        worker_cpu_percent_mean=_mean(usage.children_cpu_percent, 1),
        worker_rss_mb_max=peak(usage.children_rss_mb),
        gpu_mem_nvml_mb_max=peak(usage.gpu_mem_mb),
        bench_cpu_percent_mean=bench_cpu_percent_mean,
    )


def mean_cpu_percent(usage: ResourceUsage | None) -> float | None:
    """Mean CPU of a monitored process (percent of one core), rounded; None without samples."""
    if usage is None or usage.samples == 0:
        return None
    return _mean(usage.cpu_percent, 1)


def frames_table(records: Sequence[FrameRecord]) -> FramesTable:
    """Per-frame columns of the measured phases."""
    return FramesTable(
        phase=[r.phase for r in records],
        latency_ms=[rounded(r.latency_ms) for r in records],
        detections=[r.detections for r in records],
    )


def merged_diagnostics(parts: Sequence[DiagnosticsSummary]) -> DiagnosticsSummary:
    """One summary for the nodes of a multi-stream target (each stream's stays in its record).

    Device, weights and precision are the first reporting node's; counters and GPU memory are
    sums over the nodes (each node has its own worker); path and stage times are left out.
    """
    reporting = [p for p in parts if p.samples]
    if not reporting:
        return DiagnosticsSummary()

    def total(name: str) -> float | None:
        values = [getattr(p, name) for p in reporting if getattr(p, name) is not None]
        return sum(values) if values else None

    first = reporting[0]
    gpu, peak = total("gpu_mem_mb"), total("gpu_mem_peak_mb")
    return dataclasses.replace(
        first,
        samples=sum(p.samples for p in reporting),
        status_name=None,
        level_max=max((p.level_max for p in reporting if p.level_max is not None), default=None),
        last_message=None,
        values={},
        stage_ms=StageTimes(),
        path_ms=NodePathTimes(),
        node_latency_ms=NodeLatency(),
        rejected_frames=total("rejected_frames"),
        node_dropped_frames=total("node_dropped_frames"),
        lost_samples=total("lost_samples"),
        worker_restarts=total("worker_restarts"),
        batched_frames=total("batched_frames"),
        gpu_mem_mb=rounded(gpu, 1),
        gpu_mem_peak_mb=rounded(peak, 1),
    )
