"""report.json as typed records: round trips, a file this bench wrote, rendering, read errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from bench_helpers import diag, records

from aria_perception.bench.comparison import Comparison, Overhead
from aria_perception.bench.criteria import Criteria, Verdict, evaluate, verdict
from aria_perception.bench.errors import ReportError
from aria_perception.bench.figures import (
    diagnostics_summary,
    frames_table,
    phase_stats,
    resource_summary,
)
from aria_perception.bench.plot import plot_latency
from aria_perception.bench.render import markdown, summary_text
from aria_perception.bench.report import (
    SCHEMA,
    Files,
    InputInfo,
    Report,
    Settings,
    read_report,
    report_from_json,
    write_report,
)
from aria_perception.bench.run_record import Role, RunRecord, TargetKind

DATA = Path(__file__).parent / "data"
# Written by `bench` (echo + two CPU node runs in compare mode, depth, images, extra criteria),
# with its output directory renamed to bench_out; the .md and .txt are what it printed.
WRITTEN = DATA / "report_schema1.json"


def test_a_report_this_bench_wrote_round_trips_exactly() -> None:
    text = WRITTEN.read_text()
    rep = read_report(WRITTEN)
    assert rep.to_dict() == json.loads(text)
    assert json.dumps(rep.to_dict(), indent=1, allow_nan=False) + "\n" == text
    assert [r.role for r in rep.runs] == [Role.ECHO, Role.NODE, Role.NODE_B]
    assert rep.runs[1].target is TargetKind.NODE and rep.verdict is Verdict.FAIL
    assert rep.settings.criteria.max_dropped == 0 and rep.compare is not None


def test_evaluate_and_comparisons_reproduce_the_written_figures() -> None:
    rep = read_report(WRITTEN)
    results = [c for run in rep.node_runs for c in evaluate(run, rep.echo, rep.settings.criteria)]
    assert results == rep.criteria and verdict(results) is rep.verdict
    assert {r.label: Overhead.of(r, rep.echo) for r in rep.node_runs} == rep.vs_echo
    assert Comparison.of(*rep.node_runs) == rep.compare


def test_text_and_markdown_are_what_the_bench_printed() -> None:
    rep = read_report(WRITTEN)
    assert markdown(rep) == (DATA / "report_schema1.md").read_text()
    assert summary_text(rep) + "\n" == (DATA / "summary_schema1.txt").read_text()


def built_report(tmp_path: Path) -> Report:
    """A report made from known observations the way the runner makes one."""
    recs = records([5.0, 6.0, None]) + records([3.0, 4.0], phase="throughput")
    runs = []
    for label, role in (("echo", Role.ECHO), ("node", Role.NODE), ("node_b", Role.NODE_B)):
        runs.append(
            RunRecord(
                label=label,
                role=role,
                target=TargetKind.ECHO if role is Role.ECHO else TargetKind.NODE,
                ok=True,
                latency=phase_stats([x for x in recs if x.phase == "latency"], "30 Hz"),
                throughput=phase_stats([x for x in recs if x.phase == "throughput"], "max"),
                diagnostics=diagnostics_summary([diag(1, weights="random")], 0, 2**62),
                resources=resource_summary(None),
                frames=frames_table(recs),
            )
        )
    crit = evaluate(runs[1], runs[0], Criteria())
    return Report(
        created="now",
        command="bench",
        settings=Settings(preset="smoke", frames=3, throughput_frames=2, rate="30 Hz"),
        input=InputInfo(width=8, height=6, encoding="rgb8", bytes_per_frame=144, source="sample"),
        runs=runs,
        vs_echo={"node": Overhead.of(runs[1], runs[0])},
        compare=Comparison.of(runs[1], runs[2]),
        criteria=crit,
        verdict=verdict(crit),
        notes=["a note"],
        files=Files(plot=str(tmp_path / "latency.png")),
    )


def test_records_round_trip_through_json(tmp_path: Path) -> None:
    rep = built_report(tmp_path)
    data = json.loads(json.dumps(rep.to_dict()))
    assert data["runs"][0]["role"] == "echo" and data["verdict"] == "PASS"
    assert report_from_json(data) == rep
    json_path, md_path = write_report(rep, tmp_path / "out")
    assert read_report(tmp_path / "out") == rep and md_path.read_text() == markdown(rep)
    assert json_path.name == "report.json"


def test_text_and_markdown_render_a_built_report(tmp_path: Path) -> None:
    rep = built_report(tmp_path)
    text = summary_text(rep)
    for needle in ("echo", "node over echo", "compare node_b / node", "criteria:", "RESULT: PASS"):
        assert needle in text, needle
    md = markdown(rep)
    assert "| run | sent |" in md and "## Criteria" in md and "![latency](latency.png)" in md
    png = plot_latency(rep, tmp_path / "latency.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["runs"][1].update(speed=3),
            r"report\.runs\[1\]: unknown key\(s\) \['speed'\]",
        ),
        (lambda d: d["runs"][0].pop("label"), r"report\.runs\[0\]: missing key 'label'"),
        (lambda d: d["runs"][0].update(role="boss"), r"report\.runs\[0\]\.role"),
        (lambda d: d.update(runs={}), r"report\.runs: expected a list"),
        (lambda d: d.update(schema="aria_perception.bench.report/0"), "schema"),
    ],
)
def test_a_file_that_does_not_fit_the_schema_is_refused(change, message: str) -> None:
    data = copy.deepcopy(json.loads(WRITTEN.read_text()))
    change(data)
    with pytest.raises(ReportError, match=message):
        report_from_json(data)


def test_unreadable_report_files(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot read"):
        read_report(tmp_path / "missing.json")
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ReportError, match="cannot read"):
        read_report(tmp_path)
    assert Report().schema == SCHEMA
