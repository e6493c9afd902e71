"""Perception on the cameras of Project Aria glasses: one node per camera, one container process.

    ros2 launch aria_perception aria.launch.py
    ros2 launch aria_perception aria.launch.py device:=cuda:0 namespace:=aria eye_tracking:=true \
        rgb_topic:=/aria/rgb/image_raw slam_left_rotation:=0 rgb_rectify:=true

Starts ``perception_container`` (the package's component container) as
``[<namespace>/]perception_container`` and loads into it, through its ``_container/load_node``
service, the perception nodes ``rgb_perception``, ``slam_left_perception`` and
``slam_right_perception``, plus ``et_perception`` with ``eye_tracking:=true``. Each reads its
camera's ``<camera>_topic`` (``/camera_rgb/image_raw``, ...; ``image/compressed`` is
``<topic>/compressed``) and, by image_transport's convention, the ``camera_info`` beside it
(``/camera_rgb/camera_info``). Its outputs are private:
``[<namespace>/]rgb_perception/{detections, depth/raw, depth/normalized, detections/overlay,
depth/camera_info}``. Each node still starts its own worker process.

Parameters: each node gets the ``/**`` section and its own section of ``params_file``
(``config/aria.yaml`` by default; sections are matched by node name whatever the namespace),
then ``input.rotation`` and ``input.rectify`` from its ``<camera>_rotation`` and
``<camera>_rectify`` arguments, ``use_sim_time``, and ``device`` and ``allow_random_weights``
when given.

    ros2 launch aria_perception aria.launch.py container:=/perception_container

loads the same nodes, with the same parameters and remaps, into an already running container
instead of starting one (launch_ros's ``LoadComposableNodes``). That container's process keeps
its own environment and log level.

Large frames and Fast DDS: as in central.launch.py (``fastdds_large_data``), the container
process gets a large-data transport unless you already chose one; the publisher (``ros2 bag
play``, the camera driver) needs the same setting. See
``aria_perception.ros.launch_support.fastdds_environment``.

Only launch and launch_ros APIs that exist in Humble are used.
"""

import os
from typing import NamedTuple

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import ComposableNodeContainer, LoadComposableNodes
from launch_ros.descriptions import ComposableNode

from aria_perception.ros.launch_support import (
    FASTDDS_MODES,
    OVERRIDE_ARGUMENTS,
    camera_info_topic,
    compressed_topic,
    fastdds_environment,
    launch_bool,
    node_parameters,
)

PACKAGE = "aria_perception"
#: The node's plugin in the ament index (``rclpy_components``).
PLUGIN = "aria_perception::PerceptionNode"
CONTAINER_EXECUTABLE = "perception_container"
CONTAINER_NAME = "perception_container"
#: Clockwise rotations ``input.rotation`` accepts.
ROTATIONS = ("0", "90", "180", "270")


class Camera(NamedTuple):
    """One Aria camera: its launch-argument prefix, node name and default image topic."""

    key: str
    node_name: str
    image_topic: str
    what: str
    rotation: str = "90"  # Aria mounts its cameras sideways: 90 clockwise makes them upright


# Aria's streams are labelled camera-rgb, camera-slam-left, ...; ROS 2 names cannot hold '-'.
CAMERAS = (
    Camera("rgb", "rgb_perception", "/camera_rgb/image_raw", "RGB camera (1408x1408 rgb8)"),
    Camera("slam_left", "slam_left_perception", "/camera_slam_left/image_raw",
           "left SLAM camera (640x480 mono8)"),
    Camera("slam_right", "slam_right_perception", "/camera_slam_right/image_raw",
           "right SLAM camera (640x480 mono8)"),
    Camera("et", "et_perception", "/camera_et/image_raw", "eye-tracking camera"),
)  # fmt: skip
#: Cameras that run only when their launch argument is true.
OPTIONAL_CAMERAS = {"et": "eye_tracking"}


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

    namespace = arg("namespace")
    params_file = arg("params_file")
    common = {"use_sim_time": launch_bool("use_sim_time", arg("use_sim_time"))}
    if arg("device"):
        common["device"] = arg("device")
    if arg("allow_random_weights"):
        common["allow_random_weights"] = launch_bool(
            "allow_random_weights", arg("allow_random_weights")
        )
    enabled = {key: launch_bool(name, arg(name)) for key, name in OPTIONAL_CAMERAS.items()}
    node_kwargs = {"namespace": namespace} if namespace else {}
    nodes = []
    for camera in CAMERAS:
        # Every camera's arguments are read, so a bad value fails also for a camera left off.
        topic = arg(f"{camera.key}_topic")
        rotation = int(arg(f"{camera.key}_rotation"))
        rectify = launch_bool(f"{camera.key}_rectify", arg(f"{camera.key}_rectify"))
        if not enabled.get(camera.key, True):
            continue
        # The params file is resolved here rather than handed to launch_ros, which would apply
        # only its `/**` and exact full-name sections: `/rgb_perception` would not reach
        # /aria/rgb_perception. One dict, so the arguments win over the file.
        parameters = node_parameters(params_file, camera.node_name, namespace)
        parameters.update(common)
        parameters["input.rotation"] = rotation
        parameters["input.rectify"] = rectify
        nodes.append(
            ComposableNode(
                package=PACKAGE,
                plugin=PLUGIN,
                name=camera.node_name,
                parameters=[parameters],
                remappings=[
                    ("image", topic),
                    ("image/compressed", compressed_topic(topic)),
                    ("camera_info", camera_info_topic(topic)),
                ],
                **node_kwargs,
            )
        )
    names = ", ".join(camera.node_name for camera in CAMERAS if enabled.get(camera.key, True))
    container = arg("container")
    if container:
        # Into a running container: its process, environment and log level are its own.
        return [
            LogInfo(msg=f"loading {names} into the running container {container}"),
            LoadComposableNodes(target_container=container, composable_node_descriptions=nodes),
        ]
    actions = _fastdds_actions(arg("fastdds_large_data"))
    actions += [
        LogInfo(msg=f"starting {CONTAINER_NAME} with {names} (one worker process each)"),
        ComposableNodeContainer(
            name=CONTAINER_NAME,
            namespace=namespace,
            package=PACKAGE,
            executable=CONTAINER_EXECUTABLE,
            composable_node_descriptions=nodes,
            arguments=["--ros-args", "--log-level", arg("log_level")],
            output="screen",
            emulate_tty=True,
        ),
    ]
    return actions


def _camera_arguments(camera: Camera) -> list:
    return [
        DeclareLaunchArgument(
            f"{camera.key}_topic",
            default_value=camera.image_topic,
            description=f"Image topic of the {camera.what}; its CameraInfo is the camera_info "
            "beside it, its CompressedImage <topic>/compressed.",
        ),
        DeclareLaunchArgument(
            f"{camera.key}_rotation",
            default_value=camera.rotation,
            choices=list(ROTATIONS),
            description=f"input.rotation of the {camera.what}: clockwise degrees before "
            "inference.",
        ),
        DeclareLaunchArgument(
            f"{camera.key}_rectify",
            default_value="false",
            description=f"input.rectify of the {camera.what}: undistort the fisheye frame "
            "before inference (rectify.* from the params file).",
        ),
    ]


def generate_launch_description() -> LaunchDescription:
    camera_arguments = [a for camera in CAMERAS for a in _camera_arguments(camera)]
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace", default_value="", description="Namespace of the nodes."
            ),
            DeclareLaunchArgument(
                "eye_tracking",
                default_value="false",
                description="Also run et_perception on the eye-tracking camera.",
            ),
            *camera_arguments,
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(_share(), "config", "aria.yaml"),
                description="Node parameters: a /** section and one per node name.",
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
                description="debug, info, warn, error or fatal (the container process).",
            ),
            DeclareLaunchArgument(
                "fastdds_large_data",
                default_value="auto",
                choices=list(FASTDDS_MODES),
                description="Large-frame Fast DDS transport for the container: auto, profile "
                "(config/fastdds_large_data.xml), builtin (LARGE_DATA) or off.",
            ),
            DeclareLaunchArgument(
                "container",
                default_value="",
                description="Load the nodes into this running container (e.g. "
                "/perception_container) instead of starting one.",
            ),
            OpaqueFunction(function=_launch_setup),
        ]
    )
