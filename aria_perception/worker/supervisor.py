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
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from aria_perception.errors import (
    AriaPerceptionError,
    FrameError,
    WorkerDiedError,
    WorkerError,
    WorkerStartError,
)
from aria_perception.optics import Rectification
from aria_perception.records import EngineConfig, EngineInfo, Thresholds, WorkerState
from aria_perception.worker import protocol as msg
from aria_perception.worker.dispatch import Dispatcher
from aria_perception.worker.ledger import Job, Ledger
from aria_perception.worker.lifecycle import Lifecycle
from aria_perception.worker.process import WorkerProcess
from aria_perception.worker.result import FrameResult, FrameTiming
from aria_perception.worker.settings import WorkerSettings, WorkerStats
from aria_perception.worker.slots import SharedSlots, copy_frame, input_data
from aria_perception.worker.watchdog import Watchdog

__all__ = ["ErrorCallback", "FrameResult", "FrameTiming", "ResultCallback", "Supervisor"]

_log = logging.getLogger(__name__)

#: Longest sleep of the supervisor thread between checks.
_TICK_S = 0.25

ResultCallback = Callable[[FrameResult], None]
ErrorCallback = Callable[[int, Any, AriaPerceptionError], None]

_live: weakref.WeakSet[Supervisor] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # Runs before multiprocessing's own exit handler (registered earlier), so workers get a
    # graceful stop and segments are unlinked even if the owner forgot to call stop().
    for supervisor in list(_live):
        supervisor.stop()


class Supervisor:
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

    Use as a context manager or call :meth:`start` and :meth:`stop`.
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
        self._on_result = on_result
        self._on_error = on_error
        # _submit_lock serialises submit's copy against stop's unmapping and bounds the slots
        # in use to the input slots; _life_lock serialises start and stop.
        self._submit_lock = threading.Lock()
        self._life_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame_ids = itertools.count(1)
        self._dispatch = Dispatcher(Ledger(s.frame_timeout_s, s.first_frame_timeout_s))
        self._life = Lifecycle(
            config, s, self._dispatch, self._stopping, self._report, self._submit_lock
        )
        self._watchdog = Watchdog(self._dispatch, s, _TICK_S)
        self._gpu_mem = (0.0, 0.0)  # written by the supervisor thread only

    # -- public API ---------------------------------------------------------------------------

    @property
    def state(self) -> WorkerState:
        """Where the worker is in its life."""
        return self._life.state

    @property
    def info(self) -> EngineInfo | None:
        """What the engine reported at start-up (``None`` before)."""
        return self._life.info

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
        """Hand a frame to the worker; its result comes to ``on_result`` with ``tag``.

        The frame is copied (any strides, e.g. a padded row step, are fine), so the caller may
        reuse its buffer at once. If the worker is busy, the frame waits in place of any older
        waiting frame, which is dropped.

        Args:
            frame: (H, W, C) or (H, W) uint8 pixels in ``encoding``, or the compressed bytes
                (a 1-D uint8 array or a bytes-like object) for ``jpeg``/``png``.
            encoding: rgb8, bgr8, mono8, rgba8, bgra8, jpeg or png.
            tag: Anything; handed back with the result (e.g. the message header).
            want_depth: Whether the depth map is wanted back.
            size: (height, width) a compressed frame's header announces, if known: the first
                frame of a size gets ``first_frame_timeout_s``, like a new raw shape.
            want_rect: Whether the rectified frame is wanted back (``input.rectify``).

        Returns:
            The frame id, or ``None`` when no worker is ready (the frame counts as dropped).

        Raises:
            FrameError: the frame does not fit its encoding or the slots (counted rejected).
        """
        submitted_at = time.monotonic()
        dispatch = self._dispatch
        try:
            data = input_data(frame, encoding, self._settings)
        except FrameError:
            dispatch.reject()
            raise
        with self._submit_lock:
            slots = self._life.slots
            slot = dispatch.claim_slot()
            if slot is None:
                return None
            assert slots is not None  # a worker is attached, so its slots are mapped
            try:
                copy_frame(slots.input(slot)[: data.size].reshape(data.shape), data)
            except BaseException:
                dispatch.unclaim(slot)
                raise
            job = Job(
                frame_id=next(self._frame_ids),
                tag=tag,
                in_slot=slot,
                shape=tuple(int(n) for n in data.shape),
                encoding=encoding,
                want_depth=want_depth,
                submitted_at=submitted_at,
                copy_in_ms=(time.monotonic() - submitted_at) * 1e3,
                size=size,
                want_rect=want_rect,
            )
            return job.frame_id if dispatch.admit(job) else None

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Change the detector thresholds (kept across worker restarts).

        ``Thresholds`` checks its own values when it is built.

        Raises:
            ConfigError: a class name is unknown to the model.
        """
        info = self._life.info
        if info is not None:
            thresholds.check_classes(info.class_names)
        self._dispatch.set_thresholds(thresholds)

    def set_rectification(self, rectification: Rectification, camera: str = "") -> None:
        """Rectify ``camera``'s frames from the next one on (kept across worker restarts).

        Sent once; the worker builds the grid. An engine's refusal goes to ``on_error`` (id -1).
        """
        self._dispatch.set_rectification(camera, rectification)

    def stats(self) -> WorkerStats:
        """A snapshot of the counters."""
        counts = self._dispatch.counts()
        worker = self._dispatch.worker
        state, restarts, last_error, info = self._life.status()
        return WorkerStats(
            **dataclasses.asdict(counts),
            state=state,
            restarts=restarts,
            generation=self._dispatch.generation,
            last_error=last_error,
            gpu_mem_mb=self._gpu_mem[0],
            gpu_mem_peak_mb=self._gpu_mem[1],
            pid=None if worker is None else worker.pid,
            info=info,
        )

    def debug(self, action: str, kind: str = "", message: str = "") -> None:
        """Inject a fault into the worker (for tests); see :class:`protocol.Debug`."""
        if action not in msg.DEBUG_ACTIONS:
            raise ValueError(f"unknown debug action {action!r} (one of {msg.DEBUG_ACTIONS})")
        self._dispatch.send(msg.Debug(action, kind, message))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the worker and unlink the shared memory (idempotent).

        Asks the worker to exit, kills it if it does not within about ``timeout_s``, and
        unlinks every segment. Frames waiting or in the worker are counted dropped, without
        callbacks. Safe to call from a callback (the unmapping then happens when it returns).
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

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------------

    def _ready(self, ready: msg.Ready) -> None:
        """A new worker is ready: its silence and memory count from now."""
        self._watchdog.heard(time.monotonic())
        self._gpu_mem = (ready.gpu_mem_mb, ready.gpu_mem_peak_mb)

    def _teardown(self) -> None:
        """Unmap and unlink the slots; nothing is left for the exit handler."""
        self._life.close()
        _live.discard(self)

    def _report(self, frame_id: int, tag: Any, error: AriaPerceptionError) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(frame_id, tag, error)
        except Exception:
            _log.exception("on_error callback raised (frame %d)", frame_id)

    # -- supervisor thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                worker = self._dispatch.worker
                if worker is not None:
                    self._watch(worker)
                elif (ready := self._life.restart()) is not None:
                    self._ready(ready)
        except Exception:
            _log.exception("worker supervisor thread failed")
            self._life.retire(graceful=False, timeout_s=1.0)
            self._life.fail("WorkerError: supervisor thread failed (see the log)")
            self._report(-1, None, WorkerError("supervisor thread failed (see the log)"))
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
            self._watchdog.heard(time.monotonic())
            if not self._handle(message):
                return False
        return True

    def _handle(self, message: object) -> bool:
        """Act on one message; False when the worker is gone."""
        if isinstance(message, msg.Started):
            self._dispatch.started(message)
        elif isinstance(message, msg.Result):
            self._on_result_message(message)
        elif isinstance(message, msg.Skipped):
            self._dispatch.skipped(message)
        elif isinstance(message, msg.FrameFailed):
            return self._on_frame_failed(message)
        elif isinstance(message, msg.Heartbeat):
            if message.generation == self._dispatch.generation:
                self._gpu_mem = (message.gpu_mem_mb, message.gpu_mem_peak_mb)
        elif isinstance(message, msg.Failure):
            self._life.note_error(message.error)
            self._report(-1, None, message.error.to_exception())
        else:
            _log.warning("unexpected message from the worker: %r", message)
        return True

    def _on_result_message(self, message: msg.Result) -> None:
        job = self._dispatch.processed(message)
        if job is None:
            return
        self._gpu_mem = (message.gpu_mem_mb, message.gpu_mem_peak_mb)
        slots = self._life.slots
        if slots is None:
            return  # stopped meanwhile
        try:
            self._deliver(message, job, slots)
        finally:
            self._dispatch.send(msg.Release(message.out_slot))

    def _deliver(self, message: msg.Result, job: Job, slots: SharedSlots) -> None:
        """Read the result from its output slot and hand it to ``on_result``."""
        delivered_at = time.monotonic()
        m = message
        shapes = (m.n_detections, m.depth_shape, m.times, m.depth_fresh, m.rect_shape)
        result = slots.output(m.out_slot).read(*shapes)
        timing = FrameTiming.of(job, message, delivered_at)
        frame_result = FrameResult(job.tag, job.frame_id, message.generation, result, timing)
        del result
        try:
            self._on_result(frame_result)
        except Exception:
            _log.exception("on_result callback raised (frame %d)", job.frame_id)

    def _on_frame_failed(self, message: msg.FrameFailed) -> bool:
        """A frame failed: report it; a fatal failure ends the worker (False)."""
        job = self._dispatch.failed(message)
        if job is None:
            return True
        self._life.note_error(message.error)
        if message.fatal:
            _log.error("worker engine error on frame %d: %s", job.frame_id, message.error)
            _log.debug("worker traceback:\n%s", message.error.traceback)
        self._report(job.frame_id, job.tag, message.error.to_exception())
        if message.fatal:
            self._life.lose(WorkerDiedError(f"worker stopped after {message.error}"), report=False)
            return False
        return True
