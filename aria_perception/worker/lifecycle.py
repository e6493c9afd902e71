"""The worker's life: its shared memory, one process generation after another, and restarts.

:class:`Lifecycle` starts a generation (:class:`~aria_perception.worker.process.WorkerProcess`)
and attaches it to the :class:`~aria_perception.worker.dispatch.Dispatcher`, ends it on a loss
(kill, end its jobs, ask the :class:`~aria_perception.worker.restart.RestartPolicy`), waits out
the backoff and starts the next, or retires it on stop. A worker that died running a frame was
killed by that frame (poison): the frame is refused and the restart is not a failure the policy
counts. After too many other failures the state is ``FAILED`` for the policy's cool-down, then
the failures are forgotten and a worker is started again. It holds what the supervisor reports
of that life: the :class:`~aria_perception.records.WorkerState`, the engine info, the restart
count and the last error.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

from aria_perception.errors import (
    AriaPerceptionError,
    PoisonFrameError,
    WorkerError,
    WorkerStartError,
)
from aria_perception.records import EngineConfig, EngineInfo, WorkerState
from aria_perception.worker import protocol as msg
from aria_perception.worker.dispatch import Dispatcher
from aria_perception.worker.process import WorkerProcess
from aria_perception.worker.restart import RestartPolicy
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.slots import SharedSlots, SlotLayout

_log = logging.getLogger(__name__)

#: ``report(frame_id, tag, error)``: how a loss reaches the owner's ``on_error``.
Report = Callable[[int, Any, AriaPerceptionError], None]


class Lifecycle:
    """Starts, loses, restarts and retires the worker processes of one supervisor.

    Args:
        config: What each worker's engine is built from.
        settings: Slot sizes, start-up timeout, restart policy.
        dispatch: Where a ready worker is attached (and detached from on a loss).
        stopping: Set by ``stop()``: start-ups and backoff waits end early.
        report: Called for errors of a loss (not while stopping).
        slots_lock: Held while the slots are unmapped (``submit`` holds it while it copies).
    """

    def __init__(
        self,
        config: EngineConfig,
        settings: WorkerSettings,
        dispatch: Dispatcher,
        stopping: threading.Event,
        report: Report,
        slots_lock: threading.Lock,
    ) -> None:
        self._config = config
        self._settings = settings
        self._layout = SlotLayout(
            input_bytes=settings.input_bytes,
            max_depth_pixels=settings.max_pixels,
            max_detections=config.max_detections,
            # The rectified frame comes back in the output slot: rgb8 at the pinhole's size.
            rect_bytes=config.rectify_width * config.rectify_height * 3 if config.rectify else 0,
        )
        self._dispatch = dispatch
        self._stopping = stopping
        self._report = report
        self._slots_lock = slots_lock
        self._ctx = multiprocessing.get_context("spawn")
        self._policy = RestartPolicy.from_settings(settings)
        self._lock = threading.Lock()  # guards what stats() reads
        self._restart_at = 0.0
        self.slots: SharedSlots | None = None
        self.state = WorkerState.STOPPED
        self.info: EngineInfo | None = None
        self.restarts = 0
        self.last_error: str | None = None

    def status(self) -> tuple[WorkerState, int, str | None, EngineInfo | None]:
        """(state, restarts, last error, engine info), read together."""
        with self._lock:
            return self.state, self.restarts, self.last_error, self.info

    def note_error(self, error: object) -> None:
        """Remember ``error`` (``"Class: message"``) as the last error."""
        with self._lock:
            self.last_error = str(error)

    def begin(self) -> None:
        """A fresh start: no failures counted, no jobs, new slots (``STARTING``).

        Raises:
            WorkerStartError: the slots cannot be created.
        """
        self._policy.reset()
        self._dispatch.reset()
        with self._lock:
            self.state = WorkerState.STARTING
        self.slots = SharedSlots.create(self._layout, self._settings.shm_prefix)

    def launch(self) -> msg.Ready:
        """Spawn the next generation, wait for it and attach it (``READY``).

        Raises:
            WorkerStartError: error, death or timeout during start-up, or stop() was called.
        """
        assert self.slots is not None
        thresholds = self._dispatch.thresholds
        worker, ready = WorkerProcess.spawn(
            self._ctx,
            self._dispatch.generation + 1,
            self._config,
            thresholds,
            self._settings,
            self.slots,
            self._stopping,
        )
        with self._lock:
            self.info = ready.info
            self._dispatch.attach(worker, thresholds)
            self.state = WorkerState.READY
        return ready

    def fail(self, last_error: str) -> None:
        """The supervisor gives up (a failed start, a broken supervisor thread): ``FAILED``."""
        with self._lock:
            self.state = WorkerState.FAILED
            self.last_error = last_error

    def lose(self, reason: WorkerError, report: bool = True, died: bool = False) -> None:
        """The worker died, hung or failed: kill it, end its jobs, plan the restart.

        Args:
            reason: What happened; reported for the job the worker was on, if any.
            report: Report ``reason`` even when the worker was on no job.
            died: The worker died by itself (not killed as hung, not a failed start): if it
                was running a frame, that frame is poison and the restart counts for nothing.
        """
        worker = self._dispatch.detach()
        if worker is not None:
            worker.kill()  # dead for sure before its input slots are reused
        job, poison = self._dispatch.worker_lost(died)
        now = time.monotonic()
        final: WorkerError | None = None
        if poison:
            assert job is not None
            reason = PoisonFrameError(
                f"{reason} while running frame {job.frame_id}: the frame is refused (poison) "
                "and not retried"
            )
            restart_at: float | None = now + self._policy.backoff_initial_s
        else:
            restart_at = self._policy.on_failure(now)
            if restart_at is None:
                final = self._policy.give_up_error(reason)
                restart_at = now + self._policy.cooldown_s
        last = final or reason
        with self._lock:
            self.last_error = f"{type(last).__name__}: {last}"
            self.state = WorkerState.FAILED if final else WorkerState.RESTARTING
            self._restart_at = restart_at
        if self._stopping.is_set():
            return
        _log.error("%s: %s", type(reason).__name__, reason)
        if job is not None:
            self._report(job.frame_id, job.tag, reason)
        elif report:
            self._report(-1, None, reason)
        if final is not None:
            _log.error("%s", final)
            self._report(-1, None, final)

    def restart(self) -> msg.Ready | None:
        """Wait out the backoff or cool-down and start the next generation.

        Returns:
            The new worker's ready message; ``None`` when stopped, or when it failed to start
            (a loss like any other).
        """
        delay = self._restart_at - time.monotonic()
        if delay > 0 and self._stopping.wait(delay):
            return None
        with self._lock:
            if self.state is WorkerState.FAILED:
                # The cool-down is over: a fresh start, as if start() had been called again.
                self._policy.reset()
                self.state = WorkerState.RESTARTING
                _log.warning(
                    "starting the worker again after %g s in FAILED", self._policy.cooldown_s
                )
            self.restarts += 1
        try:
            return self.launch()
        except WorkerStartError as exc:
            if not self._stopping.is_set():
                self.lose(exc)
            return None

    def retire(self, graceful: bool, timeout_s: float) -> None:
        """End the current worker (``STOPPED``); its jobs are dropped."""
        worker = self._dispatch.detach()
        self._dispatch.drop_all()
        with self._lock:
            self.state = WorkerState.STOPPED
        if worker is not None:
            worker.retire(graceful, timeout_s)

    def close(self) -> None:
        """Unmap and unlink the slots (once; this process is their only owner)."""
        with self._slots_lock:
            slots, self.slots = self.slots, None
        if slots is not None:
            slots.close()
            slots.unlink()
