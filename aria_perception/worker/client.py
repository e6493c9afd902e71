"""A camera's handle on a shared worker (see :mod:`aria_perception.worker.registry`)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from aria_perception.worker.camera_handle import CameraHandle
from aria_perception.worker.channel import CameraChannel
from aria_perception.worker.shared import SharedWorker

__all__ = ["WorkerClient"]


class WorkerClient(CameraHandle):
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
        super().__init__(worker, channel)
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    @property
    def camera(self) -> str:
        """The camera's key in the worker."""
        return self._channel.name

    def close(self) -> None:
        """Take the camera off the worker (idempotent); its waiting frames are dropped."""
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()
