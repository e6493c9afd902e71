"""An engine that computes nothing, for timing the worker's transport alone (no torch)."""

from __future__ import annotations

import numpy as np

from aria_perception.records import Detections, EngineConfig, EngineInfo, EngineResult, Thresholds

#: The worker's ``engine_factory`` string of :class:`EchoEngine`.
ECHO_FACTORY = "aria_perception.bench.echo_engine:EchoEngine"


class EchoEngine:
    """Empty detections and a depth map of the frame's size, at once.

    With ``depth_out`` (the worker's output slot) it returns that array as it is, like the real
    engine whose device-to-host copy lands there; otherwise a reused array of the right shape.

    Args:
        config: Accepted for the factory's signature; nothing in it is used.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.info = EngineInfo("cpu", "echo", "fp32", ("object",), "random")
        self._depth: dict[tuple[int, int], np.ndarray] = {}

    def process(
        self,
        frame: np.ndarray,
        encoding: str = "rgb8",
        *,
        want_depth: bool = True,
        depth_out: np.ndarray | None = None,
    ) -> EngineResult:
        """Return at once."""
        depth = None
        if want_depth and frame.ndim >= 2:
            shape = (int(frame.shape[0]), int(frame.shape[1]))
            if depth_out is not None:
                depth = depth_out
            else:
                depth = self._depth.setdefault(shape, np.zeros(shape, np.float32))
        return EngineResult(detections=Detections.empty(), depth=depth)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Nothing to set."""

    def register_host_buffer(self, array: np.ndarray) -> bool:
        """Nothing to page-lock: no device copies."""
        return False

    def memory_mb(self) -> tuple[float, float]:
        """No GPU."""
        return 0.0, 0.0

    def close(self) -> None:
        """Nothing to release."""
