"""The intake benchmark: both intakes timed on a small frame, its table and its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aria_perception.bench.intake_bench import main

SUMMARY_KEYS = {"count", "p50", "p95", "p99", "mean", "std", "min", "max"}


def test_both_intakes_are_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture, domain_id: int
) -> None:
    out = tmp_path / "intake.json"
    args = ["--size", "64x48", "--iterations", "8", "--domain-id", str(domain_id)]
    assert main([*args, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "offline: 64x48 rgb8, 8 iterations" in table and "take: 64x48 rgb8" in table
    data = json.loads(out.read_text())
    assert set(data) == {"offline", "take"}
    assert set(data["offline"]["figures"]) >= {
        "message: deserialize + check + copy",
        "serialized: parse + check + copy",
    }
    assert set(data["take"]["figures"]) == {
        "message: take + check + copy",
        "serialized: take + parse + check + copy",
        "message: take",
        "serialized: take",
    }
    for kind in data.values():
        assert kind["size"] == [64, 48] and kind["iterations"] == 8
        for summary in kind["figures"].values():
            assert set(summary) == SUMMARY_KEYS and summary["count"] == 8


def test_no_iterations_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--iterations", "0"])
    assert exit_info.value.code == 2
    assert "--iterations must be at least 1" in capsys.readouterr().err
