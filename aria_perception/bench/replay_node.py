"""What both replayers share: the bench's spun node, answer bookkeeping, waiting on a target.

:class:`~aria_perception.bench.replay.Replayer` (one stream) and
:class:`~aria_perception.bench.stream_replay.StreamReplayer` (several) each hold a
:class:`BenchNode` and record answers with :func:`take_answer`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from aria_perception.bench.errors import TargetExitedError, TargetTimeoutError
from aria_perception.bench.observations import FrameRecord
from aria_perception.bench.replay_messages import sent_ns
from aria_perception.bench.replay_settings import result_qos, with_message_info


class BenchNode:
    """The bench's own rclpy node, spun by a single-threaded executor on a daemon thread.

    Args:
        name: The node's name (its spinning thread is ``<name>-spin``).
    """

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(name, start_parameter_services=False)
        self._with_info = with_message_info()
        self._executor = SingleThreadedExecutor(context=self.node.context)
        self._executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)

    def start(self) -> None:
        """Start spinning (callbacks run on the spinning thread from now on)."""
        self._spinner.start()

    def subscribe(self, msg_t: Any, topic: str, handler: Callable[[Any, Any], None]) -> None:
        """Subscribe with the results' QoS; ``handler(msg, info)`` is called per message.

        ``info`` is the ``MessageInfo`` where rclpy gives one (Humble's does not: then None).
        """
        if self._with_info:
            self.node.create_subscription(msg_t, topic, handler, result_qos())
        else:
            self.node.create_subscription(msg_t, topic, lambda m: handler(m, None), result_qos())

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self._executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def close(self, acked: Iterable[Any] = ()) -> None:
        """Stop spinning and destroy the node.

        Args:
            acked: Publishers (None ones are passed over) whose last messages the target
                should get first: the last frames' CameraInfo may still be on its way (the
                answers came on the images' own path).
        """
        from rclpy.duration import Duration

        for publisher in acked:
            if publisher is not None:
                publisher.wait_for_all_acked(Duration(seconds=5.0))
        self._executor.shutdown(timeout_sec=2.0)
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()


def take_answer(
    rec: FrameRecord, opened: dict[int, FrameRecord], msg: Any, info: Any, recv_ns: int
) -> None:
    """Record ``msg`` as the answer to ``rec`` (the first one counts) and close older frames.

    Answers of one stream come in frame order: its frames before this one that are still
    unanswered were dropped by the target, so they no longer hold a place in the window. (A
    late answer of one is still recorded: records are looked up by stamp.) The caller holds
    the replayer's lock.
    """
    if rec.recv_ns is None:
        rec.recv_ns = recv_ns
        rec.detections = len(msg.detections)
        rec.header_ok = msg.header.frame_id == rec.frame_id
        rec.sent_ns = sent_ns(info)
    for older in [s for s in opened if s <= rec.stamp_ns]:
        del opened[older]


def reports_for(status_name: str, node_name: str) -> bool:
    """Whether a diagnostics status named ``status_name`` is the one of node ``node_name``."""
    tail = status_name.split(": ", 1)[-1]
    return tail == node_name or tail.endswith("/" + node_name)


def wait_for_target(
    ready: Callable[[], bool],
    deadline: float,
    alive: Callable[[], bool],
    exited: str,
    timed_out: Callable[[], str],
) -> None:
    """Poll ``ready`` every 50 ms until it holds.

    Args:
        ready: The condition waited for (checked first, before any wait).
        deadline: ``time.monotonic()`` value to give up at.
        alive: Returns False once the target process is gone.
        exited: The message when the target died first.
        timed_out: Builds the message when the deadline passed first.

    Raises:
        TargetExitedError: The target died.
        TargetTimeoutError: The deadline passed.
    """
    while not ready():
        if not alive():
            raise TargetExitedError(exited)
        if time.monotonic() > deadline:
            raise TargetTimeoutError(timed_out())
        time.sleep(0.05)
