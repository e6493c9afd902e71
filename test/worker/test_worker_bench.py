"""The transport benchmark: a quick CPU run with the echo engine, the real one on the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aria_perception.records import EngineConfig
from aria_perception.worker.bench_transport import main, measure_transport


def test_echo_transport_report_is_complete(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "transport.json"
    args = ["--engine", "echo", "--size", "320x240", "--frames", "30", "--warmup", "3"]
    assert main([*args, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "320x240 rgb8" in table and "transport (round trip - engine)" in table
    report = json.loads(out.read_text())
    assert report["frames"] == 30 and report["size"] == [240, 320]
    assert report["depth_bytes"] == 240 * 320 * 4 and report["frame_bytes"] == 240 * 320 * 3
    for key in ("transport", "roundtrip", "engine", "copy_in", "copy_out", "messaging"):
        assert set(report[key]) == {"p50", "p95", "mean", "max"}
    assert 0 < report["copy_in"]["p50"] <= report["transport"]["p50"] + 1e-3
    assert report["roundtrip"]["p50"] >= report["engine"]["p50"]


def test_echo_transport_without_depth() -> None:
    report = measure_transport(size=(48, 64), frames=5, warmup=1, engine="echo", want_depth=False)
    assert report.depth_bytes == 0 and report.frames == 5


def test_echo_transport_at_a_camera_rate_is_paced(capsys: pytest.CaptureFixture) -> None:
    out_args = ["--engine", "echo", "--size", "64x48", "--frames", "10", "--warmup", "2"]
    assert main([*out_args, "--rate", "50"]) == 0
    assert "10 frames at 50 Hz" in capsys.readouterr().out
    paced = measure_transport(size=(48, 64), frames=10, warmup=2, engine="echo", rate_hz=50)
    # The first measured frame goes at once, the other nine 20 ms apart.
    assert paced.rate_hz == 50 and paced.duration_s >= 9 * 0.020 - 1e-3
    fast = measure_transport(size=(48, 64), frames=10, warmup=2, engine="echo")
    assert fast.duration_s < paced.duration_s
    with pytest.raises(ValueError, match="rate_hz"):
        measure_transport(size=(48, 64), frames=1, warmup=0, engine="echo", rate_hz=-1)
    with pytest.raises(SystemExit):
        main([*out_args, "--rate", "-1"])
    assert "--rate must be >= 0" in capsys.readouterr().err


@pytest.mark.gpu
def test_transport_overhead_on_the_gpu() -> None:
    """Issue 4: round trip minus engine time for 1408x1408 + depth (target <= 1 ms; reported)."""
    config = EngineConfig(device="cuda", allow_random_weights=True)
    report = measure_transport(size=(1408, 1408), frames=200, warmup=20, config=config)
    print(report.table())
    assert report.device.startswith("cuda") and report.frames == 200
