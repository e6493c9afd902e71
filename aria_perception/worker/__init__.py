"""The inference worker process: shared-memory slots, protocol, child and supervisor.

The parent side (this package's public names) never imports torch; the child builds the engine.
"""

from aria_perception.worker.settings import DEFAULT_ENGINE_FACTORY, WorkerSettings, WorkerStats
from aria_perception.worker.supervisor import FrameResult, FrameTiming, Supervisor

__all__ = [
    "DEFAULT_ENGINE_FACTORY",
    "FrameResult",
    "FrameTiming",
    "Supervisor",
    "WorkerSettings",
    "WorkerStats",
]
