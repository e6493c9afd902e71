"""Cameras on a shared toy-engine worker: the ``cams`` fixture's builder and camera records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from worker_helpers import TOY_CONFIG, TOY_SETTINGS, Collector, toy_frame

from aria_perception.optics import Calibration, Pinhole, Rectification
from aria_perception.records import EngineConfig
from aria_perception.worker.client import WorkerClient
from aria_perception.worker.registry import WorkerRegistry
from aria_perception.worker.settings import WorkerSettings


@dataclass
class Cam:
    """A camera of a test: its client, what it received, its frame size and settings."""

    name: str
    client: WorkerClient
    got: Collector
    hw: tuple[int, int]
    config: EngineConfig
    sent: dict[int, np.ndarray] = field(default_factory=dict)  # frame id -> frame

    def submit(self, value: int, tag: object = None) -> int | None:
        """Send a toy frame whose marker is ``value``; its tag names the camera by default."""
        frame = toy_frame(value, *self.hw)
        frame_id = self.client.submit(
            frame, "rgb8", tag=(self.name, value) if tag is None else tag
        )
        if frame_id is not None:
            self.sent[frame_id] = frame
        return frame_id

    def check_own(self) -> None:
        """Every result is of one of this camera's frames, made with its settings."""
        for got in self.got.results:
            assert got.tag[0] == self.name, (self.name, got.tag)
            frame = self.sent[got.frame_id]
            assert got.depth is not None and got.depth.shape == self.hw
            expected = frame.mean(axis=2, dtype=np.float32) / np.float32(255)
            np.testing.assert_array_equal(got.depth, expected)
            n = int(frame[0, 0, 0]) // 64
            offset = int(self.config.confidence * 10)
            assert list(got.detections.class_ids) == [(i + offset) % 3 for i in range(n)]
            assert got.times is not None and got.times.preprocess_ms == self.config.rotation


#: ``cams(name, hw, **config_changes)``: a camera on the test's registry.
Cams = Callable[..., Cam]


def rectification(width: int) -> Rectification:
    """A small plumb_bob calibration; the toy engine reports the pinhole ``width``."""
    calibration = Calibration.from_camera_info(
        "plumb_bob", [50.0, 0.0, 16.0, 0.0, 50.0, 12.0, 0.0, 0.0, 1.0], [0.0] * 5, 32, 24
    )
    return Rectification(calibration, Pinhole(width, 24, 50.0), 0)


def make_cam(
    registry: WorkerRegistry,
    name: str,
    hw: tuple[int, int],
    settings: dict[str, object] | None = None,
    **changes: object,
) -> Cam:
    """A camera of ``hw`` frames on ``registry``: toy ``settings``, ``changes`` to its config."""
    config = TOY_CONFIG.replace(**changes)
    values = {**TOY_SETTINGS, **(settings or {}), "max_pixels": hw[0] * hw[1]}
    settings = WorkerSettings(**values)  # type: ignore[arg-type]
    got = Collector()
    client = registry.acquire(
        name, config, settings, on_result=got.on_result, on_error=got.on_error
    )
    return Cam(name, client, got, hw, config)
