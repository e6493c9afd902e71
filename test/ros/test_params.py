"""Parameters: defaults, descriptors, start-up refusal and run-time changes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter

from aria_perception.errors import ConfigError
from aria_perception.records import EngineConfig, Thresholds
from aria_perception.ros import param_table, params
from aria_perception.ros.node_config import NodeConfig
from aria_perception.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_engine_configs_and_the_node_configs() -> None:
    cfg = param_table.config_from_values({})
    assert cfg == NodeConfig()
    assert cfg.engine == EngineConfig()
    assert cfg.engine.device == "auto" and cfg.engine.precision == "auto"
    assert (cfg.engine.confidence, cfg.engine.iou, cfg.engine.classes) == (0.25, 0.45, ())
    assert cfg.engine.detector_weights == "yolov8n.pt" and cfg.engine.depth_input_size == 256
    assert (cfg.transport, cfg.qos, cfg.engine.rotation) == ("raw", "auto", 0)
    assert (cfg.diagnostics_period_s, cfg.expected_fps, cfg.latency_budget_ms) == (1.0, 30.0, 30.0)
    assert cfg.autostart is True
    assert cfg.max_pixels == 1408 * 1408 * 2
    assert cfg.thresholds == Thresholds(0.25, 0.45, ())


def test_worker_defaults_come_from_the_worker_settings() -> None:
    names = (
        "max_pixels",
        "startup_timeout_s",
        "frame_timeout_s",
        "max_restarts",
        "restart_window_s",
    )
    expected = tuple(getattr(WorkerSettings(), n) for n in names)
    assert expected == (1408 * 1408 * 2, 120.0, 5.0, 5, 60.0)
    for cfg in (NodeConfig(), param_table.config_from_values({})):
        assert tuple(getattr(cfg, n) for n in names) == expected
    assert type(param_table.SPECS["worker.max_restarts"].default) is int
    assert type(param_table.SPECS["worker.frame_timeout_s"].default) is float


def test_the_worker_settings_are_the_node_configs_worker_parameters() -> None:
    cfg = param_table.config_from_values(
        {
            "input.max_pixels": 640 * 480,
            "worker.startup_timeout_s": 30.0,
            "worker.frame_timeout_s": 2.5,
            "worker.max_restarts": 3,
            "worker.restart_window_s": 120.0,
            "worker.failed_cooldown_s": 7.0,
        }
    )
    settings = cfg.worker_settings()
    assert (settings.max_pixels, settings.max_encoded_bytes) == (640 * 480, 640 * 480 * 4)
    assert (settings.startup_timeout_s, settings.frame_timeout_s) == (30.0, 2.5)
    assert (settings.max_restarts, settings.restart_window_s) == (3, 120.0)
    assert settings.failed_cooldown_s == 7.0
    # What the node has no parameter for keeps the worker's default.
    default = WorkerSettings()
    assert settings.heartbeat_timeout_s == default.heartbeat_timeout_s
    assert settings.engine_factory == default.engine_factory


def test_every_default_is_read_from_the_config_classes() -> None:
    """The table types no default: each one is its NodeConfig / EngineConfig field's."""
    node, engine = NodeConfig(), EngineConfig()
    for spec in param_table.PARAMETERS:
        group, _, name = spec.field.rpartition(".")
        expected = getattr(engine if group == "engine" else node, name)
        assert spec.default == (list(expected) if isinstance(expected, tuple) else expected)
    fields = {s.field for s in param_table.PARAMETERS}
    assert {f"engine.{f}" for f in EngineConfig.__dataclass_fields__} <= fields
    assert set(NodeConfig.__dataclass_fields__) - {"engine"} <= fields


def test_an_integer_is_taken_for_a_floating_point_parameter() -> None:
    cfg = param_table.config_from_values({"worker.restart_window_s": 300, "detector.iou": 1})
    assert cfg.restart_window_s == 300.0 and type(cfg.restart_window_s) is float
    assert cfg.engine.iou == 1.0 and type(cfg.engine.iou) is float


def test_values_are_frozen_into_the_engine_config() -> None:
    cfg = param_table.config_from_values(
        {
            "device": "cuda:1",
            "precision": "fp32",
            "depth.frame_skip": 3,
            "detector.classes": ["person", "chair"],
            "input.rotation": 90,
            "worker.cuda_graphs": False,
            "allow_random_weights": True,
        }
    )
    assert cfg.engine.device == "cuda:1" and cfg.engine.precision == "fp32"
    assert cfg.engine.depth_frame_skip == 3 and cfg.engine.rotation == 90
    assert cfg.engine.classes == ("person", "chair")
    assert cfg.engine.cuda_graphs is False and cfg.engine.allow_random_weights is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("detector.confidence", 1.5, "detector.confidence must be between 0 and 1, got 1.5"),
        ("detector.iou", -0.1, "detector.iou must be between 0 and 1"),
        ("detector.confidence", math.nan, "detector.confidence must be a finite number"),
        ("detector.confidence", "high", "detector.confidence must be a number"),
        ("input.rotation", 45, "input.rotation must be 0, 90, 180 or 270, got 45"),
        ("input.rotation", 360, "input.rotation must be 0, 90, 180 or 270"),
        ("depth.input_size", 250, "between 32 and 1024 in steps of 32 from 32, got 250"),
        ("depth.frame_skip", 0, "depth.frame_skip must be between 1 and 100, got 0"),
        ("input.qos", "fast", "input.qos must be one of 'auto', 'sensor_data', 'reliable'"),
        ("input.transport", "theora", "input.transport must be one of 'raw', 'compressed'"),
        ("precision", "int8", "precision must be one of 'auto', 'fp16', 'fp32'"),
        ("device", "gpu0", "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu0'"),
        ("input.max_pixels", 0, "input.max_pixels must be between 1 and 67108864"),
        ("worker.frame_timeout_s", 0.0, "worker.frame_timeout_s must be between 0.1 and 600"),
        ("detector.classes", ["person", 3], "detector.classes must be a list of the detector"),
        ("detector.classes", ["person", " "], "must not contain empty class names"),
        ("depth.enabled", "yes", "depth.enabled must be true or false"),
        ("detector.max_detections", True, "detector.max_detections must be an integer"),
    ],
)
def test_invalid_values_name_the_parameter_and_range(name: str, value: object, message: str):
    with pytest.raises(ConfigError) as err:
        param_table.config_from_values({name: value})
    assert message in str(err.value)


def test_trust_pickle_is_off_by_default_read_only_and_reaches_the_engine() -> None:
    spec = param_table.SPECS["detector.trust_pickle"]
    assert spec.default is False and spec.read_only
    assert "arbitrary code" in spec.description
    cfg = param_table.config_from_values({"detector.trust_pickle": True})
    assert cfg.engine.detector_trust_pickle is True
    with pytest.raises(ConfigError, match="detector.trust_pickle must be true or false"):
        param_table.config_from_values({"detector.trust_pickle": "yes"})


def test_nothing_enabled_and_unknown_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="both false"):
        param_table.config_from_values({"depth.enabled": False, "detector.enabled": False})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\): detector.confidense$"):
        param_table.config_from_values({"detector.confidense": 0.3})


def test_class_names_are_checked_against_the_model() -> None:
    # The one rule of detector.classes (the node, the worker and the engine all use it).
    Thresholds(0.5, 0.5, ("person",)).check_classes(("person", "car"))
    with pytest.raises(ConfigError, match=r"unknown class name\(s\) \['unicorn'\]"):
        Thresholds(0.5, 0.5, ("person", "unicorn")).check_classes(("person", "car"))


def test_descriptors() -> None:
    desc = params.descriptor(param_table.SPECS["detector.confidence"])
    assert not desc.read_only
    [rng] = desc.floating_point_range
    assert (rng.from_value, rng.to_value) == (0.0, 1.0)
    desc = params.descriptor(param_table.SPECS["input.rotation"])
    assert desc.read_only
    [rng] = desc.integer_range
    assert (rng.from_value, rng.to_value, rng.step) == (0, 270, 90)
    desc = params.descriptor(param_table.SPECS["detector.classes"])
    assert desc.type == ParameterType.PARAMETER_STRING_ARRAY and not desc.read_only
    runtime = {s.name for s in param_table.PARAMETERS if not s.read_only}
    assert runtime == param_table.RUNTIME_PARAMETERS


def test_config_yaml_holds_every_parameter_with_its_default() -> None:
    doc = yaml.safe_load((ROOT / "config" / "central.yaml").read_text())
    [(key, body)] = doc.items()
    assert key in ("/**", "central_perception", "/**/central_perception")
    values = body["ros__parameters"]
    flat: dict[str, object] = {}

    def walk(prefix: str, node: dict) -> None:
        for k, v in node.items():
            name = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(name + ".", v)
            else:
                flat[name] = v

    walk("", values)
    assert set(flat) == set(param_table.SPECS)
    for name, spec in param_table.SPECS.items():
        assert flat[name] == spec.default, name
        assert type(flat[name]) is type(spec.default), f"{name}: YAML type must match"


# ----------------------------------------------------------------------------- real rclpy


def _node(ros_context: object, **overrides: object):
    from aria_perception.ros.node import PerceptionNode

    values = {"autostart": False, **overrides}
    return PerceptionNode(
        "params_test",
        context=ros_context,
        parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
        use_global_arguments=False,
    )


def test_node_declares_everything_with_descriptors(ros_context: object) -> None:
    node = _node(ros_context, **{"detector.confidence": 0.6, "input.rotation": 90})
    try:
        assert node.config.engine.confidence == 0.6 and node.config.engine.rotation == 90
        for spec in param_table.PARAMETERS:
            assert node.has_parameter(spec.name), spec.name
            [desc] = node.describe_parameters([spec.name])
            assert desc.read_only == spec.read_only, spec.name
            assert desc.description
        assert node.get_parameter("detector.classes").value in ([], None)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("detector.confidence", 2.0, "detector.confidence must be between 0 and 1"),
        ("input.rotation", 45, "input.rotation must be 0, 90, 180 or 270"),
        ("input.qos", "fast", "input.qos must be one of"),
        ("diagnostics.expected_fps", 2000, "diagnostics.expected_fps must be between 0 and"),
        ("worker.max_restarts", 2.0, "worker.max_restarts must be between 0 and 1000 of type"),
    ],
)
def test_node_refuses_bad_values_at_start(ros_context, name, value, message) -> None:
    with pytest.raises(ConfigError) as err:
        _node(ros_context, **{name: value})
    assert message in str(err.value)


def test_node_takes_an_integer_for_a_floating_point_parameter(ros_context: object) -> None:
    """`worker.restart_window_s:=300` at start, `ros2 param set ... 1` at run time."""
    node = _node(ros_context, **{"worker.restart_window_s": 300, "diagnostics.expected_fps": 30})
    try:
        assert node.config.restart_window_s == 300.0 and node.config.expected_fps == 30.0
        assert node.get_parameter("worker.restart_window_s").value == 300.0
        assert type(node.get_parameter("diagnostics.expected_fps").value) is float
        if not hasattr(node, "add_pre_set_parameters_callback"):
            pytest.skip("this rclpy (Humble) has no pre-set callbacks: run time unchanged")
        [res] = node.set_parameters([Parameter("detector.confidence", value=1)])
        assert res.successful, res.reason
        assert node.get_parameter("detector.confidence").value == 1.0
    finally:
        node.destroy_node()


def test_a_change_of_an_undeclared_parameter_names_it(ros_context: object) -> None:
    from rclpy.exceptions import ParameterNotDeclaredException

    node = _node(ros_context)
    try:
        if not hasattr(node, "add_pre_set_parameters_callback"):
            pytest.skip("this rclpy (Humble) has no pre-set callbacks")
        with pytest.raises(ParameterNotDeclaredException, match=r"\['detector.confidense'\]"):
            node.set_parameters([Parameter("detector.confidense", value=0.3)])
    finally:
        node.destroy_node()


def test_yaml_params_file_with_empty_class_list(ros_context, tmp_path: Path) -> None:
    from aria_perception.ros.node import PerceptionNode

    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    autostart: false\n    detector:\n      classes: []\n"
        "      confidence: 0.4\n"
    )
    node = PerceptionNode(
        "yaml_test",
        context=ros_context,
        cli_args=["--ros-args", "--params-file", str(path)],
        use_global_arguments=False,
    )
    try:
        assert node.config.engine.classes == ()
        assert node.config.engine.confidence == 0.4
    finally:
        node.destroy_node()
    path.write_text(
        "/**:\n  ros__parameters:\n    autostart: false\n    detector:\n"
        "      classes: [person, chair]\n"
    )
    node = PerceptionNode(
        "yaml_test2",
        context=ros_context,
        cli_args=["--ros-args", "--params-file", str(path)],
        use_global_arguments=False,
    )
    try:
        assert node.config.engine.classes == ("person", "chair")
    finally:
        node.destroy_node()


def test_runtime_changes_are_validated(ros_context: object) -> None:
    node = _node(ros_context)
    try:
        [res] = node.set_parameters([Parameter("detector.confidence", value=1.5)])
        assert not res.successful and "detector.confidence" in res.reason
        [res] = node.set_parameters([Parameter("detector.confidence", value=0.5)])
        assert res.successful, res.reason
        [res] = node.set_parameters([Parameter("detector.classes", value=["person", "car"])])
        assert res.successful, res.reason
        [res] = node.set_parameters([Parameter("detector.classes", value=["", "car"])])
        assert not res.successful and "empty class names" in res.reason
        assert node.thresholds == Thresholds(0.5, 0.45, ("person", "car"))
        [res] = node.set_parameters(
            [Parameter("detector.classes", Parameter.Type.STRING_ARRAY, [])]
        )
        assert res.successful and node.thresholds.classes == ()
        [res] = node.set_parameters([Parameter("input.rotation", value=90)])
        assert not res.successful and "read-only" in res.reason
        [res] = node.set_parameters([Parameter("diagnostics.expected_fps", value=10.0)])
        assert res.successful and node.expected_fps == 10.0
    finally:
        node.destroy_node()


def test_set_parameters_service_like_ros2_param_set(ros_context: object) -> None:
    """What `ros2 param set` does: a SetParameters request from another node."""
    import rclpy
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterValue
    from rcl_interfaces.srv import SetParameters

    node = _node(ros_context)
    client_node = rclpy.create_node("param_client", context=ros_context)
    try:
        client = client_node.create_client(SetParameters, "/params_test/set_parameters")
        assert client.wait_for_service(timeout_sec=10.0)

        def call(name: str, value: ParameterValue):
            future = client.call_async(
                SetParameters.Request(parameters=[ParameterMsg(name=name, value=value)])
            )
            executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
            executor.add_node(node)
            executor.add_node(client_node)
            executor.spin_until_future_complete(future, timeout_sec=10.0)
            executor.shutdown()
            [result] = future.result().results
            return result

        bad = call("detector.iou", ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                   double_value=7.0))  # fmt: skip
        assert not bad.successful and "detector.iou" in bad.reason and "1" in bad.reason
        good = call("detector.iou", ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                    double_value=0.6))  # fmt: skip
        assert good.successful
        assert node.get_parameter("detector.iou").value == 0.6
    finally:
        client_node.destroy_node()
        node.destroy_node()
