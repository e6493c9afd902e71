"""aria_perception.ros.launch_support: the launch files' choices, run as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from aria_perception.errors import ConfigError
from aria_perception.ros.launch_support import (
    FASTDDS_VARIABLES,
    camera_info_topic,
    compressed_topic,
    fastdds_environment,
    launch_bool,
    node_parameters,
)

SHARE = "/opt/share/aria_perception"
PROFILE = f"{SHARE}/config/fastdds_large_data.xml"


@pytest.mark.parametrize(
    ("mode", "environ", "expected"),
    [
        ("off", {"ROS_DISTRO": "jazzy"}, {}),
        # Humble's Fast DDS 2.6 has no LARGE_DATA: the profile, under the Fast DDS 2 name.
        ("auto", {"ROS_DISTRO": "humble"}, {"FASTRTPS_DEFAULT_PROFILES_FILE": PROFILE}),
        ("auto", {}, {"FASTDDS_DEFAULT_PROFILES_FILE": PROFILE}),
        ("auto", {"ROS_DISTRO": "jazzy"}, {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}),
        ("auto", {"ROS_DISTRO": "kilted"}, {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}),
        # Localhost-only discovery: LARGE_DATA delivered nothing there, the profile does.
        (
            "auto",
            {"ROS_DISTRO": "jazzy", "ROS_AUTOMATIC_DISCOVERY_RANGE": "localhost"},
            {"FASTRTPS_DEFAULT_PROFILES_FILE": PROFILE},
        ),
        (
            "auto",
            {"ROS_DISTRO": "kilted", "ROS_LOCALHOST_ONLY": "1"},
            {"FASTDDS_DEFAULT_PROFILES_FILE": PROFILE},
        ),
        ("builtin", {"ROS_DISTRO": "humble"}, {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}),
        ("profile", {"ROS_DISTRO": "rolling"}, {"FASTDDS_DEFAULT_PROFILES_FILE": PROFILE}),
    ],
)
def test_fastdds_environment_by_mode_distro_and_discovery(
    mode: str, environ: dict[str, str], expected: dict[str, str]
) -> None:
    choice = fastdds_environment(mode, environ, SHARE)
    assert choice.variables == expected
    for name, value in expected.items():
        assert f"{name}={value}" in choice.message
    assert bool(choice.message) == (mode != "off")


@pytest.mark.parametrize("variable", FASTDDS_VARIABLES)
def test_fastdds_environment_keeps_what_the_user_set_unless_told(variable: str) -> None:
    environ = {"ROS_DISTRO": "jazzy", variable: "mine"}
    kept = fastdds_environment("auto", environ, SHARE)
    assert kept.variables == {} and variable in kept.message
    forced = fastdds_environment("builtin", environ, SHARE)
    assert forced.variables == {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}
    with pytest.raises(ConfigError, match="fastdds_large_data"):
        fastdds_environment("large", environ, SHARE)


def test_topics_follow_image_transport() -> None:
    assert camera_info_topic("/camera_rgb/image_raw") == "/camera_rgb/camera_info"
    assert camera_info_topic("/aria/slam/left/image_raw/") == "/aria/slam/left/camera_info"
    assert camera_info_topic("/image") == "/camera_info"
    assert camera_info_topic("image") == "camera_info"
    assert compressed_topic("/camera_rgb/image_raw/") == "/camera_rgb/image_raw/compressed"


def test_launch_bool() -> None:
    for text in ("true", "True", " 1", "yes"):
        assert launch_bool("x", text) is True
    for text in ("false", "0", "no", ""):
        assert launch_bool("x", text) is False
    with pytest.raises(ConfigError, match="eye_tracking"):
        launch_bool("eye_tracking", "maybe")


def test_node_parameters_by_name_in_any_namespace(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        """
/**:
  ros__parameters:
    device: auto
    depth: {input_size: 256, enabled: true}
    detector: {classes: [person]}
/rgb_perception:
  ros__parameters:
    depth: {input_size: 320}
    detector: {classes: []}
/aria/rgb_perception:
  ros__parameters:
    device: cuda:1
/**/slam_left_perception:
  ros__parameters:
    input.max_pixels: 307200
/other/*:
  ros__parameters:
    depth.frame_skip: 3
aria:
  slam_left_perception:
    ros__parameters:
      depth.frame_skip: 2
/perception_container:
  ros__parameters:
    unrelated: 1
"""
    )
    # Later sections win; an empty list is left out (launch_ros refuses one).
    assert node_parameters(path, "rgb_perception") == {
        "device": "auto",
        "depth.input_size": 320,
        "depth.enabled": True,
    }
    assert node_parameters(path, "rgb_perception", "/aria")["device"] == "cuda:1"
    assert node_parameters(path, "rgb_perception", "other")["depth.input_size"] == 320
    assert node_parameters(path, "rgb_perception", "other")["depth.frame_skip"] == 3
    slam = node_parameters(path, "slam_left_perception", "aria")
    assert slam["input.max_pixels"] == 307200 and slam["depth.frame_skip"] == 2
    assert "depth.frame_skip" not in node_parameters(path, "slam_left_perception")
    assert node_parameters(path, "et_perception") == {
        "device": "auto",
        "depth.input_size": 256,
        "depth.enabled": True,
        "detector.classes": ["person"],
    }


def test_node_parameters_refuses_what_is_not_a_params_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml"):
        node_parameters(tmp_path / "missing.yaml", "rgb_perception")
    bad = tmp_path / "bad.yaml"
    bad.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        node_parameters(bad, "rgb_perception")
    bad.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        node_parameters(bad, "rgb_perception")
