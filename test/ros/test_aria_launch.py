"""launch/aria.launch.py and config/aria.yaml, run against the launch stand-ins.

The launch file's own code runs (``launch_stubs``: Humble's signatures, ``ros2 launch``'s
handling of arguments); what it hands launch_ros is checked here, and
test_aria_container.py sends it to a real container as launch_ros would.
"""

from __future__ import annotations

import re
from glob import glob
from pathlib import Path
from typing import Any

import pytest
import yaml
from launch_stubs import (
    ROOT,
    ComposableNode,
    ComposableNodeContainer,
    LaunchRun,
    LoadComposableNodes,
    SetEnvironmentVariable,
    load_launch_file,
    run_launch,
)

from aria_perception.ros import param_table
from aria_perception.ros.container import node_names_from_yaml
from aria_perception.ros.launch_support import FASTDDS_VARIABLES, node_parameters

LAUNCH = ROOT / "launch" / "aria.launch.py"
ARIA_YAML = ROOT / "config" / "aria.yaml"
#: The topics ``bench import`` writes for an Aria recording (frame_id = camera name).
IMPORT_TOPICS = {
    "rgb_perception": "/camera_rgb",
    "slam_left_perception": "/camera_slam_left",
    "slam_right_perception": "/camera_slam_right",
    "et_perception": "/camera_et",
}
#: Node parameters the launch file sets that another part of the package declares:
#: input.rectify comes with GPU rectification (its rectify.* parameters come from the file).
PENDING = {"input.rectify"} - set(param_table.SPECS)
#: Parameters rclpy declares itself.
ROS_PARAMETERS = {"use_sim_time"}


def _nodes(run: LaunchRun) -> dict[str, ComposableNode]:
    [container] = run.of(ComposableNodeContainer)
    return {n["name"]: n for n in container["composable_node_descriptions"]}


def _parameters(node: ComposableNode) -> dict[str, Any]:
    [parameters] = node["parameters"]
    return parameters


def test_defaults_one_container_three_cameras_on_the_import_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in FASTDDS_VARIABLES:  # the user's own choice would be kept
        monkeypatch.delenv(variable, raising=False)
    run = run_launch(LAUNCH)
    [container] = run.of(ComposableNodeContainer)
    assert (container["package"], container["executable"]) == (
        "aria_perception",
        "perception_container",
    )
    setup = (ROOT / "setup.py").read_text()
    assert "perception_container = aria_perception.ros.container:main" in setup
    assert container["name"] == "perception_container" and container["namespace"] == ""
    assert container["arguments"] == ["--ros-args", "--log-level", "info"]
    nodes = _nodes(run)
    assert list(nodes) == ["rgb_perception", "slam_left_perception", "slam_right_perception"]
    resource = (ROOT / "resource" / "rclpy_components" / "aria_perception").read_text()
    for name, node in nodes.items():
        assert (node["package"], node["plugin"]) == (
            "aria_perception",
            "aria_perception::PerceptionNode",
        )
        assert f"{node['plugin']} = aria_perception.ros.node:PerceptionNode" in resource
        assert "namespace" not in node.given
        camera = IMPORT_TOPICS[name]
        assert dict(node["remappings"]) == {
            "image": f"{camera}/image_raw",
            "image/compressed": f"{camera}/image_raw/compressed",
            "camera_info": f"{camera}/camera_info",
        }
        params = _parameters(node)
        assert params["input.rotation"] == 90 and params["input.rectify"] is False
        assert params["use_sim_time"] is False
        assert "device" not in params or params["device"] == "auto", "the file's, not forced"
        assert params == {
            **node_parameters(ARIA_YAML, name),
            "use_sim_time": False,
            "input.rotation": 90,
            "input.rectify": False,
        }
    assert _parameters(nodes["slam_left_perception"])["input.max_pixels"] == 640 * 480
    assert _parameters(nodes["rgb_perception"])["input.max_pixels"] >= 1408 * 1408
    # The container starts after the environment is set.
    env = run.of(SetEnvironmentVariable)
    assert env and all(run.actions.index(e) < run.actions.index(container) for e in env)


def test_arguments_reach_the_nodes_and_every_argument_is_read() -> None:
    run = run_launch(
        LAUNCH,
        {
            "eye_tracking": "true",
            "namespace": "aria",
            "rgb_topic": "/aria/rgb/image",
            "slam_left_rotation": "0",
            "et_rectify": "true",
            "device": "cuda:1",
            "allow_random_weights": "true",
            "use_sim_time": "true",
            "log_level": "debug",
        },
    )
    assert run.read == set(run.declared), set(run.declared) - run.read
    [container] = run.of(ComposableNodeContainer)
    assert container["namespace"] == "aria"
    assert container["arguments"][-1] == "debug"
    nodes = _nodes(run)
    assert list(nodes) == [*IMPORT_TOPICS]
    assert all(node["namespace"] == "aria" for node in nodes.values())
    assert dict(nodes["rgb_perception"]["remappings"])["camera_info"] == "/aria/rgb/camera_info"
    assert dict(nodes["et_perception"]["remappings"])["image"] == "/camera_et/image_raw"
    rotations = {n: _parameters(node)["input.rotation"] for n, node in nodes.items()}
    assert rotations == {
        "rgb_perception": 90,
        "slam_left_perception": 0,
        "slam_right_perception": 90,
        "et_perception": 90,
    }
    assert [n for n, node in nodes.items() if _parameters(node)["input.rectify"]] == [
        "et_perception"
    ]
    for node in nodes.values():
        params = _parameters(node)
        assert params["device"] == "cuda:1" and params["allow_random_weights"] is True
        assert params["use_sim_time"] is True
    # In a namespace the file's sections still apply by node name.
    assert _parameters(nodes["slam_right_perception"])["input.max_pixels"] == 640 * 480


def test_container_argument_loads_the_same_nodes_into_a_running_container() -> None:
    started = _nodes(run_launch(LAUNCH, {"eye_tracking": "1"}))
    run = run_launch(LAUNCH, {"eye_tracking": "1", "container": "/perception_container"})
    assert not run.of(ComposableNodeContainer) and not run.of(SetEnvironmentVariable)
    [load] = run.of(LoadComposableNodes)
    assert load["target_container"] == "/perception_container"
    loaded = {n["name"]: n for n in load["composable_node_descriptions"]}
    assert {n: node.given for n, node in loaded.items()} == {
        n: node.given for n, node in started.items()
    }


@pytest.mark.parametrize(
    "arguments",
    [
        {"rgb_rotation": "45"},
        {"fastdds_large_data": "fast"},
        {"slam_right_typo": "1"},
    ],
)
def test_refused_arguments(arguments: dict[str, str]) -> None:
    with pytest.raises(AssertionError):
        run_launch(LAUNCH, arguments)


def test_a_wrong_boolean_fails_the_launch() -> None:
    from aria_perception.errors import ConfigError

    with pytest.raises(ConfigError, match="et_rectify"):
        run_launch(LAUNCH, {"et_rectify": "sometimes"})


def test_parameters_are_what_launch_ros_can_send() -> None:
    """launch_ros (Humble) takes scalars and non-empty lists of one type."""
    for node in _nodes(run_launch(LAUNCH, {"eye_tracking": "true"})).values():
        for name, value in _parameters(node).items():
            if isinstance(value, list):
                assert value and len({type(v) for v in value}) == 1, name
                assert type(value[0]) in (bool, int, float, str), name
            else:
                assert type(value) in (bool, int, float, str), name
            if name not in PENDING | ROS_PARAMETERS:
                param_table.validate(name, value)
        assert set(_parameters(node)) - ROS_PARAMETERS - PENDING <= set(param_table.SPECS)


def test_aria_yaml_sets_only_declared_parameters_with_valid_values() -> None:
    doc = yaml.safe_load(ARIA_YAML.read_text())
    assert isinstance(doc, dict)
    for key in doc:
        name = key.rsplit("/", 1)[-1]
        assert name == "**" or name in IMPORT_TOPICS, f"{key}: not a node of the launch file"
    for name in IMPORT_TOPICS:
        values = node_parameters(ARIA_YAML, name)
        assert set(values) <= set(param_table.SPECS), set(values) - set(param_table.SPECS)
        for key, value in values.items():
            param_table.validate(key, value)
    # The container started with the file alone runs RGB and both SLAM cameras, not eye tracking.
    assert node_names_from_yaml(ARIA_YAML) == [
        "/rgb_perception",
        "/slam_left_perception",
        "/slam_right_perception",
    ]


def test_launch_constants_and_install() -> None:
    module = load_launch_file(LAUNCH)
    assert [c.node_name for c in module.CAMERAS] == [*IMPORT_TOPICS]
    for camera in module.CAMERAS:
        assert re.fullmatch(r"(/[A-Za-z_][A-Za-z0-9_]*)+", camera.image_topic)
    # setup.py installs every launch file and config file (colcon: share/aria_perception/...).
    setup = (ROOT / "setup.py").read_text()
    assert '(f"share/{package_name}/launch", glob("launch/*.py"))' in setup
    assert '(f"share/{package_name}/config", glob("config/*"))' in setup
    installed = {Path(p).name for p in glob(str(ROOT / "launch" / "*.py"))}
    installed |= {Path(p).name for p in glob(str(ROOT / "config" / "*"))}
    assert {"aria.launch.py", "aria.yaml"} <= installed
