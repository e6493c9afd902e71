"""What the supervisor hands to ``on_result``: a frame's result and where its time went."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aria_perception.records import EngineResult
from aria_perception.worker import protocol as msg
from aria_perception.worker.ledger import Job


@dataclass(frozen=True)
class FrameTiming:
    """Where the time of one frame went, in milliseconds.

    ``roundtrip_ms`` splits into ``copy_in_ms + wait_ms + engine_ms + transport_ms``.

    Attributes:
        copy_in_ms: ``submit`` copying the frame into shared memory.
        wait_ms: Waiting for earlier frames to finish, pending here and queued in the worker.
        engine_ms: ``process`` of the engine in the worker (wall clock).
        copy_out_ms: The worker copying the result into shared memory (part of transport).
        roundtrip_ms: From the ``submit`` call to the ``on_result`` call.
        to_worker_ms: Dispatch to the worker having the frame's message (pipe, wake-up).
        to_parent_ms: The worker sending the result to its delivery here (pipe, wake-up).
        batch_size: Frames in the engine call (several cameras' with ``batch_cameras``):
            ``engine_ms`` is the whole call's time.
    """

    copy_in_ms: float
    wait_ms: float
    engine_ms: float
    copy_out_ms: float
    roundtrip_ms: float
    to_worker_ms: float = 0.0
    to_parent_ms: float = 0.0
    batch_size: int = 1

    @property
    def transport_ms(self) -> float:
        """The process boundary both ways, excluding the copy into shared memory.

        ``roundtrip_ms - copy_in_ms - wait_ms - engine_ms``: the messages to the worker and
        back, the wake-ups of both processes, the worker's copy of the result into shared
        memory. Reading the result here happens after ``roundtrip_ms`` ends. Never negative
        (one monotonic clock).
        """
        return self.roundtrip_ms - self.copy_in_ms - self.wait_ms - self.engine_ms

    @classmethod
    def of(cls, job: Job, message: msg.Result, delivered_at: float) -> FrameTiming:
        """The timing of ``job``, answered by ``message`` and delivered at ``delivered_at``.

        All times are ``time.monotonic()`` seconds, one clock for both processes on Linux.
        """
        pending_ms = (job.dispatched_at - job.submitted_at) * 1e3 - job.copy_in_ms
        return cls(
            copy_in_ms=job.copy_in_ms,
            wait_ms=pending_ms + (message.started_at - message.received_at) * 1e3,
            engine_ms=message.engine_ms,
            copy_out_ms=message.copy_out_ms,
            roundtrip_ms=(delivered_at - job.submitted_at) * 1e3,
            to_worker_ms=(message.received_at - job.dispatched_at) * 1e3,
            to_parent_ms=(delivered_at - message.sent_at) * 1e3,
            batch_size=message.batch_size,
        )


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
