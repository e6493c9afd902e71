"""One camera of a worker, parent side: its segment, its jobs, its callbacks.

A :class:`CameraChannel` is everything of one client of a (possibly shared) worker that is the
camera's own: its shared-memory segment (input and output slots sized for its ``max_pixels``),
its :class:`~aria_perception.worker.dispatch.Dispatcher` and
:class:`~aria_perception.worker.ledger.Ledger` (newest wins, its pending frame, its counters),
its thresholds, rotation and rectification, and its ``on_result`` and ``on_error``. Frames of a
camera are copied into its own slots under its own lock, so one camera's submit never waits for
another camera's copy; answers of the worker name the camera, and a camera's ledger accepts only
answers to its own oldest job: a result can reach no other camera's callback.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aria_perception.errors import AriaPerceptionError, FrameError
from aria_perception.records import EngineConfig
from aria_perception.worker import protocol as msg
from aria_perception.worker.dispatch import Dispatcher
from aria_perception.worker.frame_copy import copy_frame
from aria_perception.worker.ledger import Job, Ledger
from aria_perception.worker.result import FrameResult, FrameTiming
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.slots import SharedSlots, SlotLayout, input_data

__all__ = ["CameraChannel", "ErrorCallback", "ResultCallback"]

_log = logging.getLogger(__name__)

ResultCallback = Callable[[FrameResult], None]
ErrorCallback = Callable[[int, Any, AriaPerceptionError], None]


def camera_layout(config: EngineConfig, settings: WorkerSettings) -> SlotLayout:
    """The segment of a camera: input slots for its frames, output slots for its results."""
    return SlotLayout(
        input_bytes=settings.input_bytes,
        max_depth_pixels=settings.max_pixels,
        max_detections=config.max_detections,
        # The rectified frame comes back in the output slot: rgb8 at the pinhole's size.
        rect_bytes=config.rectify_width * config.rectify_height * 3 if config.rectify else 0,
    )


class CameraChannel:
    """A camera's part of a worker (see the module docstring).

    Args:
        camera: Its key in the messages (unique within the worker).
        config: The camera's engine configuration (sizes its output slots).
        settings: The camera's worker settings (``max_pixels`` sizes its input slots).
        rotation: Its ``input.rotation`` (``None``: the engine's configuration's).
        frame_ids: Where frame ids come from (the worker's, shared by its cameras).
        on_result: Called with each of its results (the worker's supervisor thread).
        on_error: Called for its frames that failed and its refused settings.
    """

    def __init__(
        self,
        camera: str,
        config: EngineConfig,
        settings: WorkerSettings,
        rotation: int | None,
        frame_ids: itertools.count,
        on_result: ResultCallback,
        on_error: ErrorCallback | None,
    ) -> None:
        self.name = camera
        self.settings = settings
        self.rotation = rotation
        self.layout = camera_layout(config, settings)
        self.dispatch = Dispatcher(
            Ledger(settings.frame_timeout_s, settings.first_frame_timeout_s), camera
        )
        self.on_result = on_result
        self.on_error = on_error
        self.slots: SharedSlots | None = None
        # Serialises submit's copy against the unmapping of the slots.
        self.lock = threading.Lock()
        self._frame_ids = frame_ids

    # -- the segment --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the camera's segment (if it has none).

        Raises:
            WorkerStartError: /dev/shm cannot hold it.
        """
        if self.slots is None:
            self.slots = SharedSlots.create(self.layout, self.settings.shm_prefix)

    def close(self) -> None:
        """Unmap and unlink the segment (once; this process is its only owner)."""
        with self.lock:
            slots, self.slots = self.slots, None
        if slots is not None:
            slots.close()
            slots.unlink()

    def spec(self) -> msg.CameraSpec:
        """What the worker needs to know of the camera (its thresholds as of now)."""
        assert self.slots is not None
        return msg.CameraSpec(
            self.name, self.slots.name, self.layout, self.rotation, self.dispatch.thresholds
        )

    # -- frames in ----------------------------------------------------------------------------

    def submit(
        self,
        frame: Any,
        encoding: str,
        tag: Any,
        want_depth: bool,
        size: tuple[int, int] | None,
        want_rect: bool,
    ) -> int | None:
        """Copy a frame into a free input slot of the camera and send or keep it (see Supervisor).

        Returns:
            The frame id, or ``None`` when no worker is ready (the frame counts as dropped).

        Raises:
            FrameError: the frame does not fit its encoding or the slots (counted rejected).
        """
        submitted_at = time.monotonic()
        dispatch = self.dispatch
        try:
            data = input_data(frame, encoding, self.settings)
        except FrameError:
            dispatch.reject()
            raise
        with self.lock:
            slots = self.slots
            slot = dispatch.claim_slot()
            if slot is None:
                return None
            assert slots is not None  # a worker is attached, so the slots are mapped
            dispatch.wake()
            try:
                copy_frame(slots.input(slot)[: data.size].reshape(data.shape), data)
            except BaseException:
                dispatch.unclaim(slot)
                raise
            job = Job(
                frame_id=next(self._frame_ids),
                tag=tag,
                in_slot=slot,
                shape=tuple(int(n) for n in data.shape),
                encoding=encoding,
                want_depth=want_depth,
                submitted_at=submitted_at,
                copy_in_ms=(time.monotonic() - submitted_at) * 1e3,
                size=size,
                want_rect=want_rect,
                camera=self.name,
            )
            return job.frame_id if dispatch.admit(job) else None

    # -- answers out --------------------------------------------------------------------------

    def report(self, frame_id: int, tag: Any, error: AriaPerceptionError) -> None:
        """Hand ``error`` to the camera's ``on_error`` (a raising callback is logged)."""
        if self.on_error is None:
            return
        try:
            self.on_error(frame_id, tag, error)
        except Exception:
            _log.exception("on_error callback raised (frame %d)", frame_id)

    def deliver(self, message: msg.Result) -> bool:
        """Hand the camera's result to ``on_result``; False if it belongs to no current job.

        The output slot goes back to the worker once the callback returned.
        """
        job = self.dispatch.processed(message)
        if job is None:
            return False
        slots = self.slots
        try:
            if slots is not None:  # else stopped meanwhile
                self._deliver(message, job, slots)
        finally:
            self.dispatch.release(message.out_slot)
        return True

    def _deliver(self, message: msg.Result, job: Job, slots: SharedSlots) -> None:
        delivered_at = time.monotonic()
        m = message
        shapes = (m.n_detections, m.depth_shape, m.times, m.depth_fresh, m.rect_shape)
        result = slots.output(m.out_slot).read(*shapes)
        timing = FrameTiming.of(job, message, delivered_at)
        frame_result = FrameResult(job.tag, job.frame_id, message.generation, result, timing)
        del result
        try:
            self.on_result(frame_result)
        except Exception:
            _log.exception("on_result callback raised (frame %d)", job.frame_id)
