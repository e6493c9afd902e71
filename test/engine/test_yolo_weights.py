"""Finding, loading and building the YOLO network: checkpoints, models dir, random weights."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch
from yolo_helpers import CONF, IOU, MAX_DET, sample_image

from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.yolo_weights import MODELS_ENV, find_weights, is_bare_name
from aria_perception.errors import ConfigError, WeightsError


def test_saved_checkpoint_loads_and_matches_the_in_memory_model(
    saved: tuple[Path, torch.nn.Module], detector: YoloDetector
) -> None:
    path, twin = saved
    assert detector.weights_status == "official"
    assert detector.weights_path == path.resolve()
    assert len(detector.class_names) == 80
    memory = YoloDetector.from_module(
        copy.deepcopy(twin), confidence=CONF, iou=IOU, max_detections=MAX_DET
    )
    image = torch.from_numpy(sample_image(300, 700, seed=5))
    batch = detector.preprocess(image)
    assert torch.equal(memory.forward(batch), detector.forward(batch))
    a, b = memory.detect(image), detector.detect(image)
    assert len(a) > 0
    for x, y in ((a.boxes, b.boxes), (a.scores, b.scores), (a.class_ids, b.class_ids)):
        assert torch.equal(x, y)


def test_missing_weights_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    models = tmp_path / "models"
    with pytest.raises(WeightsError) as err:
        YoloDetector("yolov8n.pt", search_dir=models)
    text = str(err.value)
    assert "yolov8n.pt" in text and f"(looked in: {models / 'yolov8n.pt'})" in text
    assert "never in the working directory" in text
    assert "models" in text and "allow_random_weights" in text
    with pytest.raises(WeightsError, match="allow_random_weights"):
        YoloDetector("yolov8n.yaml")  # a config means random weights: needs the switch
    with pytest.raises(WeightsError, match=str(tmp_path / "abs" / "x.pt")):
        YoloDetector(tmp_path / "abs" / "x.pt")


def test_unusable_weights_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load detector weights .*broken.pt"):
        YoloDetector(broken)
    with pytest.raises(ConfigError, match="detector.weights"):
        YoloDetector(tmp_path / "model.onnx")
    with pytest.raises(WeightsError, match="detection model"):
        YoloDetector("yolov8n-seg.yaml", allow_random_weights=True)  # Segment head


def test_random_weights_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="aria_perception.engine.yolo_weights"):
        det = YoloDetector(
            "yolov8n.pt", allow_random_weights=True, search_dir=tmp_path, image_size=320
        )
    assert det.weights_status == "random" and det.weights_path is None
    assert "RANDOM WEIGHTS" in caplog.text and "yolov8n.yaml" in caplog.text
    assert len(det.class_names) == 80 and det.class_names[:3] == ("person", "bicycle", "car")
    out = det.detect(torch.from_numpy(sample_image(120, 160, seed=6)))
    assert out.boxes.shape == (len(out), 4) and out.boxes.dtype == torch.float32
    assert out.scores.shape == (len(out),) and out.class_ids.dtype == torch.int64
    assert det.input_shape(120, 160) == (1, 3, 256, 320)
    with pytest.raises(WeightsError, match="best.pt' not found.*no random model.*best.yaml"):
        YoloDetector("best.pt", allow_random_weights=True, search_dir=tmp_path)


def test_a_bare_name_is_looked_up_in_the_models_dir_and_a_path_as_given(
    saved: tuple[Path, torch.nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = saved[0]
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.pt").symlink_to(path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "here.pt").symlink_to(path)
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(MODELS_ENV, str(models))
    assert find_weights("mine.pt") == (path.resolve(), [models / "mine.pt"])
    assert find_weights("here.pt") == (None, [models / "here.pt"])  # not the working directory
    assert find_weights("./here.pt") == (path.resolve(), [elsewhere / "here.pt"])
    assert find_weights(str(path)) == (path.resolve(), [path])
    assert is_bare_name("yolov8n.pt") and not is_bare_name("./yolov8n.pt")
    assert not is_bare_name("~/yolov8n.pt") and not is_bare_name(str(path))
    det = YoloDetector("mine.pt", image_size=320)
    assert det.weights_status == "official"
    assert YoloDetector("./here.pt", image_size=320).weights_path == path.resolve()


def test_a_checkpoint_in_the_working_directory_is_never_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A yolov8n.pt left where the node starts: unpickled, it would write a marker file."""
    import os

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'marker'}",))

    torch.save({"model": Hostile()}, tmp_path / "yolov8n.pt")
    empty = tmp_path / "models"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError, match="not found"):
        YoloDetector("yolov8n.pt", search_dir=empty)
    det = YoloDetector("yolov8n.pt", allow_random_weights=True, search_dir=empty, image_size=320)
    assert det.weights_status == "random"
    assert not (tmp_path / "marker").exists()


def test_a_bare_config_name_is_one_ultralytics_ships(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A yolov8n.yaml in the working directory is not read: a config's strings are evaluated."""
    marker = tmp_path / "marker"
    (tmp_path / "yolov8n.yaml").write_text(
        f"nc: 3\nactivation: __import__('pathlib').Path('{marker}').touch()\n"
        "backbone: [[-1, 1, Conv, [16, 3, 2]]]\nhead: [[-1, 1, Conv, [16, 3, 2]]]\n"
    )
    monkeypatch.chdir(tmp_path)
    det = YoloDetector("yolov8n.yaml", allow_random_weights=True, image_size=320)
    assert len(det.class_names) == 80 and not marker.exists()
    with pytest.raises(WeightsError, match="ultralytics ships no model config 'mine.yaml'"):
        YoloDetector("mine.yaml", allow_random_weights=True)
