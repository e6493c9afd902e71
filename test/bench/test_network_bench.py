"""network_bench: the networks and the JPEG decoder alone (CPU here; the GPU rows on CUDA)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aria_perception.bench.network_bench import main


@pytest.mark.slow
def test_a_short_cpu_run_times_each_network_and_the_decoder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "net.json"
    args = "--device cpu --no-compile --iterations 2 --depth-size 64 --detector-size 64"
    assert main([*args.split(), "--size", "96x64", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| MiDaS small 64x64 | no |" in table and "| YOLOv8n 64x64 | no |" in table
    rows = json.loads(out.read_text())["results"]
    assert [r["what"] for r in rows] == [
        "MiDaS small 64x64",
        "YOLOv8n 64x64",
        "both back to back",
        "JPEG 96x64 decode, CPU (libjpeg)",
    ]
    assert all(r["p50_ms"] > 0 and r["fps"] > 0 for r in rows)
    assert rows[-1]["bytes"] > 0


def test_user_mistakes_are_one_line_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["--device", "cpu", "--iterations", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--iterations" in err[0]
