"""Camera models against their references: projectaria-tools for Fisheye624, OpenCV for ROS's."""

from __future__ import annotations

import numpy as np
import pytest
from aria_cases import aria_provider

from aria_perception.optics import Calibration, project

K = np.array([420.0, 0.0, 330.5, 0.0, 415.0, 241.25, 0.0, 0.0, 1.0])


def _rays(count: int, max_angle_deg: float, seed: int = 0) -> np.ndarray:
    """Random unit rays within ``max_angle_deg`` of the optical axis."""
    rng = np.random.default_rng(seed)
    theta = np.radians(max_angle_deg) * np.sqrt(rng.uniform(0, 1, count))
    phi = rng.uniform(0, 2 * np.pi, count)
    return np.stack((np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)), -1)


@pytest.mark.parametrize("label", ["camera-rgb", "camera-slam-left", "camera-slam-right"])
def test_fisheye624_projects_as_projectaria_tools(label: str) -> None:
    """Every ray projectaria-tools projects onto the sensor lands on the same pixel here."""
    calib = aria_provider().get_device_calibration().get_camera_calib(label)
    params = np.asarray(calib.get_projection_params())
    width, height = (int(v) for v in calib.get_image_size())
    f, cx, cy = params[:3]
    ours = Calibration.from_camera_info(
        "fisheye624", [f, 0, cx, 0, f, cy, 0, 0, 1], params[3:], width, height
    )
    rays = _rays(4000, 75.0)
    pixels, valid = ours.project(rays)
    compared = 0
    for ray, pixel, ok in zip(rays, pixels, valid, strict=True):
        reference = calib.project(ray)
        if reference is None:
            continue
        compared += 1
        assert ok, (ray, pixel, reference)
        np.testing.assert_allclose(pixel, reference, atol=1e-6)
        np.testing.assert_allclose(pixel, calib.project_no_checks(ray), atol=1e-6)
    assert compared > 1000


def test_plumb_bob_and_rational_polynomial_project_as_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    rays = _rays(500, 40.0, seed=1)
    for model, d in (
        ("plumb_bob", [-0.28, 0.07, 1e-3, -2e-3, -0.01]),
        ("rational_polynomial", [0.4, -0.1, 1e-3, -2e-3, 0.02, 0.6, -0.05, 0.01]),
    ):
        ours, front = project(model, K, np.array(d), rays)
        ref, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K.reshape(3, 3), np.array(d))
        assert front.all()
        np.testing.assert_allclose(ours, ref.reshape(-1, 2), atol=1e-6, err_msg=model)


def test_equidistant_projects_as_opencv_fisheye() -> None:
    cv2 = pytest.importorskip("cv2")
    rays = _rays(500, 80.0, seed=2)
    d = np.array([0.05, -0.01, 0.003, -0.0005])
    ours, _ = project("equidistant", K, d, rays)
    k = K.reshape(3, 3)
    ref, _ = cv2.fisheye.projectPoints(rays[None], np.zeros(3), np.zeros(3), k, d)
    np.testing.assert_allclose(ours, ref.reshape(-1, 2), atol=1e-6)


def test_closed_form_values() -> None:
    """Without distortion: the pinhole models give f*tan(angle), the fisheye ones f*angle."""
    ray = np.array([np.sin(0.5), 0.0, np.cos(0.5)])
    k = np.array([100.0, 0, 50, 0, 100.0, 40, 0, 0, 1])
    for model, length in (("plumb_bob", 5), ("rational_polynomial", 8)):
        pixel, _ = project(model, k, np.zeros(length), ray)
        np.testing.assert_allclose(pixel, [50 + 100 * np.tan(0.5), 40], atol=1e-9)
    for model, length in (("equidistant", 4), ("fisheye624", 12)):
        pixel, _ = project(model, k, np.zeros(length), ray)
        np.testing.assert_allclose(pixel, [50 + 100 * 0.5, 40], atol=1e-9)
    # fisheye624's thin prism: s0 * rd^2 on x, s2 * rd^2 on y, with rd = theta here.
    d = np.zeros(12)
    d[8], d[10] = 0.1, 0.2
    pixel, _ = project("fisheye624", k, d, ray)
    np.testing.assert_allclose(pixel, [50 + 100 * (0.5 + 0.1 * 0.25), 40 + 100 * 0.2 * 0.25])
    behind, front = project("fisheye624", k, np.zeros(12), np.array([0.0, 0.0, -1.0]))
    assert not front


def test_rays_past_the_fold_are_not_usable() -> None:
    """A radial polynomial that turns back marks the rays beyond its turn unusable."""
    k = [100.0, 0, 500, 0, 100.0, 500, 0, 0, 1]
    folding = Calibration.from_camera_info("equidistant", k, [-0.3, 0, 0, 0], 1000, 1000)
    # theta (1 - 0.3 theta^2) grows until theta = 1/sqrt(0.9).
    assert folding.fold == pytest.approx(1 / np.sqrt(0.9), abs=1e-3)
    _, valid = folding.project(
        np.array([[np.sin(0.9), 0, np.cos(0.9)], [np.sin(1.2), 0, np.cos(1.2)]])
    )
    assert valid.tolist() == [True, False]
