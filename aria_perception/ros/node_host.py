"""The loaded nodes' executor: one single-threaded executor on a thread of its own (no torch).

The container's nodes are spun here exactly as ``perception_node`` spins its one node (short
callbacks only: see :func:`aria_perception.ros.runner.spin` for why single-threaded). Nodes are
added from any thread. They are removed on this thread, between two callbacks, so no callback
of a node runs while it is taken out, and the executor's next wait no longer holds its
entities: after :meth:`NodeHost.remove` returns, the node can be destroyed from any thread.
A node whose lifecycle ``shutdown`` transition completed is removed and destroyed here, and
``on_finalized`` is told.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

__all__ = ["NodeHost"]


class NodeHost:
    """Spins nodes on a single-threaded executor in a thread; nodes come and go meanwhile.

    Args:
        context: the rclpy context of the nodes.
        on_finalized: called on the host's thread with each node it destroyed after the node's
            lifecycle ``shutdown`` (``node.finalized`` true).
    """

    def __init__(self, context: Any, on_finalized: Callable[[Any], None]) -> None:
        self._executor = SingleThreadedExecutor(context=context)
        self._context = context
        self._on_finalized = on_finalized
        self._live: list[Any] = []  # touched on the host thread only
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aria-node-host", daemon=True)
        self.error: BaseException | None = None

    @property
    def running(self) -> bool:
        """True while the thread spins (False once closed, or after a callback raised)."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start spinning."""
        self._thread.start()

    def add(self, node: Any) -> None:
        """Spin ``node`` from now on (any thread)."""
        self._call(self._add, node)

    def remove(self, node: Any) -> bool:
        """Stop spinning ``node`` (any thread); False if the host did not hold it.

        Returns once the node is out of the executor; the caller then destroys it.
        """
        return bool(self._call(self._remove, node))

    def close(self) -> None:
        """Stop the thread (the nodes are left to the caller to destroy)."""
        self._closing.set()
        if self._thread.is_alive():
            self._wake()
            self._thread.join()
        self._executor.shutdown(timeout_sec=0)

    def _call(self, func: Callable[[Any], Any], node: Any) -> Any:
        """Run ``func(node)`` on the host thread (here if it is not running) and return it."""
        if not self._thread.is_alive() or threading.current_thread() is self._thread:
            return func(node)
        done = threading.Event()
        box: list[Any] = []

        def task() -> None:
            try:
                box.append(func(node))
            finally:
                done.set()

        self._executor.create_task(task)
        while not done.wait(1.0):
            if not self._thread.is_alive():  # closed meanwhile: nothing spins the task
                return func(node)
        return box[0] if box else None

    def _add(self, node: Any) -> None:
        if node not in self._live:
            self._live.append(node)
            self._executor.add_node(node)

    def _remove(self, node: Any) -> bool:
        if node not in self._live:
            return False
        self._live.remove(node)
        self._executor.remove_node(node)
        return True

    def _wake(self) -> None:
        # A task makes spin_once return; a plain wake-up only makes it wait again.
        self._executor.create_task(lambda: None)

    def _run(self) -> None:
        try:
            while not self._closing.is_set() and self._context.ok():
                self._executor.spin_once()
                for node in [n for n in self._live if getattr(n, "finalized", False)]:
                    self._remove(node)
                    node.destroy_node()
                    self._on_finalized(node)
        except ExternalShutdownException:
            pass  # the context was shut down (Ctrl-C, SIGTERM): the main thread cleans up
        except Exception as err:  # noqa: BLE001 - kept for the main thread, which re-raises it
            self.error = err
