"""Frames the node refuses: counted, and logged once per kind of reason and period."""

from __future__ import annotations

import threading
from typing import Any

from aria_perception.errors import shorten
from aria_perception.ros.log_throttle import LogThrottle

__all__ = ["LOG_PERIOD_S", "Rejections"]

#: Shortest time between two log lines of one reason for a rejected or lost frame.
LOG_PERIOD_S = 5.0


class Rejections:
    """The node's ``rejected_frames`` counter and the throttled log of why frames are refused.

    Args:
        logger: the node's rclpy logger.
        period_s: shortest time between two lines of one kind of reason.

    Attributes:
        throttle: the shared rate limit (other refusals of the node use it too).
    """

    def __init__(self, logger: Any, period_s: float = LOG_PERIOD_S) -> None:
        self._logger = logger
        self._period_s = period_s
        self._count = 0  # frames refused by the node (the worker counts its own)
        self._lock = threading.Lock()
        self.throttle = LogThrottle(period_s)

    @property
    def count(self) -> int:
        """Frames refused so far."""
        with self._lock:
            return self._count

    def reject(self, header: Any, err: Exception, count: bool = True) -> None:
        """Count (unless ``count`` is False: counted elsewhere) and log one refused frame."""
        if count:
            with self._lock:
                self._count += 1
        if self.throttle.allow(err):
            stamp = header.stamp
            # The frame id and the reason may quote anything the sender chose: both are cut.
            self._logger.warning(
                f"rejected frame {stamp.sec}.{stamp.nanosec:09d} "
                f"({shorten(repr(header.frame_id), 80)}): {shorten(str(err))} "
                f"(rejected_frames counts them; this kind of reason is logged every "
                f"{self._period_s:g} s at most)"
            )
