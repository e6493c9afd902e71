"""Where and how the engine runs: device and precision resolution, and per-stage timing."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from aria_perception.errors import ConfigError
from aria_perception.records import PRECISIONS, StageTimes


@dataclass(frozen=True)
class Runtime:
    """The resolved device and dtype of an engine."""

    device: torch.device
    dtype: torch.dtype

    @property
    def is_cuda(self) -> bool:
        """Whether the engine runs on a CUDA device."""
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        """``fp16`` or ``fp32``."""
        return "fp16" if self.dtype == torch.float16 else "fp32"

    @property
    def device_name(self) -> str:
        """The GPU's name, or ``cpu``."""
        return torch.cuda.get_device_name(self.device) if self.is_cuda else "cpu"


def resolve_runtime(device: str, precision: str) -> Runtime:
    """Resolve ``device`` (auto, cpu, cuda, cuda:N) and ``precision`` (auto, fp16, fp32).

    Raises:
        ConfigError: the device does not exist here, or fp16 was asked for on the CPU.
    """
    if device == "auto":
        dev = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise ConfigError(f"device: {device!r} is not a device (auto, cpu, cuda:N)") from err
        if dev.type not in ("cpu", "cuda"):
            raise ConfigError(f"device: {device!r} is not supported (auto, cpu, cuda:N)")
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(f"device: {device!r} asked for, but CUDA is not available here")
            index = 0 if dev.index is None else dev.index
            if index >= torch.cuda.device_count():
                raise ConfigError(
                    f"device: {device!r} asked for, but only {torch.cuda.device_count()} "
                    "CUDA device(s) exist"
                )
            dev = torch.device("cuda", index)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
    elif precision == "fp16":
        if dev.type != "cuda":
            raise ConfigError("precision: fp16 needs a CUDA device; use fp32 or auto on the CPU")
        dtype = torch.float16
    else:
        dtype = torch.float32
    return Runtime(dev, dtype)


class Stopwatch:
    """Times spans of work on a stream: CUDA events on the GPU, the wall clock on the CPU.

    ``start``/``stop`` record on the given stream without synchronising; ``elapsed_ms`` may be
    read once the work is known to be finished (after the frame's final synchronisation).
    """

    def __init__(self, runtime: Runtime) -> None:
        self._cuda = runtime.is_cuda
        if self._cuda:
            self._begin = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
        self._t0 = self._t1 = 0.0
        self._used = False

    @property
    def ran(self) -> bool:
        """Whether the span was started this frame (and not read yet)."""
        return self._used

    def start(self, stream: torch.cuda.Stream | None = None) -> None:
        """Mark the start of the span."""
        self._used = True
        if self._cuda:
            self._begin.record(stream)
        else:
            self._t0 = time.perf_counter()

    def stop(self, stream: torch.cuda.Stream | None = None) -> None:
        """Mark the end of the span."""
        if self._cuda:
            self._end.record(stream)
        else:
            self._t1 = time.perf_counter()

    def elapsed_ms(self) -> float:
        """Milliseconds between start and stop (0 if the span was not run this frame)."""
        if not self._used:
            return 0.0
        self._used = False
        if self._cuda:
            return float(self._begin.elapsed_time(self._end))
        return (self._t1 - self._t0) * 1000.0


class StageClock:
    """The stopwatches of one frame's stages, and the :class:`StageTimes` they add up to.

    Attributes:
        h2d: the upload (or decode) of the frame.
        prepare: encoding conversion, rotation and both networks' input preparation.
        depth: MiDaS and the depth upsampling.
        detect: YOLO, NMS, box depth and packing.
        d2h: the detections' copy back to the host.
        depth_out: the depth map's copy back (on the depth lane, as soon as it is upsampled).
        rect_out: the rectified frame's copy back (on the upload lane, once prepared).
        whole: a frame graph (:mod:`.frame_graph`): the steps and the output copies in one
            replay, which cannot be timed apart.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.h2d = Stopwatch(runtime)
        self.prepare = Stopwatch(runtime)
        self.depth = Stopwatch(runtime)
        self.detect = Stopwatch(runtime)
        self.d2h = Stopwatch(runtime)
        self.depth_out = Stopwatch(runtime)
        self.rect_out = Stopwatch(runtime)
        self.whole = Stopwatch(runtime)

    def times(self, steady: bool = True) -> StageTimes:
        """The frame's stage times; read once its work is finished.

        Depth and detection run at the same time on two streams, so the total counts the
        longer of the two. The transfer time is every copy's, though the output copies may
        overlap the detector's work. A frame graph's frame has only its total (the upload and
        the graph): its stage times are NaN (not measured), so that medians over frames of both
        kinds keep one meaning per stage. So are a frame's that is not ``steady``: one that
        compiled and captured graphs times the building (seconds), and a median over the few
        frames that time their stages would be taken over by it; its total still counts.
        """
        if self.whole.ran:
            return _untimed(self.h2d.elapsed_ms() + self.whole.elapsed_ms())
        times = StageTimes(
            preprocess_ms=self.prepare.elapsed_ms(),
            depth_ms=self.depth.elapsed_ms(),
            detect_ms=self.detect.elapsed_ms(),
            transfer_ms=self.h2d.elapsed_ms()
            + self.d2h.elapsed_ms()
            + self.depth_out.elapsed_ms()
            + self.rect_out.elapsed_ms(),
        )
        times.total_ms = (
            times.preprocess_ms + max(times.depth_ms, times.detect_ms) + times.transfer_ms
        )
        return times if steady else _untimed(times.total_ms)


def _untimed(total_ms: float) -> StageTimes:
    """A frame's times with only its total: each stage NaN (not measured)."""
    return StageTimes(math.nan, math.nan, math.nan, math.nan, total_ms)
