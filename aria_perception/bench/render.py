"""A report as text: the console summary and ``report.md`` (the same content)."""

from __future__ import annotations

from pathlib import Path

from aria_perception.bench.report import Report
from aria_perception.bench.run_record import NodePathTimes, PhaseStats, RunRecord, StageTimes

#: The columns of :func:`_phase_cells`, in run and stream rows alike.
PHASE_HEADER = [
    "sent",
    "recv",
    "drop",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "out FPS",
    "max FPS",
    "max drop",
]
RUN_HEADER = [
    "run",
    *PHASE_HEADER,
    "rej",
    "CPU%",
    "wkr CPU%",
    "RSS MB",
    "GPU MB",
    "status",
]

RUN_LEGEND = (
    "sent/recv/drop, p50-p99 and out FPS: the paced phase (latency = publish -> detections "
    "received, matched by stamp); max FPS/max drop: closed-loop max-rate phase; rej: frames the "
    "node rejected (its diagnostics); CPU% of one core: node process, wkr = its worker; RSS: "
    "both; GPU MB: NVML, else the node's gpu_mem_peak_mb."
)
DIAGNOSTICS_KEYS = ("device", "precision", "weights", "hardware_id")
COUNTER_KEYS = (
    "node_dropped_frames",
    "rejected_frames",
    "lost_samples",
    "worker_restarts",
    "batched_frames",
)
STREAM_HEADER = [
    "run",
    "stream",
    *PHASE_HEADER,
    "p50 +echo",
    "p95 +echo",
    "crossed",
]
STREAM_LEGEND = (
    "Per stream (the runs' rows above are the totals over all streams): the paced phase, the "
    "max-rate phase, p50/p95 over the echo reference's same stream (ms), and answers that "
    "carried another stream's frame (crossed, header mismatches included: must be 0)."
)
_MARKS = {True: "PASS", False: "FAIL", None: "n/a "}
_MD_MARKS = {True: "PASS", False: "**FAIL**", None: "n/a"}


def _fmt(value: object, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _phase_cells(lat: PhaseStats | None, thr: PhaseStats | None) -> list[str]:
    """The paced phase's frames, latency percentiles and rate, then the max-rate phase's."""
    lm = lat.latency_ms if lat else None
    return [
        _fmt(lat.published if lat else None),
        _fmt(lat.received if lat else None),
        _fmt(lat.dropped if lat else None),
        _fmt(lm.p50 if lm else None, 2),
        _fmt(lm.p95 if lm else None, 2),
        _fmt(lm.p99 if lm else None, 2),
        _fmt(lat.output_fps if lat else None),
        _fmt(thr.output_fps if thr else None),
        _fmt(thr.dropped if thr else None),
    ]


def _run_row(run: RunRecord) -> list[str]:
    lat, thr = run.latency, run.throughput
    res, diag = run.resources, run.diagnostics
    gpu = res.gpu_mem_nvml_mb_max or diag.gpu_mem_peak_mb
    rss = res.rss_mb_max
    if rss is not None:
        rss += res.worker_rss_mb_max or 0.0
    return [
        run.label,
        *_phase_cells(lat, thr),
        _fmt(diag.rejected_frames),
        _fmt(res.cpu_percent_mean, 0),
        _fmt(res.worker_cpu_percent_mean, 0),
        _fmt(rss, 0),
        _fmt(gpu, 0),
        "ok" if run.ok else "FAILED",
    ]


def _stream_rows(report: Report) -> list[list[str]]:
    rows = []
    for run in report.runs:
        overs = report.streams_vs_echo.get(run.label, {})
        for s in run.streams:
            lat, thr = s.latency, s.throughput
            over = overs.get(s.name)
            rows.append(
                [
                    run.label,
                    s.name,
                    *_phase_cells(lat, thr),
                    _fmt(over.latency_p50_over_echo_ms if over else None, 2),
                    _fmt(over.latency_p95_over_echo_ms if over else None, 2),
                    _fmt(s.mixed_up),
                ]
            )
    return rows


def _streams_line(report: Report) -> str:
    return "streams: " + ", ".join(
        f"{s.name} {s.width}x{s.height} {s.encoding} ({s.topic} -> {s.node_name})"
        for s in report.streams
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _bench_cpu(report: Report) -> str:
    parts = [f"{r.label} {_fmt(r.resources.bench_cpu_percent_mean, 0)}%" for r in report.runs]
    return "Bench process CPU while measuring (the load generator): " + ", ".join(parts) + "."


def _headline(report: Report) -> str:
    s, i = report.settings, report.input
    kind = "JPEG" if s.transport == "compressed" else i.encoding
    thr = f" + {s.throughput_frames} at max rate" if s.throughput_frames else ""
    return (
        f"{i.width}x{i.height} {kind} ({i.bytes_per_frame / 1e6:.2f} MB/frame) from "
        f"{i.source}; {s.frames} frames at {s.rate}{thr} after {s.warmup} warm-up; "
        f"publisher QoS {s.qos}; ROS_DOMAIN_ID {s.domain_id}; Fast DDS transports "
        f"{s.fastdds_builtin_transports or 'default'}"
    )


def _times(record: StageTimes | NodePathTimes) -> str:
    return ", ".join(f"{k[:-3]} {_fmt(v, 2)}" for k, v in record.to_dict().items())


def summary_text(report: Report) -> str:
    """The console summary: runs table, figures over echo, stage times, criteria, verdict."""
    out = [f"aria_perception bench [{report.settings.preset}]: {_headline(report)}", ""]
    out.append(_table(RUN_HEADER, [_run_row(r) for r in report.runs]))
    out.append(RUN_LEGEND)
    out.append(_bench_cpu(report))
    stream_rows = _stream_rows(report)
    if report.streams:
        out.append(_streams_line(report))
    if stream_rows:
        out += ["", _table(STREAM_HEADER, stream_rows), STREAM_LEGEND]
    for label, over in report.vs_echo.items():
        frac = over.throughput_fraction
        out.append(
            f"{label} over echo: p50 +{_fmt(over.latency_p50_over_echo_ms, 2)} ms, "
            f"p95 +{_fmt(over.latency_p95_over_echo_ms, 2)} ms, max-rate throughput "
            + (f"{frac:.0%} of echo's" if frac is not None else "-")
        )
    for run in report.runs:
        diag = run.diagnostics
        if run.is_node and diag.samples:
            out.append(
                f"{run.label} node diagnostics: stages ms ({_times(diag.stage_ms)}); path ms "
                f"({_times(diag.path_ms)}); device {diag.device or '-'} {diag.precision or ''}, "
                f"weights {diag.weights or '-'}, GPU mem peak "
                f"{_fmt(diag.gpu_mem_peak_mb, 0)} MB, node dropped "
                f"{_fmt(diag.node_dropped_frames)}, restarts {_fmt(diag.worker_restarts)}"
            )
        if run.error:
            out.append(f"{run.label}: ERROR: {run.error}")
    c = report.compare
    if c:
        out.append("")
        out.append(f"compare {c.b} / {c.a}:")
        rows = [
            [name, _fmt(m.a, 2), _fmt(m.b, 2), _fmt(m.ratio, 3)] for name, m in c.metrics.items()
        ]
        out.append(_table(["metric", c.a, c.b, "ratio b/a"], rows))
    if report.criteria:
        out.append("")
        out.append("criteria:")
        for cr in report.criteria:
            value = "not reported" if cr.value is None else _fmt(cr.value, 2)
            mark = _MARKS[cr.passed]
            out.append(f"  {mark}  [{cr.run}] {cr.description}  (measured: {value})")
    out += [f"note: {note}" for note in report.notes]
    out.append("")
    out.append(f"RESULT: {report.verdict.value}")
    return "\n".join(out)


def _diagnostics_rows(runs: list[RunRecord]) -> list[str]:
    lines = ["| | " + " | ".join(r.label for r in runs) + " |", "|---|" + "---|" * len(runs)]
    keys = [*DIAGNOSTICS_KEYS, *StageTimes.keys(), *NodePathTimes.keys(), "gpu_mem_peak_mb"]
    keys += COUNTER_KEYS
    for key in keys:
        vals = []
        for r in runs:
            d = r.diagnostics
            if key in StageTimes.keys():
                v = getattr(d.stage_ms, key)
            elif key in NodePathTimes.keys():
                v = getattr(d.path_ms, key)
            else:
                v = getattr(d, key)
            vals.append(_fmt(v, 2))
        lines.append(f"| {key} | " + " | ".join(vals) + " |")
    return lines


def markdown(report: Report) -> str:
    """``report.md``: the same content as the console summary, as Markdown."""
    lines = [
        f"# aria_perception bench report ({report.settings.preset})",
        "",
        f"{report.created} · `{report.command}`",
        "",
        _headline(report),
        "",
        f"**Result: {report.verdict.value}**",
        "",
        "| " + " | ".join(RUN_HEADER) + " |",
        "|" + "---|" * len(RUN_HEADER),
    ]
    lines += ["| " + " | ".join(_run_row(r)) + " |" for r in report.runs]
    lines.append("")
    lines.append(RUN_LEGEND + " " + _bench_cpu(report))
    stream_rows = _stream_rows(report)
    if report.streams or stream_rows:
        lines += ["", "## Streams", ""]
        if report.streams:
            lines += [_streams_line(report), ""]
        lines += ["| " + " | ".join(STREAM_HEADER) + " |", "|" + "---|" * len(STREAM_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in stream_rows]
        lines += ["", STREAM_LEGEND]
    if report.vs_echo:
        lines += ["", "## Over the echo reference (transport floor)", ""]
        lines += ["| run | p50 over echo (ms) | p95 over echo (ms) | throughput / echo |"]
        lines += ["|---|---|---|---|"]
        for label, o in report.vs_echo.items():
            frac = o.throughput_fraction
            lines.append(
                f"| {label} | {_fmt(o.latency_p50_over_echo_ms, 2)} | "
                f"{_fmt(o.latency_p95_over_echo_ms, 2)} | "
                f"{'-' if frac is None else f'{frac:.1%}'} |"
            )
    node_runs = report.node_runs
    if node_runs:
        lines += ["", "## Node diagnostics (measured window)", ""]
        lines += _diagnostics_rows(node_runs)
    c = report.compare
    if c:
        lines += ["", f"## Compare: {c.b} / {c.a}", ""]
        lines += [f"| metric | {c.a} | {c.b} | ratio |", "|---|---|---|---|"]
        for name, m in c.metrics.items():
            lines.append(f"| {name} | {_fmt(m.a, 2)} | {_fmt(m.b, 2)} | {_fmt(m.ratio, 3)} |")
    if report.criteria:
        lines += ["", "## Criteria", "", "| | run | criterion | measured |", "|---|---|---|---|"]
        for cr in report.criteria:
            value = "not reported" if cr.value is None else _fmt(cr.value, 2)
            lines.append(f"| {_MD_MARKS[cr.passed]} | {cr.run} | {cr.description} | {value} |")
    errors = [r for r in report.runs if r.error]
    if errors or report.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {r.label}: {r.error}" for r in errors]
        lines += [f"- {n}" for n in report.notes]
    files = report.files
    if files.plot:
        lines += ["", f"![latency]({Path(files.plot).name})"]
    lines += [f"![{Path(img).stem}]({img})" for img in files.images]
    lines.append("")
    return "\n".join(lines)
