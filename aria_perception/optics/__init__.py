"""Camera optics: camera models, calibrations, the rectified pinhole and the remap grid.

Numpy and the standard library only, so both the node (which checks each ``camera_info``) and
the worker (which builds the grid the engine samples through) import it. See "Optics" in
docs/design.md.

Modules: :mod:`~.models` (projection of rays to pixels for ``plumb_bob``,
``rational_polynomial``, ``equidistant`` and ``fisheye624``), :mod:`~.calibration`
(:class:`Calibration`, checked), :mod:`~.pinhole` (:class:`Pinhole`, the output camera),
:mod:`~.rectification` (:class:`Rectification`: the grid and the output CameraInfo).
"""

from aria_perception.optics.calibration import Calibration
from aria_perception.optics.models import DISTORTION_LENGTHS, FISHEYE_MODELS, fold_angle, project
from aria_perception.optics.pinhole import Pinhole
from aria_perception.optics.rectification import (
    CameraInfoFields,
    Rectification,
    rectification_for,
    rotation_matrix,
)

__all__ = [
    "DISTORTION_LENGTHS",
    "FISHEYE_MODELS",
    "CameraInfoFields",
    "Calibration",
    "Pinhole",
    "Rectification",
    "fold_angle",
    "project",
    "rectification_for",
    "rotation_matrix",
]
