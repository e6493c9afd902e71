"""The bench's PNG: latency histogram and per-frame latency timeline of every run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aria_perception.stats import percentile

if TYPE_CHECKING:
    from aria_perception.bench.report import Report

COLORS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def plot_latency(report: Report, path: Path) -> Path:
    """Draw the histogram (paced phase) and the timeline (all measured frames) to ``path``.

    Dropped frames are marked with an ``x`` along the top of the timeline.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (hist, line) = plt.subplots(2, 1, figsize=(10, 8), constrained_layout=True)
    every = [v for r in report.runs for v in r.frames.latency_ms]
    top = max([1.0, *(v for v in every if v is not None)])
    for i, run in enumerate(report.runs):
        lat, phase = run.frames.latency_ms, run.frames.phase
        if not lat:
            continue
        color = COLORS[i % len(COLORS)]
        paced = [v for v, p in zip(lat, phase, strict=True) if p == "latency" and v is not None]
        if paced:
            hist.hist(paced, bins=40, alpha=0.55, color=color, label=run.label)
            hist.axvline(percentile(paced, 50), color=color, linestyle="--", linewidth=1)
        xs = np.arange(len(lat))
        ys = np.array([np.nan if v is None else v for v in lat], dtype=float)
        line.plot(xs, ys, ".-", markersize=3, linewidth=0.6, color=color, label=run.label)
        dropped = [j for j, v in enumerate(lat) if v is None]
        if dropped:
            line.plot(
                dropped,
                [top] * len(dropped),
                "x",
                color=color,
                label=f"{run.label} dropped ({len(dropped)})",
            )
        boundary = next((j for j, p in enumerate(phase) if p == "throughput"), None)
        if boundary:
            line.axvline(boundary - 0.5, color="k", linewidth=0.6, linestyle=":")
    hist.set_title(f"end-to-end latency at {report.settings.rate} (dashed: median)")
    hist.set_xlabel("publish → detections received (ms)")
    hist.set_ylabel("frames")
    if hist.get_legend_handles_labels()[0]:
        hist.legend()
    line.set_title("per-frame latency: paced phase, then max-rate phase (after the dotted line)")
    line.set_xlabel("frame")
    line.set_ylabel("latency (ms)")
    if line.get_legend_handles_labels()[0]:
        line.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
