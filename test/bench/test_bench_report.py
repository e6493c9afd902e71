"""Figures, criteria and report files from known replay records (no ROS needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aria_perception.bench.process import ResourceUsage
from aria_perception.bench.replay import DiagSample, FrameRecord
from aria_perception.bench.report import (
    GIB,
    Criteria,
    compare,
    diagnostics_summary,
    evaluate,
    latency_summary,
    markdown,
    overhead,
    phase_stats,
    resource_summary,
    summary_text,
    verdict,
)

MS = 1_000_000


def records(latencies_ms: list[float | None], phase: str = "latency", period_ms: float = 10.0):
    out = []
    for i, lat in enumerate(latencies_ms):
        stamp = 1_000_000_000 + int(i * period_ms * MS)
        rec = FrameRecord(phase, i, i, stamp, "cam", publish_call_ns=200_000)
        if lat is not None:
            rec.recv_ns, rec.detections, rec.header_ok = stamp + int(lat * MS), 2, True
        out.append(rec)
    return out


def test_latency_summary_and_phase_stats() -> None:
    assert latency_summary([])["p50"] is None
    s = latency_summary([float(v) for v in range(1, 101)])
    assert s["p50"] == pytest.approx(50.5) and s["p95"] == pytest.approx(95.05)
    assert (s["min"], s["max"]) == (1.0, 100.0)

    recs = records([5.0, None, 7.0, 6.0, None])
    recs[3].header_ok = False
    st = phase_stats(recs, "30 Hz")
    assert (st["published"], st["received"], st["dropped"]) == (5, 3, 2)
    assert st["drop_rate"] == pytest.approx(0.4)
    assert st["latency_ms"]["p50"] == pytest.approx(6.0)
    assert st["input_fps"] == pytest.approx(100.0)  # 4 gaps of 10 ms
    # 3 answers from the first publish (t=0) to the last answer (t=30 ms + 6 ms).
    assert st["output_fps"] == pytest.approx(3 / 0.036, rel=1e-3)
    assert st["publish_call_ms_p50"] == pytest.approx(0.2)
    assert (st["detections_mean"], st["header_mismatches"]) == (2.0, 1)
    assert phase_stats([], "max") is None


def diag(t_s: float, **values: str) -> DiagSample:
    return DiagSample(int(t_s * 1e9), 0, "aria_perception: perception", "ok", "H100", values)


def test_diagnostics_counters_are_deltas_over_the_window() -> None:
    samples = [
        diag(1, dropped_frames="3", rejected_frames="1", worker_restarts="0", depth_ms="9"),
        diag(
            2,
            dropped_frames="5",
            rejected_frames="1",
            worker_restarts="0",
            depth_ms="2",
            gpu_mem_mb="800",
            gpu_mem_peak_mb="900",
            weights="random",
            device="cuda:0",
        ),
        diag(
            3,
            dropped_frames="9",
            rejected_frames="4",
            worker_restarts="1",
            depth_ms="4",
            gpu_mem_mb="700",
            gpu_mem_peak_mb="950",
            latency_ms_p50="3.5",
        ),
    ]
    d = diagnostics_summary(samples, int(1.5e9), int(3.5e9))
    assert d["samples"] == 2
    assert (d["node_dropped_frames"], d["rejected_frames"], d["worker_restarts"]) == (6, 3, 1)
    assert d["stage_ms"]["depth_ms"] == pytest.approx(3.0)  # mean inside the window only
    assert (d["gpu_mem_mb"], d["gpu_mem_peak_mb"]) == (800.0, 950.0)
    assert d["node_latency_ms"]["p50"] == 3.5
    assert d["hardware_id"] == "H100" and d["values"]["dropped_frames"] == "9"
    empty = diagnostics_summary([], 0, 1)
    assert empty["samples"] == 0 and empty["rejected_frames"] is None


def test_resource_summary() -> None:
    u = ResourceUsage(2, [10.0, 30.0], [100.0, 50.0], [80.0, 90.0], [900.0, 950.0], [])
    r = resource_summary(u)
    assert r["cpu_percent_mean"] == 20.0 and r["worker_cpu_percent_mean"] == 75.0
    assert (r["rss_mb_max"], r["worker_rss_mb_max"], r["gpu_mem_nvml_mb_max"]) == (90, 950, None)
    assert resource_summary(None)["samples"] == 0


def run(label: str, p50: float, p95: float, fps: float, **extra) -> dict:
    return {
        "label": label,
        "role": extra.pop("role", "node"),
        "ok": extra.pop("ok", True),
        "crashed": extra.pop("crashed", False),
        "latency": {"latency_ms": {"p50": p50, "p95": p95}, "output_fps": 30.0, "dropped": 0},
        "throughput": {"output_fps": fps, "dropped": extra.pop("dropped", 0)},
        "diagnostics": extra.pop("diagnostics", {"worker_restarts": 0}),
        "resources": extra.pop("resources", {"gpu_mem_nvml_mb_max": None}),
    }


def test_criteria_defaults_are_the_plans() -> None:
    c = Criteria()
    assert (c.min_fps, c.max_p50_ms, c.max_p95_ms, c.max_gpu_mem_mb) == (18, 10, 15, 5.5 * GIB)
    good = run("node", 6.0, 9.0, 120.0, resources={"gpu_mem_nvml_mb_max": 1200.0})
    results = evaluate(good, None, c)
    assert [r["name"] for r in results] == [
        "min_fps",
        "max_p50_ms",
        "max_p95_ms",
        "max_gpu_mem_mb",
        "no_crash",
    ]
    assert all(r["passed"] for r in results) and verdict(results) == "PASS"

    slow = run("node", 12.0, 20.0, 10.0, diagnostics={"worker_restarts": 2, "gpu_mem_mb": 0.0})
    results = {r["name"]: r for r in evaluate(slow, None, c)}
    assert not results["min_fps"]["passed"] and not results["max_p50_ms"]["passed"]
    assert results["max_gpu_mem_mb"]["passed"] is None  # CPU: not reported, not judged
    assert results["no_crash"]["passed"] is False  # a worker restart is a crash
    assert verdict(list(results.values())) == "FAIL"
    assert verdict([]) == "N/A"

    # On CPU the figures are reported, not judged (DESIGN 7); a crash still fails.
    cpu = run("node", 500.0, 900.0, 2.0, diagnostics={"worker_restarts": 0, "device": "cpu"})
    results = {r["name"]: r for r in evaluate(cpu, None, c)}
    assert results["min_fps"]["passed"] is None and results["min_fps"]["value"] == 2.0
    assert "CPU" in results["max_p50_ms"]["description"]
    assert results["no_crash"]["passed"] is True and verdict(list(results.values())) == "PASS"
    cpu["crashed"] = True
    assert verdict(evaluate(cpu, None, c)) == "FAIL"
    judged = Criteria.parse("judge_cpu=true")
    assert (
        verdict(
            evaluate(run("node", 500.0, 900.0, 2.0, diagnostics={"device": "cpu"}), None, judged)
        )
        == "FAIL"
    )


def test_criteria_over_echo_and_parsing() -> None:
    echo = run("echo", 2.0, 3.0, 200.0, role="echo")
    ours = run("node", 6.0, 12.0, 190.0, dropped=1)
    assert overhead(ours, echo) == {
        "latency_p50_over_echo_ms": 4.0,
        "latency_p95_over_echo_ms": 9.0,
        "throughput_fraction": 0.95,
    }
    c = Criteria.parse(
        "max_overhead_p50_ms=5,max-overhead-p95-ms=8,min_throughput_fraction=0.9,"
        "max_dropped=0,max_gpu_mem_mb=none,no_crash=false",
        Criteria(),
    )
    assert c.max_gpu_mem_mb is None and c.no_crash is False and c.max_dropped == 0
    got = {r["name"]: r["passed"] for r in evaluate(ours, echo, c)}
    assert got == {
        "min_fps": True,
        "max_p50_ms": True,
        "max_p95_ms": True,
        "max_dropped": False,
        "max_overhead_p50_ms": True,
        "max_overhead_p95_ms": False,
        "min_throughput_fraction": True,
    }
    for bad in ("min_fps", "speed=3", "min_fps=fast", "no_crash=maybe"):
        with pytest.raises(ValueError, match="criterion|no_crash|number"):
            Criteria.parse(bad)


def test_compare_ratios() -> None:
    a = run("parallel", 4.0, 6.0, 200.0)
    b = run("sequential", 6.0, 9.0, 150.0)
    c = compare(a, b)
    assert (c["a"], c["b"]) == ("parallel", "sequential")
    assert c["metrics"]["latency_p50_ms"] == {"a": 4.0, "b": 6.0, "ratio": 1.5}
    assert c["metrics"]["throughput_fps"]["ratio"] == 0.75
    assert c["metrics"]["gpu_mem_peak_mb"]["ratio"] is None


def test_text_and_markdown_render_a_full_report(tmp_path: Path) -> None:
    from aria_perception.bench import report

    recs = records([5.0, 6.0, None]) + records([3.0, 4.0], phase="throughput")
    runs = []
    for label, role in (("echo", "echo"), ("node", "node"), ("node_b", "node_b")):
        r = {k: None for k in report.RUN_KEYS}
        r.update(label=label, role=role, ok=True, crashed=False)
        r["latency"] = phase_stats([x for x in recs if x.phase == "latency"], "30 Hz")
        r["throughput"] = phase_stats([x for x in recs if x.phase == "throughput"], "max")
        r["diagnostics"] = diagnostics_summary([diag(1, weights="random")], 0, 2**62)
        r["resources"] = resource_summary(None)
        r["frames"] = report.frames_table(recs)
        runs.append(r)
    crit = evaluate(runs[1], runs[0], Criteria())
    rep = {
        "schema": report.SCHEMA,
        "created": "now",
        "command": "bench",
        "host": {},
        "settings": {
            "preset": "smoke",
            "frames": 3,
            "warmup": 0,
            "throughput_frames": 2,
            "rate": "30 Hz",
            "qos": "reliable",
            "domain_id": 7,
            "transport": "raw",
            "fastdds_builtin_transports": "LARGE_DATA",
        },
        "input": {
            "width": 8,
            "height": 6,
            "encoding": "rgb8",
            "bytes_per_frame": 144,
            "source": "sample",
        },
        "runs": runs,
        "vs_echo": {"node": overhead(runs[1], runs[0])},
        "compare": compare(runs[1], runs[2]),
        "criteria": crit,
        "verdict": verdict(crit),
        "notes": ["a note"],
        "files": {"plot": str(tmp_path / "latency.png"), "images": []},
    }
    text = summary_text(rep)
    for needle in ("echo", "node over echo", "compare node_b / node", "criteria:", "RESULT: PASS"):
        assert needle in text, needle
    md = markdown(rep)
    assert "| run | sent |" in md and "## Criteria" in md and "![latency](latency.png)" in md
    from aria_perception.bench.plot import plot_latency

    png = plot_latency(rep, tmp_path / "latency.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json_path, md_path = report.write(rep, tmp_path)
    assert json.loads(json_path.read_text())["verdict"] == "PASS" and md_path.is_file()


def test_topic_plan_candidates() -> None:
    from aria_perception.bench.replay import TopicPlan

    plan = TopicPlan.for_node("/cam", "perception", compressed=True, depth=True)
    assert plan.inputs == ("/cam/image/compressed", "/cam/perception/image/compressed")
    assert plan.outputs == ("/cam/perception", "/cam")
    t = plan.resolve("/cam/image/compressed", "/cam/perception")
    assert (t.detections, t.depth, t.overlay) == (
        "/cam/perception/detections",
        "/cam/perception/depth/raw",
        None,
    )
    root = TopicPlan.for_node("/", "perception", compressed=False, images=True)
    assert root.inputs == ("/image", "/perception/image")
    t = root.resolve("/image", "/")
    assert (t.detections, t.depth, t.overlay, t.depth_normalized) == (
        "/detections",
        None,
        "/detections/overlay",
        "/depth/normalized",
    )
    exact = TopicPlan.exact("/x/rgb", "out/")
    assert exact.inputs == ("/x/rgb",) and exact.outputs == ("/out",)
