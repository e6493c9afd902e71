"""The worker's life: its cameras, one process generation after another, and restarts.

:class:`Lifecycle` starts a generation (:class:`~aria_perception.worker.process.WorkerProcess`)
and attaches it to every camera's :class:`~aria_perception.worker.dispatch.Dispatcher` (each
camera's settings go first), ends it on a loss (kill, end every camera's jobs, ask the
:class:`~aria_perception.worker.restart.RestartPolicy`), waits out the backoff and starts the
next, or retires it on stop. A worker that died running a frame was killed by that frame
(poison): the frame is refused, charged to its camera, and the restart is not a failure the
policy counts. After too many other failures the state is ``FAILED`` for the policy's cool-down,
then the failures are forgotten and a worker is started again. It holds what the supervisor
reports of that life, once for all its cameras: the :class:`~aria_perception.records.WorkerState`,
the engine info, the restart count and the last error. Cameras join and leave at any time
(:meth:`Lifecycle.add`, :meth:`Lifecycle.remove`).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time

from aria_perception.errors import (
    AriaPerceptionError,
    PoisonFrameError,
    WorkerError,
    WorkerStartError,
)
from aria_perception.records import EngineConfig, EngineInfo, WorkerState
from aria_perception.worker import protocol as msg
from aria_perception.worker.channel import CameraChannel
from aria_perception.worker.process import WorkerProcess
from aria_perception.worker.restart import RestartPolicy
from aria_perception.worker.settings import WorkerSettings

_log = logging.getLogger(__name__)


class Lifecycle:
    """Starts, loses, restarts and retires the worker processes of one supervisor.

    Args:
        config: What each worker's engine is built from.
        settings: Start-up timeout, restart policy.
        stopping: Set by ``stop()``: start-ups and backoff waits end early.
    """

    def __init__(
        self, config: EngineConfig, settings: WorkerSettings, stopping: threading.Event
    ) -> None:
        self._config = config
        self._settings = settings
        self._stopping = stopping
        self._ctx = multiprocessing.get_context("spawn")
        self._policy = RestartPolicy.from_settings(settings)
        self._lock = threading.Lock()  # guards what stats() reads
        # Guards the cameras and the attached worker: a camera joins a worker exactly once.
        self._cameras_lock = threading.Lock()
        self._cameras: dict[str, CameraChannel] = {}
        self._worker: WorkerProcess | None = None
        self._restart_at = 0.0
        self._generation = 0
        self.state = WorkerState.STOPPED
        self.info: EngineInfo | None = None
        self.restarts = 0
        self.last_error: str | None = None

    # -- cameras ------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The number of the last worker spawned (0 before the first)."""
        return self._generation

    @property
    def worker(self) -> WorkerProcess | None:
        """The worker attached now (``None`` while none takes frames)."""
        return self._worker

    def cameras(self) -> list[CameraChannel]:
        """The cameras now, in the order they joined."""
        with self._cameras_lock:
            return list(self._cameras.values())

    def camera(self, name: str) -> CameraChannel | None:
        """The camera of that key, if it is one of this worker's."""
        return self._cameras.get(name)

    def add(self, channel: CameraChannel) -> None:
        """A camera joins; a running worker gets its segment and settings before its frames.

        Raises:
            WorkerError: a camera of that key is here already.
            WorkerStartError: its segment cannot be created.
        """
        with self._cameras_lock:
            if channel.name in self._cameras:
                raise WorkerError(f"camera {channel.name!r} already has this worker")
            worker = self._worker
            if worker is not None or self.state is not WorkerState.STOPPED:
                channel.open()
            self._cameras[channel.name] = channel
            if worker is not None:
                channel.dispatch.attach(worker, None, announce=channel.spec())

    def remove(self, channel: CameraChannel) -> None:
        """A camera leaves: its jobs are dropped, the worker forgets it, its segment goes."""
        with self._cameras_lock:
            if self._cameras.get(channel.name) is not channel:
                return
            del self._cameras[channel.name]
            channel.dispatch.detach()
            channel.dispatch.drop_all()
            worker = self._worker
            if worker is not None:
                worker.send(msg.RemoveCamera(channel.name))
        # The worker keeps its own mapping until it has read RemoveCamera; unlinking the name
        # and unmapping ours is safe meanwhile.
        channel.close()

    def send(self, message: object) -> None:
        """Send ``message`` to the attached worker, if any."""
        worker = self._worker
        if worker is not None:
            worker.send(message)

    def report_all(self, frame_id: int, error: AriaPerceptionError) -> None:
        """Report ``error`` (not tied to a frame) to every camera."""
        for channel in self.cameras():
            channel.report(frame_id, None, error)

    def status(self) -> tuple[WorkerState, int, str | None, EngineInfo | None]:
        """(state, restarts, last error, engine info), read together."""
        with self._lock:
            return self.state, self.restarts, self.last_error, self.info

    def note_error(self, error: object) -> None:
        """Remember ``error`` (``"Class: message"``) as the last error."""
        with self._lock:
            self.last_error = str(error)

    def begin(self) -> None:
        """A fresh start: no failures counted, no jobs, new segments (``STARTING``).

        Raises:
            WorkerStartError: a segment cannot be created.
        """
        self._policy.reset()
        with self._lock:
            self.state = WorkerState.STARTING
        for channel in self.cameras():
            channel.dispatch.reset()
            channel.open()

    def launch(self) -> msg.Ready:
        """Spawn the next generation, wait for it and attach every camera to it (``READY``).

        Raises:
            WorkerStartError: error, death or timeout during start-up, or stop() was called.
        """
        specs = {channel.name: channel.spec() for channel in self.cameras()}
        worker, ready = WorkerProcess.spawn(
            self._ctx,
            self._generation + 1,
            self._config,
            tuple(specs.values()),
            self._settings,
            self._stopping,
        )
        self._generation = worker.generation
        with self._lock, self._cameras_lock:
            self.info = ready.info
            self._worker = worker
            for channel in self._cameras.values():
                spec = specs.get(channel.name)
                if spec is not None:
                    channel.dispatch.attach(worker, spec.thresholds)
                else:  # joined while the worker was starting
                    channel.dispatch.attach(worker, None, announce=channel.spec())
            self.state = WorkerState.READY
        return ready

    def detach(self) -> WorkerProcess | None:
        """No camera sends to the current worker any more; return it."""
        with self._cameras_lock:
            worker, self._worker = self._worker, None
            for channel in self._cameras.values():
                channel.dispatch.detach()
        return worker

    def fail(self, last_error: str) -> None:
        """The supervisor gives up (a failed start, a broken supervisor thread): ``FAILED``."""
        with self._lock:
            self.state = WorkerState.FAILED
            self.last_error = last_error

    def lose(self, reason: WorkerError, report: bool = True, died: bool = False) -> None:
        """The worker died, hung or failed: kill it, end every camera's jobs, plan the restart.

        Args:
            reason: What happened; reported for each camera's job the worker had, if any.
            report: Report ``reason`` to the cameras that had no job there too.
            died: The worker died by itself (not killed as hung, not a failed start): if it
                was running a frame, that frame is poison (charged to its camera) and the
                restart counts for nothing.
        """
        worker = self.detach()
        if worker is not None:
            worker.kill()  # dead for sure before its input slots are reused
        losses = [(channel, *channel.dispatch.worker_lost(died)) for channel in self.cameras()]
        poisoned = [(channel, job) for channel, job, poison in losses if poison]
        now = time.monotonic()
        final: WorkerError | None = None
        poison_error: PoisonFrameError | None = None
        if poisoned:
            job = poisoned[0][1]
            assert job is not None
            poison_error = PoisonFrameError(
                f"{reason} while running frame {job.frame_id}: the frame is refused (poison) "
                "and not retried"
            )
            restart_at: float | None = now + self._policy.backoff_initial_s
        else:
            restart_at = self._policy.on_failure(now)
            if restart_at is None:
                final = self._policy.give_up_error(reason)
                restart_at = now + self._policy.cooldown_s
        last = final or poison_error or reason
        with self._lock:
            self.last_error = f"{type(last).__name__}: {last}"
            self.state = WorkerState.FAILED if final else WorkerState.RESTARTING
            self._restart_at = restart_at
        if self._stopping.is_set():
            return
        _log.error("%s: %s", type(poison_error or reason).__name__, poison_error or reason)
        for channel, job, poison in losses:
            if job is not None:
                channel.report(job.frame_id, job.tag, poison_error if poison else reason)
            elif report:
                channel.report(-1, None, reason)
        if final is not None:
            _log.error("%s", final)
            self.report_all(-1, final)

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
        """End the current worker (``STOPPED``); every camera's jobs are dropped."""
        worker = self.detach()
        for channel in self.cameras():
            channel.dispatch.drop_all()
        with self._lock:
            self.state = WorkerState.STOPPED
        if worker is not None:
            worker.retire(graceful, timeout_s)

    def close(self) -> None:
        """Unmap and unlink every camera's segment."""
        for channel in self.cameras():
            channel.close()
