"""The ament_python package is complete: metadata, entry points, installed data files."""

from __future__ import annotations

import configparser
import importlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class _Setup:
    """The keyword arguments setup.py passes to setuptools.setup (nothing is built)."""

    def __init__(self, kwargs: dict[str, object]) -> None:
        self.data_files = kwargs["data_files"]
        self.entry_points = kwargs["entry_points"]


@pytest.fixture(scope="module")
def dist() -> _Setup:
    import os
    import runpy

    import setuptools

    captured: dict[str, object] = {}
    original, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    os.chdir(ROOT)
    try:
        runpy.run_path(str(ROOT / "setup.py"))
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    return _Setup(captured)


def test_package_xml_is_format_3_with_the_runtime_dependencies() -> None:
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "aria_perception"
    assert "@" in root.find("maintainer").get("email")
    deps = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    assert {
        "rclpy",
        "sensor_msgs",
        "vision_msgs",
        "diagnostic_msgs",
        "std_msgs",
        "std_srvs",
        "lifecycle_msgs",
        "launch",
        "launch_ros",
        "python3-numpy",
        "python3-torch",
    } <= deps
    assert root.find("export/build_type").text == "ament_python"


def test_scripts_install_where_ros2_run_finds_them() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/aria_perception"
    assert cfg["install"]["install_scripts"] == "$base/lib/aria_perception"
    assert (ROOT / "resource" / "aria_perception").is_file()


def test_data_files_install_launch_config_and_the_index_marker(dist) -> None:
    targets = [target for target, _ in dist.data_files]
    assert "share/ament_index/resource_index/packages" in targets
    assert any(t.endswith("aria_perception/launch") for t in targets)
    assert any(t.endswith("aria_perception/config") for t in targets)
    assert list((ROOT / "launch").glob("*.launch.py")), "no launch file to install"


@pytest.mark.parametrize(
    "name", ["perception_node", "perception_container", "bench", "engine_bench", "models"]
)
def test_console_entry_points_resolve(dist, name: str) -> None:
    scripts = dist.entry_points["console_scripts"]
    spec = next(s for s in scripts if s.split("=")[0].strip() == name)
    module, func = spec.split("=")[1].strip().split(":")
    assert callable(getattr(importlib.import_module(module), func))
