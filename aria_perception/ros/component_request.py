"""A ``composition_interfaces/LoadNode`` request, checked, as a node's constructor arguments.

No rclpy node is built here: :func:`spec_from_request` turns what ``ros2 component load`` and
launch_ros's ``LoadComposableNodes`` send into a :class:`NodeSpec`, or refuses it with a
``ConfigError`` that says why, and :func:`forwarded_arguments` picks the container's own
command-line arguments that every loaded node also gets. See docs/design.md, "Composition".
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from aria_perception.errors import ConfigError

__all__ = [
    "LOG_LEVELS",
    "NodeSpec",
    "default_node_name",
    "forwarded_arguments",
    "full_name",
    "ros_args_values",
    "spec_from_request",
]

#: rcutils severities a request's ``log_level`` may take (0: leave the level alone).
LOG_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARN", 40: "ERROR", 50: "FATAL"}
#: ``extra_arguments`` that map to rclpy node options (both values accepted).
_NODE_OPTIONS = {"enable_rosout": "enable_rosout",
                 "start_parameter_services": "start_parameter_services"}  # fmt: skip
# --ros-args flags that take a value; of these only parameters and remaps go to loaded nodes
# (log levels, log files and the enclave are process-wide and already in effect).
_VALUE_FLAGS = {"-r", "--remap", "-p", "--param", "--params-file", "--log-level", "-e",
                "--enclave", "--log-config-file", "--log-file-name"}  # fmt: skip
_FORWARDED_FLAGS = {"-r", "--remap", "-p", "--param", "--params-file"}
_NAME_KEYS = ("__node", "__name", "__ns")


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node to build: where its class is and what it is constructed with.

    Attributes:
        package: the package that registers the plugin.
        plugin: the plugin name (``aria_perception::PerceptionNode``).
        name: the node name given to the constructor ("" keeps the class's default).
        namespace: absolute namespace ("" keeps ``/``).
        cli_args: the node's own ``--ros-args`` (remaps first, then the forwarded ones).
        parameters: ``rclpy.parameter.Parameter`` overrides; they win over every params file.
        log_level: rcutils severity for the node's logger (0: unchanged).
        options: further rclpy node options (``enable_rosout``, ``start_parameter_services``).
    """

    package: str
    plugin: str
    name: str = ""
    namespace: str = ""
    cli_args: tuple[str, ...] = ()
    parameters: tuple[Any, ...] = ()
    log_level: int = 0
    options: tuple[tuple[str, bool], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the node class (after the name)."""
        kwargs: dict[str, Any] = {
            "cli_args": list(self.cli_args),
            "use_global_arguments": False,  # one node's remaps never reach another
            "parameter_overrides": list(self.parameters),
            **dict(self.options),
        }
        if self.namespace:
            kwargs["namespace"] = self.namespace
        return kwargs

    def expected_name(self, default_name: str) -> str:
        """The full name the node will get: its name and namespace after the name rules.

        rcl applies the first rule that matches (a rule ``node:__ns:=...`` only matches that
        node); the container checks the node's real name again once it is built.
        """
        name, namespace = self.name or default_name, self.namespace
        renamed = moved = False
        rules = _remap_rules(self.cli_args)
        for rule in rules:
            target, value = _split_rule(rule)
            prefix, _, key = target.rpartition(":")
            if key in ("__node", "__name") and not renamed and prefix in ("", name):
                name, renamed = value, True
        for rule in rules:
            target, value = _split_rule(rule)
            prefix, _, key = target.rpartition(":")
            if key == "__ns" and not moved and prefix in ("", name):
                namespace, moved = value, True
        return full_name(name, namespace)


def full_name(name: str, namespace: str) -> str:
    """``/ns/name`` of a node name and a (possibly relative or empty) namespace."""
    namespace = namespace.strip("/")
    return f"/{namespace}/{name}" if namespace else f"/{name}"


def default_node_name(cls: Callable[..., Any]) -> str:
    """The default of a node class's first constructor argument ("" if it has none)."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return ""
    if params and isinstance(params[0].default, str):
        return params[0].default
    return ""


def forwarded_arguments(argv: Sequence[str]) -> list[str]:
    """The container's ``--ros-args`` that its loaded nodes get too.

    Parameters (``--params-file``, ``-p``) and remaps, so the container's params file applies
    to every node by name (its ``/**`` section to all) and ``node:from:=to`` rules reach the
    node they name. The container's own name rules (``__node:=``, ``__ns:=`` without a node
    prefix, as launch_ros passes them) are left out: they name the container.
    """
    forwarded: list[str] = []
    for arg, value in ros_args_values(argv, _VALUE_FLAGS):
        if value is None or arg not in _FORWARDED_FLAGS:
            continue
        if arg in ("-r", "--remap") and _split_rule(value)[0] in _NAME_KEYS:
            continue
        forwarded += [arg, value]
    return forwarded


def ros_args_values(
    argv: Sequence[str], flags: Collection[str]
) -> Iterator[tuple[str, str | None]]:
    """``(flag, value)`` of each of ``flags`` inside the ``--ros-args`` sections of ``argv``.

    A section runs from ``--ros-args`` to ``--`` or the end; ``value`` is the argument after
    the flag (None when there is none). Arguments that are not in ``flags`` are passed over.
    """
    in_ros = False
    it = iter(argv)
    for arg in it:
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg in flags:
            yield arg, next(it, None)


def spec_from_request(request: Any, forwarded: Sequence[str] = ()) -> NodeSpec:
    """Check a ``LoadNode.Request`` and turn it into a :class:`NodeSpec`.

    Args:
        request: the ``composition_interfaces/srv/LoadNode`` request.
        forwarded: the container's arguments for every node (:func:`forwarded_arguments`),
            unless the request's ``forward_global_arguments`` extra argument is false.

    Raises:
        ConfigError: a field the container cannot honour (the message says which and why).
    """
    from rclpy.parameter import Parameter

    if not request.package_name or not request.plugin_name:
        raise ConfigError("package_name and plugin_name are required")
    rules = list(request.remap_rules)
    for rule in rules:
        if ":=" not in rule or not _split_rule(rule)[0]:
            raise ConfigError(f"remap rule {rule!r} is not of the form 'from:=to'")
    if request.log_level and request.log_level not in LOG_LEVELS:
        levels = ", ".join(f"{k} ({v})" for k, v in LOG_LEVELS.items())
        raise ConfigError(f"log_level {request.log_level} is not 0 (unset) or one of {levels}")
    options, forward = _extra_arguments(request.extra_arguments)
    parameters = []
    for msg in request.parameters:
        param = Parameter.from_parameter_msg(msg)
        if not param.name:
            raise ConfigError("a parameter without a name")
        if param.type_ == Parameter.Type.NOT_SET:
            raise ConfigError(f"parameter {param.name!r} has no value (type NOT_SET)")
        parameters.append(param)
    cli_args = ["--ros-args"]
    for rule in rules:
        cli_args += ["-r", rule]
    if forward:
        cli_args += list(forwarded)
    namespace = request.node_namespace.strip()
    if namespace and not namespace.startswith("/"):
        namespace = "/" + namespace
    return NodeSpec(
        package=request.package_name,
        plugin=request.plugin_name,
        name=request.node_name.strip(),
        namespace=namespace.rstrip("/") or ("/" if namespace else ""),
        cli_args=tuple(cli_args) if len(cli_args) > 1 else (),
        parameters=tuple(parameters),
        log_level=int(request.log_level),
        options=tuple(options.items()),
    )


def _extra_arguments(extra: Sequence[Any]) -> tuple[dict[str, bool], bool]:
    """Node options and whether to forward the container's arguments, from extra_arguments.

    Accepted, as booleans: ``enable_rosout`` and ``start_parameter_services`` (rclpy node
    options), ``forward_global_arguments`` (false: none of the container's arguments) and
    ``use_intra_process_comms: false``. rclpy has no intra-process transport, so
    ``use_intra_process_comms: true`` is refused, as is every other name.
    """
    from rclpy.parameter import Parameter

    options: dict[str, bool] = {}
    forward = True
    for msg in extra:
        arg = Parameter.from_parameter_msg(msg)
        known = arg.name in _NODE_OPTIONS or arg.name in (
            "forward_global_arguments",
            "use_intra_process_comms",
        )
        if not known:
            raise ConfigError(
                f"extra argument {arg.name!r} is not supported (supported: enable_rosout, "
                "start_parameter_services, forward_global_arguments, "
                "use_intra_process_comms: false)"
            )
        if arg.type_ != Parameter.Type.BOOL:
            raise ConfigError(f"extra argument {arg.name!r} must be a boolean, got {arg.value!r}")
        if arg.name == "use_intra_process_comms" and arg.value:
            raise ConfigError(
                "extra argument 'use_intra_process_comms: true' is not supported: rclpy has "
                "no intra-process communication (false is accepted)"
            )
        if arg.name == "forward_global_arguments":
            forward = bool(arg.value)
        elif arg.name in _NODE_OPTIONS:
            options[_NODE_OPTIONS[arg.name]] = bool(arg.value)
    return options, forward


def _remap_rules(cli_args: Sequence[str]) -> list[str]:
    rules = []
    it = iter(cli_args)
    for arg in it:
        if arg in ("-r", "--remap"):
            value = next(it, None)
            if value is not None:
                rules.append(value)
        elif arg in _VALUE_FLAGS:
            next(it, None)
    return rules


def _split_rule(rule: str) -> tuple[str, str]:
    target, _, value = rule.partition(":=")
    return target.strip(), value.strip()
