"""TEST-ONLY engines: deterministic numpy work, no torch, start in a blink.

:class:`ToyEngine` implements the worker's ``InferenceEngine`` protocol. It serves the worker's
mechanics tests (drops, crashes, hangs, restarts) where the real engine's ~14 s start-up per
spawned worker would make the suite slow; the acceptance tests use the real
``aria_perception.engine.engine:Engine``. Knobs (read in the worker, inherited from the test's
environment at spawn):

- ``ARIA_TOY_DELAY_S``: seconds of sleep per frame;
- ``ARIA_TOY_STEPS``: the frame's sleep is cut into this many steps, each raising the engine's
  ``progress`` count (a slow engine that advances; default 1);
- ``ARIA_TOY_START_DELAY_S``: seconds of sleep while "loading models";
- ``ARIA_TOY_FIRST_DELAY_S``: seconds of extra sleep on the first frame of each encoding and
  shape (lazy initialisation, as the real engine's first frame of a shape);
- ``ARIA_TOY_POISON``: a marker; a frame with it crashes the worker (SIGSEGV) once it is past
  the gate, as a frame that crashes a decoder would;
- ``ARIA_TOY_GATE``: a path; each frame waits in the engine until it exists, so a test can hold
  the worker inside a frame and know it (see ``ARIA_TOY_LOG``);
- ``ARIA_TOY_LOG``: a path; each frame appends ``start <marker>`` on entry and ``done <marker>``
  once its result (depth written into ``depth_out``) is complete, the marker being the frame's
  first byte (``frame[0, 0, 0]``; for compressed data the byte after the ``TOY`` header).

:class:`IncompleteEngine` lacks most of the protocol: the worker must refuse it at start-up.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import numpy as np

from aria_perception.errors import ConfigError, FrameError, WeightsError
from aria_perception.optics import Rectification
from aria_perception.records import (
    Detections,
    EngineConfig,
    EngineInfo,
    EngineResult,
    StageTimes,
    Thresholds,
)

FACTORY = "worker_toy_engine:ToyEngine"
INCOMPLETE_FACTORY = "worker_toy_engine:IncompleteEngine"
CLASS_NAMES = ("person", "car", "dog")
CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}


class ToyEngine:
    """Depth = mean of the channels / 255; one box per 64 of the first pixel's value.

    What a camera's settings did shows in the result: the class ids start at ten times the
    confidence (mod 3), ``times.preprocess_ms`` is the ``rotation`` the frame came with (-1
    without one) and ``times.transfer_ms`` the pinhole width of the camera's latest
    rectification (-1 before one came).
    """

    def __init__(self, config: EngineConfig) -> None:
        if not config.allow_random_weights and not Path(config.detector_weights).is_file():
            raise WeightsError(
                f"detector weights {config.detector_weights!r} not found; "
                "pass allow_random_weights to run with random weights"
            )
        time.sleep(float(os.environ.get("ARIA_TOY_START_DELAY_S", "0")))
        self.delay_s = float(os.environ.get("ARIA_TOY_DELAY_S", "0"))
        self.steps = max(1, int(os.environ.get("ARIA_TOY_STEPS", "1") or "1"))
        self.progress = 0  # raised per step of a frame: the worker's heartbeat reports it
        self.gate = os.environ.get("ARIA_TOY_GATE") or None
        self.log = os.environ.get("ARIA_TOY_LOG") or None
        self.first_delay_s = float(os.environ.get("ARIA_TOY_FIRST_DELAY_S", "0"))
        poison = os.environ.get("ARIA_TOY_POISON", "")
        self.poison = int(poison) if poison else None
        self.seen: set[tuple[str, tuple[int, ...]]] = set()
        self.config = config
        self.thresholds = Thresholds(config.confidence, config.iou, config.classes)
        self.info = EngineInfo("cpu", "cpu", "fp32", CLASS_NAMES, "random")
        self.frames = 0
        self.pinhole_widths: dict[str, int] = {}  # camera -> its rectification's pinhole width

    def process(
        self,
        frame: np.ndarray,
        encoding: str = "rgb8",
        *,
        want_depth: bool = True,
        depth_out: np.ndarray | None = None,
        camera: str = "",
        rotation: int | None = None,
    ) -> EngineResult:
        """Numpy stand-in for Engine.process; writes the depth map into ``depth_out`` if given."""
        if encoding in ("jpeg", "png"):
            if frame.ndim != 1:
                raise FrameError(f"{encoding} frame must be 1-D bytes")
            if bytes(frame[:3]) != b"TOY":
                raise FrameError(f"corrupt {encoding} data")
            image = frame[3:].reshape(1, -1, 1)
        else:
            if encoding not in CHANNELS:
                raise FrameError(f"unsupported encoding {encoding!r}")
            image = frame if frame.ndim == 3 else frame[:, :, None]
            if image.shape[2] != CHANNELS[encoding]:
                raise FrameError(f"{encoding} needs {CHANNELS[encoding]} channels")
        marker = int(image[0, 0, 0])
        self._note("start", marker)
        while self.gate is not None and not os.path.exists(self.gate):
            time.sleep(0.005)
        if marker == self.poison:
            faulthandler.disable()  # an intended crash needs no traceback on stderr
            os.kill(os.getpid(), signal.SIGSEGV)
        if (encoding, frame.shape) not in self.seen:
            self.seen.add((encoding, frame.shape))
            time.sleep(self.first_delay_s)
        for _ in range(self.steps):
            time.sleep(self.delay_s / self.steps)
            self.progress += 1
        depth = image[:, :, :3].mean(axis=2, dtype=np.float32) / np.float32(255)
        n = int(image[0, 0, 0]) // 64
        boxes = np.array([[i, i, i + 4, i + 8] for i in range(n)], np.float32).reshape(n, 4)
        scores = np.full((n,), np.float32(depth.mean()), np.float32)
        class_ids = (np.arange(n, dtype=np.int32) + int(self.thresholds.confidence * 10)) % 3
        box_depth = np.array([depth[i : i + 8, i : i + 4].mean() for i in range(n)], np.float32)
        self.frames += 1
        if want_depth and depth_out is not None:
            h, w = depth.shape
            target = depth_out if depth_out.ndim == 2 else depth_out[: h * w].reshape(h, w)
            np.copyto(target, depth)
            depth = target
        self._note("done", marker)
        return EngineResult(
            detections=Detections(boxes, scores, class_ids, box_depth),
            depth=depth if want_depth else None,
            times=StageTimes(
                preprocess_ms=-1.0 if rotation is None else float(rotation),
                transfer_ms=float(self.pinhole_widths.get(camera, -1)),
                total_ms=float(self.frames),
            ),
            depth_fresh=True,
        )

    def _note(self, event: str, marker: int) -> None:
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{event} {marker}\n")

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Like Engine.set_thresholds: unknown class names are refused."""
        unknown = [c for c in thresholds.classes if c not in CLASS_NAMES]
        if unknown:
            raise ConfigError(f"detector.classes: unknown class name(s) {unknown}")
        self.thresholds = thresholds

    def set_rectification(self, rectification: Rectification, camera: str = "") -> None:
        """Remember the camera's pinhole width (shown in each of its results)."""
        self.pinhole_widths[camera] = rectification.pinhole.width

    def register_host_buffer(self, array: np.ndarray) -> bool:
        """No device memory to page-lock for."""
        return False

    def memory_mb(self) -> tuple[float, float]:
        """Fixed figures, so tests can see them travel."""
        return 1.5, 2.5

    def close(self) -> None:
        """Nothing to release."""


class IncompleteEngine:
    """Has ``info`` and ``process`` only: not an ``InferenceEngine``."""

    def __init__(self, config: EngineConfig) -> None:
        self.info = EngineInfo("cpu", "cpu", "fp32", CLASS_NAMES, "random")

    def process(self, frame: np.ndarray, encoding: str = "rgb8") -> EngineResult:
        """Never reached."""
        raise AssertionError("an incomplete engine must not run")
