"""Helpers shared by the worker tests."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from worker_toy_engine import FACTORY, ToyEngine

from aria_perception.errors import AriaPerceptionError
from aria_perception.records import (
    Detections,
    EngineConfig,
    EngineResult,
    StageTimes,
    WorkerState,
)
from aria_perception.worker.settings import WorkerSettings, WorkerStats
from aria_perception.worker.supervisor import FrameResult, FrameTiming, Supervisor

#: Supervisors shared by the tests of a module: their workers outlive single tests.
MODULE_SUPERVISORS: list[Supervisor] = []

#: The ``make`` fixture: ``make(delay=, start_delay=, gated=, first_delay=, poison=, config=,
#: on_result=, **settings)``.
Make = Callable[..., tuple[Supervisor, "Collector"]]

#: The toy-engine supervisors' engine config and settings (see the ``make`` fixture).
TOY_CONFIG = EngineConfig(device="cpu", allow_random_weights=True, max_detections=8)
TOY_SETTINGS: dict[str, object] = dict(
    max_pixels=128 * 128,
    engine_factory=FACTORY,
    startup_timeout_s=60.0,
    frame_timeout_s=10.0,
    first_frame_timeout_s=10.0,
    heartbeat_interval_s=0.1,
    heartbeat_timeout_s=10.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
)


def our_segments() -> set[str]:
    """Names in /dev/shm created by this test process (``aria_<pid>_<n>``)."""
    prefix = f"aria_{os.getpid()}_"
    return {name for name in os.listdir("/dev/shm") if name.startswith(prefix)}


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def check_counts(stats: WorkerStats) -> None:
    """Every submitted frame is accounted for exactly once."""
    assert stats.submitted == (
        stats.processed
        + stats.dropped
        + stats.rejected
        + stats.failed
        + stats.in_flight
        + stats.pending
    ), stats


@dataclass
class Got:
    """A result as a test keeps it (the depth map copied out of shared memory)."""

    tag: Any
    frame_id: int
    generation: int
    depth: np.ndarray | None
    detections: Detections
    timing: FrameTiming
    at: float
    times: StageTimes | None = None


class Collector:
    """Callbacks for a supervisor that record results and errors for the test thread."""

    def __init__(self) -> None:
        self.results: list[Got] = []
        self.errors: list[tuple[int, Any, AriaPerceptionError, float]] = []
        self.cond = threading.Condition()

    def on_result(self, r: FrameResult) -> None:
        depth = None if r.result.depth is None else r.result.depth.copy()
        result = r.result
        now = time.monotonic()
        got = Got(
            r.tag, r.frame_id, r.generation, depth, result.detections, r.timing, now, result.times
        )
        with self.cond:
            self.results.append(got)
            self.cond.notify_all()

    def on_error(self, frame_id: int, tag: Any, error: AriaPerceptionError) -> None:
        with self.cond:
            self.errors.append((frame_id, tag, error, time.monotonic()))
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], object], timeout: float = 30.0) -> bool:
        """Wait until ``predicate()`` (called under the lock) is true."""
        with self.cond:
            return bool(self.cond.wait_for(predicate, timeout))

    def wait_results(self, n: int, timeout: float = 30.0) -> list[Got]:
        assert self.wait(lambda: len(self.results) >= n, timeout), (
            f"{len(self.results)} results, {n} expected; errors: {self.errors}"
        )
        return self.results

    def wait_errors(self, n: int, timeout: float = 30.0) -> list:
        assert self.wait(lambda: len(self.errors) >= n, timeout), (
            f"{len(self.errors)} errors, {n} expected: {self.errors}"
        )
        return self.errors


def assert_same_result(got: Got, expected: EngineResult) -> None:
    """The worker's result equals the in-process engine's for the same frame."""
    if expected.depth is None:
        assert got.depth is None
    else:
        assert got.depth is not None and got.depth.shape == expected.depth.shape
        np.testing.assert_array_equal(got.depth, expected.depth)
    d, e = got.detections, expected.detections
    assert len(d) == len(e), (len(d), len(e))
    np.testing.assert_array_equal(d.boxes, e.boxes)
    np.testing.assert_array_equal(d.scores, e.scores)
    np.testing.assert_array_equal(d.class_ids, e.class_ids)
    np.testing.assert_array_equal(d.depth, e.depth)


def toy_frame(value: int, h: int = 24, w: int = 32) -> np.ndarray:
    """A random rgb8 frame whose first byte (the toy engine's marker) is ``value % 256``."""
    rng = np.random.default_rng(value)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[0, 0, 0] = value % 256  # the toy engine's box count comes from here
    return image


def toy_reference(config: EngineConfig = TOY_CONFIG) -> ToyEngine:
    """The toy engine in this process, without the worker's delays, gate or log."""
    engine = ToyEngine(config)
    engine.delay_s = 0.0
    engine.gate = engine.log = None
    return engine


class EngineLog:
    """The toy engine's ``ARIA_TOY_LOG`` as the test reads it: what the worker did when."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[tuple[str, int]]:
        """``("start" | "done", marker)`` in the order the worker logged them."""
        if not self.path.exists():
            return []
        lines = self.path.read_text().split("\n")[:-1]  # the last one may be half written
        return [(event, int(marker)) for event, marker in (line.split() for line in lines)]

    def started(self) -> list[int]:
        """Markers of the frames the engine started."""
        return [m for e, m in self.events() if e == "start"]

    def done(self) -> list[int]:
        """Markers of the frames the engine finished."""
        return [m for e, m in self.events() if e == "done"]


class Gate:
    """The toy engine's ``ARIA_TOY_GATE``: frames wait in the engine until :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self) -> None:
        """Let every waiting and later frame through."""
        self.path.touch()


@contextlib.contextmanager
def module_worker(
    config: EngineConfig, settings: WorkerSettings
) -> Iterator[tuple[Supervisor, Collector]]:
    """A started supervisor that a whole test module shares (listed in ``MODULE_SUPERVISORS``).

    Stopped at the end, and then must be ``STOPPED``.
    """
    collector = Collector()
    sup = Supervisor(config, settings, on_result=collector.on_result, on_error=collector.on_error)
    MODULE_SUPERVISORS.append(sup)
    try:
        sup.start()
        yield sup, collector
    finally:
        sup.stop()
        MODULE_SUPERVISORS.remove(sup)
    assert sup.state is WorkerState.STOPPED
