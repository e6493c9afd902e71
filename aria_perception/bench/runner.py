"""One bench invocation: load frames, set up DDS, run each target, write the report.

Targets (:mod:`.targets`) run one after another in the same invocation on the same frames: the
echo reference (the transport floor), our node, and optionally our node with a second parameter
set (compare mode). Several camera streams at once (``--preset headset``, ``--topics``) go
through :mod:`.stream_runner` instead, target by target the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from aria_perception.bench import figures, plot
from aria_perception.bench.bag import read_bag
from aria_perception.bench.comparison import Comparison, Overhead
from aria_perception.bench.config import BenchConfig
from aria_perception.bench.criteria import evaluate, verdict
from aria_perception.bench.environment import dds_environment, node_available
from aria_perception.bench.errors import BenchError, TargetError
from aria_perception.bench.frame import FrameSet
from aria_perception.bench.observations import FrameRecord
from aria_perception.bench.pacing import MAX, pacing_label
from aria_perception.bench.process import ResourceMonitor, TargetProcess
from aria_perception.bench.replay import Replayer
from aria_perception.bench.replay_settings import ReplaySettings
from aria_perception.bench.report import Files, Host, InputInfo, Report, Settings, write_report
from aria_perception.bench.run_record import RunRecord, RunTopics
from aria_perception.bench.sample import sample_set
from aria_perception.bench.stream_runner import (
    load_streams,
    run_stream_target,
    stream_inputs,
    streams_over_echo,
)
from aria_perception.bench.stream_targets import plan_stream_targets
from aria_perception.bench.streams import Stream
from aria_perception.bench.targets import Target, plan_targets
from aria_perception.bench.topics import TopicPlan

#: :class:`BenchConfig` fields that the report's :class:`Settings` record as they are.
_SETTINGS_AS_GIVEN = (
    "preset",
    "frames",
    "warmup",
    "throughput_frames",
    "window",
    "qos",
    "qos_depth",
    "result_timeout_s",
    "startup_timeout_s",
    "depth",
    "save_images",
    "compare_params",
    "attach",
    "criteria",
)

#: :class:`BenchConfig` fields that are :class:`ReplaySettings` fields of the same name.
_REPLAY_AS_GIVEN = ("qos", "qos_depth", "window", "result_timeout_s")


def load_frames(config: BenchConfig) -> FrameSet:
    """The frames to replay, converted to the wanted transport."""
    if config.bag is not None:
        need = config.warmup + config.frames + config.throughput_frames + 1
        frames = read_bag(config.bag, config.topic, limit=need)
    else:
        frames = sample_set(config.sample)
    if config.transport is not None:
        frames = frames.converted(config.transport == "compressed", config.jpeg_quality)
    return frames


class Bench:
    """Runs the configured targets and builds the report (see :func:`run_bench`)."""

    def __init__(self, config: BenchConfig) -> None:
        config.validate()
        self.config = config
        self.out = Path(config.out)
        self.notes: list[str] = []
        self.images: list[str] = []
        self.frames: FrameSet | None = None
        self.streams: list[Stream] = []  # several camera streams; frames is then the first's
        self.env: dict[str, str] = {}

    def _plan(self, target: Target, frames: FrameSet) -> TopicPlan:
        c = self.config
        plan = TopicPlan.for_node(
            target.namespace,
            c.node_name,
            frames.compressed,
            depth=c.depth and target.is_node,
            images=c.save_images > 0 and target.is_node,
        )
        if c.attach and target.is_node and (c.image_topic or c.output_prefix):
            plan = dataclasses.replace(
                plan,
                inputs=(c.image_topic,) if c.image_topic else plan.inputs,
                outputs=(c.output_prefix,) if c.output_prefix else plan.outputs,
            )
        return plan

    def _run_target(self, target: Target) -> RunRecord:
        c = self.config
        frames = self.frames
        assert frames is not None
        run = RunRecord(
            label=target.label,
            role=target.role,
            target=target.kind,
            namespace=target.namespace,
            node_name=c.node_name,
            params=list(target.params),
        )
        plan = self._plan(target, frames)
        settings = ReplaySettings(
            **{name: getattr(c, name) for name in _REPLAY_AS_GIVEN}, status_node=c.node_name
        )
        replayer = monitor = bar = None
        # The bench's own CPU use shows whether the load generator could be the bottleneck.
        self_monitor = ResourceMonitor(os.getpid(), children=False)
        records: list[FrameRecord] = []
        proc = None
        if target.command is not None:
            log = self.out / "logs" / f"{target.label}.log"
            proc = TargetProcess(list(target.command), list(target.ros_args), self.env, log)
            run.command = shlex.join(proc.argv)
            run.log = str(log)
            run.pid = proc.start()
            alive = proc.alive
        else:
            run.pid = c.node_pid

            def alive() -> bool:
                return True

        # Nothing between the child's start and this try: an interruption (Ctrl-C, SIGTERM)
        # anywhere after it still stops the child on the way out.
        try:
            started = time.monotonic()
            replayer = Replayer(frames, plan, settings, name=f"bench_{target.label}")
            if run.pid:
                try:
                    monitor = ResourceMonitor(run.pid)
                except Exception as err:  # psutil: no such process / access denied
                    self.notes.append(f"{target.label}: no CPU/memory figures ({err})")
            topics = replayer.connect(c.startup_timeout_s, alive)
            run.topics = RunTopics(topics.image, topics.detections, topics.depth)
            left = c.startup_timeout_s - (time.monotonic() - started)
            replayer.prime(max(left, 5.0), alive)
            run.startup_s = round(time.monotonic() - started, 3)
            bar = _progress(target.label, c.warmup + c.frames + c.throughput_frames, c.progress)
            replayer.run("warmup", c.warmup, MAX, alive, bar)
            if monitor is not None:
                monitor.record(True)
            self_monitor.record(True)
            t0 = time.time_ns()
            images = c.save_images if target.is_node else 0
            records = replayer.run(
                "latency",
                c.frames,
                c.rate,
                alive,
                bar,
                start_index=c.warmup,
                capture_indices=_capture_candidates(c.frames, images),
            )
            if c.throughput_frames and replayer.failure is None:
                records += replayer.run(
                    "throughput",
                    c.throughput_frames,
                    MAX,
                    alive,
                    bar,
                    start_index=c.warmup + c.frames,
                    capture_indices=_capture_candidates(c.throughput_frames, images),
                )
            t1 = time.time_ns()
            if monitor is not None:
                monitor.record(False)
            self_monitor.record(False)
            if alive():
                replayer.wait_diagnostics_after(t1, timeout_s=2.5)
            run.error = replayer.failure
            run.ok = replayer.failure is None
            self._fill(run, records, replayer, monitor, t0, t1)
            bench_cpu = figures.mean_cpu_percent(self_monitor.usage())
            run.resources = dataclasses.replace(run.resources, bench_cpu_percent_mean=bench_cpu)
            if replayer.captured:
                self._save_images(target.label, replayer)
        except TargetError as err:
            run.error = str(err)
        finally:
            if bar is not None:
                bar.close()
            if monitor is not None:
                monitor.close()
            self_monitor.close()
            if replayer is not None:
                replayer.close()
            if proc is not None:
                if not proc.alive():
                    run.crashed = True
                    run.ok = False
                    tail = proc.log_tail(15)
                    run.error = (run.error or "the process exited") + (
                        f" (exit status {proc.returncode}); last output:\n{tail}"
                    )
                t_stop = time.monotonic()
                run.exit_code = proc.stop()
                run.stop_s = round(time.monotonic() - t_stop, 3)
        return run

    def _fill(
        self,
        run: RunRecord,
        records: list[FrameRecord],
        replayer: Replayer,
        monitor: ResourceMonitor | None,
        t0: int,
        t1: int,
    ) -> None:
        lat = [r for r in records if r.phase == "latency"]
        thr = [r for r in records if r.phase == "throughput"]
        run.latency = figures.phase_stats(lat, pacing_label(self.config.rate))
        run.throughput = figures.phase_stats(thr, MAX)
        collected = bool(replayer.topics and replayer.topics.depth)
        run.depth = figures.depth_stats(records, collected)
        run.diagnostics = figures.diagnostics_summary(replayer.diagnostics(), t0, t1)
        run.resources = figures.resource_summary(monitor.usage() if monitor else None)
        run.frames = figures.frames_table(records)

    def _save_images(self, label: str, replayer: Replayer) -> None:
        """Save ``save_images`` evenly spread frames, preferring those with both images."""
        import cv2

        captured = replayer.captured
        both = [s for s in sorted(captured) if len(captured[s]) == 2]
        pool = both if len(both) >= self.config.save_images else sorted(captured)
        picks = np.unique(np.linspace(0, len(pool) - 1, self.config.save_images).round())
        folder = self.out / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for n, i in enumerate(picks):
            imgs = captured[pool[int(i)]]
            if "overlay" in imgs:
                path = folder / f"{label}_overlay_{n:02d}.png"
                cv2.imwrite(str(path), imgs["overlay"])  # bgr8 as published
                self.images.append(str(path.relative_to(self.out)))
            if "depth" in imgs:
                path = folder / f"{label}_depth_{n:02d}.png"
                cv2.imwrite(str(path), cv2.applyColorMap(imgs["depth"], cv2.COLORMAP_INFERNO))
                self.images.append(str(path.relative_to(self.out)))

    # -- the whole invocation

    def run(self) -> Report:
        """Run every target and return the report (also written to ``out``).

        Raises:
            BenchError: The node is not installed, the frames cannot be loaded, a target
                cannot be started, or the report cannot be written.
        """
        import rclpy
        from rclpy.signals import SignalHandlerOptions

        c = self.config
        if c.node and not c.attach:
            missing = node_available()
            if missing:
                raise BenchError(
                    f"{missing}; run with --echo-only to measure the transport floor alone"
                )
        self.images = []
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BenchError(f"cannot create the output directory {self.out}: {err}") from err
        timeline = None
        if c.multi_stream:
            self.streams, timeline = load_streams(c)
            self.frames = self.streams[0].frames
        else:
            self.frames = load_frames(c)
        for frames in [s.frames for s in self.streams] or [self.frames]:
            if any(info is not None for info in frames.camera_infos):
                self.notes.append(
                    f"the bag's {frames.camera_info_topic} is published with each frame, same "
                    "header, on the target's camera_info input"
                )
        self.env, notes = dds_environment(c)
        self.notes += notes
        # Our own participant must use the same domain and transport as the children: Fast DDS
        # reads its transport from the environment. Restored afterwards for in-process callers.
        saved = dict(os.environ)
        os.environ.update(self.env)
        runs = []
        try:
            # Ctrl-C and SIGTERM end the bench as a KeyboardInterrupt (its command line's
            # doing); rclpy's own handlers would shut the context down mid-call instead.
            rclpy.init(
                args=[],
                domain_id=int(self.env["ROS_DOMAIN_ID"]),
                signal_handler_options=SignalHandlerOptions.NO,
            )
            try:
                if timeline is not None:
                    logs, notes = self.out / "logs", self.notes
                    planned = plan_stream_targets(c, self.streams, self.frames.compressed, logs)
                    for target in planned:
                        runs.append(
                            run_stream_target(
                                c, target, self.streams, timeline, self.env, self.out, notes
                            )
                        )
                else:
                    for target in plan_targets(c, self.frames.compressed):
                        runs.append(self._run_target(target))
            finally:
                rclpy.try_shutdown()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return self._report(runs)

    def _settings(self) -> Settings:
        c, frames = self.config, self.frames
        assert frames is not None
        return Settings(
            **{name: getattr(c, name) for name in _SETTINGS_AS_GIVEN},
            rate=pacing_label(c.rate),
            transport="compressed" if frames.compressed else "raw",
            random_weights_allowed=c.random_weights,
            params_file=str(c.params_file) if c.params_file else None,
            params=list(c.params),
            domain_id=int(self.env["ROS_DOMAIN_ID"]),
            discovery_range=self.env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"),
            fastdds_builtin_transports=self.env.get("FASTDDS_BUILTIN_TRANSPORTS"),
            fastdds_profiles_file=self.env.get("FASTDDS_DEFAULT_PROFILES_FILE"),
        )

    def _input(self) -> InputInfo:
        frames = self.frames
        assert frames is not None
        return InputInfo(
            source=frames.source,
            topic=frames.topic,
            msgtype=frames.msgtype,
            width=frames.width,
            height=frames.height,
            encoding=frames.frames[0].encoding,
            frames_loaded=len(frames),
            frames_available=frames.frames_available,
            bytes_per_frame=int(sum(f.nbytes for f in frames.frames) / len(frames)),
            recorded_fps=round(frames.recorded_fps(), 3),
        )

    def _report(self, runs: list[RunRecord]) -> Report:
        c = self.config
        echo = next((r for r in runs if not r.is_node), None)
        nodes = [r for r in runs if r.is_node]
        criteria = []
        for run in nodes:
            criteria += evaluate(run, echo, c.criteria)
            if run.diagnostics.weights == "random":
                self.notes.append(
                    f"{run.label}: RANDOM WEIGHTS (no official weights found): detections "
                    "and depth are meaningless, speed figures are representative"
                )
        rep = Report(
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            command=c.command,
            host=Host(
                hostname=socket.gethostname(),
                platform=platform.platform(),
                python=platform.python_version(),
                cpu_count=os.cpu_count(),
                rmw=self.env.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp (default)",
            ),
            settings=self._settings(),
            input=self._input(),
            runs=runs,
            vs_echo={r.label: Overhead.of(r, echo) for r in nodes} if echo else {},
            compare=Comparison.of(nodes[0], nodes[1]) if len(nodes) > 1 else None,
            criteria=criteria,
            verdict=verdict(criteria),
            notes=self.notes,
            streams=stream_inputs(self.streams),
            streams_vs_echo=streams_over_echo(nodes, echo),
        )
        plot_path = plot.plot_latency(rep, self.out / "latency.png")
        rep.files = Files(
            json=str(self.out / "report.json"),
            md=str(self.out / "report.md"),
            plot=str(plot_path),
            images=self.images,
            logs=[r.log for r in runs if r.log],
        )
        write_report(rep, self.out)
        return rep


def _capture_candidates(count: int, wanted: int) -> range:
    """Phase indices whose images to keep: about four candidates per wanted image.

    Frames the node drops have none; a stride keeps a long run's images out of memory.
    """
    if wanted <= 0 or count <= 0:
        return range(0)
    return range(0, count, max(1, count // (4 * wanted)))


def _progress(label: str, total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    # disable=None: bars only on a terminal, so logs and CI output stay clean.
    return tqdm(
        total=total,
        desc=f"{label:>8}",
        unit="frame",
        disable=None if enabled else True,
        leave=False,
        file=sys.stderr,
    )


def run_bench(config: BenchConfig) -> Report:
    """Run one bench invocation and return its report (written to ``config.out`` too).

    Raises:
        UsageError: ``config`` is contradictory or out of range.
        BenchError: The invocation could not run (see :meth:`Bench.run`).
    """
    return Bench(config).run()
