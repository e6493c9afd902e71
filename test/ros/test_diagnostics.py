"""Rates, percentiles, path times and the node's DiagnosticStatus."""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import pytest

from aria_perception.records import StageTimes
from aria_perception.ros import diagnostics as diag
from aria_perception.worker import FrameTiming


def test_rate_of_a_steady_stream_and_its_decay() -> None:
    rate = diag.RateTracker(window_s=2.0)
    assert rate.rate(now=0.0) == 0.0
    for i in range(100):  # 30 Hz for 3.3 s
        rate.tick(now=i / 30)
    last = 99 / 30
    assert rate.rate(now=last) == pytest.approx(30.0, rel=1e-6)
    assert rate.rate(now=last + 1.0) < 20.0  # the stream stopped a second ago
    assert rate.rate(now=last + 2.5) == 0.0
    rate.reset()
    assert rate.rate(now=last) == 0.0


def test_rate_of_a_fresh_stream_is_not_underestimated() -> None:
    rate = diag.RateTracker(window_s=5.0)
    for i in range(4):
        rate.tick(now=10.0 + i * 0.1)
    assert rate.rate(now=10.3) == pytest.approx(10.0)


def test_percentiles_match_numpy() -> None:
    values = np.random.default_rng(0).exponential(5.0, 257).tolist()
    tracker = diag.LatencyTracker(size=1000)
    for v in values:
        tracker.add(v)
    got = tracker.percentiles(50, 95, 99)
    np.testing.assert_allclose(got, np.percentile(values, [50, 95, 99]))
    assert all(math.isnan(v) for v in diag.LatencyTracker().percentiles(50, 99))


def test_latency_window_keeps_the_newest_samples() -> None:
    tracker = diag.LatencyTracker(size=10)
    for v in range(100):
        tracker.add(float(v), StageTimes(depth_ms=float(v)))
    assert tracker.percentiles(0, 100) == (90.0, 99.0)
    assert tracker.stage_medians().depth_ms == pytest.approx(94.5)


def test_path_medians_cover_only_frames_that_carried_them() -> None:
    tracker = diag.LatencyTracker(size=10)
    assert tracker.path_medians() == diag.PathTimes()
    tracker.add(5.0, StageTimes())  # no path: not counted
    for v in (1.0, 2.0, 9.0):
        tracker.add(v, None, diag.PathTimes(copy_in_ms=v, engine_ms=2 * v))
    medians = tracker.path_medians()
    assert (medians.copy_in_ms, medians.engine_ms, medians.publish_ms) == (2.0, 4.0, 0.0)
    values = diag.values(diag.Snapshot(path=medians))
    assert (values["copy_in_ms"], values["engine_ms"]) == ("2.000", "4.000")


def test_trackers_are_thread_safe() -> None:
    """Reads while another thread writes never fail and only ever see written values."""
    tracker = diag.LatencyTracker(size=50)
    rate = diag.RateTracker()
    stop, wrote = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        n = 0
        try:
            while not stop.is_set():
                v = 1.0 if n % 2 else 3.0
                tracker.add(v, StageTimes(depth_ms=v), diag.PathTimes(engine_ms=v))
                rate.tick()
                n += 1
                wrote.set()
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    thread = threading.Thread(target=writer)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    thread.start()
    seen = []
    try:
        assert wrote.wait(30), "the writer thread never wrote"
        for _ in range(500):
            p50, p95 = tracker.percentiles(50, 95)
            stages, path = tracker.stage_medians(), tracker.path_medians()
            seen.append((p50, p95, stages.depth_ms, path.engine_ms, rate.rate()))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(switch)
    assert errors == []
    assert all(1.0 <= v <= 3.0 for row in seen for v in row[:4]), "a value never written"
    assert all(math.isfinite(row[4]) and row[4] >= 0.0 for row in seen)


def test_path_times_split_a_frame_between_node_and_supervisor() -> None:
    timing = FrameTiming(
        copy_in_ms=2.0, wait_ms=3.0, engine_ms=10.0, copy_out_ms=0.5, roundtrip_ms=20.0
    )
    path = diag.PathTimes.of(timing, before_publish_ms=21.5, publish_ms=4.0)
    # 1.5 ms validating in the image callback before submit, then the supervisor's copy-in.
    assert path.copy_in_ms == pytest.approx(3.5)
    assert (path.queue_ms, path.engine_ms, path.publish_ms) == (3.0, 10.0, 4.0)
    assert path.transport_ms == timing.transport_ms


def _snap(**kw: object) -> diag.Snapshot:
    base = dict(
        input_fps=30.0,
        output_fps=30.0,
        latency_ms_p50=8.0,
        latency_ms_p95=12.0,
        latency_ms_p99=14.0,
        stages=StageTimes(1.0, 2.0, 3.0, 0.5, 6.5),
        worker_state="READY",
        device="cuda:0",
        device_name="NVIDIA H100",
        precision="fp16",
        weights="official",
        active=True,
    )
    base.update(kw)
    return diag.Snapshot(**base)  # type: ignore[arg-type]


def test_status_has_every_key_of_the_contract() -> None:
    status = diag.build_status(_snap(dropped_frames=3, lost_samples=2, poison_frames=1),
                               "central_perception", 30.0, 30.0)  # fmt: skip
    assert status.name == "aria_perception: central_perception"
    assert status.hardware_id == "NVIDIA H100"
    got = {kv.key: kv.value for kv in status.values}
    assert list(got) == list(diag.KEYS)
    assert set(diag.KEYS) - set(diag.PATH_KEYS) == {
        "input_fps", "output_fps", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
        "depth_ms", "detect_ms", "preprocess_ms", "transfer_ms", "dropped_frames",
        "rejected_frames", "poison_frames", "lost_samples", "worker_restarts", "worker_state",
        "worker_pid", "worker_cameras", "batched_frames", "gpu_mem_mb", "gpu_mem_peak_mb",
        "device", "precision", "depth_frame_skip", "weights",
    }  # fmt: skip
    assert got["depth_ms"] == "2.000" and got["dropped_frames"] == "3"
    assert got["lost_samples"] == "2" and got["weights"] == "official"
    assert got["poison_frames"] == "1"
    assert status.level == bytes([diag.OK])


@pytest.mark.parametrize(
    ("snap", "level", "text"),
    [
        (_snap(), diag.OK, "30.0 FPS"),
        (_snap(output_fps=12.0), diag.WARN, "output 12.0 FPS below expected 30"),
        (_snap(input_fps=0.0, output_fps=0.0), diag.WARN, "no input frames"),
        (_snap(latency_ms_p95=45.0), diag.WARN, "latency p95 45.0 ms over budget 30 ms"),
        (_snap(weights="random"), diag.WARN, "RANDOM weights"),
        (_snap(worker_down=True, worker_state="RESTARTING"), diag.ERROR, "worker down"),
        (
            _snap(worker_down=True, worker_state="FAILED", last_error="WeightsError: x"),
            diag.ERROR,
            "WeightsError: x",
        ),  # fmt: skip
        (_snap(active=False, output_fps=0.0), diag.OK, "inactive"),
    ],
)
def test_levels(snap: diag.Snapshot, level: int, text: str) -> None:
    got, message = diag.level_and_message(snap, 30.0, 30.0)
    assert got == level and text in message


def test_an_error_quoting_a_senders_data_is_cut_in_the_message() -> None:
    error = "FrameError: unsupported encoding '" + "x" * 5000 + "'"
    snap = _snap(worker_down=True, worker_state="FAILED", last_error=error)
    level, message = diag.level_and_message(snap, 30.0, 30.0)
    assert level == diag.ERROR and len(message) < 300
    assert "unsupported encoding 'xxx" in message and f"({len(error)} chars)" in message


def test_zero_thresholds_turn_checks_off() -> None:
    level, _ = diag.level_and_message(_snap(output_fps=1.0, latency_ms_p95=900.0), 0.0, 0.0)
    assert level == diag.OK


def test_stage_times_are_medians_so_capture_frames_do_not_dominate() -> None:
    tracker = diag.LatencyTracker(size=10)
    tracker.add(900.0, StageTimes(depth_ms=900.0))  # first frame: graph capture
    for _ in range(9):
        tracker.add(3.0, StageTimes(depth_ms=1.5))
    assert tracker.stage_medians().depth_ms == pytest.approx(1.5)
