"""``bench``: replay camera frames through the perception node and report how it keeps up.

Usage (``bench --help`` lists every option)::

    bench --preset smoke                          # 50 frames of a 640x480 sample, echo + node
    bench --preset benchmark --out bench_out      # 200 frames at 1408x1408 (make bench)
    bench --bag my_bag --topic /camera/image_raw  # replay a recorded bag
    bench --preset headset                        # Aria's three cameras into one container
    bench --bag aria_bag --topics /camera_rgb/image_raw,/camera_slam_left/image_raw
    bench --preset smoke -P worker.parallel_streams:=false   # compare two configurations
    bench sample --out sample_bag --width 1408 --height 1408 --count 60 --storage mcap
    bench echo --ros-args -r __node:=perception   # the echo reference alone
    bench import recording.vrs --out aria_bag     # a Project Aria VRS recording to a bag
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aria_perception.bench.console import (
    EXIT_ERROR,
    EXIT_FAILED_CRITERIA,
    EXIT_INTERRUPTED,
    EXIT_OK,
    run_main,
)
from aria_perception.bench.criteria import Criteria, Verdict
from aria_perception.bench.errors import UsageError
from aria_perception.bench.pacing import MAX, RECORDED, check_pacing
from aria_perception.bench.sample import SampleSpec
from aria_perception.bench.sizes import Size, parse_size

if TYPE_CHECKING:
    from aria_perception.bench.config import BenchConfig

# What a preset sets unless the option is given. The plan's criteria apply to both.
PRESETS = {
    "smoke": {"frames": 50, "warmup": 5, "throughput_frames": 50, "width": 640, "height": 480},
    "benchmark": {
        "frames": 200,
        "warmup": 20,
        "throughput_frames": 200,
        "width": 1408,
        "height": 1408,
    },
    "headset": {
        "frames": 300,
        "warmup": 30,
        "throughput_frames": 300,
        "width": 1408,
        "height": 1408,
    },
    "custom": {"frames": 100, "warmup": 10, "throughput_frames": 100, "width": 640, "height": 480},
}

#: Options that are :class:`BenchConfig` fields of the same name, taken as given.
_AS_GIVEN = (
    "preset",
    "rate",
    "window",
    "qos",
    "qos_depth",
    "bag",
    "topic",
    "transport",
    "jpeg_quality",
    "attach",
    "namespace",
    "node_name",
    "node_pid",
    "image_topic",
    "output_prefix",
    "params_file",
    "depth",
    "save_images",
    "domain_id",
    "dds_transport",
    "fastdds_profile",
    "out",
)
#: Options that are :class:`BenchConfig` fields of the same name; the preset's when not given.
_PRESET_FILLED = ("frames", "warmup", "throughput_frames")


def _rate(text: str) -> str | float:
    if text in (RECORDED, MAX):
        return text
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (Hz, recorded or max)") from err
    try:
        return check_pacing(value)
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def build_parser() -> argparse.ArgumentParser:
    """The ``bench`` argument parser (the ``sample`` and ``echo`` subcommands have their own)."""
    p = argparse.ArgumentParser(
        prog="bench",
        description="Replay frames through the perception node (and the echo reference) over "
        "real DDS; report latency, throughput, drops, CPU, memory and the node's diagnostics. "
        "Subcommands: 'bench sample ...' writes a sample bag, 'bench echo --ros-args ...' runs "
        "the echo reference alone, 'bench import RECORDING.vrs --out DIR' turns a Project Aria "
        "recording into a bag.",
    )
    g = p.add_argument_group("what to run")
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="custom",
        help="smoke: 50 frames 640x480; benchmark: 200 frames 1408x1408; headset: Aria's "
        "three cameras (1408x1408 rgb8 + two 640x480 mono8) at once, 300 frames each, into one "
        "perception_container with a node per camera",
    )
    g.add_argument("--out", type=Path, default=Path("bench_out"), help="output directory")
    g.add_argument(
        "--echo-only",
        action="store_true",
        help="run only the echo reference (the transport floor)",
    )
    g.add_argument("--no-echo", action="store_true", help="skip the echo reference")
    g.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a criterion fails (default: the verdict is only reported)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")

    g = p.add_argument_group("frames")
    g.add_argument(
        "--bag",
        type=Path,
        help="rosbag2 bag (sqlite3 or mcap) to replay; default: a sample sequence of photographs",
    )
    g.add_argument("--topic", help="image topic in the bag (default: its only image topic)")
    g.add_argument(
        "--topics",
        type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
        help="several image topics of the bag, comma-separated, replayed together (each "
        "frame at its recorded offset with --rate recorded) into one container, a node each",
    )
    g.add_argument(
        "--slam-size",
        type=parse_size,
        help="headset preset: size of the two SLAM cameras (default 640x480; --size sets the "
        "RGB camera's)",
    )
    g.add_argument(
        "--size", type=parse_size, help="sample resolution WxH (preset: 640x480 or 1408x1408)"
    )
    g.add_argument(
        "--sample-frames",
        type=int,
        default=60,
        help="distinct sample frames (replay loops over them)",
    )
    g.add_argument(
        "--transport",
        choices=("raw", "compressed"),
        help="publish sensor_msgs/Image or CompressedImage (JPEG); converts the "
        "frames if needed (default: as recorded; the sample is raw)",
    )
    g.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality for compressed")

    g = p.add_argument_group("replay")
    g.add_argument("--frames", type=int, help="frames in the paced (latency) phase")
    g.add_argument("--warmup", type=int, help="closed-loop frames before measuring")
    g.add_argument(
        "--throughput-frames", type=int, help="frames in the max-rate phase (0 skips it)"
    )
    g.add_argument(
        "--rate",
        type=_rate,
        default=30.0,
        help="paced phase rate: Hz, 'recorded' (the bag's timing) or 'max'",
    )
    g.add_argument(
        "--window",
        type=int,
        default=2,
        help="max-rate: frames in flight (publish the next when fewer are unanswered)",
    )
    g.add_argument(
        "--qos",
        choices=("reliable", "best_effort", "sensor_data"),
        default="reliable",
        help="publisher QoS",
    )
    g.add_argument("--qos-depth", type=int, default=5, help="publisher history depth")
    g.add_argument(
        "--result-timeout",
        type=float,
        default=5.0,
        help="seconds after which an unanswered frame counts as dropped",
    )
    g.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        help="seconds a target gets to subscribe and answer its first frame",
    )
    g.add_argument(
        "--depth",
        action="store_true",
        help="also subscribe to depth/raw and check it (32FC1, input size, header); the node "
        "then serialises full-resolution depth every frame, which costs time",
    )
    g.add_argument(
        "--save-images",
        type=int,
        default=0,
        metavar="N",
        help="save N overlay and normalized-depth images of the node as PNG",
    )

    g = p.add_argument_group("the node")
    g.add_argument("--params-file", type=Path, help="--params-file for the node")
    g.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY:=VALUE",
        help="node parameter (repeatable)",
    )
    g.add_argument(
        "-P",
        "--compare-param",
        action="append",
        metavar="KEY:=VALUE",
        help="compare mode: run the node a second time with these parameters "
        "added (repeatable); the report shows both and the ratios",
    )
    g.add_argument("--labels", default="node,node_b", help="labels of the two node runs")
    g.add_argument("--node-name", default="perception", help="node name (remapped to this)")
    g.add_argument(
        "--node-command",
        help="command that starts the node, e.g. 'ros2 run aria_perception "
        "perception_node' (default: this Python with aria_perception.ros.node)",
    )
    g.add_argument(
        "--no-random-weights",
        action="store_true",
        help="do not pass allow_random_weights:=true (then missing weights fail)",
    )
    g.add_argument(
        "--attach",
        action="store_true",
        help="measure a node that is already running instead of starting one",
    )
    g.add_argument(
        "--namespace",
        default="/",
        help="--attach: the running node's namespace (its topics resolve under it)",
    )
    g.add_argument("--node-pid", type=int, help="--attach: its pid, for CPU and memory")
    g.add_argument(
        "--image-topic",
        help="--attach: its input topic (default: <namespace>/image, or the "
        "private <namespace>/<node>/image)",
    )
    g.add_argument(
        "--output-prefix",
        help="--attach: prefix of its outputs, <prefix>/detections (default: "
        "<namespace>/<node> or <namespace>)",
    )

    g = p.add_argument_group("DDS")
    g.add_argument(
        "--domain-id",
        type=int,
        help="ROS_DOMAIN_ID for the bench and its children (default: a random "
        "free one, or the environment's with --attach)",
    )
    g.add_argument(
        "--dds-transport",
        choices=("large_data", "env"),
        default="large_data",
        help="large_data: FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA on both sides "
        "(unless the environment sets a transport); env: leave it alone",
    )

    g.add_argument(
        "--fastdds-profile",
        type=Path,
        help="Fast DDS XML profile for both sides (FASTDDS_DEFAULT_PROFILES_FILE), "
        "e.g. a shared-memory profile with large segments",
    )

    g = p.add_argument_group("criteria")
    g.add_argument(
        "--criteria",
        default="",
        help="override limits: key=value,... with keys min_fps, max_p50_ms, "
        "max_p95_ms, max_gpu_mem_mb, no_crash, max_overhead_p50_ms, "
        "max_overhead_p95_ms, min_throughput_fraction, max_dropped, judge_cpu "
        "(value 'none' switches one off; judge_cpu=true judges a CPU node's speed too, "
        "which is otherwise reported, not judged)",
    )
    g.add_argument(
        "--echo-targets",
        action="store_true",
        help="also judge the targets over echo: p50 +5 ms, p95 +8 ms, "
        "throughput >= 90%% of echo's, zero drops",
    )
    _show_defaults(p)
    return p


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append real defaults to the help (not the None/False placeholders of optional flags)."""
    for action in parser._actions:
        default = action.default
        if action.help and "default" not in action.help and default not in (None, False, [], ""):
            if default is not argparse.SUPPRESS:
                action.help += " (default: %(default)s)"


def _as_given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The options ``names`` as keyword arguments of the record fields of the same names."""
    return {name: getattr(args, name) for name in names}


def config_from_args(args: argparse.Namespace, argv: list[str]) -> BenchConfig:
    """Turn parsed options into a :class:`BenchConfig` (preset values fill the gaps).

    Raises:
        UsageError: An option that cannot be read (``--labels``, ``--criteria``).
    """
    from aria_perception.bench.config import BenchConfig

    preset = PRESETS[args.preset]
    size: Size = args.size or Size(preset["width"], preset["height"])
    criteria = Criteria()
    if args.echo_targets:
        criteria = Criteria(
            max_overhead_p50_ms=5.0,
            max_overhead_p95_ms=8.0,
            min_throughput_fraction=0.9,
            max_dropped=0,
        )
    criteria = Criteria.parse(args.criteria, criteria)
    labels = tuple(s.strip() for s in args.labels.split(","))
    if len(labels) != 2:
        raise UsageError(f"--labels takes two comma-separated names, got {args.labels!r}")
    filled = {k: preset[k] if v is None else v for k, v in _as_given(args, _PRESET_FILLED).items()}
    return BenchConfig(
        **_as_given(args, _AS_GIVEN),
        **filled,
        result_timeout_s=args.result_timeout,
        startup_timeout_s=args.startup_timeout,
        sample=SampleSpec(width=size.width, height=size.height, count=args.sample_frames),
        topics=args.topics,
        slam_size=tuple(args.slam_size or (640, 480)),  # type: ignore[arg-type]
        echo=not args.no_echo,
        node=not args.echo_only,
        node_command=shlex.split(args.node_command) if args.node_command else None,
        params=list(args.param),
        compare_params=list(args.compare_param) if args.compare_param else None,
        labels=labels,  # type: ignore[arg-type]
        random_weights=not args.no_random_weights,
        criteria=criteria,
        progress=not args.no_progress,
        command=shlex.join(["bench", *argv]),
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bench`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sample":
        from aria_perception.bench.sample_command import sample_main

        return sample_main(argv[1:])
    if argv and argv[0] == "import":
        from aria_perception.bench.aria_import import import_main

        return import_main(argv[1:])
    if argv and argv[0] == "echo":
        from aria_perception.bench import echo

        return echo.main(["bench-echo", *argv[1:]])
    args = build_parser().parse_args(argv)
    return run_main("bench", lambda: _bench(args, argv))


def _bench(args: argparse.Namespace, argv: list[str]) -> int:
    from aria_perception.bench.render import summary_text
    from aria_perception.bench.runner import run_bench

    try:  # run_main turns Ctrl-C and SIGTERM into this, once; the runs stop their children
        rep = run_bench(config_from_args(args, argv))
    except KeyboardInterrupt:
        from aria_perception.bench.process import stop_children

        stop_children()  # one started as the interruption came is not stopped by its run
        print("bench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary_text(rep))
    print(f"\nreport: {rep.files.json}, {rep.files.md}, plot: {rep.files.plot}")
    if any(r.latency is None for r in rep.runs):
        return EXIT_ERROR  # a target never got to the measurement: nothing to judge
    if args.strict and rep.verdict is Verdict.FAIL:
        return EXIT_FAILED_CRITERIA
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
