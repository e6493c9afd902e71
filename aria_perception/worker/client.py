"""A camera's handle on a shared worker (see :mod:`aria_perception.worker.registry`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aria_perception.optics import Rectification
from aria_perception.records import EngineInfo, Thresholds, WorkerState
from aria_perception.worker.channel import CameraChannel
from aria_perception.worker.settings import WorkerStats
from aria_perception.worker.shared import SharedWorker
from aria_perception.worker.supervisor import camera_stats

__all__ = ["WorkerClient"]


class WorkerClient:
    """One camera of a shared worker: its frames in, its results out, its counters.

    Made by :func:`~aria_perception.worker.registry.acquire`. Its frames take the path of a
    :class:`~aria_perception.worker.supervisor.Supervisor`'s (its own slots and lock); its
    results and errors come to the callbacks it was acquired with, on the worker's supervisor
    thread. :meth:`close` takes the camera off the worker (the last camera stops it).

    Args:
        worker: The shared worker.
        channel: The camera's part of it.
        release: Called once by :meth:`close`.
    """

    def __init__(
        self, worker: SharedWorker, channel: CameraChannel, release: Callable[[], None]
    ) -> None:
        self._worker = worker
        self._channel = channel
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    @property
    def camera(self) -> str:
        """The camera's key in the worker."""
        return self._channel.name

    @property
    def state(self) -> WorkerState:
        """Where the shared worker is in its life."""
        return self._worker.state

    @property
    def info(self) -> EngineInfo | None:
        """What the engine reported at start-up."""
        return self._worker.info

    def submit(
        self,
        frame: Any,
        encoding: str,
        tag: Any = None,
        *,
        want_depth: bool = True,
        size: tuple[int, int] | None = None,
        want_rect: bool = False,
    ) -> int | None:
        """Hand a frame of the camera to the worker (see :meth:`Supervisor.submit`)."""
        return self._channel.submit(frame, encoding, tag, want_depth, size, want_rect)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Change the camera's detector thresholds (kept across worker restarts).

        Raises:
            ConfigError: a class name is unknown to the model.
        """
        info = self._worker.info
        if info is not None:
            thresholds.check_classes(info.class_names)
        self._channel.dispatch.set_thresholds(thresholds)

    def set_rectification(self, rectification: Rectification) -> None:
        """Rectify the camera's frames from the next one on (kept across worker restarts)."""
        self._channel.dispatch.set_rectification(rectification)

    def stats(self) -> WorkerStats:
        """The camera's counters, with the shared worker's state, restarts, pid and cameras."""
        return camera_stats(self._worker, self._channel)

    def debug(self, action: str, kind: str = "", message: str = "") -> None:
        """Inject a fault into the shared worker (for tests): every camera sees it."""
        self._worker.debug(action, kind, message)

    def close(self) -> None:
        """Take the camera off the worker (idempotent); its waiting frames are dropped."""
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()
