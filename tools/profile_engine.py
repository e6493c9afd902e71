"""Profile one engine configuration on the GPU: where a frame's milliseconds go.

python tools/profile_engine.py [--size WxH] [--eager] [--staged] -> prints the top CPU-side
ops and CUDA kernels of 20 frames (torch.profiler), and writes a Chrome trace if --trace.
"""

from __future__ import annotations

import argparse

import numpy as np
from torch.profiler import ProfilerActivity, profile

from aria_perception.engine.engine import Engine
from aria_perception.records import EngineConfig


def main() -> None:
    """Run the profile."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1408x1408")
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--staged", action="store_true")
    parser.add_argument("--trace")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = np.empty((height, width), np.float32)
    eng = Engine(EngineConfig(allow_random_weights=True, cuda_graphs=not args.eager))
    if not args.staged:
        eng.register_host_buffer(frame)
        eng.register_host_buffer(depth)
    for _ in range(20):
        eng.process(frame, depth_out=depth)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            eng.process(frame, depth_out=depth)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=15))
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
