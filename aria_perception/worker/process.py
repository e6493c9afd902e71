"""One generation of the worker process: spawn, ready handshake, messages, kill, retire.

A :class:`WorkerProcess` owns the ``multiprocessing`` process (``spawn`` context) running
:func:`aria_perception.worker.child.run` and the parent's end of its pipe. It knows nothing of
frames or restarts; the supervisor decides what to send and when to end it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess

from aria_perception.errors import WorkerDiedError, WorkerStartError
from aria_perception.records import EngineConfig
from aria_perception.worker import child
from aria_perception.worker import protocol as msg
from aria_perception.worker.settings import WorkerSettings

_log = logging.getLogger(__name__)

#: Longest wait between checks of the stop event during the start-up handshake.
_TICK_S = 0.25


def describe_exit(code: int | None) -> str:
    """How a worker ended, from its exit code, for messages ("was killed by SIGKILL")."""
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == child.EXIT_ENGINE_ERROR:
        return "exited after an engine error"
    return f"exited with code {code}"


class WorkerProcess:
    """A spawned worker and the parent's end of its pipe (use :meth:`spawn`).

    ``send`` may be called from several threads; ``receive`` from one.
    """

    def __init__(self, process: BaseProcess, conn: Connection, generation: int) -> None:
        self._process = process
        self._conn = conn
        self._send_lock = threading.Lock()
        self.generation = generation

    @classmethod
    def spawn(
        cls,
        ctx: SpawnContext,
        generation: int,
        config: EngineConfig,
        cameras: tuple[msg.CameraSpec, ...],
        settings: WorkerSettings,
        stopping: threading.Event,
    ) -> tuple[WorkerProcess, msg.Ready]:
        """Start worker ``generation`` and wait for its ready message.

        Args:
            ctx: The ``spawn`` multiprocessing context.
            generation: The number of this worker (1 for the first).
            config: What the worker builds its engine from.
            cameras: The cameras it serves from the start (their segments and settings).
            settings: Engine factory, heartbeat interval and ``startup_timeout_s``.
            stopping: Set by ``stop()``: the wait ends early.

        Returns:
            The running worker and its ready message.

        Raises:
            WorkerStartError: the worker could not be spawned, reported
                :class:`~protocol.StartFailed` (its error is the ``__cause__``), died, was not
                ready within ``startup_timeout_s``, or ``stopping`` was set. The process is
                gone by then.
        """
        start = msg.Start(
            generation=generation,
            parent_pid=os.getpid(),
            config=config,
            cameras=cameras,
            engine_factory=settings.engine_factory,
            heartbeat_interval_s=settings.heartbeat_interval_s,
        )
        conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=child.run,
            args=(child_conn, start),
            name=f"aria-worker-{start.generation}",
            daemon=True,
        )
        try:
            process.start()
        except BaseException as exc:
            conn.close()
            child_conn.close()
            if process.pid is not None:  # interrupted after the fork: that child goes too
                process.kill()
                process.join(5.0)
            if isinstance(exc, Exception):
                raise WorkerStartError(f"cannot spawn the worker: {exc}") from exc
            raise
        child_conn.close()  # only the child holds its end now, so its death reads as EOF here
        worker = cls(process, conn, generation)
        try:
            ready = worker._handshake(settings.startup_timeout_s, stopping)
        except BaseException:  # a failed start, or KeyboardInterrupt (SIGTERM) meanwhile
            worker.kill()
            raise
        info = ready.info
        _log.info(
            "worker %d ready in %.1f s (pid %d, %s, %s, weights %s)",
            generation,
            ready.startup_s,
            ready.pid,
            info.device,
            info.precision,
            info.weights,
        )
        return worker, ready

    def _handshake(self, timeout_s: float, stopping: threading.Event) -> msg.Ready:
        deadline = time.monotonic() + timeout_s
        while True:
            if stopping.is_set():
                raise WorkerStartError("worker start-up interrupted by stop()")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerStartError(
                    f"worker was not ready within {timeout_s:g} s (worker.startup_timeout_s)"
                )
            if not self.wait(min(remaining, _TICK_S)):
                continue
            try:
                reply = self.receive()
            except WorkerDiedError as err:
                raise WorkerStartError(f"{err} during start-up") from None
            if isinstance(reply, msg.Ready):
                return reply
            if isinstance(reply, msg.StartFailed):
                _log.debug("worker start-up traceback:\n%s", reply.error.traceback)
                error = WorkerStartError(f"worker failed to start: {reply.error}")
                raise error from reply.error.to_exception()

    @property
    def pid(self) -> int | None:
        """The worker's process id."""
        return self._process.pid

    @property
    def exitcode(self) -> int | None:
        """The exit code once the process ended (negative: killed by that signal)."""
        return self._process.exitcode

    def is_alive(self) -> bool:
        """Whether the process runs."""
        return bool(self._process.is_alive())

    def wait(self, timeout_s: float) -> bool:
        """Wait until a message is waiting or the process ended; False on timeout."""
        return bool(wait([self._conn, self._process.sentinel], max(0.0, timeout_s)))

    def send(self, message: object) -> bool:
        """Send ``message``; False when the worker is gone (its death is seen elsewhere)."""
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError):
            return False
        return True

    def receive(self) -> object | None:
        """The next message if one is waiting, else ``None``.

        Raises:
            WorkerDiedError: the process ended and every message it sent has been read.
        """
        try:
            if self._conn.poll():
                return self._conn.recv()
            if self._process.is_alive():
                return None
        except (EOFError, OSError):
            pass
        self._process.join(1.0)
        raise WorkerDiedError(f"worker (pid {self.pid}) {describe_exit(self.exitcode)}")

    def kill(self) -> None:
        """Kill the process (if it runs), reap it and close the pipe."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5.0)
        self._conn.close()

    def retire(self, graceful: bool, timeout_s: float) -> None:
        """End the worker: if ``graceful``, ask it to exit, then terminate, then kill.

        Args:
            graceful: Send :class:`~protocol.Shutdown` and wait first.
            timeout_s: About the longest this takes before the kill.
        """
        if graceful and self._process.is_alive():
            self.send(msg.Shutdown())
            self._process.join(timeout_s * 0.8)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout_s * 0.2)
        self.kill()
