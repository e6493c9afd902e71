"""The node's side of its inference worker: start and stop, frames in, health out.

The worker is a spawned process shared by the nodes of this process whose engines can share
(:mod:`aria_perception.worker.registry`); the node holds a client of it for its camera, named by
the node's full name. A single node has a worker of its own, as before. This module only builds
the settings from the node's parameters, reports the worker's state into the diagnostics
snapshot and says in the log when it goes down or comes back (see "Process model" and "Failure
model" in docs/design.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aria_perception.errors import AriaPerceptionError, shorten
from aria_perception.records import EngineInfo, Thresholds, WorkerState
from aria_perception.ros.diagnostics import Snapshot
from aria_perception.ros.node_config import NodeConfig

__all__ = ["DOWN_STATES", "WorkerLink"]

#: Worker states that diagnostics report as ERROR.
DOWN_STATES = (WorkerState.RESTARTING, WorkerState.FAILED)
_DOWN_NAMES = tuple(state.name for state in DOWN_STATES)


class WorkerLink:
    """The node's handle on its inference worker (no torch: the worker imports it).

    Args:
        logger: the node's logger.
        on_result: called with each ``FrameResult`` from the worker's supervisor thread.
        on_error: called as ``on_error(frame_id, tag, error)`` from the worker's supervisor thread.
    """

    def __init__(
        self,
        logger: Any,
        on_result: Callable[[Any], None],
        on_error: Callable[[int, Any, Exception], None],
    ) -> None:
        self._logger = logger
        self._on_result = on_result
        self._on_error = on_error
        self._client: Any = None
        self._info: EngineInfo | None = None
        self._start_error = ""
        self._seen = (WorkerState.STOPPED.name, 0)
        self._rectification: Any = None  # the camera's latest, for every worker joined

    @property
    def info(self) -> EngineInfo | None:
        """What the engine reported at its last successful start (None before)."""
        return self._info

    @property
    def class_names(self) -> tuple[str, ...]:
        """The detector's class names (empty before the first start)."""
        return tuple(self._info.class_names) if self._info is not None else ()

    @property
    def running(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._client is not None

    @property
    def start_error(self) -> str:
        """Why the last ``start`` failed ("" if it did not)."""
        return self._start_error

    def start(self, config: NodeConfig, thresholds: Thresholds, camera: str = "") -> EngineInfo:
        """Join the shared worker of the node's engine key, starting it if none runs yet.

        Args:
            config: The node's configuration.
            thresholds: The detector thresholds in effect.
            camera: The camera's key in the worker (the node's full name; unique in the process).

        Raises:
            AriaPerceptionError: the worker could not start (weights, device, timeout) or
                ``thresholds.classes`` names a class the detector does not know.
        """
        from aria_perception.worker import REGISTRY

        engine_config = config.engine.replace(
            confidence=thresholds.confidence, iou=thresholds.iou, classes=thresholds.classes
        )
        self._logger.info(
            f"joining the inference worker (device {engine_config.device}, precision "
            f"{engine_config.precision}); starting one imports torch, which takes a while"
        )
        try:
            self._client = REGISTRY.acquire(
                camera,
                engine_config,
                config.worker_settings(),
                on_result=self._on_result,
                on_error=self._on_error,
            )
            info = self._client.info
            assert info is not None  # a client is made once its worker started
            thresholds.check_classes(info.class_names)
            if self._rectification is not None:
                self._client.set_rectification(self._rectification)
        except AriaPerceptionError as err:
            self._start_error = str(err)
            self.stop()
            raise
        except BaseException:  # Ctrl-C or SIGTERM during the start: nothing left behind
            self.stop()
            raise
        self._start_error = ""
        self._info = info
        self._logger.info(
            f"worker ready: {info.device} ({info.device_name}), {info.precision}, "
            f"{len(info.class_names)} classes, weights {info.weights}"
        )
        if info.weights == "random":
            self._logger.warning(
                "RANDOM weights (allow_random_weights is true and official weights are "
                "missing): depth and detections are meaningless; fetch weights with "
                "`ros2 run aria_perception models`"
            )
        return info

    def stop(self) -> None:
        """Leave the worker and release the camera's shared memory (idempotent).

        The last camera to leave stops the worker.
        """
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def submit(
        self,
        pixels: Any,
        encoding: str,
        tag: Any,
        want_depth: bool,
        size: tuple[int, int] | None = None,
        want_rect: bool = False,
    ) -> bool:
        """Hand a frame to the worker; False when no worker runs (the frame is ignored).

        ``size`` is the (height, width) a compressed frame's header announces (its first frame
        of a size gets the worker's first-frame timeout).

        Raises:
            FrameError: the frame does not fit the worker's slots (counted by the worker).
            AriaPerceptionError: the frame could not be handed over.
        """
        client = self._client
        if client is None:
            return False
        client.submit(pixels, encoding, tag, want_depth=want_depth, size=size, want_rect=want_rect)
        return True

    def set_rectification(self, rectification: Any) -> None:
        """Rectify frames through ``rectification`` (a new camera calibration) from now on.

        Kept for the workers joined later; it is re-sent to a restarted worker.
        """
        self._rectification = rectification
        client = self._client
        if client is not None:
            client.set_rectification(rectification)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Apply new detector thresholds in the running worker (kept across restarts).

        Raises:
            AriaPerceptionError: the worker refused them.
        """
        client = self._client
        if client is not None:
            client.set_thresholds(thresholds)

    def report(self, snap: Snapshot, active: bool) -> None:
        """Fill the worker's part of a diagnostics snapshot.

        The worker counts as down while it restarts or has failed, when it failed to start, and
        while the node is active without a READY worker.
        """
        info = self._info
        if info is not None:
            snap.device, snap.device_name = info.device, info.device_name
            snap.precision, snap.weights = info.precision, info.weights
        client = self._client
        if client is not None:
            stats = client.stats()
            state = WorkerState(stats.state)
            snap.worker_state = state.name
            snap.worker_down = state in DOWN_STATES or (active and state != WorkerState.READY)
            snap.dropped_frames = int(stats.dropped)
            snap.rejected_frames += int(stats.rejected)  # poison frames included
            snap.poison_frames = int(stats.poison)
            snap.worker_restarts = int(stats.restarts)
            snap.gpu_mem_mb = float(stats.gpu_mem_mb)
            snap.gpu_mem_peak_mb = float(stats.gpu_mem_peak_mb)
            snap.last_error = str(stats.last_error or "")
            snap.worker_pid = int(stats.pid or 0)
            snap.worker_cameras = int(stats.cameras)
        elif self._start_error:
            snap.worker_state = WorkerState.FAILED.name
            snap.worker_down = True
            snap.last_error = self._start_error

    def log_change(self, snap: Snapshot) -> None:
        """Say in the log what diagnostics show: the worker went down or came back."""
        seen = (snap.worker_state, snap.worker_restarts)
        if seen == self._seen:
            return
        previous, self._seen = self._seen, seen
        if snap.worker_down:
            self._logger.error(
                f"inference worker down ({snap.worker_state}, {snap.worker_restarts} restart(s)): "
                f"{shorten(snap.last_error or 'no error reported')}"
            )
        elif snap.worker_state == WorkerState.READY.name and previous[0] in _DOWN_NAMES:
            self._logger.warning(
                f"inference worker ready again after {snap.worker_restarts} restart(s)"
            )
