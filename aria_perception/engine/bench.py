"""Engine benchmark: latency and throughput of :class:`Engine` alone, with ablations.

``engine_bench --size 1408x1408 --iterations 300`` prints a table (p50/p95/p99 latency, FPS and
per-stage GPU times for each configuration) and writes the same as JSON with ``--json``.
Random weights are used unless weight files are given; speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict

import numpy as np

from aria_perception.records import EngineConfig

#: name -> changes to the base configuration (keys starting with ``_`` are Engine arguments).
ABLATIONS: dict[str, dict[str, object]] = {
    "default": {},  # fp16 on CUDA, CUDA graphs, parallel streams
    "sequential": {"parallel_streams": False},
    "eager": {"cuda_graphs": False},
    "eager-sequential": {"cuda_graphs": False, "parallel_streams": False},
    "fp32": {"precision": "fp32"},
    "skip3": {"depth_frame_skip": 3},
    "depth-only": {"detector_enabled": False},
    "detector-only": {"depth_enabled": False},
    "exact-nms": {"_fixed_nms": False},  # the exact NMS with host syncs (torchvision) always
}


def bench_frame(width: int, height: int) -> tuple[np.ndarray, str]:
    """An RGB frame to time: a photograph from the bench's samples, else noise.

    A photo matters for JPEG: noise compresses badly and decodes slower than a camera frame.
    """
    try:
        from aria_perception.bench.sample import find_photos, load_photos, render

        photos = find_photos()
        if photos:
            return render(load_photos(photos[:1])[0], width, height, 0.5), photos[0].name
    except (ImportError, FileNotFoundError):  # no OpenCV, or no photo could be decoded
        pass
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "noise"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_config(
    name: str,
    config: EngineConfig,
    frame: np.ndarray,
    encoding: str,
    iterations: int,
    warmup: int,
    want_depth: bool,
    output_hw: tuple[int, int],
    register: bool,
    engine_kwargs: dict[str, object] | None = None,
) -> dict[str, object]:
    """Benchmark one configuration; returns its figures.

    With ``register`` the frame and the depth output live in page-locked memory, as the
    worker's shared-memory slots do, so no staging copies happen on the host.
    """
    from aria_perception.engine.engine import Engine

    engine = Engine(config, **(engine_kwargs or {}))
    depth_out = np.empty(output_hw, np.float32) if want_depth else None
    if register:
        engine.register_host_buffer(frame)
        if depth_out is not None:
            engine.register_host_buffer(depth_out)
    try:
        for _ in range(warmup):
            engine.process(frame, encoding, want_depth=want_depth, depth_out=depth_out)
        latencies: list[float] = []
        stages: dict[str, list[float]] = {}
        start = time.perf_counter()
        for _ in range(iterations):
            t0 = time.perf_counter()
            result = engine.process(frame, encoding, want_depth=want_depth, depth_out=depth_out)
            latencies.append((time.perf_counter() - t0) * 1000.0)
            for key, value in asdict(result.times).items():
                stages.setdefault(key, []).append(value)
        wall = time.perf_counter() - start
        mem, peak = engine.memory_mb()
        return {
            "name": name,
            "config": asdict(config),
            "iterations": iterations,
            "latency_ms": {
                "p50": _percentile(latencies, 50),
                "p95": _percentile(latencies, 95),
                "p99": _percentile(latencies, 99),
                "mean": float(np.mean(latencies)),
            },
            "fps": iterations / wall,
            "stages_ms_p50": {k: _percentile(v, 50) for k, v in stages.items()},
            "gpu_mem_mb": mem,
            "gpu_mem_peak_mb": peak,
            "device": engine.info.device_name,
            "precision": engine.info.precision,
            "weights": engine.info.weights,
            "registered_io": register,
            # Frames whose fixed-shape NMS result was not exact and took the exact path.
            "exact_post_frames": engine.exact_post_frames,
            "fixed_post_frames": engine.fixed_post_frames,
        }
    finally:
        engine.close()


def run_seed_baseline(frame: np.ndarray, iterations: int, warmup: int) -> dict[str, object]:
    """A naive per-frame pipeline, for comparison (docs/design.md, "Benchmarks").

    cv2 transform on the CPU, fp32 MiDaS, ``.cpu().numpy()`` of the upsampled depth, then
    ``YOLO.predict`` on the same frame; random weights, CUDA device.
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

    for _ in range(warmup):
        once()
    latencies = []
    start = time.perf_counter()
    for _ in range(iterations):
        t0 = time.perf_counter()
        once()
        latencies.append((time.perf_counter() - t0) * 1000.0)
    wall = time.perf_counter() - start
    nan = float("nan")
    return {
        "name": "seed-style baseline",
        "config": {},
        "iterations": iterations,
        "latency_ms": {
            "p50": _percentile(latencies, 50),
            "p95": _percentile(latencies, 95),
            "p99": _percentile(latencies, 99),
            "mean": float(np.mean(latencies)),
        },
        "fps": iterations / wall,
        "stages_ms_p50": dict.fromkeys(
            ("preprocess_ms", "depth_ms", "detect_ms", "transfer_ms", "total_ms"), nan
        ),
        "gpu_mem_mb": nan,
        "gpu_mem_peak_mb": nan,
        "device": str(device),
        "precision": "fp32",
        "weights": "random",
        "registered_io": False,
    }


def format_table(rows: list[dict[str, object]]) -> str:
    """The results as a Markdown table."""
    head = (
        "| configuration | p50 ms | p95 ms | p99 ms | FPS | prep ms | depth ms | detect ms "
        "| transfer ms | GPU MB | exact-path frames |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lat, st = r["latency_ms"], r["stages_ms_p50"]
        lines.append(
            f"| {r['name']} | {lat['p50']:.2f} | {lat['p95']:.2f} | {lat['p99']:.2f} "
            f"| {r['fps']:.0f} | {st['preprocess_ms']:.2f} | {st['depth_ms']:.2f} "
            f"| {st['detect_ms']:.2f} | {st['transfer_ms']:.2f} | {r['gpu_mem_peak_mb']:.0f} "
            f"| {r.get('exact_post_frames', '-')} |"
        )
    return "\n".join(lines)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from err
    return height, width


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``engine_bench``."""
    parser = argparse.ArgumentParser(prog="engine_bench", description=__doc__)
    parser.add_argument("--size", type=_parse_size, default=(1408, 1408), help="WxH")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoding", default="rgb8", choices=["rgb8", "bgr8", "jpeg"])
    parser.add_argument(
        "--no-depth-output",
        action="store_true",
        help="do not upsample/copy the depth map back (box depth only)",
    )
    parser.add_argument(
        "--ablations",
        default="all",
        help="'all', 'none', or comma-separated names: " + ", ".join(ABLATIONS),
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
        help="also time a naive per-frame pipeline (cv2 transform, fp32 MiDaS, YOLO.predict)",
    )
    parser.add_argument("--depth-weights", default="")
    parser.add_argument("--detector-weights", default=EngineConfig().detector_weights)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    height, width = args.size
    frame, source = bench_frame(width, height)
    encoding = args.encoding
    if encoding == "jpeg":
        import cv2

        ok, data = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            print("engine_bench: could not encode the JPEG test frame", file=sys.stderr)
            return 1
        frame = data.reshape(-1)
    base = EngineConfig(
        device=args.device,
        allow_random_weights=True,
        depth_weights=args.depth_weights,
        detector_weights=args.detector_weights,
    )
    if args.ablations == "all":
        names = list(ABLATIONS)
    elif args.ablations == "none":
        names = [next(iter(ABLATIONS))]
    else:
        names = [n.strip() for n in args.ablations.split(",")]
        unknown = [n for n in names if n not in ABLATIONS]
        if unknown:
            parser.error(f"unknown ablation(s) {unknown}; known: {list(ABLATIONS)}")
    rows = []
    for name in names:
        changes = ABLATIONS[name]
        config = base.replace(**{k: v for k, v in changes.items() if not k.startswith("_")})
        engine_kwargs = {k[1:]: v for k, v in changes.items() if k.startswith("_")}
        print(f"engine_bench: {name} ...", file=sys.stderr, flush=True)
        rows.append(
            run_config(
                name,
                config,
                frame,
                encoding,
                args.iterations,
                args.warmup,
                not args.no_depth_output,
                (height, width),
                args.io == "registered",
                engine_kwargs,
            )
        )
    if args.baseline and encoding != "jpeg":
        print("engine_bench: seed-style baseline ...", file=sys.stderr, flush=True)
        rows.append(run_seed_baseline(frame, args.iterations, args.warmup))
    print(
        f"\n{width}x{height} {encoding} ({source}), {args.iterations} iterations, {args.io} host "
        "buffers, random weights\n"
    )
    print(format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"size": [width, height], "encoding": encoding, "results": rows}, fh,
                      indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
