"""Faults with the toy engine: crashes, hangs, freezes, engine errors, restarts, failed starts.

Every fault is waited for as a condition (an error reported, a new generation ready); what is
asserted is what must hold however long that took: the error's type and text, which frame it
names, that the lost process is gone, the counts, and that no result lands on another frame.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
from worker_helpers import (
    TOY_CONFIG,
    Make,
    alive,
    assert_same_result,
    check_counts,
    our_segments,
    toy_frame,
    toy_reference,
    wait_for,
)
from worker_toy_engine import INCOMPLETE_FACTORY

from aria_perception.errors import (
    EngineError,
    PoisonFrameError,
    WeightsError,
    WorkerDiedError,
    WorkerError,
    WorkerStartError,
    WorkerTimeoutError,
)
from aria_perception.records import WorkerState


def ready_again(sup: object, generation: int, timeout: float = 60.0) -> bool:
    stats = sup.stats  # type: ignore[attr-defined]
    return wait_for(
        lambda: stats().generation == generation and stats().state is WorkerState.READY, timeout
    )


def test_engine_error_reaches_the_parent_typed_and_the_worker_is_replaced(make: Make) -> None:
    sup, col = make()
    sup.start()
    sup.debug("raise", "EngineError", "CUDA out of memory. Tried to allocate 2.00 GiB")
    fid = sup.submit(toy_frame(3), "rgb8", tag="oom")
    col.wait_errors(1)
    frame_id, tag, error, _ = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "oom", EngineError)
    assert str(error) == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert ready_again(sup, 2)
    sup.submit(toy_frame(4), "rgb8", tag="after")
    got = col.wait_results(1)[0]
    assert (got.tag, got.generation) == ("after", 2)
    stats = sup.stats()
    assert (stats.failed, stats.restarts, stats.processed) == (1, 1, 1)
    assert len(col.errors) == 1  # reported once, for its frame
    check_counts(stats)


@pytest.mark.parametrize("fault", ["kill -9", "crash", "segfault"])
def test_crash_mid_stream_is_noticed_and_recovered_without_misattribution(
    make: Make, fault: str
) -> None:
    sup, col = make(delay=0.02)
    sup.start()
    frames = [toy_frame(i) for i in range(1000)]
    stop = threading.Event()

    def stream() -> None:
        for i, f in enumerate(frames):
            if stop.is_set():
                return
            sup.submit(f, "rgb8", tag=i)
            time.sleep(0.01)

    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        col.wait_results(5)
        pid = sup.stats().pid
        if fault == "kill -9":
            os.kill(pid, signal.SIGKILL)
        else:
            sup.debug(fault)
        col.wait_errors(1)
        frame_id, _, error, _ = col.errors[0]
        assert isinstance(error, WorkerDiedError)
        expected = {"kill -9": "SIGKILL", "crash": "exited with code 70", "segfault": "SIGSEGV"}
        assert expected[fault] in str(error) and str(pid) in str(error)
        assert wait_for(lambda: not alive(pid), 10)
        # Processing resumes in a new generation.
        assert col.wait(lambda: any(r.generation == 2 for r in col.results), 60)
    finally:
        stop.set()
        feeder.join()
    assert wait_for(lambda: not (sup.stats().in_flight or sup.stats().pending), 30)
    stats = sup.stats()
    assert stats.restarts == 1 and stats.generation == 2 and stats.state is WorkerState.READY
    assert stats.pid != pid
    assert stats.last_error.startswith(("WorkerDiedError", "PoisonFrameError"))
    check_counts(stats)
    # Killed while running a frame (most likely): that frame is poison; between frames: the
    # frame due next, if any, failed. Either way at most one frame is lost, and reported.
    assert stats.failed + stats.poison == sum(1 for e in col.errors if e[0] != -1) <= 1
    poisoned = [e for e in col.errors if isinstance(e[2], PoisonFrameError)]
    assert len(poisoned) == stats.poison and stats.rejected == stats.poison
    # No result landed on the wrong frame, before or after the crash.
    engine = toy_reference()
    lost = {e[1] for e in col.errors if e[0] != -1}
    for r in col.results:
        assert r.tag not in lost
        assert_same_result(r, engine.process(frames[r.tag], "rgb8"))
    tags = [r.tag for r in col.results]
    assert tags == sorted(tags)
    assert {r.generation for r in col.results} == {1, 2}


def test_hung_worker_is_killed_after_the_frame_timeout_and_replaced(make: Make) -> None:
    sup, col = make(frame_timeout_s=1.0, first_frame_timeout_s=1.0)
    sup.start()
    pid = sup.stats().pid
    sup.submit(toy_frame(1), "rgb8", tag="warm")
    col.wait_results(1)
    sup.debug("hang")  # heartbeats go on: only the frame timeout can catch this
    sent = time.monotonic()
    fid = sup.submit(toy_frame(2), "rgb8", tag="stuck")
    col.wait_errors(1)
    frame_id, tag, error, at = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "stuck", WorkerTimeoutError)
    assert "within 1 s" in str(error) and "frame_timeout_s" in str(error)
    assert at - sent >= 1.0  # never before its time
    assert wait_for(lambda: not alive(pid), 10)
    assert ready_again(sup, 2)
    sup.submit(toy_frame(3), "rgb8", tag="after")
    assert col.wait_results(2)[1].tag == "after"
    stats = sup.stats()
    assert (stats.restarts, stats.failed, stats.processed) == (1, 1, 2)
    check_counts(stats)


def test_frozen_idle_worker_is_caught_by_the_heartbeat(make: Make) -> None:
    sup, col = make(heartbeat_interval_s=0.1, heartbeat_timeout_s=1.0)
    sup.start()
    pid = sup.stats().pid
    sup.debug("freeze")
    col.wait_errors(1)
    frame_id, tag, error, _ = col.errors[0]
    assert (frame_id, tag, type(error)) == (-1, None, WorkerTimeoutError)
    found = re.search(r"no heartbeat from worker \(pid (\d+)\) for ([\d.]+) s", str(error))
    assert found, str(error)
    assert int(found[1]) == pid and float(found[2]) >= 1.0  # silent past the timeout
    assert wait_for(lambda: not alive(pid), 10)
    assert ready_again(sup, 2)


def test_restarts_back_off_then_give_up(make: Make) -> None:
    sup, col = make(max_restarts=2, backoff_initial_s=0.4, backoff_max_s=10.0)
    sup.start()
    delays = []
    for generation in (2, 3):
        crashed = time.monotonic()
        sup.debug("crash")
        assert wait_for(lambda g=generation: sup.stats().generation == g, 60)
        delays.append(time.monotonic() - crashed)
        assert wait_for(lambda: sup.state is WorkerState.READY, 60)
    # Lower bounds only: a restart never comes before its backoff (0.4 s, then doubled).
    assert delays[0] >= 0.4 and delays[1] >= 0.8
    pid = sup.stats().pid
    sup.debug("crash")
    assert wait_for(lambda: sup.state is WorkerState.FAILED, 30)
    errors = col.wait_errors(4)
    assert [type(e[2]) for e in errors] == [WorkerDiedError] * 3 + [WorkerError]
    stats = sup.stats()
    assert "max_restarts=2" in stats.last_error
    assert "trying again in 30 s" in stats.last_error  # the default cool-down
    assert stats.restarts == 2 and stats.pid is None and not alive(pid)
    assert sup.submit(toy_frame(1), "rgb8", tag="late") is None
    assert sup.stats().dropped == 1
    check_counts(sup.stats())
    sup.stop()
    assert sup.state is WorkerState.STOPPED and not our_segments()


def test_missing_weights_fail_the_start_with_the_workers_error(make: Make) -> None:
    config = TOY_CONFIG.replace(allow_random_weights=False, detector_weights="/nowhere/yolo.pt")
    sup, _ = make(config=config)
    with pytest.raises(WorkerStartError) as caught:
        sup.start()
    message = str(caught.value)
    assert "WeightsError" in message and "/nowhere/yolo.pt" in message
    assert isinstance(caught.value.__cause__, WeightsError)
    stats = sup.stats()
    assert stats.state is WorkerState.FAILED and stats.restarts == 0 and stats.pid is None
    assert stats.last_error is not None and "/nowhere/yolo.pt" in stats.last_error
    assert not our_segments()
    assert sup.submit(toy_frame(1), "rgb8") is None


def test_startup_timeout(make: Make) -> None:
    sup, _ = make(start_delay=60, startup_timeout_s=1.0)
    with pytest.raises(WorkerStartError, match="not ready within 1 s"):
        sup.start()
    assert sup.state is WorkerState.FAILED and not our_segments()


def test_unknown_engine_factory(make: Make) -> None:
    sup, _ = make(engine_factory="worker_toy_engine:Nope")
    with pytest.raises(WorkerStartError, match="ConfigError: .*has no 'Nope'"):
        sup.start()


def test_an_engine_without_the_whole_protocol_is_refused_at_start(make: Make) -> None:
    sup, _ = make(engine_factory=INCOMPLETE_FACTORY)
    with pytest.raises(WorkerStartError) as caught:
        sup.start()
    message = str(caught.value)
    assert "ConfigError" in message and "IncompleteEngine lacks" in message
    for member in ("set_thresholds", "register_host_buffer", "memory_mb", "close"):
        assert member in message
    assert "process" not in message.split("lacks")[1].split("of the")[0]
    assert sup.state is WorkerState.FAILED and not our_segments()
