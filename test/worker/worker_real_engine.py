"""TEST-ONLY factory of the real engine with reproducible random weights.

``seeded_engine`` is :class:`aria_perception.engine.engine.Engine` itself, built right after
``torch.manual_seed(0)`` with one intra-op thread: the worker and the test process then hold
identical random weights and reduce floats in the same order, so the worker's results can be
compared bit for bit with the engine called in-process (and the two fit on a 2-core machine).
"""

from __future__ import annotations

from typing import Any

from aria_perception.records import EngineConfig

FACTORY = "worker_real_engine:seeded_engine"


def seeded_engine(config: EngineConfig) -> Any:
    """Seed torch and use one thread, then build the real engine."""
    import torch

    from aria_perception.engine.engine import Engine

    torch.set_num_threads(1)
    torch.manual_seed(0)
    return Engine(config)
