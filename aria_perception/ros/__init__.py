"""The rclpy adapter: node, image codec, messages, parameters, diagnostics (no torch).

The re-exports are resolved on first use, so that importing one light module (for example
``aria_perception.ros.image_codec``) does not build the node's whole import graph.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DEFAULT_NAME": "aria_perception.ros.node",
    "INPUT_TOPICS": "aria_perception.ros.node",
    "NodeConfig": "aria_perception.ros.params",
    "OUTPUT_TOPICS": "aria_perception.ros.node",
    "PARAMETERS": "aria_perception.ros.params",
    "PerceptionNode": "aria_perception.ros.node",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
