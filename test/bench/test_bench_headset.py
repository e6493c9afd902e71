"""Several camera streams end to end: the echo reference, a real container, a crossed target."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_bench_cli import bench, check_shape
from test_bench_streams import three_topic_bag

from aria_perception.bench.report import Report

pytestmark = pytest.mark.slow

STREAMS = ["rgb", "slam_left", "slam_right"]
FRAME_IDS = {
    "rgb": "camera_rgb",
    "slam_left": "camera_slam_left",
    "slam_right": "camera_slam_right",
}


def check_streams(run: dict, names: list[str], namespace: str) -> None:
    """One entry per stream, its own topics, counts that add up, no answer of another stream."""
    assert [s["name"] for s in run["streams"]] == names
    for phase in ("latency", "throughput"):
        total = run[phase]
        parts = [s[phase] for s in run["streams"]]
        for key in ("published", "received", "dropped", "header_mismatches"):
            assert sum(p[key] for p in parts) == total[key], (phase, key)
        for p in parts:
            assert p["received"] + p["dropped"] == p["published"] > 0
    for s in run["streams"]:
        assert s["node_name"] == f"{s['name']}_perception"
        assert s["topics"]["detections"] == f"{namespace}/{s['name']}_perception/detections"
        assert s["topics"]["image"].startswith(namespace + "/camera_")
        assert s["latency"]["received"] > 0
        # Every answer came on the frame's own stream with its own header.
        assert (s["crossed"], s["unmatched"]) == (0, 0), s
        assert s["latency"]["header_mismatches"] == 0 and s["throughput"]["header_mismatches"] == 0


def test_headset_preset_echo_and_container_on_cpu(tmp_path: Path, domain_id: int) -> None:
    out = tmp_path / "out"
    args = "--preset headset --size 96x96 --slam-size 64x48 --frames 6 --rate 3"
    args += " --throughput-frames 3 --warmup 1 --sample-frames 4 --echo-targets --no-progress"
    args += f" --out {out} --domain-id {domain_id} --result-timeout 30"
    # A loaded 2-core CI machine must not trip the workers' hang detection.
    args += " -p device:=cpu -p worker.frame_timeout_s:=60.0 -p depth.input_size:=128"
    args += " -p detector.image_size:=160"
    proc = bench(*args.split(), timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads((out / "report.json").read_text())
    typed: Report = check_shape(rep)
    assert [(s["name"], s["width"], s["height"], s["encoding"]) for s in rep["streams"]] == [
        ("rgb", 96, 96, "rgb8"),
        ("slam_left", 64, 48, "mono8"),
        ("slam_right", 64, 48, "mono8"),
    ]
    echo, node = rep["runs"]
    for run in (echo, node):
        assert run["ok"] and not run["crashed"] and run["exit_code"] == 0, run["error"]
    check_streams(echo, STREAMS, "/bench_echo")
    check_streams(node, STREAMS, "/bench_node")
    # One container process, one node per camera with the launch file's names and aria.yaml.
    assert (
        "ros.container" in node["command"]
        and "/bench_node/slam_left_perception" in node["command"]
    )
    params = (out / "logs" / "node.params.yaml").read_text()
    assert "/bench_node/slam_left_perception:" in params and "max_pixels: 307200" in params
    for s in node["streams"]:
        d = s["diagnostics"]
        assert d["status_name"].endswith(s["node_name"]) and d["device"] == "cpu"
    assert node["diagnostics"]["worker_restarts"] == 0
    # Each stream is judged on its own, over the echo reference's same stream.
    assert set(rep["streams_vs_echo"]["node"]) == set(STREAMS)
    judged = {(c["run"], c["name"]) for c in rep["criteria"]}
    for name in STREAMS:
        assert (f"node/{name}", "max_dropped") in judged
        assert (f"node/{name}", "max_overhead_p50_ms") in judged
    assert ("node", "no_crash") in judged and ("node", "max_gpu_mem_mb") in judged
    assert typed.runs[1].streams[0].latency is not None
    assert "node        rgb" in proc.stdout or "node  rgb" in proc.stdout


def test_a_target_that_crosses_streams_fails_the_run(tmp_path: Path, domain_id: int) -> None:
    out = tmp_path / "out"
    crossed = Path(__file__).parent / "crossed_echo.py"
    args = "--preset headset --size 64x64 --slam-size 64x48 --frames 6 --throughput-frames 3"
    args += f" --warmup 1 --sample-frames 4 --no-echo --no-progress --out {out}"
    args += f" --domain-id {domain_id} --result-timeout 3"
    proc = bench(*args.split(), "--node-command", f"{sys.executable} {crossed}", timeout=240)
    rep = json.loads((out / "report.json").read_text())
    check_shape(rep)
    [run] = rep["runs"]
    assert not run["ok"] and "answers crossed streams" in run["error"], proc.stdout
    for s in run["streams"]:
        mixed = s["crossed"] + s["latency"]["header_mismatches"]
        assert mixed > 0, s
    assert rep["verdict"] == "FAIL"
    assert "FAIL  [node] no crash" in proc.stdout


def test_bag_with_three_topics_replayed_at_recorded_rate(tmp_path: Path, domain_id: int) -> None:
    bag = tmp_path / "bag"
    topics = three_topic_bag(bag)
    out = tmp_path / "out"
    args = f"--bag {bag} --topics {','.join(topics)} --echo-only --rate recorded --frames 10"
    args += f" --throughput-frames 4 --warmup 1 --out {out} --domain-id {domain_id} --no-progress"
    proc = bench(*args.split())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads((out / "report.json").read_text())
    check_shape(rep)
    assert [s["topic"] for s in rep["streams"]] == topics
    assert [s["frames_loaded"] for s in rep["streams"]] == [4, 8, 8]
    assert rep["settings"]["rate"] == "recorded"
    [echo] = rep["runs"]
    check_streams(echo, STREAMS, "/bench_echo")
    # The recording's mix: 30 frames in all, the SLAM cameras at twice RGB's rate.
    assert [s["latency"]["published"] for s in echo["streams"]] == [6, 12, 12]
