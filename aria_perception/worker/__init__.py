"""The inference worker process: shared-memory slots, protocol, child and supervisor.

The parent side (this package's public names) never imports torch; the child builds the engine.

Modules: :mod:`~.supervisor` (the public :class:`Supervisor` and its thread),
:mod:`~.lifecycle` (start, loss, restart, stop of worker processes), :mod:`~.process` (one
worker process), :mod:`~.restart` (restart policy), :mod:`~.dispatch` and :mod:`~.ledger`
(which job is where), :mod:`~.watchdog` (when the worker counts as hung or frozen),
:mod:`~.slots` (shared memory), :mod:`~.frame_copy` (a frame into its slot, on a few threads),
:mod:`~.protocol` (pipe messages),
:mod:`~.child` (the worker's side), :mod:`~.engine_api` (what the worker needs of an engine),
:mod:`~.result` and :mod:`~.settings`. Several cameras share one worker: :mod:`~.registry` (a
worker per engine key in the process), :mod:`~.client` (a camera's handle; it and
:class:`Supervisor` are a :class:`~.camera_handle.CameraHandle`), :mod:`~.shared`
(the worker and its thread), :mod:`~.channel` (a camera's slots, jobs and callbacks),
:mod:`~.child_camera` (a camera in the worker process).

Words: a *frame* is one image (pixels, or compressed bytes) and ``frame_id`` the id
``submit`` gives it; a *job* is the parent's record of a submitted frame
(:class:`~.ledger.Job`); a *request* is the message asking the worker to process it
(:class:`~.protocol.FrameRequest`), answered by a ``Result``, ``Skipped`` or ``FrameFailed``.
"""

from aria_perception.worker.client import WorkerClient
from aria_perception.worker.engine_api import InferenceEngine
from aria_perception.worker.registry import REGISTRY, WorkerRegistry, acquire, worker_key
from aria_perception.worker.settings import DEFAULT_ENGINE_FACTORY, WorkerSettings, WorkerStats
from aria_perception.worker.shared import SharedWorker
from aria_perception.worker.supervisor import FrameResult, FrameTiming, Supervisor

__all__ = [
    "DEFAULT_ENGINE_FACTORY",
    "FrameResult",
    "FrameTiming",
    "InferenceEngine",
    "REGISTRY",
    "SharedWorker",
    "Supervisor",
    "WorkerClient",
    "WorkerRegistry",
    "WorkerSettings",
    "WorkerStats",
    "acquire",
    "worker_key",
]
