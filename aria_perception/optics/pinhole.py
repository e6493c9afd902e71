"""The output camera of rectification: an ideal pinhole with its principal point centred."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aria_perception.errors import ConfigError

__all__ = ["Pinhole"]


@dataclass(frozen=True)
class Pinhole:
    """A distortion-free camera of ``width`` x ``height`` pixels and focal ``focal_px``.

    The principal point is the image centre, ((width - 1) / 2, (height - 1) / 2), where
    projectaria-tools' ``get_linear_camera_calibration`` places it (pixel centres at integers).

    Raises:
        ConfigError: a size that is not an integer >= 2 or a focal that is not positive and
            finite (named as the ``rectify.*`` parameters).
    """

    width: int
    height: int
    focal_px: float

    def __post_init__(self) -> None:
        for name, size in (("rectify.width", self.width), ("rectify.height", self.height)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 2:
                raise ConfigError(f"{name} must be an integer >= 2, got {size!r}")
        focal = self.focal_px
        if isinstance(focal, bool) or not isinstance(focal, (int, float)):
            raise ConfigError(f"rectify.focal_px must be a number, got {focal!r}")
        if not (math.isfinite(focal) and focal > 0):
            raise ConfigError(f"rectify.focal_px must be a finite number > 0, got {focal!r}")
        object.__setattr__(self, "focal_px", float(focal))

    @property
    def cx(self) -> float:
        """Principal point column."""
        return (self.width - 1) / 2.0

    @property
    def cy(self) -> float:
        """Principal point row."""
        return (self.height - 1) / 2.0

    @property
    def k(self) -> tuple[float, ...]:
        """The 3x3 camera matrix, row major."""
        f = self.focal_px
        return (f, 0.0, self.cx, 0.0, f, self.cy, 0.0, 0.0, 1.0)

    def rays(self) -> np.ndarray:
        """(height, width, 3) float64 rays (z = 1) through every pixel centre."""
        y, x = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        ones = np.ones_like(x)
        return np.stack(((x - self.cx) / self.focal_px, (y - self.cy) / self.focal_px, ones), -1)

    def rotated(self, rotation: int) -> Pinhole:
        """The same camera turned ``rotation`` degrees clockwise (sizes swap at 90 and 270)."""
        if rotation in (90, 270):
            return Pinhole(self.height, self.width, self.focal_px)
        return self
