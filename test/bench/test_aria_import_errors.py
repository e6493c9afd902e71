"""``bench import`` refuses bad input in one line with exit status 2 and leaves no half bag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aria_data import GEN1, aria_recording
from bench_helpers import assert_one_line_error

from aria_perception.bench.cli import main
from aria_perception.bench.vrs_records import record_spans


def import_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aria_perception.bench.cli", "import", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(capfd: pytest.CaptureFixture, argv: list[str], *needles: str) -> None:
    """Exit status 2 and one line on stderr naming the problem (no native log, no traceback)."""
    capfd.readouterr()
    assert main(["import", *argv, "--no-progress"]) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert_one_line_error(err, "bench import: error:", *needles)


def test_a_text_file_is_refused_by_the_command_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.vrs"
    text.write_text("not a recording\n")
    proc = import_cli(str(text), "--out", str(tmp_path / "bag"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_one_line_error(proc.stderr, "bench import: error:", "not a VRS file")
    assert not (tmp_path / "bag").exists()


def test_bad_inputs_are_refused_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    gen1 = aria_recording(GEN1)
    out = str(tmp_path / "bag")
    refused(capfd, [str(tmp_path / "missing.vrs"), "--out", out], "does not exist")

    spans = list(record_spans(gen1))
    data = gen1.read_bytes()
    truncated = tmp_path / "truncated.vrs"  # cut in the middle of the last record
    truncated.write_bytes(data[: spans[-1].offset + spans[-1].size // 2])
    refused(capfd, [str(truncated), "--out", out], "truncated")

    # Complete records up to the first image: a VRS file whose camera streams hold no image.
    first_image = next(s for s in spans if s.record_type == 3 and s.stream == "214-1")
    no_images = tmp_path / "no_images.vrs"
    no_images.write_bytes(data[: first_image.offset - 32])
    refused(capfd, [str(no_images), "--out", out], "no camera image stream")

    refused(
        capfd,
        [str(gen1), "--out", out, "--streams", "rgb,lidar"],
        "no camera stream 'lidar'",
        "slam-left",
    )
    refused(capfd, [str(gen1), "--out", out, "--start", "100"], "no image records")
    refused(capfd, [str(gen1), "--out", out, "--duration", "-1"], "--duration")

    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    refused(capfd, [str(gen1), "--out", str(used)], "exists and is not empty")
    assert (used / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_images.vrs", "truncated.vrs", "used"]


def test_an_empty_out_folder_is_used(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    gen1 = aria_recording(GEN1)
    out = tmp_path / "bag"
    out.mkdir()
    assert main(["import", str(gen1), "--out", str(out), "--streams", "rgb", "--no-progress"]) == 0
    stdout, stderr = capfd.readouterr()
    assert stdout.startswith(
        f"wrote {out} (mcap): /camera_rgb/image_raw 3, /camera_rgb/camera_info 3;"
    )
    assert stderr == ""  # projectaria-tools' native log is kept off the terminal
    assert sorted(p.suffix for p in out.iterdir()) == [".mcap", ".yaml"]
    assert os.listdir(tmp_path) == ["bag"]


def test_a_record_that_fails_to_decode_leaves_no_bag(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """The third RGB frame is not JPEG any more: two frames are written, then the import fails."""
    gen1 = aria_recording(GEN1)
    data = bytearray(gen1.read_bytes())
    rgb = [s for s in record_spans(gen1) if s.record_type == 3 and s.stream == "214-1"]
    soi = data.index(b"\xff\xd8\xff", rgb[2].offset)
    data[soi : soi + 2] = b"\x00\x00"
    broken = tmp_path / "broken.vrs"
    broken.write_bytes(bytes(data))
    out = tmp_path / "bag"
    refused(
        capfd,
        [str(broken), "--out", str(out), "--storage", "sqlite3"],
        "record 2 of camera-rgb",
        "cannot be decoded",
    )
    assert sorted(os.listdir(tmp_path)) == ["broken.vrs"]  # no bag, no temporary folder
