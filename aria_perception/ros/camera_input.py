"""The node's camera calibration with ``input.rectify``: camera_info checked, changes sent.

Every ``camera_info`` is parsed into a :class:`~aria_perception.optics.Calibration`. An invalid
one (unknown model, a ``D`` of the wrong length, a focal that is not positive, a NaN) is
refused with a throttled warning giving the reason, and the node keeps rectifying with the last
good calibration. A valid one that differs from it becomes the new
:class:`~aria_perception.optics.Rectification` and goes to the worker once (not with every
frame). Until a first valid one arrives, frames are refused (see :meth:`CameraInput.check_frame`).
No rclpy here: the node hands over the message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aria_perception.errors import ConfigError, shorten
from aria_perception.optics import (
    Calibration,
    CameraInfoFields,
    Pinhole,
    Rectification,
    rectification_for,
)
from aria_perception.records import EngineConfig
from aria_perception.ros.log_throttle import LogThrottle

__all__ = ["CameraInput"]


class CameraInput:
    """One camera's calibration as ``camera_info`` brings it (``input.rectify`` on).

    Args:
        config: the engine's configuration (``rectify.*`` and ``input.rotation``).
        logger: the node's logger.
        throttle: the node's log throttle (one line per kind of reason and period).
        on_change: called with each new rectification (from the camera_info callback).

    Attributes:
        refused: camera_info messages refused so far.
    """

    def __init__(
        self,
        config: EngineConfig,
        logger: Any,
        throttle: LogThrottle,
        on_change: Callable[[Rectification], None],
    ) -> None:
        self._pinhole = Pinhole(
            config.rectify_width, config.rectify_height, config.rectify_focal_px
        )
        self._rotation = config.rotation
        self._logger = logger
        self._throttle = throttle
        self._on_change = on_change
        self._lock = threading.Lock()
        self._current: Rectification | None = None
        self.refused = 0

    @property
    def rectification(self) -> Rectification | None:
        """The rectification in use (None before the first valid camera_info)."""
        return self._current

    def output_info(self) -> CameraInfoFields | None:
        """The fields of ``~/depth/camera_info``: the rectified, rotated pinhole (None before)."""
        current = self._current
        return None if current is None else current.camera_info()

    def update(self, msg: Any) -> bool:
        """Take one ``sensor_msgs/CameraInfo``; True when it changed the calibration."""
        try:
            calibration = Calibration.from_camera_info(
                msg.distortion_model, list(msg.k), list(msg.d), msg.width, msg.height
            )
        except ConfigError as err:
            self.refused += 1
            if self._throttle.allow(err):
                keeps = (
                    "frames stay refused until a valid one arrives"
                    if self._current is None
                    else "rectifying with the last good calibration"
                )
                self._logger.warning(
                    f"refused camera_info ({shorten(repr(msg.header.frame_id), 80)}): "
                    f"{shorten(str(err))}; {keeps} (logged every few seconds at most)"
                )
            return False
        with self._lock:
            if self._current is not None and self._current.calibration == calibration:
                return False
            self._current = Rectification(calibration, self._pinhole, self._rotation)
            rect = self._current
        width, height = rect.output_size
        self._logger.info(
            f"camera calibration: {calibration.model} {calibration.width}x{calibration.height}"
            f" -> rectified pinhole {width}x{height}, focal {self._pinhole.focal_px:g} px, "
            f"rotation {self._rotation}"
        )
        self._on_change(rect)
        return True

    def check_frame(self, width: int, height: int) -> None:
        """Refuse a frame that cannot be rectified.

        Raises:
            FrameError: no valid camera_info yet, or the frame is not the calibrated size.
        """
        rectification_for(self._current, width, height)
