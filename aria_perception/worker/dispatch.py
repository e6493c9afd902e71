"""Requests of one camera to the worker: its ledger under a lock, and the worker they go to.

A :class:`Dispatcher` is what ``submit`` (any thread) and the supervisor thread share for one
camera. It keeps the camera's :class:`~aria_perception.worker.ledger.Ledger` and sends what it
decides: frame requests, thresholds, output-slot releases. A worker is attached while it takes
frames; without one, frames are refused (counted dropped) and nothing is sent. Every send happens
under the lock, so requests reach the worker in the order the ledger put them there. A worker
shared by several cameras has one dispatcher per camera, each with its own lock: one camera's
submit never waits for another's.
"""

from __future__ import annotations

import math
import threading
import time

from aria_perception.optics import Rectification
from aria_perception.records import Thresholds
from aria_perception.worker import protocol as msg
from aria_perception.worker.ledger import Job, Ledger, LedgerCounts, Loss
from aria_perception.worker.process import WorkerProcess

#: A worker that answered this camera this long ago gets a ``Wake`` before the next frame's
#: copy. After 1 ms asleep a process's first Python runs about as fast as awake; after 5 ms,
#: several times slower (measured on the 2-core development machine).
WAKE_AFTER_S = 0.002


class Dispatcher:
    """Thread-safe bookkeeping of the jobs and the one channel to the current worker.

    Args:
        ledger: The bookkeeping (this object is its only user from now on).
        camera: The camera's key in the messages to and from the worker.
    """

    def __init__(self, ledger: Ledger, camera: str = "") -> None:
        self._ledger = ledger
        self.camera = camera
        self._lock = threading.Lock()
        self._worker: WorkerProcess | None = None
        self._thresholds: Thresholds | None = None
        self._rectification: Rectification | None = None
        self._answered_at = -math.inf  # when the worker last answered a job of this camera

    # -- reading ------------------------------------------------------------------------------

    @property
    def worker(self) -> WorkerProcess | None:
        """The attached worker (``None`` while none takes frames)."""
        return self._worker

    @property
    def thresholds(self) -> Thresholds | None:
        """The thresholds the worker should have (set by :meth:`set_thresholds`)."""
        return self._thresholds

    @property
    def generation(self) -> int:
        """The generation of the last attached worker (0 before the first)."""
        return self._ledger.generation

    def counts(self) -> LedgerCounts:
        """A snapshot of the counters."""
        with self._lock:
            return self._ledger.counts()

    def deadline(self) -> float:
        """When the worker's answer to its oldest job is due (``inf`` with none)."""
        with self._lock:
            return self._ledger.deadline

    def busy(self) -> bool:
        """Whether the worker holds a job of this camera."""
        with self._lock:
            return self._ledger.front is not None

    def overdue(self, now: float) -> Job | None:
        """The worker's oldest job if its answer is past due."""
        with self._lock:
            return self._ledger.overdue(now)

    # -- the worker ---------------------------------------------------------------------------

    def reset(self) -> None:
        """No job anywhere, every slot free (at start)."""
        with self._lock:
            self._ledger.reset()

    def attach(
        self,
        worker: WorkerProcess,
        started_with: Thresholds | None,
        announce: msg.CameraSpec | None = None,
    ) -> None:
        """``worker`` takes this camera's frames from now on.

        Its settings reach the worker before any frame can (frames need an attached worker,
        under this lock).

        Args:
            worker: The worker, ready.
            started_with: The thresholds it knows this camera with; newer ones are sent now.
            announce: The camera's spec, when the worker does not know the camera yet: sent
                first (with the thresholds of now).
        """
        with self._lock:
            self._worker = worker
            self._ledger.worker_ready(worker.generation)
            if announce is not None:
                announce = msg.CameraSpec(**{**vars(announce), "thresholds": self._thresholds})
                self._send(msg.AddCamera(announce))
                started_with = self._thresholds
            if self._thresholds is not started_with:  # changed while it was starting
                self._send(msg.SetThresholds(self._thresholds, self.camera))  # type: ignore[arg-type]
            if self._rectification is not None:
                self._send(msg.SetRectification(self.camera, self._rectification))

    def detach(self) -> WorkerProcess | None:
        """Stop sending to the current worker (it died or is being stopped); return it."""
        with self._lock:
            worker, self._worker = self._worker, None
            return worker

    def worker_lost(self, died: bool) -> Loss:
        """The detached worker is dead: its current job ends, the others are dropped.

        Call it only once the process is gone, so that no slot is reused under it.

        Args:
            died: It died by itself (a crash), rather than being killed as hung: a job it was
                running is poison.

        Returns:
            The job it was on, to report, and whether that job is poison.
        """
        with self._lock:
            return self._ledger.worker_lost(died)

    def drop_all(self) -> None:
        """Every job in the worker or pending is dropped (stop)."""
        with self._lock:
            self._ledger.drop_all()

    # -- sending ------------------------------------------------------------------------------

    def send(self, message: object) -> None:
        """Send ``message`` to the attached worker, if any."""
        with self._lock:
            self._send(message)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Keep ``thresholds`` (for later workers too) and send them to the current one."""
        with self._lock:
            self._thresholds = thresholds
            self._send(msg.SetThresholds(thresholds, self.camera))

    def set_rectification(self, rectification: Rectification) -> None:
        """Keep the camera's rectification (for later workers too); send it to the current one."""
        with self._lock:
            self._rectification = rectification
            self._send(msg.SetRectification(self.camera, rectification))

    def release(self, out_slot: int) -> None:
        """The camera's output slot ``out_slot`` may be written again."""
        self.send(msg.Release(out_slot, self.camera))

    # -- a new frame (submit) -----------------------------------------------------------------

    def reject(self) -> None:
        """Count a frame refused at submit."""
        with self._lock:
            self._ledger.reject()

    def claim_slot(self) -> int | None:
        """An input slot for a new frame; ``None`` (counted dropped) without a worker or slot."""
        with self._lock:
            if self._worker is None:
                self._ledger.refuse()
                return None
            return self._ledger.claim_slot()

    def wake(self) -> None:
        """Send :class:`~.protocol.Wake` if the worker may be asleep.

        That is: it holds no job of this camera and answered none for :data:`WAKE_AFTER_S`
        (back to back it is awake already). Called before the copy of a frame into its slot:
        the request that follows finds the worker's process awake.
        """
        with self._lock:
            idle = time.monotonic() - self._answered_at >= WAKE_AFTER_S
            if idle and self._ledger.front is None:
                self._send(msg.Wake())

    def unclaim(self, slot: int) -> None:
        """The frame in ``slot`` goes no further (counted dropped)."""
        with self._lock:
            self._ledger.unclaim(slot)

    def admit(self, job: Job) -> bool:
        """Send ``job`` to the worker or keep it pending; False (dropped) if the worker went."""
        with self._lock:
            if self._worker is None:
                self._ledger.unclaim(job.in_slot)
                return False
            self._send_job(self._ledger.admit(job, time.monotonic()))
            return True

    # -- answers from the worker --------------------------------------------------------------

    def started(self, message: msg.Started) -> Job | None:
        """The worker started a job: its deadline counts from then (``None``: not current)."""
        with self._lock:
            return self._ledger.started(message.frame_id, message.generation, message.started_at)

    def processed(self, message: msg.Result) -> Job | None:
        """The job a result belongs to (``None``: stale); the pending job follows it in."""
        with self._lock:
            now = time.monotonic()
            job = self._ledger.processed(message.frame_id, message.generation, now)
            self._answered_at = now
            if job is not None:
                # To wait in the worker while it runs the next frame.
                self._send_job(self._ledger.dispatch_pending(now))
            return job

    def skipped(self, message: msg.Skipped) -> None:
        """The worker skipped a job for a newer one (dropped); the pending job follows in."""
        with self._lock:
            now = time.monotonic()
            self._answered_at = now
            if self._ledger.skipped(message.frame_id, message.generation, now) is not None:
                self._send_job(self._ledger.dispatch_pending(now))

    def failed(self, message: msg.FrameFailed) -> Job | None:
        """The job a failure belongs to (``None``: stale).

        A fatal failure ends the worker: the jobs behind it are dropped. Otherwise the frame
        counts rejected and the pending job follows in.
        """
        with self._lock:
            now = self._answered_at = time.monotonic()
            ledger = self._ledger
            if message.fatal:
                return ledger.failed_fatally(message.frame_id, message.generation, now)
            job = ledger.rejected(message.frame_id, message.generation, now)
            if job is not None:
                self._send_job(ledger.dispatch_pending(now))
            return job

    # -- internals (caller holds the lock) ----------------------------------------------------

    def _send(self, message: object) -> None:
        if self._worker is not None:
            self._worker.send(message)  # a gone worker is seen by the supervisor thread

    def _send_job(self, job: Job | None) -> None:
        if job is not None:
            self._send(job.request())
