"""perception_container: two nodes from one params file in one process, each on its camera.

The lifecycle ``shutdown`` of one node destroys that node only (and takes it off the container's
list); SIGTERM ends the container.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.srv import GetParameters
from rclpy.parameter import Parameter
from ros_harness import (
    CONTAINER_MAIN,
    FAST_CPU,
    Harness,
    NodeProcess,
    frame,
    node_env,
    wait_for,
)
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow


def _yaml(path: Path) -> None:
    lines = ["/**:", "  ros__parameters:"]
    for name, value in FAST_CPU.items():
        text = str(value).lower() if isinstance(value, bool) else value
        lines.append(f"    {name}: {text}")
    lines += [
        "/cam_a:",
        "  ros__parameters:",
        "    input.rotation: 90",
        "/cams/cam_b:",
        "  ros__parameters:",
        "    depth.frame_skip: 2",
    ]
    path.write_text("\n".join(lines) + "\n")


def test_two_nodes_in_one_process(domain_id: int, tmp_path: Path) -> None:
    params = tmp_path / "container.yaml"
    _yaml(params)
    env = node_env(domain_id)
    harness = Harness.open(env, domain_id)
    harness.subscribe("/cam_a/detections", Detection2DArray)
    harness.subscribe("/cams/cam_b/detections", Detection2DArray)
    argv = [
        "--ros-args",
        "--params-file",
        str(params),
        "-r",
        "cam_a:image:=/camera_a/image",
        "-r",
        "cam_b:image:=/camera_b/image",
        # The container's own name, as launch_ros's ComposableNodeContainer passes it: it
        # renames the container node only, never the perception nodes.
        "-r",
        "__node:=my_container",
    ]
    container = NodeProcess(argv, env, tmp_path / "container.log", main=CONTAINER_MAIN)
    try:
        assert wait_for(
            lambda: (
                container.proc.poll() is not None
                or all(
                    (harness.last_status(n) or {}).get("worker_state") == "READY"
                    for n in ("cam_a", "cam_b")
                )
            ),
            timeout=240,
        ), container.log()
        assert container.proc.poll() is None, container.log()
        assert len(container.workers()) == 2
        assert "libtorch" not in container.maps()
        # The nodes named at start are components like loaded ones: ids from 1, in order.
        lister = harness.node.create_client(ListNodes, "/my_container/_container/list_nodes")
        assert lister.wait_for_service(timeout_sec=30), container.log()[-3000:]
        listed = lister.call_async(ListNodes.Request())
        assert wait_for(listed.done, 30)
        assert list(listed.result().unique_ids) == [1, 2]
        assert list(listed.result().full_node_names) == ["/cam_a", "/cams/cam_b"]
        # A node loaded later gets the container's params file too; its own parameters win.
        loader = harness.node.create_client(LoadNode, "/my_container/_container/load_node")
        assert loader.wait_for_service(timeout_sec=30)
        overrides = [("autostart", False), ("depth.input_size", 64)]
        request = LoadNode.Request(
            package_name="aria_perception",
            plugin_name="aria_perception::PerceptionNode",
            node_name="cam_c",
            parameters=[
                Parameter(k, Parameter.Type.from_parameter_value(v), v).to_parameter_msg()
                for k, v in overrides
            ],
        )
        loaded = loader.call_async(request)
        assert wait_for(loaded.done, 60) and loaded.result().success, loaded.result()
        getter = harness.node.create_client(GetParameters, "/cam_c/get_parameters")
        assert getter.wait_for_service(timeout_sec=30)
        got = getter.call_async(
            GetParameters.Request(names=["depth.input_size", "detector.image_size"])
        )
        assert wait_for(got.done, 30)
        values = [v.integer_value for v in got.result().values]
        assert values == [64, FAST_CPU["detector.image_size"]]
        unloader = harness.node.create_client(UnloadNode, "/my_container/_container/unload_node")
        assert unloader.wait_for_service(timeout_sec=30)
        unloaded = unloader.call_async(UnloadNode.Request(unique_id=loaded.result().unique_id))
        assert wait_for(unloaded.done, 60) and unloaded.result().success
        pubs = {
            "a": harness.publisher("/camera_a/image", Image),
            "b": harness.publisher("/camera_b/image", Image),
        }
        start = time.monotonic()

        def answered() -> bool:
            a = harness.messages("/cam_a/detections", start)
            b = harness.messages("/cams/cam_b/detections", start)
            return any(m.header.frame_id == "a" for m in a) and any(
                m.header.frame_id == "b" for m in b
            )

        deadline = time.monotonic() + 90
        n = 0
        while time.monotonic() < deadline and not answered():
            n += 1
            for key, pub in pubs.items():
                msg = image_from_array(frame(120, 160, n), "rgb8")
                msg.header.frame_id = key
                msg.header.stamp.sec = n
                pub.publish(msg)
            wait_for(answered, 0.5)
        assert answered()
        # Each node only sees its own camera.
        assert {m.header.frame_id for m in harness.messages("/cam_a/detections")} == {"a"}
        assert {m.header.frame_id for m in harness.messages("/cams/cam_b/detections")} == {"b"}
        pid = container.pid
        workers = container.workers()
        # The lifecycle shutdown of cam_a ends cam_a only (its worker too): cam_b goes on.
        assert _change_state(harness, "/cam_a/change_state", "shutdown")
        assert wait_for(lambda: len(container.workers()) == 1, 60), container.log()[-3000:]
        assert container.proc.poll() is None

        def services() -> set[str]:
            return {name for name, _ in harness.node.get_service_names_and_types()}

        assert wait_for(lambda: "/cam_a/get_state" not in services(), 30), (
            services(),
            container.log()[-4000:],
        )
        assert "/cams/cam_b/get_state" in services()
        listed = lister.call_async(ListNodes.Request())
        assert wait_for(listed.done, 30)
        assert list(listed.result().full_node_names) == ["/cams/cam_b"], "cam_a is gone"
        after = time.monotonic()

        def b_answered() -> bool:
            got = harness.messages("/cams/cam_b/detections", after)
            return any(m.header.frame_id == "b" for m in got)

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not b_answered():
            n += 1
            msg = image_from_array(frame(120, 160, n), "rgb8")
            msg.header.frame_id, msg.header.stamp.sec = "b", n
            pubs["b"].publish(msg)
            wait_for(b_answered, 0.5)
        assert b_answered(), container.log()[-3000:]
        assert container.interrupt(timeout=20, sig=signal.SIGTERM) == 0, container.log()[-3000:]
        assert not [p for p in workers if Path(f"/proc/{p}").exists()], "worker left behind"
        assert not [s for s in os.listdir("/dev/shm") if s.startswith(f"aria_{pid}_")]
    finally:
        container.stop()
        harness.close()


def _change_state(harness: Harness, service: str, label: str) -> bool:
    client = harness.node.create_client(ChangeState, service)
    try:
        assert client.wait_for_service(timeout_sec=30), f"no {service}"
        future = client.call_async(ChangeState.Request(transition=Transition(label=label)))
        assert wait_for(future.done, 60), f"no answer to {label}"
        return bool(future.result().success)
    finally:
        harness.node.destroy_client(client)
