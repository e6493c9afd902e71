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


class PoisonFrameError(WorkerDiedError, FrameError):
    """The worker died while it ran this frame: the frame is refused, never retried.

    Both a :class:`WorkerDiedError` (the process is gone and is restarted) and a
    :class:`FrameError` (the frame is counted rejected, and poison): a frame that crashes a
    decoder or the engine would crash every worker it is given to.
    """


#: Longest text of a sender's data quoted in a message or a log line (see :func:`shorten`).
MAX_QUOTED_CHARS = 200


def shorten(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with "…" and the original length.

    Error messages quote what a sender sent (an encoding string, a format, a decoder's complaint
    about the bytes); a log line or a diagnostics message must stay short whatever that was.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} chars)"
