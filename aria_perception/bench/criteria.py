"""Pass/fail criteria of a node run: the limits, the table that checks them, the verdict.

Each criterion is one row of :data:`CRITERIA_TABLE`: the :class:`Criteria` field holding its
limit, how to measure the run, how the measured value compares with the limit, and how to
describe it. :func:`evaluate` runs every row whose limit is set through one loop. For a run of
several camera streams the rows about speed and drops apply to each stream (``node/rgb``,
``node/slam_left``..., each over the echo reference's same stream); GPU memory and crashes apply
to the target process as a whole.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aria_perception.bench.comparison import Overhead
from aria_perception.bench.errors import UsageError
from aria_perception.bench.json_record import JsonRecord
from aria_perception.bench.run_record import RunRecord

GIB = 1024.0
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Criteria(JsonRecord):
    """Pass/fail limits; None switches a criterion off (False for ``no_crash``).

    Defaults: at least 18 FPS, p50 under 10 ms, p95 under 15 ms, GPU memory under 5.5 GB, no
    crash. Targets relative to the echo reference
    (overhead p50 <= 5 ms, p95 <= 8 ms, throughput >= 90 % of echo's, ``--echo-targets``) and
    a drop limit are available but off by default. Speed and memory targets apply to CUDA
    devices: a node that reports ``device: cpu`` gets its figures reported but not judged,
    unless ``judge_cpu``.
    """

    min_fps: float | None = 18.0
    max_p50_ms: float | None = 10.0
    max_p95_ms: float | None = 15.0
    max_gpu_mem_mb: float | None = 5.5 * GIB
    no_crash: bool = True
    max_overhead_p50_ms: float | None = None
    max_overhead_p95_ms: float | None = None
    min_throughput_fraction: float | None = None
    max_dropped: int | None = None
    judge_cpu: bool = False

    @classmethod
    def parse(cls, text: str, base: Criteria | None = None) -> Criteria:
        """Apply ``key=value,key=value`` overrides (``none`` switches one off).

        Raises:
            UsageError: An unknown key, or a value that does not fit the key.
        """
        base = base or cls()
        names = cls.keys()
        changes: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in names:
                raise UsageError(
                    f"bad criterion {item!r}: use key=value with key one of {sorted(names)}"
                )
            value = value.strip().lower()
            if key in ("no_crash", "judge_cpu"):
                if value not in _BOOL_WORDS:
                    raise UsageError(f"{key} takes true or false, got {value!r}")
                changes[key] = _BOOL_WORDS[value]
            elif value in ("none", "off", ""):
                changes[key] = None
            else:
                try:
                    changes[key] = int(value) if key == "max_dropped" else float(value)
                except ValueError as err:
                    raise UsageError(f"criterion {key} needs a number, got {value!r}") from err
        return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class CriterionResult(JsonRecord):
    """One criterion checked on one run.

    Attributes:
        name: The :class:`Criteria` field.
        run: Label of the run.
        description: The criterion in words (notes that a CPU run is not judged).
        limit: The limit.
        value: What was measured (None: not reported, e.g. GPU memory without a GPU).
        unit: Unit of ``limit`` and ``value``.
        passed: None when not judged (nothing measured, or a CPU run).
    """

    name: str
    run: str
    description: str
    limit: float | int | bool
    value: float | int | bool | None
    unit: str
    passed: bool | None


Measure = Callable[[RunRecord, Overhead], Any]


@dataclass(frozen=True)
class CriterionRow:
    """How one criterion is checked.

    Attributes:
        name: The :class:`Criteria` field holding the limit (None or False: not checked).
        measure: The run's value (None when it was not reported).
        passes: ``passes(value, limit)``.
        describe: The criterion in words, from its limit.
        unit: Unit of the value.
        judged_on_cpu: Judged on a CPU device too (crashes and drops are; speed is not).
        per_stream: Checked on each stream of a multi-stream run (else on the whole run).
        echo_floor: An absolute limit the echo reference can miss too (latency): a failed row
            then says what echo measured, since the transport alone is over the limit.
    """

    name: str
    measure: Measure
    passes: Callable[[Any, Any], bool]
    describe: Callable[[Any], str]
    unit: str
    judged_on_cpu: bool = False
    per_stream: bool = True
    echo_floor: bool = False


def _latency(q: str) -> Measure:
    return lambda run, over: getattr(run.latency.latency_ms, q) if run.latency else None


def _output_fps(run: RunRecord, over: Overhead) -> float | None:
    phase = run.max_rate_phase
    return phase.output_fps if phase else None


def _gpu_mem_mb(run: RunRecord, over: Overhead) -> float | None:
    """The largest GPU memory figure reported: NVML's, else the node's own."""
    d = run.diagnostics
    figures = (run.resources.gpu_mem_nvml_mb_max, d.gpu_mem_peak_mb, d.gpu_mem_mb)
    reported = [v for v in figures if v is not None and v > 0]
    return max(reported) if reported else None


def _no_crash(run: RunRecord, over: Overhead) -> bool:
    restarts = run.diagnostics.worker_restarts or 0
    return bool(not run.crashed and run.ok and restarts == 0)


CRITERIA_TABLE: tuple[CriterionRow, ...] = (
    CriterionRow("min_fps", _output_fps, operator.ge, "output FPS >= {:g}".format, "FPS"),
    CriterionRow(
        "max_p50_ms",
        _latency("p50"),
        operator.lt,
        "latency p50 < {:g} ms".format,
        "ms",
        echo_floor=True,
    ),
    CriterionRow(
        "max_p95_ms",
        _latency("p95"),
        operator.lt,
        "latency p95 < {:g} ms".format,
        "ms",
        echo_floor=True,
    ),
    CriterionRow(
        "max_gpu_mem_mb",
        _gpu_mem_mb,
        operator.lt,
        lambda mb: f"GPU memory < {mb / GIB:g} GB",
        "MB",
        per_stream=False,
    ),
    CriterionRow(
        "no_crash",
        _no_crash,
        operator.eq,
        lambda _: "no crash (node up to the end, no worker restart)",
        "",
        judged_on_cpu=True,
        per_stream=False,
    ),
    CriterionRow(
        "max_dropped",
        lambda run, over: run.dropped,
        operator.le,
        "dropped frames <= {}".format,
        "frames",
        judged_on_cpu=True,
    ),
    CriterionRow(
        "max_overhead_p50_ms",
        lambda run, over: over.latency_p50_over_echo_ms,
        operator.le,
        "latency p50 - echo's <= {:g} ms".format,
        "ms",
    ),
    CriterionRow(
        "max_overhead_p95_ms",
        lambda run, over: over.latency_p95_over_echo_ms,
        operator.le,
        "latency p95 - echo's <= {:g} ms".format,
        "ms",
    ),
    CriterionRow(
        "min_throughput_fraction",
        lambda run, over: over.throughput_fraction,
        operator.ge,
        "max-rate FPS >= {:.0%} of echo's".format,
        "",
    ),
)
CPU_NOTE = " (CPU: reported, no target)"


def evaluate(run: RunRecord, echo: RunRecord | None, criteria: Criteria) -> list[CriterionResult]:
    """Check one node run against every criterion that is on (in table order).

    A value that was not reported is not judged (``passed`` None). On a CPU device only the
    rows ``judged_on_cpu`` are judged, unless ``criteria.judge_cpu``. A multi-stream run gets
    its ``per_stream`` rows once per stream, in stream order. A failed ``echo_floor`` row whose
    limit the echo reference misses too says so in its description (it still fails).
    """
    on_cpu = str(run.diagnostics.device or "").startswith("cpu") and not criteria.judge_cpu
    views = [(run, echo)]
    if run.streams:
        views = [
            (run.for_stream(s.name), echo.for_stream(s.name) if echo else None)
            for s in run.streams
        ]
    out = []
    for row in CRITERIA_TABLE:
        limit = getattr(criteria, row.name)
        if limit is None or limit is False:
            continue
        for ours, ref in views if row.per_stream else [(run, echo)]:
            assert ours is not None
            value = row.measure(ours, Overhead.of(ours, ref))
            passed = None if value is None else bool(row.passes(value, limit))
            description = row.describe(limit)
            if on_cpu and not row.judged_on_cpu:
                passed, description = None, description + CPU_NOTE
            elif passed is False and row.echo_floor and ref is not None:
                description += _echo_floor_note(row, ref, limit)
            out.append(
                CriterionResult(row.name, ours.label, description, limit, value, row.unit, passed)
            )
    return out


def _echo_floor_note(row: CriterionRow, echo: RunRecord, limit: Any) -> str:
    """What the echo reference measured, where it misses ``limit`` too (else nothing)."""
    floor = row.measure(echo, Overhead())
    if floor is None or row.passes(floor, limit):
        return ""
    return f" (echo's own: {floor:.2f} {row.unit}; the transport alone is over the limit)"


class Verdict(str, Enum):
    """The invocation's result over every criterion checked."""

    PASS = "PASS"
    FAIL = "FAIL"
    NOT_JUDGED = "N/A"


def verdict(results: Sequence[CriterionResult]) -> Verdict:
    """``PASS`` when every judged criterion passed, ``FAIL`` otherwise, ``N/A`` if none was."""
    judged = [c for c in results if c.passed is not None]
    if not judged:
        return Verdict.NOT_JUDGED
    return Verdict.PASS if all(c.passed for c in judged) else Verdict.FAIL
