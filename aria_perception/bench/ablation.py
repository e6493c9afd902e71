"""The engine benchmark's ablations: which configuration change or engine option each one times."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from aria_perception.bench.errors import UsageError
from aria_perception.records import EngineConfig


@dataclass(frozen=True)
class EngineOptions:
    """Keyword arguments of :class:`~aria_perception.engine.engine.Engine` beyond its config.

    Attributes:
        fixed_nms: NMS, box depth and packing at fixed shapes inside the CUDA graph (no host
            sync); False runs the exact torchvision NMS with host syncs on every frame.
        frame_graph: a single frame runs as one CUDA graph (:mod:`~aria_perception.engine.
            frame_graph`); False replays each step's graph on its own.
    """

    fixed_nms: bool = True
    frame_graph: bool = True


@dataclass(frozen=True)
class Ablation:
    """One configuration the engine benchmark times.

    Attributes:
        name: Name on the command line (``--ablations``) and in the table.
        description: What differs from the default, in words.
        config_changes: :class:`EngineConfig` fields set on top of the base configuration.
        engine_options: How the engine is built.
    """

    name: str
    description: str
    config_changes: Mapping[str, object] = field(default_factory=dict)
    engine_options: EngineOptions = EngineOptions()

    def __post_init__(self) -> None:
        unknown = set(self.config_changes) - set(EngineConfig.__dataclass_fields__)
        if unknown:
            raise UsageError(f"ablation {self.name!r} changes unknown fields {sorted(unknown)}")
        # Read-only: the table below is shared by every caller.
        object.__setattr__(self, "config_changes", MappingProxyType(dict(self.config_changes)))

    def config(self, base: EngineConfig) -> EngineConfig:
        """``base`` with this ablation's changes."""
        return base.replace(**self.config_changes)


ABLATIONS: tuple[Ablation, ...] = (
    Ablation("default", "fp16 on CUDA, compiled networks, CUDA graphs, parallel streams"),
    Ablation("no-compile", "networks not compiled (worker.compile off)", {"compile": "off"}),
    Ablation("sequential", "depth and detector one after the other", {"parallel_streams": False}),
    Ablation("eager", "no CUDA graphs", {"cuda_graphs": False}),
    Ablation(
        "eager-sequential",
        "no CUDA graphs, one stream",
        {"cuda_graphs": False, "parallel_streams": False},
    ),
    Ablation("fp32", "full precision", {"precision": "fp32"}),
    Ablation("skip3", "depth every third frame", {"depth_frame_skip": 3}),
    Ablation("depth-only", "no detector", {"detector_enabled": False}),
    Ablation("detector-only", "no depth network", {"depth_enabled": False}),
    Ablation(
        "exact-nms",
        "NMS with host syncs (torchvision) instead of fixed shapes in the CUDA graph",
        engine_options=EngineOptions(fixed_nms=False),
    ),
    Ablation(
        "step-graphs",
        "one CUDA graph per step (five replays a frame) instead of one per frame",
        engine_options=EngineOptions(frame_graph=False),
    ),
)


def ablation_names() -> list[str]:
    """Every ablation's name, in table order."""
    return [a.name for a in ABLATIONS]


def select_ablations(spec: str) -> list[Ablation]:
    """The ablations an ``--ablations`` value names: ``all``, ``none`` (default only) or a list.

    Raises:
        UsageError: A name that is not an ablation.
    """
    if spec == "all":
        return list(ABLATIONS)
    if spec == "none":
        return [ABLATIONS[0]]
    by_name = {a.name: a for a in ABLATIONS}
    names: Iterable[str] = (n.strip() for n in spec.split(","))
    wanted = [n for n in names if n]
    unknown = [n for n in wanted if n not in by_name]
    if unknown or not wanted:
        raise UsageError(f"unknown ablation(s) {unknown}; known: {ablation_names()}")
    return [by_name[n] for n in wanted]
