"""A multi-stream report: per-stream records, criteria per stream, its text and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

from bench_helpers import records
from test_bench_report import WRITTEN, built_report

from aria_perception.bench.criteria import Criteria, evaluate, verdict
from aria_perception.bench.figures import merged_diagnostics, phase_stats
from aria_perception.bench.render import markdown, summary_text
from aria_perception.bench.report import Report, StreamInput, read_report, report_from_json
from aria_perception.bench.run_record import (
    DiagnosticsSummary,
    Role,
    RunRecord,
    RunTopics,
    StreamRun,
    TargetKind,
)
from aria_perception.bench.stream_runner import streams_over_echo

NAMES = ("rgb", "slam_left")


def stream_run(label: str, name: str, latencies: list[float | None], crossed: int = 0):
    ns = f"/bench_{label}"
    return StreamRun(
        name=name,
        node_name=f"{name}_perception",
        topics=RunTopics(f"{ns}/camera_{name}/image_raw", f"{ns}/{name}_perception/detections"),
        latency=phase_stats(records(latencies), "30 Hz"),
        throughput=phase_stats(records([1.0, 2.0], phase="throughput"), "max"),
        crossed=crossed,
        diagnostics=DiagnosticsSummary(samples=2, device="cuda:0", worker_restarts=0),
    )


def multi_report(crossed: int = 0) -> Report:
    runs = []
    for label, role, lat in (("echo", Role.ECHO, [1.0, 1.0, 1.0]), ("node", Role.NODE, None)):
        streams = [
            stream_run(label, "rgb", lat or [4.0, 5.0, 6.0]),
            stream_run(label, "slam_left", lat or [9.0, 9.5, None], crossed=crossed),
        ]
        runs.append(
            RunRecord(
                label=label,
                role=role,
                target=TargetKind.ECHO if role is Role.ECHO else TargetKind.NODE,
                ok=True,
                latency=streams[0].latency,  # totals: not what is checked here
                throughput=streams[0].throughput,
                diagnostics=merged_diagnostics([s.diagnostics for s in streams]),
                streams=streams,
            )
        )
    echo, node = runs
    criteria = Criteria(max_overhead_p50_ms=5.0, max_dropped=0)
    results = evaluate(node, echo, criteria)
    return Report(
        created="now",
        command="bench --preset headset",
        runs=runs,
        criteria=results,
        verdict=verdict(results),
        streams=[StreamInput(name=n, topic=f"/camera_{n}/image_raw") for n in NAMES],
        streams_vs_echo=streams_over_echo([node], echo),
    )


def test_criteria_apply_to_each_stream_over_its_own_echo() -> None:
    rep = multi_report()
    got = {(c.run, c.name): c for c in rep.criteria}
    assert got[("node/rgb", "max_overhead_p50_ms")].value == 4.0
    assert got[("node/rgb", "max_overhead_p50_ms")].passed is True
    assert got[("node/slam_left", "max_overhead_p50_ms")].passed is False  # 9.25 - 1
    assert got[("node/rgb", "max_dropped")].passed is True
    assert got[("node/slam_left", "max_dropped")].value == 1
    assert ("node", "no_crash") in got and ("node/rgb", "no_crash") not in got
    assert rep.streams_vs_echo["node"]["slam_left"].latency_p50_over_echo_ms == 8.25


def test_multi_stream_report_round_trips_and_renders(tmp_path: Path) -> None:
    rep = multi_report(crossed=2)
    data = json.loads(json.dumps(rep.to_dict()))
    assert [s["name"] for s in data["runs"][1]["streams"]] == list(NAMES)
    assert report_from_json(data) == rep
    text = summary_text(rep)
    assert "streams: rgb" in text and "p50 +echo" in text
    row = next(line for line in text.splitlines() if line.startswith("node  slam_left"))
    assert row.split()[-3:] == ["8.25", "8.47", "2"]  # over echo p50, p95; crossed answers
    md = markdown(rep)
    assert "## Streams" in md and "| node | rgb | 3 | 3 | 0 |" in md


def test_one_stream_reports_keep_their_keys(tmp_path: Path) -> None:
    rep = built_report(tmp_path)
    data = rep.to_dict()
    assert "streams" not in data and "streams_vs_echo" not in data
    assert all("streams" not in run for run in data["runs"])
    assert "## Streams" not in markdown(read_report(WRITTEN))
