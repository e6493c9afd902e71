"""The one WIDTHxHEIGHT reader and the bench's errors."""

from __future__ import annotations

import argparse

import pytest

from aria_perception.bench.errors import BenchError, SizeError, UsageError
from aria_perception.bench.sizes import Size, parse_size
from aria_perception.errors import AriaPerceptionError


def test_width_comes_first() -> None:
    size = parse_size("640x480")
    assert size == Size(width=640, height=480) and (size.width, size.height) == (640, 480)
    assert size.shape == (480, 640) and str(size) == "640x480"
    assert parse_size(" 1408X1408 ") == Size(1408, 1408)


@pytest.mark.parametrize("text", ["640", "640x", "x480", "640x480x3", "640*480", "0x480", "-1x2"])
def test_bad_sizes_are_usage_errors_argparse_understands(text: str) -> None:
    with pytest.raises(SizeError, match="size") as err:
        parse_size(text)
    assert isinstance(err.value, argparse.ArgumentTypeError)
    assert isinstance(err.value, UsageError) and isinstance(err.value, BenchError)
    assert isinstance(err.value, AriaPerceptionError)


def test_argparse_reports_a_bad_size(capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--size", type=parse_size)
    assert parser.parse_args(["--size", "320x240"]).size == Size(320, 240)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--size", "320"])
    assert exit_.value.code == 2
    assert "argument --size: size must be WIDTHxHEIGHT like 640x480, got '320'" in (
        capsys.readouterr().err
    )
