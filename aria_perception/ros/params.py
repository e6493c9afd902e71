"""The node's parameters in rclpy: declarations with descriptors, start-up values, run-time sets.

The parameter table and its validation (:mod:`aria_perception.ros.param_table`) and the typed
config (:mod:`aria_perception.ros.node_config`) need no rclpy; this module adds what does:
:func:`declare` (every parameter with its descriptor, the values given at start validated into
a :class:`~aria_perception.ros.node_config.NodeConfig`), the checks rclpy runs before a run-time
change, :func:`set_result` and :func:`unknown_overrides`. See docs/design.md, "Parameters".
"""

from __future__ import annotations

import functools
from typing import Any

from aria_perception.errors import ConfigError
from aria_perception.ros.node_config import NodeConfig
from aria_perception.ros.param_table import PARAMETERS, SPECS, ParamSpec, config_from_values

__all__ = ["declare", "descriptor", "set_result", "unknown_overrides"]

# Parameters rclpy or the middleware declare themselves; never reported as unknown.
_FOREIGN_PREFIXES = ("qos_overrides.", "use_sim_time", "start_type_description_service")


def descriptor(spec: ParamSpec) -> Any:
    """The ``rcl_interfaces/ParameterDescriptor`` of ``spec`` (ranges, read-only, type)."""
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    desc = ParameterDescriptor(
        description=spec.description,
        read_only=spec.read_only,
        additional_constraints=(
            f"{spec.allowed()}" + ("" if spec.read_only else " (changeable at run time)")
        ),
    )
    default = spec.default
    if isinstance(default, list):
        # rclpy infers BYTE_ARRAY from an empty list and YAML `[]` arrives untyped: declare it
        # dynamically typed and check the type ourselves in validate().
        desc.type = ParameterType.PARAMETER_STRING_ARRAY
        desc.dynamic_typing = True
    elif isinstance(default, bool) or isinstance(default, str):
        pass
    elif isinstance(default, int):
        assert spec.low is not None and spec.high is not None
        desc.integer_range = [
            IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=spec.step)
        ]
    elif isinstance(default, float):
        assert spec.low is not None and spec.high is not None
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    return desc


def declare(node: Any) -> NodeConfig:
    """Declare every parameter on ``node`` and return the validated config.

    An integer given for a floating-point parameter (``worker.restart_window_s:=300``, or
    ``300`` in a YAML file) is taken as that number: rclpy would refuse its type. On rclpy
    versions with pre-set callbacks (Iron and later) the same holds for run-time changes, and
    a change of an undeclared parameter is refused with its name.

    Raises:
        ConfigError: a value given at start (YAML, ``-p``, overrides) is invalid.
    """
    from rclpy.exceptions import (
        InvalidParameterTypeException,
        InvalidParameterValueException,
    )

    overrides = _overrides(node)
    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        value, ignore_override = spec.default, False
        given = overrides.get(spec.name)
        if given is not None and _int_for_float(spec, given.value):
            value, ignore_override = float(given.value), True
        try:
            param = node.declare_parameter(
                spec.name, value, descriptor(spec), ignore_override=ignore_override
            )
        except InvalidParameterTypeException as err:
            raise ConfigError(
                f"{spec.name} must be {spec.allowed()} of type {type(spec.default).__name__}: "
                f"{err}"
            ) from err
        except InvalidParameterValueException as err:
            raise ConfigError(f"{spec.name} must be {spec.allowed()}: {err}") from err
        values[spec.name] = param.value
    add_pre_set = getattr(node, "add_pre_set_parameters_callback", None)
    if add_pre_set is not None:  # Humble's rclpy has none
        add_pre_set(functools.partial(_before_set, node))
    return config_from_values(values)


def _int_for_float(spec: ParamSpec, value: object) -> bool:
    return (
        isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool)
    )


def _before_set(node: Any, parameters: list[Any]) -> list[Any]:
    """What rclpy checks before a run-time change, as the node's users expect it.

    An undeclared name is refused naming it (rclpy's own refusal prints an empty list), and
    an integer for a floating-point parameter becomes that number (rclpy would refuse its type).
    """
    from rclpy.exceptions import ParameterNotDeclaredException
    from rclpy.parameter import Parameter

    undeclared = [p.name for p in parameters if not node.has_parameter(p.name)]
    # rclpy has no public accessor for this node option; the perception node never sets it.
    if undeclared and not getattr(node, "_allow_undeclared_parameters", False):
        raise ParameterNotDeclaredException(undeclared)
    changed = []
    for param in parameters:
        spec = SPECS.get(param.name)
        if (
            spec is not None
            and param.type_ == Parameter.Type.INTEGER
            and _int_for_float(spec, param.value)
        ):
            param = Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
        changed.append(param)
    return changed


def set_result(successful: bool, reason: str = "") -> Any:
    """A ``rcl_interfaces/SetParametersResult``."""
    from rcl_interfaces.msg import SetParametersResult

    return SetParametersResult(successful=successful, reason=reason)


def _overrides(node: Any) -> dict[str, Any]:
    """The values given to ``node`` at start (YAML, ``-p``), by name.

    rclpy keeps them in a private attribute and offers no public accessor.
    """
    return getattr(node, "_parameter_overrides", None) or {}


def unknown_overrides(node: Any) -> list[str]:
    """Names given to ``node`` at start (YAML, ``-p``) that no parameter of ours has: typos.

    rclpy ignores such overrides silently; the node warns about them instead (never with an
    empty list: this returns [] when there are none).
    """
    return sorted(
        name
        for name in _overrides(node)
        if name not in SPECS and not name.startswith(_FOREIGN_PREFIXES)
    )
