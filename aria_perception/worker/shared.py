"""One worker process for one or more cameras, and the supervisor thread that keeps it alive.

A :class:`SharedWorker` runs one engine in a spawned worker for every camera
(:class:`~aria_perception.worker.channel.CameraChannel`) added to it. Each camera submits into
its own slots under its own lock; the worker answers each frame with the camera's key, and the
supervisor thread hands the answer to that camera's dispatcher and callbacks only. The thread
also notices a dead, hung or frozen worker and has it restarted (:mod:`.lifecycle`): a loss ends
every camera's frames in the worker, and the next worker gets every camera's segment, thresholds
and rectification before any frame. :class:`~aria_perception.worker.supervisor.Supervisor` is a
shared worker with a single camera; :mod:`~aria_perception.worker.registry` shares one between
the nodes of a process.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref

from aria_perception.errors import (
    WorkerDiedError,
    WorkerError,
    WorkerStartError,
)
from aria_perception.records import EngineConfig, EngineInfo, WorkerState
from aria_perception.worker import protocol as msg
from aria_perception.worker.channel import CameraChannel
from aria_perception.worker.lifecycle import Lifecycle
from aria_perception.worker.process import WorkerProcess
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.watchdog import Watchdog

__all__ = ["SharedWorker"]

_log = logging.getLogger(__name__)

#: Longest sleep of the supervisor thread between checks.
_TICK_S = 0.25
#: Messages that say the worker started, answered or skipped a frame (progress).
_FRAME_MESSAGES = (msg.Started, msg.Result, msg.Skipped, msg.FrameFailed)

_live: weakref.WeakSet[SharedWorker] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # Runs before multiprocessing's own exit handler (registered earlier), so workers get a
    # graceful stop and segments are unlinked even if the owner forgot to call stop().
    for worker in list(_live):
        worker.stop()


class SharedWorker:
    """A worker process serving the cameras added to it (see the module docstring).

    Args:
        config: What the worker's engine is built from.
        settings: Timeouts and restart policy (each camera's slots follow its own settings).
    """

    def __init__(self, config: EngineConfig, settings: WorkerSettings) -> None:
        self.config = config
        self.settings = settings
        # _life_lock serialises start and stop.
        self._life_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._life = Lifecycle(config, settings, self._stopping)
        self._watchdog = Watchdog(self._dispatchers, settings, _TICK_S)
        self._gpu_mem = (0.0, 0.0)  # written by the supervisor thread only

    def _dispatchers(self) -> list:
        return [channel.dispatch for channel in self._life.cameras()]

    # -- reading ------------------------------------------------------------------------------

    @property
    def state(self) -> WorkerState:
        """Where the worker is in its life."""
        return self._life.state

    @property
    def info(self) -> EngineInfo | None:
        """What the engine reported at start-up (``None`` before)."""
        return self._life.info

    @property
    def cameras(self) -> int:
        """How many cameras the worker serves."""
        return len(self._life.cameras())

    @property
    def generation(self) -> int:
        """The number of the last worker spawned (0 before the first)."""
        return self._life.generation

    @property
    def pid(self) -> int | None:
        """The process id of the worker attached now, ``None`` while none is."""
        worker = self._life.worker
        return None if worker is None else worker.pid

    @property
    def gpu_mem(self) -> tuple[float, float]:
        """(current, peak) GPU memory of the worker in MB, as last reported."""
        return self._gpu_mem

    def status(self) -> tuple[WorkerState, int, str | None, EngineInfo | None]:
        """(state, restarts, last error, engine info), read together."""
        return self._life.status()

    # -- cameras ------------------------------------------------------------------------------

    def add(self, channel: CameraChannel) -> None:
        """Serve ``channel``'s camera too (at once if the worker runs).

        Raises:
            WorkerError: a camera of that key is served already.
            WorkerStartError: its segment cannot be created.
        """
        self._life.add(channel)

    def remove(self, channel: CameraChannel) -> None:
        """Stop serving ``channel``'s camera: its frames are dropped, its segment unlinked."""
        self._life.remove(channel)

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> EngineInfo:
        """Spawn the worker and wait until its engine is built (see ``Supervisor.start``).

        Raises:
            WorkerStartError: the worker failed to build its engine, died, or was not ready in
                time. Nothing is retried and nothing is left behind; the state is ``FAILED``.
            WorkerError: already started.
        """
        with self._life_lock:
            state = self._life.state
            if state not in (WorkerState.STOPPED, WorkerState.FAILED):
                raise WorkerError(f"worker already started (state {state.name})")
            thread = self._thread
            if thread is not None and thread.is_alive():  # FAILED, cooling down
                self._stopping.set()
                thread.join()
                self._life.retire(graceful=False, timeout_s=1.0)  # one it may have started
            self._teardown()  # what a FAILED run left
            self._stopping.clear()
            _live.add(self)
            try:
                self._life.begin()
                ready = self._life.launch()
            except WorkerStartError as exc:
                self._teardown()
                self._life.fail(str(exc))
                raise
            except BaseException:  # KeyboardInterrupt (or SIGTERM as one) during the start
                self._life.retire(graceful=False, timeout_s=1.0)
                self._teardown()
                raise
            self._ready(ready)
            self._thread = threading.Thread(target=self._run, name="aria-supervisor", daemon=True)
            self._thread.start()
            return ready.info

    def debug(self, action: str, kind: str = "", message: str = "") -> None:
        """Inject a fault into the worker (for tests); see :class:`protocol.Debug`."""
        if action not in msg.DEBUG_ACTIONS:
            raise ValueError(f"unknown debug action {action!r} (one of {msg.DEBUG_ACTIONS})")
        self._life.send(msg.Debug(action, kind, message))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the worker and unlink every camera's segment (idempotent).

        Frames waiting or in the worker are counted dropped, without callbacks. Safe to call
        from a callback (the unmapping then happens when it returns).
        """
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        with self._life_lock:
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    _log.warning("supervisor thread still busy (in a callback?) at stop")
            self._life.retire(graceful=True, timeout_s=max(0.5, deadline - time.monotonic()))
            if thread is threading.current_thread():
                return  # _run unmaps once the callback that called us returns
            self._teardown()

    # -- helpers ------------------------------------------------------------------------------

    def _ready(self, ready: msg.Ready) -> None:
        """A new worker is ready: its silence, progress and memory count from now."""
        self._watchdog.ready(time.monotonic())
        self._gpu_mem = (ready.gpu_mem_mb, ready.gpu_mem_peak_mb)

    def _teardown(self) -> None:
        """Unmap and unlink the segments; nothing is left for the exit handler."""
        self._life.close()
        _live.discard(self)

    # -- supervisor thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                worker = self._life.worker
                if worker is not None:
                    self._watch(worker)
                elif (ready := self._life.restart()) is not None:
                    self._ready(ready)
        except Exception:
            _log.exception("worker supervisor thread failed")
            self._life.retire(graceful=False, timeout_s=1.0)
            self._life.fail("WorkerError: supervisor thread failed (see the log)")
            self._life.report_all(-1, WorkerError("supervisor thread failed (see the log)"))
        finally:
            if self._stopping.is_set() and self._life_lock.acquire(blocking=False):
                # stop() was called from one of our callbacks: finish it now that it returned.
                try:
                    if self._thread is threading.current_thread():
                        self._teardown()
                finally:
                    self._life_lock.release()

    def _watch(self, worker: WorkerProcess) -> None:
        """Wait for messages, death or a deadline once, and act on them."""
        dog = self._watchdog
        if worker.wait(dog.wait_s(time.monotonic())) and not self._drain(worker):
            return
        if self._stopping.is_set() or dog.alarm(time.monotonic(), worker.pid) is None:
            return
        # Judge on everything the worker said: an answer may have come since the wait (this
        # thread can be late on a loaded machine).
        if not self._drain(worker) or self._stopping.is_set():
            return
        error = dog.alarm(time.monotonic(), worker.pid)
        if error is not None:
            self._life.lose(error)

    def _drain(self, worker: WorkerProcess) -> bool:
        """Handle every waiting message; False when the worker is gone."""
        while not self._stopping.is_set():
            try:
                message = worker.receive()
            except WorkerDiedError as err:
                self._life.lose(err, died=True)
                return False
            if message is None:
                return True
            now = time.monotonic()
            self._watchdog.heard(now)
            if isinstance(message, _FRAME_MESSAGES):
                self._watchdog.progressed(now)
            if not self._handle(message):
                return False
        return True

    def _handle(self, message: object) -> bool:
        """Act on one message; False when the worker is gone."""
        if isinstance(message, msg.Heartbeat):
            if message.generation == self._life.generation:
                self._gpu_mem = (message.gpu_mem_mb, message.gpu_mem_peak_mb)
                self._watchdog.heartbeat(message.progress, time.monotonic())
            return True
        if isinstance(message, msg.Failure):
            self._life.note_error(message.error)
            channel = None if message.camera is None else self._life.camera(message.camera)
            if channel is not None:
                channel.report(-1, None, message.error.to_exception())
            elif message.camera is None:
                self._life.report_all(-1, message.error.to_exception())
            return True
        if not isinstance(message, _FRAME_MESSAGES):
            _log.warning("unexpected message from the worker: %r", message)
            return True
        channel = self._life.camera(message.camera)
        if channel is None:
            return True  # its camera left: nobody waits for it
        if isinstance(message, msg.Started):
            channel.dispatch.started(message)
        elif isinstance(message, msg.Result):
            if message.generation == self._life.generation:
                self._gpu_mem = (message.gpu_mem_mb, message.gpu_mem_peak_mb)
            channel.deliver(message)
        elif isinstance(message, msg.Skipped):
            channel.dispatch.skipped(message)
        else:
            return self._on_frame_failed(channel, message)
        return True

    def _on_frame_failed(self, channel: CameraChannel, message: msg.FrameFailed) -> bool:
        """A frame failed: report it to its camera; a fatal failure ends the worker (False)."""
        job = channel.dispatch.failed(message)
        if job is None:
            return True
        self._life.note_error(message.error)
        if message.fatal:
            _log.error("worker engine error on frame %d: %s", job.frame_id, message.error)
            _log.debug("worker traceback:\n%s", message.error.traceback)
        channel.report(job.frame_id, job.tag, message.error.to_exception())
        if message.fatal:
            self._life.lose(WorkerDiedError(f"worker stopped after {message.error}"), report=False)
            return False
        return True
