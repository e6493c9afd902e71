"""Track IDs through the real node: stable over a repeated frame, across a worker crash; LabelInfo.

One node process (CPU, random weights, a real worker), so the checks share one worker spawn.
With ``detector.confidence: 0.0`` random weights give ~100 boxes a frame scoring 1e-5 to
2e-4; the tracker's thresholds are set that low through a ``tracker.config`` file.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_harness import FAST_CPU, Harness, frame, running_node, wait_for
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from aria_perception.ros.image_codec import image_from_array

pytestmark = pytest.mark.slow

NAME = "tracking"
DETS = f"/{NAME}/detections"
W, H = 320, 240
#: Every box is tracked: scores of random weights are 1e-5..2e-4 (fuse_score would multiply
#: the IoU by them, so it is off).
LOW_THRESHOLDS = """\
track_high_thresh: 0.000001
track_low_thresh: 0.0
new_track_thresh: 0.000001
fuse_score: false
"""


@pytest.fixture(scope="module")
def harness(env: dict[str, str], domain_id: int) -> Iterator[Harness]:
    h = Harness.open(env, domain_id)
    h.subscribe(DETS, Detection2DArray)
    yield h
    h.close()


class Frames:
    """One picture, sent again and again with a new stamp each time."""

    def __init__(self, harness: Harness, pub: Any) -> None:
        self._harness, self._pub = harness, pub
        self._pixels = frame(H, W, seed=3)
        self._n = 0

    def answer(self, timeout: float = 120.0) -> Detection2DArray:
        """Send the picture; its detections (sent again when the worker lost it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._n += 1
            msg = image_from_array(self._pixels, "rgb8")
            msg.header.stamp.sec = 1_800_000_000 + self._n
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            self._pub.publish(msg)

            def mine(stamp: tuple[int, int] = stamp) -> Any:
                return next(
                    (m for m in self._harness.messages(DETS)
                     if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp),
                    None,
                )  # fmt: skip

            answer = wait_for(mine, min(30.0, max(deadline - time.monotonic(), 0.1)))
            if answer is not None:
                return answer
        pytest.fail("the node never answered the frame")


def _ids(msg: Detection2DArray) -> list[str]:
    return [d.id for d in msg.detections]


def test_ids_are_stable_and_survive_a_worker_crash(
    harness: Harness, env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "tracker.yaml"
    config.write_text(LOW_THRESHOLDS)
    params = {
        **FAST_CPU,
        "detector.max_detections": 100,
        "tracker.type": "bytetrack",
        "tracker.config": str(config),
    }
    with (
        running_node(NAME, params, env, harness, tmp_path / "node.log") as node,
        harness.publishing("/image", Image) as pub,
    ):
        assert wait_for(lambda: pub.get_subscription_count() > 0, 30), node.log()[-3000:]
        # The price of a tracker that outlives the worker: Ultralytics brings torch in.
        assert "libtorch" in node.maps()
        frames = Frames(harness, pub)
        answers = [frames.answer() for _ in range(6)]
        boxes = len(answers[-1].detections)
        assert boxes >= 20, f"random weights gave only {boxes} boxes"
        # Frame 1 confirms every track (a tracker's first frame), so from then on: the same IDs.
        stable = _ids(answers[1])
        assert all(stable) and len(set(stable)) == boxes, stable
        assert all(_ids(a) == stable for a in answers[2:]), [_ids(a) for a in answers]
        assert [d.results[0].hypothesis.class_id for d in answers[-1].detections][0].isalpha()

        # A late subscriber (transient local) gets the class map of the detector in use.
        labels: list[LabelInfo] = []
        lock = threading.Lock()

        def keep(msg: LabelInfo) -> None:
            with lock:
                labels.append(msg)

        qos = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        harness.node.create_subscription(LabelInfo, f"/{NAME}/label_info", keep, qos)
        assert wait_for(lambda: labels, 30), "no LabelInfo for a late subscriber"
        names = [c.class_name for c in labels[0].class_map]
        assert len(names) == 80 and names[0] == "person" and labels[0].threshold == 0.0
        assert [c.class_id for c in labels[0].class_map] == list(range(80))

        # The tracker lives in the node: a killed worker does not take the tracks with it.
        [worker] = node.workers()
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(
            lambda: (
                int((harness.last_status(NAME, killed) or {}).get("worker_restarts", 0)) >= 1
                and harness.last_status(NAME, killed)["worker_state"] == "READY"
            ),
            180,
        ), node.log()[-3000:]
        after = frames.answer()
        assert _ids(after) == stable, (stable, _ids(after))

        status = harness.last_status(NAME) or {}
        assert math.isfinite(float(status["track_ms"])) and float(status["track_ms"]) > 0
        log = node.log()
        assert "tracker reset (activation): bytetrack from" in log and "lost tracks kept" in log
