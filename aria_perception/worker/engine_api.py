"""What the worker needs from an engine: the :class:`InferenceEngine` protocol.

The worker builds its engine from ``WorkerSettings.engine_factory`` (``"module:Name"``, called
with the :class:`~aria_perception.records.EngineConfig`) and uses exactly these members.
:class:`aria_perception.engine.engine.Engine` is the real implementation; test and benchmark
engines implement the same members. This module imports no torch.

With ``input.rectify`` the worker also uses two optional members, which other engines need not
have: ``set_rectification(rectification, camera)`` (a
:class:`~aria_perception.optics.Rectification` for the camera ``""``; sent once per calibration
change) and the ``rect_out`` keyword of ``process`` (a flat uint8 buffer for the rectified frame,
passed only when it is wanted; the engine returns a view of it in ``result.rectified``).

A worker shared by several cameras (see "Process model" in docs/design.md) uses more optional
members where the engine has them:

- the ``camera`` and ``rotation`` keywords of ``process`` (:func:`camera_keywords`): whose frame
  it is (the key of its rectification and of its plans) and its ``input.rotation``; an engine
  without them runs every frame with its configuration's rotation;
- ``progress``: an integer the engine raises as it goes through a frame (each stage); the
  worker's heartbeat reports it, and a worker whose count stands still while a frame is due
  counts as hung (a slow but advancing one does not);
- ``unregister_host_buffer(array)``: undo ``register_host_buffer`` for a camera that left, so
  its segment can be unmapped at once (without it the worker keeps the segment mapped);
- ``process_batch(items)``, used only with ``EngineConfig.batch_cameras``
  (``worker.batch_cameras``): the frames of several cameras that wait together, one
  :class:`~aria_perception.records.BatchItem` per camera (the arguments ``process`` would get,
  ``camera`` and ``rotation`` set only where ``process`` takes those keywords), all with the
  same thresholds (made the engine's once before the call). It returns, in item order, an
  ``EngineResult`` per item or the ``FrameError`` of an item whose frame cannot be used (the
  others still run); a ``FrameError`` raised for the whole call refuses all its frames, any
  other exception fails every frame of the call and ends the worker. Every frame of the call
  is announced as started first, so a crash in a batched call marks every frame of the batch
  (each camera's own poison frame). Without it, or with a single camera waiting, frames run
  one at a time through ``process`` (see :mod:`~aria_perception.worker.child_batch`).

An engine's detector thresholds are switched to a camera's with ``set_thresholds`` before each
of its frames, where they differ from the last frame's.
"""

from __future__ import annotations

import inspect
from typing import Protocol, runtime_checkable

import numpy as np

from aria_perception.errors import ConfigError
from aria_perception.records import EngineInfo, EngineResult, Thresholds

#: The optional keywords of ``process`` that carry a camera's own settings.
CAMERA_KEYWORDS = frozenset({"camera", "rotation"})
#: The members the worker uses, in the order it first uses them.
MEMBERS = ("info", "set_thresholds", "register_host_buffer", "process", "memory_mb", "close")


@runtime_checkable
class InferenceEngine(Protocol):
    """An engine the worker process can run.

    Attributes:
        info: What the engine is (device, precision, class names, weights); read once it is
            built and sent to the parent.
    """

    info: EngineInfo

    def process(
        self,
        frame: np.ndarray,
        encoding: str,
        *,
        want_depth: bool,
        depth_out: np.ndarray | None,
    ) -> EngineResult:
        """Run the engine on one frame.

        Args:
            frame: (H, W, C) or (H, W) uint8 pixels in ``encoding``, or 1-D uint8 compressed
                bytes (jpeg, png), a view of the worker's input slot.
            encoding: rgb8, bgr8, mono8, rgba8, bgra8, jpeg or png.
            want_depth: Whether the full-resolution depth map is wanted.
            depth_out: Where to write the depth map (``want_depth`` only, else ``None``): an
                (H, W) float32 view of the output slot for raw frames, the flat float32 slot
                for compressed ones. An engine may ignore it and return its own array; it is
                then copied into the slot.

        Raises:
            FrameError: the frame cannot be used; the worker goes on.
            Exception: anything else ends the worker, which is restarted.
        """
        ...

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Apply detector thresholds (ConfigError for class names the model lacks)."""
        ...

    def register_host_buffer(self, array: np.ndarray) -> bool:
        """Page-lock ``array`` (the whole shared-memory segment) for DMA; False if not done."""
        ...

    def memory_mb(self) -> tuple[float, float]:
        """(current, peak) device memory in MB (0, 0 without a GPU)."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...


def missing_members(engine: object) -> list[str]:
    """The members of :class:`InferenceEngine` that ``engine`` lacks or has not callable."""
    missing = []
    for name in MEMBERS:
        if not hasattr(engine, name):
            missing.append(name)
        elif name != "info" and not callable(getattr(engine, name)):
            missing.append(name)
    return missing


def check_engine(engine: object, factory: str) -> InferenceEngine:
    """``engine`` if it implements :class:`InferenceEngine`.

    Args:
        engine: What the factory returned.
        factory: The factory's ``"module:Name"``, for the message.

    Raises:
        ConfigError: a member is missing (named), or ``info`` is not an ``EngineInfo``.
    """
    missing = missing_members(engine)
    if missing or not isinstance(engine, InferenceEngine):
        raise ConfigError(
            f"engine factory {factory!r}: {type(engine).__name__} lacks "
            f"{', '.join(missing)} of the InferenceEngine protocol "
            "(aria_perception.worker.engine_api)"
        )
    if not isinstance(engine.info, EngineInfo):
        raise ConfigError(
            f"engine factory {factory!r}: {type(engine).__name__}.info must be an EngineInfo, "
            f"got {type(engine.info).__name__}"
        )
    return engine


def camera_keywords(engine: object) -> frozenset[str]:
    """Which of :data:`CAMERA_KEYWORDS` ``engine.process`` accepts."""
    try:
        parameters = inspect.signature(engine.process).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError, AttributeError):
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return CAMERA_KEYWORDS
    return CAMERA_KEYWORDS & frozenset(parameters)
