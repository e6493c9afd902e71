"""The bench command end to end: real processes, real DDS, the echo reference and our node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_helpers import assert_one_line_error

from aria_perception.bench.report import SCHEMA, Report, report_from_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(*args: str, timeout: float = 240.0) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    return subprocess.run(
        [sys.executable, "-m", "aria_perception.bench.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check_shape(rep: dict) -> Report:
    """The file is a complete report: reading it into the records and back changes nothing."""
    assert rep["schema"] == SCHEMA
    typed = report_from_json(rep)
    assert typed.to_dict() == rep
    return typed


def max_paced_fps(rate_hz: float, frames: int) -> float:
    """The highest input FPS a paced phase can show: no frame goes before it is due.

    Frame ``i`` is due ``i`` periods after the first was due, or later; the first may go up to
    half a period late without moving the schedule. Load only makes the rate lower.
    """
    return rate_hz * (frames - 1) / (frames - 1.5) * 1.001


@pytest.mark.slow
def test_smoke_bench_against_echo(tmp_path: Path, domain_id: int) -> None:
    out = tmp_path / "out"
    args = "--preset smoke --echo-only --size 160x120 --frames 30 --throughput-frames 30"
    args += f" --warmup 3 --out {out} --domain-id {domain_id} --no-progress"
    proc = bench(*args.split())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RESULT: N/A" in proc.stdout and "echo" in proc.stdout

    rep = json.loads((out / "report.json").read_text())
    check_shape(rep)
    s = rep["settings"]
    assert (s["preset"], s["frames"], s["throughput_frames"], s["domain_id"]) == (
        "smoke",
        30,
        30,
        domain_id,
    )
    assert s["fastdds_builtin_transports"] == "LARGE_DATA" and s["qos"] == "reliable"
    assert (rep["input"]["width"], rep["input"]["height"]) == (160, 120)
    [echo] = rep["runs"]
    assert (echo["label"], echo["role"], echo["ok"], echo["crashed"]) == (
        "echo",
        "echo",
        True,
        False,
    )
    assert echo["exit_code"] == 0 and echo["error"] is None
    assert echo["topics"] == {
        "image": "/bench_echo/image",
        "detections": "/bench_echo/perception/detections",
        "depth": None,
    }
    lat, thr = echo["latency"], echo["throughput"]
    # Reliable QoS on one machine: the echo answers every frame, with its header.
    assert (lat["published"], lat["received"], lat["header_mismatches"]) == (30, 30, 0)
    assert (thr["published"], thr["received"]) == (30, 30)
    assert 0 < lat["input_fps"] <= max_paced_fps(30.0, 30)  # exact when paced, whatever the load
    assert 0 < lat["latency_ms"]["p50"] <= lat["latency_ms"]["p95"] <= lat["latency_ms"]["max"]
    assert lat["latency_ms"]["p50"] < 1000
    assert thr["output_fps"] > 0 and lat["detections_mean"] == 0.0
    assert echo["diagnostics"]["samples"] >= 1
    assert echo["diagnostics"]["status_name"] == "aria_perception echo: perception"
    assert echo["diagnostics"]["rejected_frames"] == 0
    assert echo["resources"]["samples"] >= 1 and echo["resources"]["rss_mb_max"] > 10
    assert len(echo["frames"]["latency_ms"]) == 60
    assert rep["criteria"] == [] and rep["verdict"] == "N/A" and rep["vs_echo"] == {}

    assert (out / "latency.png").read_bytes()[:8] == PNG_MAGIC
    md = (out / "report.md").read_text()
    assert "| echo | 30 | 30 | 0 |" in md
    assert (out / "logs" / "echo.log").is_file()


@pytest.mark.slow
def test_compressed_bag_replayed_at_recorded_rate(tmp_path: Path, domain_id: int) -> None:
    bag = tmp_path / "jpeg_bag"
    args = f"sample --out {bag} --width 200 --height 150 --count 12 --rate 20 --storage mcap"
    made = bench(*args.split(), "--format", "jpeg")
    assert made.returncode == 0, made.stderr
    assert "wrote 12 frames 200x150 CompressedImage jpeg" in made.stdout

    out = tmp_path / "out"
    args = f"--bag {bag} --echo-only --rate recorded --frames 16 --throughput-frames 0"
    args += f" --warmup 2 --out {out} --domain-id {domain_id} --no-progress"
    proc = bench(*args.split())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads((out / "report.json").read_text())
    check_shape(rep)
    assert rep["input"]["msgtype"] == "sensor_msgs/msg/CompressedImage"
    assert rep["input"]["topic"] == "/camera/image_raw/compressed"
    assert rep["input"]["recorded_fps"] == pytest.approx(20.0)
    assert rep["settings"]["transport"] == "compressed" and rep["settings"]["rate"] == "recorded"
    [echo] = rep["runs"]
    assert echo["throughput"] is None
    assert (echo["latency"]["published"], echo["latency"]["received"]) == (16, 16)
    assert 0 < echo["latency"]["input_fps"] <= max_paced_fps(20.0, 16)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2 and a one-line message naming the problem, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_one_line_error(proc.stderr, *needles)


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    proc = bench("--bag", str(tmp_path / "nope"), "--echo-only", "--out", str(tmp_path))
    one_line_error(proc, "bench: error: bag", "does not exist")
    one_line_error(bench("--criteria", "speed=3", "--echo-only"), "bad criterion")
    one_line_error(bench("--attach", "-P", "x:=1", "--out", str(tmp_path)), "cannot attach")
    one_line_error(bench("--labels", "a,b,c", "--out", str(tmp_path)), "--labels")
    one_line_error(bench("sample", "--out", str(tmp_path / "s"), "--width", "4"), "sample size")
    args = ["--no-echo", "--size", "64x48", "--sample-frames", "2", "--out", str(tmp_path)]
    proc = bench(*args, "--node-command", str(tmp_path / "no_such_program"))
    one_line_error(proc, "cannot start", "no_such_program")
    one_line_error(bench("echo", "--ros-args", "-p", "input.transport:=jpeg"), "input.transport")
    one_line_error(bench("--topics", "/a,/b", "--out", str(tmp_path)), "--topics", "--bag")
    one_line_error(bench("--preset", "headset", "--depth", "--out", str(tmp_path)), "one stream")
    # argparse's own usage errors (exit status 2 as well).
    proc = bench("--rate", "-3")
    assert proc.returncode == 2 and "rate must be > 0" in proc.stderr
    proc = bench("--size", "640")
    assert proc.returncode == 2 and "WIDTHxHEIGHT" in proc.stderr


def _node_missing() -> str | None:
    from aria_perception.bench.environment import node_available

    return node_available()


@pytest.mark.slow
@pytest.mark.skipif(_node_missing() is not None, reason=str(_node_missing()))
def test_compare_two_node_configurations_on_cpu(tmp_path: Path, domain_id: int) -> None:
    out = tmp_path / "out"
    args = "--preset smoke --size 320x240 --frames 10 --rate 5 --throughput-frames 4"
    args += f" --warmup 1 --out {out} --domain-id {domain_id} --no-progress --save-images 2"
    # A loaded 2-core CI machine must not trip the worker's hang detection.
    args += " -p worker.frame_timeout_s:=60.0 -p device:=cpu --result-timeout 30"
    args += " -P depth.frame_skip:=3 --labels skip1,skip3 --depth"
    proc = bench(*args.split(), timeout=280)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RANDOM WEIGHTS" in proc.stdout and "compare skip3 / skip1" in proc.stdout
    rep = json.loads((out / "report.json").read_text())
    check_shape(rep)
    echo, a, b = rep["runs"]
    assert [r["label"] for r in rep["runs"]] == ["echo", "skip1", "skip3"]
    assert "depth.frame_skip:=3" in b["params"] and "depth.frame_skip:=3" not in a["params"]
    assert "allow_random_weights:=true" in a["params"]
    assert a["topics"]["image"] == "/bench_skip1/image"
    assert a["topics"]["detections"].startswith("/bench_skip1/")
    assert a["topics"]["depth"].endswith("/depth/raw")
    for run in (a, b):
        assert run["ok"] and not run["crashed"] and run["error"] is None, run["error"]
        assert run["exit_code"] == 0 and run["stop_s"] < 10
        assert run["latency"]["received"] > 0 and run["throughput"]["received"] > 0
        assert run["latency"]["header_mismatches"] == 0
        d = run["diagnostics"]
        assert (d["weights"], d["device"], d["hardware_id"]) == ("random", "cpu", "cpu")
        assert d["samples"] >= 1 and d["stage_ms"]["depth_ms"] is not None
        path = d["path_ms"]
        assert path["engine_ms"] > 0 and path["copy_in_ms"] > 0 and path["publish_ms"] > 0
        assert d["worker_restarts"] == 0 and d["rejected_frames"] == 0
        assert run["depth"]["collected"] and run["depth"]["received"] > 0
        assert run["depth"]["bad"] == 0  # 32FC1 at the input size, input header
        assert run["resources"]["samples"] >= 1 and run["resources"]["worker_rss_mb_max"] > 100
    assert rep["compare"]["a"] == "skip1" and rep["compare"]["b"] == "skip3"
    assert rep["compare"]["metrics"]["latency_p50_ms"]["ratio"] > 0
    assert set(rep["vs_echo"]) == {"skip1", "skip3"}
    assert rep["vs_echo"]["skip1"]["latency_p50_over_echo_ms"] is not None
    names = [(c["run"], c["name"]) for c in rep["criteria"]]
    for label in ("skip1", "skip3"):
        for name in ("min_fps", "max_p50_ms", "max_p95_ms", "max_gpu_mem_mb", "no_crash"):
            assert (label, name) in names
    assert rep["verdict"] in ("PASS", "FAIL")
    images = rep["files"]["images"]
    assert any("overlay" in i for i in images) and any("depth" in i for i in images)
    import cv2

    overlay = cv2.imread(str(out / next(i for i in images if "overlay" in i)))
    assert overlay.shape == (240, 320, 3)
