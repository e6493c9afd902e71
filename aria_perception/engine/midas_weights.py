"""Finding and loading the MiDaS small weights (``depth.weights``), timm style.

resolve the file -> ``torch.load(weights_only=True)`` -> the pure :func:`checkpoint_filter_fn`
-> ``load_state_dict(strict=True)``. No silent fallback: a missing file is a
:class:`~aria_perception.errors.WeightsError` saying what to do, unless random weights are
allowed, and then the model stays randomly initialised and a loud warning is logged. Nothing is
ever downloaded here (the ``models`` command does that on a machine with internet).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch

from aria_perception.engine.midas import MIDAS_SMALL_CFG, MidasPretrainedCfg, MidasSmall
from aria_perception.errors import WeightsError

WeightsStatus = Literal["official", "random"]

_LOG = logging.getLogger(__name__)

# Containers seen around state_dicts: MiDaS's own training saves {"model": ..., "optimizer":
# ...}, Lightning and timm's train script save {"state_dict": ...}.
_CONTAINER_KEYS = ("state_dict", "model")
_WRAPPER_PREFIX = "module."  # DataParallel / DistributedDataParallel
_MAX_LISTED_KEYS = 10


def hub_checkpoint_dir() -> Path:
    """Where torch hub keeps downloaded checkpoints (``$TORCH_HOME/hub/checkpoints``).

    ``torch.hub.get_dir()`` follows torch's rules (``torch.hub.set_dir``, ``$TORCH_HOME``,
    ``$XDG_CACHE_HOME/torch``, ``~/.cache/torch``) and downloads nothing.
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def midas_weights_candidates(
    weights: str, cfg: MidasPretrainedCfg = MIDAS_SMALL_CFG
) -> tuple[Path, ...]:
    """The files ``depth.weights`` may mean, in the order they are tried.

    Args:
        weights: ``""`` for the torch hub cache, a directory holding an official file, or the
            path of a checkpoint file.
        cfg: the pretrained config naming the official files.

    Returns:
        Candidate paths: every official file name in the hub cache (``""``) or in the given
        directory, else the given path alone.
    """
    if not weights:
        return tuple(hub_checkpoint_dir() / name for name in cfg.file_names)
    path = Path(weights).expanduser()
    if path.is_dir():
        return tuple(path / name for name in cfg.file_names)
    return (path,)


def resolve_midas_weights(weights: str, cfg: MidasPretrainedCfg = MIDAS_SMALL_CFG) -> Path | None:
    """The first existing file among :func:`midas_weights_candidates`, or None."""
    for candidate in midas_weights_candidates(weights, cfg):
        if candidate.is_file():
            return candidate
    return None


def missing_weights_message(weights: str, cfg: MidasPretrainedCfg = MIDAS_SMALL_CFG) -> str:
    """What to tell the user when no weights file was found for ``weights``."""
    looked = ", ".join(str(path) for path in midas_weights_candidates(weights, cfg))
    if weights:
        where = f"copy it to {Path(weights).expanduser()}"
    else:
        where = f"copy it into {hub_checkpoint_dir()}, or set depth.weights to its path"
    return (
        f"MiDaS small weights not found (depth.weights={weights!r}); looked for: {looked}. "
        f"Fetch {cfg.checkpoints[0].file_name} on a machine with internet with the `models` "
        f"command (ros2 run aria_perception models), or from {cfg.checkpoints[0].url}, and "
        f"{where}. To run without them (tests, benchmarks: the depth is meaningless), set "
        "allow_random_weights: true."
    )


def load_checkpoint(path: str | Path) -> Mapping[str, object]:
    """Read a checkpoint with ``torch.load(map_location="cpu", weights_only=True)``.

    Raises:
        WeightsError: the file cannot be read or holds more than tensors and plain containers.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad or foreign file
        raise WeightsError(f"cannot read MiDaS weights {path}: {err}") from err
    if not isinstance(checkpoint, Mapping):
        raise WeightsError(
            f"MiDaS weights {path} hold a {type(checkpoint).__name__}, not a state_dict"
        )
    return checkpoint


def _limited(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = len(keys) - _MAX_LISTED_KEYS
    return shown + (f" (and {more} more)" if more > 0 else "")


def checkpoint_filter_fn(
    state_dict: Mapping[str, object], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Turn what a checkpoint file holds into a state_dict for ``model`` (pure: copies nothing).

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` containers, strips a ``module.``
    prefix (DataParallel), and fills BatchNorm ``num_batches_tracked`` counters when they are
    all that a checkpoint lacks (PyTorch before 0.4.1 did not save them; inference ignores
    them).

    Args:
        state_dict: what :func:`load_checkpoint` returned.
        model: the model the result is for.

    Returns:
        A dict of tensors; keys that do not fit ``model`` are left for the strict load to
        report.

    Raises:
        WeightsError: no tensors at all where a state_dict was expected.
    """
    unwrapped: Mapping[str, object] = state_dict
    # A container holds the state_dict under a key and no tensors beside it.
    while True:
        inner = next(
            (unwrapped[key] for key in _CONTAINER_KEYS if isinstance(unwrapped.get(key), Mapping)),
            None,
        )
        if inner is None or any(isinstance(v, torch.Tensor) for v in unwrapped.values()):
            break
        unwrapped = inner  # type: ignore[assignment]
    tensors = {k: v for k, v in unwrapped.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        top_level = _limited(sorted(map(str, state_dict)))
        raise WeightsError(f"no tensors in the checkpoint (top-level keys: {top_level})")
    if all(k.startswith(_WRAPPER_PREFIX) for k in tensors):
        tensors = {k[len(_WRAPPER_PREFIX) :]: v for k, v in tensors.items()}
    own = model.state_dict()
    missing = [key for key in own if key not in tensors]
    # Only for an otherwise complete checkpoint: for a foreign file the error lists every key.
    if missing and all(key.endswith(".num_batches_tracked") for key in missing):
        for key in missing:
            tensors[key] = torch.zeros_like(own[key])
    return tensors


def load_midas_state_dict(model: MidasSmall, state_dict: Mapping[str, object]) -> None:
    """Load ``state_dict`` into ``model`` strictly, after :func:`checkpoint_filter_fn`.

    Raises:
        WeightsError: keys are missing or unexpected, or a shape differs; the message lists them.
    """
    tensors = checkpoint_filter_fn(state_dict, model)
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    mismatched = [
        f"{k} {tuple(tensors[k].shape)} (model: {tuple(own[k].shape)})"
        for k in own
        if k in tensors and tensors[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys ({len(missing)}): {_limited(missing)}")
        if unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {_limited(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches ({len(mismatched)}): {_limited(mismatched)}")
        raise WeightsError(
            "the weights do not fit MiDaS v2.1 small (is this a MiDaS small checkpoint?); "
            + "; ".join(problems)
        )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"the weights do not fit MiDaS v2.1 small: {err}") from err


def load_midas_weights(
    model: MidasSmall,
    weights: str = "",
    *,
    allow_random_weights: bool = False,
    cfg: MidasPretrainedCfg = MIDAS_SMALL_CFG,
) -> tuple[MidasSmall, WeightsStatus]:
    """Load ``depth.weights`` into ``model``.

    Args:
        model: a :class:`MidasSmall` (on any device; the weights are copied in place).
        weights: ``""`` for the torch hub cache file (``midas_v21_small_256.pt`` or
            ``model-small-70d6b9c8.pt``), a directory holding one of them, or a file path.
        allow_random_weights: when no file is found, keep the random initialisation (with a
            warning) instead of raising.
        cfg: the pretrained config naming the official files.

    Returns:
        ``(model, "official")`` when weights were loaded, ``(model, "random")`` otherwise.

    Raises:
        WeightsError: no file found (and random weights not allowed), or the file is unreadable
            or does not fit the model. A file that exists but is bad is an error even when
            random weights are allowed.
    """
    path = resolve_midas_weights(weights, cfg)
    if path is None:
        message = missing_weights_message(weights, cfg)
        if not allow_random_weights:
            raise WeightsError(message)
        _LOG.warning(
            "RANDOM WEIGHTS: MiDaS small runs randomly initialised because allow_random_weights "
            "is true; its depth output is meaningless (fine for tests and benchmarks only). %s",
            message,
        )
        return model, "random"
    load_midas_state_dict(model, load_checkpoint(path))
    _LOG.info("MiDaS small weights loaded from %s", path)
    return model, "official"


#: Seed of the random MiDaS weights (``allow_random_weights`` without a weights file).
RANDOM_WEIGHTS_SEED = 0


def create_midas_small(
    weights: str = "", *, allow_random_weights: bool = False
) -> tuple[MidasSmall, WeightsStatus]:
    """Build :class:`MidasSmall` on the CPU, load ``weights`` and put it in eval mode.

    See :func:`load_midas_weights` for ``weights``, ``allow_random_weights`` and errors. Move the
    result to its device and dtype afterwards (``model.to(device, dtype)``).
    """
    model = MidasSmall()
    model, status = load_midas_weights(model, weights, allow_random_weights=allow_random_weights)
    if status == "random":
        # The same random weights in every process: results repeat from run to run, and no run
        # draws one of the inits (about 3 in 100) whose final ReLU outputs zero everywhere,
        # which would make depth outputs and their tests depend on luck.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model = MidasSmall()
    return model.eval(), status


__all__ = [
    "RANDOM_WEIGHTS_SEED",
    "WeightsStatus",
    "checkpoint_filter_fn",
    "create_midas_small",
    "hub_checkpoint_dir",
    "load_checkpoint",
    "load_midas_state_dict",
    "load_midas_weights",
    "midas_weights_candidates",
    "missing_weights_message",
    "resolve_midas_weights",
]
