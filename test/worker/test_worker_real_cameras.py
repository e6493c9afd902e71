"""Two cameras on one worker running the real engine: a camera that leaves lets its memory go.

The worker page-locks each camera's shared-memory segment for DMA (on CUDA); the engine undoes
that for a camera that leaves (``unregister_host_buffer``), so the worker unmaps the segment
at once instead of keeping it until it exits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from worker_helpers import Collector, our_segments, wait_for
from worker_real_engine import FACTORY

from aria_perception.records import EngineConfig
from aria_perception.worker.registry import WorkerRegistry
from aria_perception.worker.settings import WorkerSettings

pytestmark = pytest.mark.slow

CONFIG = EngineConfig(
    device="cpu",
    allow_random_weights=True,
    confidence=0.0,
    max_detections=20,
    depth_input_size=128,
    detector_image_size=160,
)
SETTINGS = WorkerSettings(
    max_pixels=96 * 128,
    engine_factory=FACTORY,
    startup_timeout_s=120.0,
    first_frame_timeout_s=60.0,
    heartbeat_timeout_s=30.0,
)


def _mapped(pid: int) -> set[str]:
    """Names of the shared-memory segments process ``pid`` has mapped."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[5] if len(line.split(maxsplit=5)) == 6 else ""
        if path.startswith("/dev/shm/"):
            names.add(path.removeprefix("/dev/shm/").split(" ")[0])
    return names


def test_a_camera_that_leaves_is_unmapped_by_the_worker_at_once() -> None:
    registry = WorkerRegistry()
    got = {name: Collector() for name in ("left", "right")}
    clients = {}
    try:
        before = our_segments()
        clients["left"] = registry.acquire(
            "left",
            CONFIG,
            SETTINGS,
            on_result=got["left"].on_result,
            on_error=got["left"].on_error,
        )
        left_segment = our_segments() - before
        clients["right"] = registry.acquire(
            "right",
            CONFIG,
            SETTINGS,
            on_result=got["right"].on_result,
            on_error=got["right"].on_error,
        )
        frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        for name, client in clients.items():
            assert client.submit(frame, "rgb8", tag=name) is not None
            got[name].wait_results(1, timeout=120)
        pid = clients["left"].stats().pid
        assert pid is not None and clients["right"].stats().pid == pid
        assert len(left_segment) == 1 and left_segment <= _mapped(pid)

        clients.pop("left").close()
        assert wait_for(lambda: not (left_segment & _mapped(pid)), 30), _mapped(pid)
        # The other camera goes on, on the same worker.
        assert clients["right"].submit(frame, "rgb8", tag="again") is not None
        assert got["right"].wait(lambda: any(g.tag == "again" for g in got["right"].results))
        assert clients["right"].stats().pid == pid
    finally:
        for client in clients.values():
            client.close()
    assert registry.workers() == 0
