"""Acceptance of the worker with a real spawned worker running the real engine on CPU.

One worker serves the whole module (a start costs ~15 s of imports on a 2-core machine); the
tests run in file order and the kill and hang tests each cost one restart. Random weights are
seeded (``worker_real_engine``) so that the engine in this process holds the same ones. The
last test starts a worker of its own, shared by two cameras.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from worker_helpers import (
    Collector,
    alive,
    assert_same_result,
    check_counts,
    module_worker,
    our_segments,
    wait_for,
)
from worker_real_engine import FACTORY, seeded_engine

from aria_perception.errors import (
    WeightsError,
    WorkerDiedError,
    WorkerStartError,
    WorkerTimeoutError,
)
from aria_perception.records import EngineConfig, Thresholds, WorkerState
from aria_perception.worker.engine_api import InferenceEngine, check_engine
from aria_perception.worker.registry import WorkerRegistry
from aria_perception.worker.settings import DEFAULT_ENGINE_FACTORY, WorkerSettings
from aria_perception.worker.supervisor import Supervisor

pytestmark = pytest.mark.slow

# Small network inputs keep a CPU frame at ~40 ms; confidence 0 makes random weights give boxes.
CONFIG = EngineConfig(
    device="cpu",
    allow_random_weights=True,
    confidence=0.0,
    max_detections=20,
    depth_input_size=128,
    detector_image_size=160,
)
SETTINGS = WorkerSettings(
    max_pixels=160 * 160,
    engine_factory=FACTORY,
    startup_timeout_s=120.0,
    frame_timeout_s=10.0,
    first_frame_timeout_s=60.0,
    heartbeat_timeout_s=30.0,
    backoff_initial_s=0.1,
)
SHAPES = [((96, 128, 3), "rgb8"), ((120, 90, 3), "bgr8"), ((64, 64), "mono8"), ((80, 100), "jpeg")]


def make_frame(i: int) -> tuple[Any, str]:
    """Frame ``i`` of the test stream: its shape and encoding cycle through :data:`SHAPES`."""
    shape, encoding = SHAPES[i % len(SHAPES)]
    rng = np.random.default_rng(i)
    if encoding != "jpeg":
        return rng.integers(0, 256, shape, dtype=np.uint8), encoding
    import torch
    from torchvision.io import encode_jpeg

    image = torch.from_numpy(rng.integers(0, 256, (3, *shape), dtype=np.uint8))
    return encode_jpeg(image, quality=90).numpy(), encoding


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """The real engine in this process, with the worker's (seeded) weights and thread count."""
    import torch

    threads = torch.get_num_threads()
    e = seeded_engine(CONFIG)
    yield e
    e.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[Supervisor, Collector]]:
    with module_worker(CONFIG, SETTINGS) as running:
        yield running


def _reset(col: Collector) -> None:
    with col.cond:
        col.results.clear()
        col.errors.clear()


def test_200_frames_equal_the_engine_in_process(
    worker: tuple[Supervisor, Collector], engine: Any
) -> None:
    sup, col = worker
    _reset(col)
    info = sup.info
    assert info is not None and info.device == "cpu" and info.weights == "random"
    assert info.class_names == engine.info.class_names
    before = sup.stats()
    n = 200
    boxes = 0
    for i in range(n):
        data, encoding = make_frame(i)
        fid = sup.submit(data, encoding, tag=i)
        expected = engine.process(data, encoding)  # runs while the worker works on the same
        got = col.wait_results(i + 1, timeout=120)[i]
        assert (got.tag, got.frame_id) == (i, fid)
        assert_same_result(got, expected)
        boxes += len(got.detections)
    assert boxes > n  # the comparison covered detections, not only depth maps
    stats = sup.stats()
    assert stats.processed - before.processed == n and stats.dropped == before.dropped
    assert stats.restarts == 0 and not col.errors
    check_counts(stats)


def test_thresholds_reach_the_worker(worker: tuple[Supervisor, Collector], engine: Any) -> None:
    sup, col = worker
    _reset(col)
    thresholds = Thresholds(confidence=0.0, iou=0.45, classes=("person", "car"))
    sup.set_thresholds(thresholds)
    engine.set_thresholds(thresholds)
    try:
        data, encoding = make_frame(0)
        sup.submit(data, encoding, tag="filtered")
        got = col.wait_results(1, timeout=60)[0]
        assert_same_result(got, engine.process(data, encoding))
        assert set(got.detections.class_ids.tolist()) <= {0, 2} and len(got.detections)
    finally:
        everything = Thresholds(CONFIG.confidence, CONFIG.iou, ())
        sup.set_thresholds(everything)
        engine.set_thresholds(everything)


def test_kill_9_mid_stream_is_noticed_restarted_and_never_misattributed(
    worker: tuple[Supervisor, Collector], engine: Any
) -> None:
    sup, col = worker
    _reset(col)
    before = sup.stats()
    frames = [make_frame(i) for i in range(2000)]
    stop = threading.Event()

    def stream() -> None:
        for i, (data, encoding) in enumerate(frames):
            if stop.is_set():
                return
            sup.submit(data, encoding, tag=i)
            time.sleep(0.02)  # faster than the CPU worker: drops happen, as they should

    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        col.wait_results(5, timeout=60)
        pid = before.pid
        os.kill(pid, signal.SIGKILL)
        col.wait_errors(1, timeout=60)
        _, _, error, _ = col.errors[0]
        assert isinstance(error, WorkerDiedError) and "SIGKILL" in str(error)
        assert str(pid) in str(error)
        assert sup.state in (WorkerState.RESTARTING, WorkerState.READY)
        assert wait_for(lambda: not alive(pid), 10)
        # The replacement worker imports torch again: allow for a loaded 2-core machine.
        assert wait_for(
            lambda: any(r.generation == before.generation + 1 for r in col.results), 180
        )
        assert col.wait(
            lambda: sum(r.generation > before.generation for r in col.results) >= 5, 120
        )
    finally:
        stop.set()
        feeder.join()
    assert wait_for(lambda: not (sup.stats().in_flight or sup.stats().pending), 60)
    stats = sup.stats()
    assert stats.state is WorkerState.READY and stats.restarts == before.restarts + 1
    assert stats.generation == before.generation + 1 and stats.pid != pid
    check_counts(stats)
    lost = {tag for frame_id, tag, _, _ in col.errors if frame_id != -1}
    # The frame it was running is poison; killed between frames, the one due next failed.
    assert (stats.failed + stats.poison) - (before.failed + before.poison) == len(lost) <= 1
    # Every result belongs to its frame: the same as the in-process engine on that frame.
    tags = [r.tag for r in col.results]
    assert tags == sorted(tags) and not lost & set(tags)
    for r in col.results[:6] + col.results[-6:]:
        assert_same_result(r, engine.process(*frames[r.tag]))


def test_hung_worker_is_killed_after_the_frame_timeout_and_replaced(
    worker: tuple[Supervisor, Collector],
) -> None:
    sup, col = worker
    _reset(col)
    before = sup.stats()
    data, encoding = make_frame(0)
    sup.submit(data, encoding, tag="warm")  # this shape is warm now: frame_timeout_s applies
    col.wait_results(1, timeout=60)
    sup.debug("hang")
    sent = time.monotonic()
    fid = sup.submit(data, encoding, tag="stuck")
    col.wait_errors(1, timeout=60)
    frame_id, tag, error, at = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "stuck", WorkerTimeoutError)
    assert at - sent >= SETTINGS.frame_timeout_s  # never before its time
    assert wait_for(lambda: not alive(before.pid), 10)
    assert wait_for(lambda: sup.state is WorkerState.READY, 180)
    sup.submit(data, encoding, tag="after")
    got = col.wait_results(2, timeout=120)[1]
    assert got.tag == "after" and got.generation == before.generation + 1
    stats = sup.stats()
    assert stats.restarts == before.restarts + 1 and stats.failed == before.failed + 1
    check_counts(stats)


def test_missing_weights_fail_the_start_with_the_workers_error() -> None:
    config = CONFIG.replace(
        allow_random_weights=False, depth_weights="/nowhere/midas_v21_small_256.pt"
    )
    sup = Supervisor(
        config,
        WorkerSettings(max_pixels=64 * 64, engine_factory=DEFAULT_ENGINE_FACTORY),
        on_result=lambda r: None,
    )
    segments = our_segments()
    with pytest.raises(WorkerStartError) as caught:
        sup.start()
    # The worker's own error, not the start-up timeout.
    assert "WeightsError" in str(caught.value) and "not ready within" not in str(caught.value)
    assert "/nowhere/midas_v21_small_256.pt" in str(caught.value)
    assert isinstance(caught.value.__cause__, WeightsError)
    stats = sup.stats()
    assert stats.state is WorkerState.FAILED and stats.restarts == 0 and stats.generation == 0
    assert our_segments() == segments  # its own segment is gone already
    sup.stop()


def test_the_real_engine_implements_the_worker_protocol(engine: Any) -> None:
    assert isinstance(engine, InferenceEngine)
    assert check_engine(engine, FACTORY) is engine
    assert engine.register_host_buffer(np.zeros(4096, np.uint8)) is False  # nothing on the CPU
    data, encoding = make_frame(0)
    depth_out = np.full(data.shape[:2], np.nan, np.float32)
    result = engine.process(data, encoding, want_depth=True, depth_out=depth_out)
    assert result.depth is not None and np.shares_memory(result.depth, depth_out)
    assert np.isfinite(depth_out).all()
    np.testing.assert_array_equal(depth_out, engine.process(data, encoding).depth)


def _mapped(pid: int) -> set[str]:
    """Names of the shared-memory segments process ``pid`` has mapped."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/dev/shm/"):
            names.add(fields[5].removeprefix("/dev/shm/").split(" ")[0])
    return names


def test_a_camera_that_leaves_is_unmapped_by_the_worker_at_once() -> None:
    # The engine undoes its page-locking of a departed camera's segment
    # (unregister_host_buffer), so the worker unmaps it instead of keeping it until it exits.
    registry = WorkerRegistry()
    got = {name: Collector() for name in ("left", "right")}
    clients, segments = {}, {}
    try:
        for name, collector in got.items():
            before = our_segments()
            clients[name] = registry.acquire(
                name, CONFIG, SETTINGS, on_result=collector.on_result, on_error=collector.on_error
            )
            segments[name] = our_segments() - before
        frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        for name, client in clients.items():
            assert client.submit(frame, "rgb8", tag=name) is not None
            got[name].wait_results(1, timeout=120)
        pid = clients["left"].stats().pid
        assert pid is not None and clients["right"].stats().pid == pid
        assert len(segments["left"]) == 1 and segments["left"] <= _mapped(pid)

        clients.pop("left").close()
        assert wait_for(lambda: not (segments["left"] & _mapped(pid)), 30), _mapped(pid)
        # The other camera goes on, on the same worker.
        assert clients["right"].submit(frame, "rgb8", tag="again") is not None
        assert got["right"].wait(lambda: any(g.tag == "again" for g in got["right"].results))
        assert clients["right"].stats().pid == pid
    finally:
        for client in clients.values():
            client.close()
    assert registry.workers() == 0
