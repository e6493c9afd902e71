"""Fixtures of the worker tests: no shared-memory segment or worker process outlives a test."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest
from worker_helpers import MODULE_SUPERVISORS, our_segments


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """After every test: no new segment of ours in /dev/shm, no new worker process alive.

    Segments and workers of module-scoped supervisors (listed in ``MODULE_SUPERVISORS``) are
    checked by :func:`no_leftovers_at_module_end` instead.
    """
    before = our_segments()
    children_before = {p.pid for p in multiprocessing.active_children()}
    yield
    new = our_segments() - before
    assert not new, f"shared-memory segments left behind: {sorted(new)}"
    kept = {sup.stats().pid for sup in MODULE_SUPERVISORS}  # their restarts are theirs
    alive = [
        p
        for p in multiprocessing.active_children()
        if p.pid not in children_before and p.pid not in kept
    ]
    assert not alive, f"worker processes left behind: {alive}"


@pytest.fixture(autouse=True, scope="module")
def no_leftovers_at_module_end() -> Iterator[None]:
    """After each module (module-scoped supervisors are stopped by then): nothing of ours left."""
    yield
    assert not our_segments(), f"shared-memory segments left behind: {sorted(our_segments())}"
    assert not multiprocessing.active_children()
