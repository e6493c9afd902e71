"""Node plugins registered in the ament index under ``rclpy_components`` (no torch).

rclpy has no component container of its own; the convention followed here is the one proposed
for it upstream: a package lists its node classes in the resource file
``share/ament_index/resource_index/rclpy_components/<package>``, one
``<plugin name> = <module>:<class>`` line each, for example
``aria_perception::PerceptionNode = aria_perception.ros.node:PerceptionNode``. The index is
searched under every prefix of ``AMENT_PREFIX_PATH`` (set by a ROS install's ``setup.bash``),
else under this interpreter's prefix, where ``tools/setup_env.sh`` links it in the pip-only
environment. See docs/design.md, "Composition".
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aria_perception.errors import ConfigError

__all__ = ["RESOURCE_TYPE", "load_plugin", "plugin_entries", "search_prefixes"]

#: The ament index resource type that lists rclpy node plugins.
RESOURCE_TYPE = "rclpy_components"


def search_prefixes() -> list[Path]:
    """The install prefixes to search: ``AMENT_PREFIX_PATH``, else ``sys.prefix``."""
    paths = os.environ.get("AMENT_PREFIX_PATH", "")
    prefixes = [Path(p) for p in paths.split(os.pathsep) if p]
    return prefixes or [Path(sys.prefix)]


def plugin_entries(package: str) -> dict[str, str]:
    """The plugins ``package`` registers: plugin name -> ``module:Class``.

    The first prefix that holds the package's resource file wins, as in ament_index.

    Raises:
        ConfigError: no prefix registers ``package``, or its resource file is malformed.
    """
    for prefix in search_prefixes():
        path = prefix / "share" / "ament_index" / "resource_index" / RESOURCE_TYPE / package
        if path.is_file():
            return _parse(path)
    searched = ", ".join(str(p) for p in search_prefixes())
    raise ConfigError(
        f"package {package!r} registers no {RESOURCE_TYPE} plugins in the ament index "
        f"(searched {searched})"
    )


def load_plugin(package: str, plugin: str) -> Callable[..., Any]:
    """The node class registered as ``plugin`` by ``package``, imported.

    Raises:
        ConfigError: unknown package or plugin, or the registered class cannot be imported.
    """
    entries = plugin_entries(package)
    target = entries.get(plugin)
    if target is None:
        raise ConfigError(
            f"package {package!r} registers no plugin {plugin!r} (it registers: "
            f"{', '.join(sorted(entries)) or 'none'})"
        )
    module_name, _, attr = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"plugin {plugin!r} names {target!r}, which cannot be imported: {err}"
        ) from err
    if not callable(found):
        raise ConfigError(f"plugin {plugin!r} names {target!r}, which is not a class")
    return found


def _parse(path: Path) -> dict[str, str]:
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, target = (part.strip() for part in line.partition("="))
        if not sep or not name or ":" not in target:
            raise ConfigError(
                f"{path}:{number}: expected '<plugin name> = <module>:<class>', got {line!r}"
            )
        entries[name] = target
    return entries
