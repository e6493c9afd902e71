"""When the frames of a paced phase are published: one period apart, never a burst.

The schedule is plain arithmetic on times the caller passes in, so it is exact and testable:
frame ``i`` is due one period after frame ``i - 1`` was due. A publisher that falls behind
(a slow ``publish()``) publishes late frames at once while it is less than half a period late;
later than that, the schedule restarts from now instead of sending a burst to catch up. So no
frame is ever published before it is due, and frames are never closer than one period apart
unless the previous one went late.
"""

from __future__ import annotations

from collections.abc import Sequence

from aria_perception.bench.errors import UsageError

#: Pacing words besides a rate in Hz.
RECORDED, MAX = "recorded", "max"


def check_pacing(pacing: str | float) -> str | float:
    """``pacing`` if it is a rate > 0 Hz, ``recorded`` or ``max``.

    Raises:
        UsageError: Anything else.
    """
    if isinstance(pacing, str):
        if pacing not in (RECORDED, MAX):
            raise UsageError(f"rate must be a number, 'recorded' or 'max', got {pacing!r}")
        return pacing
    if not pacing > 0:
        raise UsageError(f"rate must be > 0 Hz, got {pacing}")
    return pacing


def pacing_label(pacing: str | float) -> str:
    """How the report shows a pacing: ``30 Hz``, ``recorded`` or ``max``."""
    return pacing if isinstance(pacing, str) else f"{pacing:g} Hz"


class Schedule:
    """Due times of the frames of one paced phase.

    Args:
        pacing: A rate in Hz or ``recorded`` (not ``max``: that phase is closed-loop).
        recorded_periods: The source's gaps between frames in seconds, one per source frame
            (:meth:`FrameSet.periods_s`); used with ``recorded``.
        start: Time the first frame is due (seconds, the caller's clock).
    """

    def __init__(
        self, pacing: str | float, recorded_periods: Sequence[float], start: float
    ) -> None:
        if check_pacing(pacing) == MAX:
            raise UsageError("max-rate pacing has no schedule")
        self._rate = None if pacing == RECORDED else float(pacing)
        self._periods = list(recorded_periods)
        if self._rate is None and not self._periods:
            raise UsageError("recorded pacing needs the source's periods")
        self._due = start
        self._first = True

    def period(self, source_index: int) -> float:
        """The gap before source frame ``source_index`` (seconds)."""
        return 1.0 / self._rate if self._rate else self._periods[source_index]

    def next_due(self, source_index: int, now: float) -> float:
        """When the next frame (source frame ``source_index``) is due; wait until then.

        A result at or before ``now`` means: publish at once.
        """
        period = self.period(source_index)
        if self._first:
            self._first = False
        else:
            self._due += period
        if now - self._due > 0.5 * period:
            self._due = now  # late by over half a period (slow publish): never burst
        return self._due
