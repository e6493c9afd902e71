"""The node's parameters frozen into types, with the defaults of what is the node's own.

The defaults of the engine's parameters are :class:`~aria_perception.records.EngineConfig`'s,
those of the worker's are :class:`~aria_perception.worker.settings.WorkerSettings`'; the node's
own (start-up, input transport and QoS, diagnostics) are written here once. The parameter table
(:mod:`aria_perception.ros.param_table`) reads every default from :class:`NodeConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from aria_perception.records import EngineConfig, Thresholds
from aria_perception.tracking.tracker_config import DEFAULT_TRACKER
from aria_perception.worker.settings import WorkerSettings

__all__ = ["NodeConfig"]

_WORKER = WorkerSettings()


@dataclass(frozen=True)
class NodeConfig:
    """The node's parameters frozen into types (read once at start; thresholds tracked live).

    Attributes:
        engine: what the worker builds (device, models, thresholds, rotation, streams, graphs).
        autostart: configure and activate at construction.
        transport: ``raw`` or ``compressed`` input.
        raw_intake: take ``sensor_msgs/Image`` frames as serialized bytes, read in place.
        qos: input QoS policy name.
        max_pixels: largest accepted frame in pixels.
        startup_timeout_s: worker start-up limit.
        frame_timeout_s: worker per-frame limit.
        max_restarts: worker restarts allowed within ``restart_window_s``.
        restart_window_s: window of ``max_restarts``.
        failed_cooldown_s: how long a worker that was given up on stays down.
        diagnostics_period_s: diagnostics timer period.
        expected_fps: WARN below this output rate (0 = off).
        latency_budget_ms: WARN above this p95 latency (0 = off).
        tracker_type: ``none`` or a tracker Ultralytics ships (track IDs in the detections).
        tracker_config: a tracker YAML over that tracker's shipped settings ("" = none).
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    autostart: bool = True
    transport: str = "raw"
    raw_intake: bool = True
    qos: str = "auto"
    max_pixels: int = _WORKER.max_pixels
    startup_timeout_s: float = _WORKER.startup_timeout_s
    frame_timeout_s: float = _WORKER.frame_timeout_s
    max_restarts: int = _WORKER.max_restarts
    restart_window_s: float = _WORKER.restart_window_s
    failed_cooldown_s: float = _WORKER.failed_cooldown_s
    diagnostics_period_s: float = 1.0
    expected_fps: float = 30.0
    latency_budget_ms: float = 30.0
    tracker_type: str = DEFAULT_TRACKER
    tracker_config: str = ""

    @property
    def thresholds(self) -> Thresholds:
        """The run-time changeable detector settings."""
        return Thresholds(self.engine.confidence, self.engine.iou, self.engine.classes)

    @property
    def max_encoded_bytes(self) -> int:
        """Capacity for one compressed frame: the raw bgra8 slot (a PNG is never much bigger)."""
        return self.max_pixels * 4

    def worker_settings(self) -> WorkerSettings:
        """The worker's settings: each field of ours named as a ``WorkerSettings`` field.

        The worker's other settings keep their defaults.
        """
        names = [f.name for f in fields(WorkerSettings) if hasattr(self, f.name)]
        return WorkerSettings(**{name: getattr(self, name) for name in names})
