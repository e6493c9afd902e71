"""Flow control with the toy engine: newest wins, drops counted, output slots, no queue.

Where a count must be exact, the toy engine's gate holds the worker inside a frame (and its log
says so) while the test submits: what the supervisor does with the other frames then follows
from its rules alone, not from timing.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from worker_helpers import (
    EngineLog,
    Gate,
    Make,
    assert_same_result,
    check_counts,
    toy_frame,
    toy_reference,
    wait_for,
)

from aria_perception.worker.ledger import MAX_IN_WORKER
from aria_perception.worker.slots import INPUT_SLOTS
from aria_perception.worker.supervisor import FrameResult


def settled(sup: object) -> bool:
    """Every submitted frame has ended (no job in the worker or pending)."""
    stats = sup.stats()  # type: ignore[attr-defined]
    return not (stats.in_flight or stats.pending)


def test_newest_frame_wins_and_older_waiting_frames_are_dropped(
    make: Make, gate: Gate, engine_log: EngineLog
) -> None:
    sup, col = make(gated=True)
    sup.start()
    frames = [toy_frame(i) for i in range(6)]
    assert sup.submit(frames[0], "rgb8", tag=0) is not None
    assert wait_for(lambda: engine_log.started() == [0], 30)  # held inside frame 0
    ids = [sup.submit(f, "rgb8", tag=i) for i, f in enumerate(frames[1:], 1)]
    assert all(i is not None for i in ids)
    # 1 and 2 wait in the worker behind 0; 3, then 4 were pending and replaced by the newer
    # frame (dropped); 5 is pending.
    stats = sup.stats()
    assert (stats.in_flight, stats.pending, stats.dropped) == (MAX_IN_WORKER, 1, 2)
    check_counts(stats)
    gate.open()
    assert wait_for(lambda: settled(sup), 30)
    tags = [r.tag for r in col.results]
    # After 0, the worker finds 1 and 2 waiting and runs only 2 (skipping 1), unless 5 has
    # already reached it; 5, the newest, always runs: never more than 3 results.
    assert tags in ([0, 2, 5], [0, 5]), tags
    engine = toy_reference()
    for r in col.results:
        assert_same_result(r, engine.process(frames[r.tag], "rgb8"))
    stats = sup.stats()
    assert (stats.processed, stats.dropped) == (len(tags), len(frames) - len(tags))
    assert not col.errors
    check_counts(stats)


def test_a_slow_consumer_never_sees_its_result_overwritten(
    make: Make, engine_log: EngineLog
) -> None:
    """The worker runs ahead of ``on_result``: it must not write into a slot being read."""
    frames = [toy_frame(i) for i in range(40)]
    last = len(frames) - 1
    seen: list[tuple[int, np.ndarray, np.ndarray]] = []

    def slow(r: FrameResult) -> None:
        assert r.result.depth is not None
        first = r.result.depth.copy()
        # Hold the result until the worker has finished a later frame (into the other output
        # slot) and so could go on to overwrite this one.
        if r.tag != last:
            assert wait_for(lambda: any(m > r.tag for m in engine_log.done()), 30)
        seen.append((r.tag, first, r.result.depth.copy()))

    sup, _ = make(on_result=slow)
    sup.start()
    sup.submit(frames[0], "rgb8", tag=0)
    assert wait_for(lambda: 0 in engine_log.done(), 30)
    for i, f in enumerate(frames[1:], 1):
        sup.submit(f, "rgb8", tag=i)
        time.sleep(0.005)  # a camera faster than the consumer
    assert wait_for(lambda: seen and seen[-1][0] == last, 60)
    assert wait_for(lambda: settled(sup), 30)
    check_counts(sup.stats())
    tags = [t for t, *_ in seen]
    assert tags == sorted(tags) and tags[0] == 0 and len(tags) >= 2
    engine = toy_reference()
    for tag, first, after_waiting in seen:
        expected = engine.process(frames[tag], "rgb8").depth
        np.testing.assert_array_equal(first, expected)
        np.testing.assert_array_equal(after_waiting, expected)


def test_stream_faster_than_the_worker_never_builds_a_queue(make: Make) -> None:
    sup, col = make(delay=0.05)
    sup.start()
    frames = [toy_frame(i) for i in range(60)]
    delivered_before: dict[int, int] = {}
    for i, f in enumerate(frames):
        with col.cond:
            delivered_before[i] = len(col.results)
        sup.submit(f, "rgb8", tag=i)
        time.sleep(0.005)  # ~200 Hz against a ~20 Hz worker
    assert wait_for(lambda: settled(sup), 30)
    stats = sup.stats()
    check_counts(stats)
    assert stats.processed == len(col.results) and stats.dropped == len(frames) - len(col.results)
    tags = [r.tag for r in col.results]
    assert tags == sorted(tags) and tags[-1] == len(frames) - 1  # in order; the last made it
    engine = toy_reference()
    for index, r in enumerate(col.results):
        assert_same_result(r, engine.process(frames[r.tag], "rgb8"))
        # Results delivered between a frame's submit and its own: only frames that held an
        # input slot then (or one being delivered), however long the stream.
        assert index - delivered_before[r.tag] <= INPUT_SLOTS + 1, (r.tag, index)


def test_frames_offered_while_no_worker_runs_are_dropped(make: Make) -> None:
    sup, _ = make()
    assert sup.submit(toy_frame(1), "rgb8") is None  # not started
    sup.start()
    sup.stop()
    assert sup.submit(toy_frame(2), "rgb8") is None  # stopped
    stats = sup.stats()
    assert (stats.submitted, stats.dropped, stats.processed) == (2, 2, 0)
    check_counts(stats)


def test_submit_from_many_threads_accounts_for_every_frame(make: Make) -> None:
    sup, col = make(delay=0.01)
    sup.start()
    start = threading.Barrier(4)

    def feed(base: int) -> None:
        start.wait()
        for i in range(25):
            sup.submit(toy_frame(base + i), "rgb8", tag=base + i)

    feeders = [threading.Thread(target=feed, args=(100 * k,)) for k in range(4)]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    assert wait_for(lambda: settled(sup), 30)
    stats = sup.stats()
    assert stats.submitted == 100 and stats.processed == len(col.results) >= 1
    check_counts(stats)
    ids = [r.frame_id for r in col.results]
    assert ids == sorted(ids)  # results in frame order
    engine = toy_reference()
    for r in col.results:
        assert_same_result(r, engine.process(toy_frame(r.tag), "rgb8"))
