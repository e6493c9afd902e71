"""The CameraInfo convention for Aria's camera models (plain numbers, no ROS, no projectaria)."""

from __future__ import annotations

import pytest

from aria_perception.bench.camera_info import (
    EQUIDISTANT,
    FISHEYE624,
    camera_info_fields,
    fisheye624_camera_info,
    fisheye624_params,
)
from aria_perception.bench.errors import UsageError
from aria_perception.bench.topics import camera_info_topic

PARAMS = [610.9, 715.1, 716.7, *(0.1 * i for i in range(1, 13))]


def test_fisheye624_fields_and_back() -> None:
    info = fisheye624_camera_info(PARAMS, 1408, 1408)
    assert (info.width, info.height, info.distortion_model) == (1408, 1408, FISHEYE624)
    assert info.k == (610.9, 0, 715.1, 0, 610.9, 716.7, 0, 0, 1)
    assert info.d == tuple(PARAMS[3:]) and len(info.d) == 12
    assert info.r == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert info.p == (610.9, 0, 715.1, 0, 0, 610.9, 716.7, 0, 0, 0, 1, 0)
    assert fisheye624_params(info.k, info.d) == tuple(PARAMS)
    assert camera_info_fields("CameraModelType.FISHEYE624", PARAMS, 1408, 1408) == info


def test_kannala_brandt_is_equidistant_and_other_models_have_none() -> None:
    info = camera_info_fields("KANNALA_BRANDT_K3", [100, 101, 50, 51, 1, 2, 3, 4], 200, 200)
    assert info is not None and info.distortion_model == EQUIDISTANT
    assert info.k == (100, 0, 50, 0, 101, 51, 0, 0, 1) and info.d == (1, 2, 3, 4)
    assert camera_info_fields("LINEAR", [100, 100, 50, 50], 200, 200) is None


def test_wrong_numbers_are_refused() -> None:
    with pytest.raises(UsageError, match="15 parameters"):
        fisheye624_camera_info(PARAMS[:14], 10, 10)
    with pytest.raises(UsageError, match="size"):
        fisheye624_camera_info(PARAMS, 0, 10)
    with pytest.raises(UsageError, match="8 parameters"):
        camera_info_fields("KANNALA_BRANDT_K3", [1, 2, 3], 10, 10)
    info = fisheye624_camera_info(PARAMS, 10, 10)
    with pytest.raises(UsageError, match="one focal length"):
        fisheye624_params((1, 0, 2, 0, 3, 4, 0, 0, 1), info.d)
    with pytest.raises(UsageError, match="12 D"):
        fisheye624_params(info.k, info.d[:5])


def test_camera_info_beside_an_image_topic() -> None:
    assert camera_info_topic("/camera_rgb/image_raw") == "/camera_rgb/camera_info"
    assert camera_info_topic("/camera_rgb/image_raw/compressed") == "/camera_rgb/camera_info"
    assert camera_info_topic("/bench_echo/image") == "/bench_echo/camera_info"
    assert camera_info_topic("/image") == "/camera_info"
