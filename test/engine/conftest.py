"""Fixtures of the YOLO tests: a random YOLOv8n saved as ultralytics saves it, and detectors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from yolo_helpers import CONF, IOU, MAX_DET, discriminative_weights

from aria_perception.engine.detector import YoloDetector


@pytest.fixture(scope="session")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A random YOLOv8n saved the way ultralytics saves models, and its in-memory twin."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolov8n.yaml")
    discriminative_weights(yolo.model, seed=1)
    path = tmp_path_factory.mktemp("weights") / "rand_yolov8n.pt"
    yolo.save(path)
    twin = copy.deepcopy(yolo.model).half().float()  # Model.save stores fp16 tensors
    return path, twin


@pytest.fixture(scope="session")
def reference(saved: tuple[Path, torch.nn.Module]):
    from ultralytics import YOLO

    return YOLO(str(saved[0]))


@pytest.fixture(scope="module")
def detector(saved: tuple[Path, torch.nn.Module]) -> YoloDetector:
    return YoloDetector(saved[0], confidence=CONF, iou=IOU, max_detections=MAX_DET)
