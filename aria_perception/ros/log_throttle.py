"""A rate limit for log lines per kind of reason, so that every new kind shows at once."""

from __future__ import annotations

import math
import re
import threading
import time

__all__ = ["LogThrottle", "reason_kind"]

#: Kinds of reasons remembered at most; a kind older than the period makes room for a new one,
#: and while none is, lines of new kinds wait (a sender must not buy log lines with variety).
MAX_KINDS = 64
#: Longest kind: past it, what a message says is the sender's, not ours.
_KIND_CHARS = 120
#: Text of a reason looked at: the kind is decided by its start, and the patterns below must
#: not cost more than this bound allows whatever a sender makes the text.
_SCANNED_CHARS = 400

# What a reason quotes of what a sender sent; each becomes a placeholder in its kind. A quote
# still open where the scanned text ends is quoted data as well.
_QUOTED = re.compile(r"""b?'(?:[^'\\]|\\.)*(?:'|\\?$)|b?"(?:[^"\\]|\\.)*(?:"|\\?$)""", re.DOTALL)
_HEX_DUMP = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{2}(?:[ :][0-9A-Fa-f]{2})+(?![0-9A-Za-z])")
_WITH_DIGIT = re.compile(r"(?<![0-9A-Za-z_.+-])[0-9A-Za-z_.+-]*\d[0-9A-Za-z_.+-]*")
_LONG_WORD = re.compile(r"(?<!\S)\S{25,}")
_SPACE = re.compile(r"\s+")


def reason_kind(reason: BaseException | str) -> str:
    """The kind of a reason: its exception class and its text without what it quotes.

    Quoted strings (``'...'``, ``"..."``, a ``repr`` of anything), hex dumps (``89 50 4e``),
    words with a digit (numbers, sizes, ids, addresses, ``0x7f3a``) and overlong words become
    placeholders, and the kind is cut to a bounded length: "unsupported encoding 'x1'" and
    "unsupported encoding 'x2'" are one kind, a truncated frame another.
    """
    text = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else reason
    text = text[:_SCANNED_CHARS]
    text = _QUOTED.sub("'…'", text)
    text = _HEX_DUMP.sub("<hex>", text)
    text = _WITH_DIGIT.sub("#", text)
    text = _LONG_WORD.sub("…", text)
    return _SPACE.sub(" ", text)[:_KIND_CHARS]


class LogThrottle:
    """Allows one log line per kind of reason (:func:`reason_kind`) and period.

    rclpy's ``throttle_duration_sec`` is per call site: one bad encoding would hide a truncated
    frame that follows it. At most :data:`MAX_KINDS` kinds are remembered: a flood of distinct
    reasons gives at most that many lines per period, however varied. Thread-safe.

    Args:
        period_s: the shortest time between two lines of one kind.
    """

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def period_s(self) -> float:
        """The shortest time between two lines of one kind."""
        return self._period_s

    def allow(self, reason: BaseException | str) -> bool:
        """Whether a line with this reason may be logged now (and remember that it was)."""
        key = reason_kind(reason)
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._period_s:
                return False
            if key not in self._last and len(self._last) >= MAX_KINDS:
                expired = [k for k, t in self._last.items() if now - t >= self._period_s]
                for k in expired:
                    del self._last[k]
                if len(self._last) >= MAX_KINDS:
                    return False
            self._last[key] = now
            return True
