"""``worker.compile``: the engine's steps through ``torch.compile`` before CUDA-graph capture.

Inductor (default mode, no autotuning) fuses each network's convolutions with their
activations and writes Triton kernels for the rest, and does the same for the fixed-shape work
around the networks (preprocessing, letterbox, depth upsampling, the fixed-shape NMS, box depth
and packing), whose many small kernels cost more than their arithmetic. The engine then
captures those kernels in its CUDA graphs as it captures the eager ones. On the H200 the engine
goes from 2.9 to about 1.5 ms a frame (docs/performance.md).

A step is compiled for an input shape the first time it sees that shape (the first frame of a
camera; ``dynamic=False``: one specialised graph per shape). That takes tens of seconds, so it
is logged when it starts and ends; inductor keeps what it compiled in a cache directory
(``worker.compile_cache_dir``, default ``~/.cache/aria_perception/inductor``), and a later start
reuses it. A compile that fails leaves that step uncompiled for good, with a warning that names
the reason: the engine keeps working as without the option.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BACKEND",
    "CACHE_ENV",
    "CompiledStep",
    "compile_wanted",
    "default_cache_dir",
    "use_cache_dir",
]

_LOG = logging.getLogger(__name__)

#: torch.compile's backend for the engine's steps (tests trace with "eager": dynamo only).
BACKEND = "inductor"
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


class CompiledStep:
    """A function that runs compiled once its compile for an input key has succeeded.

    Called like the function. The first call with a new key (the shapes of the tensor
    arguments, unless ``key`` says otherwise) compiles, logged and timed; an exception from that
    first compiled call falls back to the uncompiled function for every later call, with one
    warning naming the reason.

    Args:
        fn: the network, or the step around it, to compile.
        name: how the log calls it ("MiDaS small", "YOLO post-processing").
        backend: ``torch.compile``'s backend (None: :data:`BACKEND`).
        key: what makes a call new (a specialised compile) from the call's arguments.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        backend: Any = None,
        key: Callable[..., Hashable] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self._compiled = torch.compile(fn, backend=backend or BACKEND, dynamic=False)
        self._key = key or _shapes
        self._keys: set[Hashable] = set()
        self.failure: str | None = None
        #: Called about every second while a compile runs (the engine's progress: a worker that
        #: compiles for a minute is busy, not hung).
        self.ticker: Callable[[], None] | None = None

    @property
    def compiled_keys(self) -> frozenset[Hashable]:
        """Keys (input shapes) compiled so far."""
        return frozenset(self._keys)

    def __call__(self, *args: Any) -> Any:
        """Run ``fn``: compiled when it can be, else as it is."""
        if self.failure is not None:
            return self.fn(*args)
        key = self._key(*args)
        if key in self._keys:
            return self._compiled(*args)
        _LOG.info(
            "compiling %s for %s (first frame of this size; can take a minute; cached in %s)",
            self.name,
            key,
            os.environ.get(CACHE_ENV, "inductor's default directory"),
        )
        started = time.perf_counter()
        try:
            with _Ticking(self.ticker):
                out = self._compiled(*args)
        except Exception as err:  # noqa: BLE001 - any compile failure means: run uncompiled
            self.failure = _reason(err)
            _LOG.warning(
                "torch.compile of %s failed, it runs uncompiled from now on: %s",
                self.name,
                self.failure,
            )
            return self.fn(*args)
        self._keys.add(key)
        _LOG.info("compiled %s in %.1f s", self.name, time.perf_counter() - started)
        return out


class _Ticking:
    """Calls ``tick`` from a thread of its own about every second while the block runs."""

    def __init__(self, tick: Callable[[], None] | None, period_s: float = 1.0) -> None:
        self._tick = tick
        self._period_s = period_s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if self._tick is not None:
            self._thread = threading.Thread(target=self._run, name="compile-ticker", daemon=True)
            self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._period_s):
            self._tick()  # type: ignore[misc]


def _shapes(*args: Any) -> tuple:
    """The shapes of the tensor arguments and the plain values among the others."""
    return tuple(
        tuple(a.shape) if isinstance(a, torch.Tensor) else a
        for a in args
        if isinstance(a, (torch.Tensor, int, float, str, tuple))
    )


def _reason(err: BaseException) -> str:
    """One line: the error and its first two lines (dynamo puts the backend's error second)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {' '.join(lines[:2])}"[:300]
