"""Acceptance of the node, everything through real DDS.

The node runs in its own process with the real worker and engine (CPU, random weights);
publishers and subscribers are here.

One node process serves the tests of this module in order (starting one costs ~15 s of torch
imports in its worker): outputs and headers with ``input.rotation: 90``, lifecycle, QoS matching
of publishers started after the node, bad inputs, diagnostics, run-time parameters, kill -9 of
the worker, and a clean Ctrl-C shutdown.
"""

from __future__ import annotations

import array
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_harness import FAST_CPU, Harness, NodeProcess, frame, node_env, running_node, wait_for
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from aria_perception.ros.diagnostics import ERROR, KEYS, WARN
from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow

NAME = "perception"
W, H = 640, 480
OUTPUTS = {
    f"/{NAME}/detections": Detection2DArray,
    f"/{NAME}/depth/raw": Image,
    f"/{NAME}/depth/normalized": Image,
    f"/{NAME}/detections/overlay": Image,
    f"/{NAME}/depth/camera_info": CameraInfo,
}
DETS = f"/{NAME}/detections"


@pytest.fixture(scope="module")
def env(domain_id: int) -> dict[str, str]:
    return node_env(domain_id)


@pytest.fixture(scope="module")
def harness(env: dict[str, str], domain_id: int) -> Iterator[Harness]:
    h = Harness.open(env, domain_id)
    for topic, msg_type in OUTPUTS.items():
        h.subscribe(topic, msg_type, keep=500 if msg_type is Detection2DArray else 40)
    yield h
    h.close()


@pytest.fixture(scope="module")
def node(env: dict[str, str], harness: Harness, tmp_path_factory) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("node") / "node.log"
    params = {**FAST_CPU, "input.rotation": 90, "input.max_pixels": W * H}
    with running_node(NAME, params, env, harness, log) as proc:
        yield proc


class Stream:
    """Frames with unique stamps; remembers every header sent."""

    def __init__(self) -> None:
        self.sent: dict[tuple[int, int], str] = {}
        self._n = 0

    def image(self, frame_id: str = "aria-rgb", pixels: np.ndarray | None = None) -> Image:
        self._n += 1
        if pixels is None:
            pixels = frame(H, W, self._n)
        msg = image_from_array(pixels, "rgb8")
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000 + self._n, 1000 + self._n
        msg.header.frame_id = frame_id
        self.sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = frame_id
        return msg

    def stamps(self, messages: list, frame_id: str | None = None) -> set[tuple[int, int]]:
        """Stamps of ``messages`` that belong to this stream (and ``frame_id``)."""
        out = set()
        for m in messages:
            key = (m.header.stamp.sec, m.header.stamp.nanosec)
            if key in self.sent and (frame_id is None or self.sent[key] == frame_id):
                out.add(key)
        return out


STREAM = Stream()


def _feed(pub, harness: Harness, until, frame_id: str = "aria-rgb", period: float = 0.4,
          timeout: float = 90.0):  # fmt: skip
    """Publish frames every ``period`` until ``until()`` holds (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(STREAM.image(frame_id))
        if wait_for(until, period):
            return True
    return bool(until())


def _change_state(harness: Harness, transition: int) -> bool:
    client = harness.node.create_client(ChangeState, f"/{NAME}/change_state")
    try:
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        assert wait_for(future.done, 60), "no answer from change_state"
        return future.result().success
    finally:
        harness.node.destroy_client(client)


def _set_parameter(harness: Harness, name: str, value: ParameterValue):
    """What ``ros2 param set`` does."""
    client = harness.node.create_client(SetParameters, f"/{NAME}/set_parameters")
    try:
        assert client.wait_for_service(timeout_sec=10)
        request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=value)])
        future = client.call_async(request)
        assert wait_for(future.done, 30), "no answer from set_parameters"
        [result] = future.result().results
        return result
    finally:
        harness.node.destroy_client(client)


# ---------------------------------------------------------------------------------------------


def test_outputs_carry_the_input_header_with_rotation_90(harness: Harness, node) -> None:
    """A RELIABLE publisher started after the node; every output of every frame checked."""
    info_pub = harness.publisher("/camera_info", CameraInfo)
    pub = harness.publisher("/image", Image, reliable=True)
    info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    info.header.frame_id = "calibration-frame"
    info.k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    start = time.monotonic()

    def complete() -> bool:
        info_pub.publish(info)
        per_topic = [STREAM.stamps(harness.messages(t, start)) for t in OUTPUTS]
        return len(set.intersection(*per_topic)) >= 3

    assert _feed(pub, harness, complete), {t: len(harness.messages(t, start)) for t in OUTPUTS}

    for topic in OUTPUTS:
        for msg in harness.messages(topic, start):
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            assert key in STREAM.sent, f"{topic}: stamp {key} was never sent"
            assert msg.header.frame_id == STREAM.sent[key], f"{topic}: frame_id changed"
    n_boxes = 0
    for arr in harness.messages(DETS, start):
        for det in arr.detections:
            assert det.header == arr.header
            cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
            sx, sy = det.bbox.size_x, det.bbox.size_y
            # Received-image pixels (640x480), not the rotated 480x640 the networks saw.
            assert -0.5 <= cx - sx / 2 and cx + sx / 2 <= W + 0.5, (cx, sx)
            assert -0.5 <= cy - sy / 2 and cy + sy / 2 <= H + 0.5, (cy, sy)
            [hyp] = det.results
            assert hyp.hypothesis.class_id and not hyp.hypothesis.class_id.isdigit()
            assert 0.0 <= hyp.hypothesis.score <= 1.0
            assert math.isfinite(hyp.pose.pose.position.z)
            n_boxes += 1
    assert n_boxes > 0, "confidence 0 must yield boxes even with random weights"
    right = max(
        d.bbox.center.position.x + d.bbox.size_x / 2
        for a in harness.messages(DETS, start)
        for d in a.detections
    )
    assert right > H, "boxes span the received 640-pixel width, not the rotated 480"
    raw_span = {}
    for raw in harness.messages(f"/{NAME}/depth/raw", start):
        assert (raw.encoding, raw.width, raw.height, raw.step) == ("32FC1", W, H, W * 4)
        depth = np.frombuffer(raw.data, np.float32)
        assert np.isfinite(depth).all()
        raw_span[(raw.header.stamp.sec, raw.header.stamp.nanosec)] = (depth.min(), depth.max())
    for norm in harness.messages(f"/{NAME}/depth/normalized", start):
        assert (norm.encoding, norm.width, norm.height) == ("mono8", W, H)
        pixels = np.frombuffer(norm.data, np.uint8)
        key = (norm.header.stamp.sec, norm.header.stamp.nanosec)
        assert pixels.min() == 0 and pixels.max() == 255, (
            f"normalized depth of {key} spans {pixels.min()}..{pixels.max()}; raw depth of that "
            f"frame: {raw_span.get(key, 'not received')}; raw frames: {raw_span}"
        )
    for ov in harness.messages(f"/{NAME}/detections/overlay", start):
        assert (ov.encoding, ov.width, ov.height, ov.step) == ("bgr8", W, H, W * 3)
    for ci in harness.messages(f"/{NAME}/depth/camera_info", start):
        assert (ci.width, ci.height) == (W, H)
        assert list(ci.k) == list(info.k)
    harness.node.destroy_publisher(pub)
    harness.node.destroy_publisher(info_pub)


def test_the_node_process_never_loads_torch(node: NodeProcess) -> None:
    maps = node.maps()
    assert "libtorch" not in maps and "libc10" not in maps
    assert len(node.workers()) == 1


def test_lifecycle_deactivate_keeps_the_worker_warm(harness: Harness, node) -> None:
    pub = harness.publisher("/image", Image, reliable=True)
    [worker] = node.workers()
    assert _change_state(harness, Transition.TRANSITION_DEACTIVATE)
    start = time.monotonic()
    assert wait_for(lambda: "inactive" in (harness.last_status(NAME, start) or {}).get(
        "message", ""), 10)  # fmt: skip
    for _ in range(5):
        pub.publish(STREAM.image("while-inactive"))
        time.sleep(0.3)
    time.sleep(1.0)
    assert not STREAM.stamps(harness.messages(DETS, start), "while-inactive")
    assert node.workers() == [worker], "deactivate must keep the worker"
    assert _change_state(harness, Transition.TRANSITION_ACTIVATE)
    start = time.monotonic()
    assert _feed(pub, harness, lambda: STREAM.stamps(harness.messages(DETS, start), "again"),
                 "again")  # fmt: skip
    assert node.workers() == [worker]
    harness.node.destroy_publisher(pub)


def test_best_effort_publisher_started_after_the_node(harness: Harness, node) -> None:
    """input.qos auto: the subscription is re-created to match a BEST_EFFORT publisher."""
    time.sleep(0.5)  # the reliable publishers of earlier tests are gone
    pub = harness.publisher("/image", Image, reliable=False)
    start = time.monotonic()
    assert _feed(pub, harness, lambda: len(STREAM.stamps(harness.messages(DETS, start), "be"))
                 >= 3, "be")  # fmt: skip
    assert "re-subscribed with BEST_EFFORT" in node.log()
    harness.node.destroy_publisher(pub)


def test_bad_inputs_are_rejected_counted_and_the_node_goes_on(harness: Harness, node) -> None:
    pub = harness.publisher("/image", Image, reliable=True)
    time.sleep(1.0)
    before = int(harness.last_status(NAME)["rejected_frames"])

    def bad(encoding: str, width: int, height: int, step: int, size: int) -> Image:
        msg = STREAM.image("bad", frame(2, 2, 0))
        msg.encoding, msg.width, msg.height, msg.step = encoding, width, height, step
        msg.data = array.array("B", bytes(size))
        return msg

    frames = [
        bad("yuv422", 8, 8, 16, 128),  # unknown encoding
        bad("rgb8", 8, 8, 24, 200),  # step/size mismatch
        bad("rgb8", 8, 8, 24, 100),  # truncated
        bad("rgb8", 0, 8, 0, 0),  # zero size
        bad("rgb8", W + 1, H, (W + 1) * 3, (W + 1) * 3 * H),  # over input.max_pixels
        bad("mono16", 8, 8, 16, 128),  # 16-bit mono
    ]
    for msg in frames:
        pub.publish(msg)
        time.sleep(0.3)
    expected = before + len(frames)
    assert wait_for(lambda: int(harness.last_status(NAME)["rejected_frames"]) >= expected, 15), (
        harness.last_status(NAME)
    )
    time.sleep(1.0)
    assert int(harness.last_status(NAME)["rejected_frames"]) == expected
    start = time.monotonic()
    assert _feed(pub, harness, lambda: STREAM.stamps(harness.messages(DETS, start), "after-bad"),
                 "after-bad")  # fmt: skip
    assert not STREAM.stamps(harness.messages(DETS), "bad"), "garbage was published"
    log = node.log()
    for reason in (
        "unsupported encoding 'yuv422'",
        "size mismatch",
        "truncated",
        "zero-size image",
        "more than input.max_pixels",
        "16-bit encoding 'mono16' is not supported",
    ):
        assert reason in log, reason
    harness.node.destroy_publisher(pub)


def test_diagnostics_carry_every_key(harness: Harness, node) -> None:
    status = harness.last_status(NAME)
    assert status is not None
    assert [k for k in KEYS if k not in status] == []
    assert status["hardware_id"] == "cpu" and status["device"] == "cpu"
    assert status["precision"] == "fp32" and status["weights"] == "random"
    assert status["worker_state"] == "READY" and status["worker_restarts"] == "0"
    assert status["level"] == WARN and "RANDOM weights" in status["message"]
    assert float(status["latency_ms_p50"]) > 0 and float(status["detect_ms"]) > 0
    [arr] = harness.messages("/diagnostics")[-1:]
    assert arr.header.stamp.sec > 0


def test_runtime_parameters_through_the_service(harness: Harness, node) -> None:
    def double(v: float) -> ParameterValue:
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)

    def strings(v: list[str]) -> ParameterValue:
        return ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=v)

    res = _set_parameter(harness, "detector.confidence", double(1.5))
    assert not res.successful and "detector.confidence" in res.reason and "1" in res.reason
    res = _set_parameter(
        harness, "input.rotation", ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                                  integer_value=180))  # fmt: skip
    assert not res.successful and "read-only" in res.reason
    res = _set_parameter(harness, "detector.classes", strings(["unicorn"]))
    assert not res.successful and "unicorn" in res.reason
    res = _set_parameter(harness, "detector.classes", strings(["person"]))
    assert res.successful, res.reason
    pub = harness.publisher("/image", Image, reliable=True)
    start = time.monotonic()

    def person_only() -> bool:
        arrays = [a for a in harness.messages(DETS, start) if a.detections]
        return len(arrays) >= 2 and all(
            d.results[0].hypothesis.class_id == "person" for a in arrays[-2:] for d in a.detections
        )

    assert _feed(pub, harness, person_only, "classes")
    res = _set_parameter(harness, "detector.classes", strings([]))
    assert res.successful, res.reason
    harness.node.destroy_publisher(pub)


def test_kill_9_of_the_worker_error_then_ok_and_results_resume(harness: Harness, node) -> None:
    pub = harness.publisher("/image", Image, reliable=True)
    [worker] = node.workers()
    start = time.monotonic()
    os.kill(worker, 9)
    killed = time.monotonic()
    pub.publish(STREAM.image("during-restart"))

    def level_error() -> bool:
        return any(s.level[0] == ERROR for s in harness.statuses(NAME, killed))

    assert wait_for(level_error, 5), harness.last_status(NAME, killed)
    error = next(s for s in harness.statuses(NAME, killed) if s.level[0] == ERROR)
    assert "worker down" in error.message
    assert any(kv.key == "worker_state" and kv.value in ("RESTARTING", "STARTING")
               for kv in error.values)  # fmt: skip

    def recovered() -> bool:
        status = harness.last_status(NAME, killed) or {}
        return status.get("worker_state") == "READY" and status.get("level") != ERROR

    assert wait_for(recovered, 180), harness.last_status(NAME)
    status = harness.last_status(NAME)
    assert status["worker_restarts"] == "1" and status["level"] == WARN  # random weights
    assert node.workers() != [worker]
    after = time.monotonic()
    assert _feed(pub, harness, lambda: STREAM.stamps(harness.messages(DETS, after), "resumed"),
                 "resumed")  # fmt: skip
    # Never a result on the wrong frame: every output header is one that was sent.
    for topic in OUTPUTS:
        for msg in harness.messages(topic, start):
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            assert STREAM.sent.get(key) == msg.header.frame_id
    harness.node.destroy_publisher(pub)


def test_lifecycle_cleanup_frees_the_worker_and_configure_brings_it_back(
    harness: Harness, node: NodeProcess
) -> None:
    pid = node.pid
    [worker] = node.workers()
    assert _change_state(harness, Transition.TRANSITION_DEACTIVATE)
    assert _change_state(harness, Transition.TRANSITION_CLEANUP)
    assert wait_for(lambda: not Path(f"/proc/{worker}").exists(), 5), "worker still running"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"aria_{pid}_")]
    assert _change_state(harness, Transition.TRANSITION_CONFIGURE)
    assert _change_state(harness, Transition.TRANSITION_ACTIVATE)
    assert len(node.workers()) == 1
    pub = harness.publisher("/image", Image, reliable=True)
    after = time.monotonic()
    assert _feed(pub, harness, lambda: STREAM.stamps(harness.messages(DETS, after), "reborn"),
                 "reborn")  # fmt: skip
    harness.node.destroy_publisher(pub)
    assert "inference worker down" in node.log() and "ready again after 1" in node.log()


def test_ctrl_c_stops_the_worker_and_frees_shared_memory(node: NodeProcess) -> None:
    workers = node.workers()
    pid = node.pid
    assert any(name.startswith(f"aria_{pid}_") for name in os.listdir("/dev/shm"))
    started = time.monotonic()
    assert node.interrupt(timeout=15) == 0, node.log()[-3000:]
    assert time.monotonic() - started < 10
    assert not [p for p in workers if Path(f"/proc/{p}").exists()], "worker left behind"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"aria_{pid}_")]
