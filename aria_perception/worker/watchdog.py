"""When the worker counts as hung or frozen: frame deadlines and heartbeat silence.

A :class:`Watchdog` is the supervisor thread's judgement of a live worker. It reads the
oldest job's deadline from the :class:`~aria_perception.worker.dispatch.Dispatcher` (see
:class:`~aria_perception.worker.ledger.Ledger` for when a job's clock runs) and remembers when
the worker was last heard from. It never sleeps, reads no clock and kills nothing: the caller
passes ``now`` and acts on the error it gets back.
"""

from __future__ import annotations

from aria_perception.errors import WorkerTimeoutError
from aria_perception.worker.dispatch import Dispatcher
from aria_perception.worker.ledger import Job
from aria_perception.worker.settings import WorkerSettings


class Watchdog:
    """Deadlines of a worker's frames and of its silence.

    Args:
        dispatch: Where the oldest job in the worker and its deadline are.
        settings: ``heartbeat_timeout_s``, and the frame timeouts (for the messages).
        tick_s: Longest wait :meth:`wait_s` proposes.
    """

    def __init__(self, dispatch: Dispatcher, settings: WorkerSettings, tick_s: float) -> None:
        self._dispatch = dispatch
        self._settings = settings
        self._tick_s = tick_s
        self._last_heard = 0.0

    def heard(self, now: float) -> None:
        """The worker said something (any message, or its ready handshake) at ``now``."""
        self._last_heard = now

    def wait_s(self, now: float) -> float:
        """How long to wait for the worker before judging again."""
        silent_until = self._last_heard + self._settings.heartbeat_timeout_s
        return min(self._tick_s, self._dispatch.deadline() - now, silent_until - now)

    def alarm(self, now: float, pid: int | None) -> WorkerTimeoutError | None:
        """Why worker ``pid`` must be killed at ``now``, or ``None``.

        Its oldest frame is past due, or it has been silent past ``heartbeat_timeout_s``. Judge
        only after reading every message the worker sent: an answer or a ``Started`` waiting
        unread changes the verdict.
        """
        job = self._dispatch.overdue(now)
        if job is not None:
            return WorkerTimeoutError(self._timeout_text(pid, job))
        silence = now - self._last_heard
        if silence > self._settings.heartbeat_timeout_s:
            return WorkerTimeoutError(
                f"no heartbeat from worker (pid {pid}) for {silence:.1f} s (frozen); killed it"
            )
        return None

    def _timeout_text(self, pid: int | None, job: Job) -> str:
        """Why the worker is killed for ``job``: it did not start it, or ran it too long."""
        which = "worker.frame_timeout_s"
        if job.timeout_s != self._settings.frame_timeout_s:
            which = "first_frame_timeout_s: the first frame of its shape in this worker"
        if job.started_at is None:
            what = f"did not start frame {job.frame_id} within {job.timeout_s:g} s"
        else:
            limit = f"{job.timeout_s:g} s of starting it"
            what = f"gave no answer to frame {job.frame_id} within {limit}"
        return f"worker (pid {pid}) {what} ({which}); killed it"
