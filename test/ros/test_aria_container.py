"""aria.launch.py's nodes in one real perception_container, loaded as launch_ros loads them.

The launch file runs against the launch stand-ins (``launch_stubs``); its
``ComposableNodeContainer`` becomes a real container process started with the arguments
launch_ros's ``Node`` gives it, and each ``ComposableNode`` becomes the ``LoadNode`` request
launch_ros's ``LoadComposableNodes`` builds from it (name, remap rules, typed parameters), with
the tests' CPU settings on top. Then one Aria-sized frame per camera goes to the camera's topic,
and each node must answer on its own outputs with its own camera's header and frame size.

The three nodes share ONE worker process (same device and networks): the first load starts it
(about 15 s on two busy cores), the others join it. With ``worker.batch_cameras`` the frames
that wait together run in one engine call, and the nodes' diagnostics count them. A kill -9 of
that worker brings all three back, and each node's diagnostics count the one restart.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from composition_interfaces.srv import ListNodes, LoadNode
from launch_stubs import ROOT, ComposableNode, ComposableNodeContainer, run_launch
from rclpy.parameter import Parameter
from ros_harness import CONTAINER_MAIN, FAST_CPU, Harness, NodeProcess, frame, wait_for
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow

#: Each camera's frame as Aria records it: (height, width, channels, encoding).
FRAMES = {
    "rgb_perception": (1408, 1408, 3, "rgb8"),
    "slam_left_perception": (480, 640, 1, "mono8"),
    "slam_right_perception": (480, 640, 1, "mono8"),
}


def container_argv(container: ComposableNodeContainer) -> list[str]:
    """The container's command-line arguments as launch_ros's Node passes them."""
    namespace = "/" + container["namespace"].strip("/")
    return [
        *container["arguments"],
        "--ros-args",
        "-r",
        f"__node:={container['name']}",
        "-r",
        f"__ns:={namespace}",
    ]


def load_request(node: ComposableNode, params: dict[str, Any] | None = None) -> LoadNode.Request:
    """What LoadComposableNodes sends for ``node``, with ``params`` (FAST_CPU) over its own."""
    [parameters] = node["parameters"]
    values: dict[str, Any] = {**parameters, **(FAST_CPU if params is None else params)}
    request = LoadNode.Request(
        package_name=node["package"],
        plugin_name=node["plugin"],
        node_name=node["name"],
        remap_rules=[f"{src}:={dst}" for src, dst in node["remappings"]],
        parameters=[
            Parameter(k, Parameter.Type.from_parameter_value(v), v).to_parameter_msg()
            for k, v in values.items()
        ],
    )
    if node.get("namespace"):
        request.node_namespace = "/" + node["namespace"].strip("/")
    return request


def camera_topics(node: ComposableNode) -> tuple[str, str]:
    """(image topic, camera_info topic) the node was remapped to."""
    remaps = dict(node["remappings"])
    return remaps["image"], remaps["camera_info"]


def test_rgb_and_slam_cameras_in_one_container(
    env: dict[str, str], domain_id: int, tmp_path: Path
) -> None:
    run = run_launch(ROOT / "launch" / "aria.launch.py", {"device": "cpu"})
    [container_action] = run.of(ComposableNodeContainer)
    nodes = container_action["composable_node_descriptions"]
    assert [n["name"] for n in nodes] == list(FRAMES)
    harness = Harness.open(env, domain_id)
    for node in nodes:
        harness.subscribe(f"/{node['name']}/detections", Detection2DArray)
        harness.subscribe(f"/{node['name']}/depth/camera_info", CameraInfo)
    container = NodeProcess(
        container_argv(container_action), env, tmp_path / "container.log", main=CONTAINER_MAIN
    )
    name = f"/{container_action['name']}"
    loader = harness.node.create_client(LoadNode, f"{name}/_container/load_node")
    lister = harness.node.create_client(ListNodes, f"{name}/_container/list_nodes")
    try:
        assert loader.wait_for_service(timeout_sec=60), container.log()
        params = {**FAST_CPU, "worker.batch_cameras": True}
        for node in nodes:  # one after another, as LoadComposableNodes does
            future = loader.call_async(load_request(node, params))
            assert wait_for(future.done, 240), container.log()[-3000:]
            response = future.result()
            assert response.success, (response.error_message, container.log()[-3000:])
            assert response.full_node_name == f"/{node['name']}"
        assert lister.wait_for_service(timeout_sec=30)
        listed = lister.call_async(ListNodes.Request())
        assert wait_for(listed.done, 30)
        assert list(listed.result().full_node_names) == [f"/{n['name']}" for n in nodes]
        assert len(container.workers()) == 1, "the three cameras share one worker"
        # No libtorch check here: the default tracker (bytetrack) is Ultralytics', which brings
        # torch into the container process (test_node_tracking.py); the engine is the worker's.

        pubs = {}
        for node in nodes:
            image_topic, info_topic = camera_topics(node)
            pubs[node["name"]] = (
                harness.publisher(image_topic, Image),
                harness.publisher(info_topic, CameraInfo),
            )
        # frame_id = the camera's name, as ``bench import`` writes it.
        frame_ids = {n["name"]: camera_topics(n)[0].split("/")[1] for n in nodes}

        def answered(node_name: str, since: float) -> bool:
            own = frame_ids[node_name]
            detections = harness.messages(f"/{node_name}/detections", since)
            infos = harness.messages(f"/{node_name}/depth/camera_info", since)
            return any(m.header.frame_id == own for m in detections) and any(
                m.header.frame_id == own for m in infos
            )

        def batched(node_name: str, since: float) -> bool:
            status = harness.last_status(node_name, since) or {}
            return int(status.get("batched_frames", "0")) > 0

        def feed(since: float, first: int, until=None) -> int:
            """Frames to every camera until each node answered; the last frame's number."""
            deadline = time.monotonic() + 180

            def done() -> bool:
                return all(answered(k, since) for k in FRAMES) and (until is None or until())

            n = first
            while time.monotonic() < deadline and not done():
                n += 1
                for node_name, (height, width, channels, encoding) in FRAMES.items():
                    image_pub, info_pub = pubs[node_name]
                    info = CameraInfo(height=height, width=width)
                    info.header.frame_id = frame_ids[node_name]
                    info_pub.publish(info)
                    pixels = frame(height, width, n, channels)
                    msg = image_from_array(pixels[..., 0] if channels == 1 else pixels, encoding)
                    msg.header.frame_id = frame_ids[node_name]
                    msg.header.stamp.sec = n
                    image_pub.publish(msg)
                wait_for(done, 1.0)
            assert done(), (
                {k: answered(k, since) for k in FRAMES},
                {k: harness.last_status(k, since) for k in FRAMES},
                container.log()[-4000:],
            )
            return n

        # Each round's three frames arrive together: the two SLAM cameras' wait while the
        # worker runs another frame, then run as one batch.
        started = time.monotonic()
        slam = [k for k in FRAMES if k.startswith("slam")]
        n = feed(started, 0, lambda: all(batched(k, started) for k in slam))
        # Each node saw its own camera only, and answered with the frames' own headers and size.
        for node_name, (height, width, _, _) in FRAMES.items():
            got = harness.messages(f"/{node_name}/detections")
            assert {m.header.frame_id for m in got} == {frame_ids[node_name]}
            assert {m.header.stamp.sec for m in got} <= set(range(1, n + 1))
            infos = harness.messages(f"/{node_name}/depth/camera_info")
            assert {(m.height, m.width) for m in infos} == {(height, width)}

        # kill -9 of the shared worker: every node comes back, each counts the one restart.
        [worker] = container.workers()
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        feed(killed, n)
        [new_worker] = container.workers()
        assert new_worker != worker

        def restarted(node_name: str) -> bool:
            status = harness.last_status(node_name, killed) or {}
            return (
                status.get("worker_state") == "READY"
                and status.get("worker_restarts") == "1"
                and status.get("worker_pid") == str(new_worker)
                and status.get("worker_cameras") == "3"
            )

        assert wait_for(lambda: all(map(restarted, FRAMES)), 30), {
            k: harness.last_status(k, killed) for k in FRAMES
        }
        pid, workers = container.pid, container.workers()
        assert container.interrupt(timeout=30, sig=signal.SIGTERM) == 0, container.log()[-3000:]
        assert not [p for p in workers if Path(f"/proc/{p}").exists()], "worker left behind"
        assert not [s for s in os.listdir("/dev/shm") if s.startswith(f"aria_{pid}_")]
    finally:
        container.stop()
        harness.close()
