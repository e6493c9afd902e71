"""When the worker counts as hung or frozen: frame deadlines, progress and heartbeat silence.

A :class:`Watchdog` is the supervisor thread's judgement of a live worker. It reads each
camera's oldest job and its deadline from the camera's
:class:`~aria_perception.worker.dispatch.Dispatcher` (see
:class:`~aria_perception.worker.ledger.Ledger` for when a job's clock runs) and remembers when
the worker was last heard from and when it last made progress. Alive but slow is not killed,
hung is: a worker is hung when a job is past its deadline *and* the worker has made no progress
for that job's timeout (no frame started or answered, and the progress count its heartbeats
carry stood still). Several cameras share one worker, so a frame may wait for other cameras'
frames longer than its timeout while the worker advances. A worker silent for
``heartbeat_timeout_s`` is frozen. The watchdog never sleeps, reads no clock and kills
nothing: the caller passes ``now`` and acts on the error it gets back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from aria_perception.errors import WorkerTimeoutError
from aria_perception.worker.dispatch import Dispatcher
from aria_perception.worker.ledger import Job
from aria_perception.worker.settings import WorkerSettings


class Watchdog:
    """Deadlines of a worker's frames, its progress and its silence.

    Args:
        dispatchers: Gives the cameras' dispatchers (where each camera's oldest job in the
            worker and its deadline are).
        settings: ``heartbeat_timeout_s``, and the frame timeouts (for the messages).
        tick_s: Longest wait :meth:`wait_s` proposes.
    """

    def __init__(
        self,
        dispatchers: Callable[[], Sequence[Dispatcher]],
        settings: WorkerSettings,
        tick_s: float,
    ) -> None:
        self._dispatchers = dispatchers
        self._settings = settings
        self._tick_s = tick_s
        self._last_heard = 0.0
        self._last_progress = 0.0
        self._progress: int | None = None

    def ready(self, now: float) -> None:
        """A new worker is ready at ``now``: its silence and its progress count from now."""
        self._last_heard = self._last_progress = now
        self._progress = None

    def heard(self, now: float) -> None:
        """The worker said something (any message) at ``now``."""
        self._last_heard = now

    def progressed(self, now: float) -> None:
        """The worker started, answered or skipped a frame at ``now``."""
        self._last_progress = now

    def heartbeat(self, progress: int, now: float) -> None:
        """A heartbeat carried the worker's progress count: it advanced if the count moved."""
        if progress != self._progress:
            self._progress = progress
            self._last_progress = now

    def wait_s(self, now: float) -> float:
        """How long to wait for the worker before judging again."""
        silent_until = self._last_heard + self._settings.heartbeat_timeout_s
        until_due = min((d.deadline() for d in self._dispatchers()), default=math.inf) - now
        if until_due <= 0:  # past due but advancing: judged again each tick
            until_due = self._tick_s
        return max(0.0, min(self._tick_s, until_due, silent_until - now))

    def alarm(self, now: float, pid: int | None) -> WorkerTimeoutError | None:
        """Why worker ``pid`` must be killed at ``now``, or ``None``.

        A camera's oldest frame is past due and the worker made no progress for its timeout,
        or it has been silent past ``heartbeat_timeout_s``. Judge only after reading every
        message the worker sent: an answer, a ``Started`` or a heartbeat waiting unread
        changes the verdict.
        """
        stalled = now - self._last_progress
        for dispatcher in self._dispatchers():
            job = dispatcher.overdue(now)
            if job is not None and stalled > job.timeout_s:
                return WorkerTimeoutError(self._timeout_text(pid, job, stalled))
        silence = now - self._last_heard
        if silence > self._settings.heartbeat_timeout_s:
            return WorkerTimeoutError(
                f"no heartbeat from worker (pid {pid}) for {silence:.1f} s (frozen); killed it"
            )
        return None

    def _timeout_text(self, pid: int | None, job: Job, stalled: float) -> str:
        """Why the worker is killed for ``job``: it did not start it, or ran it too long."""
        which = "worker.frame_timeout_s"
        if job.timeout_s != self._settings.frame_timeout_s:
            which = "first_frame_timeout_s: the first frame of its shape in this worker"
        if job.started_at is None:
            what = f"did not start frame {job.frame_id} within {job.timeout_s:g} s"
        else:
            limit = f"{job.timeout_s:g} s of starting it"
            what = f"gave no answer to frame {job.frame_id} within {limit}"
        camera = f" of camera {job.camera!r}" if job.camera else ""
        return (
            f"worker (pid {pid}) {what}{camera} and made no progress for {stalled:.1f} s "
            f"({which}): hung; killed it"
        )
