"""TEST-ONLY engine with ``process_batch``: the toy engine, one camera's frame after another.

:class:`BatchToyEngine` is :class:`~worker_toy_engine.ToyEngine` (same knobs, same results per
frame) plus ``process_batch``, which runs its items through ``process`` in order. Its own knobs
(read in the worker, inherited from the test's environment at spawn):

- ``ARIA_BATCH_LOG``: a path; each ``process_batch`` call appends one line, the markers of its
  items in item order (the marker is the frame's first byte, as for the toy engine's log);
- ``ARIA_BATCH_REFUSE``: a marker; an item with it gets a ``FrameError`` (the others run);
- ``ARIA_BATCH_RAISE``: a marker; a call with an item with it raises ``RuntimeError`` (a device
  failure of the whole call).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from worker_toy_engine import ToyEngine

from aria_perception.errors import FrameError
from aria_perception.records import BatchItem, EngineConfig, EngineResult

FACTORY = "worker_batch_engine:BatchToyEngine"


def _marker(knob: str) -> int | None:
    value = os.environ.get(knob, "")
    return int(value) if value else None


class BatchToyEngine(ToyEngine):
    """The toy engine with a ``process_batch`` that logs each call's markers."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.batch_log = os.environ.get("ARIA_BATCH_LOG") or None
        self.refuse = _marker("ARIA_BATCH_REFUSE")
        self.fail = _marker("ARIA_BATCH_RAISE")

    def process_batch(self, items: Sequence[BatchItem]) -> list[EngineResult | FrameError]:
        """Each item through ``process``; a refused item gets its ``FrameError``."""
        markers = [int(item.frame.reshape(-1)[0]) for item in items]
        if self.batch_log is not None:
            with open(self.batch_log, "a") as f:
                f.write(" ".join(map(str, markers)) + "\n")
        if self.fail in markers:
            raise RuntimeError("device lost in a batch")
        results: list[EngineResult | FrameError] = []
        for item, marker in zip(items, markers, strict=True):
            if marker == self.refuse:
                results.append(FrameError(f"frame {marker} refused in a batch"))
                continue
            results.append(
                self.process(
                    item.frame,
                    item.encoding,
                    want_depth=item.want_depth,
                    depth_out=item.depth_out,
                    camera=item.camera,
                    rotation=item.rotation,
                )
            )
        return results


class BatchLog:
    """The engine's ``ARIA_BATCH_LOG`` as the test reads it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def calls(self) -> list[list[int]]:
        """The markers of each ``process_batch`` call, in call order."""
        if not self.path.exists():
            return []
        lines = self.path.read_text().split("\n")[:-1]  # the last one may be half written
        return [[int(m) for m in line.split()] for line in lines]
