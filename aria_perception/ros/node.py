"""The perception node: a composable lifecycle node around the inference worker (no torch).

Lifecycle: configure = start the worker and load the models; activate = subscribe (outputs go
out); deactivate = stop consuming, keep the worker warm; cleanup = stop the worker and free the
GPU; shutdown = all of it, and the node is destroyed (``perception_node`` then exits 0). With
``autostart`` (default) the node configures and activates itself at construction so
``ros2 run`` and launch just work.

Threads: the image callback (executor thread, mutually exclusive group) validates the frame and
hands a zero-copy view to the supervisor, which copies it into shared memory. Results arrive on
the supervisor's result thread and are published from there directly: each publisher is used by
that one thread only (rcl publishing is thread-safe per publisher), and handing large outputs
back to the executor would add a wake-up and a queue to every frame's latency. Diagnostics and
parameter changes run on the executor.

The node is the rclpy glue: output publishing lives in :mod:`aria_perception.ros.outputs`, the
worker's start, stop and health in :mod:`aria_perception.ros.worker_link`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from aria_perception.errors import AriaPerceptionError, ConfigError, FrameError, shorten
from aria_perception.records import Thresholds
from aria_perception.ros import diagnostics, params
from aria_perception.ros.camera_input import CameraInput
from aria_perception.ros.detection_tracking import DetectionTracking
from aria_perception.ros.image_codec import compressed_to_frame, image_to_frame, serialized_image
from aria_perception.ros.node_config import NodeConfig
from aria_perception.ros.outputs import OUTPUT_TOPICS, OutputPublishers, PendingFrame
from aria_perception.ros.param_table import SPECS, validate
from aria_perception.ros.qos import InputSubscription
from aria_perception.ros.rejections import Rejections
from aria_perception.ros.runner import run_nodes, spin
from aria_perception.ros.worker_link import WorkerLink

__all__ = ["DEFAULT_NAME", "INPUT_TOPICS", "OUTPUT_TOPICS", "PerceptionNode", "main", "spin"]

#: The node's default name; central.launch.py runs it as ``central_perception``.
DEFAULT_NAME = "perception"
#: Inputs are relative names (remapped by the launch file to the camera's topics).
INPUT_TOPICS = {"image": "image", "image/compressed": "image/compressed",
                "camera_info": "camera_info"}  # fmt: skip


class PerceptionNode(LifecycleNode):
    """Relative depth and object detection for one camera.

    Args:
        node_name: node name (default ``perception``).
        **kwargs: passed to ``rclpy.lifecycle.Node`` (``namespace``, ``context``, ``cli_args``,
            ``parameter_overrides``, ``use_global_arguments``, ...), so several nodes can be
            composed in one process.

    Raises:
        ConfigError: a parameter value given at start is invalid (the message names it).
    """

    def __init__(self, node_name: str = DEFAULT_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._logger = self.get_logger()
        self._active = False
        self._finalized = False
        self._destroyed = False
        self._camera_info: Any = None
        self._rejections = Rejections(self._logger)
        self._worker = WorkerLink(self._logger, self._on_result, self._on_worker_error)

        self._input_rate = diagnostics.RateTracker()
        self._output_rate = diagnostics.RateTracker()
        self._latency = diagnostics.LatencyTracker()
        self._batched_frames = 0  # frames that ran in one engine call with other cameras'

        self._input_group = MutuallyExclusiveCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self._input: InputSubscription | None = None
        self._info_sub: Any = None
        try:
            self._config = params.declare(self)
            self._tracking = DetectionTracking(self, self._config)
        except ConfigError:
            super().destroy_node()  # a refused node leaves nothing registered behind
            raise
        self._warn_unknown_overrides()
        rectify = self._config.engine.rectify
        self._outputs = OutputPublishers(self, rectify=rectify)
        self._camera = (
            CameraInput(
                self._config.engine,
                self._logger,
                self._rejections.throttle,
                self._worker.set_rectification,
            )
            if rectify
            else None
        )
        self._thresholds = self._config.thresholds
        self._expected_fps = self._config.expected_fps
        self._latency_budget_ms = self._config.latency_budget_ms

        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Diagnostics flow in every lifecycle state so a failed start is visible as ERROR.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(
            self._config.diagnostics_period_s, self._publish_diagnostics, self._diag_group
        )
        if self._config.autostart:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ------------------------------------------------------------------ public API

    @property
    def config(self) -> NodeConfig:
        """The parameters as frozen at start."""
        return self._config

    @property
    def start_error(self) -> str:
        """Why the last configure failed ("" if it did not)."""
        return self._worker.start_error

    @property
    def active(self) -> bool:
        """True while the node consumes frames."""
        return self._active

    @property
    def finalized(self) -> bool:
        """True once the lifecycle ``shutdown`` transition ran: the node is done."""
        return self._finalized

    @property
    def thresholds(self) -> Thresholds:
        """The detector thresholds in effect (changed at run time through parameters)."""
        return self._thresholds

    @property
    def expected_fps(self) -> float:
        """The output rate below which diagnostics WARN, in effect (0 = off)."""
        return self._expected_fps

    @property
    def latency_budget_ms(self) -> float:
        """The p95 latency above which diagnostics WARN, in effect (0 = off)."""
        return self._latency_budget_ms

    def destroy_node(self) -> None:
        """Stop the worker (shared memory released), then destroy the node (idempotent)."""
        self._deactivate()
        self._worker.stop()
        if self._destroyed:
            return
        super().destroy_node()
        self._destroyed = True
        # rclpy leaves the lifecycle state machine, and with it the node's lifecycle services,
        # to the garbage collector: a node destroyed in a running container must leave the
        # graph now. (rclpy keeps it in a private attribute and offers no public accessor.)
        machine = getattr(self, "_state_machine", None)
        if machine is not None and hasattr(machine, "destroy_when_not_in_use"):
            machine.destroy_when_not_in_use()

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Start the worker and load the models; create the publishers."""
        try:
            self._worker.start(self._config, self._thresholds, self.get_fully_qualified_name())
        except AriaPerceptionError as err:
            self._logger.error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self._outputs.create()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe to the camera; results are published from now on."""
        compressed = self._config.transport == "compressed"
        self._input = InputSubscription(
            self,
            CompressedImage if compressed else Image,
            INPUT_TOPICS["image/compressed" if compressed else "image"],
            self._on_compressed if compressed else self._on_image,
            self._config.qos,
            self._input_group,
            raw=not compressed and self._config.raw_intake,
        )
        self._input.create()
        # CameraInfo is small: best effort matches every publisher and loses nothing in practice.
        self._info_sub = self.create_subscription(
            CameraInfo,
            INPUT_TOPICS["camera_info"],
            self._on_camera_info,
            qos_profile_sensor_data,
            callback_group=self._input_group,
        )
        self._input_rate.reset()
        self._output_rate.reset()
        self._latency.reset()
        self._tracking.activate(self._worker.class_names, self._thresholds)
        self._active = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop consuming frames; the worker stays warm."""
        self._deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Stop the worker and free the GPU; destroy the publishers."""
        self._worker.stop()
        self._outputs.destroy()
        self._tracking.destroy()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Everything off, from any state; the node is done (:attr:`finalized`)."""
        result = self._release_all()
        self._finalized = True
        self._logger.info("lifecycle shutdown: worker stopped, the node is finalized")
        return result

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release what a failed transition left behind; back to unconfigured."""
        return self._release_all()

    def _release_all(self) -> TransitionCallbackReturn:
        self._deactivate()
        self._worker.stop()
        self._outputs.destroy()
        self._tracking.destroy()
        return TransitionCallbackReturn.SUCCESS

    def _deactivate(self) -> None:
        self._active = False
        if self._input is not None:
            self._input.destroy()
            self._input = None
        if self._info_sub is not None:
            self.destroy_subscription(self._info_sub)
            self._info_sub = None

    # ------------------------------------------------------------------ input

    def _on_image(self, msg: Image | bytes) -> None:
        received = time.monotonic()
        self._input_rate.tick(received)
        if isinstance(msg, bytes):  # input.raw_intake: read in place, not deserialised
            msg = serialized_image(msg)
        try:
            frame = image_to_frame(msg, self._config.max_pixels)
        except FrameError as err:
            self._reject(msg, err)
            return
        self._submit(frame.pixels, frame.encoding, PendingFrame(msg.header, received, frame, msg))

    def _on_compressed(self, msg: CompressedImage) -> None:
        received = time.monotonic()
        self._input_rate.tick(received)
        try:
            frame = compressed_to_frame(
                msg, self._config.max_pixels, self._config.max_encoded_bytes
            )
        except FrameError as err:
            self._reject(msg, err)
            return
        pending = PendingFrame(msg.header, received, frame, msg)
        self._submit(frame.data, frame.format, pending, (frame.height, frame.width))

    def _submit(
        self,
        pixels: Any,
        encoding: str,
        pending: PendingFrame,
        size: tuple[int, int] | None = None,
    ) -> None:
        if not self._active:
            return
        if self._camera is not None:  # rectify: no frame without a calibration of its size
            try:
                self._camera.check_frame(pending.frame.width, pending.frame.height)
            except FrameError as err:
                self._reject(pending.message, err)
                return
        outputs = self._outputs
        try:
            self._worker.submit(
                pixels, encoding, pending, outputs.depth_wanted(), size, outputs.rect_wanted()
            )
        except FrameError as err:  # the supervisor counts it in its ``rejected``
            self._reject(pending.message, err, count=False)
        except AriaPerceptionError as err:
            self._logger.error(f"could not submit a frame: {err}", throttle_duration_sec=5.0)

    def _reject(self, msg: Any, err: Exception, count: bool = True) -> None:
        self._rejections.reject(msg.header, err, count)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg
        if self._camera is not None:
            self._camera.update(msg)

    # ------------------------------------------------------------------ results

    def _on_result(self, result: Any) -> None:
        """Publish one frame's outputs (supervisor result thread)."""
        started = time.monotonic()
        pending: PendingFrame = result.tag
        if not self._active:
            return
        names = self._worker.class_names
        tracked = self._tracking.track(result.result.detections, names, self._thresholds)
        try:
            info = self._camera_info if self._camera is None else self._camera.output_info()
            published = self._outputs.publish(pending, result.result, names, info, tracked.ids)
        except Exception as err:  # noqa: BLE001 - a bad result must not kill the thread
            self._logger.error(
                f"publishing results failed: {type(err).__name__}: {err}",
                throttle_duration_sec=5.0,
            )
            return
        if not published:
            return
        done = time.monotonic()
        self._output_rate.tick(done)
        path = diagnostics.PathTimes.of(
            result.timing, (started - pending.received) * 1e3, (done - started) * 1e3, tracked.ms
        )
        self._latency.add((done - pending.received) * 1e3, result.result.times, path)
        self._batched_frames += result.timing.batch_size > 1

    def _on_worker_error(self, frame_id: int, tag: Any, err: Exception) -> None:
        """A frame failed in the worker (supervisor thread): bad frames are counted there."""
        if isinstance(err, FrameError) and isinstance(tag, PendingFrame):
            self._reject(tag.message, err, count=False)
        elif self._rejections.throttle.allow(err):
            what = "worker error" if frame_id < 0 else f"frame {frame_id} lost"
            self._logger.error(f"{what}: {type(err).__name__}: {shorten(str(err))}")

    # ------------------------------------------------------------------ parameters

    def _on_set_parameters(self, parameters: list) -> Any:
        changes: dict[str, Any] = {}
        for param in parameters:
            spec = SPECS.get(param.name)
            if spec is None:
                continue  # use_sim_time and rclpy's own parameters
            try:
                changes[param.name] = validate(param.name, param.value)
            except ConfigError as err:
                return params.set_result(False, str(err))
        if not changes:
            return params.set_result(True)
        try:
            use_tracker = self._tracking.prepare(changes)  # built now, in use once all is well
        except ConfigError as err:
            return params.set_result(False, str(err))
        thresholds = Thresholds(
            confidence=changes.get("detector.confidence", self._thresholds.confidence),
            iou=changes.get("detector.iou", self._thresholds.iou),
            classes=changes.get("detector.classes", self._thresholds.classes),
        )
        if thresholds != self._thresholds:
            try:
                if self._worker.class_names:
                    thresholds.check_classes(self._worker.class_names)
                self._worker.set_thresholds(thresholds)
            except AriaPerceptionError as err:
                return params.set_result(False, str(err))
            self._thresholds = thresholds
            self._logger.info(
                f"detector thresholds now confidence={thresholds.confidence:g} "
                f"iou={thresholds.iou:g} classes={list(thresholds.classes) or 'all'}"
            )
        use_tracker()
        self._expected_fps = changes.get("diagnostics.expected_fps", self._expected_fps)
        self._latency_budget_ms = changes.get(
            "diagnostics.latency_budget_ms", self._latency_budget_ms
        )
        return params.set_result(True)

    def _warn_unknown_overrides(self) -> None:
        unknown = params.unknown_overrides(self)
        if unknown:
            self._logger.warning(
                f"ignoring unknown parameter(s) {', '.join(unknown)} (typo? see "
                "config/central.yaml for every parameter)"
            )

    # ------------------------------------------------------------------ diagnostics

    def snapshot(self) -> diagnostics.Snapshot:
        """The values the next diagnostics message reports."""
        engine = self._config.engine
        snap = diagnostics.Snapshot(
            input_fps=self._input_rate.rate(),
            output_fps=self._output_rate.rate(),
            stages=self._latency.stage_medians(),
            path=self._latency.path_medians(),
            active=self._active,
            depth_frame_skip=engine.depth_frame_skip,
            device=engine.device,
            device_name="unknown",
            precision=engine.precision,
        )
        snap.latency_ms_p50, snap.latency_ms_p95, snap.latency_ms_p99 = self._latency.percentiles(
            50, 95, 99
        )
        snap.rejected_frames, snap.batched_frames = self._rejections.count, self._batched_frames
        if self._input is not None:
            snap.lost_samples = self._input.lost_samples
        self._worker.report(snap, self._active)
        return snap

    def _publish_diagnostics(self) -> None:
        snap = self.snapshot()
        self._worker.log_change(snap)
        status = diagnostics.build_status(
            snap, self.get_name(), self._expected_fps, self._latency_budget_ms
        )
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self._diag_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Console script ``perception_node``: one node, ``--ros-args`` as usual.

    Exits 0 on Ctrl-C, SIGTERM (at any moment, start-up included) and after the lifecycle
    ``shutdown`` transition; 1 when the worker cannot start; 2 on an invalid parameter.
    """
    return run_nodes("perception_node", args, lambda: [PerceptionNode()])


if __name__ == "__main__":
    sys.exit(main())
