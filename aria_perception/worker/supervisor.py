"""Parent side of the worker: the public API and the supervisor thread.

This module never imports torch (nor does anything it imports): the node process stays free of
CUDA. The parts: :mod:`~aria_perception.worker.ledger` (which job is where),
:mod:`~aria_perception.worker.dispatch` (requests to the worker, thread-safe),
:mod:`~aria_perception.worker.process` (one worker process), :mod:`~aria_perception.worker.restart`
(when to restart) and :mod:`~aria_perception.worker.lifecycle` (start, loss, restart, stop).
Frames and results cross in :class:`~aria_perception.worker.slots.SharedSlots`, control
messages (:mod:`~aria_perception.worker.protocol`) over a pipe.

Flow of a frame: :meth:`Supervisor.submit` copies it into a free input slot and sends a request
to the worker at once (unless the worker holds as many jobs as it may; then the job becomes the
pending one, replacing and dropping an older pending one). The worker reads every message
before it starts a frame and runs only the newest waiting request, skipping older ones
(reported, counted dropped): the newest frame wins, nothing queues, and the worker goes from one
frame to the next without waiting for this process. The supervisor thread delivers results in
frame order and releases each output slot back to the worker once ``on_result`` has returned;
it also notices a dead, hung or frozen worker and has it restarted. The worker says which frame
it starts before it runs it: a frame it dies on is poison (refused, never retried), and its
clock counts from then (see :class:`~aria_perception.worker.ledger.Ledger`).

A supervisor is a :class:`~aria_perception.worker.shared.SharedWorker` with one camera (a
:class:`~aria_perception.worker.channel.CameraChannel`): the single-camera case, whose frames
take the same path as each camera's of a shared worker.
"""

from __future__ import annotations

import itertools

from aria_perception.records import EngineConfig, EngineInfo
from aria_perception.worker.camera_handle import CameraHandle
from aria_perception.worker.channel import CameraChannel, ErrorCallback, ResultCallback
from aria_perception.worker.result import FrameResult, FrameTiming
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.shared import SharedWorker

__all__ = ["ErrorCallback", "FrameResult", "FrameTiming", "ResultCallback", "Supervisor"]


class Supervisor(CameraHandle):
    """Runs the engine in a spawned worker process and keeps it alive.

    Args:
        config: What the worker's engine is built from.
        settings: Slot sizes, timeouts and restart policy.
        on_result: Called with each :class:`FrameResult`, in frame order, from the supervisor
            thread. Keep it short: the next result is delivered after it returns, and its
            output slot goes back to the worker only then (the worker meanwhile processes the
            next frame into the other slot).
        on_error: Called as ``on_error(frame_id, tag, error)`` from the supervisor thread for a
            frame that failed (``FrameError``: rejected by the engine; ``EngineError``,
            ``WorkerDiedError``, ``WorkerTimeoutError``: lost with the worker) and, with
            ``frame_id`` -1 and ``tag`` None, for worker errors not tied to a frame (a crash while
            idle, giving up after too many restarts, thresholds the engine refused). A frame the
            worker died running comes as a ``PoisonFrameError``, both a ``FrameError`` and a
            ``WorkerDiedError``.

    Use as a context manager or call :meth:`start` and :meth:`stop`. Frames, thresholds,
    rectification and counters: :class:`~aria_perception.worker.camera_handle.CameraHandle`.
    """

    def __init__(
        self,
        config: EngineConfig,
        settings: WorkerSettings | None = None,
        *,
        on_result: ResultCallback,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self._settings = s = settings or WorkerSettings()
        worker = SharedWorker(config, s)
        channel = CameraChannel("", config, s, None, itertools.count(1), on_result, on_error)
        worker.add(channel)
        super().__init__(worker, channel)

    # -- public API ---------------------------------------------------------------------------

    @property
    def settings(self) -> WorkerSettings:
        """The settings this supervisor runs with."""
        return self._settings

    def start(self) -> EngineInfo:
        """Spawn the worker and wait until its engine is built.

        Returns:
            What the engine reported.

        Raises:
            WorkerStartError: the worker failed to build its engine (the message carries the
                worker's error, e.g. ``WeightsError: ...``, which is also the ``__cause__``),
                died, or was not ready within ``startup_timeout_s``. Nothing is retried and
                nothing is left behind; the state is ``FAILED``.
            WorkerError: already started.
        """
        return self._worker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the worker and unlink the shared memory (idempotent).

        Asks the worker to exit, kills it if it does not within about ``timeout_s``, and
        unlinks every segment. Frames waiting or in the worker are counted dropped, without
        callbacks. Safe to call from a callback (the unmapping then happens when it returns).
        """
        self._worker.stop(timeout_s)

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
