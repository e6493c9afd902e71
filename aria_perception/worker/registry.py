"""The process-wide registry of shared workers: one worker per engine key, a client per camera.

Nodes of one process (``perception_container``) whose engines can share hand their frames to
one worker: :func:`acquire` returns a :class:`~aria_perception.worker.client.WorkerClient` for a
camera; the first client of a key starts the worker (:class:`~.shared.SharedWorker`), the others
join it, and the last one to close stops it (worker gone, every segment unlinked).

**The key** (:func:`worker_key`) is the :class:`~aria_perception.records.EngineConfig` with what
is per camera set to its default: ``rotation``, the thresholds (``confidence``, ``iou``,
``classes``) and the rectified pinhole (``rectify_width``, ``rectify_height``,
``rectify_focal_px``; the calibration travels per camera anyway), and the
:class:`~aria_perception.worker.settings.WorkerSettings` without the slot sizes
(``max_pixels``, ``max_encoded_bytes``: each camera's segment is sized by its own). Everything
else must be equal: device (as given: ``auto`` and ``cuda:0`` are two keys), precision, the
networks, their weights, sizes and switches, ``depth.frame_skip``, ``input.rectify`` on or off,
streams and graphs, and the worker's timeouts, restart policy and engine factory.

Thread-safe: nodes load and unload at run time in the container. A key's start (seconds) holds
only that key: a node of another device starts its worker meanwhile.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from aria_perception.records import EngineConfig, Thresholds, WorkerState
from aria_perception.worker.channel import CameraChannel, ErrorCallback, ResultCallback
from aria_perception.worker.client import WorkerClient
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.shared import SharedWorker

__all__ = ["REGISTRY", "WorkerKey", "WorkerRegistry", "acquire", "worker_key"]

_CONFIG = EngineConfig()
_SETTINGS = WorkerSettings()


@dataclass(frozen=True)
class WorkerKey:
    """What cameras must have in common to share a worker (see the module docstring).

    Attributes:
        config: The engine configuration the shared worker is built from.
        settings: The worker settings it runs with.
    """

    config: EngineConfig
    settings: WorkerSettings


def worker_key(config: EngineConfig, settings: WorkerSettings) -> WorkerKey:
    """The key of a camera's worker: its configuration without what is per camera."""
    shared = config.replace(
        rotation=_CONFIG.rotation,
        confidence=_CONFIG.confidence,
        iou=_CONFIG.iou,
        classes=_CONFIG.classes,
        rectify_width=_CONFIG.rectify_width,
        rectify_height=_CONFIG.rectify_height,
        rectify_focal_px=_CONFIG.rectify_focal_px,
    )
    sizes = {"max_pixels": _SETTINGS.max_pixels, "max_encoded_bytes": None}
    return WorkerKey(shared, WorkerSettings(**{**vars(settings), **sizes}))


@dataclass
class _Entry:
    """One key's worker and how many clients it has."""

    key: WorkerKey
    lock: threading.Lock = field(default_factory=threading.Lock)
    worker: SharedWorker | None = None
    clients: int = 0
    frame_ids: itertools.count = field(default_factory=lambda: itertools.count(1))


class WorkerRegistry:
    """Shared workers by key (see the module docstring); a process uses :data:`REGISTRY`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[WorkerKey, _Entry] = {}

    def workers(self) -> int:
        """How many shared workers there are now."""
        with self._lock:
            return sum(entry.worker is not None for entry in self._entries.values())

    def acquire(
        self,
        camera: str,
        config: EngineConfig,
        settings: WorkerSettings,
        *,
        on_result: ResultCallback,
        on_error: ErrorCallback | None = None,
    ) -> WorkerClient:
        """A client for ``camera``: on the running worker of its key, or on one started now.

        Args:
            camera: The camera's key (unique among the worker's cameras, e.g. the node's full
                name).
            config: The camera's engine configuration (its rotation and thresholds are its own).
            settings: The camera's worker settings (its ``max_pixels`` sizes its slots).
            on_result: Called with each of the camera's results (the worker's thread).
            on_error: Called for the camera's failed frames and worker errors.

        Raises:
            WorkerStartError: the worker could not start (nothing is left behind).
            WorkerError: ``camera`` is already a camera of that worker.
        """
        key = worker_key(config, settings)
        while True:
            with self._lock:
                entry = self._entries.setdefault(key, _Entry(key))
            with entry.lock:
                if self._entries.get(key) is not entry:
                    continue  # its last client left meanwhile: a fresh entry
                return self._join(entry, camera, config, settings, on_result, on_error)

    def _join(
        self,
        entry: _Entry,
        camera: str,
        config: EngineConfig,
        settings: WorkerSettings,
        on_result: ResultCallback,
        on_error: ErrorCallback | None,
    ) -> WorkerClient:
        """Add the camera to the entry's worker, starting it first if none runs (entry locked)."""
        first = entry.worker is None
        worker = entry.worker or SharedWorker(entry.key.config, entry.key.settings)
        channel = CameraChannel(
            camera, config, settings, config.rotation, entry.frame_ids, on_result, on_error
        )
        channel.dispatch.set_thresholds(Thresholds(config.confidence, config.iou, config.classes))
        try:
            worker.add(channel)
            if first:
                worker.start()
        except BaseException:
            worker.remove(channel)
            if first:
                worker.stop()
                self._forget(entry)
            raise
        entry.worker = worker
        entry.clients += 1
        return WorkerClient(worker, channel, lambda: self._release(entry, channel))

    def _release(self, entry: _Entry, channel: CameraChannel) -> None:
        """A client closes: its camera leaves; the last one stops the worker."""
        with entry.lock:
            worker = entry.worker
            if worker is None:
                return
            worker.remove(channel)
            entry.clients -= 1
            if entry.clients > 0:
                return
            entry.worker = None
            worker.stop()
            assert worker.state is WorkerState.STOPPED
            self._forget(entry)

    def _forget(self, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]


#: The registry of this process.
REGISTRY = WorkerRegistry()


def acquire(
    camera: str,
    config: EngineConfig,
    settings: WorkerSettings,
    *,
    on_result: ResultCallback,
    on_error: ErrorCallback | None = None,
) -> WorkerClient:
    """:meth:`WorkerRegistry.acquire` of this process's :data:`REGISTRY`."""
    return REGISTRY.acquire(camera, config, settings, on_result=on_result, on_error=on_error)
