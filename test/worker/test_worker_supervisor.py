"""Supervisor results and API with real spawned workers running the test-only toy engine.

The toy engine (``worker_toy_engine``) starts in a fraction of a second, so every test has its
own worker. Flow control is in ``test_worker_supervisor_flow.py``, faults and restarts in
``test_worker_supervisor_faults.py``, stopping in ``test_worker_supervisor_stop.py``; the same
paths with the real engine in ``test_worker_engine.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from worker_helpers import (
    Make,
    alive,
    assert_same_result,
    check_counts,
    our_segments,
    toy_frame,
    toy_reference,
    wait_for,
)

from aria_perception.errors import ConfigError, FrameError, WorkerError
from aria_perception.records import Thresholds, WorkerState

ROOT = Path(__file__).resolve().parents[2]


def test_results_equal_in_process_engine_for_every_input_kind(make: Make) -> None:
    sup, col = make()
    info = sup.start()
    assert info.class_names == ("person", "car", "dog") and sup.state is WorkerState.READY
    rng = np.random.default_rng(0)
    padded = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    padded[0, 0, 0] = 200
    inputs: list[tuple[object, str, bool]] = [
        (toy_frame(130), "rgb8", True),
        (toy_frame(255, 17, 5), "bgr8", True),
        (toy_frame(64, 128, 128), "rgb8", True),  # exactly max_pixels
        (rng.integers(0, 256, (20, 30), dtype=np.uint8), "mono8", True),
        (rng.integers(0, 256, (20, 30, 1), dtype=np.uint8), "mono8", True),
        (rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), "rgba8", True),
        (rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), "bgra8", True),
        (padded[:, :40], "rgb8", True),  # a strided view, as a padded row step gives
        (b"TOY" + bytes(range(200)), "jpeg", True),
        (np.frombuffer(b"TOY" + bytes(50), np.uint8), "png", True),
        (toy_frame(190), "rgb8", False),
    ]
    engine = toy_reference()
    ids = []
    for i, (data, encoding, want_depth) in enumerate(inputs):
        ids.append(sup.submit(data, encoding, tag=("tag", i), want_depth=want_depth))
        col.wait_results(i + 1)
    for i, (got, (data, encoding, want_depth)) in enumerate(zip(col.results, inputs, strict=True)):
        assert got.tag == ("tag", i) and got.frame_id == ids[i] and got.generation == 1
        array = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
        expected = engine.process(np.ascontiguousarray(array), encoding, want_depth=want_depth)
        assert_same_result(got, expected)
    assert len(col.results[2].detections) == 1 and col.results[2].depth.shape == (128, 128)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stats = sup.stats()
    assert (stats.processed, stats.dropped, stats.rejected, stats.failed) == (len(inputs), 0, 0, 0)
    assert (stats.gpu_mem_mb, stats.gpu_mem_peak_mb) == (1.5, 2.5)  # reported by the worker
    assert stats.pid is not None and alive(stats.pid) and stats.pid != os.getpid()
    assert stats.stale == 0
    check_counts(stats)
    assert not col.errors


def test_timing_splits_the_round_trip_and_transport_excludes_the_copy_in(make: Make) -> None:
    sup, col = make()
    sup.start()
    for i in range(5):
        sup.submit(toy_frame(i, 128, 128), "rgb8", tag=i)
        col.wait_results(i + 1)
    eps = 1e-6
    for got in col.results:
        t = got.timing
        parts = (t.copy_in_ms, t.wait_ms, t.engine_ms, t.copy_out_ms, t.to_worker_ms)
        assert min(*parts, t.to_parent_ms) >= -eps, t
        assert t.copy_in_ms + t.wait_ms + t.engine_ms + t.transport_ms == pytest.approx(
            t.roundtrip_ms
        )
        # The process boundary both ways: both messages, the worker's copy out and the rest.
        assert t.transport_ms >= t.to_worker_ms + t.copy_out_ms + t.to_parent_ms - eps, t


def test_bad_frames_are_rejected_and_the_worker_goes_on(make: Make) -> None:
    sup, col = make(max_encoded_bytes=1000)
    sup.start()
    pid = sup.stats().pid
    bad = [
        (toy_frame(1), "yuv422", "unsupported encoding 'yuv422'"),
        (np.zeros((8, 8, 4), np.uint8), "rgb8", r"must be \(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((0, 8, 3), np.uint8), "rgb8", "zero-size"),
        (np.zeros((129, 128, 3), np.uint8), "rgb8", "more than input.max_pixels=16384"),
        (b"", "jpeg", "empty"),
        (bytes(1001), "png", "over the 1000 bytes"),
        (np.zeros((4, 4), np.uint8), "jpeg", "1-D"),
        (12345, "jpeg", "must be bytes"),
    ]
    for data, encoding, match in bad:
        with pytest.raises(FrameError, match=match):
            sup.submit(data, encoding, tag="bad")
    assert sup.stats().rejected == len(bad)
    # A frame only the engine can find bad: reported through on_error, the worker survives.
    fid = sup.submit(b"XXXnot-an-image", "jpeg", tag="corrupt")
    col.wait_errors(1)
    frame_id, tag, error, _ = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "corrupt", FrameError)
    assert "corrupt jpeg data" in str(error)
    sup.submit(toy_frame(70), "rgb8", tag="good")
    assert col.wait_results(1)[0].tag == "good"
    stats = sup.stats()
    assert stats.rejected == len(bad) + 1 and stats.processed == 1
    assert stats.pid == pid and stats.restarts == 0 and stats.state is WorkerState.READY
    assert stats.last_error == "FrameError: corrupt jpeg data"
    check_counts(stats)


def test_thresholds_checked_applied_and_kept_across_restarts(make: Make) -> None:
    sup, col = make()
    sup.start()
    with pytest.raises(ConfigError, match="unknown class name"):
        sup.set_thresholds(Thresholds(0.5, 0.5, ("unicorn",)))
    with pytest.raises(ConfigError, match="detector.confidence"):
        sup.set_thresholds(Thresholds(1.5, 0.5))  # refused as it is built
    thresholds = Thresholds(0.5, 0.3, ("dog",))
    sup.set_thresholds(thresholds)
    engine = toy_reference()
    engine.set_thresholds(thresholds)
    image = toy_frame(250)
    sup.submit(image, "rgb8", tag=1)
    assert_same_result(col.wait_results(1)[0], engine.process(image, "rgb8"))
    sup.debug("crash")
    assert wait_for(lambda: sup.stats().generation == 2 and sup.state is WorkerState.READY, 60)
    sup.submit(image, "rgb8", tag=2)
    assert_same_result(col.wait_results(2)[1], engine.process(image, "rgb8"))
    # Errors the worker reports outside a frame arrive typed, with frame id -1.
    sup.debug("raise", kind="NoSuchError")
    errors = col.wait_errors(2)
    assert errors[-1][:2] == (-1, None) and isinstance(errors[-1][2], ConfigError)
    assert "NoSuchError" in str(errors[-1][2])
    assert "NoSuchError" in str(sup.stats().last_error)


def test_context_manager_and_start_again(make: Make) -> None:
    sup, col = make()
    with sup as started:
        assert started is sup and sup.state is WorkerState.READY
        name = next(iter(our_segments()))
        sup.submit(toy_frame(1), "rgb8", tag="a")
        col.wait_results(1)
    assert sup.state is WorkerState.STOPPED and not our_segments()
    sup.start()
    assert our_segments() and name not in our_segments()
    sup.submit(toy_frame(2), "rgb8", tag="b")
    assert col.wait_results(2)[1].tag == "b"
    with pytest.raises(WorkerError, match="already started"):
        sup.start()


def test_debug_refuses_unknown_actions(make: Make) -> None:
    sup, _ = make()
    with pytest.raises(ValueError, match="unknown debug action 'explode'"):
        sup.debug("explode")


def test_public_names() -> None:
    import aria_perception.worker as worker
    from aria_perception.worker import supervisor

    assert worker.__all__ == sorted(worker.__all__)
    for name in ("FrameResult", "FrameTiming", "Supervisor", "WorkerSettings", "WorkerStats"):
        assert name in worker.__all__ and getattr(worker, name) is not None
    assert worker.Supervisor is supervisor.Supervisor
    assert (worker.FrameResult, worker.FrameTiming) == (
        supervisor.FrameResult,
        supervisor.FrameTiming,
    )
