"""The transport benchmark: a quick CPU run with the echo engine, the real one on the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_helpers import assert_one_line_error

from aria_perception.bench.errors import UsageError
from aria_perception.bench.sizes import Size
from aria_perception.bench.transport import ROWS, TransportReport, main, measure_transport
from aria_perception.records import EngineConfig
from aria_perception.worker import FrameTiming

SUMMARY_KEYS = {"count", "p50", "p95", "p99", "mean", "std", "min", "max"}


def test_figures_come_from_the_explicit_timing_fields() -> None:
    timing = FrameTiming(
        copy_in_ms=1.0,
        wait_ms=0.5,
        engine_ms=10.0,
        copy_out_ms=0.25,
        roundtrip_ms=14.0,
        to_worker_ms=1.0,
        to_parent_ms=1.25,
    )
    f = {name: s.p50 for name, s in TransportReport.figures([timing, timing]).items()}
    assert set(f) == {name for name, _ in ROWS}
    assert f["boundary"] == 14.0 - 0.5 - 10.0  # copy_in + transport
    assert f["transport"] == f["boundary"] - 1.0  # the copy into shared memory is not in it
    assert f["messaging"] == f["transport"] - 0.25
    assert (f["engine"], f["wait"], f["roundtrip"], f["to_parent"]) == (10.0, 0.5, 14.0, 1.25)


def test_echo_transport_report_is_complete(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "transport.json"
    args = ["--engine", "echo", "--size", "320x240", "--frames", "30", "--warmup", "3"]
    assert main([*args, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "320x240 rgb8" in table and "transport (boundary - copy_in)" in table
    report = json.loads(out.read_text())
    assert report["frames"] == 30 and report["size"] == [320, 240]
    assert report["depth_bytes"] == 240 * 320 * 4 and report["frame_bytes"] == 240 * 320 * 3
    for name, _ in ROWS:
        assert set(report[name]) == SUMMARY_KEYS and report[name]["count"] == 30
    assert 0 < report["copy_in"]["p50"] <= report["boundary"]["p50"] + 1e-3
    assert report["roundtrip"]["p50"] >= report["engine"]["p50"]


def test_echo_transport_without_depth() -> None:
    report = measure_transport(
        size=Size(64, 48), frames=5, warmup=1, engine="echo", want_depth=False
    )
    assert report.depth_bytes == 0 and report.frames == 5 and report.size == Size(64, 48)


def test_echo_transport_at_a_camera_rate_is_paced(capsys: pytest.CaptureFixture) -> None:
    out_args = ["--engine", "echo", "--size", "64x48", "--frames", "10", "--warmup", "2"]
    assert main([*out_args, "--rate", "50"]) == 0
    assert "10 frames at 50 Hz" in capsys.readouterr().out
    paced = measure_transport(size=Size(64, 48), frames=10, warmup=2, engine="echo", rate_hz=50)
    # The first measured frame goes at once, the other nine 20 ms apart.
    assert paced.rate_hz == 50 and paced.duration_s >= 9 * 0.020 - 1e-3
    with pytest.raises(UsageError, match="rate_hz"):
        measure_transport(size=Size(64, 48), frames=1, warmup=0, engine="echo", rate_hz=-1)
    with pytest.raises(SystemExit):
        main([*out_args, "--rate", "-1"])
    assert "--rate must be >= 0" in capsys.readouterr().err


def test_user_mistakes_are_one_line_errors(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--size", "64by48"])
    assert exit_.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["--engine", "echo", "--size", "64x48", "--frames", "0"]) == 2
    assert_one_line_error(capsys.readouterr().err, "frames must be >= 1")
    with pytest.raises(SystemExit):
        main(["--engine", "echo", "--copy-threads", "0"])
    assert "--copy-threads must be >= 1" in capsys.readouterr().err


def test_copy_threads_apply_to_the_run_only(capsys: pytest.CaptureFixture) -> None:
    from aria_perception.worker import frame_copy

    args = ["--engine", "echo", "--size", "1024x1024", "--frames", "3", "--warmup", "1"]
    assert main([*args, "--copy-threads", "3"]) == 0
    assert "copy into shared memory: 3 thread(s)" in capsys.readouterr().out
    assert frame_copy.pool_workers() == 2 and frame_copy.COPY_THREADS is None


@pytest.mark.gpu
def test_transport_overhead_on_the_gpu() -> None:
    """Round trip minus engine time for 1408x1408 + depth (target <= 1 ms; reported)."""
    config = EngineConfig(device="cuda", allow_random_weights=True)
    report = measure_transport(size=Size(1408, 1408), frames=200, warmup=20, config=config)
    print(report.table())
    assert report.device.startswith("cuda") and report.frames == 200
