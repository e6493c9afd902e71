"""Camera models: where a 3D ray in the camera's optical frame lands on the sensor, in pixels.

The optical frame is ROS's (x right, y down, z forward); pixel centres are at integer
coordinates, (0, 0) the centre of the top-left pixel (OpenCV's, ROS's and projectaria-tools'
convention). The models, by ``CameraInfo.distortion_model`` name:

- ``plumb_bob``: OpenCV's pinhole with radial (k1, k2, k3) and tangential (p1, p2) distortion,
  ``D = [k1, k2, p1, p2, k3]``;
- ``rational_polynomial``: OpenCV's rational radial model,
  ``D = [k1, k2, p1, p2, k3, k4, k5, k6]``;
- ``equidistant``: OpenCV's fisheye model (Kannala-Brandt), ``D = [k1, k2, k3, k4]``;
- ``fisheye624``: Project Aria's FisheyeRadTanThinPrism with six radial, two tangential and four
  thin-prism terms, ``D = [k0..k5, p0, p1, s0..s3]``, ``K = [f, 0, cx, 0, f, cy, 0, 0, 1]``
  (ROS has no name for it; this package's convention).

Numpy only: both the node and the worker import it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DISTORTION_LENGTHS", "FISHEYE_MODELS", "fold_angle", "project"]

#: ``distortion_model`` -> the number of ``D`` coefficients it takes.
DISTORTION_LENGTHS: dict[str, int] = {
    "plumb_bob": 5,
    "rational_polynomial": 8,
    "equidistant": 4,
    "fisheye624": 12,
}
#: Models whose radial term is a polynomial in the ray's angle (the others: in tan(angle)).
FISHEYE_MODELS = ("equidistant", "fisheye624")
# Below this the radial scale theta / r is taken as its limit 1, as projectaria-tools does.
_EPS = float(np.finfo(np.float64).eps)


def _angle_scale(r: np.ndarray, coefficients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The angle atan(r) and the fisheye radial scale theta * poly(theta^2) / r."""
    theta = np.arctan(r)
    theta2 = theta * theta
    poly = np.ones_like(theta)
    power = theta2.copy()
    for k in coefficients:
        poly += k * power
        power = power * theta2
    ratio = np.where(r < _EPS, 1.0, theta / np.where(r < _EPS, 1.0, r))
    return theta, ratio * poly


def _distort(model: str, a: np.ndarray, b: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    """Normalised coordinates (a, b) = (x/z, y/z) -> distorted normalised coordinates."""
    r2 = a * a + b * b
    if model in ("plumb_bob", "rational_polynomial"):
        k1, k2, p1, p2, k3 = d[:5]
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        if model == "rational_polynomial":
            k4, k5, k6 = d[5:8]
            radial = radial / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xy = a * b
        u = a * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * a * a)
        v = b * radial + p1 * (r2 + 2.0 * b * b) + 2.0 * p2 * xy
        return u, v
    r = np.sqrt(r2)
    if model == "equidistant":
        _, scale = _angle_scale(r, d[:4])
        return a * scale, b * scale
    # fisheye624: radial in theta, then tangential and thin prism on the radial result.
    _, scale = _angle_scale(r, d[:6])
    xr, yr = a * scale, b * scale
    p0, p1 = d[6], d[7]
    s0, s1, s2, s3 = d[8:12]
    rd2 = xr * xr + yr * yr
    twice_dot = 2.0 * (xr * p0 + yr * p1)
    u = xr + twice_dot * xr + rd2 * p0 + rd2 * (s0 + rd2 * s1)
    v = yr + twice_dot * yr + rd2 * p1 + rd2 * (s2 + rd2 * s3)
    return u, v


def project(
    model: str, k: np.ndarray, d: np.ndarray, rays: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels where ``rays`` land, for a camera of ``model`` with intrinsics ``k``, ``D`` ``d``.

    Args:
        model: one of :data:`DISTORTION_LENGTHS`.
        k: the 3x3 camera matrix (row major, 9 values): fx, skew, cx / fy, cy.
        d: the model's distortion coefficients.
        rays: (..., 3) directions in the camera's optical frame.

    Returns:
        (..., 2) float64 pixel coordinates (x, y), and (...) whether the ray is in front of the
        camera (z > 0). The formulas need z > 0; for the others the pixel is meaningless.
    """
    k = np.asarray(k, np.float64).reshape(9)
    d = np.asarray(d, np.float64)
    rays = np.asarray(rays, np.float64)
    z = rays[..., 2]
    front = z > 0
    safe_z = np.where(front, z, 1.0)
    u, v = _distort(model, rays[..., 0] / safe_z, rays[..., 1] / safe_z, d)
    x = k[0] * u + k[1] * v + k[2]
    y = k[4] * v + k[5]
    return np.stack((x, y), axis=-1), front


def fold_angle(model: str, d: np.ndarray, samples: int = 4096) -> float:
    """The ray angle (radians from the optical axis) where the model's radial term folds back.

    A fitted distortion polynomial holds only where it was calibrated; beyond the angle at which
    the distorted radius stops growing, two angles would map to one pixel. Rays at or past it
    are not sampled. At most just under 90 degrees (the formulas divide by z).
    """
    d = np.asarray(d, np.float64)
    theta = np.linspace(0.0, np.pi / 2 * (1 - 1e-6), samples)
    r = np.tan(theta)
    zeros = np.zeros_like(r)
    u, _ = _distort(model, r, zeros, _radial_only(model, d))
    grows = np.diff(u) > 0
    if grows.all():
        return float(theta[-1])
    return float(theta[int(np.argmin(grows))])


def _radial_only(model: str, d: np.ndarray) -> np.ndarray:
    """``d`` with the tangential and thin-prism terms zeroed (the fold is a radial property)."""
    radial = d.copy()
    if model in ("plumb_bob", "rational_polynomial"):
        radial[2:4] = 0.0
    elif model == "fisheye624":
        radial[6:] = 0.0
    return radial
