"""The targets one invocation measures, in order: echo reference, our node, its compare run.

Each target started here gets its own namespace (``/bench_<label>``), so a late message of one
run can never be taken for an answer of the next.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from aria_perception.bench.config import BenchConfig
from aria_perception.bench.process import ECHO_COMMAND, NODE_COMMAND
from aria_perception.bench.run_record import Role, TargetKind

ECHO_NAMESPACE = "/bench_echo"


@dataclass(frozen=True)
class Target:
    """One process to measure.

    Attributes:
        label: Name of its run in the report.
        role: Which run of the invocation it is.
        kind: Echo reference, a node started here, or a running node.
        namespace: Namespace its topics resolve under.
        command: Program and arguments before ``--ros-args`` (None: attached, not started).
        ros_args: Arguments after ``--ros-args``.
        params: The ``key:=value`` parameters it gets (shown in the report).
    """

    label: str
    role: Role
    kind: TargetKind
    namespace: str
    command: tuple[str, ...] | None = None
    ros_args: tuple[str, ...] = ()
    params: tuple[str, ...] = ()

    @property
    def is_node(self) -> bool:
        """A perception node (not the echo reference)."""
        return self.role is not Role.ECHO


def param_value(params: list[str], key: str) -> str | None:
    """The last value ``params`` (``key:=value`` strings) give ``key``, else None."""
    value = None
    for p in params:
        k, _, v = p.partition(":=")
        if k.strip() == key:
            value = v.strip()
    return value


def plan_targets(config: BenchConfig, compressed: bool) -> list[Target]:
    """The targets ``config`` asks for, for raw or ``compressed`` input frames."""
    c = config
    transport = "compressed" if compressed else "raw"
    targets = []
    if c.echo:
        ros_args = ["-r", f"__node:={c.node_name}", "-r", f"__ns:={ECHO_NAMESPACE}"]
        ros_args += ["-p", f"input.transport:={transport}"]
        # The echo reference subscribes with the node's input QoS, so both meet the same DDS.
        qos = param_value(c.params, "input.qos")
        if qos:
            ros_args += ["-p", f"input.qos:={qos}"]
        targets.append(
            Target(
                label="echo",
                role=Role.ECHO,
                kind=TargetKind.ECHO,
                namespace=ECHO_NAMESPACE,
                command=(sys.executable, *ECHO_COMMAND),
                ros_args=tuple(ros_args),
            )
        )
    if not c.node:
        return targets
    if c.attach:
        targets.append(Target(c.labels[0], Role.NODE, TargetKind.ATTACHED, c.namespace))
        return targets
    sets = [(c.labels[0], Role.NODE, c.params)]
    if c.compare_params is not None:
        sets.append((c.labels[1], Role.NODE_B, [*c.params, *c.compare_params]))
    for label, role, params in sets:
        ns = f"/bench_{label}"
        base = [f"input.transport:={transport}"]
        if c.random_weights:
            base.append("allow_random_weights:=true")
        ros_args = ["-r", f"__node:={c.node_name}", "-r", f"__ns:={ns}"]
        if c.params_file is not None:
            ros_args += ["--params-file", str(c.params_file)]
        for p in [*base, *params]:
            ros_args += ["-p", p]
        targets.append(
            Target(
                label=label,
                role=role,
                kind=TargetKind.NODE,
                namespace=ns,
                command=tuple(c.node_command or (sys.executable, *NODE_COMMAND)),
                ros_args=tuple(ros_args),
                params=(*base, *params),
            )
        )
    return targets
