"""The networks and the JPEG decoder alone: what the engine's floor is made of.

``python -m aria_perception.bench.network_bench`` times, on one device:
- MiDaS small and YOLOv8n on fixed inputs (256x256, 640x640 by default), each as a CUDA graph,
  uncompiled and through ``torch.compile`` (inductor, what ``worker.compile`` does), and both
  back to back: the floor under the engine's per-frame time, without pre- or post-processing;
- the decoding of one JPEG frame of ``--size``: on the GPU (nvjpeg through torchvision, as the
  engine does), with a host synchronisation after each frame and pipelined, and on the CPU.

Random weights; the figures do not depend on them. On the CPU, graphs and the GPU decoder are
left out and the networks run eagerly (``--no-compile`` skips the compiled rows).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from aria_perception.bench.console import run_command, write_json
from aria_perception.bench.errors import UsageError
from aria_perception.bench.sizes import Size, parse_size
from aria_perception.stats import percentile

__all__ = ["build_parser", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    """The ``network_bench`` argument parser."""
    p = argparse.ArgumentParser(prog="network_bench", description=__doc__)
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto")
    p.add_argument("--size", type=parse_size, default=Size(1408, 1408), help="JPEG frame WxH")
    p.add_argument("--depth-size", type=int, default=256, help="MiDaS input side")
    p.add_argument("--detector-size", type=int, default=640, help="YOLO input side")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    p.add_argument("--json", help="write the results here")
    return p


def _timed(fn: Callable[[], Any], iterations: int, sync: Callable[[], None]) -> dict[str, float]:
    """p50 of single calls (synchronised each) and the pipelined rate of ``fn``."""
    for _ in range(max(3, iterations // 10)):
        fn()
    sync()
    single = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        sync()
        single.append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    for _ in range(iterations):
        fn()
    sync()
    return {"p50_ms": percentile(single, 50), "fps": iterations / (time.perf_counter() - t0)}


def _runner(fn: Callable[[], Any], graphs: bool) -> Callable[[], Any]:
    """``fn`` as it is, or captured once as a CUDA graph and replayed."""
    if not graphs:
        return fn
    import torch

    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _networks(args: argparse.Namespace, device: Any, cuda: bool) -> list[dict[str, Any]]:
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from aria_perception.engine.compile import CompiledStep
    from aria_perception.engine.fold import fold_batchnorm
    from aria_perception.engine.midas import MidasSmall

    dtype = torch.float16 if cuda else torch.float32
    layout = torch.channels_last if cuda else torch.contiguous_format
    midas, _ = fold_batchnorm(MidasSmall())
    yolo = DetectionModel("yolov8n.yaml", verbose=False).fuse(verbose=False)
    nets = {
        "MiDaS small": (midas, args.depth_size),
        "YOLOv8n": (yolo, args.detector_size),
    }
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows: list[dict[str, Any]] = []
    variants = [False] if args.no_compile else [False, True]
    with torch.inference_mode():
        for compiled in variants:
            calls = []
            for name, (net, side) in nets.items():
                net = net.to(device, dtype, memory_format=layout).eval()
                x = torch.randn(1, 3, side, side, device=device, dtype=dtype)
                x = x.contiguous(memory_format=layout)
                call = CompiledStep(net, name) if compiled else net
                calls.append((call, x))
                timed = _timed(_runner(lambda c=call, x=x: c(x), cuda), args.iterations, sync)
                rows.append({"what": f"{name} {side}x{side}", "compiled": compiled, **timed})

            def both(calls: list = calls) -> None:
                for call, x in calls:
                    call(x)

            timed = _timed(_runner(both, cuda), args.iterations, sync)
            rows.append({"what": "both back to back", "compiled": compiled, **timed})
    return rows


def _decoders(args: argparse.Namespace, device: Any, cuda: bool) -> list[dict[str, Any]]:
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    from aria_perception.bench.engine_bench import bench_frame

    frame, _ = bench_frame(args.size)
    data = encode_jpeg(torch.from_numpy(frame).permute(2, 0, 1).contiguous(), quality=90)
    rows = []
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    targets = [("GPU (nvjpeg)", device)] if cuda else []
    targets.append(("CPU (libjpeg)", torch.device("cpu")))
    for name, target in targets:
        timed = _timed(
            lambda t=target: decode_jpeg(data, mode=ImageReadMode.RGB, device=t),
            args.iterations if target.type == "cuda" else max(10, args.iterations // 10),
            sync,
        )
        rows.append({"what": f"JPEG {args.size} decode, {name}", "compiled": False, **timed})
    rows[0]["bytes"] = int(data.numel())
    return rows


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every row; print the table."""
    import torch

    if args.iterations < 1:
        raise UsageError("--iterations must be >= 1")
    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {args.device!r}: {err}") from err
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device here")
    rows = _networks(args, device, cuda) + _decoders(args, device, cuda)
    print(f"\n{device} ({'graphs' if cuda else 'eager'}), {args.iterations} iterations\n")
    print("| what | compiled | p50 ms (synchronised) | FPS (pipelined) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {'yes' if r['compiled'] else 'no'} | {r['p50_ms']:.3f} "
              f"| {r['fps']:.0f} |")  # fmt: skip
    if args.json:
        write_json(args.json, {"device": str(device), "results": rows}, indent=1)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m aria_perception.bench.network_bench``."""
    return run_command(build_parser(), argv, run)


if __name__ == "__main__":
    sys.exit(main())
