"""What the process boundary costs: frames through the inference worker, one at a time.

Frames go one at a time (submit, wait for the result, next), so nothing waits behind another
frame. Every figure is computed from the explicit fields of the worker's ``FrameTiming``
(milliseconds, summarised over the measured frames):

* ``roundtrip``: the ``submit`` call to the ``on_result`` call.
* ``engine``: ``Engine.process`` in the worker; ``wait``: queued behind other frames (~0 here).
* ``boundary``: ``roundtrip - wait - engine``, all that the process boundary costs; it is
  ``copy_in + transport``.
* ``copy_in``: the frame into shared memory (parent).
* ``transport``: ``roundtrip - copy_in - wait - engine``, moving the frame to the worker and its
  results back once the frame is in shared memory: the control messages both ways, the worker
  writing its results (``copy_out``) and the wake-ups. "Transport" means this everywhere in the
  package (the node's ``transport_ms`` diagnostic too): the copy into shared memory is not in it.
* ``copy_out``: results into shared memory (worker; ~0 when the engine writes depth in place).
* ``messaging``: ``transport - copy_out``, pipe messages and thread wake-ups, made of
  ``to_worker`` (dispatch until the worker has the frame message) and ``to_parent`` (the worker
  sending until the result is delivered).

Run ``python -m aria_perception.bench.transport --size 1408x1408`` (the real engine; on a GPU
machine it picks CUDA), or ``--engine echo`` for a worker that computes nothing and hands back a
depth map of the frame's size (the floor of the transport itself). ``--rate 30`` sends frames at
a camera's pace instead of back to back: both processes then wake from idle for each frame,
which is what the node sees.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aria_perception.bench.console import EXIT_OK, run_main, write_json
from aria_perception.bench.echo_engine import ECHO_FACTORY
from aria_perception.bench.errors import TargetError, TargetTimeoutError, UsageError
from aria_perception.bench.sizes import Size, parse_size
from aria_perception.errors import WorkerError
from aria_perception.records import RAW_CHANNELS, EngineConfig
from aria_perception.stats import Summary
from aria_perception.worker import (
    DEFAULT_ENGINE_FACTORY,
    FrameResult,
    FrameTiming,
    Supervisor,
    WorkerSettings,
    frame_copy,
)

_RING = 8
#: Table rows: figure name and how it is computed.
ROWS = (
    ("boundary", "round trip - wait - engine"),
    ("copy_in", ""),
    ("transport", "boundary - copy_in"),
    ("copy_out", ""),
    ("messaging", "transport - copy_out"),
    ("to_worker", ""),
    ("to_parent", ""),
    ("engine", ""),
    ("wait", ""),
    ("roundtrip", ""),
)


@dataclass(frozen=True)
class TransportReport:
    """What :func:`measure_transport` found (times in milliseconds; see the module docstring).

    Attributes:
        engine_name: ``real`` or ``echo``.
        device: Device the engine ran on.
        device_name: Its name.
        size: Frame size.
        encoding: Frame encoding.
        rate_hz: Sending rate; 0 for back to back.
        duration_s: From the first measured frame's ``submit`` to the last result.
        frame_bytes: Bytes of one frame as submitted.
        depth_bytes: Bytes of the depth map handed back (0 without depth).
        frames: Frames measured.
        startup_s: Time the worker took to start.
    """

    engine_name: str
    device: str
    device_name: str
    size: Size
    encoding: str
    rate_hz: float
    duration_s: float
    frame_bytes: int
    depth_bytes: int
    frames: int
    startup_s: float
    boundary: Summary
    copy_in: Summary
    transport: Summary
    copy_out: Summary
    messaging: Summary
    to_worker: Summary
    to_parent: Summary
    engine: Summary
    wait: Summary
    roundtrip: Summary

    @classmethod
    def figures(cls, timings: Sequence[FrameTiming]) -> dict[str, Summary]:
        """The summaries of every figure, computed from the timings' explicit fields."""
        series: dict[str, list[float]] = {name: [] for name, _ in ROWS}
        for t in timings:
            boundary = t.roundtrip_ms - t.wait_ms - t.engine_ms
            transport = boundary - t.copy_in_ms
            for name, value in (
                ("boundary", boundary),
                ("copy_in", t.copy_in_ms),
                ("transport", transport),
                ("copy_out", t.copy_out_ms),
                ("messaging", transport - t.copy_out_ms),
                ("to_worker", t.to_worker_ms),
                ("to_parent", t.to_parent_ms),
                ("engine", t.engine_ms),
                ("wait", t.wait_ms),
                ("roundtrip", t.roundtrip_ms),
            ):
                series[name].append(value)
        return {name: Summary.of(values) for name, values in series.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``--json`` (``size`` is ``[width, height]``)."""
        out = asdict(self)
        out["size"] = list(self.size)
        return out

    def table(self) -> str:
        """The report as a text table."""
        head = (
            f"transport through the worker: {self.engine_name} engine on {self.device} "
            f"({self.device_name}), {self.size} {self.encoding} "
            f"({self.frame_bytes / 2**20:.1f} MiB in, {self.depth_bytes / 2**20:.1f} MiB depth "
            f"out), {self.frames} frames "
            + (f"at {self.rate_hz:g} Hz" if self.rate_hz else "back to back")
            + f", worker start {self.startup_s:.1f} s"
        )
        rows = [f"{'ms':<40}{'p50':>9}{'p95':>9}{'mean':>9}{'max':>9}"]
        for name, formula in ROWS:
            s: Summary = getattr(self, name)
            label = f"{name} ({formula})" if formula else name
            rows.append(f"{label:<40}{s.p50:>9.3f}{s.p95:>9.3f}{s.mean:>9.3f}{s.max:>9.3f}")
        return "\n".join([head, *rows])


def _frame(size: Size, encoding: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if encoding == "jpeg":
        import io

        from PIL import Image

        image = rng.integers(0, 256, (*size.shape, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        return np.frombuffer(buffer.getvalue(), np.uint8)
    channels = RAW_CHANNELS[encoding]
    shape = size.shape if channels == 1 else (*size.shape, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def measure_transport(
    size: tuple[int, int] = Size(1408, 1408),
    frames: int = 200,
    warmup: int = 20,
    engine: str = "real",
    config: EngineConfig | None = None,
    encoding: str = "rgb8",
    want_depth: bool = True,
    startup_timeout_s: float = 300.0,
    rate_hz: float = 0.0,
) -> TransportReport:
    """Send ``frames`` frames through a worker, one at a time.

    Args:
        size: Frame width and height (a :class:`~.sizes.Size`).
        frames: Frames measured (after ``warmup``).
        warmup: Frames sent first and not measured (allocation, CUDA graph capture).
        engine: ``"real"`` (the engine, random weights) or ``"echo"`` (:class:`EchoEngine`).
        config: Engine config (default: random weights, automatic device).
        encoding: rgb8, bgr8, rgba8, bgra8, mono8 or jpeg.
        want_depth: Ask for the depth map back.
        startup_timeout_s: Time allowed for the worker to start.
        rate_hz: Send frames at this rate (each still waits for the previous result); 0 sends
            the next one as soon as the previous result is in.

    Raises:
        UsageError: An argument out of range.
        TargetError: The worker did not start, or failed a frame.
        TargetTimeoutError: The worker did not answer a frame in time.
    """
    size = Size(*size)
    if engine not in ("real", "echo"):
        raise UsageError(f"engine must be 'real' or 'echo', got {engine!r}")
    if rate_hz < 0:
        raise UsageError(f"rate_hz must be >= 0, got {rate_hz}")
    if frames < 1 or warmup < 0:
        raise UsageError(f"frames must be >= 1 and warmup >= 0, got {frames} and {warmup}")
    if encoding != "jpeg" and encoding not in RAW_CHANNELS:
        raise UsageError(f"encoding must be one of {[*RAW_CHANNELS, 'jpeg']}, got {encoding!r}")
    config = config or EngineConfig(allow_random_weights=True)
    # A ring of distinct frames, larger than a CPU cache, so the copy in reads cold memory as
    # it would with fresh camera frames.
    ring = [_frame(size, encoding, seed) for seed in range(_RING)]
    settings = WorkerSettings(
        max_pixels=size.width * size.height,
        max_encoded_bytes=max(int(f.size) for f in ring),
        engine_factory=DEFAULT_ENGINE_FACTORY if engine == "real" else ECHO_FACTORY,
        startup_timeout_s=startup_timeout_s,
        frame_timeout_s=60.0,
        max_restarts=0,
    )
    done = threading.Event()
    timings: list[FrameTiming] = []
    depth_bytes: list[int] = []
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
    try:
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
                    # Each send at least one period after the previous one (a late send
                    # shifts the rest): the idle gap before every frame is a camera's.
                    next_at = time.monotonic() + period
                if i == warmup:
                    measured_from = time.monotonic()
                done.clear()
                if sup.submit(ring[i % _RING], encoding, tag=i, want_depth=want_depth) is None:
                    raise TargetError(f"worker not ready: {sup.stats().last_error}")
                if not done.wait(settings.frame_timeout_s + 5):
                    raise TargetTimeoutError(f"the worker did not answer frame {i}")
                if failures:
                    raise TargetError(f"frame {i} failed: {failures[0]}")
            duration_s = time.monotonic() - measured_from
    except WorkerError as err:
        raise TargetError(f"the worker failed: {err}") from err
    measured = timings[warmup:]
    return TransportReport(
        engine_name=engine,
        device=info.device,
        device_name=info.device_name,
        size=size,
        encoding=encoding,
        rate_hz=rate_hz,
        duration_s=duration_s,
        frame_bytes=int(ring[0].size),
        depth_bytes=depth_bytes[-1],
        frames=len(measured),
        startup_s=startup_s,
        **TransportReport.figures(measured),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the table (and write JSON with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="python -m aria_perception.bench.transport", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--size", type=parse_size, default=Size(1408, 1408), help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--engine", choices=("real", "echo"), default="real")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--encoding", choices=(*RAW_CHANNELS, "jpeg"), default="rgb8")
    parser.add_argument("--no-depth", action="store_true", help="do not ask for the depth map")
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="HZ", help="send at this rate (0: back to back)"
    )
    parser.add_argument(
        "--copy-threads",
        type=int,
        metavar="N",
        help="threads that copy a frame into shared memory (default: 2 where there are 2 cores)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    args = parser.parse_args(argv)
    if args.rate < 0:
        parser.error(f"--rate must be >= 0 (0: back to back), got {args.rate:g}")
    if args.copy_threads is not None and args.copy_threads < 1:
        parser.error(f"--copy-threads must be >= 1, got {args.copy_threads}")
    return run_main(parser.prog, lambda: _report(args))


def _report(args: argparse.Namespace) -> int:
    previous, frame_copy.COPY_THREADS = frame_copy.COPY_THREADS, args.copy_threads
    try:
        report = measure_transport(
            size=args.size,
            frames=args.frames,
            warmup=args.warmup,
            engine=args.engine,
            config=EngineConfig(device=args.device, allow_random_weights=True),
            encoding=args.encoding,
            want_depth=not args.no_depth,
            rate_hz=args.rate,
        )
    finally:
        frame_copy.COPY_THREADS = previous
    print(report.table())
    if args.copy_threads is not None:
        print(f"copy into shared memory: {args.copy_threads} thread(s)")
    if args.json:
        write_json(args.json, report.to_dict(), indent=2)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
