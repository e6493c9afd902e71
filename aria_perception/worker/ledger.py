"""Where every submitted frame is: the supervisor's bookkeeping, without processes or threads.

A :class:`Ledger` knows the free input slots, the jobs sent to the worker (oldest first), the one
job pending here, and the counters. It decides: which slot a new frame gets (newest wins: the
pending job gives its slot up), whether a job goes to the worker at once or waits, which job an
answer from the worker belongs to, when the worker's current job is due, and what a lost
worker's current job becomes (poison when the worker died running it). It never sends,
sleeps or reads a clock: the caller passes ``now`` and sends what it is told to send. It is not
thread-safe; the supervisor calls it under its lock.

Every submitted frame ends in exactly one of processed, dropped, rejected or failed, or is still
in the worker or pending: see :meth:`LedgerCounts.accounted`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from aria_perception.records import RAW_CHANNELS
from aria_perception.worker.protocol import FrameRequest
from aria_perception.worker.slots import INPUT_SLOTS

#: Jobs in the worker at most: one running and the newer ones waiting (it runs the newest).
MAX_IN_WORKER = INPUT_SLOTS - 1


#: The fields of a request, each copied from the job attribute of the same name.
_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(FrameRequest))


@dataclass
class Job:
    """One submitted frame as the parent tracks it (the pixels are in input slot ``in_slot``).

    Attributes:
        frame_id: The id :meth:`Supervisor.submit` returned.
        tag: The caller's tag, handed back with the result (never pickled).
        in_slot: The input slot holding the pixels or compressed bytes.
        shape: Shape of the data in the slot ((H, W, C), (H, W) or (n_bytes,)).
        encoding: Raw encoding or compressed format.
        want_depth: Whether the depth map is wanted back.
        want_rect: Whether the rectified frame is wanted back (``input.rectify``).
        camera: Whose frame it is (the camera's key in a shared worker; its slots hold it).
        submitted_at: ``time.monotonic()`` when ``submit`` was called.
        copy_in_ms: Time ``submit`` spent copying into the slot.
        size: (height, width) a compressed frame's header announces, if known: a size new to
            the worker gets the first-frame timeout, like a new raw shape.
        generation: The worker generation it was sent to (0 until sent).
        dispatched_at: When it was sent to the worker.
        started_at: When the worker started running it (``None`` until it says so).
        deadline: When the worker's answer is due (set once it is the oldest job there).
        timeout_s: The time the deadline allows, from the job becoming the oldest or, once
            started, from ``started_at``.
    """

    frame_id: int
    tag: Any
    in_slot: int
    shape: tuple[int, ...]
    encoding: str
    want_depth: bool
    submitted_at: float
    copy_in_ms: float
    size: tuple[int, int] | None = None
    want_rect: bool = False
    camera: str = ""
    generation: int = 0
    dispatched_at: float = 0.0
    started_at: float | None = None
    deadline: float = math.inf
    timeout_s: float = 0.0

    @property
    def shape_key(self) -> tuple[str, tuple[int, ...] | None]:
        """What makes a frame new to the engine: its encoding and raw shape or decoded size."""
        return self.encoding, self.shape if self.encoding in RAW_CHANNELS else self.size

    def request(self) -> FrameRequest:
        """The message that has the worker run this job (send it once :attr:`generation` is set).

        Every field of the request is the job's attribute of the same name.
        """
        return FrameRequest(**{name: getattr(self, name) for name in _REQUEST_FIELDS})


class Loss(NamedTuple):
    """What a lost worker's current job became (see :meth:`Ledger.worker_lost`).

    Attributes:
        job: The job the worker was on, if any.
        poison: The worker died while running it: counted rejected and poison, not failed.
    """

    job: Job | None
    poison: bool


@dataclass
class LedgerCounts:
    """The counters (see :class:`~aria_perception.worker.settings.WorkerStats`).

    The ledger counts into one of these and hands out copies (:meth:`Ledger.counts`) with
    ``in_flight`` and ``pending`` filled in; the field names are those of ``WorkerStats``.

    Attributes:
        submitted: Frames offered.
        processed: Frames whose result came back.
        dropped: Frames never processed (replaced, offered while no worker ran, lost waiting).
        rejected: Bad frames (at submit, in the engine, or poison).
        failed: Frames the worker was on when it hung or hit an engine error, or due next when
            it died between frames.
        stale: Answers that belonged to no current job (an earlier worker's, an abandoned job's).
        poison: Frames the worker died running (counted in ``rejected`` too).
        in_flight: Jobs in the worker now.
        pending: Jobs waiting here for room in the worker (0 or 1).
    """

    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    stale: int = 0
    poison: int = 0
    in_flight: int = 0
    pending: int = 0

    @property
    def accounted(self) -> bool:
        """Whether every submitted frame is in exactly one place."""
        ends = self.processed + self.dropped + self.rejected + self.failed
        return self.submitted == ends + self.in_flight + self.pending


class Ledger:
    """The input slots, the jobs in the worker, the pending job and the counters.

    The clock of a job runs twice: from the moment it is the oldest in the worker (the worker
    must start or answer it within the timeout: a worker stuck outside a frame is caught), and
    again from the moment the worker says it started it (the timeout bounds the engine's time
    on it, whatever the frame waited for before). The first job of an encoding and shape (raw)
    or decoded size (compressed) that a worker runs gets the first-frame timeout; a shape is
    warm once a frame of it came back processed, so a skipped or refused frame warms nothing.

    Args:
        frame_timeout_s: Time the worker has for a job (see above).
        first_frame_timeout_s: Time for the first job of an encoding and shape per worker
            (it may include lazy initialisation and CUDA-graph capture); at least
            ``frame_timeout_s``.
        input_slots: Number of input slots.
    """

    def __init__(
        self,
        frame_timeout_s: float,
        first_frame_timeout_s: float,
        input_slots: int = INPUT_SLOTS,
    ) -> None:
        if input_slots < 2:
            raise ValueError(f"a ledger needs at least 2 input slots, got {input_slots}")
        self._frame_timeout_s = frame_timeout_s
        self._first_frame_timeout_s = max(first_frame_timeout_s, frame_timeout_s)
        self._input_slots = input_slots
        self._max_in_worker = input_slots - 1
        self._free = list(range(input_slots))
        self._in_worker: collections.deque[Job] = collections.deque()
        self._pending: Job | None = None
        self._warm: set[tuple[str, tuple[int, ...] | None]] = set()
        self._generation = 0
        # in_flight and pending are left at 0 here: counts() reads them from the jobs.
        self._counts = LedgerCounts()

    # -- reading ------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The worker generation jobs are sent to (0 before the first worker)."""
        return self._generation

    @property
    def front(self) -> Job | None:
        """The oldest job in the worker: the one it answers next."""
        return self._in_worker[0] if self._in_worker else None

    @property
    def deadline(self) -> float:
        """When the worker's answer to :attr:`front` is due (``inf`` with nothing there)."""
        return self._in_worker[0].deadline if self._in_worker else math.inf

    @property
    def free_slots(self) -> int:
        """Input slots holding no job."""
        return len(self._free)

    def counts(self) -> LedgerCounts:
        """A snapshot of the counters."""
        return dataclasses.replace(
            self._counts,
            in_flight=len(self._in_worker),
            pending=int(self._pending is not None),
        )

    def overdue(self, now: float) -> Job | None:
        """The front job if its answer is past due at ``now``."""
        job = self.front
        return job if job is not None and now > job.deadline else None

    # -- a new frame --------------------------------------------------------------------------

    def reject(self) -> None:
        """Count a frame refused at submit (it never took a slot)."""
        self._counts.submitted += 1
        self._counts.rejected += 1

    def refuse(self) -> None:
        """Count a frame offered while no worker takes frames (dropped)."""
        self._counts.submitted += 1
        self._counts.dropped += 1

    def claim_slot(self) -> int | None:
        """Count a new frame and give it an input slot to be copied into.

        A free slot if there is one; else the pending job's, which is dropped (newest wins).

        Returns:
            The slot, or ``None`` when none can be had (the frame counts dropped).
        """
        self._counts.submitted += 1
        if self._free:
            return self._free.pop()
        if self._pending is not None:
            slot, self._pending = self._pending.in_slot, None
            self._counts.dropped += 1
            return slot
        self._counts.dropped += 1  # not reached: slots are freed as the worker answers
        return None

    def unclaim(self, slot: int) -> None:
        """The frame copied into ``slot`` goes no further (the copy failed, the worker went)."""
        self._free.append(slot)
        self._counts.dropped += 1

    def admit(self, job: Job, now: float) -> Job | None:
        """A frame is in its slot: into the worker if there is room, else pending.

        A job already pending is dropped in favour of ``job`` (newest wins).

        Returns:
            ``job`` when the caller must send it to the worker now, ``None`` when it is pending.
        """
        if len(self._in_worker) < self._max_in_worker:
            self._dispatch(job, now)
            return job
        self._drop(self._pending)
        self._pending = job
        return None

    def dispatch_pending(self, now: float) -> Job | None:
        """Move the pending job into the worker if there is room; the job to send, if any."""
        job = self._pending
        if job is None or len(self._in_worker) >= self._max_in_worker:
            return None
        self._pending = None
        self._dispatch(job, now)
        return job

    # -- answers from the worker --------------------------------------------------------------

    def started(self, frame_id: int, generation: int, started_at: float) -> Job | None:
        """The worker started running ``frame_id`` at ``started_at``: its clock starts again.

        The worker sends its answers for older jobs before it starts a newer one, so the job
        started is the front one; ``None`` for any other (an earlier worker's), not counted.
        """
        job = self.front
        if job is None or job.frame_id != frame_id or job.generation != generation:
            return None
        job.started_at = started_at
        job.timeout_s = self._timeout_for(job)
        job.deadline = started_at + job.timeout_s
        return job

    def processed(self, frame_id: int, generation: int, now: float) -> Job | None:
        """The worker's result for ``frame_id``: the job it belongs to, or ``None`` (stale)."""
        job = self._take(frame_id, generation, now, warm=True)
        if job is not None:
            self._counts.processed += 1
        return job

    def skipped(self, frame_id: int, generation: int, now: float) -> Job | None:
        """The worker skipped ``frame_id`` for a newer one (dropped); ``None`` if stale."""
        job = self._take(frame_id, generation, now)
        if job is not None:
            self._counts.dropped += 1
        return job

    def rejected(self, frame_id: int, generation: int, now: float) -> Job | None:
        """The engine refused ``frame_id`` (a bad frame; the worker goes on)."""
        job = self._take(frame_id, generation, now)
        if job is not None:
            self._counts.rejected += 1
        return job

    def failed_fatally(self, frame_id: int, generation: int, now: float) -> Job | None:
        """The engine failed on ``frame_id`` and the worker exits.

        The job counts failed; the jobs waiting behind it in the worker are lost unprocessed
        (dropped). A pending job stays pending until :meth:`worker_lost`.
        """
        job = self._take(frame_id, generation, now)
        if job is not None:
            self._counts.failed += 1
            self._drop(*self._in_worker)
            self._in_worker.clear()
        return job

    # -- the worker's life --------------------------------------------------------------------

    def reset(self) -> None:
        """Every slot free and no job anywhere (at start; counters are kept)."""
        self._free = list(range(self._input_slots))
        self._in_worker.clear()
        self._pending = None

    def worker_ready(self, generation: int) -> None:
        """A new worker takes jobs: they go to ``generation``, every shape is cold again."""
        self._generation = generation
        self._warm.clear()

    def worker_lost(self, died: bool) -> Loss:
        """The worker died or was killed: its current job ends, every other job is dropped.

        The current job is poison (counted rejected and poison) when the worker ``died`` while
        running it: it crashed on that frame. Otherwise (killed as hung, or dead before it
        started the job) the job failed.

        Returns:
            The job the worker was on (to report), if any, and whether it is poison.
        """
        job = self._in_worker.popleft() if self._in_worker else None
        poison = False
        if job is not None:
            poison = died and job.started_at is not None
            if poison:
                self._counts.rejected += 1
                self._counts.poison += 1
            else:
                self._counts.failed += 1
            self._free.append(job.in_slot)
        self.drop_all()
        return Loss(job, poison)

    def drop_all(self) -> None:
        """Every job in the worker and the pending one are dropped (stop)."""
        self._drop(*self._in_worker, self._pending)
        self._in_worker.clear()
        self._pending = None

    # -- internals ----------------------------------------------------------------------------

    def _dispatch(self, job: Job, now: float) -> None:
        job.generation = self._generation
        job.dispatched_at = now
        self._in_worker.append(job)
        if len(self._in_worker) == 1:
            self._start_clock(job, now)

    def _take(self, frame_id: int, generation: int, now: float, warm: bool = False) -> Job | None:
        """Remove the front job if the answer is for it; else count the answer stale.

        The worker answers its jobs in order (skipped, failed or done), so an answer for
        anything but the front job (an earlier generation's, or one given up on) is never
        matched to another job. With ``warm`` its shape is warm from now on. The next job's
        time starts now.
        """
        queue = self._in_worker
        if not queue or queue[0].frame_id != frame_id or queue[0].generation != generation:
            self._counts.stale += 1
            return None
        job = queue.popleft()
        self._free.append(job.in_slot)
        if warm:
            self._warm.add(job.shape_key)
        if queue:
            self._start_clock(queue[0], now)
        return job

    def _start_clock(self, job: Job, now: float) -> None:
        """``job`` is the worker's next: it must start (or answer) it within its timeout."""
        job.timeout_s = self._timeout_for(job)
        job.deadline = now + job.timeout_s

    def _timeout_for(self, job: Job) -> float:
        """The first-frame timeout for a shape this worker has not processed yet."""
        if job.shape_key in self._warm:
            return self._frame_timeout_s
        return self._first_frame_timeout_s

    def _drop(self, *jobs: Job | None) -> None:
        for job in jobs:
            if job is not None:
                self._counts.dropped += 1
                self._free.append(job.in_slot)
