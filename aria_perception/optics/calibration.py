"""A camera's calibration as ``sensor_msgs/CameraInfo`` carries it, checked on construction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aria_perception.errors import ConfigError, shorten
from aria_perception.optics.models import DISTORTION_LENGTHS, fold_angle, project

__all__ = ["Calibration"]


def _floats(name: str, values: Sequence[float], count: int | None = None) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"camera_info {name} must be numbers: {err}") from err
    if count is not None and len(out) != count:
        raise ConfigError(f"camera_info {name} must have {count} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ConfigError(f"camera_info {name} holds a NaN or infinite value: {list(out)}")
    return out


@dataclass(frozen=True)
class Calibration:
    """The intrinsics of one camera: model, ``K``, ``D`` and the sensor size.

    Build it with :meth:`from_camera_info`; a ``Calibration`` is always valid.

    Attributes:
        model: the ``distortion_model`` (a key of
            :data:`~aria_perception.optics.models.DISTORTION_LENGTHS`).
        k: the 3x3 camera matrix, row major (9 values).
        d: the distortion coefficients, as many as the model takes.
        width: sensor width in pixels.
        height: sensor height in pixels.
        fold: the ray angle (radians) past which the model's radial term folds back: rays beyond
            it are outside the calibrated lens.

    Raises:
        ConfigError: an unknown model, a ``D`` of the wrong length, a focal length that is not a
            positive finite number, a NaN anywhere, or a sensor smaller than 2x2 pixels.
    """

    model: str
    k: tuple[float, ...]
    d: tuple[float, ...]
    width: int
    height: int
    fold: float = field(init=False, compare=False)

    def __post_init__(self) -> None:
        model = self.model
        if not isinstance(model, str) or model not in DISTORTION_LENGTHS:
            text = shorten(repr(model), 80)
            raise ConfigError(
                f"camera_info distortion_model {text} is not one of "
                f"{', '.join(DISTORTION_LENGTHS)}"
            )
        expected = DISTORTION_LENGTHS[model]
        if len(self.d) != expected:
            raise ConfigError(f"camera_info D has {len(self.d)} values; {model} takes {expected}")
        k = _floats("K", self.k, 9)
        d = _floats("D", self.d)
        for name, focal in (("fx (K[0])", k[0]), ("fy (K[4])", k[4])):
            if not focal > 0:
                raise ConfigError(f"camera_info focal length {name} must be > 0, got {focal}")
        for name, size in (("width", self.width), ("height", self.height)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 2:
                raise ConfigError(f"camera_info {name} must be at least 2 pixels, got {size!r}")
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "fold", fold_angle(model, np.asarray(d)))

    @classmethod
    def from_camera_info(
        cls,
        distortion_model: str,
        k: Sequence[float],
        d: Sequence[float],
        width: int,
        height: int,
    ) -> Calibration:
        """The calibration in a CameraInfo message's fields (``distortion_model``, ``k``, ...).

        Raises:
            ConfigError: as the class says.
        """
        return cls(str(distortion_model), tuple(k), tuple(d), int(width), int(height))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the sensor."""
        return self.width, self.height

    def project(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels where ``rays`` ((..., 3), optical frame) land, and which ones are usable.

        Returns:
            (..., 2) float64 pixel coordinates (x, y), and (...) True where the ray is in front
            of the camera, within the angle where the model holds (:attr:`fold`) and lands on
            the sensor: within its outer pixel edges, -0.5 to width - 0.5 (as projectaria-tools
            decides visibility).
        """
        pixels, front = project(self.model, np.asarray(self.k), np.asarray(self.d), rays)
        rays = np.asarray(rays, np.float64)
        angle = np.arctan2(np.hypot(rays[..., 0], rays[..., 1]), rays[..., 2])
        x, y = pixels[..., 0], pixels[..., 1]
        inside = (x >= -0.5) & (x <= self.width - 0.5) & (y >= -0.5) & (y <= self.height - 0.5)
        return pixels, front & (angle < self.fold) & inside
