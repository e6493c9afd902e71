"""How the console scripts run their nodes: one executor, SIGTERM as Ctrl-C, exit when done.

``perception_node`` and ``perception_container`` install :class:`SigtermInterrupt` before
``rclpy.init`` and spin their nodes with :func:`spin` until Ctrl-C, SIGTERM or the lifecycle
``shutdown`` transition of every node.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from rclpy.executors import SingleThreadedExecutor

__all__ = ["SigtermInterrupt", "spin"]


class SigtermInterrupt:
    """Within the block, SIGTERM interrupts the main thread as Ctrl-C does, once.

    rclpy's own SIGTERM handler only shuts its context down: a node still being built (its
    worker importing torch) would go on, then fail its lifecycle transition on the dead context
    and exit with an error. Installed before ``rclpy.init``, this handler is the one rclpy's
    chains to (as Python's Ctrl-C handler is for SIGINT): it raises ``KeyboardInterrupt``, so
    SIGTERM takes the path of Ctrl-C at any moment. After the first signal, or once
    :meth:`shield` is called (the cleanup begins), further ones are ignored: the cleanup runs
    to its end. Outside the main thread (where no handler can be set) it does nothing.
    """

    def __init__(self) -> None:
        self._shielded = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SigtermInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def shield(self) -> None:
        """From now on SIGTERM is ignored (the cleanup must not be interrupted)."""
        self._shielded = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._shielded:
            return
        self._shielded = True
        raise KeyboardInterrupt


def spin(nodes: list[Any]) -> None:
    """Spin ``nodes`` on one single-threaded executor until shutdown or none is left.

    A node whose lifecycle ``shutdown`` transition completed (``node.finalized``) is removed
    and destroyed at once; when no node is left, this returns. Ctrl-C and SIGTERM end it with
    ``KeyboardInterrupt`` or ``ExternalShutdownException``.

    The executor only runs short callbacks (validate a frame and copy it into shared memory,
    diagnostics, parameter and lifecycle services): results are published from the worker
    supervisor's own thread. rclpy's MultiThreadedExecutor was measured at 100 % of a core on
    the GPU machine with 1408x1408 frames at 30 Hz, re-waking on a subscription whose callback
    group was busy, and starved the result thread (3 FPS out); the single-threaded executor
    has no such loop.
    """
    executor = SingleThreadedExecutor()
    live = list(nodes)
    for node in live:
        executor.add_node(node)
    try:
        # Executor.spin is this loop without the check, one callback per turn.
        while live and executor.context.ok():
            executor.spin_once()
            for node in [n for n in live if n.finalized]:
                executor.remove_node(node)
                node.destroy_node()
                live.remove(node)
    finally:
        executor.shutdown()
