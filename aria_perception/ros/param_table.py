"""The node's parameter table: names, descriptions and allowed values; pure Python validation.

Every parameter is one :class:`ParamSpec` in :data:`PARAMETERS`: its dotted name, the
:class:`~aria_perception.ros.node_config.NodeConfig` field it sets (``engine.<field>`` for an
:class:`~aria_perception.records.EngineConfig` field) and the ROS-facing range shown by
``ros2 param describe``. Defaults are never written here: each is read from that field of
``NodeConfig()``. :func:`validate` is shared by start-up (a ConfigError naming the parameter
and its allowed values) and ``ros2 param set`` (a refused result with the same text).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aria_perception.errors import ConfigError
from aria_perception.records import (
    COMPILE_MODES,
    MAX_FRAME_PIXELS,
    PRECISIONS,
    ROTATIONS,
    EngineConfig,
    validate_engine_config,
)
from aria_perception.ros.node_config import NodeConfig
from aria_perception.tracking.tracker_config import NO_TRACKER, shipped_trackers

__all__ = [
    "INPUT_QOS",
    "INPUT_TRANSPORTS",
    "PARAMETERS",
    "RUNTIME_PARAMETERS",
    "SPECS",
    "ParamSpec",
    "config_from_values",
    "validate",
]

INPUT_TRANSPORTS = ("raw", "compressed")
INPUT_QOS = ("auto", "sensor_data", "reliable", "best_effort")
#: Parameters that may change while the node runs (everything else is read-only).
RUNTIME_PARAMETERS = frozenset(
    {
        "detector.confidence",
        "detector.iou",
        "detector.classes",
        "diagnostics.expected_fps",
        "diagnostics.latency_budget_ms",
        "tracker.type",
        "tracker.config",
    }
)
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_ENGINE_PREFIX = "engine."
_DEFAULTS = NodeConfig()


def _default(config_field: str) -> Any:
    """The default of a NodeConfig field (a list for a tuple: ROS's string array)."""
    value: Any = _DEFAULTS
    for part in config_field.split("."):
        value = getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, target field, meaning and allowed values.

    Attributes:
        name: the dotted parameter name.
        field: the :class:`NodeConfig` field it sets; ``engine.<name>`` for the engine's.
        description: shown by ``ros2 param describe``.
        choices: allowed values of a string parameter.
        low: lower bound (inclusive) of a number.
        high: upper bound (inclusive) of a number.
        step: an integer's step from ``low`` (0 = any).
        pattern: a regular expression a string must match (``device``).
        constraints: human text for ``ros2 param describe``.
        default: the field's default; its Python type is the parameter's type (``list`` =
            string array).
    """

    name: str
    field: str
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    step: int = 0
    pattern: re.Pattern[str] | None = None
    constraints: str = ""
    default: Any = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "default", _default(self.field))

    @property
    def read_only(self) -> bool:
        """True when a change needs a worker restart (set it in the YAML instead)."""
        return self.name not in RUNTIME_PARAMETERS

    def allowed(self) -> str:
        """The allowed values in words, for error messages."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.constraints:
            return self.constraints
        if self.low is not None and self.high is not None:
            text = f"between {_num(self.low)} and {_num(self.high)}"
            if self.step > 1:
                text += f" in steps of {self.step} from {_num(self.low)}"
            return text
        return f"a {type(self.default).__name__}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_P = ParamSpec
PARAMETERS: tuple[ParamSpec, ...] = (
    _P("autostart", "autostart", "Configure and activate at start (false: wait for lifecycle)."),
    _P("device", "engine.device",
       "Inference device: auto (cuda:0 if available, else cpu), cpu, cuda or cuda:N.",
       pattern=_DEVICE, constraints="'auto', 'cpu', 'cuda' or 'cuda:N'"),
    _P("precision", "engine.precision", "auto (fp16 on CUDA, fp32 on CPU), fp16 or fp32.",
       PRECISIONS),
    _P("depth.enabled", "engine.depth_enabled", "Run MiDaS v2.1 small relative depth."),
    _P("depth.weights", "engine.depth_weights",
       "MiDaS small checkpoint path; empty = midas_v21_small_256.pt in the torch hub cache."),
    _P("depth.input_size", "engine.depth_input_size", "MiDaS input size (limiting side).",
       low=32, high=1024, step=32),
    _P("depth.frame_skip", "engine.depth_frame_skip",
       "Run depth every Nth frame, reuse the last map between.", low=1, high=100, step=1),
    _P("detector.enabled", "engine.detector_enabled", "Run the YOLO detector."),
    _P("detector.weights", "engine.detector_weights",
       "Ultralytics detection checkpoint (or *.yaml); a bare file name is looked up in the "
       "models directory only, never in the working directory."),
    _P("detector.trust_pickle", "engine.detector_trust_pickle",
       "Load a detector checkpoint that needs arbitrary code to unpickle (it runs as the "
       "node's user): only for a file you trust. False: torch.load(weights_only=True) with the "
       "Ultralytics layer classes allowed."),
    _P("detector.image_size", "engine.detector_image_size", "YOLO letterbox size.",
       low=32, high=2048, step=32),
    _P("detector.confidence", "engine.confidence", "Minimum detection score.", low=0.0, high=1.0),
    _P("detector.iou", "engine.iou", "NMS IoU threshold.", low=0.0, high=1.0),
    _P("detector.max_detections", "engine.max_detections", "Most detections per frame.",
       low=1, high=1000, step=1),
    _P("detector.classes", "engine.classes",
       "Class names to keep (e.g. ['person', 'chair']); empty = all classes.",
       constraints="a list of the detector's class names"),
    _P("allow_random_weights", "engine.allow_random_weights",
       "Randomly initialise a network whose weights are missing (tests, demos, benchmarks)."),
    _P("input.transport", "transport",
       "raw: sensor_msgs/Image on 'image'; compressed: CompressedImage on 'image/compressed'.",
       INPUT_TRANSPORTS),
    _P("input.raw_intake", "raw_intake",
       "Take sensor_msgs/Image frames serialized and read their fields in place, the pixels "
       "copied once, into shared memory; false: rclpy deserialises each frame into a message."),
    _P("input.qos", "qos",
       "Input QoS: auto (best available, re-matched to publishers), sensor_data, reliable, "
       "best_effort.", INPUT_QOS),
    _P("input.rotation", "engine.rotation",
       "Rotate frames clockwise before inference (Aria RGB: 90); outputs stay in received "
       "pixels.", low=ROTATIONS[0], high=ROTATIONS[-1], step=ROTATIONS[1] - ROTATIONS[0],
       constraints=", ".join(map(str, ROTATIONS[:-1])) + f" or {ROTATIONS[-1]}"),
    _P("input.rectify", "engine.rectify",
       "Resample each frame through its camera_info calibration (plumb_bob, "
       "rational_polynomial, equidistant, fisheye624) into the upright pinhole camera of "
       "rectify.*, on the GPU; input.rotation is applied by the same sample and every output is "
       "in the rectified image. Frames are refused until a valid camera_info arrives."),
    _P("rectify.width", "engine.rectify_width",
       "Rectified image width before input.rotation (Aria RGB: 1024).", low=32, high=4096,
       step=1),
    _P("rectify.height", "engine.rectify_height",
       "Rectified image height before input.rotation (Aria RGB: 1024).", low=32, high=4096,
       step=1),
    _P("rectify.focal_px", "engine.rectify_focal_px",
       "Focal length of the rectified pinhole in pixels, principal point at the image centre. "
       "Aria RGB: 500 at 1024x1024 spans 91 degrees across and 111 on the diagonal, inside the "
       "110-degree fisheye's image circle; smaller sees more, with black corners.",
       low=1.0, high=100000.0),
    _P("input.max_pixels", "max_pixels",
       "Refuse frames with more pixels (sizes the shared-memory slots).",
       low=1, high=MAX_FRAME_PIXELS, step=1),
    _P("worker.parallel_streams", "engine.parallel_streams",
       "Run depth and detection on two CUDA streams."),
    _P("worker.cuda_graphs", "engine.cuda_graphs", "Capture CUDA graphs per input shape."),
    _P("worker.compile", "engine.compile",
       "torch.compile both networks (inductor) before graph capture: auto (on CUDA), on, off. "
       "The first frame of each size compiles (up to a minute; cached on disk for later "
       "starts); a failed compile falls back to the uncompiled networks with a warning.",
       COMPILE_MODES),
    _P("worker.compile_cache_dir", "engine.compile_cache_dir",
       "Directory of the compiled kernels (empty: ~/.cache/aria_perception/inductor)."),
    _P("worker.batch_cameras", "engine.batch_cameras",
       "Nodes sharing a worker: frames of several cameras waiting together go through the "
       "networks as one batch, per network input size (cameras with different detector "
       "thresholds run one after another). Each batch size compiles once with worker.compile."),
    _P("worker.startup_timeout_s", "startup_timeout_s",
       "Seconds the worker may take to import torch and build the models.",
       low=1.0, high=3600.0),
    _P("worker.frame_timeout_s", "frame_timeout_s",
       "A worker that does not answer a frame within this is killed and restarted.",
       low=0.1, high=600.0),
    _P("worker.max_restarts", "max_restarts",
       "Restarts allowed within worker.restart_window_s; one more failure stops the worker "
       "for worker.failed_cooldown_s.",
       low=0, high=1000, step=1),
    _P("worker.restart_window_s", "restart_window_s", "Window for worker.max_restarts.",
       low=1.0, high=86400.0),
    _P("worker.failed_cooldown_s", "failed_cooldown_s",
       "After giving up on a failing worker, wait this long, then start it again.",
       low=0.1, high=86400.0),
    _P("diagnostics.period_s", "diagnostics_period_s", "Diagnostics publish period.",
       low=0.05, high=60.0),
    _P("diagnostics.expected_fps", "expected_fps",
       "WARN when the output rate is below this (0 = no check).", low=0.0, high=1000.0),
    _P("diagnostics.latency_budget_ms", "latency_budget_ms",
       "WARN when p95 latency (received -> published) exceeds this (0 = no check).",
       low=0.0, high=60000.0),
    _P("tracker.type", "tracker_type",
       "Track IDs in Detection2D.id: none, or a tracker Ultralytics ships (a change resets "
       "the tracks).", (NO_TRACKER, *shipped_trackers())),
    _P("tracker.config", "tracker_config",
       "Tracker YAML whose keys override the shipped settings of tracker.type; empty = the "
       "shipped settings."),
)  # fmt: skip

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def validate(name: str, value: Any) -> Any:
    """Check one parameter value and return it normalised (tuple for the class list).

    An integer is accepted for a floating-point parameter (``worker.restart_window_s:=300``).

    Raises:
        ConfigError: the value is of the wrong type or out of range; the message names the
            parameter and what is allowed.
    """
    spec = SPECS.get(name)
    if spec is None:
        raise ConfigError(f"unknown parameter {name!r}")
    default = spec.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, list):
        if value is None or (isinstance(value, (bytes, bytearray)) and len(value) == 0):
            return ()  # YAML `[]` and an empty byte array both mean "no filter"
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be {spec.allowed()}, got {value!r}")
        names = tuple(v.strip() for v in value)
        if any(not v for v in names):
            raise ConfigError(f"{name} must not contain empty class names, got {list(value)!r}")
        return names
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, {spec.allowed()}; got {value!r}")
        if spec.choices and value not in spec.choices:
            raise ConfigError(f"{name} must be {spec.allowed()}, got {value!r}")
        if spec.pattern is not None and not spec.pattern.match(value):
            raise ConfigError(f"{name} must be {spec.allowed()}, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer {spec.allowed()}, got {value!r}")
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number {spec.allowed()}, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number {spec.allowed()}, got {value!r}")
    assert spec.low is not None and spec.high is not None
    if not spec.low <= value <= spec.high or (
        spec.step > 1 and (value - spec.low) % spec.step != 0
    ):
        raise ConfigError(f"{name} must be {spec.allowed()}, got {value!r}")
    return value


def config_from_values(values: Mapping[str, Any]) -> NodeConfig:
    """Validate parameter values (name -> value; missing = default) and freeze them.

    Raises:
        ConfigError: an unknown name, or the first invalid value, naming the parameter and the
            allowed range.
    """
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ConfigError(f"unknown parameter(s): {', '.join(unknown)}")
    engine: dict[str, Any] = {}
    node: dict[str, Any] = {}
    for spec in PARAMETERS:
        value = validate(spec.name, values.get(spec.name, spec.default))
        if spec.field.startswith(_ENGINE_PREFIX):
            engine[spec.field.removeprefix(_ENGINE_PREFIX)] = value
        else:
            node[spec.field] = value
    config = NodeConfig(engine=EngineConfig(**engine), **node)
    validate_engine_config(config.engine)  # the rules across parameters ("nothing enabled")
    rect_pixels = config.engine.rectify_width * config.engine.rectify_height
    if config.engine.rectify and rect_pixels > config.max_pixels:
        raise ConfigError(
            f"rectify.width x rectify.height = {rect_pixels} pixels is over input.max_pixels="
            f"{config.max_pixels} (the output slots hold the rectified depth map)"
        )
    return config
