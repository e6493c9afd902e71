"""Benchmarks (the top layer): rosbag replay through the node, the engine alone, the transport.

``bench`` replays frames through the perception node and the echo reference and writes
``report.json`` (:class:`Report`), one camera stream or several at once (:class:`Stream`,
:class:`Timeline`, :class:`StreamReplayer`); ``engine_bench`` times the engine and its ablations;
``python -m aria_perception.bench.transport`` times the worker's process boundary; ``bench
import`` turns a Project Aria VRS recording into a bag (:func:`import_recording`). Importing this
package imports no torch (only the engine benchmark's timing functions do) and no
projectaria-tools (only the import does).
"""

from __future__ import annotations

from aria_perception._lazy import lazy_exports

_EXPORTS = {
    "Ablation": "aria_perception.bench.ablation",
    "BagError": "aria_perception.bench.errors",
    "BenchConfig": "aria_perception.bench.config",
    "BenchError": "aria_perception.bench.errors",
    "CameraInfoFields": "aria_perception.bench.camera_info",
    "Criteria": "aria_perception.bench.criteria",
    "EchoNode": "aria_perception.bench.echo",
    "ImportSpec": "aria_perception.bench.aria_import",
    "Replayer": "aria_perception.bench.replay",
    "Report": "aria_perception.bench.report",
    "RunRecord": "aria_perception.bench.run_record",
    "SampleSpec": "aria_perception.bench.sample",
    "Size": "aria_perception.bench.sizes",
    "Stream": "aria_perception.bench.streams",
    "StreamReplayer": "aria_perception.bench.stream_replay",
    "Timeline": "aria_perception.bench.streams",
    "TopicPlan": "aria_perception.bench.topics",
    "TransportReport": "aria_perception.bench.transport",
    "camera_info_fields": "aria_perception.bench.camera_info",
    "evaluate": "aria_perception.bench.criteria",
    "import_recording": "aria_perception.bench.aria_import",
    "measure_transport": "aria_perception.bench.transport",
    "parse_size": "aria_perception.bench.sizes",
    "read_bag": "aria_perception.bench.bag",
    "read_report": "aria_perception.bench.report",
    "run_bench": "aria_perception.bench.runner",
    "sample_set": "aria_perception.bench.sample",
    "write_bag": "aria_perception.bench.bag",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
