"""Corrupt PNG bytes straight into a real worker (the node's own check bypassed) never crash it.

Each corruption that crashed torchvision's PNG decoder in the worker (an IDAT CRC error, an IHDR
size that does not match the data) and the other malformed files of ``png_cases`` go to the
real engine, ten in a row each: every one is rejected with a reason, the worker never restarts,
and a valid PNG is answered afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import png_cases
import pytest
from worker_helpers import Collector, check_counts, module_worker
from worker_real_engine import FACTORY

from aria_perception.errors import FrameError
from aria_perception.records import EngineConfig, WorkerState
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.supervisor import Supervisor

pytestmark = pytest.mark.slow

REPEATS = 10


VALID = png_cases.encode(png_cases.pixels(240, 320))
HOSTILE = png_cases.hostile(VALID)


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[Supervisor, Collector]]:
    config = EngineConfig(
        device="cpu",
        allow_random_weights=True,
        depth_input_size=128,
        detector_image_size=160,
        max_detections=8,
    )
    settings = WorkerSettings(max_pixels=2048 * 2048, engine_factory=FACTORY, frame_timeout_s=60.0)
    with module_worker(config, settings) as running:
        yield running


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_ten_corrupt_pngs_in_a_row_are_rejected_and_the_worker_lives(
    worker: tuple[Supervisor, Collector], case: str
) -> None:
    sup, col = worker
    data, reason = HOSTILE[case]
    before = sup.stats()
    errors_before = len(col.errors)
    for i in range(REPEATS):
        assert sup.submit(np.frombuffer(data, np.uint8), "png", tag=(case, i)) is not None
        # One at a time: newest-wins would drop frames sent faster than the worker answers.
        col.wait_errors(errors_before + i + 1, timeout=120)
    errors = col.errors[errors_before:]
    assert [tag for _, tag, _, _ in errors] == [(case, i) for i in range(REPEATS)]
    for _, _, error, _ in errors:
        assert isinstance(error, FrameError), error
        assert reason in str(error), error
    stats = sup.stats()
    assert stats.state is WorkerState.READY
    assert (stats.restarts, stats.pid) == (before.restarts, before.pid), "the worker crashed"
    assert stats.rejected == before.rejected + REPEATS and stats.poison == before.poison
    check_counts(stats)


def test_a_valid_png_is_answered_after_them(worker: tuple[Supervisor, Collector]) -> None:
    sup, col = worker
    results = len(col.results)
    sup.submit(np.frombuffer(VALID, np.uint8), "png", tag="valid")
    got = col.wait_results(results + 1, timeout=120)[-1]
    assert got.tag == "valid" and got.depth is not None and got.depth.shape == (240, 320)
    assert sup.stats().restarts == 0
