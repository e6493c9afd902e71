"""The worker process: builds the engine, runs frames from shared memory, reports back.

:func:`run` is the target of the spawned process. Importing this module is light (no torch): the
engine class named in :class:`~aria_perception.worker.protocol.Start` is imported inside the child,
so the models and the CUDA context exist only there. The engine must implement
:class:`~aria_perception.worker.engine_api.InferenceEngine`; that is checked at start-up.

One worker serves one or more cameras (:class:`~aria_perception.worker.child_camera.ChildCamera`):
each has its own segment, its own newest waiting request and its own output slots, and the
worker serves the cameras that have a request waiting round-robin, so no camera waits more than
one engine call per other camera. The heartbeat thread reports the main thread's progress (a
counter of frames and messages handled plus the engine's own ``progress``, if it has one), so the
parent can tell a slow worker from a hung one. With ``worker.batch_cameras`` the cameras that
can run together share one ``process_batch`` call (:mod:`~aria_perception.worker.child_batch`).
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from aria_perception import errors
from aria_perception.errors import ConfigError
from aria_perception.records import Thresholds
from aria_perception.worker import protocol as msg
from aria_perception.worker.child_batch import (
    BatchCall,
    Taken,
    batch_partners,
    batch_process,
    process_alone,
    run_batch,
)
from aria_perception.worker.child_camera import ChildCamera
from aria_perception.worker.engine_api import InferenceEngine, camera_keywords, check_engine

#: Exit code of a worker that stops after an engine error (the parent restarts it).
EXIT_ENGINE_ERROR = 3
#: Exit code of the ``crash`` debug action.
EXIT_DEBUG_CRASH = 70


def load_factory(path: str) -> Any:
    """Import ``"package.module:Name"`` and return ``Name``.

    Raises:
        ConfigError: the path is malformed or cannot be imported.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"engine factory must look like 'package.module:Class', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not (module_name + ".").startswith(err.name + "."):
            raise  # the engine module exists but something it imports does not
        raise ConfigError(f"engine factory {path!r}: no module named {err.name!r}") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ConfigError(f"engine factory {path!r}: {module_name} has no {attr!r}") from err


def run(conn: Connection, start: msg.Start) -> None:
    """Entry point of the worker process (target of the spawned ``Process``)."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A crash in native code (a model, CUDA) leaves a Python traceback on stderr.
    faulthandler.enable()
    code = _Worker(conn, start).main()
    if code:
        raise SystemExit(code)


class _Worker:
    def __init__(self, conn: Connection, start: msg.Start) -> None:
        self.conn = conn
        self.start = start
        self.gen = start.generation
        self.send_lock = threading.Lock()
        self.engine: InferenceEngine | None = None
        self.quiet = threading.Event()  # set by the "freeze" debug action: heartbeats stop
        self.raise_next: msg.ErrorInfo | None = None
        self.memory_mb = (0.0, 0.0)
        self.memory_at = -float("inf")
        self.cameras: dict[str, ChildCamera] = {}  # in the order they joined: the round
        self.last_served = ""  # the camera served last: the round goes on after it
        self.retired: list[ChildCamera] = []  # segments that may stay page-locked (see remove)
        self.steps = 0  # frames and messages handled: progress the heartbeat reports
        self.keywords: frozenset[str] = frozenset()  # per-camera keywords process() takes
        self.process_batch: BatchCall | None = None  # the engine's, when batching cameras
        self.process_alone: BatchCall | None = None  # the engine's process, for one frame
        config = start.config  # the engine is built with the config's thresholds
        self.applied = Thresholds(config.confidence, config.iou, config.classes)

    def send(self, message: object) -> None:
        try:
            with self.send_lock:
                self.conn.send(message)
        except (OSError, ValueError):
            # The parent is gone; nobody is left to report to.
            os._exit(0)

    def memory(self, max_age_s: float = 0.0) -> tuple[float, float]:
        """GPU memory (current, peak) in MB, re-read when older than ``max_age_s``.

        Reading torch's allocator statistics builds a dict of hundreds of entries (about
        0.2 ms each on the GPU machine): per frame, a figure at most a second old will do.
        """
        now = time.monotonic()
        if now - self.memory_at <= max_age_s:
            return self.memory_mb
        engine = self.engine
        if engine is None:
            return 0.0, 0.0
        try:
            current, peak = engine.memory_mb()
        except Exception:  # a figure for diagnostics must not kill the worker
            return 0.0, 0.0
        self.memory_mb, self.memory_at = (float(current), float(peak)), now
        return self.memory_mb

    def progress(self) -> int:
        """How far the main thread got: frames and messages handled, plus the engine's steps."""
        engine_steps = getattr(self.engine, "progress", 0)
        return self.steps + (engine_steps if isinstance(engine_steps, int) else 0)

    def heartbeat(self) -> None:
        interval = self.start.heartbeat_interval_s
        while True:
            time.sleep(interval)
            if os.getppid() != self.start.parent_pid:
                # The parent died (we were re-parented); a busy main thread would never see EOF.
                os._exit(0)
            if not self.quiet.is_set():
                current, peak = self.memory()
                now = time.monotonic()
                self.send(msg.Heartbeat(self.gen, now, current, peak, self.progress()))

    def main(self) -> int:
        started = time.monotonic()
        threading.Thread(target=self.heartbeat, name="aria-heartbeat", daemon=True).start()
        try:
            factory = load_factory(self.start.engine_factory)
            engine = check_engine(factory(self.start.config), self.start.engine_factory)
            self.engine = engine
            self.keywords = camera_keywords(engine)
            self.process_batch = batch_process(engine, self.start.config)
            self.process_alone = process_alone(engine, self.keywords)
            for spec in self.start.cameras:
                self.add_camera(engine, spec)
            info = engine.info
        except Exception as exc:  # reported to the parent, which decides
            self.send(msg.StartFailed(self.gen, msg.ErrorInfo.from_exception(exc)))
            self.close_cameras()
            return 1
        current, peak = self.memory()
        self.send(
            msg.Ready(self.gen, os.getpid(), info, current, peak, time.monotonic() - started)
        )
        try:
            return self.loop(engine)
        finally:
            try:
                engine.close()
            finally:
                self.close_cameras()

    def close_cameras(self) -> None:
        for camera in [*self.cameras.values(), *self.retired]:
            camera.slots.close()
        self.cameras.clear()
        self.retired.clear()

    def add_camera(self, engine: InferenceEngine, spec: msg.CameraSpec) -> None:
        """Attach a camera's segment, page-lock it, check its thresholds (raises if refused)."""
        camera = ChildCamera.attach(spec, self.applied if spec.thresholds is None else None)
        try:
            self.apply(engine, camera.thresholds)
            # Page-locked slots: frames go up and depth maps come down by DMA, no staging.
            engine.register_host_buffer(camera.slots.buffer)
        except BaseException:
            camera.slots.close()
            raise
        self.cameras[spec.camera] = camera

    def remove_camera(self, engine: InferenceEngine, name: str) -> None:
        """Forget a camera; its segment is let go once no page-locking can outlive it."""
        camera = self.cameras.pop(name, None)
        if camera is None:
            return
        unregister = getattr(engine, "unregister_host_buffer", None)
        if unregister is not None:
            unregister(camera.slots.buffer)
            camera.slots.close()
        else:
            # A registered range must not be unmapped under the driver (a later mapping at the
            # same address would read the old pages): kept mapped until the worker exits.
            self.retired.append(camera)

    def apply(self, engine: InferenceEngine, thresholds: Thresholds) -> None:
        """Make ``thresholds`` the engine's (a no-op when it has them already)."""
        if thresholds is not self.applied and thresholds != self.applied:
            engine.set_thresholds(thresholds)
            self.applied = thresholds

    def next_camera(self) -> ChildCamera | None:
        """The camera to serve next: round-robin among those with a request it can run."""
        names = list(self.cameras)
        if not names:
            return None
        first = names.index(self.last_served) + 1 if self.last_served in self.cameras else 0
        for name in names[first:] + names[:first]:
            camera = self.cameras[name]
            if camera.runnable:
                return camera
        return None

    def loop(self, engine: InferenceEngine) -> int:
        """Read messages; run a waiting request once everything sent so far is read.

        A camera's request runs when one of its output slots is free (the parent releases each
        after delivering its result); meanwhile a newer request of the camera replaces its
        older waiting one, which is skipped.
        """
        while True:
            camera = None if self.conn.poll(0) else self.next_camera()
            if camera is None:
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    return 0  # the parent closed the pipe or died
                received = time.monotonic()
                self.steps += 1
                code = self.on_message(engine, message, received)
                if code is not None:
                    return code
                continue
            request, received = camera.take()
            self.last_served = request.camera
            self.steps += 1
            partners = batch_partners(self.cameras, camera) if self.process_batch else []
            batch = [Taken(camera, request, received)]
            batch += [Taken(c, *c.take()) for c in partners]
            self.steps += len(partners)
            call = self.process_batch if partners else self.process_alone
            assert call is not None  # both are set once the engine is built
            if not run_batch(self, engine, call, batch, self.start.config.rectify):
                return EXIT_ENGINE_ERROR

    def on_message(self, engine: InferenceEngine, message: object, received: float) -> int | None:
        """Act on one message; an exit code when the worker must stop."""
        if isinstance(message, msg.FrameRequest):
            camera = self.cameras.get(message.camera)
            if camera is None:  # it left meanwhile: nobody waits for an answer
                return None
            replaced = camera.offer(message, received)
            if replaced is not None:
                self.send(msg.Skipped(replaced.frame_id, self.gen, replaced.camera))
        elif isinstance(message, msg.Release):
            camera = self.cameras.get(message.camera)
            if camera is not None:
                camera.release(message.out_slot)
        elif isinstance(message, msg.SetRectification):
            self.set_rectification(engine, message)
        elif isinstance(message, msg.SetThresholds):
            self.set_thresholds(engine, message)
        elif isinstance(message, msg.AddCamera):
            try:
                self.add_camera(engine, message.spec)
            except Exception as exc:  # reported; frames of that camera are then ignored
                self.send(
                    msg.Failure(self.gen, msg.ErrorInfo.from_exception(exc), message.spec.camera)
                )
        elif isinstance(message, msg.RemoveCamera):
            self.remove_camera(engine, message.camera)
        elif isinstance(message, msg.Debug):
            self.debug(message)
        elif isinstance(message, msg.Shutdown):
            return 0
        # msg.Wake: reading it was the point (the request follows once its frame is copied in).
        return None

    def set_thresholds(self, engine: InferenceEngine, message: msg.SetThresholds) -> None:
        """A camera's new thresholds: checked by the engine now, kept for its frames."""
        camera = self.cameras.get(message.camera)
        if camera is None:
            return
        try:
            self.apply(engine, message.thresholds)
        except Exception as exc:  # reported, the camera keeps its thresholds
            self.send(msg.Failure(self.gen, msg.ErrorInfo.from_exception(exc), message.camera))
            return
        camera.thresholds = message.thresholds

    def set_rectification(self, engine: InferenceEngine, message: msg.SetRectification) -> None:
        """Hand a camera's calibration to the engine; a refusal is reported, the worker goes on."""
        setter = getattr(engine, "set_rectification", None)
        try:
            if setter is None:
                raise ConfigError(
                    f"engine {self.start.engine_factory!r} cannot rectify (no set_rectification)"
                )
            setter(message.rectification, message.camera)
        except Exception as exc:  # reported; the engine keeps its earlier calibration
            self.send(msg.Failure(self.gen, msg.ErrorInfo.from_exception(exc), message.camera))

    def debug(self, message: msg.Debug) -> None:
        action = message.action
        if action in ("hang", "freeze"):
            if action == "freeze":
                self.quiet.set()
            while True:
                time.sleep(3600)
        elif action == "crash":
            os._exit(EXIT_DEBUG_CRASH)
        elif action == "segfault":
            faulthandler.disable()  # an injected crash needs no traceback on stderr
            os.kill(os.getpid(), signal.SIGSEGV)
        elif action == "raise":
            if not isinstance(getattr(errors, message.kind, None), type):
                self.send(
                    msg.Failure(
                        self.gen, msg.ErrorInfo("ConfigError", f"unknown error {message.kind!r}")
                    )
                )
                return
            self.raise_next = msg.ErrorInfo(message.kind, message.message or "injected")
        else:
            self.send(
                msg.Failure(self.gen, msg.ErrorInfo("ConfigError", f"unknown debug {action!r}"))
            )
