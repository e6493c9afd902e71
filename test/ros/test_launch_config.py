"""launch/central.launch.py, config/central.rviz, config/container.yaml, the Fast DDS profile.

Also the plugin registration (resource/rclpy_components) that ``container:=NAME`` relies on.

`launch` and `launch_ros` are not on PyPI, so in the pip-only environment the launch files are
checked by compiling and parsing them (the APIs they use, all present in Humble, their
arguments, the node and the topics that come out of it, which the rviz config must show) and
by running them against stand-ins of the launch classes (``launch_stubs``).
launch/aria.launch.py has its own tests in test_aria_launch.py.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from launch_stubs import LogInfo, Node, SetEnvironmentVariable, run_launch

from aria_perception.ros import param_table
from aria_perception.ros.container import node_names_from_yaml, split_name
from aria_perception.ros.node import OUTPUT_TOPICS

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "central.launch.py"
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))

# launch / launch_ros names that exist in Humble (and later) with the arguments used.
HUMBLE_API = {
    "launch": {"LaunchDescription"},
    "launch.actions": {
        "DeclareLaunchArgument",
        "LogInfo",
        "OpaqueFunction",
        "SetEnvironmentVariable",
    },
    "launch.substitutions": {"LaunchConfiguration"},
    "launch_ros.actions": {"ComposableNodeContainer", "LoadComposableNodes", "Node"},
    "launch_ros.descriptions": {"ComposableNode"},
    "ament_index_python.packages": {"get_package_share_directory"},
    # The launch files' shared choices: the installed package, not a sibling file (a launch
    # file is loaded by path, so its directory is not on sys.path).
    "aria_perception.ros.launch_support": {
        "FASTDDS_MODES",
        "OVERRIDE_ARGUMENTS",
        "camera_info_topic",
        "compressed_topic",
        "fastdds_environment",
        "launch_bool",
        "node_parameters",
    },
    "typing": {"NamedTuple"},
}


def _tree(path: Path = LAUNCH) -> ast.Module:
    source = path.read_text()
    compile(source, str(path), "exec")  # it at least compiles
    return ast.parse(source)


def _constant(tree: ast.Module, name: str) -> str:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not defined in {LAUNCH.name}")


def _calls(tree: ast.Module, func: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == func
    ]


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_uses_only_humble_apis(path: Path) -> None:
    tree = _tree(path)
    imported: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            imported.setdefault(node.module or "", set()).update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            assert all(a.name in ("os",) for a in node.names), ast.dump(node)
    for module, names in imported.items():
        assert module in HUMBLE_API, f"unexpected import from {module}"
        assert names <= HUMBLE_API[module], names - HUMBLE_API[module]
    assert any(
        isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
        for n in tree.body
    )


def test_launch_arguments() -> None:
    tree = _tree()
    declared = set(run_launch(LAUNCH).declared)
    required = {
        "namespace",
        "image_topic",
        "camera_info_topic",
        "params_file",
        "use_sim_time",
        "device",
        "allow_random_weights",
        "log_level",
    }
    assert required <= declared, required - declared
    # Every LaunchConfiguration read is declared.
    reads = {
        c.args[0].value
        for c in _calls(tree, "LaunchConfiguration") + _calls(tree, "arg")
        if c.args and isinstance(c.args[0], ast.Constant)
    }
    assert reads and reads <= declared, reads - declared
    # params_file defaults to the installed config/central.yaml.
    [params_arg] = [
        c
        for c in _calls(tree, "DeclareLaunchArgument")
        if isinstance(c.args[0], ast.Constant) and c.args[0].value == "params_file"
    ]
    default = ast.unparse(_kw(params_arg, "default_value"))
    assert "_share()" in default and "'central.yaml'" in default and "'config'" in default
    assert "get_package_share_directory(PACKAGE)" in ast.unparse(tree)
    assert _constant(tree, "PACKAGE") == "aria_perception"


def test_launch_starts_the_node_as_central_perception_with_remaps() -> None:
    tree = _tree()
    assert _constant(tree, "NODE_NAME") == "central_perception"
    [node] = _calls(tree, "Node")
    assert ast.unparse(_kw(node, "package")) == "PACKAGE"
    executable = ast.literal_eval(_kw(node, "executable"))
    setup = (ROOT / "setup.py").read_text()
    assert f"{executable} = aria_perception.ros.node:main" in setup
    assert ast.unparse(_kw(node, "name")) == "NODE_NAME"
    assert ast.unparse(_kw(node, "remappings")) == "remappings"
    [remappings] = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "remappings"
    ]
    remaps = ast.unparse(remappings)
    for topic in ("'image'", "'image/compressed'", "'camera_info'"):
        assert topic in remaps
    image_topic = _constant(tree, "DEFAULT_IMAGE_TOPIC")
    assert re.fullmatch(r"(/[A-Za-z_][A-Za-z0-9_]*)+", image_topic), "a valid ROS 2 name"
    assert re.fullmatch(
        r"(/[A-Za-z_][A-Za-z0-9_]*)+", _constant(tree, "DEFAULT_CAMERA_INFO_TOPIC")
    )


def test_launch_loads_into_a_running_container_when_given_one() -> None:
    """``container:=NAME``: the same node, parameters and remaps, as a ComposableNode."""
    tree = _tree()
    [load] = _calls(tree, "LoadComposableNodes")
    assert ast.unparse(_kw(load, "target_container")) == "container"
    assert ast.unparse(_kw(load, "composable_node_descriptions")) == "[node]"
    [composable] = _calls(tree, "ComposableNode")
    [node] = _calls(tree, "Node")
    for key in ("package", "name", "parameters", "remappings"):
        assert ast.unparse(_kw(composable, key)) == ast.unparse(_kw(node, key)), key
    assert ast.unparse(_kw(composable, "plugin")) == "PLUGIN"
    # The plugin is registered in the ament index resource that setup.py installs.
    plugin = _constant(tree, "PLUGIN")
    resource = ROOT / "resource" / "rclpy_components" / "aria_perception"
    lines = [line.split("=", 1) for line in resource.read_text().splitlines() if line.strip()]
    registered = {name.strip(): target.strip() for name, target in lines}
    assert registered[plugin] == "aria_perception.ros.node:PerceptionNode"
    setup = (ROOT / "setup.py").read_text()
    assert '"share/ament_index/resource_index/rclpy_components"' in setup
    assert 'f"resource/rclpy_components/{package_name}"' in setup
    # Without the argument the node is started as before (the Node branch comes after it).
    source = ast.unparse(tree)
    assert "container = arg('container')" in source and "if container:" in source


def test_launch_sets_a_large_data_transport_unless_the_user_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The choice itself is tested in test_launch_support.py; here, that the file applies it."""
    for name in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE",
                 "FASTRTPS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                 "ROS_LOCALHOST_ONLY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    run = run_launch(LAUNCH)
    [env] = run.of(SetEnvironmentVariable)
    assert (env["name"], env["value"]) == ("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    assert run.actions.index(env) < run.actions.index(run.of(Node)[0]), "set before the start"
    profile = run_launch(LAUNCH, {"fastdds_large_data": "profile"}).of(SetEnvironmentVariable)
    assert [(e["name"], e["value"]) for e in profile] == [
        ("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_data.xml"))
    ]
    assert (ROOT / "config" / "fastdds_large_data.xml").is_file()
    assert not run_launch(LAUNCH, {"fastdds_large_data": "off"}).of(SetEnvironmentVariable)
    monkeypatch.setenv("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    kept = run_launch(LAUNCH)
    assert not kept.of(SetEnvironmentVariable)
    assert any("keeping your" in a["msg"] for a in kept.of(LogInfo))


def test_central_launch_runs_with_its_defaults() -> None:
    """Run against the launch stand-ins: every argument is read and the node gets them."""
    run = run_launch(LAUNCH, {"device": "cpu", "namespace": "aria"})
    assert run.read == set(run.declared)
    [node] = run.of(Node)
    assert node["name"] == "central_perception" and node["namespace"] == "aria"
    assert dict(node["remappings"]) == {
        "image": "/camera_rgb/image_raw",
        "image/compressed": "/camera_rgb/image_raw/compressed",
        "camera_info": "/camera_rgb/camera_info",
    }
    assert node["parameters"] == [
        str(ROOT / "config" / "central.yaml"),
        {"use_sim_time": False, "device": "cpu"},
    ]


def test_central_launch_reads_booleans_strictly() -> None:
    from aria_perception.errors import ConfigError

    run = run_launch(LAUNCH, {"allow_random_weights": "Yes", "use_sim_time": "1"})
    [node] = run.of(Node)
    assert node["parameters"][1] == {"use_sim_time": True, "allow_random_weights": True}
    with pytest.raises(ConfigError, match="allow_random_weights must be true or false"):
        run_launch(LAUNCH, {"allow_random_weights": "ture"})


def _rviz_image_topics() -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "config" / "central.rviz").read_text())
    displays = doc["Visualization Manager"]["Displays"]
    return {
        d["Name"]: d["Topic"]["Value"]
        for d in displays
        if d["Class"] == "rviz_default_plugins/Image" and d.get("Enabled", True)
    }


def test_rviz_shows_the_overlay_and_normalized_depth_the_launch_produces() -> None:
    node_name = _constant(_tree(), "NODE_NAME")
    produced = {
        f"/{node_name}/{OUTPUT_TOPICS[key].removeprefix('~/')}"
        for key in ("detections/overlay", "depth/normalized")
    }
    topics = set(_rviz_image_topics().values())
    assert topics == produced
    doc = yaml.safe_load((ROOT / "config" / "central.rviz").read_text())
    for name in _rviz_image_topics():
        assert name in doc["Window Geometry"], f"panel geometry of {name}"


def test_container_yaml_names_nodes_with_known_parameters() -> None:
    path = ROOT / "config" / "container.yaml"
    names = node_names_from_yaml(path)
    assert names == ["/central_perception", "/slam_left_perception", "/slam_right_perception"]
    assert split_name("/central_perception") == ("central_perception", "/")
    assert split_name("/aria/slam/perception") == ("perception", "/aria/slam")
    assert split_name("perception") == ("perception", "")

    def flatten(prefix: str, node: dict) -> dict:
        out = {}
        for k, v in node.items():
            out.update(flatten(f"{prefix}{k}.", v) if isinstance(v, dict) else {prefix + k: v})
        return out

    for section in yaml.safe_load(path.read_text()).values():
        values = flatten("", section["ros__parameters"])
        assert set(values) <= set(param_table.SPECS), set(values) - set(param_table.SPECS)
        for name, value in values.items():
            param_table.validate(name, value)


def test_fastdds_profile_holds_an_aria_frame_in_shared_memory() -> None:
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(ROOT / "config" / "fastdds_large_data.xml").getroot()
    descriptors = {
        d.findtext("f:transport_id", namespaces=ns): d
        for d in root.findall("f:transport_descriptors/f:transport_descriptor", ns)
    }
    shm = [d for d in descriptors.values() if d.findtext("f:type", namespaces=ns) == "SHM"]
    assert shm and int(shm[0].findtext("f:segment_size", namespaces=ns)) >= 4 * 1408 * 1408 * 3
    [participant] = root.findall("f:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.findall("f:rtps/f:userTransports/f:transport_id", ns)]
    assert set(used) == set(descriptors)
    assert participant.findtext("f:rtps/f:useBuiltinTransports", namespaces=ns) == "false"
