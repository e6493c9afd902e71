"""Run a launch file's Python without ``launch``: the actions it returns, for given arguments.

``launch``, ``launch_ros`` and ``ament_index_python`` are not on PyPI. This module puts
stand-ins for the names the launch files use into ``sys.modules`` while one file is loaded and
run. Each stand-in has the signature of its Humble class (keyword-only where Humble's is, the
same keyword names), so a call Humble would refuse fails here too, and records what it was
given. ``run_launch`` does what ``ros2 launch`` does with the description: it declares the
arguments (checking ``choices``), sets the given values, and runs the ``OpaqueFunction``s with a
context whose ``LaunchConfiguration.perform`` answers them.

What is not stood in for is the launch file's own logic and ``aria_perception`` code it calls.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Keyword arguments Humble's Node accepts through ExecuteProcess, ExecuteLocal and Action.
_PROCESS_KWARGS = frozenset(
    {
        "cwd", "env", "additional_env", "prefix", "shell", "sigterm_timeout",
        "sigkill_timeout", "emulate_tty", "output", "output_format", "cached_output",
        "log_cmd", "on_exit", "respawn", "respawn_delay", "condition",
    }
)  # fmt: skip


class Recorded:
    """A launch entity: its class name and the arguments it was built with."""

    def __init__(self, **given: Any) -> None:
        self.given = {k: v for k, v in given.items() if v is not None}

    def __getitem__(self, key: str) -> Any:
        return self.given[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.given.get(key, default)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.given!r})"


class LaunchDescription(Recorded):
    def __init__(self, initial_entities: Any = None, *, deprecated_reason: Any = None) -> None:
        super().__init__(entities=list(initial_entities or []))


class DeclareLaunchArgument(Recorded):
    def __init__(
        self,
        name: str,
        *,
        default_value: Any = None,
        description: Any = None,
        choices: Any = None,
        condition: Any = None,
    ) -> None:
        super().__init__(
            name=name, default_value=default_value, description=description, choices=choices
        )


class LogInfo(Recorded):
    def __init__(self, *, msg: Any, condition: Any = None) -> None:
        super().__init__(msg=msg)


class SetEnvironmentVariable(Recorded):
    def __init__(self, name: Any, value: Any, condition: Any = None) -> None:
        super().__init__(name=name, value=value)


class OpaqueFunction(Recorded):
    def __init__(
        self, *, function: Any, args: Any = None, kwargs: Any = None, condition: Any = None
    ) -> None:
        super().__init__(function=function, args=args, kwargs=kwargs)


class LaunchConfiguration(Recorded):
    def __init__(self, variable_name: str, *, default: Any = None) -> None:
        super().__init__(variable_name=variable_name, default=default)

    def perform(self, context: LaunchContext) -> str:
        return context.configuration(self["variable_name"])


class Node(Recorded):
    def __init__(
        self,
        *,
        executable: Any,
        package: Any = None,
        name: Any = None,
        namespace: Any = None,
        exec_name: Any = None,
        parameters: Any = None,
        remappings: Any = None,
        ros_arguments: Any = None,
        arguments: Any = None,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - _PROCESS_KWARGS
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword(s) {sorted(unknown)}")
        super().__init__(
            executable=executable, package=package, name=name, namespace=namespace,
            exec_name=exec_name, parameters=parameters, remappings=remappings,
            ros_arguments=ros_arguments, arguments=arguments, **kwargs,
        )  # fmt: skip


class ComposableNodeContainer(Node):
    def __init__(
        self, *, name: Any, namespace: Any, composable_node_descriptions: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, namespace=namespace, **kwargs)
        self.given["composable_node_descriptions"] = composable_node_descriptions


class LoadComposableNodes(Recorded):
    def __init__(
        self, *, composable_node_descriptions: Any, target_container: Any, condition: Any = None
    ) -> None:
        super().__init__(
            composable_node_descriptions=composable_node_descriptions,
            target_container=target_container,
        )


class ComposableNode(Recorded):
    def __init__(
        self,
        *,
        package: Any,
        plugin: Any,
        name: Any = None,
        namespace: Any = None,
        parameters: Any = None,
        remappings: Any = None,
        extra_arguments: Any = None,
        condition: Any = None,
    ) -> None:
        super().__init__(
            package=package, plugin=plugin, name=name, namespace=namespace,
            parameters=parameters, remappings=remappings, extra_arguments=extra_arguments,
        )  # fmt: skip


def get_package_share_directory(package_name: str) -> str:
    """The source tree stands in for ``share/aria_perception`` (same ``config/`` layout)."""
    assert package_name == "aria_perception", package_name
    return str(ROOT)


_MODULES = {
    "launch": {"LaunchDescription": LaunchDescription},
    "launch.actions": {
        "DeclareLaunchArgument": DeclareLaunchArgument,
        "LogInfo": LogInfo,
        "OpaqueFunction": OpaqueFunction,
        "SetEnvironmentVariable": SetEnvironmentVariable,
    },
    "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
    "launch_ros": {},
    "launch_ros.actions": {
        "ComposableNodeContainer": ComposableNodeContainer,
        "LoadComposableNodes": LoadComposableNodes,
        "Node": Node,
    },
    "launch_ros.descriptions": {"ComposableNode": ComposableNode},
    "ament_index_python": {},
    "ament_index_python.packages": {"get_package_share_directory": get_package_share_directory},
}


@dataclass
class LaunchContext:
    """The launch configurations of one run, and which of them the file read."""

    values: dict[str, str]
    read: set[str] = field(default_factory=set)

    def configuration(self, name: str) -> str:
        if name not in self.values:
            raise AssertionError(f"LaunchConfiguration {name!r} read but never declared")
        self.read.add(name)
        return self.values[name]


@dataclass
class LaunchRun:
    """What a launch file produced: its declared arguments and the actions of its functions."""

    declared: dict[str, DeclareLaunchArgument]
    actions: list[Recorded]
    read: set[str]

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if type(a) is kind]


@contextlib.contextmanager
def stubbed_launch() -> Iterator[None]:
    """The stand-in modules in ``sys.modules`` for the duration of the block."""
    saved = {name: sys.modules.get(name) for name in _MODULES}
    try:
        for name, members in _MODULES.items():
            module = types.ModuleType(name)
            module.__dict__.update(members)
            sys.modules[name] = module
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load_launch_file(path: Path) -> types.ModuleType:
    """The launch file as a module, loaded by path as ``ros2 launch`` loads it."""
    with stubbed_launch():
        spec = importlib.util.spec_from_file_location(f"launch_file_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def run_launch(path: Path, arguments: dict[str, str] | None = None) -> LaunchRun:
    """Declare the file's arguments, set ``arguments`` over their defaults, run its functions.

    Raises:
        AssertionError: an argument the file does not declare, or a value outside ``choices``
            (launch refuses both).
    """
    arguments = dict(arguments or {})
    module = load_launch_file(path)
    with stubbed_launch():
        description = module.generate_launch_description()
        declared: dict[str, DeclareLaunchArgument] = {}
        functions: list[OpaqueFunction] = []
        for entity in description["entities"]:
            if isinstance(entity, DeclareLaunchArgument):
                assert entity["name"] not in declared, f"{entity['name']} declared twice"
                declared[entity["name"]] = entity
            elif isinstance(entity, OpaqueFunction):
                functions.append(entity)
            else:
                raise AssertionError(f"unexpected top-level entity {entity!r}")
        unknown = set(arguments) - set(declared)
        assert not unknown, f"undeclared launch arguments {sorted(unknown)}"
        values = {}
        for name, decl in declared.items():
            value = arguments.get(name, decl.get("default_value"))
            assert value is not None, f"launch argument {name} is required"
            choices = decl.get("choices")
            assert choices is None or value in choices, f"{name}:={value} not in {choices}"
            values[name] = value
        context = LaunchContext(values)
        actions: list[Recorded] = []
        for function in functions:
            fn_args = function.get("args") or []
            fn_kwargs = function.get("kwargs") or {}
            actions.extend(function["function"](context, *fn_args, **fn_kwargs) or [])
    return LaunchRun(declared, actions, context.read)
