"""The container node: the ``composition_interfaces`` services and the registry of loaded nodes.

``ComponentManager`` is what ``ros2 component load/list/unload`` and launch_ros's
``LoadComposableNodes`` talk to: ``~/_container/load_node``, ``~/_container/unload_node`` and
``~/_container/list_nodes`` on a plain rclpy node (``perception_container`` by default). Three
kinds of thread share the work (docs/design.md, "Composition"):
- the services run on a small thread pool of their own, so ``list_nodes`` and ``unload_node``
  answer while a node loads;
- loads are done one at a time by the thread that calls :meth:`ComponentManager.serve_loads`
  (the main thread): building a node starts its worker, which takes seconds, and Ctrl-C or
  SIGTERM interrupt it there as they interrupt ``perception_node``'s start;
- the loaded nodes spin on a :class:`~aria_perception.ros.node_host.NodeHost`.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Any

import rclpy.logging
from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_services_default

from aria_perception.errors import ConfigError, shorten
from aria_perception.ros.component_request import NodeSpec, default_node_name, spec_from_request
from aria_perception.ros.node_host import NodeHost
from aria_perception.ros.plugins import load_plugin

__all__ = ["CONTAINER_NAME", "Component", "ComponentManager"]

#: The container node's default name (``-r __node:=NAME`` renames it, as launch_ros does).
CONTAINER_NAME = "perception_container"
#: Threads that answer the services. A load holds one while it waits for its turn.
_SERVICE_THREADS = 8
#: Loads that may wait at once; more are refused, so list and unload always find a thread.
_MAX_WAITING_LOADS = _SERVICE_THREADS - 2


@dataclasses.dataclass(frozen=True)
class Component:
    """One node in the container: its id (from 1, never reused), full name and the node."""

    unique_id: int
    full_name: str
    node: Any


@dataclasses.dataclass
class _LoadJob:
    request: Any
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    response: Any = None


class ComponentManager:
    """The container node, its services, the loaded nodes and their executor.

    Args:
        forwarded: the container's arguments every loaded node gets
            (:func:`~aria_perception.ros.component_request.forwarded_arguments`).
        name: the container node's name (global ``__node:=``/``__ns:=`` rules apply to it).
        context: the rclpy context (``None``: the default one).
    """

    def __init__(
        self, forwarded: list[str], name: str = CONTAINER_NAME, context: Any = None
    ) -> None:
        self.node = Node(name, context=context)
        self._context = self.node.context
        self._logger = self.node.get_logger()
        self._forwarded = list(forwarded)
        self._host = NodeHost(self._context, self._forget)
        self._lock = threading.Lock()
        self._components: dict[int, Component] = {}
        self._next_id = 1
        self._jobs: queue.Queue[_LoadJob] = queue.Queue()
        self._waiting = 0
        self._closing = threading.Event()
        group = ReentrantCallbackGroup()
        qos = QoSProfile(**{**_qos_fields(qos_profile_services_default), "depth": 200})
        for srv_type, name_, callback in (
            (LoadNode, "~/_container/load_node", self._on_load),
            (UnloadNode, "~/_container/unload_node", self._on_unload),
            (ListNodes, "~/_container/list_nodes", self._on_list),
        ):
            self.node.create_service(
                srv_type, name_, callback, qos_profile=qos, callback_group=group
            )
        self._executor = MultiThreadedExecutor(num_threads=_SERVICE_THREADS, context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._serve, name="aria-container", daemon=True)

    @property
    def full_name(self) -> str:
        """The container node's fully qualified name."""
        return self.node.get_fully_qualified_name()

    def components(self) -> list[Component]:
        """The nodes loaded now, by id."""
        with self._lock:
            return [self._components[k] for k in sorted(self._components)]

    def start(self) -> None:
        """Spin the loaded nodes and answer the services (each on its own threads)."""
        self._host.start()
        self._thread.start()

    # ------------------------------------------------------------------ loading (one thread)

    def construct(self, cls: Any, spec: NodeSpec) -> Any:
        """Build one node of ``cls`` as ``spec`` says; it is neither added nor registered.

        Raises:
            ConfigError: the node refused a parameter (the node's own message).
            Exception: whatever else the constructor raised.
        """
        if spec.log_level:
            # Set before the node exists, so what it logs while starting follows the level.
            expected = spec.expected_name(default_node_name(cls))
            rclpy.logging.set_logger_level(expected.strip("/").replace("/", "."), spec.log_level)
        node = cls(spec.name, **spec.kwargs()) if spec.name else cls(**spec.kwargs())
        if spec.log_level:
            node.get_logger().set_level(spec.log_level)
        return node

    def add(self, node: Any) -> Component:
        """Register a built node under the next id and spin it."""
        with self._lock:
            component = Component(self._next_id, node.get_fully_qualified_name(), node)
            self._components[component.unique_id] = component
            self._next_id += 1
        self._host.add(node)
        return component

    def load(self, request: Any) -> Any:
        """Handle one ``LoadNode`` request here and now; the response.

        A refused request (unknown package or plugin, a name already loaded, a parameter the
        node refuses, a worker that cannot start, an unsupported extra argument) is
        ``success: false`` with the reason in ``error_message``; nothing is left behind.
        """
        response = LoadNode.Response()
        try:
            spec = spec_from_request(request, self._forwarded)
            cls = load_plugin(spec.package, spec.plugin)
            self._check_free(spec.expected_name(default_node_name(cls)))
            try:
                node = self.construct(cls, spec)
            except ConfigError as err:
                raise ConfigError(f"invalid parameter: {err}") from err
            except Exception as err:  # noqa: BLE001 - any plugin's failure is the answer
                raise ConfigError(
                    f"the node's constructor raised {type(err).__name__}: {err}"
                ) from err
            component = self._register(node)
        except ConfigError as err:
            response.success, response.error_message = False, str(err)
            self._logger.error(
                f"could not load {request.plugin_name!r} from {request.package_name!r}: "
                f"{shorten(str(err), 1000)}"
            )
            return response
        response.success = True
        response.full_node_name = component.full_name
        response.unique_id = component.unique_id
        self._logger.info(f"loaded {component.full_name} (id {component.unique_id})")
        return response

    def serve_loads(self) -> None:
        """Handle load requests as they come, until :meth:`close` or the context ends.

        Raises:
            Exception: what a loaded node's callback raised on the host's thread.
        """
        while not self._closing.is_set() and self._context.ok() and self._host.running:
            try:
                # Bounded, so a signal that reached another thread, or a context shut down
                # from outside, ends the loop too.
                job = self._jobs.get(timeout=1.0)
            except queue.Empty:
                continue
            try:
                job.response = self.load(job.request)
            finally:
                job.done.set()
        if self._host.error is not None:
            raise self._host.error

    def close(self) -> None:
        """Refuse waiting loads, stop the threads, destroy every node, the container's last."""
        self._closing.set()
        self._fail_waiting_loads()
        if self._thread.is_alive():
            self._executor.create_task(lambda: None)  # spin_once returns: the loop sees closing
            self._thread.join()
        self._executor.shutdown()
        self._host.close()
        with self._lock:
            components, self._components = list(self._components.values()), {}
        for component in components:
            component.node.destroy_node()
        self.node.destroy_node()

    def _register(self, node: Any) -> Component:
        start_error = getattr(node, "start_error", "")
        name = node.get_fully_qualified_name()
        try:
            if start_error:
                raise ConfigError(f"the node's worker did not start: {start_error}")
            self._check_free(name)
        except ConfigError:
            node.destroy_node()
            raise
        return self.add(node)

    def _check_free(self, full_name: str) -> None:
        if any(c.full_name == full_name for c in self.components()):
            raise ConfigError(f"a node named {full_name} is already loaded in this container")

    def _fail_waiting_loads(self) -> None:
        while True:
            try:
                self._jobs.get_nowait().done.set()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ services (thread pool)

    def _serve(self) -> None:
        try:
            while not self._closing.is_set() and self._context.ok():
                self._executor.spin_once()
        except ExternalShutdownException:
            pass

    def _on_load(self, request: Any, response: Any) -> Any:
        with self._lock:
            busy = self._waiting >= _MAX_WAITING_LOADS
            if not busy:
                self._waiting += 1
        if busy:
            response.error_message = (
                f"the container is busy: {_MAX_WAITING_LOADS} loads are waiting; try again"
            )
            return response
        try:
            job = _LoadJob(request)
            if not self._closing.is_set():
                self._jobs.put(job)
                while not job.done.wait(0.5) and not self._closing.is_set():
                    pass
        finally:
            with self._lock:
                self._waiting -= 1
        if job.response is None:
            response.error_message = "the container is shutting down"
            return response
        return job.response

    def _on_unload(self, request: Any, response: Any) -> Any:
        with self._lock:
            component = self._components.pop(request.unique_id, None)
        if component is None:
            response.error_message = f"No node found with unique_id: {request.unique_id}"
            self._logger.warning(response.error_message)
            return response
        if self._host.remove(component.node):
            component.node.destroy_node()  # its worker stops, its shared memory is unlinked
        response.success = True
        self._logger.info(f"unloaded {component.full_name} (id {component.unique_id})")
        return response

    def _on_list(self, request: Any, response: Any) -> Any:
        components = self.components()
        response.unique_ids = [c.unique_id for c in components]
        response.full_node_names = [c.full_name for c in components]
        return response

    def _forget(self, node: Any) -> None:
        """A node finalized by its lifecycle ``shutdown`` was destroyed by the host."""
        with self._lock:
            gone = [k for k, c in self._components.items() if c.node is node]
            for key in gone:
                del self._components[key]


def _qos_fields(profile: QoSProfile) -> dict[str, Any]:
    return {
        "history": profile.history,
        "depth": profile.depth,
        "reliability": profile.reliability,
        "durability": profile.durability,
    }
