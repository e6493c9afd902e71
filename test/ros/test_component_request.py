"""LoadNode requests into node specs, the container's forwarded arguments, plugin lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from composition_interfaces.srv import LoadNode
from rclpy.parameter import Parameter

from aria_perception.errors import ConfigError
from aria_perception.ros.component_request import (
    default_node_name,
    forwarded_arguments,
    full_name,
    spec_from_request,
)
from aria_perception.ros.node import PerceptionNode
from aria_perception.ros.plugins import load_plugin, plugin_entries


def _request(**fields) -> LoadNode.Request:
    request = LoadNode.Request(package_name="aria_perception", plugin_name="p::P")
    for key, value in fields.items():
        setattr(request, key, value)
    return request


def _extra(name: str, value) -> list:
    return [Parameter(name, Parameter.Type.from_parameter_value(value), value).to_parameter_msg()]


def test_forwarded_arguments_keep_parameters_and_node_remaps_not_the_containers_name() -> None:
    argv = ["prog", "cam", "--ros-args", "-r", "__node:=c", "-r", "__ns:=/x", "-r",
            "cam:image:=/a", "--remap", "image:=/b", "-p", "device:=cpu", "--params-file",
            "f.yaml", "--log-level", "debug", "--enable-stdout-logs", "--", "-r", "z"]  # fmt: skip
    assert forwarded_arguments(argv) == [
        "-r", "cam:image:=/a", "--remap", "image:=/b", "-p", "device:=cpu",
        "--params-file", "f.yaml",
    ]  # fmt: skip


def test_a_request_becomes_constructor_arguments() -> None:
    params = [Parameter("device", Parameter.Type.STRING, "cpu").to_parameter_msg()]
    spec = spec_from_request(
        _request(node_name="n", node_namespace="cam", remap_rules=["image:=/x"],
                 parameters=params, log_level=10),
        ["-p", "a:=1"],
    )  # fmt: skip
    kwargs = spec.kwargs()
    assert kwargs["cli_args"] == ["--ros-args", "-r", "image:=/x", "-p", "a:=1"]
    assert kwargs["use_global_arguments"] is False
    assert kwargs["namespace"] == "/cam"
    assert [(p.name, p.value) for p in kwargs["parameter_overrides"]] == [("device", "cpu")]
    assert spec.log_level == 10 and spec.expected_name("perception") == "/cam/n"
    # forward_global_arguments: false drops the container's arguments.
    spec = spec_from_request(_request(extra_arguments=_extra("forward_global_arguments", False)),
                             ["-p", "a:=1"])  # fmt: skip
    assert spec.kwargs()["cli_args"] == []
    spec = spec_from_request(_request(extra_arguments=_extra("enable_rosout", False)))
    assert spec.kwargs()["enable_rosout"] is False


def test_the_first_matching_name_rule_wins() -> None:
    spec = spec_from_request(
        _request(node_name="n", remap_rules=["other:__node:=z", "__node:=m", "__node:=q",
                                             "m:__ns:=/s", "__ns:=/t"])
    )  # fmt: skip
    assert spec.expected_name("perception") == "/s/m"
    assert spec_from_request(_request()).expected_name("perception") == "/perception"
    assert full_name("a", "/") == "/a" and full_name("a", "x/y/") == "/x/y/a"
    assert default_node_name(PerceptionNode) == "perception"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"remap_rules": ["image"]}, "from:=to"),
        ({"log_level": 7}, "log_level 7"),
        ({"extra_arguments": _extra("use_intra_process_comms", True)}, "intra-process"),
        ({"extra_arguments": _extra("use_clock_thread", True)}, "not supported"),
        ({"extra_arguments": _extra("enable_rosout", 1)}, "must be a boolean"),
        ({"package_name": ""}, "required"),
    ],
)
def test_refused_requests_say_why(fields: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        spec_from_request(_request(**fields))


def test_intra_process_false_is_accepted() -> None:
    spec_from_request(_request(extra_arguments=_extra("use_intra_process_comms", False)))


def test_plugins_come_from_the_ament_index(tmp_path: Path, monkeypatch) -> None:
    index = tmp_path / "share" / "ament_index" / "resource_index" / "rclpy_components"
    index.mkdir(parents=True)
    (index / "pkg").write_text(
        "# comment\npkg::Node = aria_perception.ros.node:PerceptionNode\n"
        "pkg::Missing = aria_perception.ros.node:NoSuchClass\n"
    )
    (index / "broken").write_text("no equals sign\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert load_plugin("pkg", "pkg::Node") is PerceptionNode
    with pytest.raises(ConfigError, match="registers no plugin 'pkg::Other'.*pkg::Node"):
        load_plugin("pkg", "pkg::Other")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_plugin("pkg", "pkg::Missing")
    with pytest.raises(ConfigError, match="registers no rclpy_components plugins"):
        plugin_entries("aria_perception")  # not under this prefix
    with pytest.raises(ConfigError, match="expected"):
        plugin_entries("broken")


def test_the_repository_registers_the_perception_node() -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "resource" / "rclpy_components" / "aria_perception").read_text()
    assert (
        text.strip() == "aria_perception::PerceptionNode = aria_perception.ros.node:PerceptionNode"
    )
