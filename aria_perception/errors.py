"""Errors of aria_perception, importable from both processes (no torch, no rclpy)."""

from __future__ import annotations


class AriaPerceptionError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AriaPerceptionError, ValueError):
    """A configuration value is out of range; the message names the parameter."""


class WeightsError(AriaPerceptionError):
    """Model weights are missing or do not fit the model."""


class FrameError(AriaPerceptionError, ValueError):
    """One input frame cannot be used (encoding, size, corrupt data); the node goes on."""


class EngineError(AriaPerceptionError):
    """The inference engine failed on something other than the frame (CUDA error, OOM)."""


class WorkerError(AriaPerceptionError):
    """The inference worker process failed."""


class WorkerStartError(WorkerError):
    """The worker did not become ready (timeout or an error while building the engine)."""


class WorkerDiedError(WorkerError):
    """The worker process exited or was killed while it was needed."""


class WorkerTimeoutError(WorkerError):
    """The worker did not answer a frame within ``worker.frame_timeout_s``."""
