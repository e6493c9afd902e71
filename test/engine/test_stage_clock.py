"""The stage clock: each stage of a frame on the steps; a frame graph's total alone."""

from __future__ import annotations

import math

import numpy as np

from aria_perception.engine.runtime import StageClock, resolve_runtime


def _work() -> None:
    np.sort(np.random.default_rng(0).random(20_000))  # a span long enough to measure


def _span(watch) -> None:
    watch.start()
    _work()
    watch.stop()


def test_a_frame_on_the_steps_times_each_stage() -> None:
    clock = StageClock(resolve_runtime("cpu", "fp32"))
    for watch in (clock.h2d, clock.prepare, clock.depth, clock.detect, clock.d2h):
        _span(watch)
    times = clock.times()
    stages = (times.preprocess_ms, times.depth_ms, times.detect_ms, times.transfer_ms)
    assert all(v > 0 for v in stages)
    want = times.preprocess_ms + max(times.depth_ms, times.detect_ms) + times.transfer_ms
    assert times.total_ms == want


def test_a_frame_graph_has_its_total_and_no_stage_times() -> None:
    clock = StageClock(resolve_runtime("cpu", "fp32"))
    _span(clock.h2d)
    _span(clock.whole)
    times = clock.times()
    assert math.isnan(times.preprocess_ms)
    assert math.isnan(times.depth_ms)
    assert math.isnan(times.detect_ms)
    assert math.isnan(times.transfer_ms)
    assert times.total_ms > 0
    # The next frame, on the steps again, is timed in full.
    _span(clock.h2d)
    _span(clock.detect)
    after = clock.times()
    assert after.detect_ms > 0 and after.depth_ms == 0.0 and not math.isnan(after.total_ms)


def test_a_frame_that_built_graphs_has_its_total_and_no_stage_times() -> None:
    clock = StageClock(resolve_runtime("cpu", "fp32"))
    for watch in (clock.h2d, clock.prepare, clock.depth, clock.detect, clock.d2h):
        _span(watch)
    built = clock.times(steady=False)
    stages = (built.preprocess_ms, built.depth_ms, built.detect_ms, built.transfer_ms)
    assert all(math.isnan(v) for v in stages)
    assert built.total_ms > 0
    # Every stopwatch was read: the next, steady frame times only what it ran.
    _span(clock.depth)
    after = clock.times()
    assert after.depth_ms > 0 and after.preprocess_ms == 0.0 and after.transfer_ms == 0.0
