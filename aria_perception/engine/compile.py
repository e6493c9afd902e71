"""``worker.compile``: the two networks through ``torch.compile`` before CUDA-graph capture.

Inductor (default mode, no autotuning) fuses each network's convolutions with their
activations and writes Triton kernels for the rest; the engine then captures those kernels in
its CUDA graphs as it captures the eager ones. On the H200 this takes MiDaS small at 256x256
from 0.96 to 0.64 ms and YOLOv8n at 640x640 from 0.93 to 0.46 ms (docs/performance.md).

A network is compiled for an input shape the first time it sees that shape (the first frame of
a camera; ``dynamic=False``: one specialised graph per shape). That takes tens of seconds, so it
is logged when it starts and ends; inductor keeps what it compiled in a cache directory
(``worker.compile_cache_dir``, default ``~/.cache/aria_perception/inductor``), and a later start
reuses it. A compile that fails leaves the network uncompiled for good, with a warning that
names the reason: the engine keeps working as without the option.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["CACHE_ENV", "CompiledNetwork", "compile_wanted", "default_cache_dir", "use_cache_dir"]

_LOG = logging.getLogger(__name__)

#: The variable inductor reads for its cache directory (Triton's cache goes inside it).
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_wanted(mode: str, is_cuda: bool) -> bool:
    """Whether ``worker.compile`` = ``mode`` compiles on this device (``auto``: CUDA only)."""
    return mode == "on" or (mode == "auto" and is_cuda)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/aria_perception/inductor`` (``~/.cache/...`` without the variable)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aria_perception" / "inductor"


def use_cache_dir(path: str) -> Path:
    """Point inductor's on-disk cache at ``path`` (``""``: :func:`default_cache_dir`).

    Set before the first compile of the process (the worker calls it while building the
    engine). A directory that cannot be created is reported and inductor keeps its own default.
    """
    target = Path(path).expanduser() if path else default_cache_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _LOG.warning(
            "compile cache %s cannot be created (%s); using inductor's default", target, err
        )
        return target
    os.environ[CACHE_ENV] = str(target)
    return target


class CompiledNetwork:
    """A network that runs compiled once its compile for an input shape has succeeded.

    Called like the network. The first call with a new input shape compiles (logged, timed);
    any exception from that first compiled call falls back to the uncompiled network for every
    later call, with one warning naming the reason.

    Args:
        network: the module (or callable) to compile.
        name: how the log calls it ("MiDaS small", "YOLO").
        backend: ``torch.compile``'s backend ("inductor"; tests pass their own).
    """

    def __init__(self, network: Callable[..., Any], name: str, backend: Any = "inductor") -> None:
        self.network = network
        self.name = name
        self._compiled = torch.compile(network, backend=backend, dynamic=False)
        self._shapes: set[tuple[int, ...]] = set()
        self.failure: str | None = None

    @property
    def compiled_shapes(self) -> frozenset[tuple[int, ...]]:
        """Input shapes compiled so far."""
        return frozenset(self._shapes)

    def __call__(self, x: torch.Tensor) -> Any:
        """Run the network on ``x``: compiled when it can be, else as it is."""
        if self.failure is not None:
            return self.network(x)
        shape = tuple(x.shape)
        if shape in self._shapes:
            return self._compiled(x)
        _LOG.info(
            "compiling %s for input %s (first frame of this shape; can take a minute; cached in "
            "%s)",
            self.name,
            "x".join(map(str, shape)),
            os.environ.get(CACHE_ENV, "inductor's default directory"),
        )
        started = time.perf_counter()
        try:
            out = self._compiled(x)
        except Exception as err:  # noqa: BLE001 - any compile failure means: run uncompiled
            self.failure = _reason(err)
            _LOG.warning(
                "torch.compile of %s failed, it runs uncompiled from now on: %s",
                self.name,
                self.failure,
            )
            return self.network(x)
        self._shapes.add(shape)
        _LOG.info("compiled %s in %.1f s", self.name, time.perf_counter() - started)
        return out


def _reason(err: BaseException) -> str:
    """One line: the error and its first two lines (dynamo puts the backend's error second)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {' '.join(lines[:2])}"[:300]
