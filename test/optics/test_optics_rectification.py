"""Calibration refusals, the output pinhole, the grid's geometry and the output CameraInfo."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from aria_cases import RGB_PARAMS, fisheye624_fields, remap_bilinear

from aria_perception.errors import ConfigError
from aria_perception.optics import Calibration, Pinhole, Rectification, rotation_matrix

GOOD = fisheye624_fields(RGB_PARAMS, 1408, 1408)


def _calibration(**changes: object) -> Calibration:
    return Calibration.from_camera_info(**{**GOOD, **changes})


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"distortion_model": "kannala_brandt_k3"}, "is not one of plumb_bob"),
        ({"distortion_model": ""}, "is not one of"),
        ({"d": GOOD["d"][:-1]}, "D has 11 values; fisheye624 takes 12"),
        ({"distortion_model": "plumb_bob"}, "D has 12 values; plumb_bob takes 5"),
        ({"k": [0.0, *GOOD["k"][1:]]}, "fx (K[0]) must be > 0"),
        ({"k": [*GOOD["k"][:4], -5.0, *GOOD["k"][5:]]}, "fy (K[4]) must be > 0"),
        ({"k": [math.nan, *GOOD["k"][1:]]}, "NaN"),
        ({"d": [math.nan, *GOOD["d"][1:]]}, "D holds a NaN"),
        ({"k": GOOD["k"][:8]}, "K must have 9 values"),
        ({"width": 0}, "width must be at least 2"),
    ],
)
def test_bad_calibrations_are_refused_with_the_reason(changes: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(reason)):
        _calibration(**changes)


def test_a_good_calibration_is_kept_as_given() -> None:
    calib = _calibration()
    assert calib.model == "fisheye624" and calib.size == (1408, 1408)
    assert calib.k[0] == RGB_PARAMS[0] and calib.d == tuple(RGB_PARAMS[3:])
    assert calib == _calibration()  # compared by value: a repeated camera_info is no change


@pytest.mark.parametrize("bad", [{"width": 1}, {"focal_px": 0.0}, {"focal_px": math.inf}])
def test_bad_pinholes_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError, match="rectify"):
        Pinhole(**{"width": 64, "height": 48, "focal_px": 50.0, **bad})


def _identity(width: int, height: int, focal: float) -> tuple[Calibration, Pinhole]:
    """A distortion-free camera and the pinhole equal to it: rectification is a no-op."""
    pinhole = Pinhole(width, height, focal)
    calib = Calibration.from_camera_info("plumb_bob", pinhole.k, [0.0] * 5, width, height)
    return calib, pinhole


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_the_grid_of_an_undistorted_camera_is_the_rotation(rotation: int) -> None:
    """One sample through the grid gives np.rot90 of the frame, clockwise."""
    calib, pinhole = _identity(40, 30, 35.0)
    rect = Rectification(calib, pinhole, rotation)
    grid = rect.grid()
    image = np.random.default_rng(rotation).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    expected = np.rot90(image, k=-rotation // 90)
    assert grid.shape == (*expected.shape[:2], 2) and grid.dtype == np.float32
    assert rect.output_size == (expected.shape[1], expected.shape[0])
    np.testing.assert_allclose(remap_bilinear(image, grid), expected, atol=1e-3)


def test_a_known_ray_lands_where_both_cameras_put_it() -> None:
    """A point seen by the fisheye at pixel s is seen by the rotated pinhole at o: grid[o] = s."""
    calib = _calibration()
    rect = Rectification(calib, Pinhole(1024, 1024, 500.0), 90)
    grid = rect.grid()
    out = rect.camera_info()
    k, r = np.reshape(out.k, (3, 3)), np.reshape(out.r, (3, 3))
    for point in ([0.0, 0.0, 1.0], [0.3, -0.2, 1.0], [-0.5, 0.6, 1.2]):
        source, valid = calib.project(np.array(point))
        assert valid
        seen = k @ (r @ np.array(point))
        ox, oy = seen[0] / seen[2], seen[1] / seen[2]
        # Output pixel centres are at integers: take a point that lands on one.
        ix, iy = round(ox), round(oy)
        back = np.linalg.inv(r) @ np.linalg.inv(k) @ np.array([ix, iy, 1.0])
        expected, _ = calib.project(back)
        np.testing.assert_allclose(grid[iy, ix], expected, atol=1e-3)
        assert abs(grid[iy, ix][0] - source[0]) < 3 and abs(grid[iy, ix][1] - source[1]) < 3
    # The optical axis: the output's centre samples the fisheye's principal point.
    centre = grid[511:513, 511:513].mean(axis=(0, 1))
    np.testing.assert_allclose(centre, RGB_PARAMS[1:3], atol=0.5)


def test_the_default_aria_pinhole_stays_inside_the_lens() -> None:
    """1024x1024 at 500 px: every output pixel samples the RGB camera's image circle."""
    from aria_perception.records import EngineConfig

    config = EngineConfig()
    pinhole = Pinhole(config.rectify_width, config.rectify_height, config.rectify_focal_px)
    grid = Rectification(_calibration(), pinhole, 90).grid()
    assert np.isfinite(grid).all()
    radius = np.hypot(grid[..., 0] - RGB_PARAMS[1], grid[..., 1] - RGB_PARAMS[2])
    assert radius.max() < 707.5  # projectaria-tools' valid radius of this camera


def test_rays_off_the_sensor_are_nan() -> None:
    calib, _ = _identity(40, 30, 35.0)
    grid = Rectification(calib, Pinhole(80, 60, 35.0), 0).grid()  # twice the field of view
    assert np.isnan(grid[0, 0]).all() and np.isfinite(grid[30, 40]).all()


def test_output_camera_info_after_a_quarter_turn() -> None:
    rect = Rectification(_calibration(), Pinhole(1024, 768, 500.0), 90)
    info = rect.camera_info()
    assert (info.width, info.height) == (768, 1024)
    assert info.distortion_model == "plumb_bob" and info.d == (0.0,) * 5
    assert info.k == (500.0, 0.0, 383.5, 0.0, 500.0, 511.5, 0.0, 0.0, 1.0)
    assert info.p == (500.0, 0.0, 383.5, 0.0, 0.0, 500.0, 511.5, 0.0, 0.0, 0.0, 1.0, 0.0)
    np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), rotation_matrix(90))
    # The camera's right (+x) points down in the upright image: x' = -y, y' = x.
    assert tuple(rotation_matrix(90) @ [1.0, 0.0, 0.0]) == (0.0, 1.0, 0.0)
    with pytest.raises(ConfigError, match="rotation"):
        Rectification(_calibration(), Pinhole(64, 64, 50.0), 45)
