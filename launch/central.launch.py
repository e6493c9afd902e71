"""Perception on the central RGB camera of Project Aria glasses.

    ros2 launch aria_perception central.launch.py
    ros2 launch aria_perception central.launch.py image_topic:=/my_cam/image_raw \
        camera_info_topic:=/my_cam/camera_info device:=cuda:0 namespace:=aria

Runs ``perception_node`` as ``central_perception`` with ``config/central.yaml``; its outputs are
``[<namespace>/]central_perception/{detections, depth/raw, depth/normalized, detections/overlay,
depth/camera_info}`` (what ``config/central.rviz`` shows). ``device`` and ``allow_random_weights``
override the params file only when given.

    ros2 launch aria_perception central.launch.py container:=/perception_container

loads the same node, with the same parameters and remaps, into an already running container
(``perception_container``, started by hand or by another launch file) through launch_ros's
``LoadComposableNodes`` instead of starting a process, as image_proc's launch files do. The
container's process keeps its own environment (the Fast DDS settings below do not reach it)
and launch_ros does not pass ``log_level`` to a loaded node.

Large frames and Fast DDS: unless you already set FASTDDS_BUILTIN_TRANSPORTS,
FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE, the node gets a large-data
transport: the shipped ``config/fastdds_large_data.xml`` (shared memory with 64 MB segments) on
Humble or with localhost-only discovery (where LARGE_DATA delivered nothing in our tests), else
FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA. The camera driver / ``ros2 bag play`` needs the same
setting on its side; ``fastdds_large_data:=off`` leaves the environment alone.

Only launch and launch_ros APIs that exist in Humble are used.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LoadComposableNodes, Node
from launch_ros.descriptions import ComposableNode

from aria_perception.ros.launch_support import (
    OVERRIDE_ARGUMENTS,
    fastdds_environment,
    launch_bool,
)

PACKAGE = "aria_perception"
NODE_NAME = "central_perception"
#: The node's plugin in the ament index (``rclpy_components``), for ``container:=NAME``.
PLUGIN = "aria_perception::PerceptionNode"
# Aria's RGB stream is labelled "camera-rgb"; ROS 2 names cannot contain '-'.
DEFAULT_IMAGE_TOPIC = "/camera_rgb/image_raw"
DEFAULT_CAMERA_INFO_TOPIC = "/camera_rgb/camera_info"


def _share() -> str:
    return get_package_share_directory(PACKAGE)


def _fastdds_actions(mode: str) -> list:
    """Environment actions for the large-data transport (``fastdds_large_data`` argument)."""
    choice = fastdds_environment(mode, os.environ, _share())
    actions = [SetEnvironmentVariable(name, value) for name, value in choice.variables.items()]
    return actions + ([LogInfo(msg=choice.message)] if choice.message else [])


def _launch_setup(context, *args, **kwargs):
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    overrides = {"use_sim_time": launch_bool("use_sim_time", arg("use_sim_time"))}
    if arg("device"):
        overrides["device"] = arg("device")
    if arg("allow_random_weights"):
        overrides["allow_random_weights"] = launch_bool(
            "allow_random_weights", arg("allow_random_weights")
        )
    image_topic = arg("image_topic")
    namespace = arg("namespace")
    parameters = [arg("params_file"), overrides]
    remappings = [
        ("image", image_topic),
        # image_transport convention: the compressed stream is <topic>/compressed.
        ("image/compressed", image_topic.rstrip("/") + "/compressed"),
        ("camera_info", arg("camera_info_topic")),
    ]
    node_kwargs = {"namespace": namespace} if namespace else {}
    container = arg("container")
    if container:
        # Into a running container: its process, environment and log level are its own.
        node = ComposableNode(
            package=PACKAGE,
            plugin=PLUGIN,
            name=NODE_NAME,
            parameters=parameters,
            remappings=remappings,
            **node_kwargs,
        )
        return [
            LogInfo(msg=f"loading {NODE_NAME} into the running container {container}"),
            LoadComposableNodes(target_container=container, composable_node_descriptions=[node]),
        ]
    actions = _fastdds_actions(arg("fastdds_large_data"))
    actions.append(
        Node(
            package=PACKAGE,
            executable="perception_node",
            name=NODE_NAME,
            parameters=parameters,
            remappings=remappings,
            arguments=["--ros-args", "--log-level", arg("log_level")],
            output="screen",
            emulate_tty=True,
            **node_kwargs,
        )
    )
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace", default_value="", description="Namespace of the node."
            ),
            DeclareLaunchArgument(
                "image_topic",
                default_value=DEFAULT_IMAGE_TOPIC,
                description="Input sensor_msgs/Image topic (CompressedImage: <topic>/compressed "
                "with input.transport: compressed).",
            ),
            DeclareLaunchArgument(
                "camera_info_topic",
                default_value=DEFAULT_CAMERA_INFO_TOPIC,
                description="Input CameraInfo, re-published as depth/camera_info.",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(_share(), "config", "central.yaml"),
                description="Node parameters (every parameter with its default).",
            ),
            *(
                DeclareLaunchArgument(
                    spec.name, default_value=spec.default_value, description=spec.description
                )
                for spec in OVERRIDE_ARGUMENTS
            ),
            DeclareLaunchArgument(
                "log_level",
                default_value="info",
                description="debug, info, warn, error or fatal.",
            ),
            DeclareLaunchArgument(
                "fastdds_large_data",
                default_value="auto",
                choices=["auto", "profile", "builtin", "off"],
                description="Large-frame Fast DDS transport for the node: auto, profile "
                "(config/fastdds_large_data.xml), builtin (LARGE_DATA) or off.",
            ),
            DeclareLaunchArgument(
                "container",
                default_value="",
                description="Load the node into this running container (e.g. "
                "/perception_container) instead of starting perception_node.",
            ),
            OpaqueFunction(function=_launch_setup),
        ]
    )
