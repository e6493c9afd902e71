"""The CameraInfo convention for Aria's camera models: plain numbers in, a record out.

ROS has no distortion model for Aria's Fisheye624 (``FisheyeRadTanThinPrism``), so the package
writes it into a ``sensor_msgs/CameraInfo`` as follows (docs/design.md, "Topic contract"):

- ``distortion_model``: ``"fisheye624"``;
- ``K = [f, 0, cx, 0, f, cy, 0, 0, 1]`` (one focal length for both axes);
- ``D = [k0, k1, k2, k3, k4, k5, p0, p1, s0, s1, s2, s3]`` (12 values);
- ``R`` identity, ``P = [f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0]``;
- ``width``, ``height``: the calibrated sensor image size.

projectaria-tools gives the model's parameters as ``[f, cx, cy, k0..k5, p0, p1, s0..s3]`` (15
values); :func:`fisheye624_params` turns such a CameraInfo back into them. Aria's eye-tracking
cameras use Kannala-Brandt K3 (``[fx, fy, cx, cy, k0..k3]``), which is OpenCV's fisheye model,
ROS's ``equidistant``. This module imports neither ROS nor projectaria-tools; the record is
:class:`aria_perception.optics.CameraInfoFields`, which the node's side uses too.
"""

from __future__ import annotations

from collections.abc import Sequence

from aria_perception.bench.errors import UsageError
from aria_perception.optics import CameraInfoFields

FISHEYE624 = "fisheye624"
EQUIDISTANT = "equidistant"
#: projectaria-tools' model names (``CameraModelType`` names) and the ROS model each becomes.
ARIA_MODELS = {"FISHEYE624": FISHEYE624, "KANNALA_BRANDT_K3": EQUIDISTANT}
FISHEYE624_PARAMS = 15
KB3_PARAMS = 8
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _size(width: int, height: int) -> tuple[int, int]:
    if int(width) < 1 or int(height) < 1:
        raise UsageError(f"camera image size must be positive, got {width}x{height}")
    return int(width), int(height)


def _pinhole(fx: float, fy: float, cx: float, cy: float) -> tuple[tuple, tuple]:
    k = (fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0)
    p = (fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0)
    return k, p


def fisheye624_camera_info(params: Sequence[float], width: int, height: int) -> CameraInfoFields:
    """CameraInfo fields of a Fisheye624 camera.

    Args:
        params: ``[f, cx, cy, k0..k5, p0, p1, s0..s3]`` as projectaria-tools'
            ``projection_params()`` gives them.
        width: Calibrated image width.
        height: Calibrated image height.

    Raises:
        UsageError: Not 15 parameters, or an empty size.
    """
    values = tuple(float(v) for v in params)
    if len(values) != FISHEYE624_PARAMS:
        raise UsageError(
            f"Fisheye624 takes {FISHEYE624_PARAMS} parameters [f, cx, cy, k0..k5, p0, p1, "
            f"s0..s3], got {len(values)}"
        )
    f, cx, cy = values[:3]
    k, p = _pinhole(f, f, cx, cy)
    w, h = _size(width, height)
    return CameraInfoFields(w, h, FISHEYE624, d=values[3:], k=k, r=IDENTITY, p=p)


def kb3_camera_info(params: Sequence[float], width: int, height: int) -> CameraInfoFields:
    """CameraInfo fields of a Kannala-Brandt K3 camera (ROS ``equidistant``).

    Args:
        params: ``[fx, fy, cx, cy, k0, k1, k2, k3]``.
        width: Calibrated image width.
        height: Calibrated image height.

    Raises:
        UsageError: Not 8 parameters, or an empty size.
    """
    values = tuple(float(v) for v in params)
    if len(values) != KB3_PARAMS:
        raise UsageError(
            f"Kannala-Brandt K3 takes {KB3_PARAMS} parameters [fx, fy, cx, cy, k0..k3], "
            f"got {len(values)}"
        )
    fx, fy, cx, cy = values[:4]
    k, p = _pinhole(fx, fy, cx, cy)
    w, h = _size(width, height)
    return CameraInfoFields(w, h, EQUIDISTANT, d=values[4:], k=k, r=IDENTITY, p=p)


def camera_info_fields(
    model: str, params: Sequence[float], width: int, height: int
) -> CameraInfoFields | None:
    """CameraInfo fields for a projectaria-tools camera model, or None for another model.

    Args:
        model: The model's name (``FISHEYE624``, ``KANNALA_BRANDT_K3``; the
            ``CameraModelType.`` prefix may be included).
        params: The model's projection parameters.
        width: Calibrated image width.
        height: Calibrated image height.
    """
    name = str(model).rsplit(".", 1)[-1].upper()
    if ARIA_MODELS.get(name) == FISHEYE624:
        return fisheye624_camera_info(params, width, height)
    if ARIA_MODELS.get(name) == EQUIDISTANT:
        return kb3_camera_info(params, width, height)
    return None


def fisheye624_params(k: Sequence[float], d: Sequence[float]) -> tuple[float, ...]:
    """The 15 Fisheye624 parameters ``[f, cx, cy, k0..k5, p0, p1, s0..s3]`` of a CameraInfo.

    Args:
        k: The CameraInfo's ``K`` (9 values, ``K[0] == K[4]``).
        d: Its ``D`` (12 values).

    Raises:
        UsageError: ``K`` or ``D`` does not follow the convention.
    """
    k, d = tuple(float(v) for v in k), tuple(float(v) for v in d)
    if len(k) != 9 or len(d) != FISHEYE624_PARAMS - 3:
        raise UsageError(
            f"fisheye624 CameraInfo needs 9 K and {FISHEYE624_PARAMS - 3} D values, "
            f"got {len(k)} and {len(d)}"
        )
    if k[0] != k[4]:
        raise UsageError(f"fisheye624 has one focal length, but K has fx={k[0]} and fy={k[4]}")
    return (k[0], k[2], k[5], *d)
