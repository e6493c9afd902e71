"""Where the engine queues its work: three CUDA streams joined by events, or the CPU in order.

A :class:`Lane` is one ordered queue of device work. On CUDA it is a stream: work queued in
``with lane:`` goes to that stream, :meth:`Lane.mark` records an event that another lane can
:meth:`Lane.wait` for without stopping the host, and :meth:`Lane.finish` blocks the host until
the lane's work (and what it waited for) is done. On the CPU a lane has no stream: work runs
at once, in program order, and marks, waits and finishes are no-ops. This is the one place
where the engine's per-frame code differs between CUDA and the CPU.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch

__all__ = ["Lane", "Lanes", "make_lanes"]


class Lane:
    """One ordered queue of device work: a CUDA stream, or (``stream`` None) the CPU.

    Args:
        stream: the CUDA stream, or None on the CPU.
    """

    def __init__(self, stream: torch.cuda.Stream | None) -> None:
        self.stream = stream
        self._contexts: list[torch.cuda.StreamContext] = []  # ``with lane:`` may nest
        self._done = torch.cuda.Event() if stream is not None else None  # finish()'s
        self.waited_s = 0.0  # the host's time in finish(), all calls together

    def __enter__(self) -> Lane:
        if self.stream is not None:
            context = torch.cuda.stream(self.stream)
            context.__enter__()
            self._contexts.append(context)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._contexts:
            self._contexts.pop().__exit__(*exc)

    def mark(self) -> torch.cuda.Event | None:
        """An event after the work queued so far (None on the CPU, where it is all done)."""
        if self.stream is None:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def wait(self, mark: torch.cuda.Event | None) -> None:
        """Make this lane's later work wait for ``mark`` (the host does not wait)."""
        if mark is not None and self.stream is not None:
            self.stream.wait_event(mark)

    def finish(self) -> None:
        """Block the host until everything queued on this lane (and what it waited for) is done.

        The time it blocks adds to :attr:`waited_s`.
        """
        done = self._done  # one event, re-recorded: nothing else waits for it
        if done is not None:
            done.record(self.stream)
            start = time.perf_counter()
            done.synchronize()
            self.waited_s += time.perf_counter() - start


class Lanes(NamedTuple):
    """The engine's three lanes.

    Attributes:
        upload: the H2D copy (or decode) and both networks' input preparation.
        depth: MiDaS and the depth upsampling.
        detect: YOLO, NMS, box depth, packing and the D2H copies.
    """

    upload: Lane
    depth: Lane
    detect: Lane


def make_lanes(device: torch.device, parallel: bool) -> Lanes:
    """Lanes on ``device``: three streams if ``parallel``, else one shared by all; CPU lanes.

    Args:
        device: the engine's device.
        parallel: run depth and detection on their own streams (``worker.parallel_streams``).
    """
    if device.type != "cuda":
        return Lanes(Lane(None), Lane(None), Lane(None))
    upload = torch.cuda.Stream(device)
    depth = torch.cuda.Stream(device) if parallel else upload
    detect = torch.cuda.Stream(device) if parallel else upload
    return Lanes(Lane(upload), Lane(depth), Lane(detect))
