"""Fixtures of the worker tests: toy-engine supervisors, and nothing outlives a test."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_helpers import Cam, Cams, make_cam
from worker_helpers import (
    MODULE_SUPERVISORS,
    TOY_CONFIG,
    TOY_SETTINGS,
    Collector,
    EngineLog,
    Gate,
    Make,
    our_segments,
)

from aria_perception.records import EngineConfig
from aria_perception.worker.registry import WorkerRegistry
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.supervisor import ResultCallback, Supervisor


@pytest.fixture
def engine_log(tmp_path: Path) -> EngineLog:
    """What the toy engines of this test's supervisors did (``ARIA_TOY_LOG``)."""
    return EngineLog(tmp_path / "engine.log")


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    """The gate of the toy engines made with ``make(gated=True)`` (``ARIA_TOY_GATE``)."""
    return Gate(tmp_path / "gate")


@pytest.fixture
def make(monkeypatch: pytest.MonkeyPatch, engine_log: EngineLog, gate: Gate) -> Iterator[Make]:
    """Build toy-engine supervisors (not started); all are stopped after the test.

    ``make(delay=, start_delay=, gated=, first_delay=, poison=, config=, on_result=,
    **settings)`` returns the supervisor and a :class:`Collector` of its results and errors
    (``on_result`` replaces the collector's result callback); see ``worker_toy_engine`` for the
    engine's knobs.
    """
    made: list[Supervisor] = []

    def build(
        delay: float = 0.0,
        start_delay: float = 0.0,
        gated: bool = False,
        first_delay: float = 0.0,
        poison: int | None = None,
        config: EngineConfig = TOY_CONFIG,
        on_result: ResultCallback | None = None,
        **settings: object,
    ) -> tuple[Supervisor, Collector]:
        # The spawned worker inherits the environment: the toy engine's knobs.
        monkeypatch.setenv("ARIA_TOY_DELAY_S", str(delay))
        monkeypatch.setenv("ARIA_TOY_START_DELAY_S", str(start_delay))
        monkeypatch.setenv("ARIA_TOY_LOG", str(engine_log.path))
        monkeypatch.setenv("ARIA_TOY_GATE", str(gate.path) if gated else "")
        monkeypatch.setenv("ARIA_TOY_FIRST_DELAY_S", str(first_delay))
        monkeypatch.setenv("ARIA_TOY_POISON", "" if poison is None else str(poison))
        collector = Collector()
        sup = Supervisor(
            config,
            WorkerSettings(**{**TOY_SETTINGS, **settings}),  # type: ignore[arg-type]
            on_result=on_result or collector.on_result,
            on_error=collector.on_error,
        )
        made.append(sup)
        return sup, collector

    yield build
    for sup in made:
        sup.stop()


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


@pytest.fixture
def registry() -> WorkerRegistry:
    """A registry of the test's own (the process's one is left alone)."""
    return WorkerRegistry()


@pytest.fixture
def cams(
    monkeypatch: pytest.MonkeyPatch, registry: WorkerRegistry, engine_log: EngineLog
) -> Iterator[Cams]:
    """``cams(name, hw=(24, 32), settings=None, **config_changes)``: a toy camera on ``registry``.

    Set the toy engine's ``ARIA_TOY_*`` knobs with ``monkeypatch`` before the first camera
    starts the worker (the log is on). Every camera is closed after the test.
    """
    monkeypatch.setenv("ARIA_TOY_LOG", str(engine_log.path))
    made: list[Cam] = []

    def build(
        name: str,
        hw: tuple[int, int] = (24, 32),
        settings: dict[str, object] | None = None,
        **changes: object,
    ) -> Cam:
        cam = make_cam(registry, name, hw, settings, **changes)
        made.append(cam)
        return cam

    yield build
    for cam in made:
        cam.client.close()
