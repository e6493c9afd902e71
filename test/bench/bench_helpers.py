"""Builders of replay observations and run records for the bench's tests (no ROS needed)."""

from __future__ import annotations

from aria_perception.bench.observations import DiagSample, FrameRecord
from aria_perception.bench.run_record import (
    DiagnosticsSummary,
    LatencySummary,
    PhaseStats,
    ResourceSummary,
    Role,
    RunRecord,
    TargetKind,
)

MS = 1_000_000


def records(
    latencies_ms: list[float | None], phase: str = "latency", period_ms: float = 10.0
) -> list[FrameRecord]:
    """Frames published ``period_ms`` apart, answered after these latencies (None: dropped)."""
    out = []
    for i, lat in enumerate(latencies_ms):
        stamp = 1_000_000_000 + int(i * period_ms * MS)
        rec = FrameRecord(phase, i, i, stamp, "cam", publish_call_ns=200_000)
        if lat is not None:
            rec.recv_ns, rec.detections, rec.header_ok = stamp + int(lat * MS), 2, True
        out.append(rec)
    return out


def diag(t_s: float, **values: str) -> DiagSample:
    """A status of the node received at ``t_s`` seconds."""
    return DiagSample(int(t_s * 1e9), 0, "aria_perception: perception", "ok", "H100", values)


def phase(p50: float, p95: float, output_fps: float, dropped: int = 0) -> PhaseStats:
    """A phase with these figures (the rest plausible)."""
    return PhaseStats(
        pacing="30 Hz",
        published=100,
        received=100 - dropped,
        dropped=dropped,
        drop_rate=dropped / 100,
        input_fps=30.0,
        output_fps=output_fps,
        duration_s=3.3,
        latency_ms=LatencySummary(p50=p50, p95=p95),
        publish_call_ms_p50=0.2,
        to_output_ms_p50=None,
        return_ms_p50=None,
        detections_mean=2.0,
        header_mismatches=0,
    )


def run(
    label: str,
    p50: float,
    p95: float,
    fps: float,
    *,
    role: Role = Role.NODE,
    ok: bool = True,
    crashed: bool = False,
    dropped: int = 0,
    diagnostics: DiagnosticsSummary | None = None,
    resources: ResourceSummary | None = None,
) -> RunRecord:
    """A run whose paced phase has ``p50``/``p95`` and whose max-rate phase makes ``fps``."""
    return RunRecord(
        label=label,
        role=role,
        target=TargetKind.ECHO if role is Role.ECHO else TargetKind.NODE,
        ok=ok,
        crashed=crashed,
        latency=phase(p50, p95, 30.0),
        throughput=phase(p50, p95, fps, dropped=dropped),
        diagnostics=diagnostics or DiagnosticsSummary(worker_restarts=0),
        resources=resources or ResourceSummary(),
    )


def assert_one_line_error(stderr: str, *needles: str) -> None:
    """``stderr`` is one line naming the problem (each of ``needles``), no traceback."""
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    for needle in needles:
        assert needle in stderr, stderr
