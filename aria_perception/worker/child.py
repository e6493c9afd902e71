"""The worker process: builds the engine, runs frames from shared memory, reports back.

:func:`run` is the target of the spawned process. Importing this module is light (no torch): the
engine class named in :class:`~aria_perception.worker.protocol.Start` is imported inside the child,
so the models and the CUDA context exist only there. The engine must implement
:class:`~aria_perception.worker.engine_api.InferenceEngine`; that is checked at start-up.
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

import numpy as np

from aria_perception import errors
from aria_perception.errors import ConfigError, FrameError
from aria_perception.worker import protocol as msg
from aria_perception.worker.engine_api import InferenceEngine, check_engine
from aria_perception.worker.slots import OUTPUT_SLOTS, SharedSlots

#: Exit code of a worker that stops after an engine error (the parent restarts it).
EXIT_ENGINE_ERROR = 3
#: Exit code of the ``crash`` debug action.
EXIT_DEBUG_CRASH = 70
#: How old the GPU memory figure sent with a result may be.
_FRAME_MEMORY_AGE_S = 1.0


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
        self.slots: SharedSlots | None = None
        self.quiet = threading.Event()  # set by the "freeze" debug action: heartbeats stop
        self.raise_next: msg.ErrorInfo | None = None
        self.memory_mb = (0.0, 0.0)
        # The newest request not yet run, and when its message arrived.
        self.next_request: tuple[msg.FrameRequest, float] | None = None
        self.free_outputs = list(range(OUTPUT_SLOTS))  # output slots the parent released
        self.memory_at = -float("inf")

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

    def heartbeat(self) -> None:
        interval = self.start.heartbeat_interval_s
        while True:
            time.sleep(interval)
            if os.getppid() != self.start.parent_pid:
                # The parent died (we were re-parented); a busy main thread would never see EOF.
                os._exit(0)
            if not self.quiet.is_set():
                current, peak = self.memory()
                self.send(msg.Heartbeat(self.gen, time.monotonic(), current, peak))

    def main(self) -> int:
        started = time.monotonic()
        threading.Thread(target=self.heartbeat, name="aria-heartbeat", daemon=True).start()
        try:
            self.slots = SharedSlots.attach(self.start.shm_name, self.start.layout)
            factory = load_factory(self.start.engine_factory)
            engine = check_engine(factory(self.start.config), self.start.engine_factory)
            self.engine = engine
            if self.start.thresholds is not None:
                engine.set_thresholds(self.start.thresholds)
            info = engine.info
            # Page-locked slots: frames go up and depth maps come down by DMA, no staging.
            engine.register_host_buffer(self.slots.buffer)
        except Exception as exc:  # reported to the parent, which decides
            self.send(msg.StartFailed(self.gen, msg.ErrorInfo.from_exception(exc)))
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
                self.slots.close()

    def loop(self, engine: InferenceEngine) -> int:
        """Read messages; run the newest waiting request once everything sent so far is read.

        A request runs when an output slot is free (the parent releases each after delivering
        its result); meanwhile newer requests replace older waiting ones, which are skipped.
        """
        while True:
            runnable = self.next_request is not None and self.free_outputs
            if not runnable or self.conn.poll(0):
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    return 0  # the parent closed the pipe or died
                received = time.monotonic()
                code = self.on_message(engine, message, received)
                if code is not None:
                    return code
                continue
            assert self.next_request is not None
            (request, received), self.next_request = self.next_request, None
            if not self.run_request(engine, request, received):
                return EXIT_ENGINE_ERROR

    def on_message(self, engine: InferenceEngine, message: object, received: float) -> int | None:
        """Act on one message; an exit code when the worker must stop."""
        if isinstance(message, msg.FrameRequest):
            if self.next_request is not None:
                self.send(msg.Skipped(self.next_request[0].frame_id, self.gen))
            self.next_request = (message, received)
        elif isinstance(message, msg.Release):
            if message.out_slot not in self.free_outputs:
                self.free_outputs.append(message.out_slot)
        elif isinstance(message, msg.SetRectification):
            self.set_rectification(engine, message)
        elif isinstance(message, msg.SetThresholds):
            try:
                engine.set_thresholds(message.thresholds)
            except Exception as exc:  # reported, the engine keeps its thresholds
                self.send(msg.Failure(self.gen, msg.ErrorInfo.from_exception(exc)))
        elif isinstance(message, msg.Debug):
            self.debug(message)
        elif isinstance(message, msg.Shutdown):
            return 0
        return None

    def run_request(
        self, engine: InferenceEngine, message: msg.FrameRequest, received: float
    ) -> bool:
        """Process one frame; False when the engine failed and the worker must go."""
        assert self.slots is not None
        out_slot = self.free_outputs.pop(0)
        # Before the engine sees the frame: should it kill us, the parent knows which one did.
        self.send(msg.Started(message.frame_id, self.gen, time.monotonic()))
        try:
            if self.raise_next is not None:
                injected, self.raise_next = self.raise_next, None
                raise injected.to_exception()
            size = int(np.prod(message.shape))
            pixels = self.slots.input(message.in_slot)[:size].reshape(message.shape)
            out = self.slots.output(out_slot)
            depth_out: np.ndarray | None = None
            extra: dict[str, Any] = {}
            if message.want_rect and out.rect.size:  # optional: only rectifying engines get it
                extra["rect_out"] = out.rect
            if message.want_depth:
                # The engine writes the depth map straight into the output slot: an (H, W) view
                # for raw frames, the flat slot for compressed ones (size known once decoded)
                # and rectified ones (the rectified size).
                if len(message.shape) >= 2 and not self.start.config.rectify:
                    h, w = message.shape[:2]
                    depth_out = out.depth[: h * w].reshape(h, w)
                else:
                    depth_out = out.depth
            t0 = time.monotonic()
            result = engine.process(
                pixels,
                message.encoding,
                want_depth=message.want_depth,
                depth_out=depth_out,
                **extra,
            )
            t1 = time.monotonic()
            n, depth_shape = out.write(result)
            rect_shape = out.write_rectified(result)
            t2 = time.monotonic()
        except FrameError as exc:
            self.free_outputs.append(out_slot)  # nothing in it for the parent to read
            self.send(
                msg.FrameFailed(
                    message.frame_id, self.gen, msg.ErrorInfo.from_exception(exc), fatal=False
                )
            )
            return True
        except Exception as exc:  # CUDA errors, OOM: restart with a fresh context
            self.send(
                msg.FrameFailed(
                    message.frame_id, self.gen, msg.ErrorInfo.from_exception(exc), fatal=True
                )
            )
            return False
        current, peak = self.memory(max_age_s=_FRAME_MEMORY_AGE_S)
        self.send(
            msg.Result(
                frame_id=message.frame_id,
                generation=self.gen,
                out_slot=out_slot,
                n_detections=n,
                depth_shape=depth_shape,
                depth_fresh=bool(result.depth_fresh),
                times=result.times,
                engine_ms=(t1 - t0) * 1e3,
                copy_out_ms=(t2 - t1) * 1e3,
                received_at=received,
                started_at=t0,
                sent_at=time.monotonic(),
                gpu_mem_mb=current,
                gpu_mem_peak_mb=peak,
                rect_shape=rect_shape,
            )
        )
        return True

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
            self.send(msg.Failure(self.gen, msg.ErrorInfo.from_exception(exc)))

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
