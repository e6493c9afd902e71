"""One target of a multi-stream invocation: start it, replay every stream, record per stream.

The counterpart of :meth:`aria_perception.bench.runner.Bench._run_target` for several camera
streams (:mod:`.streams`, :mod:`.stream_replay`, :mod:`.stream_targets`). The run's phases are
the totals over all streams; ``streams`` holds each stream's own figures and its node's
diagnostics. A stream that got another stream's answers fails the run.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from aria_perception.bench import figures
from aria_perception.bench.bag import image_topics
from aria_perception.bench.comparison import Overhead
from aria_perception.bench.config import BenchConfig
from aria_perception.bench.errors import TargetError
from aria_perception.bench.observations import FrameRecord
from aria_perception.bench.pacing import MAX, RECORDED, pacing_label
from aria_perception.bench.process import ResourceMonitor, TargetProcess
from aria_perception.bench.replay_settings import ReplaySettings
from aria_perception.bench.report import StreamInput
from aria_perception.bench.run_record import RunRecord, RunTopics, StreamRun
from aria_perception.bench.stream_replay import StreamReplayer, StreamTopics
from aria_perception.bench.stream_targets import stream_topics
from aria_perception.bench.streams import (
    HEADSET_CAMERAS,
    Stream,
    Timeline,
    bag_streams,
    headset_streams,
    timeline_for,
)
from aria_perception.bench.targets import Target

#: :class:`BenchConfig` fields that are :class:`ReplaySettings` fields of the same name.
_REPLAY_AS_GIVEN = ("qos", "qos_depth", "window", "result_timeout_s")


def load_streams(config: BenchConfig) -> tuple[list[Stream], Timeline]:
    """The streams to replay (converted to the wanted transport) and their timeline.

    ``--preset headset`` with a bag and no ``--topics`` replays the bag's Aria cameras.
    """
    c = config
    if c.bag is not None:
        topics = c.topics
        if topics is None:
            present = image_topics(c.bag)
            topics = [topic for _, topic, _, _ in HEADSET_CAMERAS if topic in present]
        need = c.warmup + c.frames + c.throughput_frames + 1
        streams = bag_streams(str(c.bag), topics, limit=need)
        if c.transport is not None:
            compressed = c.transport == "compressed"
            streams = [
                dataclasses.replace(s, frames=s.frames.converted(compressed, c.jpeg_quality))
                for s in streams
            ]
    else:
        streams = headset_streams(c.sample, c.slam_size, compressed=c.transport == "compressed")
    return streams, timeline_for([s.frames for s in streams], recorded=c.rate == RECORDED)


def stream_inputs(streams: Sequence[Stream]) -> list[StreamInput]:
    """The report's description of each stream."""
    return [
        StreamInput(
            name=s.name,
            topic=s.frames.topic or s.topic,
            node_name=s.node_name,
            width=s.frames.width,
            height=s.frames.height,
            encoding=s.frames.frames[0].encoding,
            frames_loaded=len(s.frames),
            bytes_per_frame=int(sum(f.nbytes for f in s.frames.frames) / len(s.frames)),
            recorded_fps=round(s.frames.recorded_fps(), 3),
        )
        for s in streams
    ]


def streams_over_echo(
    nodes: Sequence[RunRecord], echo: RunRecord | None
) -> dict[str, dict[str, Overhead]]:
    """Node run label -> stream -> its figures over the echo reference's same stream."""
    out: dict[str, dict[str, Overhead]] = {}
    for run in nodes:
        if echo is None or not run.streams:
            continue
        out[run.label] = {}
        for s in run.streams:
            ours = run.for_stream(s.name)
            assert ours is not None
            out[run.label][s.name] = Overhead.of(ours, echo.for_stream(s.name))
    return out


def _merged(lanes: Sequence[Sequence[FrameRecord]]) -> list[FrameRecord]:
    return sorted((r for recs in lanes for r in recs), key=lambda r: (r.stamp_ns, r.published_ns))


def run_stream_target(
    config: BenchConfig,
    target: Target,
    streams: list[Stream],
    timeline: Timeline,
    env: dict[str, str],
    out: Path,
    notes: list[str],
) -> RunRecord:
    """Start ``target`` (unless attached), replay every stream through it, record the run."""
    c = config
    topics = stream_topics(target.namespace, streams)
    run = RunRecord(
        label=target.label,
        role=target.role,
        target=target.kind,
        namespace=target.namespace,
        node_name=",".join(s.node_name for s in streams),
        params=list(target.params),
    )
    settings = ReplaySettings(**{name: getattr(c, name) for name in _REPLAY_AS_GIVEN})
    assert target.command is not None
    log = out / "logs" / f"{target.label}.log"
    proc = TargetProcess(list(target.command), list(target.ros_args), env, log)
    run.command, run.log = shlex.join(proc.argv), str(log)
    replayer = monitor = None
    self_monitor = ResourceMonitor(os.getpid(), children=False)
    run.pid = proc.start()
    try:  # right after the start: an interruption (Ctrl-C, SIGTERM) still stops the child
        started = time.monotonic()
        replayer = StreamReplayer(
            streams, topics, timeline, settings, name=f"bench_{target.label}"
        )
        try:
            monitor = ResourceMonitor(proc.pid or 0)
        except Exception as err:  # psutil: no such process / access denied
            notes.append(f"{target.label}: no CPU/memory figures ({err})")
        replayer.connect(c.startup_timeout_s, proc.alive)
        run.topics = RunTopics(topics[0].image, topics[0].detections)
        left = c.startup_timeout_s - (time.monotonic() - started)
        replayer.prime(max(left, 5.0), proc.alive)
        run.startup_s = round(time.monotonic() - started, 3)
        replayer.run("warmup", c.warmup, MAX, proc.alive)
        for m in (monitor, self_monitor):
            if m is not None:
                m.record(True)
        t0 = time.time_ns()
        lat = replayer.run("latency", c.frames, c.rate, proc.alive)
        thr: list[list[FrameRecord]] = [[] for _ in streams]
        if c.throughput_frames and replayer.failure is None:
            thr = replayer.run("throughput", c.throughput_frames, MAX, proc.alive)
        t1 = time.time_ns()
        for m in (monitor, self_monitor):
            if m is not None:
                m.record(False)
        if proc.alive():
            replayer.wait_diagnostics_after(t1, timeout_s=2.5)
        run.error = replayer.failure
        run.ok = replayer.failure is None
        _fill(run, c, streams, topics, replayer, lat, thr, t0, t1)
        run.resources = dataclasses.replace(
            figures.resource_summary(monitor.usage() if monitor else None),
            bench_cpu_percent_mean=figures.mean_cpu_percent(self_monitor.usage()),
        )
        mixed = {s.name: s.mixed_up for s in run.streams if s.mixed_up}
        if mixed:
            run.ok = False
            run.error = (run.error + "; " if run.error else "") + (
                "answers crossed streams (answers carrying another stream's frame: "
                + ", ".join(f"{name} {n}" for name, n in mixed.items())
                + ")"
            )
    except TargetError as err:
        run.error = str(err)
    finally:
        for m in (monitor, self_monitor):
            if m is not None:
                m.close()
        if replayer is not None:
            replayer.close()
        if not proc.alive():
            run.crashed, run.ok = True, False
            run.error = (run.error or "the process exited") + (
                f" (exit status {proc.returncode}); last output:\n{proc.log_tail(15)}"
            )
        t_stop = time.monotonic()
        run.exit_code = proc.stop()
        run.stop_s = round(time.monotonic() - t_stop, 3)
    return run


def _fill(
    run: RunRecord,
    config: BenchConfig,
    streams: Sequence[Stream],
    topics: Sequence[StreamTopics],
    replayer: StreamReplayer,
    lat: list[list[FrameRecord]],
    thr: list[list[FrameRecord]],
    t0: int,
    t1: int,
) -> None:
    paced = pacing_label(config.rate)
    parts = []
    for k, (stream, where) in enumerate(zip(streams, topics, strict=True)):
        unmatched, crossed = replayer.counts(k)
        parts.append(
            StreamRun(
                name=stream.name,
                node_name=stream.node_name,
                topics=RunTopics(where.image, where.detections),
                latency=figures.phase_stats(lat[k], paced),
                throughput=figures.phase_stats(thr[k], MAX),
                unmatched=unmatched,
                crossed=crossed,
                diagnostics=figures.diagnostics_summary(replayer.diagnostics(k), t0, t1),
            )
        )
    run.streams = parts
    run.latency = figures.phase_stats(_merged(lat), paced)
    run.throughput = figures.phase_stats(_merged(thr), MAX)
    run.diagnostics = figures.merged_diagnostics([p.diagnostics for p in parts])
    run.frames = figures.frames_table(_merged(lat) + _merged(thr))
