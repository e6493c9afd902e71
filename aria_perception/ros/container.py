"""``perception_container``: perception nodes in one process, loaded at start or at run time.

The container is a node of its own, ``perception_container`` (``-r __node:=NAME`` renames it),
that serves the ``composition_interfaces`` services ``~/_container/load_node``,
``~/_container/unload_node`` and ``~/_container/list_nodes``: ``ros2 component
load/list/unload`` and launch_ros's ``ComposableNodeContainer`` / ``LoadComposableNodes``
put ``aria_perception::PerceptionNode`` nodes into it while it runs
(:mod:`aria_perception.ros.component_manager`). Nodes can also be named at start, on the
command line (``name`` or ``/namespace/name``) or, when none is given, by the section keys of
the ``--params-file`` YAML (``/central_perception:``, ``/slam_left/perception:``; wildcard
sections such as ``/**`` apply to every node and name none), e.g. ``perception_container
--ros-args --params-file config/container.yaml
-r central_perception:image:=/camera_rgb/image_raw
-r slam_left_perception:image:=/camera_slam_left/image_raw``. Started with none, it waits for
load requests.

Every node, loaded at start or later, gets the container's parameters (``--params-file``,
``-p``) and its node-specific remaps (``node:from:=to``), but not the container's own name
rules; what a load request gives wins. Each node starts its own worker: the GPU is shared, and
each worker holds its own models and CUDA memory. A node whose lifecycle ``shutdown``
transition completes is destroyed and leaves the list; the others go on. Ctrl-C and SIGTERM
(at any moment) stop them all and exit 0.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.utilities import remove_ros_args

from aria_perception.errors import ConfigError
from aria_perception.ros.component_manager import ComponentManager
from aria_perception.ros.component_request import (
    NodeSpec,
    forwarded_arguments,
    ros_args_values,
)
from aria_perception.ros.node import PerceptionNode
from aria_perception.ros.runner import SigtermInterrupt

#: The package and plugin name of the perception node in the ament index (``rclpy_components``).
PACKAGE = "aria_perception"
PLUGIN = "aria_perception::PerceptionNode"


def params_files(argv: list[str]) -> list[Path]:
    """The ``--params-file`` paths inside the ``--ros-args`` sections of ``argv``."""
    values = ros_args_values(argv, ("--params-file",))
    return [Path(path) for _, path in values if path is not None]


def node_names_from_yaml(path: Path) -> list[str]:
    """Fully qualified node names of the non-wildcard sections of a ROS params file."""
    import yaml

    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a ROS params file must be a mapping of node names")
    names = []
    for key, body in doc.items():
        key = str(key)
        if "*" in key or not isinstance(body, dict) or "ros__parameters" not in body:
            continue
        names.append(key if key.startswith("/") else "/" + key)
    return names


def split_name(fqn: str) -> tuple[str, str]:
    """``/ns/name`` -> (``name``, ``/ns``); ``name`` -> (``name``, ``""``)."""
    fqn = fqn.rstrip("/")
    namespace, _, name = fqn.rpartition("/")
    return name, namespace if namespace else ("/" if fqn.startswith("/") else "")


def main(args: list[str] | None = None) -> int:
    """Console script ``perception_container``.

    Exits 0 on Ctrl-C or SIGTERM (at any moment); 1 when a node named at start cannot start
    its worker; 2 when such a node refuses a parameter.
    """
    argv = list(sys.argv if args is None else args)
    with SigtermInterrupt() as sigterm:
        rclpy.init(args=argv)
        manager: ComponentManager | None = None
        code = 0
        try:
            forwarded = forwarded_arguments(argv)
            manager = ComponentManager(forwarded)
            manager.start()
            for spec in startup_specs(argv, forwarded, manager.full_name):
                node = manager.construct(PerceptionNode, spec)
                manager.add(node)
                if node.start_error:
                    code = 1  # already logged; the container does not run half its nodes
                    break
            if code == 0:
                manager.serve_loads()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except ConfigError as err:
            print(f"perception_container: invalid parameter: {err}", file=sys.stderr)
            code = 2
        finally:
            sigterm.shield()
            if manager is not None:
                manager.close()
            rclpy.try_shutdown()
    return code


def startup_specs(argv: list[str], forwarded: list[str], container: str) -> Iterator[NodeSpec]:
    """The nodes named on the command line, else in the ``--params-file`` sections.

    A section named after the container node itself is the container's, not a node's.
    """
    names = remove_ros_args(argv)[1:]
    if not names:
        for path in params_files(argv):
            names.extend(n for n in node_names_from_yaml(path) if n != container)
    cli_args = ("--ros-args", *forwarded) if forwarded else ()
    for fqn in dict.fromkeys(names):  # keep order, drop duplicates
        name, namespace = split_name(fqn)
        yield NodeSpec(PACKAGE, PLUGIN, name, namespace, cli_args)


if __name__ == "__main__":
    sys.exit(main())
