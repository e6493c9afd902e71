"""Settings and counters of the inference worker (parent side; numpy and stdlib only)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from aria_perception.errors import ConfigError
from aria_perception.records import EngineInfo, WorkerState

#: Where the worker finds the engine class unless told otherwise ("module:Class").
DEFAULT_ENGINE_FACTORY = "aria_perception.engine.engine:Engine"
#: Default of ``max_pixels`` (the node's ``input.max_pixels``): twice an Aria RGB frame
#: (1408x1408), so 1920x1080, 2048x1536 or 2560x1440 cameras fit while a runaway 4K/8K stream is
#: refused instead of sizing shared memory for it (slots are pre-allocated from this value:
#: ~16 MB per RGBA input slot).
DEFAULT_MAX_PIXELS = 1408 * 1408 * 2


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker process is sized, watched and restarted.

    Attributes:
        max_pixels: Largest frame (height x width) the shared-memory slots hold
            (``input.max_pixels``). Input slots hold ``max_pixels * 4`` bytes (a bgra8 frame),
            depth slots ``max_pixels`` float32 values.
        max_encoded_bytes: Largest compressed frame (jpeg/png bytes); ``None`` means the raw slot
            size, ``max_pixels * 4``.
        startup_timeout_s: Time allowed from spawn to the ready handshake (imports and model
            building take ~14 s on a 2-core machine).
        frame_timeout_s: Time allowed for one frame (``worker.frame_timeout_s``), counted from
            when the worker starts running it (and, until then, from when it is the oldest frame
            in the worker); past it the worker counts as hung and is killed and restarted.
        first_frame_timeout_s: Time allowed for the first frame of a new worker or of a new frame
            shape (or decoded size), which may include lazy initialisation and CUDA graph
            capture.
        heartbeat_interval_s: How often the worker reports that it is alive.
        heartbeat_timeout_s: Silence after which a worker counts as frozen and is restarted.
        max_restarts: Restarts allowed within ``restart_window_s`` (``worker.max_restarts``); one
            more failure puts the supervisor in ``FAILED``. A worker that dies running a frame
            (a poison frame) is restarted without counting here.
        restart_window_s: The window over which restarts are counted.
        backoff_initial_s: Delay before the first restart; doubled for each further restart in the
            window.
        backoff_max_s: Longest delay before a restart.
        failed_cooldown_s: Time in ``FAILED`` after too many failures; then the supervisor
            forgets them and starts a worker again by itself.
        engine_factory: ``"module:Class"`` of the engine the worker builds from the
            :class:`~aria_perception.records.EngineConfig`.
        shm_prefix: Prefix of the shared-memory segment names (``<prefix>_<pid>_<n>``).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_encoded_bytes: int | None = None
    startup_timeout_s: float = 120.0
    frame_timeout_s: float = 5.0
    first_frame_timeout_s: float = 60.0
    heartbeat_interval_s: float = 0.5
    heartbeat_timeout_s: float = 10.0
    max_restarts: int = 5
    restart_window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    failed_cooldown_s: float = 30.0
    engine_factory: str = DEFAULT_ENGINE_FACTORY
    shm_prefix: str = "aria"

    def __post_init__(self) -> None:
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ConfigError(
                f"worker max_pixels must be an integer >= 1, got {self.max_pixels!r}"
            )
        if self.max_encoded_bytes is not None and (
            not isinstance(self.max_encoded_bytes, int) or self.max_encoded_bytes < 1
        ):
            raise ConfigError(
                f"worker max_encoded_bytes must be None or an integer >= 1, "
                f"got {self.max_encoded_bytes!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_s") and not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"worker {f.name} must be a number > 0, got {value!r}")
            if f.name.endswith("_s") and not math.isfinite(value):
                raise ConfigError(f"worker {f.name} must be finite, got {value!r}")
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ConfigError(
                f"worker max_restarts must be an integer >= 0, got {self.max_restarts!r}"
            )
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ConfigError(
                f"worker heartbeat_timeout_s ({self.heartbeat_timeout_s}) must exceed "
                f"heartbeat_interval_s ({self.heartbeat_interval_s})"
            )
        module, _, name = self.engine_factory.partition(":")
        if not module or not name:
            raise ConfigError(
                f"worker engine_factory must look like 'package.module:Class', "
                f"got {self.engine_factory!r}"
            )
        if not self.shm_prefix or not self.shm_prefix.replace("_", "").isalnum():
            raise ConfigError(
                f"worker shm_prefix must be letters, digits and '_', got {self.shm_prefix!r}"
            )

    @property
    def input_bytes(self) -> int:
        """Bytes of one input slot: the larger of a raw bgra8 frame and a compressed one."""
        raw = self.max_pixels * 4
        return raw if self.max_encoded_bytes is None else max(raw, self.max_encoded_bytes)

    @property
    def encoded_bytes(self) -> int:
        """Largest compressed frame accepted."""
        return self.max_pixels * 4 if self.max_encoded_bytes is None else self.max_encoded_bytes


@dataclass(frozen=True)
class WorkerStats:
    """A snapshot of the supervisor's counters (for diagnostics).

    Every call of :meth:`Supervisor.submit` ends up in exactly one of ``processed``, ``dropped``,
    ``rejected`` or ``failed``, or is still counted in ``in_flight`` or ``pending``.

    Attributes:
        state: Where the worker is in its life.
        submitted: Frames offered to :meth:`Supervisor.submit`.
        processed: Frames whose result was delivered to ``on_result``.
        dropped: Frames never processed: replaced by a newer frame while waiting (newest wins),
            offered while the worker was down, or waiting when it died.
        rejected: Bad frames (:class:`~aria_perception.errors.FrameError`), at submit or in the
            engine (the worker goes on), and poison frames.
        failed: Frames lost in the worker: it hung or hit an engine error on them, or died
            between frames with them due next.
        restarts: Worker restarts since :meth:`Supervisor.start`.
        generation: Number of the current worker process (1 for the first).
        last_error: ``"ErrorClass: message"`` of the latest error, or ``None``.
        gpu_mem_mb: GPU memory the worker's engine holds now (0 on the CPU).
        gpu_mem_peak_mb: Peak GPU memory of the current worker.
        pid: Process id of the current worker, ``None`` while none runs.
        in_flight: Frames in the worker now (one running, newer ones waiting there).
        pending: Frames waiting here for room in the worker (0 or 1).
        info: What the engine reported at start-up, ``None`` before the first start.
        stale: Answers from the worker that belonged to no current frame (an earlier
            worker's, or a frame already given up on): never delivered.
        poison: Frames the worker died running (also counted in ``rejected``): never retried,
            and the restart they caused does not count toward ``max_restarts``.
        cameras: How many cameras share the worker (1 for a supervisor of its own). The
            counters above are this camera's; state, restarts, generation, pid and memory are
            the shared worker's.
    """

    state: WorkerState
    submitted: int
    processed: int
    dropped: int
    rejected: int
    failed: int
    restarts: int
    generation: int
    last_error: str | None
    gpu_mem_mb: float
    gpu_mem_peak_mb: float
    pid: int | None
    in_flight: int
    pending: int
    info: EngineInfo | None
    stale: int = 0
    poison: int = 0
    cameras: int = 1
