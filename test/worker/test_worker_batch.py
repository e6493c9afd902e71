"""Cameras batched in one engine call (``batch_cameras``): who runs together, and failures.

Real worker processes (the toy engine with ``process_batch``) and real shared memory. Frames
wait together deterministically: the first camera's frame is held in the engine (the gate)
while each camera sends one, which the worker reads before it runs anything else; then the
gate opens. Every result is checked against its camera's own frame, size, thresholds and
rotation (``Cam.check_own``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_helpers import Cam, Cams
from worker_batch_engine import FACTORY, BatchLog
from worker_helpers import EngineLog, Gate, check_counts, wait_for
from worker_toy_engine import FACTORY as TOY_FACTORY

from aria_perception.errors import (
    EngineError,
    FrameError,
    PoisonFrameError,
    WorkerDiedError,
)
from aria_perception.records import WorkerState

#: The marker of the frame held in the engine while the others arrive.
HELD = 64
#: Each camera's frame sent meanwhile (1, 2 and 3 boxes: their class offsets show).
VALUES = {"rgb": 100, "left": 140, "right": 200}


@pytest.fixture
def batch_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gate: Gate) -> BatchLog:
    """The batch engine's call log; its frames wait at the gate (set before the cameras)."""
    log = BatchLog(tmp_path / "batch.log")
    monkeypatch.setenv("ARIA_BATCH_LOG", str(log.path))
    monkeypatch.setenv("ARIA_TOY_GATE", str(gate.path))
    return log


def trio(
    cams: Cams,
    batch: bool = True,
    factory: str = FACTORY,
    confidences: tuple[float, float, float] = (0.1, 0.1, 0.1),
) -> list[Cam]:
    """rgb, left and right on one worker: their own sizes and rotations."""
    settings = {"engine_factory": factory}
    sizes, rotations = ((24, 32), (16, 20), (20, 16)), (90, 0, 270)
    return [
        cams(name, hw, settings, confidence=conf, rotation=rot, batch_cameras=batch)
        for name, hw, conf, rot in zip(VALUES, sizes, confidences, rotations, strict=True)
    ]


def wait_together(
    cameras: list[Cam], gate: Gate, engine_log: EngineLog, held: int = HELD, debug: str = ""
) -> None:
    """The first camera's frame is held in the engine while every camera sends its value.

    ``debug``: a ``FrameError`` injected meanwhile (the worker reads it with the frames).
    """
    gate.path.unlink(missing_ok=True)
    assert cameras[0].submit(held) is not None
    assert wait_for(lambda: engine_log.started()[-1:] == [held], 30), engine_log.events()
    if debug:
        cameras[0].client.debug("raise", "FrameError", debug)
    for cam in cameras:
        assert cam.submit(VALUES[cam.name]) is not None
    gate.open()


def wait_done(cameras: list[Cam], rounds: int = 1) -> None:
    """Each camera has its answers after ``rounds`` (the first camera's held frames too)."""
    for i, cam in enumerate(cameras):
        want = rounds * (1 + (i == 0))
        assert cam.got.wait(lambda c=cam, n=want: len(c.got.results) + len(c.got.errors) >= n)


def batch_sizes(cam: Cam) -> dict[int, int]:
    """The marker of each of the camera's results, and the size of its engine call."""
    return {got.tag[1]: got.timing.batch_size for got in cam.got.results}


def run_round(cameras: list[Cam], value: int) -> None:
    """Each camera sends a frame marked ``value`` and waits for its result."""
    for cam in cameras:
        assert cam.submit(value) is not None
    for cam in cameras:
        assert cam.got.wait(lambda c=cam: any(g.tag[1] == value for g in c.got.results))


def test_cameras_waiting_together_run_as_one_batch_of_their_own_frames(
    cams: Cams, gate: Gate, engine_log: EngineLog, batch_log: BatchLog
) -> None:
    cameras = trio(cams)
    rgb, left, right = cameras
    wait_together(cameras, gate, engine_log)
    wait_done(cameras)
    # The held frame ran alone (process); then the round goes on after rgb: left, right, rgb.
    assert batch_log.calls() == [[VALUES["left"], VALUES["right"], VALUES["rgb"]]]
    assert batch_sizes(rgb) == {HELD: 1, VALUES["rgb"]: 3}
    assert batch_sizes(left) == {VALUES["left"]: 3}
    assert batch_sizes(right) == {VALUES["right"]: 3}
    for cam in cameras:
        cam.check_own()
        stats = cam.client.stats()
        assert (stats.restarts, stats.rejected, stats.failed) == (0, 0, 0) and not cam.got.errors
        check_counts(stats)


def test_cameras_with_other_thresholds_are_not_batched_with_them(
    cams: Cams, gate: Gate, engine_log: EngineLog, batch_log: BatchLog
) -> None:
    cameras = trio(cams, confidences=(0.1, 0.2, 0.1))  # left's thresholds differ
    rgb, left, right = cameras
    wait_together(cameras, gate, engine_log)
    wait_done(cameras)
    assert batch_log.calls() == [[VALUES["right"], VALUES["rgb"]]]
    assert batch_sizes(rgb) == {HELD: 1, VALUES["rgb"]: 2}
    assert batch_sizes(right) == {VALUES["right"]: 2}
    assert batch_sizes(left) == {VALUES["left"]: 1}  # alone, with its own thresholds
    # The round after rgb: left first (alone), then right's batch, which takes rgb's frame.
    assert engine_log.started() == [HELD, VALUES["left"], VALUES["right"], VALUES["rgb"]]
    for cam in cameras:
        cam.check_own()
        check_counts(cam.client.stats())


def test_a_frame_the_engine_refuses_in_a_batch_fails_alone(
    cams: Cams,
    gate: Gate,
    engine_log: EngineLog,
    batch_log: BatchLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARIA_BATCH_REFUSE", str(VALUES["right"]))
    cameras = trio(cams)
    rgb, left, right = cameras
    pid = rgb.client.stats().pid
    for round_ in (1, 2):  # twice: a refused frame gives its output slot back
        wait_together(cameras, gate, engine_log, HELD + round_)
        wait_done(cameras, round_)
        assert len(batch_log.calls()) == round_
        _, tag, error, _ = right.got.wait_errors(round_)[-1]
        assert type(error) is FrameError and tag == ("right", VALUES["right"])
        assert "refused in a batch" in str(error)
    assert batch_sizes(rgb) == {HELD + 1: 1, HELD + 2: 1, VALUES["rgb"]: 3}
    assert batch_sizes(left) == {VALUES["left"]: 3}
    assert right.got.results == []
    stats = [cam.client.stats() for cam in cameras]
    assert [(s.rejected, s.failed, s.restarts, s.pid) for s in stats] == [
        (0, 0, 0, pid),
        (0, 0, 0, pid),
        (2, 0, 0, pid),
    ]
    run_round(cameras, 201)  # the worker goes on: right's next frame is fine
    for cam in cameras:
        cam.check_own()
        check_counts(cam.client.stats())


def test_a_frame_error_for_the_whole_batch_refuses_its_frames_and_the_worker_goes_on(
    cams: Cams, gate: Gate, engine_log: EngineLog, batch_log: BatchLog
) -> None:
    cameras = trio(cams)
    rgb = cameras[0]
    pid = rgb.client.stats().pid
    for held in (HELD, HELD + 1):  # twice: a refused frame gives its output slot back
        wait_together(cameras, gate, engine_log, held, "injected for the batch")
        for cam in cameras:
            _, tag, error, _ = cam.got.wait_errors(held - HELD + 1)[-1]
            assert type(error) is FrameError and tag == (cam.name, VALUES[cam.name])
    assert batch_log.calls() == []  # refused before the call
    run_round(cameras, 204)
    for cam in cameras:
        stats = cam.client.stats()
        assert (stats.rejected, stats.failed, stats.restarts, stats.pid) == (2, 0, 0, pid)
        cam.check_own()
        check_counts(stats)


def test_an_engine_error_in_a_batch_fails_every_frame_and_every_camera_resumes(
    cams: Cams,
    gate: Gate,
    engine_log: EngineLog,
    batch_log: BatchLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARIA_BATCH_RAISE", str(VALUES["left"]))
    cameras = trio(cams)
    rgb = cameras[0]
    pid = rgb.client.stats().pid
    wait_together(cameras, gate, engine_log)
    for cam in cameras:
        [(_, tag, error, _)] = cam.got.wait_errors(1)
        assert tag == (cam.name, VALUES[cam.name])  # its own frame of the batch
        assert isinstance(error, (EngineError, WorkerDiedError)), error
        assert "device lost in a batch" in str(error)
    assert wait_for(lambda: all(c.client.stats().state is WorkerState.READY for c in cameras), 60)
    run_round(cameras, 202)
    for cam in cameras:
        stats = cam.client.stats()
        assert (stats.restarts, stats.failed, stats.poison) == (1, 1, 0), stats
        assert stats.pid not in (None, pid)
        cam.check_own()
        check_counts(stats)


def test_a_crash_in_a_batch_makes_every_frame_of_it_its_cameras_poison(
    cams: Cams,
    gate: Gate,
    engine_log: EngineLog,
    batch_log: BatchLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARIA_TOY_POISON", str(VALUES["right"]))  # SIGSEGV in the batch
    cameras = trio(cams)
    wait_together(cameras, gate, engine_log)
    for cam in cameras:
        [(_, tag, error, _)] = cam.got.wait_errors(1)
        assert isinstance(error, PoisonFrameError) and tag == (cam.name, VALUES[cam.name])
    assert wait_for(lambda: all(c.client.stats().state is WorkerState.READY for c in cameras), 60)
    run_round(cameras, 203)
    for cam in cameras:
        stats = cam.client.stats()
        assert (stats.poison, stats.rejected, stats.restarts) == (1, 1, 1), stats
        cam.check_own()
        check_counts(stats)


@pytest.mark.parametrize(
    ("batch", "factory"), [(False, FACTORY), (True, TOY_FACTORY)], ids=["off", "no_batch_call"]
)
def test_without_batching_or_process_batch_each_frame_runs_alone(
    cams: Cams,
    gate: Gate,
    engine_log: EngineLog,
    batch_log: BatchLog,
    batch: bool,
    factory: str,
) -> None:
    cameras = trio(cams, batch=batch, factory=factory)
    wait_together(cameras, gate, engine_log)
    wait_done(cameras)
    assert batch_log.calls() == []
    # One frame at a time, round-robin after rgb's held frame.
    assert engine_log.started() == [HELD, VALUES["left"], VALUES["right"], VALUES["rgb"]]
    for cam in cameras:
        assert set(batch_sizes(cam).values()) == {1}
        cam.check_own()
        check_counts(cam.client.stats())
