"""Rosbag replay benchmark, sample data, the echo reference and reports (no torch here)."""

from __future__ import annotations

from aria_perception._lazy import lazy_exports

_EXPORTS = {
    "BenchConfig": "aria_perception.bench.runner",
    "Criteria": "aria_perception.bench.report",
    "EchoNode": "aria_perception.bench.echo",
    "Replayer": "aria_perception.bench.replay",
    "SampleSpec": "aria_perception.bench.sample",
    "TopicPlan": "aria_perception.bench.replay",
    "read_bag": "aria_perception.bench.bag",
    "run_bench": "aria_perception.bench.runner",
    "sample_set": "aria_perception.bench.sample",
    "write_bag": "aria_perception.bench.bag",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
