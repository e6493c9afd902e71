"""Engine benchmark: latency and throughput of :class:`Engine` alone, with ablations.

``engine_bench --size 1408x1408 --iterations 300`` prints a table (p50/p95/p99 latency, FPS and
per-stage GPU times for each configuration) and writes the same as JSON with ``--json``.
``--batch 4 --size 640x480 --encoding mono8`` times each configuration with 1 to 4 cameras per
engine call (``process_batch``), as a worker shared by the headset's cameras runs them.
``--rate 30`` starts the calls at a camera's rate instead of back to back: the host idles
between frames, as a node's worker does, and each call starts cold. The ``host ms`` column is
the host's own time in a call, outside its waits for the GPU. Random
weights are used unless weight files are given; speed does not depend on them.
torch is imported only by the functions that build and run an engine.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aria_perception.bench.ablation import Ablation, ablation_names, select_ablations
from aria_perception.bench.console import run_command, write_json
from aria_perception.bench.errors import BenchError, FrameDataError, TargetError, UsageError
from aria_perception.bench.sizes import Size, parse_size
from aria_perception.errors import AriaPerceptionError, ConfigError, FrameError
from aria_perception.records import EngineConfig, StageTimes
from aria_perception.stats import Summary, percentile

STAGE_KEYS = ("preprocess_ms", "depth_ms", "detect_ms", "transfer_ms", "total_ms", "host_ms")

#: The ``rectify`` ablation: Aria RGB frames rectified on the device to the default pinhole.
RECTIFY = Ablation(
    "rectify",
    "Fisheye624 frames rectified and turned upright (one bilinear sample in the prepare graph) "
    "to the rectify.* pinhole, 1024x1024 by default",
    {"rectify": True, "rotation": 90},
)
#: The factory calibration of a Project Aria Gen1 RGB camera (1408x1408, the
#: ``gen1_adt_sample.vrs`` sample of projectaria-tools): f, cx, cy, k0..k5, p0, p1, s0..s3.
ARIA_RGB_FISHEYE624 = (
    610.9410078676575, 715.1148341104505, 716.7147122529825, 0.4060356696288849,
    -0.489948419647729, 0.1745652818132035, 1.132983686620576, -1.701635218233742,
    0.6511555293441647, 0.0006211469747214578, 1.932200015697112e-05, -1.485525650871087e-05,
    0.0002601225712292815, -0.0006582109778598294, 3.761395141407565e-05,
)  # fmt: skip
_ARIA_RGB_SIZE = 1408


def bench_rectification(size: Size, config: EngineConfig) -> Any:
    """The Aria RGB calibration scaled to ``size``, rectified to ``config``'s pinhole.

    Scaling keeps a pixel centre's position: ``c' = (c + 0.5) s - 0.5``.
    """
    from aria_perception.optics import Calibration, Pinhole, Rectification

    f, cx, cy, *d = ARIA_RGB_FISHEYE624
    sx, sy = size.width / _ARIA_RGB_SIZE, size.height / _ARIA_RGB_SIZE
    k = (f * sx, 0.0, (cx + 0.5) * sx - 0.5, 0.0, f * sy, (cy + 0.5) * sy - 0.5, 0.0, 0.0, 1.0)
    calibration = Calibration.from_camera_info("fisheye624", k, d, size.width, size.height)
    pinhole = Pinhole(config.rectify_width, config.rectify_height, config.rectify_focal_px)
    return Rectification(calibration, pinhole, config.rotation)


def choose_ablations(spec: str) -> list[Ablation]:
    """``select_ablations`` with the ``rectify`` ablation added (``all`` includes it).

    Raises:
        UsageError: A name that is not an ablation.
    """
    if spec in ("all", "none"):
        return select_ablations(spec) + ([RECTIFY] if spec == "all" else [])
    names = [n.strip() for n in spec.split(",") if n.strip()]
    others = [n for n in names if n != RECTIFY.name]
    chosen = {a.name: a for a in select_ablations(",".join(others))} if others else {}
    chosen[RECTIFY.name] = RECTIFY
    return [chosen[n] for n in names]


@dataclass(frozen=True)
class EngineRun:
    """The figures of one timed configuration (one row of the table, one JSON result).

    Attributes:
        name: Ablation name (or the per-frame reference code's).
        config: The engine configuration as a dict (empty for the reference code).
        iterations: Frames timed.
        latency_ms: ``process`` call latency.
        fps: Frames per second over the timed loop.
        stages_ms_p50: Median of each stage time the engine reports.
        gpu_mem_mb: Allocator memory after the loop (NaN where unknown).
        gpu_mem_peak_mb: Allocator peak (NaN where unknown).
        device: Device name.
        precision: ``fp16`` or ``fp32``.
        weights: ``official`` or ``random``.
        registered_io: Frame and depth buffers were page-locked.
        exact_post_frames: Frames whose fixed-shape NMS result was not exact and took the exact
            path (None for the reference code).
        fixed_post_frames: Frames served by the fixed-shape NMS (None for the reference code).
        batch: Frames (cameras) per engine call (``--batch``): ``latency_ms`` is the call's,
            ``fps`` counts frames.
        rate_hz: The rate the calls were paced at (``--rate``; 0: back to back).
    """

    name: str
    config: dict[str, Any]
    iterations: int
    latency_ms: Summary
    fps: float
    stages_ms_p50: dict[str, float]
    gpu_mem_mb: float
    gpu_mem_peak_mb: float
    device: str
    precision: str
    weights: str
    registered_io: bool
    exact_post_frames: int | None = None
    fixed_post_frames: int | None = None
    batch: int = 1
    rate_hz: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``--json`` (one entry of ``results``)."""
        return asdict(self)


def bench_frame(size: Size) -> tuple[np.ndarray, str]:
    """An RGB frame to time: a photograph from the bench's samples, else noise.

    A photo matters for JPEG: noise compresses badly and decodes slower than a camera frame.
    """
    try:
        from aria_perception.bench.sample import find_photos, load_photos, render

        photos = find_photos()
        if photos:
            return render(load_photos(photos[:1])[0], size.width, size.height, 0.5), photos[0].name
    except (ImportError, BenchError):  # no OpenCV, or no photo could be decoded
        pass
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (*size.shape, 3), dtype=np.uint8), "noise"


def _time_loop(
    step: Callable[[], object], iterations: int, warmup: int, rate_hz: float = 0.0
) -> tuple[list, float]:
    """Latencies (ms) of ``iterations`` calls after ``warmup`` ones, and the loop's wall time.

    With ``rate_hz`` the timed calls start at that rate, as a camera's frames arrive (the host
    sleeps in between, which the latencies leave out); else back to back.
    """
    for _ in range(warmup):
        step()
    latencies: list[float] = []
    period = 1.0 / rate_hz if rate_hz > 0 else 0.0
    start = time.perf_counter()
    for k in range(iterations):
        if period:
            time.sleep(max(start + k * period - time.perf_counter(), 0.0))
        t0 = time.perf_counter()
        step()
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return latencies, time.perf_counter() - start


def run_config(
    ablation: Ablation,
    config: EngineConfig,
    frame: np.ndarray,
    encoding: str,
    iterations: int,
    warmup: int,
    want_depth: bool,
    output_size: Size,
    register: bool,
    batch: int = 1,
    rate_hz: float = 0.0,
) -> EngineRun:
    """Benchmark one configuration.

    With ``register`` the frame and the depth output live in page-locked memory, as the
    worker's shared-memory slots do, so no staging copies happen on the host. Each call is
    ``process_batch`` over ``batch`` cameras sending the same frame (each with its own depth
    output), as a shared worker runs frames waiting together; one camera is ``process``'s work.

    Raises:
        UsageError: The configuration is invalid (a device that does not exist, ...).
        TargetError: The engine could not be built (weights, CUDA).
    """
    from aria_perception.engine.engine import Engine
    from aria_perception.records import BatchItem

    try:
        options = ablation.engine_options
        engine = Engine(config, fixed_nms=options.fixed_nms, frame_graph=options.frame_graph)
    except ConfigError as err:
        raise UsageError(f"{ablation.name}: {err}") from err
    except AriaPerceptionError as err:
        raise TargetError(f"{ablation.name}: cannot build the engine: {err}") from err
    cameras = [f"camera{k}" for k in range(batch)]
    if config.rectify:
        rectification = bench_rectification(output_size, config)
        for camera in cameras:  # each camera rectifies through its own calibration
            engine.set_rectification(rectification, camera)
        output_size = Size(*rectification.output_size)
    outs = [np.empty(output_size.shape, np.float32) if want_depth else None for _ in range(batch)]
    if register:
        engine.register_host_buffer(frame)
        for out in outs:
            if out is not None:
                engine.register_host_buffer(out)
    times: list[StageTimes] = []  # each call's first frame's, read out after the loop
    items = [
        BatchItem(frame, encoding, want_depth, out, camera=camera)
        for camera, out in zip(cameras, outs, strict=True)
    ]

    def step() -> None:
        results = engine.process_batch(items)  # one item: exactly Engine.process
        for result in results:
            if isinstance(result, FrameError):
                raise FrameDataError(f"{ablation.name}: the engine refused the frame: {result}")
        times.append(results[0].times)

    try:
        latencies, wall = _time_loop(step, iterations, warmup, rate_hz)
        stages: dict[str, list[float]] = {}
        for frame_times in times:
            for key, value in asdict(frame_times).items():
                stages.setdefault(key, []).append(value)
        mem, peak = engine.memory_mb()
        return EngineRun(
            name=ablation.name if batch == 1 else f"{ablation.name}, batch of {batch}",
            config=asdict(config),
            iterations=iterations,
            latency_ms=Summary.of(latencies),
            fps=iterations * batch / wall,
            # Warm-up frames are left out of the stage medians too.
            stages_ms_p50={k: percentile(v[warmup:], 50) for k, v in stages.items()},
            gpu_mem_mb=mem,
            gpu_mem_peak_mb=peak,
            device=engine.info.device_name,
            precision=engine.info.precision,
            weights=engine.info.weights,
            registered_io=register,
            exact_post_frames=engine.exact_post_frames,
            fixed_post_frames=engine.fixed_post_frames,
            batch=batch,
            rate_hz=rate_hz,
        )
    finally:
        engine.close()


def run_reference_baseline(frame: np.ndarray, iterations: int, warmup: int) -> EngineRun:
    """The per-frame reference code, to compare the engine with.

    cv2 transform on the CPU, fp32 MiDaS, ``.cpu().numpy()`` of the upsampled depth, then
    ``YOLO.predict`` on the same frame; random weights, CUDA device when there is one.
    """
    import cv2
    import torch
    from ultralytics import YOLO

    from aria_perception.engine.midas import MIDAS_SMALL_CFG, MidasSmall
    from aria_perception.engine.preprocess import midas_input_size

    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    midas = MidasSmall().to(device).eval()
    yolo = YOLO("yolov8n.yaml")
    cfg = MIDAS_SMALL_CFG
    mean, std = np.asarray(cfg.mean, np.float32), np.asarray(cfg.std, np.float32)
    h, w = midas_input_size(*frame.shape[:2], cfg.input_size)

    def once() -> None:
        img = frame.astype(np.float32) / 255.0
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        x = torch.from_numpy(((img - mean) / std).transpose(2, 0, 1)[None].copy()).to(device)
        with torch.no_grad():
            pred = midas(x)
            pred = torch.nn.functional.interpolate(
                pred[:, None], size=frame.shape[:2], mode="bicubic", align_corners=False
            )
        pred.squeeze().cpu().numpy()
        yolo.predict(frame[..., ::-1], imgsz=640, device=device, verbose=False)

    latencies, wall = _time_loop(once, iterations, warmup)
    nan = float("nan")
    return EngineRun(
        name="per-frame reference",
        config={},
        iterations=iterations,
        latency_ms=Summary.of(latencies),
        fps=iterations / wall,
        stages_ms_p50=dict.fromkeys(STAGE_KEYS, nan),
        gpu_mem_mb=nan,
        gpu_mem_peak_mb=nan,
        device=str(device),
        precision="fp32",
        weights="random",
        registered_io=False,
    )


def format_table(rows: list[EngineRun]) -> str:
    """The results as a Markdown table."""
    head = (
        "| configuration | p50 ms | p95 ms | p99 ms | per frame p50 ms | FPS | prep ms "
        "| depth ms | detect ms | transfer ms | host ms | GPU MB | exact-path frames |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lat, st = r.latency_ms, r.stages_ms_p50
        exact = "-" if r.exact_post_frames is None else r.exact_post_frames
        lines.append(
            f"| {r.name} | {lat.p50:.2f} | {lat.p95:.2f} | {lat.p99:.2f} "
            f"| {lat.p50 / r.batch:.2f} "
            f"| {r.fps:.0f} | {st['preprocess_ms']:.2f} | {st['depth_ms']:.2f} "
            f"| {st['detect_ms']:.2f} | {st['transfer_ms']:.2f} | {st['host_ms']:.2f} "
            f"| {r.gpu_mem_peak_mb:.0f} "
            f"| {exact} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``engine_bench`` argument parser."""
    parser = argparse.ArgumentParser(prog="engine_bench", description=__doc__)
    parser.add_argument("--size", type=parse_size, default=Size(1408, 1408), help="WxH")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    rate_help = "start the timed calls at this rate, as a camera's frames come (0: back to back)"
    parser.add_argument("--rate", type=float, default=0.0, metavar="HZ", help=rate_help)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoding", default="rgb8", choices=["rgb8", "bgr8", "mono8", "jpeg"])
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="time each configuration at batch 1, 2, ... N: N cameras of one size in one "
        "engine call (process_batch), as a worker shared by several cameras runs them",
    )
    parser.add_argument(
        "--no-depth-output",
        action="store_true",
        help="do not upsample/copy the depth map back (box depth only)",
    )
    parser.add_argument(
        "--ablations",
        default="all",
        help="'all', 'none', or comma-separated names: "
        + ", ".join([*ablation_names(), RECTIFY.name]),
    )
    parser.add_argument(
        "--io",
        choices=["registered", "staged"],
        default="registered",
        help="registered: frame and depth buffers page-locked as the worker's "
        "shared memory is; staged: plain numpy arrays (host copies)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time the per-frame reference code (CPU transform, fp32, predict())",
    )
    parser.add_argument("--depth-weights", default="")
    parser.add_argument("--detector-weights", default=EngineConfig().detector_weights)
    parser.add_argument("--json", help="write the results here")
    return parser


def _encode(frame: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "mono8":
        return np.ascontiguousarray(frame[..., 1])
    if encoding != "jpeg":
        return frame
    import cv2

    ok, data = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise FrameDataError("could not encode the JPEG test frame")
    return data.reshape(-1)


def run(args: argparse.Namespace) -> list[EngineRun]:
    """Time every selected ablation (and the reference code with ``--baseline``)."""
    size: Size = args.size
    if args.iterations < 1 or args.warmup < 0 or args.batch < 1 or not args.rate >= 0:  # NaN
        raise UsageError("--iterations and --batch must be >= 1, --warmup and --rate >= 0")
    ablations = choose_ablations(args.ablations)
    frame, source = bench_frame(size)
    encoding = args.encoding
    frame = _encode(frame, encoding)
    base = EngineConfig(
        device=args.device,
        allow_random_weights=True,
        depth_weights=args.depth_weights,
        detector_weights=args.detector_weights,
    )
    rows = []
    for ablation in ablations:
        for batch in range(1, args.batch + 1):
            print(f"engine_bench: {ablation.name}, batch {batch} ...", file=sys.stderr, flush=True)
            rows.append(
                run_config(
                    ablation,
                    ablation.config(base),
                    frame,
                    encoding,
                    args.iterations,
                    args.warmup,
                    not args.no_depth_output,
                    size,
                    args.io == "registered",
                    batch,
                    args.rate,
                )
            )
    if args.baseline and encoding != "jpeg":
        print("engine_bench: per-frame reference ...", file=sys.stderr, flush=True)
        rows.append(run_reference_baseline(frame, args.iterations, args.warmup))
    pace = f"calls at {args.rate:g} Hz" if args.rate else "calls back to back"
    print(
        f"\n{size} {encoding} ({source}), {args.iterations} iterations, {pace}, {args.io} host "
        "buffers, random weights\n"
    )
    print(format_table(rows))
    if args.json:
        results = {
            "size": list(size),
            "encoding": encoding,
            "results": [r.to_dict() for r in rows],
        }
        write_json(args.json, results, indent=1)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``engine_bench``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_command(build_parser(), argv, run)


if __name__ == "__main__":
    sys.exit(main())
