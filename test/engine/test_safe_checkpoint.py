"""Detector checkpoints load without running code from the file, unless the user trusts it.

A ``.pt`` file is a pickle. The hostile files here would run code if unpickled in full: each
writes a marker file. They must be refused with a clear message and the marker must not exist.
"""

from __future__ import annotations

import fractions
import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.engine import Engine
from aria_perception.engine.safe_checkpoint import TRUST_HINT, load_checkpoint, pickle_calls
from aria_perception.errors import WeightsError
from aria_perception.records import EngineConfig

NEEDS_CODE = "needs arbitrary code to load"


class _RunsAShellCommand:
    """Unpickled in full, runs ``touch marker`` (a global the allowlist never names)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsTheModelConstructor:
    """Calls an allowlisted layer class: DetectionModel evaluates the config's activation."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        from ultralytics.nn.tasks import DetectionModel

        config = {
            "nc": 1,
            "activation": f"__import__('pathlib').Path({str(self.marker)!r}).touch()",
            "backbone": [[-1, 1, "Conv", [16, 3, 2]]],
            "head": [[-1, 1, "Conv", [16, 3, 2]]],
        }
        return (DetectionModel, (config,))


class _CallsWhatGetattrReturned:
    """``getattr(Path, 'touch')(marker)``: a call of a call's result."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


HOSTILE = {
    "shell": (_RunsAShellCommand, "it references posix.system"),
    "layer_constructor": (_CallsTheModelConstructor, "it calls ultralytics.nn.tasks.Detection"),
    "call_of_a_result": (_CallsWhatGetattrReturned, "it calls what another call returned"),
}


def _hostile(tmp_path: Path, kind: str, name: str = "evil.pt") -> tuple[Path, Path]:
    marker = tmp_path / f"marker-{kind}"
    path = tmp_path / name
    torch.save({"model": HOSTILE[kind][0](marker), "train_args": {}}, path)
    return path, marker


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_checkpoint_that_runs_code_is_refused_and_nothing_runs(
    tmp_path: Path, kind: str
) -> None:
    path, marker = _hostile(tmp_path, kind)
    for load in (
        lambda: load_checkpoint(path),
        lambda: YoloDetector(path),
        lambda: YoloDetector(path, allow_random_weights=True),  # a bad file is never random
    ):
        with pytest.raises(WeightsError) as err:
            load()
        text = str(err.value)
        assert NEEDS_CODE in text and HOSTILE[kind][1] in text and str(path) in text
        assert text.endswith(TRUST_HINT) and "detector.trust_pickle: true" in text
        assert not marker.exists()


def test_the_engine_refuses_it_too(tmp_path: Path) -> None:
    path, marker = _hostile(tmp_path, "shell")
    config = EngineConfig(device="cpu", depth_enabled=False, detector_weights=str(path))
    with pytest.raises(WeightsError, match=NEEDS_CODE):
        Engine(config)
    assert not marker.exists()


@pytest.mark.slow
def test_the_marker_is_written_when_the_file_is_unpickled_in_full(tmp_path: Path) -> None:
    """The hostile files do run code when trusted: the refusals above are not vacuous."""
    for kind in HOSTILE:
        path, marker = _hostile(tmp_path, kind, f"{kind}.pt")
        # In a child: a full unpickle of such a file is what a trusting user gets.
        code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
        assert marker.exists(), kind


@pytest.mark.parametrize("config", ["yolov8n.yaml", "yolo11n.yaml", "yolov5nu.yaml"])
def test_ultralytics_checkpoints_load_with_weights_only(tmp_path: Path, config: str) -> None:
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = tmp_path / config.replace(".yaml", ".pt")
    YOLO(config).save(path)  # the checkpoint format: model, date, version, license, docs
    checkpoint = load_checkpoint(path)
    assert type(checkpoint["model"]).__name__ == "DetectionModel"
    detector = YoloDetector(path, image_size=320)
    assert detector.weights_status == "official" and len(detector.class_names) == 80


def _with_extra(saved: Path, tmp_path: Path, **extra: object) -> Path:
    checkpoint = torch.load(saved, weights_only=False)  # the test's own file: trusted
    checkpoint.update(extra)
    path = tmp_path / "extra.pt"
    torch.save(checkpoint, path)
    return path


def test_trust_pickle_loads_a_legitimate_checkpoint_outside_the_allowlist(
    saved: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    path = _with_extra(saved[0], tmp_path, ratio=fractions.Fraction(1, 3))
    with pytest.raises(WeightsError, match=f"{NEEDS_CODE} .it references fractions.Fraction"):
        YoloDetector(path)
    detector = YoloDetector(path, trust_pickle=True, image_size=320)
    assert detector.weights_status == "official"
    assert load_checkpoint(path, trust_pickle=True)["ratio"] == fractions.Fraction(1, 3)
    config = EngineConfig(device="cpu", depth_enabled=False, detector_weights=str(path))
    with Engine(config.replace(detector_trust_pickle=True)) as engine:
        assert engine.info.weights == "official"


def test_getattr_is_allowed_for_a_layers_forward_only(
    saved: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    model = torch.load(saved[0], weights_only=False)["model"]
    forward = _with_extra(saved[0], tmp_path, forward=model.model[-1].forward)
    assert load_checkpoint(forward)["forward"].__name__ == "forward"
    other = _with_extra(saved[0], tmp_path, fuse=model.fuse)
    with pytest.raises(WeightsError, match=f"{NEEDS_CODE}.*getattr.DetectionModel, 'fuse'"):
        load_checkpoint(other)


def test_files_that_are_no_checkpoint_are_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "text.pt"
    text.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch zip checkpoint"):
        load_checkpoint(text)
    weights = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, weights)
    with pytest.raises(WeightsError, match="holds no Ultralytics model|hold no Ultralytics"):
        YoloDetector(weights)


def test_pickle_calls_names_every_call_also_through_the_memo() -> None:
    value = [OrderedDict(a=1), OrderedDict(b=2), {1, 2}]
    calls = pickle_calls(pickle.dumps(value, protocol=2))
    assert calls == ["collections.OrderedDict", "collections.OrderedDict", "builtins.set"]
    assert pickle_calls(pickle.dumps(Path.touch, protocol=2)) == ["builtins.getattr"]
    # getattr(Path, "touch") is called, then a path is made, then what getattr returned.
    nested = pickle.dumps(_CallsWhatGetattrReturned(Path("/x")), protocol=2)
    assert pickle_calls(nested) == ["builtins.getattr", "pathlib.PosixPath", None]
