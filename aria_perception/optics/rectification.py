"""Rectification: the remap grid from a calibrated camera to an upright pinhole; its CameraInfo.

The output image is the :class:`~aria_perception.optics.pinhole.Pinhole` camera turned
``rotation`` degrees clockwise. For each output pixel the grid holds the source pixel to sample,
so one bilinear sample both undistorts and rotates. The output camera's frame is the input
camera's optical frame turned about its z axis: a point X in the input camera's frame is
``R @ X`` in the output camera's frame, and ``R`` is what the output CameraInfo carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from aria_perception.errors import ConfigError, FrameError
from aria_perception.optics.calibration import Calibration
from aria_perception.optics.pinhole import Pinhole

__all__ = ["CameraInfoFields", "Rectification", "rectification_for", "rotation_matrix"]

#: Clockwise image rotation -> R: input camera frame -> output camera frame (x right, y down).
_ROTATION_MATRICES: dict[int, tuple[float, ...]] = {
    0: (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    90: (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    180: (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0),
    270: (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0),
}


def rotation_matrix(rotation: int) -> np.ndarray:
    """The 3x3 ``R`` of an image turned ``rotation`` degrees clockwise (see the module docstring).

    Raises:
        ConfigError: ``rotation`` is not 0, 90, 180 or 270.
    """
    matrix = _ROTATION_MATRICES.get(rotation)
    if matrix is None:
        raise ConfigError(f"input.rotation must be one of (0, 90, 180, 270), got {rotation!r}")
    return np.asarray(matrix, np.float64).reshape(3, 3)


class CameraInfoFields(NamedTuple):
    """The calibration fields of a ``sensor_msgs/CameraInfo`` (the header aside).

    The rectified output camera (:meth:`Rectification.camera_info`) and the cameras that
    ``bench import`` writes both use it.

    Attributes:
        width: image width (for the rectified output: after rotation).
        height: image height.
        distortion_model: ``plumb_bob`` (rectified output: ``D`` five zeros), ``fisheye624``,
            ``equidistant``, ...
        d: distortion coefficients.
        k: the 3x3 camera matrix, row major.
        r: the 3x3 rectification rotation, row major (identity for a sensor; the rectified
            output's: from the input camera's frame to its own).
        p: the 3x4 projection matrix, row major.
    """

    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]


@dataclass(frozen=True)
class Rectification:
    """A calibrated camera rectified to ``pinhole`` and turned ``rotation`` degrees clockwise.

    Attributes:
        calibration: the source camera.
        pinhole: the output camera before rotation.
        rotation: clockwise degrees (``input.rotation``).

    Raises:
        ConfigError: ``rotation`` is not 0, 90, 180 or 270.
    """

    calibration: Calibration
    pinhole: Pinhole
    rotation: int = 0

    def __post_init__(self) -> None:
        rotation_matrix(self.rotation)

    @property
    def output(self) -> Pinhole:
        """The output camera, after rotation."""
        return self.pinhole.rotated(self.rotation)

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the output image."""
        out = self.output
        return out.width, out.height

    def grid(self) -> np.ndarray:
        """For every output pixel, the source pixel to sample.

        Returns:
            (height, width, 2) float32 source (x, y) in pixels (centres at integers) of the
            output image; NaN where the ray misses the sensor or the calibrated lens. A point
            in the outer half of a border pixel is moved to that pixel's centre, so that it
            samples the pixel rather than a blend with the black outside.
        """
        rays = self.output.rays() @ rotation_matrix(self.rotation)  # R^T: back to the source
        pixels, valid = self.calibration.project(rays)
        calib = self.calibration
        np.clip(pixels[..., 0], 0, calib.width - 1, out=pixels[..., 0])
        np.clip(pixels[..., 1], 0, calib.height - 1, out=pixels[..., 1])
        pixels[~valid] = np.nan
        return pixels.astype(np.float32)

    def camera_info(self) -> CameraInfoFields:
        """The output CameraInfo fields: the rotated pinhole, no distortion."""
        out = self.output
        f = out.focal_px
        return CameraInfoFields(
            width=out.width,
            height=out.height,
            distortion_model="plumb_bob",
            d=(0.0,) * 5,
            k=out.k,
            r=tuple(float(v) for v in rotation_matrix(self.rotation).reshape(-1)),
            p=(f, 0.0, out.cx, 0.0, 0.0, f, out.cy, 0.0, 0.0, 0.0, 1.0, 0.0),
        )


def rectification_for(rect: Rectification | None, width: int, height: int) -> Rectification:
    """The rule of ``input.rectify`` for a frame of ``width`` x ``height``: ``rect`` fits it.

    The node applies it before a frame crosses to the worker, the engine again on its own.

    Raises:
        FrameError: no calibration yet (``rect`` is None), or one of another sensor size.
    """
    if rect is None:
        raise FrameError(
            "input.rectify is on and no camera_info has arrived yet: frames are refused "
            "until the camera's calibration comes"
        )
    if rect.calibration.size != (width, height):
        cw, ch = rect.calibration.size
        raise FrameError(
            f"frame {width}x{height} does not match the camera_info size {cw}x{ch} (input.rectify)"
        )
    return rect
