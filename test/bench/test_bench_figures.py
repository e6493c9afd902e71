"""Figures of a run from known replay observations (no ROS needed)."""

from __future__ import annotations

import pytest
from bench_helpers import diag, records

from aria_perception.bench.figures import (
    depth_stats,
    diagnostics_summary,
    frames_table,
    latency_summary,
    phase_stats,
    resource_summary,
)
from aria_perception.bench.process import ResourceUsage
from aria_perception.bench.run_record import NodePathTimes, ResourceSummary
from aria_perception.ros.diagnostics import PATH_KEYS


def test_latency_summary_and_phase_stats() -> None:
    assert latency_summary([]).p50 is None
    s = latency_summary([float(v) for v in range(1, 101)])
    assert s.p50 == pytest.approx(50.5) and s.p95 == pytest.approx(95.05)
    assert (s.min, s.max) == (1.0, 100.0)

    recs = records([5.0, None, 7.0, 6.0, None])
    recs[3].header_ok = False
    st = phase_stats(recs, "30 Hz")
    assert st is not None
    assert (st.published, st.received, st.dropped) == (5, 3, 2)
    assert st.drop_rate == pytest.approx(0.4)
    assert st.latency_ms.p50 == pytest.approx(6.0)
    assert st.input_fps == pytest.approx(100.0)  # 4 gaps of 10 ms
    # 3 answers from the first publish (t=0) to the last answer (t=30 ms + 6 ms).
    assert st.output_fps == pytest.approx(3 / 0.036, rel=1e-3)
    assert st.publish_call_ms_p50 == pytest.approx(0.2)
    assert (st.detections_mean, st.header_mismatches) == (2.0, 1)
    assert st.to_output_ms_p50 is None  # no source timestamps in these records
    assert phase_stats([], "max") is None


def test_answer_split_and_depth() -> None:
    recs = records([5.0, 7.0, None])
    for r, sent_ms in zip(recs[:2], (4.0, 5.0), strict=True):
        r.sent_ns = r.stamp_ns + int(sent_ms * 1e6)
        r.depth_recv_ns, r.depth_ok = r.stamp_ns + int(9e6), True
    recs[1].depth_ok = False
    st = phase_stats(recs, "max")
    assert st is not None
    assert st.to_output_ms_p50 == pytest.approx(4.5) and st.return_ms_p50 == pytest.approx(1.5)
    d = depth_stats(recs, collected=True)
    assert (d.collected, d.received, d.bad, d.latency_p50_ms) == (True, 2, 1, 9.0)
    assert depth_stats(recs, collected=False).received is None
    table = frames_table(recs)
    assert table.latency_ms == [5.0, 7.0, None] and table.detections == [2, 2, None]


def test_diagnostics_counters_are_deltas_over_the_window() -> None:
    samples = [
        diag(1, dropped_frames="3", rejected_frames="1", worker_restarts="0", depth_ms="9"),
        diag(
            2,
            dropped_frames="5",
            rejected_frames="1",
            worker_restarts="0",
            depth_ms="2",
            engine_ms="3",
            gpu_mem_mb="800",
            gpu_mem_peak_mb="900",
            weights="random",
            device="cuda:0",
        ),
        diag(
            3,
            dropped_frames="9",
            rejected_frames="4",
            worker_restarts="1",
            depth_ms="4",
            engine_ms="5",
            gpu_mem_mb="700",
            gpu_mem_peak_mb="950",
            latency_ms_p50="3.5",
        ),
    ]
    d = diagnostics_summary(samples, int(1.5e9), int(3.5e9))
    assert d.samples == 2
    assert (d.node_dropped_frames, d.rejected_frames, d.worker_restarts) == (6, 3, 1)
    assert d.stage_ms.depth_ms == pytest.approx(3.0)  # mean inside the window only
    assert d.path_ms.engine_ms == pytest.approx(4.0) and d.path_ms.publish_ms is None
    assert (d.gpu_mem_mb, d.gpu_mem_peak_mb) == (800.0, 950.0)
    assert d.node_latency_ms.p50 == 3.5
    assert d.hardware_id == "H100" and d.values["dropped_frames"] == "9"
    empty = diagnostics_summary([], 0, 1)
    assert empty.samples == 0 and empty.rejected_frames is None


def test_path_times_are_the_nodes_diagnostics_keys() -> None:
    assert NodePathTimes.keys() == PATH_KEYS


def test_resource_summary() -> None:
    u = ResourceUsage(2, [10.0, 30.0], [100.0, 50.0], [80.0, 90.0], [900.0, 950.0], [])
    r = resource_summary(u, bench_cpu_percent_mean=4.0)
    assert r.cpu_percent_mean == 20.0 and r.worker_cpu_percent_mean == 75.0
    assert (r.rss_mb_max, r.worker_rss_mb_max, r.gpu_mem_nvml_mb_max) == (90, 950, None)
    assert r.bench_cpu_percent_mean == 4.0
    assert resource_summary(None) == ResourceSummary(samples=0)
