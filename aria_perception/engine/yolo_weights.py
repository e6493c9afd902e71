"""Finding, loading or building the Ultralytics YOLO network (``detector.weights``), offline.

A bare file name (``yolov8n.pt``) is looked up in the models directory only
(``$ARIA_PERCEPTION_MODELS`` if set, else ``~/.cache/aria_perception/models``), never in the
working directory: a file left where the node starts must not be picked up. A path with a
directory part (``./yolov8n.pt``, ``/abs/x.pt``) is used as given. Checkpoints are loaded
without running code from the file (:mod:`.safe_checkpoint`) unless ``detector.trust_pickle``.
Nothing is ever downloaded: a missing file is a :class:`~aria_perception.errors.WeightsError`
unless random weights are allowed, then the model is built from the matching Ultralytics config
(``yolov8n.pt`` -> ``yolov8n.yaml``; a bare config name is one that ultralytics ships) with
random weights and COCO class names. Only the network's classes come from ``ultralytics``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch

from aria_perception.engine.safe_checkpoint import load_checkpoint
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
    "is_bare_name",
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


def is_bare_name(weights: str | Path) -> bool:
    """Whether ``weights`` is a file name without a directory part (``yolov8n.pt``)."""
    text = str(weights).strip()
    return not os.path.dirname(text) and not Path(text).is_absolute()


def find_weights(
    weights: str | Path, search_dir: Path | None = None
) -> tuple[Path | None, list[Path]]:
    """Find a weights file without touching the network.

    Args:
        weights: A bare file name, looked up in the models directory only (never in the
            working directory), or a path with a directory part, used as given.
        search_dir: Models directory (default :func:`models_dir`).

    Returns:
        The existing file (absolute) or None, and the place looked at (a list of one).
    """
    text = str(weights).strip()
    if is_bare_name(text):
        candidate = (search_dir or models_dir()) / text
    else:
        candidate = Path(text).expanduser().absolute()
    return (candidate.resolve() if candidate.is_file() else None), [candidate]


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
    weights: str | Path,
    allow_random: bool,
    search_dir: Path | None = None,
    *,
    trust_pickle: bool = False,
) -> DetectorModel:
    """The network ``detector.weights`` names: a checkpoint, or a random model of a config.

    Args:
        weights: ``*.pt`` checkpoint (path or file name) or ``*.yaml`` Ultralytics model config
            (random weights, requires ``allow_random``).
        allow_random: build a random model from the matching config when the checkpoint is
            missing (logged loudly).
        search_dir: Models directory (default :func:`models_dir`).
        trust_pickle: load a checkpoint that needs arbitrary code (``detector.trust_pickle``).

    Raises:
        ConfigError: ``weights`` is neither a ``.pt`` nor a ``.yaml`` name.
        WeightsError: the file is missing (and random weights not allowed), unusable, or needs
            arbitrary code to load (and is not trusted).
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
        _ultralytics_offline()
        model = _detection_model(load_checkpoint(path, trust_pickle), path)
        return DetectorModel(model, class_names_of(model), STATUS_OFFICIAL, path)
    places = ", ".join(str(p) for p in looked)
    if not allow_random:
        raise WeightsError(
            f"detector weights {text!r} not found (looked in: {places}). Nothing is "
            f"downloaded here: run the `models` command (ros2 run aria_perception models) "
            f"on a machine with internet and copy the file to {search_dir or models_dir()} "
            f"(or set ${MODELS_ENV}; a bare file name is looked up there only, never in the "
            f"working directory), give a path to it, or set allow_random_weights: true to run "
            f"with random weights"
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


def _detection_model(checkpoint: Any, path: Path) -> torch.nn.Module:
    """The network of a loaded Ultralytics checkpoint, fp32 and in eval mode.

    What Ultralytics' own loader does after unpickling (the EMA weights if saved, a stride for a
    model without one, in-place activations), without its downloads and evaluated strings.
    """
    model = checkpoint.get("ema") if isinstance(checkpoint, dict) else None
    if model is None and isinstance(checkpoint, dict):
        model = checkpoint.get("model")
    if not isinstance(model, torch.nn.Module):
        raise WeightsError(f"detector weights {path} hold no Ultralytics model")
    if checkpoint.get("modelopt"):
        raise WeightsError(f"detector weights {path}: quantization-aware training checkpoint")
    model = model.float()
    model.pt_path = str(path)
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = True
        elif isinstance(module, torch.nn.Upsample) and not hasattr(
            module, "recompute_scale_factor"
        ):
            module.recompute_scale_factor = None  # saved before torch 1.11
    return model.eval()


def _packaged_config(name: str) -> str:
    """Where ultralytics ships the model config ``name`` (never the working directory).

    Ultralytics names a config file without the scale letter (``yolov8n.yaml`` is
    ``yolov8.yaml`` at scale n) and reads the letter from the name it is given: the result is
    that name in the directory of the shipped file.
    """
    from ultralytics.utils import ROOT

    stem, suffix = os.path.splitext(name)
    unscaled = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem) + suffix
    for file_name in (name, unscaled):
        found = sorted((ROOT / "cfg" / "models").rglob(file_name))
        if found:
            return str(found[0].parent / name)
    raise WeightsError(f"ultralytics ships no model config {name!r}")


def _build_from_config(config: str) -> torch.nn.Module:
    """Build a randomly initialised model from an Ultralytics model config (``*.yaml``).

    A bare name is a config that ultralytics ships (it would look in the working directory
    first, and it evaluates strings of a config); a path is used as given.
    """
    _ultralytics_offline()
    from ultralytics.nn.tasks import DetectionModel

    try:
        path = _packaged_config(config) if is_bare_name(config) else config
        return DetectionModel(cfg=path, verbose=False)
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
