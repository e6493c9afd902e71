"""Control messages between the supervisor and the worker (small, picklable, no arrays).

Images, depth maps and detections travel through :mod:`aria_perception.worker.slots`; the pipe
only carries these records: which slot, which frame id and generation, shapes, counts and times.
Errors cross as :class:`ErrorInfo` (class name, message, traceback text) so that the parent never
has to unpickle a class it may not import (a torch exception, for instance).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from aria_perception import errors
from aria_perception.errors import AriaPerceptionError, EngineError, shorten
from aria_perception.optics import Rectification
from aria_perception.records import EngineConfig, EngineInfo, StageTimes, Thresholds
from aria_perception.worker.slots import SlotLayout

#: Actions of :class:`Debug` (fault injection for tests).
DEBUG_ACTIONS = ("hang", "freeze", "crash", "segfault", "raise")
#: Longest error message and traceback that cross (a message may quote a frame's bytes).
MAX_MESSAGE_CHARS = 1_000
MAX_TRACEBACK_CHARS = 20_000


@dataclass(frozen=True)
class ErrorInfo:
    """An error raised in the worker, as text.

    Attributes:
        kind: Name of a class in :mod:`aria_perception.errors`.
        message: The error's message.
        traceback: The worker's formatted traceback (for logs; may be empty).
    """

    kind: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc``; anything not ours becomes an ``EngineError`` naming its type."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        tb = shorten(tb, MAX_TRACEBACK_CHARS)
        if isinstance(exc, AriaPerceptionError):
            kind = type(exc).__name__
            if not isinstance(getattr(errors, kind, None), type):
                # A subclass defined elsewhere: report its nearest base from errors.py.
                kind = next(
                    k.__name__
                    for k in type(exc).__mro__
                    if isinstance(getattr(errors, k.__name__, None), type)
                )
            return cls(kind, shorten(str(exc), MAX_MESSAGE_CHARS), tb)
        message = shorten(f"{type(exc).__name__}: {exc}", MAX_MESSAGE_CHARS)
        return cls(EngineError.__name__, message, tb)

    def to_exception(self) -> AriaPerceptionError:
        """The error as an instance of its class from :mod:`aria_perception.errors`."""
        cls = getattr(errors, self.kind, None)
        if not (isinstance(cls, type) and issubclass(cls, AriaPerceptionError)):
            return EngineError(f"{self.kind}: {self.message}")
        return cls(self.message)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


# Parent -> worker ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraSpec:
    """One camera (client) of a worker: its shared-memory segment and its own settings.

    Attributes:
        camera: The camera's key in every frame message (unique within the worker).
        shm_name: Its segment: its input slots and its output slots.
        layout: The segment's layout (sized for the camera's ``input.max_pixels``).
        rotation: ``input.rotation`` of its frames.
        thresholds: Its detector thresholds (``None``: the engine's own).
    """

    camera: str
    shm_name: str
    layout: SlotLayout
    rotation: int = 0
    thresholds: Thresholds | None = None


@dataclass(frozen=True)
class Start:
    """Everything a new worker needs; the argument of the spawned process.

    ``cameras`` are the cameras known when it was spawned; later ones come as
    :class:`AddCamera`, before any frame of theirs.
    """

    generation: int
    parent_pid: int
    config: EngineConfig
    cameras: tuple[CameraSpec, ...]
    engine_factory: str
    heartbeat_interval_s: float


@dataclass(frozen=True)
class AddCamera:
    """A camera joins: attach its segment, keep its settings (before any frame of it)."""

    spec: CameraSpec


@dataclass(frozen=True)
class RemoveCamera:
    """A camera left: forget its waiting request and settings, let its segment go."""

    camera: str


@dataclass(frozen=True)
class FrameRequest:
    """Process the frame waiting in input slot ``in_slot`` (pixels or compressed bytes).

    The worker answers requests in order, each with :class:`Result`, :class:`Skipped` or
    :class:`FrameFailed`; a request it runs is announced by :class:`Started` first. When a newer
    request is already waiting it skips the older one: the newest frame wins without the worker
    ever waiting for the parent.
    """

    frame_id: int
    generation: int
    in_slot: int
    shape: tuple[int, ...]
    encoding: str
    want_depth: bool
    want_rect: bool = False
    camera: str = ""


@dataclass(frozen=True)
class Release:
    """The parent is done with ``camera``'s output slot ``out_slot``: it may be written again."""

    out_slot: int
    camera: str = ""


@dataclass(frozen=True)
class SetThresholds:
    """Apply new detector thresholds to ``camera``'s frames."""

    thresholds: Thresholds
    camera: str = ""


@dataclass(frozen=True)
class SetRectification:
    """Rectify ``camera``'s frames through ``rectification`` from the next frame on.

    Sent once per calibration change (and again to each new worker), never per frame: the
    worker builds the remap grid from it once.
    """

    camera: str
    rectification: Rectification


@dataclass(frozen=True)
class Debug:
    """Fault injection for tests.

    Actions: ``hang`` (sleep forever, heartbeats go on), ``freeze`` (sleep forever, heartbeats
    stop), ``crash`` (``os._exit``), ``segfault`` (SIGSEGV), ``raise`` (the next frame raises
    ``kind(message)``, a class name from :mod:`aria_perception.errors`).
    """

    action: str
    kind: str = ""
    message: str = ""


@dataclass(frozen=True)
class Shutdown:
    """Close the engine and exit."""


@dataclass(frozen=True)
class Wake:
    """A frame is being copied in for a worker that holds none of its camera's: nothing to do.

    Sent before the copy, so that the worker's process is awake when the request follows:
    a process woken after tens of milliseconds asleep runs its first Python several times
    slower than one that slept for a millisecond.
    """


# Worker -> parent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The engine is built; frames may come."""

    generation: int
    pid: int
    info: EngineInfo
    gpu_mem_mb: float
    gpu_mem_peak_mb: float
    startup_s: float


@dataclass(frozen=True)
class StartFailed:
    """The engine could not be built (bad weights, bad config, import error)."""

    generation: int
    error: ErrorInfo


@dataclass(frozen=True)
class Result:
    """The result of ``frame_id`` is in output slot ``out_slot``.

    Times are ``time.monotonic()`` seconds (one clock for both processes on Linux) and
    milliseconds.
    """

    frame_id: int
    generation: int
    out_slot: int
    n_detections: int
    depth_shape: tuple[int, int] | None
    depth_fresh: bool
    times: StageTimes
    engine_ms: float
    copy_out_ms: float
    received_at: float
    started_at: float  # the engine started (later than received_at when the frame waited)
    sent_at: float
    gpu_mem_mb: float
    gpu_mem_peak_mb: float
    rect_shape: tuple[int, int, int] | None = None  # the rectified frame in the slot, if any
    camera: str = ""  # whose frame: the slots are that camera's
    batch_size: int = 1  # frames in the engine call (``engine_ms`` is that call's time)


@dataclass(frozen=True)
class Started:
    """The worker starts running ``frame_id`` (sent just before ``Engine.process``).

    The frame's timeout counts from ``started_at`` (``time.monotonic()``), and a worker that
    dies before answering died on this frame: it is poison, never sent to a worker again.
    Before a batched call (``process_batch``) every frame of the batch is started, one per
    camera: a worker that dies in that call has died on each of them.
    """

    frame_id: int
    generation: int
    started_at: float
    camera: str = ""


@dataclass(frozen=True)
class Skipped:
    """``frame_id`` was not processed: a newer request was already waiting (its slot is free)."""

    frame_id: int
    generation: int
    camera: str = ""


@dataclass(frozen=True)
class FrameFailed:
    """``frame_id`` raised; ``fatal`` means the worker exits (anything but a ``FrameError``)."""

    frame_id: int
    generation: int
    error: ErrorInfo
    fatal: bool
    camera: str = ""


@dataclass(frozen=True)
class Failure:
    """An error not tied to a frame (e.g. thresholds the engine refused).

    ``camera`` names the camera whose setting was refused; ``None``: the worker's own.
    """

    generation: int
    error: ErrorInfo
    camera: str | None = None


@dataclass(frozen=True)
class Heartbeat:
    """The worker is alive; ``progress`` grows while its main thread advances.

    ``progress`` counts the heartbeats at which the main thread was found somewhere else than
    at the previous one (see :mod:`aria_perception.worker.progress`): a busy but advancing
    worker raises it, a hung one does not.
    """

    generation: int
    sent_at: float
    gpu_mem_mb: float
    gpu_mem_peak_mb: float
    progress: int = 0
