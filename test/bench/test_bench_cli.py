"""The bench command end to end: real processes, real DDS, the echo reference and our node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from aria_perception.bench import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def domain_id(request: pytest.FixtureRequest) -> int:
    """A DDS domain of this test alone, apart from the suite's per-session 1..200.

    215..232: ids whose DDS ports lie outside Linux's ephemeral port range.
    """
    salt = zlib.crc32(request.node.nodeid.encode())
    return 215 + (os.getpid() + salt) % 18


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


def check_shape(rep: dict) -> None:
    """Every documented field is present, in every run and phase."""
    assert rep["schema"] == report.SCHEMA
    assert set(report.REPORT_KEYS) <= set(rep), set(report.REPORT_KEYS) - set(rep)
    for run in rep["runs"]:
        assert set(report.RUN_KEYS) <= set(run), set(report.RUN_KEYS) - set(run)
        for phase in ("latency", "throughput"):
            if run[phase] is not None:
                assert set(report.PHASE_KEYS) <= set(run[phase])
                assert set(report.LATENCY_KEYS) <= set(run[phase]["latency_ms"])
        assert set(report.DIAG_KEYS) <= set(run["diagnostics"])
        assert set(report.STAGE_KEYS) <= set(run["diagnostics"]["stage_ms"])
        assert set(report.PATH_KEYS) <= set(run["diagnostics"]["path_ms"])
        assert set(report.RESOURCE_KEYS) <= set(run["resources"])
        assert set(run["frames"]) == {"phase", "latency_ms", "detections"}
    for c in rep["criteria"]:
        assert set(report.CRITERION_KEYS) <= set(c)


def test_bench_process_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "import aria_perception.bench.cli, aria_perception.bench.runner\n"
        "import aria_perception.bench.echo, aria_perception.bench.replay\n"
        "import aria_perception.bench.plot, aria_perception.bench.sample\n"
        "from aria_perception.bench.sample import find_photos; find_photos()\n"
        "bad = [m for m in ('torch', 'ultralytics', 'timm') if m in sys.modules]\n"
        "sys.exit(f'imported {bad}' if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


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
    assert lat["input_fps"] == pytest.approx(30.0, rel=0.2)
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
    assert echo["latency"]["input_fps"] == pytest.approx(20.0, rel=0.2)


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    proc = bench("--bag", str(tmp_path / "nope"), "--echo-only", "--out", str(tmp_path))
    assert proc.returncode == 2 and "bag" in proc.stderr and "does not exist" in proc.stderr
    proc = bench("--rate", "-3")
    assert proc.returncode == 2 and "rate" in proc.stderr
    proc = bench("--criteria", "speed=3", "--echo-only")
    assert proc.returncode == 2 and "bad criterion" in proc.stderr
    proc = bench("--attach", "-P", "worker.cuda_graphs:=false", "--out", str(tmp_path))
    assert proc.returncode == 2 and "cannot attach" in proc.stderr


def _node_missing() -> str | None:
    from aria_perception.bench.runner import node_available

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
