"""Ultralytics detection checkpoints loaded without running code from the file.

A ``.pt`` checkpoint is a pickle, and unpickling one with ``torch.load(weights_only=False)``
(what Ultralytics does) runs whatever the file names. Here it is ``torch.load(weights_only=True)``
with an explicit allowlist, in force only during the load:

- :data:`LAYER_CLASSES`: the layers of YOLOv8, YOLO11 and YOLOv5u detection networks. They are
  rebuilt the way pickle rebuilds objects (``__new__``, then their saved state), never called:
  a pickle that calls one is refused before anything is unpickled (:func:`pickle_calls`), since
  a constructor runs code (``DetectionModel``'s parses a model config and evaluates strings of
  it).
- What checkpoints keep beside the network (training arguments, metrics): Ultralytics'
  ``IterableSimpleNamespace``, numpy scalars and dtypes, paths, and ``getattr`` restricted to a
  layer's ``forward*`` methods (how a bound or class method is pickled).

Anything else is a :class:`~aria_perception.errors.WeightsError` naming what the file needs,
unless the user trusts the file (``detector.trust_pickle``): then it is a full unpickle.
"""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING  # Python 2 names, as torch maps them
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aria_perception.errors import WeightsError

__all__ = ["LAYER_CLASSES", "TRUST_HINT", "load_checkpoint", "pickle_calls"]

#: Layer classes of YOLOv8, YOLO11 and YOLOv5u detection networks, by module.
LAYER_CLASSES: dict[str, tuple[str, ...]] = {
    "ultralytics.nn.tasks": ("DetectionModel",),
    "ultralytics.nn.modules.head": ("Detect",),
    "ultralytics.nn.modules.conv": ("Concat", "Conv", "DWConv"),
    "ultralytics.nn.modules.block": (
        "Attention",
        "Bottleneck",
        "C2PSA",
        "C2f",
        "C3",
        "C3k",
        "C3k2",
        "DFL",
        "PSABlock",
        "SPPF",
    ),
    "torch.nn": (
        "BatchNorm2d",
        "Conv2d",
        "Identity",
        "MaxPool2d",
        "ModuleList",
        "Sequential",
        "SiLU",
        "Upsample",
    ),
}
TRUST_HINT = "if you trust it set detector.trust_pickle: true"

_MARK = object()
_STRINGS = ("STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
            "SHORT_BINUNICODE", "BINUNICODE8")  # fmt: skip
_GETS = ("GET", "BINGET", "LONG_BINGET")
_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


class _Global(str):
    """A name pushed by GLOBAL / STACK_GLOBAL (plain ``str`` items are string constants)."""


def _global(module: str, name: str) -> _Global:
    """The dotted name an unpickler resolves a global to (Python 2 names mapped)."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    return _Global(f"{IMPORT_MAPPING.get(module, module)}.{name}")


def pickle_calls(data: bytes) -> list[str | None]:
    """What a pickle calls while it is unpickled (REDUCE, OBJ, INST), in order.

    A stack machine over the opcodes that follows only names: each call is the dotted name of
    the global called, or None for something else (the result of an earlier call). Creating an
    object with ``__new__`` (NEWOBJ) and restoring its state (BUILD) are not calls.

    Raises:
        ValueError: the data is not a well-formed pickle.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    calls: list[str | None] = []
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in _PUTS or name == "MEMOIZE":
            memo[arg if name in _PUTS else len(memo)] = stack[-1]
            continue
        if name == "DUP":
            stack.append(stack[-1])
            continue
        popped = _pop(stack, op.stack_before)
        if name == "REDUCE" or name == "OBJ":
            callee = popped[0]
            calls.append(callee if isinstance(callee, _Global) else None)
        elif name == "INST":
            calls.append(_global(*arg.split(" ", 1)))
        if name == "MARK":
            stack.append(_MARK)
        elif name == "GLOBAL":
            stack.append(_global(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":  # a name only when both parts are string constants
            known = all(type(part) is str for part in popped)
            stack.append(_global(*popped) if known else None)
        elif name in _STRINGS:
            stack.append(arg if isinstance(arg, str) else None)
        elif name in _GETS:
            stack.append(memo.get(arg))
        else:
            stack.extend([None] * len(op.stack_after))
    return calls


def _pop(stack: list[Any], before: Sequence[pickletools.StackObject]) -> list[Any]:
    """Pop what an opcode takes (down to a mark where it takes one), bottom item first."""
    count = len(before)
    if pickletools.markobject in before:
        mark = len(stack) - 1
        while mark >= 0 and stack[mark] is not _MARK:
            mark -= 1
        above = stack[mark + 1 :]
        del stack[max(mark, 0) :]
        count = before.index(pickletools.markobject)
    else:
        above = []
    below = stack[len(stack) - count :] if count else []
    del stack[len(stack) - len(below) :]
    return [*below, *above]


def _pickles(path: Path) -> list[bytes]:
    """Every ``data.pkl`` of a torch zip checkpoint (torch reads the one of its first folder)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
            pickles = [archive.read(name) for name in names]
    except (zipfile.BadZipFile, OSError) as err:
        raise WeightsError(
            f"cannot load detector weights {path}: not a PyTorch zip checkpoint ({err})"
        ) from err
    if not pickles:
        raise WeightsError(f"cannot load detector weights {path}: no data.pkl in it")
    return pickles


def _allowlist() -> tuple[list[Any], set[str]]:
    """The entries for ``torch.serialization.safe_globals``, and the layers' dotted names."""
    import importlib
    import pathlib

    import numpy as np
    from ultralytics.utils import IterableSimpleNamespace

    layers = {
        getattr(importlib.import_module(m), c) for m, cs in LAYER_CLASSES.items() for c in cs
    }

    def forward_of(obj: object, name: str) -> object:
        owner = obj if isinstance(obj, type) else type(obj)
        if owner in layers and name.startswith("forward"):
            return getattr(obj, name)
        raise pickle.UnpicklingError(f"getattr({owner.__name__}, {name!r}) is not allowed")

    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar constructor (its module varies)
    namespace = IterableSimpleNamespace
    entries: list[Any] = [*layers, np.dtype, (forward_of, "builtins.getattr")]
    entries += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64)]
    entries += [(scalar, f"numpy.{core}.multiarray.scalar") for core in ("core", "_core")]
    entries += [
        (namespace, f"ultralytics.{m}.IterableSimpleNamespace") for m in ("utils", "yolo.utils")
    ]
    entries += [(pathlib.PosixPath, f"pathlib.{m}{kind}") for m in ("", "_local.")
                for kind in ("PosixPath", "WindowsPath")]  # fmt: skip
    return entries, {f"{c.__module__}.{c.__qualname__}" for c in layers}


def load_checkpoint(path: Path, trust_pickle: bool = False) -> Any:
    """What ``torch.save`` wrote to ``path``, unpickled without running code from the file.

    Args:
        path: the checkpoint.
        trust_pickle: unpickle everything (``weights_only=False``): code named in the file
            runs. Only for a file the user trusts (``detector.trust_pickle``).

    Raises:
        WeightsError: the file is not a checkpoint, or it needs code to load (and is not
            trusted); the message names what it needs.
    """
    if trust_pickle:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # unpickling raises whatever the file's code raises
            raise WeightsError(f"cannot load detector weights {path}: {err}") from err
    entries, layers = _allowlist()
    refused = {*layers, None}
    for data in _pickles(path):
        try:
            calls = pickle_calls(data)
        except ValueError as err:
            raise WeightsError(f"cannot load detector weights {path}: {err}") from err
        # The weights-only unpickler calls any allowlisted class: a layer's constructor runs
        # code. A call of what another call returned calls what no allowlist names.
        called = {call or "what another call returned" for call in calls if call in refused}
        if called:
            raise WeightsError(
                f"detector weights {path} needs arbitrary code to load (it calls "
                f"{', '.join(sorted(called))}); {TRUST_HINT}"
            )
    with torch.serialization.safe_globals(entries):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise WeightsError(
                f"detector weights {path} needs arbitrary code to load ({_needs(path, err)}); "
                f"{TRUST_HINT}"
            ) from err
        except Exception as err:  # torch raises many types for a bad or foreign file
            raise WeightsError(f"cannot load detector weights {path}: {err}") from err


def _needs(path: Path, err: Exception) -> str:
    """What a checkpoint that the weights-only unpickler refused needs, in words."""
    with contextlib.suppress(Exception):
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        if unsafe:
            return "it references " + ", ".join(sorted(unsafe))
    # torch wraps the unpickler's reason in advice: keep the first line after its label.
    text = str(err).rpartition("WeightsUnpickler error:")[2]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
