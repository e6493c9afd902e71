"""What the launch files decide, without ``launch``: Fast DDS environment, per-node parameters.

``launch`` and ``launch_ros`` are imported by the files in ``launch/`` only; the choices they
make are here, in standard-library Python (and yaml, which launch itself depends on), so they
are the same in every launch file and are tested without ROS tooling. A launch file is loaded
by path, so it cannot import a sibling file; it imports this module from the installed package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from aria_perception.errors import ConfigError

__all__ = [
    "FASTDDS_MODES",
    "FASTDDS_VARIABLES",
    "OVERRIDE_ARGUMENTS",
    "ArgumentSpec",
    "FastDdsEnvironment",
    "camera_info_topic",
    "compressed_topic",
    "fastdds_environment",
    "launch_bool",
    "node_parameters",
]

#: Variables through which a user chooses Fast DDS transports; one set means "keep mine".
FASTDDS_VARIABLES = (
    "FASTDDS_BUILTIN_TRANSPORTS",
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
)
#: Values of the ``fastdds_large_data`` launch argument.
FASTDDS_MODES = ("auto", "profile", "builtin", "off")
# Fast DDS 2.x distros read FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3 (Kilted on) the new name.
_FASTDDS_2_DISTROS = ("humble", "iron", "jazzy")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


class ArgumentSpec(NamedTuple):
    """A launch argument as a launch file declares it (``DeclareLaunchArgument``'s fields)."""

    name: str
    default_value: str
    description: str


#: The arguments every launch file declares that override the params file (use_sim_time
#: always; device and allow_random_weights only when given).
OVERRIDE_ARGUMENTS = (
    ArgumentSpec("use_sim_time", "false", "Use /clock (rosbag replay with --clock)."),
    ArgumentSpec("device", "", "Override the params file's device: auto, cpu, cuda, cuda:N."),
    ArgumentSpec(
        "allow_random_weights",
        "",
        "Override the params file's allow_random_weights: true or false.",
    ),
)


class FastDdsEnvironment(NamedTuple):
    """Environment variables a launch file sets for its node processes, and what it logs."""

    variables: dict[str, str]
    message: str  # "" = nothing to say


def fastdds_environment(
    mode: str, environ: Mapping[str, str], share_dir: str | Path
) -> FastDdsEnvironment:
    """The large-data transport for nodes that receive Aria-sized frames.

    Args:
        mode: ``auto`` (keep the user's Fast DDS variables if any is set, else ``profile`` on
            Humble or with localhost-only discovery, else ``builtin``), ``profile`` (the
            shipped ``config/fastdds_large_data.xml``), ``builtin``
            (``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``) or ``off`` (nothing).
        environ: the launching process's environment.
        share_dir: the package's share directory (where ``config/`` is installed).

    Raises:
        ConfigError: an unknown ``mode``.
    """
    if mode not in FASTDDS_MODES:
        raise ConfigError(f"fastdds_large_data must be one of {', '.join(FASTDDS_MODES)}")
    if mode == "off":
        return FastDdsEnvironment({}, "")
    user = [name for name in FASTDDS_VARIABLES if environ.get(name)]
    if mode == "auto" and user:
        return FastDdsEnvironment({}, f"Fast DDS: keeping your {', '.join(user)}")
    distro = environ.get("ROS_DISTRO", "").lower()
    # LARGE_DATA delivered nothing between two processes with localhost-only discovery in our
    # measurements (Fast DDS 3.2); the XML profile did.
    local_only = (
        environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() in ("LOCALHOST", "OFF")
        or environ.get("ROS_LOCALHOST_ONLY") == "1"
    )
    if mode == "auto":
        # Humble's Fast DDS 2.6 has no LARGE_DATA builtin transport.
        mode = "profile" if distro in ("", "humble") or local_only else "builtin"
    if mode == "builtin":
        return FastDdsEnvironment(
            {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
            "Fast DDS: FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (set it for the camera publisher "
            "too)",
        )
    profile = os.path.join(str(share_dir), "config", "fastdds_large_data.xml")
    variable = (
        "FASTRTPS_DEFAULT_PROFILES_FILE"
        if distro in _FASTDDS_2_DISTROS
        else "FASTDDS_DEFAULT_PROFILES_FILE"
    )
    return FastDdsEnvironment(
        {variable: profile},
        f"Fast DDS: {variable}={profile} (set it for the camera publisher too)",
    )


def launch_bool(name: str, text: str) -> bool:
    """A boolean launch argument (``true``/``false``, ``1``/``0``, ``yes``/``no``; "" is false).

    Raises:
        ConfigError: anything else, naming the argument.
    """
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"launch argument {name} must be true or false, got {text!r}")


def compressed_topic(image_topic: str) -> str:
    """image_transport's compressed stream of ``image_topic``: ``<topic>/compressed``."""
    return image_topic.rstrip("/") + "/compressed"


def camera_info_topic(image_topic: str) -> str:
    """image_transport's camera info of ``image_topic``: ``camera_info`` beside the image.

    ``/camera_rgb/image_raw`` -> ``/camera_rgb/camera_info``, as a ``CameraSubscriber`` reads it.
    """
    head, sep, _ = image_topic.rstrip("/").rpartition("/")
    return f"{head}{sep}camera_info"


def node_parameters(
    params_file: str | Path, node_name: str, namespace: str = ""
) -> dict[str, Any]:
    """The parameters ``params_file`` gives node ``node_name``, flat (``depth.input_size``).

    A section applies when its key matches the node as rcl matches it (``/**``,
    ``/**/rgb_perception``, ``/aria/*``) either by the node's name alone (``/rgb_perception``)
    or by its full name in ``namespace``: the launch file puts its nodes into a namespace, and a
    file written for node names must still apply there. launch_ros, given the file itself,
    applies only ``/**`` and the exact full name. Sections apply in file order, later values
    win. Empty lists are left out (launch_ros refuses them; the parameter keeps its default).

    Raises:
        ConfigError: the file cannot be read or is not a ROS params file.
    """
    path = Path(params_file)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"params file {path}: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"params file {path}: not a mapping of node names")
    targets = [_tokens("/" + node_name)]
    if namespace.strip("/"):
        targets.append(_tokens(f"/{namespace.strip('/')}/{node_name}"))
    values: dict[str, Any] = {}
    for key, params in _sections(doc, ()):
        pattern = _tokens(key)
        if any(_match(pattern, target) for target in targets):
            values.update(_flatten(params, ""))
    return {name: value for name, value in values.items() if value != []}


def _sections(doc: Mapping[str, Any], keys: tuple[str, ...]) -> list[tuple[str, Mapping]]:
    """(node key, ``ros__parameters``) of every section, nested namespaces joined with '/'."""
    found: list[tuple[str, Mapping]] = []
    for key, body in doc.items():
        if not isinstance(body, Mapping):
            continue
        if key == "ros__parameters":
            found.append(("/" + "/".join(keys), body))
        else:
            found.extend(_sections(body, (*keys, str(key).strip("/"))))
    return found


def _tokens(name: str) -> list[str]:
    return [t for t in name.split("/") if t]


def _match(pattern: list[str], name: list[str]) -> bool:
    """Node-name wildcards as rcl reads them: ``*`` is one token, ``**`` any number of them."""
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, name[i:]) for i in range(len(name) + 1))
    return bool(name) and head in ("*", name[0]) and _match(rest, name[1:])


def _flatten(params: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + str(key)] = value
    return out
