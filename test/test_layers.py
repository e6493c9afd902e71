"""The layers import only what they may ("Layers" in docs/design.md).

Each layer's modules are imported in a fresh interpreter, one after another, and ``sys.modules``
is checked after each import, so a failure names the first module that pulled a forbidden one
in. Modules are found on disk (``pkgutil``), so new modules are covered without editing this
file. What a module imports lazily inside a function is not seen here; the node and container
process tests check a running process's memory map for libtorch. The tracking package may
import Ultralytics (and torch), but only when a tracker is built, never at import.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aria_perception"
#: The inference stack: only the worker's child process and the benchmarks may import it.
TORCH = ("torch", "torchvision", "ultralytics", "timm")
SHARED = ("aria_perception", "aria_perception._lazy", "aria_perception.errors",
          "aria_perception.frame_checks", "aria_perception.records",
          "aria_perception.stats")  # fmt: skip
#: Shared packages (numpy and the standard library only, like the shared modules).
SHARED_PACKAGES = ("optics",)

CHECK = """
import importlib, json, sys
modules, forbidden, then = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
def bad():
    return sorted(m for m in sys.modules
                  if any(m == f or m.startswith(f + ".") for f in forbidden))
for name in modules:
    importlib.import_module(name)
    if bad():
        sys.exit(f"importing {name} imported {bad()[:8]}")
if then:
    exec(then)
    if bad():
        sys.exit(f"running {then!r} imported {bad()[:8]}")
print(json.dumps(sorted(sys.modules)))
"""


def layer_modules(layer: str) -> list[str]:
    """``aria_perception.<layer>`` and every module below it, found without importing any."""
    names = [f"aria_perception.{layer}"]
    for info in pkgutil.walk_packages([str(PACKAGE / layer)], f"aria_perception.{layer}."):
        if info.ispkg:
            raise AssertionError(f"{info.name}: a sub-package; teach layer_modules to walk it")
        names.append(info.name)
    return names


def _import_in_fresh_interpreter(
    modules: list[str], forbidden: tuple[str, ...], then: str = ""
) -> set[str]:
    """Import ``modules`` in order in a new interpreter; fail on a ``forbidden`` import.

    Returns:
        Every module loaded at the end.
    """
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(modules), json.dumps(forbidden), then],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The last line: Ultralytics prints a note when it creates its settings file.
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_every_module_belongs_to_a_layer() -> None:
    """A new top-level module or package needs a rule here before it can be merged."""
    found = {f"aria_perception.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE)])}
    layers = {
        f"aria_perception.{layer}" for layer in ("bench", "engine", "ros", "tracking", "worker")
    }
    shared = {f"aria_perception.{package}" for package in SHARED_PACKAGES}
    assert found == layers | shared | (set(SHARED) - {"aria_perception"})


def test_shared_modules_import_neither_torch_nor_rclpy() -> None:
    packages = [m for package in SHARED_PACKAGES for m in layer_modules(package)]
    _import_in_fresh_interpreter([*SHARED, *packages], (*TORCH, "rclpy", "cv2"))


def test_engine_imports_no_ros_and_no_upper_layer() -> None:
    modules = layer_modules("engine")
    forbidden = ("rclpy", "aria_perception.bench", "aria_perception.ros", "aria_perception.worker")
    loaded = _import_in_fresh_interpreter(modules, forbidden)
    assert "torch" in loaded, "the check must have imported the engine"


def test_worker_imports_no_torch() -> None:
    _import_in_fresh_interpreter(layer_modules("worker"), TORCH)


def test_worker_parent_side_imports_no_opencv() -> None:
    """What the node imports of the worker (the package's public names) stays light."""
    _import_in_fresh_interpreter(["aria_perception.worker"], (*TORCH, "cv2"))


def test_ros_adapter_imports_no_torch() -> None:
    loaded = _import_in_fresh_interpreter(layer_modules("ros"), TORCH)
    assert "rclpy" in loaded and "aria_perception.ros.node" in loaded


def test_tracking_imports_no_ros_and_torch_only_for_a_tracker() -> None:
    """The tracking package is ROS-free; Ultralytics (and torch) come with the first tracker."""
    upper = tuple(f"aria_perception.{m}" for m in ("bench", "engine", "ros", "worker"))
    off = (
        "from aria_perception.tracking import ObjectTracker, load_tracker_config; "
        "import numpy as np; ObjectTracker(load_tracker_config('none'))"
        ".update(np.zeros((1, 4)), np.ones(1), np.zeros(1))"
    )
    _import_in_fresh_interpreter(layer_modules("tracking"), (*TORCH, "rclpy", *upper), then=off)
    on = off.replace("'none'", "'bytetrack'")
    loaded = _import_in_fresh_interpreter(["aria_perception.tracking"], ("rclpy", *upper), on)
    assert "ultralytics.trackers" in loaded and "torch" in loaded


def test_bench_imports_no_torch() -> None:
    """Benchmarks of the engine import torch inside the functions that need it, never at import."""
    _import_in_fresh_interpreter(
        layer_modules("bench"),
        TORCH,
        then="from aria_perception.bench.sample import find_photos; find_photos()",
    )


@pytest.mark.parametrize("layer", ["bench", "engine", "optics", "ros", "tracking", "worker"])
def test_layer_modules_are_every_file_of_the_layer(layer: str) -> None:
    files = {
        ".".join(("aria_perception", *p.relative_to(PACKAGE).with_suffix("").parts))
        for p in (PACKAGE / layer).rglob("*.py")
    }
    files = {f.removesuffix(".__init__") for f in files}
    assert sorted(layer_modules(layer)) == sorted(files)
