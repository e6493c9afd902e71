"""perception_container as a component container: the composition_interfaces services.

The container runs in its own process, started with no nodes; this side calls its services
with real rclpy clients, filling the requests as ``ros2 component load`` (parameters as
``name:=value`` strings) and launch_ros's ``LoadComposableNodes`` (typed parameters, an
absolute namespace) do. Every worker spawn costs ~15 s on 2 cores, so one test loads two nodes
and checks everything on them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode
from lifecycle_msgs.srv import GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rclpy.parameter import Parameter, get_parameter_value
from ros_harness import (
    CONTAINER_MAIN,
    FAST_CPU,
    ROOT,
    Harness,
    NodeProcess,
    frame,
    wait_for,
)
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow

CONTAINER = "/perception_container"
PACKAGE, PLUGIN = "aria_perception", "aria_perception::PerceptionNode"
A, B = "/cam_a/perception", "/cams/perc_b"


def _cli_params(params: dict[str, Any]) -> list[ParameterMsg]:
    """Parameters as ``ros2 component load -p name:=value`` sends them."""
    out = []
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(ParameterMsg(name=name, value=get_parameter_value(string_value=text)))
    return out


def _launch_params(params: dict[str, Any]) -> list[ParameterMsg]:
    """Parameters as launch_ros sends them (typed rclpy Parameters)."""
    return [
        Parameter(name, Parameter.Type.from_parameter_value(v), v).to_parameter_msg()
        for name, v in params.items()
    ]


def _central_yaml() -> dict[str, Any]:
    """config/central.yaml's ``/**`` values with dotted names (launch_ros's flattening)."""
    doc = yaml.safe_load((ROOT / "config" / "central.yaml").read_text())

    def flat(prefix: str, node: dict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict):
                out.update(flat(f"{prefix}{key}.", value))
            else:
                out[prefix + key] = value
        return out

    return flat("", doc["/**"]["ros__parameters"])


def _request(**fields: Any) -> LoadNode.Request:
    request = LoadNode.Request(package_name=PACKAGE, plugin_name=PLUGIN)
    for key, value in fields.items():
        setattr(request, key, value)
    return request


class Client:
    """The container's three services, called from the harness node."""

    def __init__(self, harness: Harness, container: str = CONTAINER) -> None:
        self.harness = harness
        self.clients = {
            srv: harness.node.create_client(srv, f"{container}/_container/{name}")
            for srv, name in ((LoadNode, "load_node"), (UnloadNode, "unload_node"),
                              (ListNodes, "list_nodes"))
        }  # fmt: skip

    def wait(self, timeout: float = 60) -> bool:
        return all(c.wait_for_service(timeout_sec=timeout) for c in self.clients.values())

    def call_async(self, srv: Any, request: Any) -> Any:
        return self.clients[srv].call_async(request)

    def call(self, srv: Any, request: Any, timeout: float = 30) -> Any:
        future = self.call_async(srv, request)
        assert wait_for(future.done, timeout), f"no answer from {srv.__name__}"
        return future.result()

    def list(self) -> list[tuple[int, str]]:
        response = self.call(ListNodes, ListNodes.Request())
        return list(zip(response.unique_ids, response.full_node_names, strict=True))

    def load(self, timeout: float = 240, **fields: Any) -> Any:
        return self.call(LoadNode, _request(**fields), timeout)

    def unload(self, unique_id: int) -> Any:
        return self.call(UnloadNode, UnloadNode.Request(unique_id=unique_id), 60)


def _segments(pid: int) -> list[str]:
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"aria_{pid}_"))


def _services(harness: Harness) -> set[str]:
    return {name for name, _ in harness.node.get_service_names_and_types()}


def _answers(harness: Harness, pub: Any, topic: str, key: str, seed: int) -> bool:
    """Publish frames tagged ``key`` until one comes back on ``topic``."""
    since = time.monotonic()

    def answered() -> bool:
        return any(m.header.frame_id == key for m in harness.messages(topic, since))

    deadline = time.monotonic() + 90
    n = seed
    while time.monotonic() < deadline and not answered():
        n += 1
        msg = image_from_array(frame(120, 160, n), "rgb8")
        msg.header.frame_id, msg.header.stamp.sec = key, n
        pub.publish(msg)
        wait_for(answered, 0.5)
    return answered()


def test_an_empty_container_loads_lists_and_unloads_nodes(
    env: dict[str, str], domain_id: int, tmp_path: Path
) -> None:
    harness = Harness.open(env, domain_id)
    harness.subscribe(f"{A}/detections", Detection2DArray)
    harness.subscribe(f"{B}/detections", Detection2DArray)
    container = NodeProcess([], env, tmp_path / "container.log", main=CONTAINER_MAIN)
    client = Client(harness)
    try:
        assert client.wait(), container.log()
        assert client.list() == []

        # Refusals cost no worker: each says why, and the container goes on answering.
        refusals = {
            "unknown package": (dict(package_name="no_such_pkg"), "no_such_pkg"),
            "unknown plugin": (dict(plugin_name="aria_perception::Nope"), "Nope"),
            "invalid parameter": (
                dict(parameters=_cli_params({**FAST_CPU, "detector.iou": 3.0})),
                "detector.iou",
            ),
            "intra-process": (
                dict(extra_arguments=_launch_params({"use_intra_process_comms": True})),
                "use_intra_process_comms",
            ),
            "unknown extra argument": (
                dict(extra_arguments=_launch_params({"use_clock_thread": True})),
                "use_clock_thread",
            ),
            "bad remap": (dict(remap_rules=["image"]), "from:=to"),
        }
        for what, (fields, reason) in refusals.items():
            response = client.load(**fields)
            assert not response.success, what
            assert reason in response.error_message, (what, response.error_message)
            assert client.list() == [], what
        assert container.proc.poll() is None, container.log()

        # Node A as ros2 component load sends it; node B as launch_ros does, renamed and
        # moved by __node/__ns rules. The services answer while B loads.
        a = client.load(
            node_name="perception",
            node_namespace="/cam_a",
            remap_rules=["image:=/camera_a/image"],
            parameters=_cli_params(FAST_CPU),
            extra_arguments=_launch_params({"use_intra_process_comms": False}),
        )
        assert (a.success, a.full_node_name, a.unique_id) == (True, A, 1), a.error_message
        b_future = client.call_async(
            LoadNode,
            _request(
                remap_rules=["__node:=perc_b", "__ns:=/cams", "image:=/camera_b/image"],
                parameters=_launch_params({**FAST_CPU, "depth.frame_skip": 2}),
            ),
        )
        listed_while_loading = client.list()
        assert not b_future.done(), "a load spawns a worker: it cannot have answered yet"
        assert listed_while_loading == [(1, A)]
        assert wait_for(b_future.done, 240), container.log()[-3000:]
        b = b_future.result()
        assert (b.success, b.full_node_name, b.unique_id) == (True, B, 2), b.error_message
        assert client.list() == [(1, A), (2, B)]
        assert len(container.workers()) == 2
        assert "libtorch" not in container.maps()

        duplicate = client.load(node_name="perception", node_namespace="/cam_a")
        assert not duplicate.success and A in duplicate.error_message

        # Each node answers its own camera; A is what a perception_node would be.
        with harness.publishing("/camera_a/image", Image) as pub_a:
            assert _answers(harness, pub_a, f"{A}/detections", "a", 0), container.log()[-3000:]
        with harness.publishing("/camera_b/image", Image) as pub_b:
            assert _answers(harness, pub_b, f"{B}/detections", "b", 100), container.log()[-3000:]
        assert {m.header.frame_id for m in harness.messages(f"{A}/detections")} == {"a"}
        assert {m.header.frame_id for m in harness.messages(f"{B}/detections")} == {"b"}
        status = harness.last_status("perception") or {}
        assert status.get("worker_state") == "READY", status
        get_state = harness.node.create_client(GetState, f"{A}/get_state")
        assert get_state.wait_for_service(timeout_sec=30)
        future = get_state.call_async(GetState.Request())
        assert wait_for(future.done, 30)
        state = future.result().current_state.label
        assert state == "active"
        services = _services(harness)
        for suffix in ("change_state", "get_state", "set_parameters", "describe_parameters"):
            assert f"{A}/{suffix}" in services and f"{B}/{suffix}" in services, suffix

        # Unload B: its worker, its shared memory, its services go; A still answers.
        pid = container.pid
        workers, segments = container.workers(), _segments(pid)
        assert len(segments) == 2, segments
        assert client.unload(2).success
        assert client.list() == [(1, A)]
        assert wait_for(lambda: len(container.workers()) == 1, 60), container.log()[-3000:]
        assert container.workers()[0] in workers
        assert len(_segments(pid)) == 1 and set(_segments(pid)) < set(segments)
        assert wait_for(lambda: f"{B}/get_state" not in _services(harness), 30)
        again = client.unload(2)
        assert not again.success and "2" in again.error_message
        with harness.publishing("/camera_a/image", Image) as pub_a:
            assert _answers(harness, pub_a, f"{A}/detections", "a", 200), container.log()[-3000:]

        # Ids are never reused; a node that waits for lifecycle (autostart false) spawns no
        # worker and is listed all the same.
        # It gets config/central.yaml's every value, flattened as launch_ros sends a params file.
        c = client.load(
            node_name="waiting",
            parameters=_launch_params({**_central_yaml(), "autostart": False}),
        )
        assert (c.success, c.full_node_name, c.unique_id) == (True, "/waiting", 3)
        assert client.list() == [(1, A), (3, "/waiting")]
        assert len(container.workers()) == 1

        assert container.interrupt(timeout=30, sig=signal.SIGTERM) == 0, container.log()[-3000:]
        assert not [p for p in workers if Path(f"/proc/{p}").exists()], "worker left behind"
        assert not _segments(pid)
    finally:
        container.stop()
        harness.close()
