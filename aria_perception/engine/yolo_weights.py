"""Finding, loading or building the Ultralytics YOLO network (``detector.weights``), offline.

Weights are found, in this order: ``detector.weights`` as an absolute path; relative to the
current directory; in the models directory (``$ARIA_PERCEPTION_MODELS`` if set, else
``~/.cache/aria_perception/models``). Nothing is ever downloaded: a missing file is a
:class:`~aria_perception.errors.WeightsError` unless random weights are allowed, then the model
is built from the matching Ultralytics config (``yolov8n.pt`` -> ``yolov8n.yaml``) with random
weights and COCO class names. Only the network comes from ``ultralytics`` (its checkpoint
loader and model classes).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from aria_perception.errors import ConfigError, WeightsError
from aria_perception.records import EngineConfig

__all__ = [
    "DEFAULT_WEIGHTS",
    "MODELS_ENV",
    "STATUS_OFFICIAL",
    "STATUS_RANDOM",
    "DetectorModel",
    "class_names_of",
    "find_weights",
    "load_detector_model",
    "models_dir",
    "num_classes",
]

LOG = logging.getLogger(__name__)

#: ``detector.weights`` by default (the one place it is written is :class:`EngineConfig`).
DEFAULT_WEIGHTS = EngineConfig().detector_weights
MODELS_ENV = "ARIA_PERCEPTION_MODELS"
STATUS_OFFICIAL = "official"
STATUS_RANDOM = "random"


class DetectorModel(NamedTuple):
    """A detection network as found or built, before it is fused and moved.

    Attributes:
        model: the Ultralytics ``DetectionModel``.
        class_names: names by class id.
        status: ``"official"`` (loaded from a file) or ``"random"``.
        path: the checkpoint file loaded, None for random weights.
    """

    model: torch.nn.Module
    class_names: tuple[str, ...]
    status: str
    path: Path | None


def models_dir() -> Path:
    """The directory searched for weights: ``$ARIA_PERCEPTION_MODELS`` or ~/.cache/...models."""
    env = os.environ.get(MODELS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "aria_perception" / "models"


def find_weights(
    weights: str | Path, search_dir: Path | None = None
) -> tuple[Path | None, list[Path]]:
    """Find a weights file without touching the network.

    Args:
        weights: Absolute path, path relative to the current directory, or a file name.
        search_dir: Models directory (default :func:`models_dir`).

    Returns:
        The existing file (absolute) or None, and every place looked at, in order.
    """
    path = Path(weights).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path.cwd() / path, (search_dir or models_dir()) / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve(), candidates
    return None, candidates


def num_classes(model: torch.nn.Module) -> int:
    """The number of classes of a detection model (its head's ``nc``)."""
    head = model.model[-1] if hasattr(model, "model") else None
    nc = getattr(head, "nc", None)
    return int(nc) if nc else len(getattr(model, "names", ()))


def class_names_of(model: torch.nn.Module) -> tuple[str, ...]:
    """The model's class names by id (its ``names``; the ids as text where they do not fit)."""
    nc = num_classes(model)
    names: Any = getattr(model, "names", None)
    if isinstance(names, dict):
        return tuple(str(names.get(i, i)) for i in range(nc))
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return tuple(str(n) for n in names)
    return tuple(str(i) for i in range(nc))


def load_detector_model(
    weights: str | Path, allow_random: bool, search_dir: Path | None = None
) -> DetectorModel:
    """The network ``detector.weights`` names: a checkpoint, or a random model of a config.

    Args:
        weights: ``*.pt`` checkpoint (path or file name) or ``*.yaml`` Ultralytics model config
            (random weights, requires ``allow_random``).
        allow_random: build a random model from the matching config when the checkpoint is
            missing (logged loudly).
        search_dir: Models directory (default :func:`models_dir`).

    Raises:
        ConfigError: ``weights`` is neither a ``.pt`` nor a ``.yaml`` name.
        WeightsError: the file is missing (and random weights not allowed) or unusable.
    """
    text = str(weights).strip()
    if not text:
        raise ConfigError("detector.weights must name a .pt checkpoint or a .yaml config")
    suffix = Path(text).suffix.lower()
    if suffix in (".yaml", ".yml"):
        if not allow_random:
            raise WeightsError(
                f"detector.weights {text!r} is a model config: it gives random weights, "
                f"which need allow_random_weights: true"
            )
        return _random_model(text, reason=f"{text} is a model config")
    if suffix != ".pt":
        raise ConfigError(
            f"detector.weights must be an Ultralytics .pt checkpoint or .yaml config, got {text!r}"
        )
    path, looked = find_weights(text, search_dir)
    if path is not None:
        model = _load_checkpoint(path)
        return DetectorModel(model, class_names_of(model), STATUS_OFFICIAL, path)
    places = ", ".join(str(p) for p in looked)
    if not allow_random:
        raise WeightsError(
            f"detector weights {text!r} not found (looked in: {places}). Nothing is "
            f"downloaded here: run the `models` command (ros2 run aria_perception models) "
            f"on a machine with internet and copy the file to {search_dir or models_dir()} "
            f"(or set ${MODELS_ENV}), give an absolute path, or set "
            f"allow_random_weights: true to run with random weights"
        )
    config = Path(text).with_suffix(".yaml").name
    try:
        return _random_model(config, reason=f"{text} not found (looked in: {places})")
    except WeightsError as err:
        raise WeightsError(
            f"detector weights {text!r} not found (looked in: {places}), and no random "
            f"model can be built for that name: {err}"
        ) from err


def _ultralytics_offline() -> None:
    """Keep ultralytics off the network; must run before its first import to take effect."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no connectivity checks, no auto-update
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # no pip install of missing modules


def _coco_names() -> tuple[str, ...]:
    from ultralytics.utils import ROOT, YAML

    names = YAML.load(ROOT / "cfg" / "datasets" / "coco.yaml")["names"]
    return tuple(names[i] for i in range(len(names)))


def _load_checkpoint(path: Path) -> torch.nn.Module:
    """Load an Ultralytics ``.pt`` checkpoint with ultralytics' own loader, offline."""
    _ultralytics_offline()
    from ultralytics.nn.tasks import load_checkpoint
    from ultralytics.utils.checks import check_yolov5u_filename

    # The loader renames legacy YOLOv3/v5 names (yolov5s.pt -> yolov5su.pt) and then downloads
    # the renamed file when it is missing: refuse such names instead of going online.
    renamed = check_yolov5u_filename(str(path), verbose=False)
    if renamed != str(path):
        raise WeightsError(
            f"detector weights {path}: ultralytics treats this name as a legacy YOLOv3/v5 model "
            f"and would load {Path(renamed).name} instead; rename the file"
        )
    try:
        model, _ = load_checkpoint(str(path), device="cpu", fuse=False)
    except Exception as err:  # any loader failure becomes a WeightsError at this boundary
        raise WeightsError(f"cannot load detector weights {path}: {err}") from err
    return model


def _build_from_config(config: str) -> torch.nn.Module:
    """Build a randomly initialised model from an Ultralytics model config (``*.yaml``)."""
    _ultralytics_offline()
    from ultralytics.nn.tasks import DetectionModel

    try:
        return DetectionModel(cfg=config, verbose=False)
    except Exception as err:  # any build failure becomes a WeightsError at this boundary
        raise WeightsError(
            f"cannot build a detector from model config {config!r}: {err}. Use the name of a "
            f"config that ultralytics ships (e.g. yolov8n.yaml, yolo11n.yaml) or a path to one"
        ) from err


def _random_model(config: str, reason: str) -> DetectorModel:
    model = _build_from_config(config)
    nc = num_classes(model)
    names = _coco_names() if nc == 80 else tuple(str(i) for i in range(nc))
    LOG.warning(
        "\n%s\n!! DETECTOR RUNS WITH RANDOM WEIGHTS (%s; built from %s).\n"
        "!! Detections are meaningless; fine for tests and benchmarks only.\n%s",
        "!" * 78,
        reason,
        config,
        "!" * 78,
    )
    return DetectorModel(model, names, STATUS_RANDOM, None)
