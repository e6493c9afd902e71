"""A rate limit for log lines per reason, so that every new reason shows at once."""

from __future__ import annotations

import math
import re
import threading
import time

__all__ = ["LogThrottle"]

#: Distinct reasons remembered at most; reasons are few once numbers are stripped.
_MAX_REASONS = 256


class LogThrottle:
    """Allows one log line per reason and period; numbers in the text do not make a new reason.

    rclpy's ``throttle_duration_sec`` is per call site: one bad encoding would hide a truncated
    frame that follows it. Thread-safe.

    Args:
        period_s: the shortest time between two lines of one reason.
    """

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def period_s(self) -> float:
        """The shortest time between two lines of one reason."""
        return self._period_s

    def allow(self, text: str) -> bool:
        """Whether a line with this reason may be logged now (and remember that it was)."""
        key = re.sub(r"\d+", "#", text)[:120]
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._period_s:
                return False
            if len(self._last) > _MAX_REASONS:
                self._last.clear()
            self._last[key] = now
            return True
