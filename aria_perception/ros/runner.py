"""How the console scripts run their nodes: one executor, SIGTERM as Ctrl-C, exit when done.

``perception_node`` runs its node with :func:`run_nodes`: it installs :class:`SigtermInterrupt`
before ``rclpy.init`` and spins the node with :func:`spin` until Ctrl-C, SIGTERM or the
lifecycle ``shutdown`` transition. ``perception_container`` installs :class:`SigtermInterrupt`
the same way and spins its nodes on a :class:`~aria_perception.ros.node_host.NodeHost`.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from aria_perception.errors import ConfigError

__all__ = ["SigtermInterrupt", "run_nodes", "spin"]


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


def run_nodes(
    program: str,
    args: list[str] | None,
    make_nodes: Callable[[], Iterable[Any]],
    no_nodes: str = "no nodes",
) -> int:
    """Run a console script's nodes: build them, spin them, destroy them; the exit code.

    SIGTERM counts as Ctrl-C from before ``rclpy.init`` on, and the cleanup (every node built
    is destroyed, then rclpy shut down) is never interrupted.

    Args:
        program: the script's name, for its error messages.
        args: the command line for ``rclpy.init`` (``None``: ``sys.argv``).
        make_nodes: builds the nodes (after ``rclpy.init``), one at a time; every node built
            is destroyed at the end, whatever happens while the others are built.
        no_nodes: the error printed when ``make_nodes`` builds none.

    Returns:
        0 after Ctrl-C, SIGTERM or the lifecycle ``shutdown`` of every node; 1 when a node's
        worker cannot start (every node is still built, none spun: the node logged why); 2 on
        an invalid parameter (a ``ConfigError``) or when there is no node to run.
    """
    with SigtermInterrupt() as sigterm:
        rclpy.init(args=args)
        nodes: list[Any] = []
        code = 0
        try:
            for node in make_nodes():
                nodes.append(node)
                if node.start_error:
                    code = 1  # already logged; nothing to serve without a worker
            if not nodes:
                print(f"{program}: {no_nodes}", file=sys.stderr)
                code = 2
            elif code == 0:
                spin(nodes)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except ConfigError as err:
            print(f"{program}: invalid parameter: {err}", file=sys.stderr)
            code = 2
        finally:
            sigterm.shield()
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()
    return code
