"""``input.rectify`` through a real worker: calibration messages, the rectified frame, restarts.

One real-engine worker (CPU, random weights) serves the module. The calibration goes to the
worker once per change, never with the frames, and a restarted worker gets it again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from aria_cases import RGB_PARAMS, fisheye624_fields, remap_bilinear
from worker_helpers import MODULE_SUPERVISORS, check_counts, wait_for
from worker_real_engine import FACTORY

from aria_perception.errors import FrameError
from aria_perception.optics import Calibration, Pinhole, Rectification
from aria_perception.records import EngineConfig, WorkerState
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.supervisor import FrameResult, Supervisor

pytestmark = pytest.mark.slow

SIZE = 176  # the Aria RGB calibration scaled by 1/8
CONFIG = EngineConfig(
    device="cpu",
    allow_random_weights=True,
    confidence=0.0,
    max_detections=20,
    depth_input_size=64,
    detector_image_size=64,
    rotation=90,
    rectify=True,
    rectify_width=96,
    rectify_height=80,
    rectify_focal_px=62.5,
)
SETTINGS = WorkerSettings(
    max_pixels=SIZE * SIZE,
    engine_factory=FACTORY,
    startup_timeout_s=120.0,
    frame_timeout_s=10.0,
    heartbeat_timeout_s=30.0,
    backoff_initial_s=0.1,
)


def _rect(shift: float = 0.0) -> Rectification:
    s = SIZE / 1408
    f, cx, cy = RGB_PARAMS[0] * s, (RGB_PARAMS[1] + 0.5) * s - 0.5, (RGB_PARAMS[2] + 0.5) * s - 0.5
    fields = fisheye624_fields((f, cx + shift, cy, *RGB_PARAMS[3:]), SIZE, SIZE)
    pinhole = Pinhole(CONFIG.rectify_width, CONFIG.rectify_height, CONFIG.rectify_focal_px)
    return Rectification(Calibration.from_camera_info(**fields), pinhole, CONFIG.rotation)


FRAME = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


class Rectified:
    """Results with a copy of their rectified frame, and the errors."""

    def __init__(self) -> None:
        self.results: list[tuple[Any, np.ndarray | None, tuple[int, ...] | None]] = []
        self.errors: list[tuple[int, Exception]] = []
        self.lock = threading.Lock()

    def on_result(self, r: FrameResult) -> None:
        rect = None if r.result.rectified is None else r.result.rectified.copy()
        depth = None if r.result.depth is None else r.result.depth.shape
        with self.lock:
            self.results.append((r.tag, rect, depth))

    def on_error(self, frame_id: int, tag: Any, error: Exception) -> None:
        with self.lock:
            self.errors.append((frame_id, error))

    def result(self, tag: str) -> tuple[Any, np.ndarray | None, tuple[int, ...] | None] | None:
        with self.lock:
            return next((r for r in self.results if r[0] == tag), None)


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[Supervisor, Rectified]]:
    got = Rectified()
    sup = Supervisor(CONFIG, SETTINGS, on_result=got.on_result, on_error=got.on_error)
    MODULE_SUPERVISORS.append(sup)  # its worker outlives single tests
    try:
        sup.start()
        yield sup, got
    finally:
        sup.stop()
        MODULE_SUPERVISORS.remove(sup)
    assert sup.state is WorkerState.STOPPED


def _run(sup: Supervisor, got: Rectified, tag: str, **kwargs: Any) -> Any:
    sup.submit(FRAME, "rgb8", tag, **kwargs)
    assert wait_for(lambda: got.result(tag), 60.0), f"no result; errors: {got.errors}"
    return got.result(tag)


def test_frames_before_the_calibration_are_rejected(worker) -> None:
    sup, got = worker
    sup.submit(FRAME, "rgb8", "early")
    assert wait_for(lambda: got.errors, 60.0)
    frame_id, error = got.errors[-1]
    assert isinstance(error, FrameError) and "no camera_info has arrived yet" in str(error)
    assert sup.stats().rejected == 1
    got.errors.clear()


def test_the_rectified_frame_comes_back_in_the_output_slot(worker) -> None:
    sup, got = worker
    rect = _rect()
    sup.set_rectification(rect)
    _, image, depth = _run(sup, got, "first", want_rect=True)
    assert depth == (96, 80)  # the rectified image's size, turned upright
    reference = np.rint(remap_bilinear(FRAME, rect.grid()))
    assert image.shape == (96, 80, 3) and np.abs(image - reference).max() <= 1
    _, image, _ = _run(sup, got, "lazy")  # not asked: not copied back
    assert image is None
    check_counts(sup.stats())


def test_a_restarted_worker_gets_the_current_calibration_again(worker) -> None:
    sup, got = worker
    moved = _rect(shift=5.0)
    sup.set_rectification(moved)
    generation = sup.stats().generation
    sup.debug("crash")
    assert wait_for(
        lambda: sup.stats().generation > generation and sup.state is WorkerState.READY, 120.0
    )
    _, image, _ = _run(sup, got, "after restart", want_rect=True)
    reference = np.rint(remap_bilinear(FRAME, moved.grid()))
    assert np.abs(image - reference).max() <= 1
    assert not [e for _, e in got.errors if isinstance(e, FrameError)]
