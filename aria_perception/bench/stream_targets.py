"""The targets of a multi-stream invocation: an echo process and a container, a node per stream.

The echo reference runs one echo node per stream in one process (``bench/echo.py`` given node
names), and the perception target is one ``perception_container`` with one perception node per
stream, named as ``launch/aria.launch.py`` names them (``rgb_perception``,
``slam_left_perception``, ``slam_right_perception``). Each target lives in its own namespace
(``/bench_<label>``): node ``/bench_node/rgb_perception`` reads
``/bench_node/camera_rgb/image_raw`` (and the ``camera_info`` beside it) and answers on
``/bench_node/rgb_perception/detections``.

Each node's parameters are the params file's ``/**`` section and its own section, matched by
node name in any namespace as the launch file does (``config/aria.yaml`` unless
``--params-file`` names another), then the bench's own (``input.transport``,
``allow_random_weights``); they go to the container in a params file written beside the logs,
one section per node's full name. ``-p`` parameters go to every node, as they do to the
single node.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from aria_perception.bench.config import BenchConfig
from aria_perception.bench.errors import UsageError
from aria_perception.bench.process import CONTAINER_COMMAND, ECHO_COMMAND
from aria_perception.bench.run_record import Role, TargetKind
from aria_perception.bench.stream_replay import StreamTopics
from aria_perception.bench.streams import Stream
from aria_perception.bench.targets import ECHO_NAMESPACE, Target, param_value
from aria_perception.bench.topics import camera_info_topic, join_topic


def headset_params_file() -> Path:
    """``config/aria.yaml``: in the source tree, else in the installed package's share."""
    source = Path(__file__).resolve().parents[2] / "config" / "aria.yaml"
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("aria_perception")) / "config" / "aria.yaml"
    except Exception as err:  # not installed with ament: nothing else to look in
        raise UsageError(f"config/aria.yaml not found ({err}); pass --params-file") from err


def stream_topics(namespace: str, streams: list[Stream]) -> list[StreamTopics]:
    """Where each stream goes in a target that lives in ``namespace``."""
    return [
        StreamTopics(
            image=s.image_topic(namespace),
            detections=join_topic(namespace, s.node_name, "detections"),
            camera_info=camera_info_topic(join_topic(namespace, s.topic)),
            node_name=s.node_name,
        )
        for s in streams
    ]


def _remaps(namespace: str, streams: list[Stream]) -> list[str]:
    args = []
    for s in streams:
        topic = join_topic(namespace, s.topic)
        args += ["-r", f"{s.node_name}:image:={topic}"]
        args += ["-r", f"{s.node_name}:image/compressed:={topic}/compressed"]
        args += ["-r", f"{s.node_name}:camera_info:={camera_info_topic(topic)}"]
    return args


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"input.rotation": 90}`` -> ``{"input": {"rotation": 90}}`` (a ROS params file's form)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *heads, leaf = key.split(".")
        level = out
        for head in heads:
            level = level.setdefault(head, {})
        level[leaf] = value
    return out


def write_params_file(
    path: Path, source: Path, namespace: str, streams: list[Stream], base: dict[str, Any]
) -> Path:
    """Each node's parameters from ``source`` plus ``base``, one section per full name.

    Raises:
        UsageError: ``source`` cannot be read as a ROS params file, or ``path`` not written.
    """
    from aria_perception.errors import ConfigError
    from aria_perception.ros.launch_support import node_parameters

    doc = {}
    for s in streams:
        try:
            params = node_parameters(source, s.node_name, namespace)
        except ConfigError as err:
            raise UsageError(str(err)) from err
        params.update(base)
        doc[join_topic(namespace, s.node_name)] = {"ros__parameters": _nested(params)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err}") from err
    return path


def plan_stream_targets(
    config: BenchConfig, streams: list[Stream], compressed: bool, logs: Path
) -> list[Target]:
    """The echo process and the container runs ``config`` asks for (params files into ``logs``)."""
    c = config
    transport = "compressed" if compressed else "raw"
    targets = []
    if c.echo:
        ros_args = [*_remaps(ECHO_NAMESPACE, streams), "-p", f"input.transport:={transport}"]
        qos = param_value(c.params, "input.qos")
        if qos:
            ros_args += ["-p", f"input.qos:={qos}"]
        names = [join_topic(ECHO_NAMESPACE, s.node_name) for s in streams]
        targets.append(
            Target(
                label="echo",
                role=Role.ECHO,
                kind=TargetKind.ECHO,
                namespace=ECHO_NAMESPACE,
                command=(sys.executable, *ECHO_COMMAND, *names),
                ros_args=tuple(ros_args),
            )
        )
    if not c.node:
        return targets
    source = Path(c.params_file) if c.params_file else headset_params_file()
    base: dict[str, Any] = {"input.transport": transport}
    if c.random_weights:
        base["allow_random_weights"] = True
    shown = [f"{k}:={str(v).lower() if isinstance(v, bool) else v}" for k, v in base.items()]
    sets = [(c.labels[0], Role.NODE, c.params)]
    if c.compare_params is not None:
        sets.append((c.labels[1], Role.NODE_B, [*c.params, *c.compare_params]))
    for label, role, params in sets:
        ns = f"/bench_{label}"
        path = write_params_file(logs / f"{label}.params.yaml", source, ns, streams, base)
        ros_args = ["--params-file", str(path), *_remaps(ns, streams)]
        for p in params:
            ros_args += ["-p", p]
        names = [join_topic(ns, s.node_name) for s in streams]
        program = tuple(c.node_command or (sys.executable, *CONTAINER_COMMAND))
        targets.append(
            Target(
                label=label,
                role=role,
                kind=TargetKind.NODE,
                namespace=ns,
                command=(*program, *names),
                ros_args=tuple(ros_args),
                params=(f"params from {source}", *shown, *params),
            )
        )
    return targets
