"""Node parameters (DESIGN 4): declarations with descriptors, validation, typed config.

Every parameter is declared once from :data:`PARAMETERS` with a description, its range and
``read_only`` where a change needs a restart of the worker. Validation is pure Python
(:func:`validate`) so it is shared by start-up (a :class:`ConfigError` naming the parameter and its
allowed values) and ``ros2 param set`` (a refused ``SetParametersResult`` with the same text).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aria_perception.errors import ConfigError
from aria_perception.records import EngineConfig, Thresholds
from aria_perception.worker.settings import DEFAULT_MAX_PIXELS, WorkerSettings

#: The worker's defaults are the defaults of the ``worker.*`` and ``input.max_pixels`` parameters.
_WORKER = WorkerSettings()
MAX_MAX_PIXELS = 8192 * 8192

INPUT_TRANSPORTS = ("raw", "compressed")
INPUT_QOS = ("auto", "sensor_data", "reliable", "best_effort")
PRECISIONS = ("auto", "fp16", "fp32")
#: Parameters that may change while the node runs (everything else is read-only).
RUNTIME_PARAMETERS = frozenset(
    {
        "detector.confidence",
        "detector.iou",
        "detector.classes",
        "diagnostics.expected_fps",
        "diagnostics.latency_budget_ms",
    }
)
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, meaning and allowed values.

    Attributes:
        name: the dotted parameter name.
        default: default value; its Python type is the parameter's type (``list`` = string array).
        description: shown by ``ros2 param describe``.
        choices: allowed values of a string parameter.
        low: lower bound (inclusive) of a number.
        high: upper bound (inclusive) of a number.
        step: an integer's step from ``low`` (0 = any).
        pattern: a regular expression a string must match (``device``).
        constraints: human text for ``ros2 param describe``.
    """

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    step: int = 0
    pattern: re.Pattern[str] | None = None
    constraints: str = ""

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


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "Configure and activate at start (false: wait for lifecycle)."),
    ParamSpec(
        "device",
        "auto",
        "Inference device: auto (cuda:0 if available, else cpu), cpu, cuda or cuda:N.",
        pattern=_DEVICE,
        constraints="'auto', 'cpu', 'cuda' or 'cuda:N'",
    ),
    ParamSpec("precision", "auto", "auto (fp16 on CUDA, fp32 on CPU), fp16 or fp32.", PRECISIONS),
    ParamSpec("depth.enabled", True, "Run MiDaS v2.1 small relative depth."),
    ParamSpec(
        "depth.weights",
        "",
        "MiDaS small checkpoint path; empty = midas_v21_small_256.pt in the torch hub cache.",
    ),
    ParamSpec(
        "depth.input_size", 256, "MiDaS input size (limiting side).", low=32, high=1024, step=32
    ),
    ParamSpec(
        "depth.frame_skip",
        1,
        "Run depth every Nth frame, reuse the last map between.",
        low=1,
        high=100,
        step=1,
    ),
    ParamSpec("detector.enabled", True, "Run the YOLO detector."),
    ParamSpec("detector.weights", "yolov8n.pt", "Ultralytics detection checkpoint (or *.yaml)."),
    ParamSpec("detector.image_size", 640, "YOLO letterbox size.", low=32, high=2048, step=32),
    ParamSpec("detector.confidence", 0.25, "Minimum detection score.", low=0.0, high=1.0),
    ParamSpec("detector.iou", 0.45, "NMS IoU threshold.", low=0.0, high=1.0),
    ParamSpec(
        "detector.max_detections", 100, "Most detections per frame.", low=1, high=1000, step=1
    ),
    ParamSpec(
        "detector.classes",
        [],
        "Class names to keep (e.g. ['person', 'chair']); empty = all classes.",
        constraints="a list of the detector's class names",
    ),
    ParamSpec(
        "allow_random_weights",
        False,
        "Randomly initialise a network whose weights are missing (tests, demos, benchmarks).",
    ),
    ParamSpec(
        "input.transport",
        "raw",
        "raw: sensor_msgs/Image on 'image'; compressed: CompressedImage on 'image/compressed'.",
        INPUT_TRANSPORTS,
    ),
    ParamSpec(
        "input.qos",
        "auto",
        "Input QoS: auto (best available, re-matched to publishers), sensor_data, reliable, "
        "best_effort.",
        INPUT_QOS,
    ),
    ParamSpec(
        "input.rotation",
        0,
        "Rotate frames clockwise before inference (Aria RGB: 90); outputs stay in received "
        "pixels.",
        low=0,
        high=270,
        step=90,
        constraints="0, 90, 180 or 270",
    ),
    ParamSpec(
        "input.max_pixels",
        DEFAULT_MAX_PIXELS,
        "Refuse frames with more pixels (sizes the shared-memory slots).",
        low=1,
        high=MAX_MAX_PIXELS,
        step=1,
    ),
    ParamSpec("worker.parallel_streams", True, "Run depth and detection on two CUDA streams."),
    ParamSpec("worker.cuda_graphs", True, "Capture CUDA graphs per input shape."),
    ParamSpec(
        "worker.startup_timeout_s",
        _WORKER.startup_timeout_s,
        "Seconds the worker may take to import torch and build the models.",
        low=1.0,
        high=3600.0,
    ),
    ParamSpec(
        "worker.frame_timeout_s",
        _WORKER.frame_timeout_s,
        "A worker that does not answer a frame within this is killed and restarted.",
        low=0.1,
        high=600.0,
    ),
    ParamSpec(
        "worker.max_restarts",
        _WORKER.max_restarts,
        "Restarts allowed within worker.restart_window_s before the worker is left failed.",
        low=0,
        high=1000,
        step=1,
    ),
    ParamSpec(
        "worker.restart_window_s",
        _WORKER.restart_window_s,
        "Window for worker.max_restarts.",
        low=1.0,
        high=86400.0,
    ),
    ParamSpec("diagnostics.period_s", 1.0, "Diagnostics publish period.", low=0.05, high=60.0),
    ParamSpec(
        "diagnostics.expected_fps",
        30.0,
        "WARN when the output rate is below this (0 = no check).",
        low=0.0,
        high=1000.0,
    ),
    ParamSpec(
        "diagnostics.latency_budget_ms",
        30.0,
        "WARN when p95 latency (received -> published) exceeds this (0 = no check).",
        low=0.0,
        high=60000.0,
    ),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def validate(name: str, value: Any) -> Any:
    """Check one parameter value and return it normalised (tuple for the class list).

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


def validate_classes(classes: Sequence[str], class_names: Sequence[str]) -> None:
    """Check that every name of ``detector.classes`` is a class of the loaded detector.

    Raises:
        ConfigError: naming the unknown classes and a few valid ones.
    """
    unknown = [c for c in classes if c not in set(class_names)]
    if unknown:
        sample = ", ".join(list(class_names)[:8]) + (", ..." if len(class_names) > 8 else "")
        raise ConfigError(
            f"detector.classes has unknown class name(s) {unknown}; the detector knows "
            f"{len(class_names)} classes: {sample}"
        )


@dataclass(frozen=True)
class NodeConfig:
    """The node's parameters frozen into types (read once at start; thresholds tracked live).

    Attributes:
        engine: what the worker builds (device, models, thresholds, rotation, streams, graphs).
        autostart: configure and activate at construction.
        transport: ``raw`` or ``compressed`` input.
        qos: input QoS policy name (:data:`INPUT_QOS`).
        max_pixels: largest accepted frame in pixels.
        startup_timeout_s: worker start-up limit.
        frame_timeout_s: worker per-frame limit.
        max_restarts: worker restarts allowed within ``restart_window_s``.
        restart_window_s: window of ``max_restarts``.
        diagnostics_period_s: diagnostics timer period.
        expected_fps: WARN below this output rate (0 = off).
        latency_budget_ms: WARN above this p95 latency (0 = off).
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    autostart: bool = True
    transport: str = "raw"
    qos: str = "auto"
    max_pixels: int = DEFAULT_MAX_PIXELS
    startup_timeout_s: float = _WORKER.startup_timeout_s
    frame_timeout_s: float = _WORKER.frame_timeout_s
    max_restarts: int = _WORKER.max_restarts
    restart_window_s: float = _WORKER.restart_window_s
    diagnostics_period_s: float = 1.0
    expected_fps: float = 30.0
    latency_budget_ms: float = 30.0

    @property
    def thresholds(self) -> Thresholds:
        """The run-time changeable detector settings."""
        return Thresholds(self.engine.confidence, self.engine.iou, self.engine.classes)

    @property
    def max_encoded_bytes(self) -> int:
        """Capacity for one compressed frame: the raw bgra8 slot (a PNG is never much bigger)."""
        return self.max_pixels * 4

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeConfig:
        """Validate parameter values (name -> value; missing = default) and freeze them.

        Raises:
            ConfigError: the first invalid value, naming the parameter and the allowed range.
        """
        unknown = set(values) - set(SPECS)
        if unknown:
            raise ConfigError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        v = {name: validate(name, values.get(name, spec.default)) for name, spec in SPECS.items()}
        engine = EngineConfig(
            device=v["device"],
            precision=v["precision"],
            depth_enabled=v["depth.enabled"],
            depth_weights=v["depth.weights"],
            depth_input_size=v["depth.input_size"],
            depth_frame_skip=v["depth.frame_skip"],
            detector_enabled=v["detector.enabled"],
            detector_weights=v["detector.weights"],
            detector_image_size=v["detector.image_size"],
            confidence=v["detector.confidence"],
            iou=v["detector.iou"],
            max_detections=v["detector.max_detections"],
            classes=v["detector.classes"],
            allow_random_weights=v["allow_random_weights"],
            rotation=v["input.rotation"],
            parallel_streams=v["worker.parallel_streams"],
            cuda_graphs=v["worker.cuda_graphs"],
        )
        if not engine.depth_enabled and not engine.detector_enabled:
            raise ConfigError("depth.enabled and detector.enabled are both false: nothing to do")
        return cls(
            engine=engine,
            autostart=v["autostart"],
            transport=v["input.transport"],
            qos=v["input.qos"],
            max_pixels=v["input.max_pixels"],
            startup_timeout_s=v["worker.startup_timeout_s"],
            frame_timeout_s=v["worker.frame_timeout_s"],
            max_restarts=v["worker.max_restarts"],
            restart_window_s=v["worker.restart_window_s"],
            diagnostics_period_s=v["diagnostics.period_s"],
            expected_fps=v["diagnostics.expected_fps"],
            latency_budget_ms=v["diagnostics.latency_budget_ms"],
        )


def descriptor(spec: ParamSpec) -> Any:
    """The ``rcl_interfaces/ParameterDescriptor`` of ``spec`` (ranges, read-only, type)."""
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    desc = ParameterDescriptor(
        description=spec.description,
        read_only=spec.read_only,
        additional_constraints=(
            f"{spec.allowed()}" + ("" if spec.read_only else " (changeable at run time)")
        ),
    )
    default = spec.default
    if isinstance(default, list):
        # rclpy infers BYTE_ARRAY from an empty list (rclpy#912) and YAML `[]` arrives untyped:
        # declare it dynamically typed and check the type ourselves in validate().
        desc.type = ParameterType.PARAMETER_STRING_ARRAY
        desc.dynamic_typing = True
    elif isinstance(default, bool) or isinstance(default, str):
        pass
    elif isinstance(default, int):
        assert spec.low is not None and spec.high is not None
        desc.integer_range = [
            IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=spec.step)
        ]
    elif isinstance(default, float):
        assert spec.low is not None and spec.high is not None
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    return desc


def declare(node: Any) -> NodeConfig:
    """Declare every parameter on ``node`` and return the validated config.

    Raises:
        ConfigError: a value given at start (YAML, ``-p``, overrides) is invalid.
    """
    from rclpy.exceptions import (
        InvalidParameterTypeException,
        InvalidParameterValueException,
    )

    values: dict[str, Any] = {}
    for spec in PARAMETERS:
        try:
            param = node.declare_parameter(spec.name, spec.default, descriptor(spec))
        except InvalidParameterTypeException as err:
            raise ConfigError(
                f"{spec.name} must be {spec.allowed()} of type {type(spec.default).__name__}: "
                f"{err}"
            ) from err
        except InvalidParameterValueException as err:
            raise ConfigError(f"{spec.name} must be {spec.allowed()}: {err}") from err
        values[spec.name] = param.value
    return NodeConfig.from_values(values)


def set_result(successful: bool, reason: str = "") -> Any:
    """A ``rcl_interfaces/SetParametersResult``."""
    from rcl_interfaces.msg import SetParametersResult

    return SetParametersResult(successful=successful, reason=reason)


# Parameters rclpy or the middleware declare themselves; never reported as unknown.
_FOREIGN_PREFIXES = ("qos_overrides.", "use_sim_time", "start_type_description_service")


def unknown_overrides(node: Any) -> list[str]:
    """Names given to ``node`` at start (YAML, ``-p``) that no parameter of ours has: typos.

    rclpy ignores such overrides silently; the node warns about them instead.
    """
    overrides = getattr(node, "_parameter_overrides", None) or {}
    return sorted(
        name for name in overrides if name not in SPECS and not name.startswith(_FOREIGN_PREFIXES)
    )
