"""One bench invocation: load frames, set up DDS, run each target, write the report.

Targets run one after another in the same invocation on the same frames: the echo reference
(DESIGN 7), our node, and optionally our node with a second parameter set (compare mode). Each
target gets its own namespace (``/bench_<label>``), so a late message of one run can never be
taken for an answer of the next.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.util
import os
import platform
import random
import shlex
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aria_perception.bench import plot, report
from aria_perception.bench.bag import read_bag
from aria_perception.bench.frame import FrameSet
from aria_perception.bench.process import (
    ECHO_COMMAND,
    NODE_COMMAND,
    ResourceMonitor,
    TargetProcess,
)
from aria_perception.bench.replay import Replayer, ReplayError, ReplaySettings, TopicPlan
from aria_perception.bench.report import Criteria
from aria_perception.bench.sample import SampleSpec, sample_set

NODE_MODULE = "aria_perception.ros.node"


class BenchError(Exception):
    """The bench cannot run as configured (bad input, missing node, DDS trouble)."""


@dataclass
class BenchConfig:
    """Everything one invocation does (the CLI fills it; tests build it directly).

    Attributes:
        preset: Name shown in the report (``smoke``, ``benchmark`` or ``custom``).
        frames: Frames in the paced (latency) phase.
        warmup: Closed-loop frames before measuring (not counted).
        throughput_frames: Frames in the max-rate phase (0 skips it).
        rate: Paced phase rate: Hz, ``"recorded"`` or ``"max"``.
        window: Frames in flight in max-rate pacing.
        qos: Publisher reliability (``reliable``, ``best_effort``, ``sensor_data``).
        qos_depth: Publisher history depth.
        result_timeout_s: An answer later than this counts the frame as dropped.
        startup_timeout_s: Time a target gets to subscribe and answer its first frame.
        bag: Bag to replay; None generates a sample sequence from ``sample``.
        topic: Image topic in the bag (None: the only one).
        sample: Sample sequence made when there is no bag.
        transport: ``raw`` or ``compressed`` input (None: as the frames come).
        jpeg_quality: Quality when raw frames are compressed for ``compressed`` input.
        echo: Run the echo reference.
        node: Run our node (started here, or attached when ``attach``).
        attach: Use a running node instead of starting one.
        namespace: Attached node's namespace (its relative topics resolve under it).
        node_name: Node name (remapped when started here; diagnostics are matched on it).
        node_pid: Attached node's pid for CPU and memory figures.
        image_topic: Attached node's input topic (default: found under ``namespace``).
        output_prefix: Prefix of the attached node's outputs (``<prefix>/detections``;
            default: found under ``namespace``, private or relative).
        node_command: Command that starts the node (before ``--ros-args``).
        params_file: ``--params-file`` for the node.
        params: ``key:=value`` parameters for the node.
        compare_params: A second parameter set for compare mode (None: no compare run).
        labels: Labels of the node run and the compare run.
        random_weights: Pass ``allow_random_weights:=true`` (random init only where official
            weights are missing).
        depth: Subscribe to ``depth/raw`` and check it (the node then computes it).
        save_images: Keep this many overlay + normalized depth images of our node as PNG.
        domain_id: ROS_DOMAIN_ID for the bench and its children (None: a free one).
        dds_transport: ``large_data`` sets FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA on both sides
            unless the environment already chose a transport; ``env`` leaves it alone.
        fastdds_profile: Fast DDS XML profile for both sides (FASTDDS_DEFAULT_PROFILES_FILE);
            replaces the builtin-transport setting.
        criteria: Pass/fail limits.
        out: Output directory.
        progress: Show progress bars.
        command: The command line, for the report.
    """

    preset: str = "custom"
    frames: int = 100
    warmup: int = 10
    throughput_frames: int = 100
    rate: str | float = 30.0
    window: int = 2
    qos: str = "reliable"
    qos_depth: int = 5
    result_timeout_s: float = 5.0
    startup_timeout_s: float = 180.0
    bag: Path | None = None
    topic: str | None = None
    sample: SampleSpec = field(default_factory=SampleSpec)
    transport: str | None = None
    jpeg_quality: int = 90
    echo: bool = True
    node: bool = True
    attach: bool = False
    namespace: str = "/"
    node_name: str = "perception"
    node_pid: int | None = None
    image_topic: str | None = None
    output_prefix: str | None = None
    node_command: list[str] | None = None
    params_file: Path | None = None
    params: list[str] = field(default_factory=list)
    compare_params: list[str] | None = None
    labels: tuple[str, str] = ("node", "node_b")
    random_weights: bool = True
    depth: bool = False
    save_images: int = 0
    domain_id: int | None = None
    dds_transport: str = "large_data"
    fastdds_profile: Path | None = None
    criteria: Criteria = field(default_factory=Criteria)
    out: Path = Path("bench_out")
    progress: bool = True
    command: str = ""

    def validate(self) -> None:
        """Refuse contradictory or out-of-range settings with a message naming the option."""
        if self.frames < 1:
            raise BenchError(f"--frames must be >= 1, got {self.frames}")
        if self.warmup < 0 or self.throughput_frames < 0:
            raise BenchError("--warmup and --throughput-frames must be >= 0")
        if isinstance(self.rate, str) and self.rate not in ("recorded", "max"):
            raise BenchError(f"--rate must be a number, 'recorded' or 'max', got {self.rate!r}")
        if not isinstance(self.rate, str) and not self.rate > 0:
            raise BenchError(f"--rate must be > 0 Hz, got {self.rate}")
        if self.transport not in (None, "raw", "compressed"):
            raise BenchError(f"--transport must be raw or compressed, got {self.transport!r}")
        if self.dds_transport not in ("large_data", "env"):
            raise BenchError(
                f"--dds-transport must be large_data or env, got {self.dds_transport}"
            )
        if self.fastdds_profile is not None and not Path(self.fastdds_profile).is_file():
            raise BenchError(f"--fastdds-profile {self.fastdds_profile} is not a file")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise BenchError(f"--domain-id must be 0..232, got {self.domain_id}")
        if not (self.echo or self.node):
            raise BenchError("nothing to run: both the echo reference and the node are off")
        if (self.image_topic or self.output_prefix) and not self.attach:
            raise BenchError("--image-topic and --output-prefix go with --attach")
        if self.attach and self.compare_params is not None:
            raise BenchError("compare mode starts the node twice; it cannot attach (--attach)")
        if self.labels[0] == self.labels[1] or "echo" in self.labels:
            raise BenchError(f"run labels must differ and not be 'echo': {self.labels}")
        for p in [*self.params, *(self.compare_params or [])]:
            if ":=" not in p:
                raise BenchError(f"parameter {p!r} must be written key:=value")


def node_available() -> str | None:
    """None when our node can be started; otherwise what is missing, in words."""
    try:
        spec = importlib.util.find_spec(NODE_MODULE)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return (
            f"the perception node ({NODE_MODULE.replace('.', '/')}.py, console script "
            "perception_node) is not installed yet"
        )
    return None


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


def _param_value(params: list[str], key: str) -> str | None:
    value = None
    for p in params:
        k, _, v = p.partition(":=")
        if k.strip() == key:
            value = v.strip()
    return value


def dds_environment(config: BenchConfig) -> tuple[dict[str, str], list[str]]:
    """Environment for the bench and its children, and notes about what was chosen."""
    env = dict(os.environ)
    notes = []
    if config.domain_id is not None:
        domain = config.domain_id
    elif config.attach:
        domain = int(env.get("ROS_DOMAIN_ID", "0") or 0)
    else:
        # A domain of its own keeps other nodes on this machine out of the measurement. Only
        # ids whose DDS ports stay below Linux's ephemeral range (ROS 2 docs: 0-101, 215-232).
        current = env.get("ROS_DOMAIN_ID")
        safe = [*range(1, 102), *range(215, 233)]
        domain = random.choice([d for d in safe if str(d) != current])
    env["ROS_DOMAIN_ID"] = str(domain)
    if not config.attach:
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if config.fastdds_profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(config.fastdds_profile).resolve())
        env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    elif config.dds_transport == "large_data":
        if env.get("FASTDDS_BUILTIN_TRANSPORTS") or env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
            notes.append(
                "Fast DDS transport left as the environment chose it "
                f"(FASTDDS_BUILTIN_TRANSPORTS={env.get('FASTDDS_BUILTIN_TRANSPORTS', '')!r}, "
                f"FASTDDS_DEFAULT_PROFILES_FILE={env.get('FASTDDS_DEFAULT_PROFILES_FILE', '')!r})"
            )
        else:
            env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    env["PYTHONUNBUFFERED"] = "1"
    return env, notes


class Bench:
    """Runs the configured targets and builds the report (see :func:`run_bench`)."""

    def __init__(self, config: BenchConfig) -> None:
        config.validate()
        self.config = config
        self.out = Path(config.out)
        self.notes: list[str] = []
        self.frames: FrameSet | None = None
        self.env: dict[str, str] = {}

    # -- targets

    def _targets(self) -> list[dict]:
        c = self.config
        compressed = self.frames.compressed  # type: ignore[union-attr]
        transport = "compressed" if compressed else "raw"
        targets = []
        if c.echo:
            ros_args = ["-r", f"__node:={c.node_name}", "-r", "__ns:=/bench_echo"]
            ros_args += ["-p", f"input.transport:={transport}"]
            qos = _param_value(c.params, "input.qos")
            if qos:
                ros_args += ["-p", f"input.qos:={qos}"]
            targets.append(
                {
                    "label": "echo",
                    "role": "echo",
                    "namespace": "/bench_echo",
                    "command": [sys.executable, *ECHO_COMMAND],
                    "ros_args": ros_args,
                    "params": [],
                }
            )
        if not c.node:
            return targets
        if c.attach:
            targets.append(
                {
                    "label": c.labels[0],
                    "role": "node",
                    "namespace": c.namespace,
                    "command": None,
                    "ros_args": [],
                    "params": [],
                }
            )
            return targets
        sets = [(c.labels[0], c.params)]
        if c.compare_params is not None:
            sets.append((c.labels[1], [*c.params, *c.compare_params]))
        for i, (label, params) in enumerate(sets):
            ns = f"/bench_{label}"
            base = [f"input.transport:={transport}"]
            if c.random_weights:
                base.append("allow_random_weights:=true")
            ros_args = ["-r", f"__node:={c.node_name}", "-r", f"__ns:={ns}"]
            if c.params_file is not None:
                ros_args += ["--params-file", str(c.params_file)]
            for p in [*base, *params]:
                ros_args += ["-p", p]
            targets.append(
                {
                    "label": label,
                    "role": "node" if i == 0 else "node_b",
                    "namespace": ns,
                    "command": list(c.node_command or [sys.executable, *NODE_COMMAND]),
                    "ros_args": ros_args,
                    "params": [*base, *params],
                }
            )
        return targets

    def _run_target(self, target: dict) -> dict:
        c = self.config
        frames = self.frames
        assert frames is not None
        run: dict = {k: None for k in report.RUN_KEYS}
        run.update(
            label=target["label"],
            role=target["role"],
            target="echo" if target["role"] == "echo" else ("attached" if c.attach else "node"),
            namespace=target["namespace"],
            node_name=c.node_name,
            params=target["params"],
            ok=False,
            crashed=False,
            stop_s=None,
        )
        is_node = target["role"] != "echo"
        plan = TopicPlan.for_node(
            target["namespace"],
            c.node_name,
            frames.compressed,
            depth=c.depth and is_node,
            images=c.save_images > 0 and is_node,
        )
        if c.attach and is_node and (c.image_topic or c.output_prefix):
            plan = dataclasses.replace(
                plan,
                inputs=(c.image_topic,) if c.image_topic else plan.inputs,
                outputs=(c.output_prefix,) if c.output_prefix else plan.outputs,
            )
        settings = ReplaySettings(
            qos=c.qos,
            qos_depth=c.qos_depth,
            window=c.window,
            result_timeout_s=c.result_timeout_s,
            status_node=c.node_name,
        )
        proc = None
        if target["command"] is not None:
            log = self.out / "logs" / f"{target['label']}.log"
            proc = TargetProcess(target["command"], target["ros_args"], self.env, log)
            run["command"] = shlex.join(proc.argv)
            run["log"] = str(log)
            proc.start()
            run["pid"] = proc.pid
            alive = proc.alive
        else:
            run["pid"] = c.node_pid

            def alive() -> bool:
                return True

        started = time.monotonic()
        replayer = monitor = None
        # The bench's own CPU use shows whether the load generator could be the bottleneck.
        self_monitor = ResourceMonitor(os.getpid(), children=False)
        records: list = []
        bar = None
        try:
            replayer = Replayer(frames, plan, settings, name=f"bench_{target['label']}")
            if run["pid"]:
                try:
                    monitor = ResourceMonitor(run["pid"])
                except Exception as err:  # psutil: no such process / access denied
                    self.notes.append(f"{target['label']}: no CPU/memory figures ({err})")
            topics = replayer.connect(c.startup_timeout_s, alive)
            run["topics"] = {
                "image": topics.image,
                "detections": topics.detections,
                "depth": topics.depth,
            }
            left = c.startup_timeout_s - (time.monotonic() - started)
            replayer.prime(max(left, 5.0), alive)
            run["startup_s"] = round(time.monotonic() - started, 3)
            bar = _progress(target["label"], c.warmup + c.frames + c.throughput_frames, c.progress)
            replayer.run("warmup", c.warmup, "max", alive, bar)
            if monitor is not None:
                monitor.record(True)
            self_monitor.record(True)
            t0 = time.time_ns()
            records = replayer.run(
                "latency",
                c.frames,
                c.rate,
                alive,
                bar,
                start_index=c.warmup,
                capture_indices=_capture_candidates(c.frames, c.save_images if is_node else 0),
            )
            if c.throughput_frames and replayer.failure is None:
                records += replayer.run(
                    "throughput",
                    c.throughput_frames,
                    "max",
                    alive,
                    bar,
                    start_index=c.warmup + c.frames,
                    capture_indices=_capture_candidates(
                        c.throughput_frames, c.save_images if is_node else 0
                    ),
                )
            t1 = time.time_ns()
            if monitor is not None:
                monitor.record(False)
            self_monitor.record(False)
            if alive():
                replayer.wait_diagnostics_after(t1, timeout_s=2.5)
            run["error"] = replayer.failure
            run["ok"] = replayer.failure is None
            self._fill(run, records, replayer, monitor, t0, t1)
            run["resources"]["bench_cpu_percent_mean"] = report.resource_summary(
                self_monitor.usage()
            )["cpu_percent_mean"]
            if replayer.captured:
                self._save_images(target["label"], replayer)
        except ReplayError as err:
            run["error"] = str(err)
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
                    run["crashed"] = True
                    run["ok"] = False
                    tail = proc.log_tail(15)
                    run["error"] = (run["error"] or "the process exited") + (
                        f" (exit status {proc.returncode}); last output:\n{tail}"
                    )
                t_stop = time.monotonic()
                run["exit_code"] = proc.stop()
                run["stop_s"] = round(time.monotonic() - t_stop, 3)
        if run["latency"] is None:
            # Keep the report's shape when the run failed before measuring.
            self._fill(run, records, None, None, 0, 0)
        return run

    def _fill(self, run: dict, records, replayer, monitor, t0: int, t1: int) -> None:
        c = self.config
        pacing = c.rate if isinstance(c.rate, str) else f"{c.rate:g} Hz"
        lat = [r for r in records if r.phase == "latency"]
        thr = [r for r in records if r.phase == "throughput"]
        run["latency"] = report.phase_stats(lat, pacing)
        run["throughput"] = report.phase_stats(thr, "max")
        run["depth"] = report.depth_stats(
            records, bool(replayer and replayer.topics and replayer.topics.depth)
        )
        diag = replayer.diagnostics() if replayer is not None else []
        run["diagnostics"] = report.diagnostics_summary(diag, t0, t1)
        run["resources"] = report.resource_summary(monitor.usage() if monitor else None)
        run["frames"] = report.frames_table(records)

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

    def run(self) -> dict:
        """Run every target and return the report (also written to ``out``)."""
        import rclpy

        c = self.config
        if c.node and not c.attach:
            missing = node_available()
            if missing:
                raise BenchError(
                    f"{missing}; run with --echo-only to measure the transport floor alone"
                )
        self.images: list[str] = []
        self.out.mkdir(parents=True, exist_ok=True)
        self.frames = load_frames(c)
        self.env, notes = dds_environment(c)
        self.notes += notes
        # Our own participant must use the same domain and transport as the children: Fast DDS
        # reads its transport from the environment. Restored afterwards for in-process callers.
        saved = dict(os.environ)
        os.environ.update(self.env)
        runs = []
        try:
            rclpy.init(args=[], domain_id=int(self.env["ROS_DOMAIN_ID"]))
            try:
                for target in self._targets():
                    runs.append(self._run_target(target))
            finally:
                rclpy.try_shutdown()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return self._report(runs)

    def _report(self, runs: list[dict]) -> dict:
        c = self.config
        frames = self.frames
        assert frames is not None
        echo = next((r for r in runs if r["role"] == "echo"), None)
        nodes = [r for r in runs if r["role"] != "echo"]
        criteria = []
        for run in nodes:
            criteria += report.evaluate(run, echo, c.criteria)
            weights = (run["diagnostics"] or {}).get("weights")
            if weights == "random":
                self.notes.append(
                    f"{run['label']}: RANDOM WEIGHTS (no official weights found): detections "
                    "and depth are meaningless, speed figures are representative"
                )
        first = frames.frames[0]
        rep = {
            "schema": report.SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": c.command,
            "host": {
                "hostname": socket.gethostname(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "rmw": self.env.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp (default)",
            },
            "settings": {
                "preset": c.preset,
                "frames": c.frames,
                "warmup": c.warmup,
                "throughput_frames": c.throughput_frames,
                "rate": c.rate if isinstance(c.rate, str) else f"{c.rate:g} Hz",
                "window": c.window,
                "qos": c.qos,
                "qos_depth": c.qos_depth,
                "result_timeout_s": c.result_timeout_s,
                "startup_timeout_s": c.startup_timeout_s,
                "transport": "compressed" if frames.compressed else "raw",
                "depth": c.depth,
                "save_images": c.save_images,
                "random_weights_allowed": c.random_weights,
                "params_file": str(c.params_file) if c.params_file else None,
                "params": c.params,
                "compare_params": c.compare_params,
                "attach": c.attach,
                "domain_id": int(self.env["ROS_DOMAIN_ID"]),
                "discovery_range": self.env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"),
                "fastdds_builtin_transports": self.env.get("FASTDDS_BUILTIN_TRANSPORTS"),
                "fastdds_profiles_file": self.env.get("FASTDDS_DEFAULT_PROFILES_FILE"),
                "criteria": c.criteria.__dict__,
            },
            "input": {
                "source": frames.source,
                "topic": frames.topic,
                "msgtype": frames.msgtype,
                "width": frames.width,
                "height": frames.height,
                "encoding": first.encoding,
                "frames_loaded": len(frames),
                "frames_available": frames.frames_available,
                "bytes_per_frame": int(np.mean([f.nbytes for f in frames.frames])),
                "recorded_fps": round(frames.recorded_fps(), 3),
            },
            "runs": runs,
            "vs_echo": {r["label"]: report.overhead(r, echo) for r in nodes} if echo else {},
            "compare": report.compare(nodes[0], nodes[1]) if len(nodes) > 1 else None,
            "criteria": criteria,
            "verdict": report.verdict(criteria),
            "notes": self.notes,
            "files": {},
        }
        self.out.mkdir(parents=True, exist_ok=True)
        plot_path = plot.plot_latency(rep, self.out / "latency.png")
        rep["files"] = {
            "json": str(self.out / "report.json"),
            "md": str(self.out / "report.md"),
            "plot": str(plot_path),
            "images": self.images,
            "logs": [r["log"] for r in runs if r.get("log")],
        }
        report.write(rep, self.out)
        return rep


def _capture_candidates(count: int, wanted: int) -> range:
    """Phase indices whose images to keep: about four candidates per wanted image.

    Frames the node drops have none; a stride keeps a long run's images out of memory.
    """
    if wanted <= 0 or count <= 0:
        return range(0)
    return range(0, count, max(1, count // (4 * wanted)))


def _progress(label: str, total: int, enabled: bool):
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


def run_bench(config: BenchConfig) -> dict:
    """Run one bench invocation and return its report (written to ``config.out`` too)."""
    return Bench(config).run()
