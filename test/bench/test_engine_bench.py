"""The engine benchmark: typed ablations, a short CPU run, user mistakes; NMS paths on the GPU."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bench_helpers import assert_one_line_error

from aria_perception.bench.ablation import ABLATIONS, Ablation, EngineOptions, select_ablations
from aria_perception.bench.engine_bench import _time_loop, main
from aria_perception.bench.errors import UsageError
from aria_perception.records import EngineConfig


def test_ablations_are_typed() -> None:
    by_name = {a.name: a for a in ABLATIONS}
    assert by_name["exact-nms"].engine_options == EngineOptions(fixed_nms=False)
    assert all(a.engine_options.fixed_nms for a in ABLATIONS if a.name != "exact-nms")
    base = EngineConfig(device="cpu")
    assert by_name["default"].config(base) == base
    seq = by_name["eager-sequential"].config(base)
    assert (seq.cuda_graphs, seq.parallel_streams, seq.device) == (False, False, "cpu")
    with pytest.raises(TypeError):
        by_name["fp32"].config_changes["precision"] = "fp16"  # type: ignore[index]
    with pytest.raises(UsageError, match="unknown fields"):
        Ablation("bad", "no such field", {"turbo": True})


def test_select_ablations() -> None:
    assert select_ablations("all") == list(ABLATIONS)
    assert [a.name for a in select_ablations("none")] == ["default"]
    assert [a.name for a in select_ablations("fp32, exact-nms")] == ["fp32", "exact-nms"]
    with pytest.raises(UsageError, match=r"unknown ablation\(s\) \['turbo'\]"):
        select_ablations("default,turbo")


def _run(args: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[str, dict]:
    """``engine_bench`` on the CPU: its printed table and its JSON."""
    out = tmp_path / "engine.json"
    assert main([*args.split(), "--device", "cpu", "--json", str(out)]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


@pytest.mark.slow
def test_a_short_cpu_run_writes_its_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = "--size 96x64 --iterations 2 --warmup 1 --ablations default,sequential"
    table, data = _run(args, tmp_path, capsys)
    assert "96x64 rgb8" in table and "| default |" in table and "| sequential |" in table
    assert data["size"] == [96, 64] and data["encoding"] == "rgb8"
    default, sequential = data["results"]
    assert (default["name"], sequential["name"]) == ("default", "sequential")
    assert default["config"]["parallel_streams"] and not sequential["config"]["parallel_streams"]
    for r in data["results"]:
        assert r["iterations"] == 2 and r["latency_ms"]["count"] == 2
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["max"]
        assert r["device"] == "cpu" and r["weights"] == "random"
        assert r["stages_ms_p50"]["depth_ms"] > 0


@pytest.mark.slow
def test_batch_times_one_to_n_cameras_per_call(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = "--size 64x48 --encoding mono8 --iterations 2 --warmup 1 --batch 3 --ablations default"
    table, data = _run(args, tmp_path, capsys)
    assert "| default |" in table and "| default, batch of 3 |" in table
    assert data["encoding"] == "mono8"
    assert [r["batch"] for r in data["results"]] == [1, 2, 3]
    for r in data["results"]:
        assert r["latency_ms"]["count"] == 2 and r["fps"] > 0


@pytest.mark.slow
def test_rate_starts_the_calls_at_a_cameras_pace(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # At 2 Hz, 3 calls span at least 1 s (calls 0.5 s apart); back to back they take a fraction.
    args = "--size 64x48 --iterations 3 --warmup 1 --ablations default --rate 2"
    table, data = _run(args, tmp_path, capsys)
    assert "calls at 2 Hz" in table
    [r] = data["results"]
    assert r["rate_hz"] == 2 and r["latency_ms"]["count"] == 3
    assert r["fps"] < 3.0  # 3 calls over more than 1 s


def test_paced_latencies_leave_out_the_idle_time_between_calls() -> None:
    calls: list[float] = []
    latencies, wall = _time_loop(lambda: calls.append(time.perf_counter()), 5, 2, rate_hz=20.0)
    assert len(calls) == 7 and len(latencies) == 5
    gaps = [b - a for a, b in zip(calls[2:], calls[3:], strict=False)]
    assert min(gaps) > 0.04 and wall > 0.19  # the timed calls start 50 ms apart
    assert max(latencies) < 40  # ms: each call alone, not the sleep before it


def test_user_mistakes_are_one_line_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["--ablations", "turbo", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, "unknown ablation")
    assert err.startswith("engine_bench: error: ")
    assert main(["--batch", "0", "--device", "cpu"]) == 2
    assert_one_line_error(capsys.readouterr().err, "--iterations and --batch must be >= 1")
    for rate in ("-30", "nan"):
        assert main(["--rate", rate, "--device", "cpu"]) == 2
        assert_one_line_error(capsys.readouterr().err, "--warmup and --rate >= 0")
    with pytest.raises(SystemExit) as exit_:
        main(["--size", "96"])
    assert exit_.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_run_says_so_without_a_traceback(sig: signal.Signals) -> None:
    args = "--device cpu --size 64x64 --iterations 1000000 --warmup 1 --ablations default"
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "aria_perception.bench.engine_bench", *args.split()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        # Stopped once it times its configuration (it says so before building the engine).
        deadline = time.monotonic() + 120
        while not seen or not seen[-1].startswith("engine_bench: default"):
            seen.append(lines.get(timeout=max(deadline - time.monotonic(), 0)))
        proc.send_signal(sig)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while not lines.empty():
        seen.append(lines.get())
    stderr = "".join(seen)
    assert proc.returncode == 130, stderr
    assert stderr.rstrip().endswith("engine_bench: interrupted") and "Traceback" not in stderr


@pytest.mark.gpu
def test_exact_nms_ablation_builds_the_engine_without_fixed_nms(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    args = "--size 640x480 --iterations 20 --warmup 5 --device cuda --ablations default,exact-nms"
    assert main([*args.split(), "--json", str(out)]) == 0
    default, exact = json.loads(out.read_text())["results"]
    # The default engine serves frames from the fixed-shape NMS; exact-nms never does.
    assert default["fixed_post_frames"] > 0 and exact["fixed_post_frames"] == 0
