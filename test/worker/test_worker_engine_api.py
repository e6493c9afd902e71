"""The worker's engine protocol: what it requires, and that the engines in use implement it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from worker_toy_engine import FACTORY, IncompleteEngine, ToyEngine

from aria_perception.errors import ConfigError
from aria_perception.records import EngineConfig, EngineInfo
from aria_perception.worker.engine_api import (
    MEMBERS,
    InferenceEngine,
    check_engine,
    missing_members,
)

CONFIG = EngineConfig(device="cpu", allow_random_weights=True)


def _keyword_only(function: object) -> set[str]:
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_the_protocol_lists_exactly_what_the_worker_uses() -> None:
    declared = {
        name
        for name in vars(InferenceEngine)
        if not name.startswith("_") and callable(getattr(InferenceEngine, name))
    }
    assert declared | set(InferenceEngine.__annotations__) == set(MEMBERS)
    assert _keyword_only(InferenceEngine.process) == {"want_depth", "depth_out"}


def test_the_real_engine_class_has_every_method_of_the_protocol() -> None:
    from aria_perception.engine.engine import Engine

    for name in MEMBERS:
        if name != "info":  # an instance attribute, set once the engine is built
            assert callable(getattr(Engine, name, None)), name
    assert {"want_depth", "depth_out"} <= _keyword_only(Engine.process)
    # The instance check with a built engine is in test_worker_engine.py.


def test_the_toy_engine_implements_the_protocol_and_writes_into_depth_out() -> None:
    engine = ToyEngine(CONFIG)
    assert isinstance(engine, InferenceEngine) and not missing_members(engine)
    assert check_engine(engine, FACTORY) is engine
    assert engine.register_host_buffer(np.zeros(16, np.uint8)) is False
    frame = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    out = np.zeros((6, 5), np.float32)
    result = engine.process(frame, "rgb8", want_depth=True, depth_out=out)
    assert result.depth is out
    flat = np.zeros(64, np.float32)  # compressed frames get the flat slot
    toy_jpeg = np.frombuffer(b"TOY" + bytes(range(10)), np.uint8)
    result = engine.process(toy_jpeg, "jpeg", want_depth=True, depth_out=flat)
    assert result.depth is not None and np.shares_memory(result.depth, flat)
    np.testing.assert_array_equal(result.depth, engine.process(toy_jpeg, "jpeg").depth)


def test_an_incomplete_engine_is_refused_naming_what_it_lacks() -> None:
    engine = IncompleteEngine(CONFIG)
    assert not isinstance(engine, InferenceEngine)
    assert missing_members(engine) == [
        "set_thresholds",
        "register_host_buffer",
        "memory_mb",
        "close",
    ]
    with pytest.raises(ConfigError, match="'x:Y': IncompleteEngine lacks set_thresholds, "):
        check_engine(engine, "x:Y")


def test_members_must_be_callable_and_info_an_engine_info() -> None:
    engine = ToyEngine(CONFIG)
    engine.close = None  # type: ignore[assignment,method-assign]
    assert missing_members(engine) == ["close"]
    with pytest.raises(ConfigError, match="lacks close"):
        check_engine(engine, "x:Y")
    engine = ToyEngine(CONFIG)
    engine.info = ("cpu",)  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="info must be an EngineInfo, got tuple"):
        check_engine(engine, "x:Y")
    assert isinstance(ToyEngine(CONFIG).info, EngineInfo)
