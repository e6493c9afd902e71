"""The rclpy adapter: node, image codec, messages, parameters, diagnostics (no torch).

The re-exports are resolved on first use, so that importing one light module (for example
``aria_perception.ros.image_codec``) does not build the node's whole import graph.
"""

from __future__ import annotations

from aria_perception._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_NAME": "aria_perception.ros.node",
    "INPUT_TOPICS": "aria_perception.ros.node",
    "NodeConfig": "aria_perception.ros.node_config",
    "OUTPUT_TOPICS": "aria_perception.ros.outputs",
    "OutputPublishers": "aria_perception.ros.outputs",
    "PARAMETERS": "aria_perception.ros.param_table",
    "PerceptionNode": "aria_perception.ros.node",
    "WorkerLink": "aria_perception.ros.worker_link",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
