"""Hostile frames and a worker that keeps failing: poison frames, the cool-down, frame clocks.

Real spawned workers with the toy engine. A poison frame (``make(poison=marker)``) crashes the
worker with SIGSEGV once it is inside the engine, as a frame that crashes a decoder would.
Everything is waited for as a condition; what is asserted is what must hold however long that
took.
"""

from __future__ import annotations

import logging

import pytest
from worker_helpers import EngineLog, Gate, Make, check_counts, toy_frame, wait_for

from aria_perception.errors import (
    FrameError,
    PoisonFrameError,
    WorkerDiedError,
    WorkerError,
    WorkerTimeoutError,
)
from aria_perception.records import WorkerState
from aria_perception.worker.ledger import MAX_IN_WORKER

POISON = 200  # the marker (first byte) of the frames that crash the toy engine


def ready(sup: object, generation: int, timeout: float = 60.0) -> bool:
    stats = sup.stats  # type: ignore[attr-defined]
    return wait_for(
        lambda: stats().generation == generation and stats().state is WorkerState.READY, timeout
    )


def test_poison_frames_are_refused_and_never_make_the_supervisor_give_up(make: Make) -> None:
    """max_restarts=1, yet three frames that each kill the worker leave it READY."""
    sup, col = make(poison=POISON, max_restarts=1)
    sup.start()
    ids = []
    for n in range(3):
        pid = sup.stats().pid
        ids.append(sup.submit(toy_frame(POISON), "rgb8", tag=f"poison{n}"))
        col.wait_errors(n + 1)
        frame_id, tag, error, _ = col.errors[n]
        assert (frame_id, tag, type(error)) == (ids[n], f"poison{n}", PoisonFrameError)
        assert isinstance(error, FrameError) and isinstance(error, WorkerDiedError)
        assert "SIGSEGV" in str(error) and str(pid) in str(error)
        assert f"frame {ids[n]}" in str(error) and "not retried" in str(error)
        assert ready(sup, n + 2)
    sup.submit(toy_frame(7), "rgb8", tag="good")
    got = col.wait_results(1)[0]
    assert (got.tag, got.generation) == ("good", 4)
    stats = sup.stats()
    assert stats.state is WorkerState.READY and stats.restarts == 3
    assert (stats.poison, stats.rejected, stats.failed, stats.processed) == (3, 3, 0, 1)
    assert len(col.errors) == 3  # one report per poison frame, nothing for the restarts
    check_counts(stats)


def test_only_the_frame_the_worker_runs_is_poison(
    make: Make, gate: Gate, engine_log: EngineLog
) -> None:
    """Frames waiting in the worker behind the one it dies on are dropped, never blamed."""
    sup, col = make(poison=POISON, gated=True)
    sup.start()
    bad = sup.submit(toy_frame(POISON), "rgb8", tag="bad")
    assert wait_for(lambda: engine_log.started() == [POISON], 30)  # inside the engine
    waiting = [sup.submit(toy_frame(i), "rgb8", tag=i) for i in (1, 2)]
    assert all(w is not None for w in waiting)
    assert sup.stats().in_flight == MAX_IN_WORKER
    gate.open()  # the bad frame goes on, and crashes the worker
    col.wait_errors(1)
    assert ready(sup, 2)
    [(frame_id, tag, error, _)] = col.errors
    assert (frame_id, tag, type(error)) == (bad, "bad", PoisonFrameError)
    stats = sup.stats()
    assert (stats.poison, stats.rejected, stats.failed, stats.dropped) == (1, 1, 0, 2)
    assert not col.results and engine_log.started() == [POISON]  # 1 and 2 never ran
    sup.submit(toy_frame(3), "rgb8", tag="after")
    assert col.wait_results(1)[0].tag == "after"
    check_counts(sup.stats())


@pytest.mark.slow
def test_failed_is_left_by_itself_after_the_cool_down(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """Crashes between frames count toward giving up; FAILED then lasts the cool-down only."""
    caplog.set_level(logging.WARNING, logger="aria_perception.worker")
    sup, col = make(max_restarts=0, failed_cooldown_s=1.0)
    sup.start()
    for generation in (2, 3):  # the failures are forgotten after each cool-down
        before = len(col.errors)
        sup.debug("crash")
        assert wait_for(lambda: sup.state is WorkerState.FAILED, 30)
        assert sup.submit(toy_frame(1), "rgb8") is None  # no worker meanwhile: dropped
        errors = col.wait_errors(before + 2)[before:]
        assert [(e[0], type(e[2])) for e in errors] == [(-1, WorkerDiedError), (-1, WorkerError)]
        text = str(errors[1][2])
        assert "failed 1 time within" in text and "trying again in 1 s" in text
        assert ready(sup, generation)  # by itself
    assert "starting the worker again after 1 s in FAILED" in caplog.text
    stats = sup.stats()
    assert (stats.restarts, stats.poison, stats.dropped) == (2, 0, 2)
    sup.submit(toy_frame(2), "rgb8", tag="back")
    assert col.wait_results(1)[0].tag == "back"
    check_counts(sup.stats())


def test_start_and_stop_during_the_cool_down_do_not_wait_for_it(make: Make) -> None:
    sup, _ = make(max_restarts=0, failed_cooldown_s=600.0)
    sup.start()
    sup.debug("crash")
    assert wait_for(lambda: sup.state is WorkerState.FAILED, 30)
    sup.start()  # a fresh start at once, not after 600 s
    assert sup.state is WorkerState.READY and sup.stats().generation == 2
    sup.debug("crash")
    assert wait_for(lambda: sup.state is WorkerState.FAILED, 30)
    sup.stop()
    assert sup.state is WorkerState.STOPPED


def test_a_frame_stuck_inside_the_engine_is_killed_by_the_timeout_from_its_start(
    make: Make, engine_log: EngineLog
) -> None:
    """Heartbeats go on from their own thread: only the frame's clock catches a stuck engine.

    A hang is not poison (the engine may hang on any frame, e.g. a stuck device): it counts
    toward giving up.
    """
    sup, col = make(gated=True, frame_timeout_s=1.0, first_frame_timeout_s=1.0, max_restarts=0)
    sup.start()
    pid = sup.stats().pid
    fid = sup.submit(toy_frame(1), "rgb8", tag="stuck")  # the gate never opens
    assert wait_for(lambda: engine_log.started() == [1], 30)
    col.wait_errors(1)
    frame_id, tag, error, _ = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "stuck", WorkerTimeoutError)
    text = str(error)
    assert f"(pid {pid}) gave no answer to frame {fid} within 1 s of starting it" in text
    assert "worker.frame_timeout_s" in text
    assert wait_for(lambda: sup.state is WorkerState.FAILED, 30)
    stats = sup.stats()
    assert (stats.failed, stats.poison, stats.rejected) == (1, 0, 0)
    check_counts(stats)


@pytest.mark.slow
def test_the_first_frame_of_a_shape_the_engine_runs_gets_the_first_frame_timeout(
    make: Make, gate: Gate, engine_log: EngineLog
) -> None:
    """A skipped frame warms nothing: the frame the engine runs first gets the long timeout.

    The newer frame the worker runs instead of the skipped one is the first of its shape in the
    engine, slow (lazy initialisation), and must get the first-frame time.
    """
    sup, col = make(gated=True, first_delay=2.0, frame_timeout_s=1.0, first_frame_timeout_s=60.0)
    sup.start()
    sup.submit(toy_frame(1, 16, 16), "rgb8", tag="other shape")
    assert wait_for(lambda: engine_log.started() == [1], 30)
    skipped = sup.submit(toy_frame(2), "rgb8", tag="skipped")
    sup.submit(toy_frame(3), "rgb8", tag="runs")  # newer: the worker skips the one before
    assert skipped is not None
    gate.open()
    results = col.wait_results(2)
    assert [r.tag for r in results] == ["other shape", "runs"]
    assert engine_log.done() == [1, 3] and not col.errors
    stats = sup.stats()
    assert (stats.restarts, stats.failed, stats.processed, stats.dropped) == (0, 0, 2, 1)
    check_counts(stats)
