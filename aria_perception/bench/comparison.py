"""Runs side by side: a node run over the echo reference, and the two runs of compare mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aria_perception.bench.figures import rounded
from aria_perception.bench.json_record import JsonRecord
from aria_perception.bench.run_record import RunRecord


@dataclass(frozen=True)
class Overhead(JsonRecord):
    """A node run's figures over the echo reference's (the transport floor).

    Attributes:
        latency_p50_over_echo_ms: Paced-phase latency p50, node minus echo.
        latency_p95_over_echo_ms: The same for p95.
        throughput_fraction: Max-rate FPS of the node as a fraction of echo's.
    """

    latency_p50_over_echo_ms: float | None = None
    latency_p95_over_echo_ms: float | None = None
    throughput_fraction: float | None = None

    @classmethod
    def of(cls, run: RunRecord, echo: RunRecord | None) -> Overhead:
        """``run`` over ``echo`` (None each where either figure is missing)."""
        if echo is None:
            return cls()
        ours = run.latency.latency_ms if run.latency else None
        ref = echo.latency.latency_ms if echo.latency else None

        def over(q: str) -> float | None:
            a = getattr(ours, q) if ours else None
            b = getattr(ref, q) if ref else None
            return rounded(a - b) if a is not None and b is not None else None

        a = run.throughput.output_fps if run.throughput else None
        b = echo.throughput.output_fps if echo.throughput else None
        return cls(
            latency_p50_over_echo_ms=over("p50"),
            latency_p95_over_echo_ms=over("p95"),
            throughput_fraction=rounded(a / b, 4) if a is not None and b else None,
        )


def _latency(q: str) -> Callable[[RunRecord], float | None]:
    return lambda r: getattr(r.latency.latency_ms, q) if r.latency else None


#: What compare mode puts side by side: name -> the figure of a run.
COMPARE_METRICS: tuple[tuple[str, Callable[[RunRecord], float | None]], ...] = (
    ("latency_p50_ms", _latency("p50")),
    ("latency_p95_ms", _latency("p95")),
    ("latency_output_fps", lambda r: r.latency.output_fps if r.latency else None),
    ("throughput_fps", lambda r: r.throughput.output_fps if r.throughput else None),
    ("cpu_percent_mean", lambda r: r.resources.cpu_percent_mean),
    ("worker_cpu_percent_mean", lambda r: r.resources.worker_cpu_percent_mean),
    ("gpu_mem_peak_mb", lambda r: r.diagnostics.gpu_mem_peak_mb),
    ("depth_ms", lambda r: r.diagnostics.stage_ms.depth_ms),
    ("detect_ms", lambda r: r.diagnostics.stage_ms.detect_ms),
)


@dataclass(frozen=True)
class MetricPair(JsonRecord):
    """One figure of both runs and the ratio ``b / a``."""

    a: float | None = None
    b: float | None = None
    ratio: float | None = None


@dataclass(frozen=True)
class Comparison(JsonRecord):
    """Compare mode: the figures of run ``b`` beside run ``a``'s.

    Attributes:
        a: Label of the first run.
        b: Label of the second run.
        metrics: ``COMPARE_METRICS`` name -> both figures and their ratio.
    """

    a: str
    b: str
    metrics: dict[str, MetricPair] = field(default_factory=dict)

    @classmethod
    def of(cls, a: RunRecord, b: RunRecord) -> Comparison:
        """Side by side figures of two runs and the ratio b / a of each."""
        metrics = {}
        for name, figure in COMPARE_METRICS:
            va, vb = figure(a), figure(b)
            ratio = rounded(vb / va, 4) if va and vb is not None else None
            metrics[name] = MetricPair(va, vb, ratio)
        return cls(a=a.label, b=b.label, metrics=metrics)
