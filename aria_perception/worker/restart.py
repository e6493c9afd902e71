"""When to restart a failed worker, and when to give up (pure policy: no processes, no clock)."""

from __future__ import annotations

import collections

from aria_perception.errors import WorkerError
from aria_perception.worker.settings import WorkerSettings


class RestartPolicy:
    """At most ``max_restarts`` restarts within a sliding window, with exponential backoff.

    Each failure within the window doubles the delay before the next restart, starting at
    ``backoff_initial_s`` and capped at ``backoff_max_s``. The failure after ``max_restarts``
    restarts within ``window_s`` seconds means giving up for ``cooldown_s``; after it the caller
    calls :meth:`reset` and tries again. Failures older than the window are forgotten. Only
    failures not caused by a frame are recorded here: a worker that dies running a frame is
    restarted after ``backoff_initial_s``, whatever the window holds.

    Args:
        max_restarts: Restarts allowed within the window (0: give up at the first failure).
        window_s: Length of the sliding window in seconds.
        backoff_initial_s: Delay before the first restart in the window.
        backoff_max_s: Longest delay.
        cooldown_s: Time given up before trying again.
    """

    def __init__(
        self,
        max_restarts: int,
        window_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
        cooldown_s: float = WorkerSettings.failed_cooldown_s,
    ) -> None:
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.cooldown_s = cooldown_s
        self._failures: collections.deque[float] = collections.deque()

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> RestartPolicy:
        """The policy of ``settings`` (restarts, window, backoff and cool-down)."""
        return cls(
            max_restarts=settings.max_restarts,
            window_s=settings.restart_window_s,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            cooldown_s=settings.failed_cooldown_s,
        )

    @property
    def recent_failures(self) -> int:
        """Failures counted in the window at the last :meth:`on_failure` (restarts granted)."""
        return len(self._failures)

    def on_failure(self, now: float) -> float | None:
        """Record a failure at ``now`` (monotonic seconds).

        Returns:
            When to restart (``now`` plus the backoff), or ``None`` to give up: the window
            already holds ``max_restarts`` restarts.
        """
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.max_restarts:
            return None
        self._failures.append(now)
        # The exponent is bounded so that a large max_restarts cannot overflow a float.
        backoff = self.backoff_initial_s * 2.0 ** min(len(self._failures) - 1, 64)
        return now + min(backoff, self.backoff_max_s)

    def give_up_error(self, last: Exception) -> WorkerError:
        """The error that reports giving up (after :meth:`on_failure` returned ``None``)."""
        failures = len(self._failures) + 1
        return WorkerError(
            f"worker failed {failures} time{'s' if failures > 1 else ''} within "
            f"{self.window_s:g} s "
            f"(worker.max_restarts={self.max_restarts}); trying again in {self.cooldown_s:g} s. "
            f"Last: {type(last).__name__}: {last}"
        )

    def reset(self) -> None:
        """Forget every failure (a fresh start)."""
        self._failures.clear()
