"""Parent side of the worker: start, feed, watch and restart the spawned engine process.

This module never imports torch (nor does anything it imports): the node process stays free of
CUDA. The worker is :func:`aria_perception.worker.child.run` in a process of the multiprocessing
``spawn`` context; frames and results cross in :class:`~aria_perception.worker.slots.SharedSlots`,
control messages (:mod:`aria_perception.worker.protocol`) over a pipe.

Flow of a frame: :meth:`Supervisor.submit` copies it into a free input slot and sends it to the
worker at once (unless :data:`_MAX_IN_WORKER` frames are there already; then it becomes the
pending frame, replacing and dropping an older pending one). The worker reads every message
before it starts a frame and runs only the newest waiting one, skipping older ones (reported,
counted dropped): the newest frame wins, nothing queues, and the worker goes from one frame to
the next without waiting for this process. Results are delivered in frame order by the
supervisor thread, which releases each output slot back to the worker once ``on_result`` has
returned.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from aria_perception.errors import (
    AriaPerceptionError,
    ConfigError,
    FrameError,
    WorkerDiedError,
    WorkerError,
    WorkerStartError,
    WorkerTimeoutError,
)
from aria_perception.records import (
    COMPRESSED_FORMATS,
    RAW_CHANNELS,
    EngineConfig,
    EngineInfo,
    EngineResult,
    Thresholds,
    WorkerState,
)
from aria_perception.worker import child
from aria_perception.worker import protocol as msg
from aria_perception.worker.settings import WorkerSettings, WorkerStats
from aria_perception.worker.slots import (
    INPUT_SLOTS,
    SharedSlots,
    SlotLayout,
    copy_frame,
)

_log = logging.getLogger(__name__)

#: Raw encodings and their channel counts; compressed formats come as 1-D bytes.
COMPRESSED = COMPRESSED_FORMATS

#: Longest sleep of the supervisor thread between checks.
_TICK_S = 0.25

ResultCallback = Callable[["FrameResult"], None]
ErrorCallback = Callable[[int, Any, AriaPerceptionError], None]


@dataclass(frozen=True)
class FrameTiming:
    """Where the time of one frame went, in milliseconds.

    Attributes:
        copy_in_ms: ``submit`` copying the frame into shared memory.
        wait_ms: Waiting for earlier frames to finish, pending here and queued in the worker.
        engine_ms: ``Engine.process`` in the worker (wall clock).
        copy_out_ms: The worker copying the result into shared memory.
        roundtrip_ms: From the ``submit`` call to the ``on_result`` call.
        to_worker_ms: Dispatch to the worker having the frame message (pipe, wake-up).
        to_parent_ms: The worker sending the result to its delivery here (pipe, wake-up).
    """

    copy_in_ms: float
    wait_ms: float
    engine_ms: float
    copy_out_ms: float
    roundtrip_ms: float
    to_worker_ms: float = 0.0
    to_parent_ms: float = 0.0

    @property
    def transport_ms(self) -> float:
        """What the process boundary cost: round trip minus engine time and waiting."""
        return self.roundtrip_ms - self.engine_ms - self.wait_ms


@dataclass
class FrameResult:
    """A result delivered to ``on_result``.

    Attributes:
        tag: Whatever the caller passed to :meth:`Supervisor.submit` (never pickled).
        frame_id: The id :meth:`Supervisor.submit` returned.
        generation: The worker process that computed it.
        result: Detections (owned copies) and the depth map: a read-only view of shared memory,
            valid until the callback returns (copy it to keep it).
        timing: Where the time went.
    """

    tag: Any
    frame_id: int
    generation: int
    result: EngineResult
    timing: FrameTiming


@dataclass
class _Job:
    frame_id: int
    tag: Any
    in_slot: int
    shape: tuple[int, ...]
    encoding: str
    want_depth: bool
    submitted_at: float
    copy_in_ms: float
    dispatched_at: float = 0.0
    deadline: float = np.inf  # set once it is the oldest frame in the worker


#: Frames in the worker at most: one running and the newer ones waiting (it runs the newest).
_MAX_IN_WORKER = INPUT_SLOTS - 1


_live: weakref.WeakSet[Supervisor] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # Runs before multiprocessing's own exit handler (registered earlier), so workers get a
    # graceful stop and segments are unlinked even if the owner forgot to call stop().
    for supervisor in list(_live):
        supervisor.stop()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == child.EXIT_ENGINE_ERROR:
        return "exited after an engine error"
    return f"exited with code {code}"


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
            idle, giving up after too many restarts, thresholds the engine refused).

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
        self._config = config
        self._settings = settings or WorkerSettings()
        self._layout = SlotLayout(
            input_bytes=self._settings.input_bytes,
            max_depth_pixels=self._settings.max_pixels,
            max_detections=config.max_detections,
        )
        self._on_result = on_result
        self._on_error = on_error
        self._ctx = multiprocessing.get_context("spawn")
        # _lock guards the state below; _send_lock the pipe's write end (submit and the
        # supervisor thread both send); _submit_lock serialises submit's copy against stop's
        # unmapping and bounds the slots in use to INPUT_SLOTS; _life_lock serialises start/stop.
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._life_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._slots: SharedSlots | None = None
        self._proc: Any = None  # multiprocessing.Process of the spawn context
        self._conn: Connection | None = None
        self._state = WorkerState.STOPPED
        self._generation = 0
        self._info: EngineInfo | None = None
        self._thresholds: Thresholds | None = None
        self._frame_ids = itertools.count(1)
        self._free_inputs = list(range(INPUT_SLOTS))
        self._in_worker: collections.deque[_Job] = collections.deque()  # sent, in order
        self._pending: _Job | None = None
        self._warm: set[tuple[str, tuple[int, ...] | None]] = set()
        self._last_heard = 0.0
        self._failures: collections.deque[float] = collections.deque()
        self._restart_at = 0.0
        self._submitted = 0
        self._processed = 0
        self._dropped = 0
        self._rejected = 0
        self._failed = 0
        self._restarts = 0
        self._stale = 0
        self._last_error: str | None = None
        self._gpu_mem = (0.0, 0.0)

    # -- public API ---------------------------------------------------------------------------

    @property
    def state(self) -> WorkerState:
        """Where the worker is in its life."""
        return self._state

    @property
    def info(self) -> EngineInfo | None:
        """What the engine reported at start-up (``None`` before)."""
        return self._info

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
            if self._state not in (WorkerState.STOPPED, WorkerState.FAILED):
                raise WorkerError(f"worker already started (state {self._state.name})")
            self._teardown()  # what a FAILED run left
            self._stopping.clear()
            self._failures.clear()
            self._free_inputs = list(range(INPUT_SLOTS))
            self._state = WorkerState.STARTING
            _live.add(self)
            try:
                self._slots = SharedSlots.create(self._layout, self._settings.shm_prefix)
                info = self._launch()
            except WorkerStartError as exc:
                self._teardown()
                with self._lock:
                    self._state = WorkerState.FAILED
                    self._last_error = str(exc)
                raise
            self._thread = threading.Thread(target=self._run, name="aria-supervisor", daemon=True)
            self._thread.start()
            return info

    def submit(
        self, frame: Any, encoding: str, tag: Any = None, *, want_depth: bool = True
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

        Returns:
            The frame id, or ``None`` when no worker is ready (the frame counts as dropped).

        Raises:
            FrameError: the frame does not fit its encoding or the slots (counted rejected).
        """
        submitted_at = time.monotonic()
        try:
            data, shape = self._check_frame(frame, encoding)
        except FrameError:
            with self._lock:
                self._submitted += 1
                self._rejected += 1
            raise
        with self._submit_lock:
            with self._lock:
                self._submitted += 1
                slots = self._slots
                if self._state is not WorkerState.READY or slots is None:
                    self._dropped += 1
                    return None
                if self._free_inputs:
                    slot = self._free_inputs.pop()
                elif self._pending is not None:
                    # The worker is full and a frame is pending: this newer frame takes the
                    # pending one's slot (newest wins).
                    slot, self._pending = self._pending.in_slot, None
                    self._dropped += 1
                else:  # not reached: slots are freed as the worker answers
                    self._dropped += 1
                    return None
            try:
                dst = slots.input(slot)[: data.size]
                copy_frame(dst.reshape(shape), data)
            except BaseException:
                with self._lock:
                    self._free_inputs.append(slot)
                    self._dropped += 1
                raise
            copied_at = time.monotonic()
            job = _Job(
                frame_id=next(self._frame_ids),
                tag=tag,
                in_slot=slot,
                shape=shape,
                encoding=encoding,
                want_depth=want_depth,
                submitted_at=submitted_at,
                copy_in_ms=(copied_at - submitted_at) * 1e3,
            )
            with self._lock:
                if self._state is not WorkerState.READY:  # the worker went while we copied
                    self._free_inputs.append(slot)
                    self._dropped += 1
                    return None
                if len(self._in_worker) < _MAX_IN_WORKER:
                    self._dispatch(job)
                else:
                    self._drop(self._pending)
                    self._pending = job
            return job.frame_id

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Change the detector thresholds (kept across worker restarts).

        Raises:
            ConfigError: a value is out of range or a class name is unknown to the model.
        """
        if not 0.0 <= thresholds.confidence <= 1.0:
            raise ConfigError(
                f"detector.confidence must be in [0, 1], got {thresholds.confidence}"
            )
        if not 0.0 <= thresholds.iou <= 1.0:
            raise ConfigError(f"detector.iou must be in [0, 1], got {thresholds.iou}")
        info = self._info
        if info is not None:
            unknown = [c for c in thresholds.classes if c not in info.class_names]
            if unknown:
                raise ConfigError(
                    f"detector.classes: unknown class name(s) {unknown}; this model has "
                    f"{len(info.class_names)} classes, e.g. {list(info.class_names[:5])}"
                )
        with self._lock:
            self._thresholds = thresholds
            self._send(msg.SetThresholds(thresholds))

    def stats(self) -> WorkerStats:
        """A snapshot of the counters."""
        with self._lock:
            proc = self._proc
            return WorkerStats(
                state=self._state,
                submitted=self._submitted,
                processed=self._processed,
                dropped=self._dropped,
                rejected=self._rejected,
                failed=self._failed,
                restarts=self._restarts,
                generation=self._generation,
                last_error=self._last_error,
                gpu_mem_mb=self._gpu_mem[0],
                gpu_mem_peak_mb=self._gpu_mem[1],
                pid=None if proc is None else proc.pid,
                in_flight=len(self._in_worker),
                pending=int(self._pending is not None),
                info=self._info,
            )

    def debug(self, action: str, kind: str = "", message: str = "") -> None:
        """Inject a fault into the worker (for tests); see :class:`protocol.Debug`."""
        if action not in msg.DEBUG_ACTIONS:
            raise ValueError(f"unknown debug action {action!r} (one of {msg.DEBUG_ACTIONS})")
        with self._lock:
            self._send(msg.Debug(action, kind, message))

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
            self._retire(graceful=True, timeout_s=max(0.5, deadline - time.monotonic()))
            if thread is threading.current_thread():
                return  # _run unmaps once the callback that called us returns
            self._teardown()

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- submit helpers -----------------------------------------------------------------------

    def _check_frame(self, frame: Any, encoding: str) -> tuple[np.ndarray, tuple[int, ...]]:
        if encoding in COMPRESSED:
            if not isinstance(frame, np.ndarray):
                try:
                    frame = np.frombuffer(frame, np.uint8)
                except TypeError as err:
                    raise FrameError(f"{encoding} frame must be bytes, got {type(frame)}") from err
            if frame.dtype != np.uint8 or frame.ndim != 1:
                raise FrameError(
                    f"{encoding} frame must be 1-D uint8 bytes, got {frame.dtype} {frame.shape}"
                )
            if frame.size == 0:
                raise FrameError(f"{encoding} frame is empty")
            if frame.size > self._settings.encoded_bytes:
                raise FrameError(
                    f"{encoding} frame of {frame.size} bytes is over the "
                    f"{self._settings.encoded_bytes} bytes the worker slots hold"
                )
            return frame, (int(frame.size),)
        channels = RAW_CHANNELS.get(encoding)
        if channels is None:
            raise FrameError(
                f"unsupported encoding {encoding!r} "
                f"(supported: {', '.join([*RAW_CHANNELS, *COMPRESSED])})"
            )
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            raise FrameError(f"{encoding} frame must be a uint8 numpy array, got {type(frame)}")
        ok = frame.ndim == 3 and frame.shape[2] == channels
        ok = ok or (channels == 1 and frame.ndim == 2)
        if not ok:
            raise FrameError(
                f"{encoding} frame must be (H, W, {channels}) uint8, got shape {frame.shape}"
            )
        h, w = frame.shape[:2]
        if h == 0 or w == 0:
            raise FrameError(f"{encoding} frame is empty ({w}x{h})")
        if h * w > self._settings.max_pixels:
            raise FrameError(
                f"frame of {w}x{h} = {h * w} pixels is over max_pixels={self._settings.max_pixels}"
            )
        return frame, tuple(int(s) for s in frame.shape)

    def _dispatch(self, job: _Job) -> None:
        """Send ``job`` to the worker (caller holds ``_lock``; there is room for it)."""
        job.dispatched_at = time.monotonic()
        self._in_worker.append(job)
        if len(self._in_worker) == 1:
            self._start_clock(job, job.dispatched_at)
        self._send(
            msg.Frame(
                frame_id=job.frame_id,
                generation=self._generation,
                in_slot=job.in_slot,
                shape=job.shape,
                encoding=job.encoding,
                want_depth=job.want_depth,
            )
        )

    def _start_clock(self, job: _Job, now: float) -> None:
        """``job`` is the worker's next frame: its answer is due within the frame timeout.

        The first frame of a shape or encoding (per worker) gets the first-frame timeout: it
        includes cuDNN tuning and CUDA-graph capture.
        """
        key = (job.encoding, job.shape if job.encoding in RAW_CHANNELS else None)
        if key in self._warm:
            timeout = self._settings.frame_timeout_s
        else:
            self._warm.add(key)
            timeout = max(self._settings.first_frame_timeout_s, self._settings.frame_timeout_s)
        job.deadline = now + timeout

    def _send(self, message: object) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            with self._send_lock:
                conn.send(message)
        except (OSError, ValueError):
            pass  # the worker is gone: the supervisor thread sees it and restarts it

    # -- worker lifecycle ---------------------------------------------------------------------

    def _launch(self) -> EngineInfo:
        """Spawn the next generation and wait for its ready message.

        Raises:
            WorkerStartError: error, death or timeout during start-up, or stop() was called.
        """
        assert self._slots is not None
        generation = self._generation + 1
        start = msg.Start(
            generation=generation,
            parent_pid=os.getpid(),
            config=self._config,
            thresholds=self._thresholds,
            engine_factory=self._settings.engine_factory,
            shm_name=self._slots.name,
            layout=self._layout,
            heartbeat_interval_s=self._settings.heartbeat_interval_s,
        )
        conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=child.run,
            args=(child_conn, start),
            name=f"aria-worker-{generation}",
            daemon=True,
        )
        try:
            proc.start()
        except Exception as exc:
            conn.close()
            child_conn.close()
            raise WorkerStartError(f"cannot spawn the worker: {exc}") from exc
        child_conn.close()  # only the child holds its end now, so its death reads as EOF here
        timeout = self._settings.startup_timeout_s
        deadline = time.monotonic() + timeout
        error: WorkerStartError | None = None
        ready: msg.Ready | None = None
        while ready is None and error is None:
            if self._stopping.is_set():
                error = WorkerStartError("worker start-up interrupted by stop()")
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = WorkerStartError(
                    f"worker was not ready within {timeout:g} s (worker.startup_timeout_s)"
                )
                break
            if not wait([conn, proc.sentinel], min(remaining, _TICK_S)):
                continue
            try:
                if not conn.poll():
                    raise EOFError
                reply = conn.recv()
            except (EOFError, OSError):
                proc.join(1.0)
                error = WorkerStartError(
                    f"worker (pid {proc.pid}) {_describe_exit(proc.exitcode)} during start-up"
                )
                break
            if isinstance(reply, msg.Ready):
                ready = reply
            elif isinstance(reply, msg.StartFailed):
                cause = reply.error.to_exception()
                error = WorkerStartError(f"worker failed to start: {reply.error}")
                error.__cause__ = cause
                _log.debug("worker start-up traceback:\n%s", reply.error.traceback)
        if error is not None or ready is None:
            self._kill(proc, conn)
            assert error is not None
            raise error
        with self._lock:
            self._proc = proc
            self._conn = conn
            self._generation = generation
            self._info = ready.info
            self._gpu_mem = (ready.gpu_mem_mb, ready.gpu_mem_peak_mb)
            self._last_heard = time.monotonic()
            self._warm = set()
            self._state = WorkerState.READY
            if self._thresholds is not start.thresholds:  # changed while we were starting
                self._send(msg.SetThresholds(self._thresholds))  # type: ignore[arg-type]
        _log.info(
            "worker %d ready in %.1f s (pid %d, %s, %s, weights %s)",
            generation,
            ready.startup_s,
            ready.pid,
            ready.info.device,
            ready.info.precision,
            ready.info.weights,
        )
        return ready.info

    @staticmethod
    def _kill(proc: Any, conn: Connection | None) -> None:
        if proc.is_alive():
            proc.kill()
        proc.join(5.0)
        if conn is not None:
            conn.close()

    def _retire(self, graceful: bool, timeout_s: float) -> None:
        """End the current worker (graceful: ask first, then terminate, then kill)."""
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
            self._drop(*self._in_worker, self._pending)
            self._in_worker.clear()
            self._pending = None
            self._state = WorkerState.STOPPED
        if proc is None:
            return
        if graceful and proc.is_alive() and conn is not None:
            try:
                with self._send_lock:
                    conn.send(msg.Shutdown())
            except (OSError, ValueError):
                pass
            proc.join(timeout_s * 0.8)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout_s * 0.2)
        self._kill(proc, conn)

    def _teardown(self) -> None:
        """Unmap and unlink the slots (exactly once; the parent is their only owner)."""
        with self._submit_lock:
            slots, self._slots = self._slots, None
        if slots is None:
            return
        slots.close()
        slots.unlink()
        _live.discard(self)

    # -- supervisor thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._state is WorkerState.FAILED:
                    break
                if self._proc is None:
                    self._restart()
                else:
                    self._watch()
        except Exception:
            _log.exception("worker supervisor thread failed")
            self._retire(graceful=False, timeout_s=1.0)
            with self._lock:
                self._state = WorkerState.FAILED
                self._last_error = "WorkerError: supervisor thread failed (see the log)"
            self._report(-1, None, WorkerError("supervisor thread failed (see the log)"))
        finally:
            if self._stopping.is_set() and self._life_lock.acquire(blocking=False):
                # stop() was called from one of our callbacks: finish it now that it returned.
                try:
                    if self._thread is threading.current_thread():
                        self._teardown()
                finally:
                    self._life_lock.release()

    def _watch(self) -> None:
        """Wait for messages, death or a deadline once, and act on them."""
        proc, conn = self._proc, self._conn
        assert proc is not None and conn is not None
        with self._lock:
            deadline = self._in_worker[0].deadline if self._in_worker else np.inf
        now = time.monotonic()
        silent_until = self._last_heard + self._settings.heartbeat_timeout_s
        timeout = max(0.0, min(_TICK_S, deadline - now, silent_until - now))
        ready = wait([conn, proc.sentinel], timeout)
        if conn in ready or proc.sentinel in ready:
            if not self._drain(proc, conn):
                return
        if self._stopping.is_set():
            return
        now = time.monotonic()
        with self._lock:
            job = self._in_worker[0] if self._in_worker else None
        if job is not None and now > job.deadline:
            limit = job.deadline - job.dispatched_at
            self._lose(
                WorkerTimeoutError(
                    f"worker (pid {proc.pid}) gave no answer to frame {job.frame_id} within "
                    f"{limit:g} s (worker.frame_timeout_s); killed it"
                )
            )
        elif now - self._last_heard > self._settings.heartbeat_timeout_s:
            self._lose(
                WorkerTimeoutError(
                    f"no heartbeat from worker (pid {proc.pid}) for {now - self._last_heard:.1f} s"
                    " (frozen); killed it"
                )
            )

    def _drain(self, proc: Any, conn: Connection) -> bool:
        """Handle every waiting message; False when the worker is gone."""
        while not self._stopping.is_set():
            try:
                if not conn.poll():
                    if proc.is_alive():
                        return True
                    raise EOFError  # dead, and every message it sent has been read
                message = conn.recv()
            except (EOFError, OSError):
                proc.join(1.0)
                self._lose(
                    WorkerDiedError(f"worker (pid {proc.pid}) {_describe_exit(proc.exitcode)}")
                )
                return False
            self._last_heard = time.monotonic()
            if not self._handle(message):
                return False
        return True

    def _handle(self, message: object) -> bool:
        """Act on one message; False when the worker is gone."""
        if isinstance(message, msg.Result):
            self._on_result_message(message)
        elif isinstance(message, msg.Skipped):
            with self._lock:
                if self._take(message.frame_id, message.generation) is not None:
                    self._dropped += 1
                    self._dispatch_pending()
        elif isinstance(message, msg.FrameFailed):
            return self._on_frame_failed(message)
        elif isinstance(message, msg.Heartbeat):
            if message.generation == self._generation:
                self._gpu_mem = (message.gpu_mem_mb, message.gpu_mem_peak_mb)
        elif isinstance(message, msg.Failure):
            error = message.error.to_exception()
            with self._lock:
                self._last_error = str(message.error)
            self._report(-1, None, error)
        else:
            _log.warning("unexpected message from the worker: %r", message)
        return True

    def _take(self, frame_id: int, generation: int) -> _Job | None:
        """Remove job ``frame_id`` of this generation from the worker's (caller holds ``_lock``).

        The worker answers its frames in order (skipped, failed or done), so it is the oldest
        there; the next one's frame timeout starts now.
        """
        queue = self._in_worker
        if generation != self._generation or not queue or queue[0].frame_id != frame_id:
            # Not for the worker's current frame (an earlier generation's, or a frame already
            # given up on): never deliver it for another frame.
            self._stale += 1
            return None
        job = queue.popleft()
        self._free_inputs.append(job.in_slot)
        if queue:
            self._start_clock(queue[0], time.monotonic())
        return job

    def _drop(self, *jobs: _Job | None) -> None:
        """Count ``jobs`` dropped (never processed) and free their slots; caller holds _lock."""
        for job in jobs:
            if job is not None:
                self._dropped += 1
                self._free_inputs.append(job.in_slot)

    def _dispatch_pending(self) -> None:
        if len(self._in_worker) >= _MAX_IN_WORKER:
            return
        job, self._pending = self._pending, None
        if job is not None:
            self._dispatch(job)

    def _on_result_message(self, message: msg.Result) -> None:
        assert self._slots is not None
        with self._lock:
            job = self._take(message.frame_id, message.generation)
            if job is None:
                return
            self._gpu_mem = (message.gpu_mem_mb, message.gpu_mem_peak_mb)
            self._dispatch_pending()  # to wait in the worker while it runs the next frame
            self._processed += 1
            slots = self._slots
        if slots is None:
            return  # stopped meanwhile
        try:
            self._deliver(message, job, slots)
        finally:
            self._send(msg.Release(message.out_slot))

    def _deliver(self, message: msg.Result, job: _Job, slots: SharedSlots) -> None:
        """Read the result from its output slot and hand it to ``on_result``."""
        delivered_at = time.monotonic()
        result = slots.output(message.out_slot).read(
            message.n_detections, message.depth_shape, message.times, message.depth_fresh
        )
        pending_ms = (job.dispatched_at - job.submitted_at) * 1e3 - job.copy_in_ms
        timing = FrameTiming(
            copy_in_ms=job.copy_in_ms,
            wait_ms=pending_ms + (message.started_at - message.received_at) * 1e3,
            engine_ms=message.engine_ms,
            copy_out_ms=message.copy_out_ms,
            roundtrip_ms=(delivered_at - job.submitted_at) * 1e3,
            to_worker_ms=(message.received_at - job.dispatched_at) * 1e3,
            to_parent_ms=(delivered_at - message.sent_at) * 1e3,
        )
        frame_result = FrameResult(job.tag, job.frame_id, message.generation, result, timing)
        del result
        try:
            self._on_result(frame_result)
        except Exception:
            _log.exception("on_result callback raised (frame %d)", job.frame_id)

    def _on_frame_failed(self, message: msg.FrameFailed) -> bool:
        error = message.error.to_exception()
        with self._lock:
            job = self._take(message.frame_id, message.generation)
            if job is None:
                return True
            self._last_error = str(message.error)
            if message.fatal:
                self._failed += 1
                # The worker exits: a frame waiting in it is lost unprocessed (dropped).
                self._drop(*self._in_worker)
                self._in_worker.clear()
            else:
                self._rejected += 1
                self._dispatch_pending()
        if message.fatal:
            _log.error("worker engine error on frame %d: %s", job.frame_id, message.error)
            _log.debug("worker traceback:\n%s", message.error.traceback)
        self._report(job.frame_id, job.tag, error)
        if message.fatal:
            self._lose(WorkerDiedError(f"worker stopped after {message.error}"), report=False)
            return False
        return True

    def _lose(self, reason: WorkerError, report: bool = True) -> None:
        """The worker died, hung or failed: kill it, fail its frames, plan the restart."""
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
        if proc is not None:
            self._kill(proc, conn)  # dead for sure before its input slots are reused
        now = time.monotonic()
        window = self._settings.restart_window_s
        with self._lock:
            queue = self._in_worker
            job = queue.popleft() if queue else None  # the frame the worker was on
            if job is not None:
                self._failed += 1
                self._free_inputs.append(job.in_slot)
            self._drop(*queue, self._pending)
            queue.clear()
            self._pending = None
            self._last_error = f"{type(reason).__name__}: {reason}"
            while self._failures and now - self._failures[0] > window:
                self._failures.popleft()
            give_up = len(self._failures) >= self._settings.max_restarts
            if give_up:
                self._state = WorkerState.FAILED
                final = WorkerError(
                    f"worker failed {len(self._failures) + 1} times within {window:g} s "
                    f"(worker.max_restarts={self._settings.max_restarts}); giving up. "
                    f"Last: {type(reason).__name__}: {reason}"
                )
                self._last_error = f"{type(final).__name__}: {final}"
            else:
                self._failures.append(now)
                self._state = WorkerState.RESTARTING
                backoff = self._settings.backoff_initial_s * 2 ** (len(self._failures) - 1)
                self._restart_at = now + min(backoff, self._settings.backoff_max_s)
        if self._stopping.is_set():
            return
        _log.error("%s: %s", type(reason).__name__, reason)
        if job is not None:
            self._report(job.frame_id, job.tag, reason)
        elif report:
            self._report(-1, None, reason)
        if give_up:
            _log.error("%s", final)
            self._report(-1, None, final)

    def _restart(self) -> None:
        delay = self._restart_at - time.monotonic()
        if delay > 0 and self._stopping.wait(delay):
            return
        with self._lock:
            self._restarts += 1
        try:
            self._launch()
        except WorkerStartError as exc:
            if not self._stopping.is_set():
                self._lose(exc)

    def _report(self, frame_id: int, tag: Any, error: AriaPerceptionError) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(frame_id, tag, error)
        except Exception:
            _log.exception("on_error callback raised (frame %d)", frame_id)
