"""``bench --bag`` on an imported Aria bag: the RGB camera is replayed with its CameraInfo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aria_data import GEN1, aria_recording, calibration

from aria_perception.bench.aria_import import ImportSpec, import_recording

NAMESPACE = "/aria_target"
NODE_NAME = "aria_echo"


class CameraInfoTarget:
    """The echo reference, run here in a context of its own, also reading ``camera_info``.

    Like the perception node it takes ``image`` and ``camera_info`` relative to its namespace;
    it records every frame's header and every CameraInfo by stamp.
    """

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image

        from aria_perception.bench.echo import EchoNode

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = EchoNode(NODE_NAME, namespace=NAMESPACE, context=self.context)
        self.lock = threading.Lock()
        self.infos: dict[int, object] = {}
        self.frames: list[tuple[int, str]] = []  # stamp, frame_id
        self.node.create_subscription(CameraInfo, "camera_info", self._info, 50)
        self.node.create_subscription(Image, "image", self._image, 50)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    @staticmethod
    def _stamp(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def _info(self, msg) -> None:
        with self.lock:
            self.infos[self._stamp(msg)] = msg

    def _image(self, msg) -> None:
        with self.lock:
            self.frames.append((self._stamp(msg), msg.header.frame_id))

    def wait_infos(self, timeout_s: float) -> list[int]:
        """Wait until each frame's CameraInfo is in; the stamps still missing."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                missing = [s for s, _ in self.frames if s not in self.infos]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.05)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.mark.slow
def test_imported_bag_replays_rgb_with_camera_info(
    tmp_path: Path, domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = aria_recording(GEN1)
    bag = tmp_path / "aria_bag"
    import_recording(ImportSpec(path, bag, progress=False))  # rgb and both SLAM cameras

    # The DDS setup the bench gives itself.
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    target = CameraInfoTarget(domain_id)
    try:
        out = tmp_path / "out"
        args = f"--bag {bag} --attach --no-echo --namespace {NAMESPACE} --node-name {NODE_NAME}"
        args += " --rate 10 --frames 8 --throughput-frames 0 --warmup 1 --no-progress"
        args += f" --out {out} --domain-id {domain_id}"
        proc = subprocess.run(
            [sys.executable, "-m", "aria_perception.bench.cli", *args.split()],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=240,
        )
        missing = target.wait_infos(timeout_s=10.0)
    finally:
        target.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads((out / "report.json").read_text())
    # Three image topics, none chosen: Aria's RGB camera is the one replayed.
    assert rep["input"]["topic"] == "/camera_rgb/image_raw"
    assert (rep["input"]["width"], rep["input"]["height"]) == (1408, 1408)
    assert any("/camera_rgb/camera_info is published with each frame" in n for n in rep["notes"])
    [run] = rep["runs"]
    assert run["topics"]["image"] == f"{NAMESPACE}/image"
    assert run["latency"]["received"] == 8

    # The bench waited for the target's camera_info subscription: every frame, the first one
    # included, has its CameraInfo, which carries the frame's header.
    assert len(target.frames) >= 9  # prime, warm-up and the paced phase
    order = [s for s, _ in target.frames]
    lacking = [order.index(s) for s in missing]
    assert not lacking, f"frames {lacking} of {len(order)} came without CameraInfo"
    _, params, size = calibration(path, "camera-rgb")
    for stamp, frame_id in target.frames:
        info = target.infos[stamp]
        assert info.header.frame_id == frame_id == "camera_rgb"
        assert info.distortion_model == "fisheye624" and (info.width, info.height) == size
        assert list(info.d) == params[3:] and info.k[0] == params[0] == info.k[4]
