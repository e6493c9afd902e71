"""Acceptance: three Aria cameras at 2 Hz for 3 minutes on one shared worker, never restarted.

The three nodes of aria.launch.py in one perception_container on the CPU, with the networks at
their default sizes (MiDaS 256, YOLO 640) and the default ``worker.frame_timeout_s`` (5 s): one
worker serves the RGB camera's 1408x1408 frames and both SLAM cameras' 640x480 frames. On a
2-core machine three workers each took longer than the frame timeout per frame and killed each
other in a restart loop; one shared worker must run the whole time without a restart, and every
camera must get answers.

Marked ``soak`` (and ``slow``): left out of ``make test``; run it with
``python -m pytest -m soak test/ros/test_aria_soak.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from composition_interfaces.srv import LoadNode
from launch_stubs import ROOT, ComposableNodeContainer, run_launch
from ros_harness import CONTAINER_MAIN, Harness, NodeProcess, frame, wait_for
from sensor_msgs.msg import CameraInfo, Image
from test_aria_container import FRAMES, camera_topics, container_argv, load_request
from vision_msgs.msg import Detection2DArray

from aria_perception.ros.image_codec import image_from_array

pytestmark = [pytest.mark.slow, pytest.mark.soak]

SOAK_S = 180.0
RATE_HZ = 2.0
#: The tests' CPU settings without the small networks and the long frame timeout.
SOAK_PARAMS = {
    "device": "cpu",
    "allow_random_weights": True,
    "diagnostics.period_s": 1.0,
    "diagnostics.expected_fps": 0.0,
    "diagnostics.latency_budget_ms": 0.0,
}


@pytest.mark.parametrize("batch_cameras", [False, True], ids=["one-by-one", "batched"])
def test_three_cameras_at_2_hz_for_3_minutes_never_restart_the_shared_worker(
    env: dict[str, str], domain_id: int, tmp_path: Path, batch_cameras: bool
) -> None:
    run = run_launch(ROOT / "launch" / "aria.launch.py", {"device": "cpu"})
    [container_action] = run.of(ComposableNodeContainer)
    nodes = container_action["composable_node_descriptions"]
    harness = Harness.open(env, domain_id)
    for node in nodes:
        harness.subscribe(f"/{node['name']}/detections", Detection2DArray, keep=2000)
    container = NodeProcess(
        container_argv(container_action), env, tmp_path / "container.log", main=CONTAINER_MAIN
    )
    name = f"/{container_action['name']}"
    loader = harness.node.create_client(LoadNode, f"{name}/_container/load_node")
    try:
        assert loader.wait_for_service(timeout_sec=60), container.log()
        for node in nodes:
            params = {**SOAK_PARAMS, "worker.batch_cameras": batch_cameras}
            request = load_request(node, params)
            future = loader.call_async(request)
            assert wait_for(future.done, 240), container.log()[-3000:]
            assert future.result().success, container.log()[-3000:]
        [worker] = container.workers()
        pubs = {}
        for node in nodes:
            image_topic, info_topic = camera_topics(node)
            pubs[node["name"]] = (
                harness.publisher(image_topic, Image),
                harness.publisher(info_topic, CameraInfo),
            )
        frame_ids = {n["name"]: camera_topics(n)[0].split("/")[1] for n in nodes}
        images = {}
        for node_name, (height, width, channels, encoding) in FRAMES.items():
            pixels = frame(height, width, 1, channels)
            images[node_name] = image_from_array(
                pixels[..., 0] if channels == 1 else pixels, encoding
            )
        start = time.monotonic()
        n = 0
        while (now := time.monotonic()) < start + SOAK_S:
            n += 1
            for node_name, (height, width, _, _) in FRAMES.items():
                image_pub, info_pub = pubs[node_name]
                info = CameraInfo(height=height, width=width)
                info.header.frame_id = frame_ids[node_name]
                info.header.stamp.sec = n
                info_pub.publish(info)
                msg = images[node_name]
                msg.header.frame_id = frame_ids[node_name]
                msg.header.stamp.sec = n
                image_pub.publish(msg)
            time.sleep(max(0.0, start + n / RATE_HZ - time.monotonic()))
        assert now >= start + SOAK_S
        report = {}
        for node_name in FRAMES:
            status = harness.last_status(node_name, start) or {}
            answers = len(harness.messages(f"/{node_name}/detections", start))
            report[node_name] = (
                answers,
                status.get("worker_restarts"),
                status.get("batched_frames"),
                status.get("dropped_frames"),
            )
        print(f"soak: {n} frames per camera; (answers, restarts, batched, dropped): {report}")
        for node_name in FRAMES:
            status = harness.last_status(node_name, start) or {}
            assert status.get("worker_restarts") == "0", (node_name, status)
            assert status.get("worker_state") == "READY", (node_name, status)
            assert status.get("worker_cameras") == "3", (node_name, status)
            assert report[node_name][0] >= 10, report  # every camera is served
        assert container.workers() == [worker], "the worker was replaced"
    finally:
        container.stop()
        harness.close()
