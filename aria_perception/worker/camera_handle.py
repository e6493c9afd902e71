"""What a camera does with its worker, whether it has the worker alone or shares it.

:class:`~aria_perception.worker.supervisor.Supervisor` (a worker of its own) and
:class:`~aria_perception.worker.client.WorkerClient` (a camera of a shared worker) are both a
:class:`CameraHandle`: one :class:`~aria_perception.worker.channel.CameraChannel` of a
:class:`~aria_perception.worker.shared.SharedWorker`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aria_perception.optics import Rectification
from aria_perception.records import EngineInfo, Thresholds, WorkerState
from aria_perception.worker.channel import CameraChannel
from aria_perception.worker.settings import WorkerStats
from aria_perception.worker.shared import SharedWorker

__all__ = ["CameraHandle", "camera_stats"]


def camera_stats(worker: SharedWorker, channel: CameraChannel) -> WorkerStats:
    """A camera's counters with its worker's state (shared by all the worker's cameras)."""
    counts = channel.dispatch.counts()
    state, restarts, last_error, info = worker.status()
    gpu_mem_mb, gpu_mem_peak_mb = worker.gpu_mem
    return WorkerStats(
        **dataclasses.asdict(counts),
        state=state,
        restarts=restarts,
        generation=channel.dispatch.generation,
        last_error=last_error,
        gpu_mem_mb=gpu_mem_mb,
        gpu_mem_peak_mb=gpu_mem_peak_mb,
        pid=worker.pid,
        info=info,
        cameras=worker.cameras,
    )


class CameraHandle:
    """One camera of a worker: its frames in, its thresholds and rectification, its counters.

    Args:
        worker: The worker.
        channel: The camera's part of it (its slots, jobs and callbacks).
    """

    def __init__(self, worker: SharedWorker, channel: CameraChannel) -> None:
        self._worker = worker
        self._channel = channel

    @property
    def state(self) -> WorkerState:
        """Where the worker is in its life (the same for all its cameras)."""
        return self._worker.state

    @property
    def info(self) -> EngineInfo | None:
        """What the engine reported at start-up (``None`` before)."""
        return self._worker.info

    def submit(
        self,
        frame: Any,
        encoding: str,
        tag: Any = None,
        *,
        want_depth: bool = True,
        size: tuple[int, int] | None = None,
        want_rect: bool = False,
    ) -> int | None:
        """Hand a frame to the worker; its result comes to ``on_result`` with ``tag``.

        The frame is copied (any strides, e.g. a padded row step, are fine), so the caller may
        reuse its buffer at once. If the worker is busy, the frame waits in place of any older
        waiting frame of the camera, which is dropped.

        Args:
            frame: (H, W, C) or (H, W) uint8 pixels in ``encoding``, or the compressed bytes
                (a 1-D uint8 array or a bytes-like object) for ``jpeg``/``png``.
            encoding: rgb8, bgr8, mono8, rgba8, bgra8, jpeg or png.
            tag: Anything; handed back with the result (e.g. the message header).
            want_depth: Whether the depth map is wanted back.
            size: (height, width) a compressed frame's header announces, if known: the first
                frame of a size gets ``first_frame_timeout_s``, like a new raw shape.
            want_rect: Whether the rectified frame is wanted back (``input.rectify``).

        Returns:
            The frame id, or ``None`` when no worker is ready (the frame counts as dropped).

        Raises:
            FrameError: the frame does not fit its encoding or the slots (counted rejected).
        """
        return self._channel.submit(frame, encoding, tag, want_depth, size, want_rect)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Change the camera's detector thresholds (kept across worker restarts).

        ``Thresholds`` checks its own values when it is built.

        Raises:
            ConfigError: a class name is unknown to the model.
        """
        info = self._worker.info
        if info is not None:
            thresholds.check_classes(info.class_names)
        self._channel.dispatch.set_thresholds(thresholds)

    def set_rectification(self, rectification: Rectification) -> None:
        """Rectify the camera's frames from the next one on (kept across worker restarts).

        Sent once; the worker builds the grid. An engine's refusal goes to ``on_error`` (id -1).
        """
        self._channel.dispatch.set_rectification(rectification)

    def stats(self) -> WorkerStats:
        """A snapshot of the camera's counters, with the worker's state, restarts, pid, cameras."""
        return camera_stats(self._worker, self._channel)

    def debug(self, action: str, kind: str = "", message: str = "") -> None:
        """Inject a fault into the worker (tests; every camera sees it): ``protocol.Debug``."""
        self._worker.debug(action, kind, message)
