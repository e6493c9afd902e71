"""What the process boundary costs: round trip through the worker minus the engine's own time.

Frames go one at a time (submit, wait for the result, next), so nothing waits behind another
frame and the difference between the round trip and ``Engine.process`` is the transport alone:
the copy into shared memory, the control messages both ways, the worker writing its results and
the supervisor thread waking up to deliver them.

Run ``python -m aria_perception.worker.bench_transport --size 1408x1408`` (the real engine; on a
GPU machine it picks CUDA), or ``--engine echo`` for a worker that computes nothing and hands
back a depth map of the frame's size (the floor of the transport itself). ``--rate 30`` sends
them at a camera's pace instead of back to back: both processes then wake from idle for each
frame, which is what the node sees.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from aria_perception.records import (
    RAW_CHANNELS,
    Detections,
    EngineConfig,
    EngineInfo,
    EngineResult,
    Thresholds,
)
from aria_perception.worker.settings import DEFAULT_ENGINE_FACTORY, WorkerSettings
from aria_perception.worker.supervisor import FrameResult, Supervisor

ECHO_FACTORY = "aria_perception.worker.bench_transport:EchoEngine"
_RING = 8
_CHANNELS = RAW_CHANNELS


class EchoEngine:
    """An engine that computes nothing: empty detections and a depth map of the frame's size.

    With ``depth_out`` (the worker's output slot) it returns that array as it is, like the real
    engine whose device-to-host copy lands there; otherwise a reused array of the right shape.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.info = EngineInfo("cpu", "echo", "fp32", ("object",), "random")
        self._depth: dict[tuple[int, int], np.ndarray] = {}

    def process(
        self,
        frame: np.ndarray,
        encoding: str = "rgb8",
        *,
        want_depth: bool = True,
        depth_out: np.ndarray | None = None,
    ) -> EngineResult:
        """Return at once."""
        depth = None
        if want_depth and frame.ndim >= 2:
            shape = (int(frame.shape[0]), int(frame.shape[1]))
            if depth_out is not None:
                depth = depth_out
            else:
                depth = self._depth.setdefault(shape, np.zeros(shape, np.float32))
        return EngineResult(detections=Detections.empty(), depth=depth)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Nothing to set."""

    def memory_mb(self) -> tuple[float, float]:
        """No GPU."""
        return 0.0, 0.0

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class Percentiles:
    """Summary of one series of times in milliseconds."""

    p50: float
    p95: float
    mean: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        """Summarise ``values``."""
        a = np.asarray(values, np.float64)
        return cls(
            float(np.percentile(a, 50)),
            float(np.percentile(a, 95)),
            float(a.mean()),
            float(a.max()),
        )


@dataclass(frozen=True)
class TransportReport:
    """What :func:`measure_transport` found (all times in milliseconds).

    Attributes:
        duration_s: From the first measured frame's ``submit`` to the last result.
        transport: Round trip minus engine time: what the process boundary costs.
        roundtrip: ``submit`` call to ``on_result`` call.
        engine: ``Engine.process`` in the worker.
        copy_in: The frame into shared memory (parent).
        copy_out: Results into shared memory (worker; ~0 when the engine writes depth in place).
        messaging: Transport minus both copies: pipe messages and thread wake-ups.
        to_worker: Part of messaging: dispatch until the worker has the frame message.
        to_parent: Part of messaging: the worker sending until the result is delivered.
    """

    engine_name: str
    device: str
    device_name: str
    size: tuple[int, int]
    encoding: str
    rate_hz: float
    duration_s: float
    frame_bytes: int
    depth_bytes: int
    frames: int
    startup_s: float
    transport: Percentiles
    roundtrip: Percentiles
    engine: Percentiles
    copy_in: Percentiles
    copy_out: Percentiles
    messaging: Percentiles
    to_worker: Percentiles
    to_parent: Percentiles

    def table(self) -> str:
        """The report as a text table."""
        head = (
            f"transport through the worker: {self.engine_name} engine on {self.device} "
            f"({self.device_name}), {self.size[1]}x{self.size[0]} {self.encoding} "
            f"({self.frame_bytes / 2**20:.1f} MiB in, {self.depth_bytes / 2**20:.1f} MiB depth "
            f"out), {self.frames} frames "
            + (f"at {self.rate_hz:g} Hz" if self.rate_hz else "back to back")
            + f", worker start {self.startup_s:.1f} s"
        )
        rows = [f"{'ms':<34}{'p50':>9}{'p95':>9}{'mean':>9}{'max':>9}"]
        names = ("transport", "copy_in", "copy_out", "messaging", "to_worker", "to_parent",
                 "engine", "roundtrip")  # fmt: skip
        for name in names:
            p: Percentiles = getattr(self, name)
            label = name + (" (round trip - engine)" if name == "transport" else "")
            rows.append(f"{label:<34}{p.p50:>9.3f}{p.p95:>9.3f}{p.mean:>9.3f}{p.max:>9.3f}")
        return "\n".join([head, *rows])


def _frame(height: int, width: int, encoding: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if encoding == "jpeg":
        import io

        from PIL import Image

        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        return np.frombuffer(buffer.getvalue(), np.uint8)
    channels = _CHANNELS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def measure_transport(
    size: tuple[int, int] = (1408, 1408),
    frames: int = 200,
    warmup: int = 20,
    engine: str = "real",
    config: EngineConfig | None = None,
    encoding: str = "rgb8",
    want_depth: bool = True,
    startup_timeout_s: float = 300.0,
    rate_hz: float = 0.0,
) -> TransportReport:
    """Send ``frames`` frames of ``size`` (height, width) through a worker, one at a time.

    Args:
        size: Frame height and width.
        frames: Frames measured (after ``warmup``).
        warmup: Frames sent first and not measured (allocation, CUDA graph capture).
        engine: ``"real"`` (the engine, random weights) or ``"echo"`` (:class:`EchoEngine`).
        config: Engine config (default: random weights, automatic device).
        encoding: rgb8, bgr8, rgba8, bgra8, mono8 or jpeg.
        want_depth: Ask for the depth map back.
        startup_timeout_s: Time allowed for the worker to start.
        rate_hz: Send frames at this rate (each still waits for the previous result); 0 sends
            the next one as soon as the previous result is in.
    """
    if engine not in ("real", "echo"):
        raise ValueError(f"engine must be 'real' or 'echo', got {engine!r}")
    if rate_hz < 0:
        raise ValueError(f"rate_hz must be >= 0, got {rate_hz}")
    height, width = size
    config = config or EngineConfig(allow_random_weights=True)
    # A ring of distinct frames, larger than a CPU cache, so the copy in reads cold memory as
    # it would with fresh camera frames.
    ring = [_frame(height, width, encoding, seed) for seed in range(_RING)]
    settings = WorkerSettings(
        max_pixels=height * width,
        max_encoded_bytes=max(int(f.size) for f in ring),
        engine_factory=DEFAULT_ENGINE_FACTORY if engine == "real" else ECHO_FACTORY,
        startup_timeout_s=startup_timeout_s,
        frame_timeout_s=60.0,
        max_restarts=0,
    )
    done = threading.Event()
    timings = []
    depth_bytes = []
    failures: list[str] = []

    def on_result(result: FrameResult) -> None:
        timings.append(result.timing)
        depth = result.result.depth
        depth_bytes.append(0 if depth is None else depth.nbytes)
        done.set()

    def on_error(frame_id: int, tag: object, error: Exception) -> None:
        failures.append(f"{type(error).__name__}: {error}")
        done.set()

    sup = Supervisor(config, settings, on_result=on_result, on_error=on_error)
    started = time.monotonic()
    with sup:
        startup_s = time.monotonic() - started
        info = sup.info
        assert info is not None
        period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        next_at = time.monotonic()
        measured_from = 0.0
        for i in range(warmup + frames):
            if period:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + period, time.monotonic())
            if i == warmup:
                measured_from = time.monotonic()
            done.clear()
            if sup.submit(ring[i % _RING], encoding, tag=i, want_depth=want_depth) is None:
                raise RuntimeError(f"worker not ready: {sup.stats().last_error}")
            if not done.wait(settings.frame_timeout_s + 5):
                raise RuntimeError(f"no answer for frame {i}")
            if failures:
                raise RuntimeError(f"frame {i} failed: {failures[0]}")
        duration_s = time.monotonic() - measured_from
    measured = timings[warmup:]
    transport = [t.transport_ms for t in measured]
    return TransportReport(
        engine_name=engine,
        device=info.device,
        device_name=info.device_name,
        size=(height, width),
        encoding=encoding,
        rate_hz=rate_hz,
        duration_s=duration_s,
        frame_bytes=int(ring[0].size),
        depth_bytes=depth_bytes[-1],
        frames=len(measured),
        startup_s=startup_s,
        transport=Percentiles.of(transport),
        roundtrip=Percentiles.of([t.roundtrip_ms for t in measured]),
        engine=Percentiles.of([t.engine_ms for t in measured]),
        copy_in=Percentiles.of([t.copy_in_ms for t in measured]),
        copy_out=Percentiles.of([t.copy_out_ms for t in measured]),
        messaging=Percentiles.of(
            [t.transport_ms - t.copy_in_ms - t.copy_out_ms for t in measured]
        ),
        to_worker=Percentiles.of([t.to_worker_ms for t in measured]),
        to_parent=Percentiles.of([t.to_parent_ms for t in measured]),
    )


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from err
    return height, width


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the table (and write JSON with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="python -m aria_perception.worker.bench_transport", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--size", type=_size, default=(1408, 1408), help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--engine", choices=("real", "echo"), default="real")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--encoding", choices=(*_CHANNELS, "jpeg"), default="rgb8")
    parser.add_argument("--no-depth", action="store_true", help="do not ask for the depth map")
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="HZ", help="send at this rate (0: back to back)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    args = parser.parse_args(argv)
    if args.rate < 0:
        parser.error(f"--rate must be >= 0 (0: back to back), got {args.rate:g}")
    config = EngineConfig(device=args.device, allow_random_weights=True)
    report = measure_transport(
        size=args.size,
        frames=args.frames,
        warmup=args.warmup,
        engine=args.engine,
        config=config,
        encoding=args.encoding,
        want_depth=not args.no_depth,
        rate_hz=args.rate,
    )
    print(report.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(asdict(report), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
