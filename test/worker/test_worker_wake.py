"""Wake: sent before a frame's copy to a worker that may be asleep, and only then."""

from __future__ import annotations

import time

import pytest

from aria_perception.worker import dispatch as dispatch_module
from aria_perception.worker import protocol as msg
from aria_perception.worker.dispatch import Dispatcher
from aria_perception.worker.ledger import Job, Ledger


class _Recorder:
    """Stands for the worker process: the generation it runs and what it was sent."""

    generation = 1

    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> bool:
        self.sent.append(message)
        return True


def _admit(dispatch: Dispatcher, frame_id: int) -> None:
    slot = dispatch.claim_slot()
    assert slot is not None
    job = Job(frame_id, None, slot, (2, 2), "mono8", False, time.monotonic(), 0.0)
    assert dispatch.admit(job)


def test_only_a_worker_that_may_be_asleep_gets_a_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatch, worker = Dispatcher(Ledger(1.0, 1.0)), _Recorder()
    dispatch.attach(worker, None)  # type: ignore[arg-type]
    worker.sent.clear()
    dispatch.wake()  # it has answered nothing yet
    assert worker.sent == [msg.Wake()]
    _admit(dispatch, 1)
    worker.sent.clear()
    dispatch.wake()  # it holds a job of the camera: awake
    assert worker.sent == []
    dispatch.skipped(msg.Skipped(1, 1, ""))
    monkeypatch.setattr(dispatch_module, "WAKE_AFTER_S", 60.0)
    dispatch.wake()  # answered just now: awake
    assert worker.sent == []
    monkeypatch.setattr(dispatch_module, "WAKE_AFTER_S", 0.0)
    dispatch.wake()  # idle since its answer
    assert worker.sent == [msg.Wake()]
    dispatch.detach()
    dispatch.wake()  # no worker: nothing to wake
    assert worker.sent == [msg.Wake()]
