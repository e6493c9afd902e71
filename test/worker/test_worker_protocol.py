"""Control messages, error transport, factory loading and settings validation."""

from __future__ import annotations

import pickle

import pytest

from aria_perception import errors
from aria_perception.errors import (
    AriaPerceptionError,
    ConfigError,
    EngineError,
    FrameError,
    WeightsError,
)
from aria_perception.records import StageTimes
from aria_perception.worker import protocol as msg
from aria_perception.worker.child import load_factory
from aria_perception.worker.settings import WorkerSettings

OUR_ERRORS = [
    cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, AriaPerceptionError)
]


@pytest.mark.parametrize("cls", OUR_ERRORS, ids=lambda c: c.__name__)
def test_our_errors_cross_with_their_class_and_message(cls: type[AriaPerceptionError]) -> None:
    try:
        raise cls("weights file /x/y.pt not found")
    except AriaPerceptionError as exc:
        info = msg.ErrorInfo.from_exception(exc)
    back = pickle.loads(pickle.dumps(info)).to_exception()
    assert type(back) is cls
    assert str(back) == "weights file /x/y.pt not found"
    assert "Traceback" in info.traceback and "raise cls" in info.traceback


def test_foreign_errors_become_engine_errors_naming_their_type() -> None:
    class OutOfMemoryError(RuntimeError):  # stands for torch.cuda.OutOfMemoryError
        pass

    info = msg.ErrorInfo.from_exception(OutOfMemoryError("CUDA out of memory. Tried 2 GiB"))
    back = info.to_exception()
    assert type(back) is EngineError
    assert str(back) == "OutOfMemoryError: CUDA out of memory. Tried 2 GiB"
    assert str(info) == "EngineError: OutOfMemoryError: CUDA out of memory. Tried 2 GiB"


def test_subclass_of_ours_crosses_as_its_base() -> None:
    class DecodeError(FrameError):
        pass

    info = msg.ErrorInfo.from_exception(DecodeError("corrupt jpeg"))
    assert info.kind == "FrameError"
    assert type(info.to_exception()) is FrameError


def test_unknown_kind_on_arrival_is_an_engine_error() -> None:
    back = msg.ErrorInfo("NoSuchError", "boom").to_exception()
    assert type(back) is EngineError and "NoSuchError: boom" in str(back)


def test_control_messages_stay_small() -> None:
    frame = msg.FrameRequest(1234567, 3, 2, (1408, 1408, 3), "rgb8", True)
    result = msg.Result(
        1234567, 3, 1, 100, (1408, 1408), True, StageTimes(1, 2, 3, 4, 5), 1.0, 0.1, 2.0, 2.5,
        3.0, 1, 2,
    )  # fmt: skip
    assert len(pickle.dumps(frame)) < 300
    assert len(pickle.dumps(result)) < 600
    assert pickle.loads(pickle.dumps(result)) == result


def test_load_factory() -> None:
    assert load_factory("aria_perception.worker.settings:WorkerSettings") is WorkerSettings
    with pytest.raises(ConfigError, match="package.module:Class"):
        load_factory("aria_perception.worker.settings")
    with pytest.raises(ConfigError, match="has no 'Nope'"):
        load_factory("aria_perception.worker.settings:Nope")
    with pytest.raises(ConfigError, match="no module named 'aria_perception.nope'"):
        load_factory("aria_perception.nope:Engine")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"max_pixels": 0}, "max_pixels"),
        ({"max_encoded_bytes": -1}, "max_encoded_bytes"),
        ({"frame_timeout_s": 0}, "frame_timeout_s"),
        ({"startup_timeout_s": float("inf")}, "startup_timeout_s"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"heartbeat_timeout_s": 0.1, "heartbeat_interval_s": 0.5}, "heartbeat_timeout_s"),
        ({"engine_factory": "engine.Engine"}, "engine_factory"),
        ({"shm_prefix": "a/b"}, "shm_prefix"),
    ],
)
def test_settings_refuse_bad_values(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        WorkerSettings(**changes)


def test_settings_slot_sizes() -> None:
    s = WorkerSettings(max_pixels=100)
    assert s.input_bytes == 400 and s.encoded_bytes == 400
    s = WorkerSettings(max_pixels=100, max_encoded_bytes=1000)
    assert s.input_bytes == 1000 and s.encoded_bytes == 1000
    s = WorkerSettings(max_pixels=100, max_encoded_bytes=10)
    assert s.input_bytes == 400 and s.encoded_bytes == 10


def test_weights_error_text_survives() -> None:
    info = msg.ErrorInfo.from_exception(WeightsError("detector weights 'yolov8n.pt' not found"))
    assert str(info) == "WeightsError: detector weights 'yolov8n.pt' not found"
