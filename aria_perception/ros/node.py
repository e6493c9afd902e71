"""The perception node: a composable lifecycle node around the inference worker (no torch).

Lifecycle: configure = start the worker and load the models; activate = subscribe (outputs go
out); deactivate = stop consuming, keep the worker warm; cleanup = stop the worker and free the
GPU; shutdown = all of it. With ``autostart`` (default) the node configures and activates itself
at construction so ``ros2 run`` and launch just work.

Threads: the image callback (executor thread, mutually exclusive group) validates the frame and
hands a zero-copy view to the supervisor, which copies it into shared memory. Results arrive on
the supervisor's result thread and are published from there directly: each publisher is used by
that one thread only (rcl publishing is thread-safe per publisher), and handing large outputs
back to the executor would add a wake-up and a queue to every frame's latency. Diagnostics and
parameter changes run on the executor.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from aria_perception.errors import AriaPerceptionError, ConfigError, FrameError
from aria_perception.records import EngineInfo, Thresholds, WorkerState
from aria_perception.ros import diagnostics, params
from aria_perception.ros.image_codec import (
    CompressedFrame,
    RawFrame,
    compressed_to_frame,
    depth_to_image,
    image_to_frame,
    normalized_depth_to_image,
)
from aria_perception.ros.messages import camera_info_for_output, detections_to_msg
from aria_perception.ros.overlay import decode_compressed_bgr, overlay_image
from aria_perception.ros.qos import InputSubscription

#: The node's default name (DESIGN 2a); central.launch.py runs it as ``central_perception``.
DEFAULT_NAME = "perception"
#: Inputs are relative names (remapped by the launch file to the camera's topics).
INPUT_TOPICS = {"image": "image", "image/compressed": "image/compressed",
                "camera_info": "camera_info"}  # fmt: skip
#: Outputs are private names, ``<namespace>/<node name>/...``: several nodes in one container or
#: namespace never collide, and each camera's results sit under its node.
OUTPUT_TOPICS = {
    name: f"~/{name}"
    for name in (
        "detections",
        "depth/raw",
        "depth/normalized",
        "detections/overlay",
        "depth/camera_info",
    )
}
_OUTPUT_QOS = QoSProfile(depth=2)
_DOWN_STATES = (WorkerState.RESTARTING, WorkerState.FAILED)
_DOWN_NAMES = tuple(state.name for state in _DOWN_STATES)
_LOG_PERIOD_S = 5.0


class _Throttle:
    """Rate limit for log lines per reason (numbers ignored), so every new reason shows at once.

    rclpy's ``throttle_duration_sec`` is per call site: one bad encoding would hide a truncated
    frame that follows it.
    """

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, text: str) -> bool:
        key = re.sub(r"\d+", "#", text)[:120]
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._period_s:
                return False
            if len(self._last) > 256:  # bounded: reasons are few, numbers are stripped
                self._last.clear()
            self._last[key] = now
            return True


@dataclass(frozen=True)
class _Pending:
    """What the node remembers about a submitted frame (the supervisor's tag; never pickled)."""

    header: Any
    received: float  # time.monotonic() when the image callback started
    frame: RawFrame | CompressedFrame
    message: Any  # keeps the buffer behind ``frame`` alive until the result is published


class PerceptionNode(LifecycleNode):
    """Relative depth and object detection for one camera (DESIGN 3 and 4).

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
        self._supervisor: Any = None
        self._info: EngineInfo | None = None
        self._class_names: tuple[str, ...] = ()
        self._active = False
        self._start_error = ""
        self._publish_lock = threading.Lock()
        self._camera_info: Any = None
        self._rejected = 0  # frames refused by the codec (the worker counts its own)
        self._counter_lock = threading.Lock()
        self._throttle = _Throttle(_LOG_PERIOD_S)
        self._worker_seen = ("STOPPED", 0)

        self._input_rate = diagnostics.RateTracker()
        self._output_rate = diagnostics.RateTracker()
        self._latency = diagnostics.LatencyTracker()

        self._input_group = MutuallyExclusiveCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self._input: InputSubscription | None = None
        self._info_sub: Any = None
        self._pubs: dict[str, Any] = {}
        try:
            self._config = params.declare(self)
        except ConfigError:
            super().destroy_node()  # a refused node leaves nothing registered behind
            raise
        self._warn_unknown_overrides()
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
    def config(self) -> params.NodeConfig:
        """The parameters as frozen at start."""
        return self._config

    @property
    def start_error(self) -> str:
        """Why the last configure failed ("" if it did not)."""
        return self._start_error

    @property
    def active(self) -> bool:
        """True while the node consumes frames."""
        return self._active

    def destroy_node(self) -> None:
        """Stop the worker (shared memory released), then destroy the node."""
        self._deactivate()
        self._stop_worker()
        super().destroy_node()

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Start the worker and load the models; create the publishers."""
        try:
            self._start_worker()
        except AriaPerceptionError as err:
            self._start_error = str(err)
            self._logger.error(f"configure failed: {err}")
            self._stop_worker()
            return TransitionCallbackReturn.FAILURE
        self._start_error = ""
        self._create_publishers()
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
        self._active = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop consuming frames; the worker stays warm."""
        self._deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Stop the worker and free the GPU; destroy the publishers."""
        self._stop_worker()
        self._destroy_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Everything off, from any state."""
        self._deactivate()
        self._stop_worker()
        self._destroy_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release what a failed transition left behind; back to unconfigured."""
        self._deactivate()
        self._stop_worker()
        self._destroy_publishers()
        return TransitionCallbackReturn.SUCCESS

    def _deactivate(self) -> None:
        self._active = False
        if self._input is not None:
            self._input.destroy()
            self._input = None
        if self._info_sub is not None:
            self.destroy_subscription(self._info_sub)
            self._info_sub = None

    def _create_publishers(self) -> None:
        with self._publish_lock:
            self._pubs = {
                key: self.create_publisher(msg_type, OUTPUT_TOPICS[key], _OUTPUT_QOS)
                for key, msg_type in (
                    ("detections", Detection2DArray),
                    ("depth/raw", Image),
                    ("depth/normalized", Image),
                    ("detections/overlay", Image),
                    ("depth/camera_info", CameraInfo),
                )
            }

    def _destroy_publishers(self) -> None:
        with self._publish_lock:
            pubs, self._pubs = self._pubs, {}
        for pub in pubs.values():
            self.destroy_publisher(pub)

    # ------------------------------------------------------------------ worker

    def _start_worker(self) -> None:
        from aria_perception.worker.settings import WorkerSettings
        from aria_perception.worker.supervisor import Supervisor

        cfg = self._config
        engine_config = cfg.engine.replace(
            confidence=self._thresholds.confidence,
            iou=self._thresholds.iou,
            classes=self._thresholds.classes,
        )
        settings = WorkerSettings(
            max_pixels=cfg.max_pixels,
            max_encoded_bytes=cfg.max_encoded_bytes,
            startup_timeout_s=cfg.startup_timeout_s,
            frame_timeout_s=cfg.frame_timeout_s,
            max_restarts=cfg.max_restarts,
            restart_window_s=cfg.restart_window_s,
        )
        self._logger.info(
            f"starting the inference worker (device {engine_config.device}, precision "
            f"{engine_config.precision}); importing torch takes a while"
        )
        supervisor = Supervisor(
            engine_config, settings, on_result=self._on_result, on_error=self._on_worker_error
        )
        self._supervisor = supervisor
        info = supervisor.start()
        params.validate_classes(self._thresholds.classes, info.class_names)
        self._info = info
        self._class_names = tuple(info.class_names)
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

    def _stop_worker(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.stop()

    # ------------------------------------------------------------------ input

    def _on_image(self, msg: Image) -> None:
        received = time.monotonic()
        self._input_rate.tick(received)
        try:
            frame = image_to_frame(msg, self._config.max_pixels)
        except FrameError as err:
            self._reject(msg, err)
            return
        self._submit(frame.pixels, frame.encoding, _Pending(msg.header, received, frame, msg))

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
        self._submit(frame.data, frame.format, _Pending(msg.header, received, frame, msg))

    def _submit(self, pixels: Any, encoding: str, pending: _Pending) -> None:
        supervisor = self._supervisor
        if supervisor is None or not self._active:
            return
        try:
            supervisor.submit(pixels, encoding, pending, want_depth=self._depth_wanted())
        except FrameError as err:  # the supervisor counts it in its ``rejected``
            self._reject(pending.message, err, count=False)
        except AriaPerceptionError as err:
            self._logger.error(f"could not submit a frame: {err}", throttle_duration_sec=5.0)

    def _depth_wanted(self) -> bool:
        """Whether the dense map must come back (box depth is computed in the worker anyway)."""
        pubs = self._pubs
        return any(
            pub.get_subscription_count() > 0
            for name in ("depth/raw", "depth/normalized")
            if (pub := pubs.get(name)) is not None
        )

    def _reject(self, msg: Any, err: Exception, count: bool = True) -> None:
        if count:
            with self._counter_lock:
                self._rejected += 1
        if self._throttle.allow(str(err)):
            stamp = msg.header.stamp
            self._logger.warning(
                f"rejected frame {stamp.sec}.{stamp.nanosec:09d} ({msg.header.frame_id!r}): "
                f"{err} (rejected_frames counts them; this reason is logged every "
                f"{_LOG_PERIOD_S:g} s at most)"
            )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    # ------------------------------------------------------------------ results

    def _on_result(self, result: Any) -> None:
        """Publish one frame's outputs (supervisor result thread)."""
        started = time.monotonic()
        pending: _Pending = result.tag
        engine_result = result.result
        with self._publish_lock:
            pubs = self._pubs
            if not self._active or not pubs:
                return
            header = pending.header
            try:
                self._publish_outputs(pubs, pending, engine_result, header)
            except Exception as err:  # noqa: BLE001 - a bad result must not kill the thread
                self._logger.error(
                    f"publishing results failed: {type(err).__name__}: {err}",
                    throttle_duration_sec=5.0,
                )
                return
        done = time.monotonic()
        self._output_rate.tick(done)
        timing = result.timing
        # Before submit: the callback's validation; then the supervisor's own split.
        validate_ms = (started - pending.received) * 1e3 - timing.roundtrip_ms
        path = diagnostics.PathTimes(
            copy_in_ms=validate_ms + timing.copy_in_ms,
            queue_ms=timing.wait_ms,
            engine_ms=timing.engine_ms,
            transport_ms=timing.transport_ms - timing.copy_in_ms,
            publish_ms=(done - started) * 1e3,
        )
        self._latency.add((done - pending.received) * 1e3, engine_result.times, path)

    def _publish_outputs(self, pubs: dict, pending: _Pending, engine_result: Any, header: Any):
        frame = pending.frame
        depth = engine_result.depth
        pubs["detections"].publish(
            detections_to_msg(engine_result.detections, self._class_names, header)
        )
        if depth is not None:
            if pubs["depth/raw"].get_subscription_count() > 0:
                pubs["depth/raw"].publish(depth_to_image(depth, header))
            if pubs["depth/normalized"].get_subscription_count() > 0:
                pubs["depth/normalized"].publish(normalized_depth_to_image(depth, header))
        overlay = pubs["detections/overlay"]
        if overlay.get_subscription_count() > 0:
            if isinstance(frame, RawFrame):
                pixels, encoding = frame.pixels, frame.encoding
            else:
                pixels, encoding = decode_compressed_bgr(frame.data), "bgr8"
            if pixels is not None:
                overlay.publish(
                    overlay_image(
                        pixels, encoding, engine_result.detections, self._class_names, header
                    )
                )
        info_pub = pubs["depth/camera_info"]
        camera_info = self._camera_info
        if camera_info is not None and info_pub.get_subscription_count() > 0:
            size = (frame.width, frame.height)
            out_size = (depth.shape[1], depth.shape[0]) if depth is not None else size
            info_pub.publish(camera_info_for_output(camera_info, header, size, out_size))

    def _on_worker_error(self, frame_id: int, tag: Any, err: Exception) -> None:
        """A frame failed in the worker (supervisor thread): bad frames are counted there."""
        if isinstance(err, FrameError) and isinstance(tag, _Pending):
            self._reject(tag.message, err, count=False)
        elif self._throttle.allow(f"{type(err).__name__}: {err}"):
            what = "worker error" if frame_id < 0 else f"frame {frame_id} lost"
            self._logger.error(f"{what}: {type(err).__name__}: {err}")

    # ------------------------------------------------------------------ parameters

    def _on_set_parameters(self, parameters: list) -> Any:
        changes: dict[str, Any] = {}
        for param in parameters:
            spec = params.SPECS.get(param.name)
            if spec is None:
                continue  # use_sim_time and rclpy's own parameters
            try:
                changes[param.name] = params.validate(param.name, param.value)
            except ConfigError as err:
                return params.set_result(False, str(err))
        if not changes:
            return params.set_result(True)
        thresholds = Thresholds(
            confidence=changes.get("detector.confidence", self._thresholds.confidence),
            iou=changes.get("detector.iou", self._thresholds.iou),
            classes=changes.get("detector.classes", self._thresholds.classes),
        )
        if thresholds != self._thresholds:
            if self._class_names:
                try:
                    params.validate_classes(thresholds.classes, self._class_names)
                except ConfigError as err:
                    return params.set_result(False, str(err))
            supervisor = self._supervisor
            if supervisor is not None:
                try:
                    supervisor.set_thresholds(thresholds)
                except AriaPerceptionError as err:
                    return params.set_result(False, str(err))
            self._thresholds = thresholds
            self._logger.info(
                f"detector thresholds now confidence={thresholds.confidence:g} "
                f"iou={thresholds.iou:g} classes={list(thresholds.classes) or 'all'}"
            )
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
        snap = diagnostics.Snapshot(
            input_fps=self._input_rate.rate(),
            output_fps=self._output_rate.rate(),
            stages=self._latency.stage_medians(),
            path=self._latency.path_medians(),
            active=self._active,
            depth_frame_skip=self._config.engine.depth_frame_skip,
            device=self._config.engine.device,
            device_name="unknown",
            precision=self._config.engine.precision,
        )
        snap.latency_ms_p50, snap.latency_ms_p95, snap.latency_ms_p99 = self._latency.percentiles(
            50, 95, 99
        )
        with self._counter_lock:
            snap.rejected_frames = self._rejected
        if self._input is not None:
            snap.lost_samples = self._input.lost_samples
        info = self._info
        if info is not None:
            snap.device, snap.device_name = info.device, info.device_name
            snap.precision, snap.weights = info.precision, info.weights
        supervisor = self._supervisor
        if supervisor is not None:
            stats = supervisor.stats()
            state = WorkerState(stats.state)
            snap.worker_state = state.name
            snap.worker_down = state in _DOWN_STATES or (
                self._active and state != WorkerState.READY
            )
            snap.dropped_frames = int(stats.dropped)
            snap.rejected_frames += int(stats.rejected)
            snap.worker_restarts = int(stats.restarts)
            snap.gpu_mem_mb = float(stats.gpu_mem_mb)
            snap.gpu_mem_peak_mb = float(stats.gpu_mem_peak_mb)
            snap.last_error = str(stats.last_error or "")
        elif self._start_error:
            snap.worker_state = WorkerState.FAILED.name
            snap.worker_down = True
            snap.last_error = self._start_error
        return snap

    def _publish_diagnostics(self) -> None:
        snap = self.snapshot()
        self._log_worker_change(snap)
        status = diagnostics.build_status(
            snap, self.get_name(), self._expected_fps, self._latency_budget_ms
        )
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self._diag_pub.publish(msg)

    def _log_worker_change(self, snap: diagnostics.Snapshot) -> None:
        """Say in the log what diagnostics show: the worker went down or came back."""
        seen = (snap.worker_state, snap.worker_restarts)
        if seen == self._worker_seen:
            return
        previous, self._worker_seen = self._worker_seen, seen
        if snap.worker_down:
            self._logger.error(
                f"inference worker down ({snap.worker_state}, {snap.worker_restarts} restart(s)): "
                f"{snap.last_error or 'no error reported'}"
            )
        elif snap.worker_state == WorkerState.READY.name and previous[0] in _DOWN_NAMES:
            self._logger.warning(
                f"inference worker ready again after {snap.worker_restarts} restart(s)"
            )


def spin(nodes: list[Any]) -> None:
    """Spin ``nodes`` on one single-threaded executor until shutdown (Ctrl-C, SIGTERM).

    The executor only runs short callbacks (validate a frame and copy it into shared memory,
    diagnostics, parameter and lifecycle services): results are published from the worker
    supervisor's own thread. rclpy's MultiThreadedExecutor was measured at 100 % of a core on
    the GPU machine with 1408x1408 frames at 30 Hz, re-waking on a subscription whose callback
    group was busy, and starved the result thread (3 FPS out); the single-threaded executor
    has no such loop.
    """
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    finally:
        executor.shutdown()


def main(args: list[str] | None = None) -> int:
    """Console script ``perception_node``: one node, ``--ros-args`` as usual."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = PerceptionNode()
        if node.start_error:
            code = 1  # already logged; nothing to serve without a worker
        else:
            spin([node])
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigError as err:
        print(f"perception_node: invalid parameter: {err}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
