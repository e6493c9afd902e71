"""Criteria rows, the verdict, figures over echo and compare mode on known run records."""

from __future__ import annotations

import pytest
from bench_helpers import run

from aria_perception.bench.comparison import Comparison, Overhead
from aria_perception.bench.criteria import (
    CRITERIA_TABLE,
    GIB,
    Criteria,
    Verdict,
    evaluate,
    verdict,
)
from aria_perception.bench.errors import UsageError
from aria_perception.bench.run_record import DiagnosticsSummary, ResourceSummary, Role

DEFAULT_ROWS = ["min_fps", "max_p50_ms", "max_p95_ms", "max_gpu_mem_mb", "no_crash"]


def by_name(results):
    return {r.name: r for r in results}


def test_the_table_has_one_row_per_limit() -> None:
    names = [row.name for row in CRITERIA_TABLE]
    assert sorted(names) == sorted(k for k in Criteria.keys() if k != "judge_cpu")


def test_criteria_defaults_pass_a_good_run() -> None:
    c = Criteria()
    assert (c.min_fps, c.max_p50_ms, c.max_p95_ms, c.max_gpu_mem_mb) == (18, 10, 15, 5.5 * GIB)
    good = run("node", 6.0, 9.0, 120.0, resources=ResourceSummary(gpu_mem_nvml_mb_max=1200.0))
    results = evaluate(good, None, c)
    assert [r.name for r in results] == DEFAULT_ROWS
    assert all(r.passed for r in results) and verdict(results) is Verdict.PASS
    got = by_name(results)
    assert (got["min_fps"].value, got["min_fps"].limit, got["min_fps"].unit) == (120.0, 18, "FPS")
    assert got["max_gpu_mem_mb"].description == "GPU memory < 5.5 GB"
    assert got["no_crash"].value is True and got["no_crash"].limit is True


def test_each_row_fails_on_its_own_figure() -> None:
    c = Criteria()
    slow = run(
        "node",
        12.0,
        20.0,
        10.0,
        diagnostics=DiagnosticsSummary(worker_restarts=2, gpu_mem_mb=0.0),
    )
    got = by_name(evaluate(slow, None, c))
    assert got["min_fps"].passed is False and got["max_p50_ms"].passed is False
    assert got["max_p95_ms"].passed is False
    assert got["max_gpu_mem_mb"].passed is None  # nothing reported (0 MB): not judged
    assert got["no_crash"].passed is False  # a worker restart is a crash
    assert verdict(list(got.values())) is Verdict.FAIL
    assert verdict([]) is Verdict.NOT_JUDGED
    # Latency limits are strict: a p50 of exactly the limit fails.
    edge = by_name(evaluate(run("node", 10.0, 9.0, 30.0), None, c))
    assert edge["max_p50_ms"].passed is False and edge["max_p95_ms"].passed is True
    heavy = run("node", 1, 1, 30, resources=ResourceSummary(gpu_mem_nvml_mb_max=6000.0))
    assert by_name(evaluate(heavy, None, c))["max_gpu_mem_mb"].passed is False
    assert by_name(evaluate(run("x", 1, 1, 30, crashed=True), None, c))["no_crash"].passed is False


def test_cpu_runs_are_reported_not_judged_except_crashes() -> None:
    c = Criteria()
    cpu = run("node", 500.0, 900.0, 2.0, diagnostics=DiagnosticsSummary(device="cpu"))
    got = by_name(evaluate(cpu, None, c))
    assert got["min_fps"].passed is None and got["min_fps"].value == 2.0
    assert "CPU" in got["max_p50_ms"].description
    assert got["no_crash"].passed is True and verdict(list(got.values())) is Verdict.PASS
    cpu.crashed = True
    assert verdict(evaluate(cpu, None, c)) is Verdict.FAIL
    judged = Criteria.parse("judge_cpu=true")
    assert verdict(
        evaluate(run("node", 500, 900, 2, diagnostics=cpu.diagnostics), None, judged)
    ) is (Verdict.FAIL)


def test_a_latency_limit_the_echo_misses_too_says_what_echo_measured() -> None:
    echo = run("echo", 17.0, 19.0, 80.0, role=Role.ECHO)
    ours = run("node", 21.0, 14.0, 75.0)
    got = by_name(evaluate(ours, echo, Criteria()))
    assert got["max_p50_ms"].passed is False  # still a failure, with the reason beside it
    assert got["max_p50_ms"].description == (
        "latency p50 < 10 ms (echo's own: 17.00 ms; the transport alone is over the limit)"
    )
    # A row that passes gets no note, though echo misses its limit.
    assert got["max_p95_ms"].passed is True
    assert got["max_p95_ms"].description == "latency p95 < 15 ms"
    # Echo within the limit: the node alone misses it.
    quick_echo = run("echo", 5.0, 7.0, 80.0, role=Role.ECHO)
    alone = by_name(evaluate(ours, quick_echo, Criteria()))["max_p50_ms"]
    assert alone.passed is False and alone.description == "latency p50 < 10 ms"


def test_criteria_over_echo_and_parsing() -> None:
    echo = run("echo", 2.0, 3.0, 200.0, role=Role.ECHO)
    ours = run("node", 6.0, 12.0, 190.0, dropped=1)
    assert Overhead.of(ours, echo) == Overhead(4.0, 9.0, 0.95)
    assert Overhead.of(ours, None) == Overhead()
    c = Criteria.parse(
        "max_overhead_p50_ms=5,max-overhead-p95-ms=8,min_throughput_fraction=0.9,"
        "max_dropped=0,max_gpu_mem_mb=none,no_crash=false",
        Criteria(),
    )
    assert c.max_gpu_mem_mb is None and c.no_crash is False and c.max_dropped == 0
    got = {r.name: r.passed for r in evaluate(ours, echo, c)}
    assert got == {
        "min_fps": True,
        "max_p50_ms": True,
        "max_p95_ms": True,
        "max_dropped": False,
        "max_overhead_p50_ms": True,
        "max_overhead_p95_ms": False,
        "min_throughput_fraction": True,
    }
    # Without the echo reference, the rows over echo are there but not judged.
    alone = by_name(evaluate(ours, None, c))
    assert (
        alone["max_overhead_p50_ms"].value is None and alone["max_overhead_p50_ms"].passed is None
    )
    for bad in ("min_fps", "speed=3", "min_fps=fast", "no_crash=maybe"):
        with pytest.raises(UsageError, match="criterion|no_crash|number"):
            Criteria.parse(bad)


def test_compare_ratios() -> None:
    a = run("parallel", 4.0, 6.0, 200.0)
    b = run("sequential", 6.0, 9.0, 150.0)
    c = Comparison.of(a, b)
    assert (c.a, c.b) == ("parallel", "sequential")
    assert c.metrics["latency_p50_ms"].to_dict() == {"a": 4.0, "b": 6.0, "ratio": 1.5}
    assert c.metrics["throughput_fps"].ratio == 0.75
    assert c.metrics["gpu_mem_peak_mb"].ratio is None
