"""The command lines' common frame: a BenchError is one line and exit status 2."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from bench_helpers import assert_one_line_error

from aria_perception.bench.console import EXIT_ERROR, interrupts_once, run_main, write_json
from aria_perception.bench.errors import BenchError, UsageError


def test_run_main_returns_the_body_status_or_one_error_line(
    capsys: pytest.CaptureFixture,
) -> None:
    assert run_main("tool", lambda: 1) == 1

    def fails() -> int:
        raise UsageError("bad\n  value:\tthree lines\nof it")

    assert run_main("tool", fails) == EXIT_ERROR == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, "tool: error: bad value: three lines of it")

    def breaks() -> int:
        raise RuntimeError("not a user's mistake")

    with pytest.raises(RuntimeError):  # a bug keeps its traceback
        run_main("tool", breaks)


def test_write_json(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json(str(path), {"a": [1, 2]}, indent=1)
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    with pytest.raises(BenchError, match="cannot write"):
        write_json(str(tmp_path), {}, indent=1)  # a directory


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_interrupts_and_later_ones_wait_for_the_clean_up(sig: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cleaned = False
    with interrupts_once():
        try:
            os.kill(os.getpid(), sig)
            pytest.fail("the signal did not interrupt")
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C during the clean-up
            os.kill(os.getpid(), signal.SIGTERM)
            cleaned = True
    assert cleaned
    assert {s: signal.getsignal(s) for s in before} == before
