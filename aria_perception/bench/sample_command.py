"""``bench sample``: write a sample bag of photographs panned and zoomed (see :mod:`.sample`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aria_perception.bench.bag import STORAGES, write_bag
from aria_perception.bench.console import EXIT_OK, run_main
from aria_perception.bench.frame import RAW_ENCODINGS
from aria_perception.bench.sample import SampleSpec, sample_frames

#: ``bench sample`` options that are :class:`SampleSpec` fields of the same name.
_SAMPLE_AS_GIVEN = ("width", "height", "count", "encoding", "jpeg_quality", "frame_id")


def sample_main(argv: list[str]) -> int:
    """``bench sample``: write a sample bag of photographs panned and zoomed."""
    p = argparse.ArgumentParser(
        prog="bench sample",
        description="Write a rosbag2 bag of real photographs (shipped by installed packages) "
        "moved and zoomed into a camera sequence.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="bag directory to create")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--count", type=int, default=60, help="frames")
    p.add_argument("--rate", type=float, default=30.0, help="frame rate of the stamps (Hz)")
    p.add_argument("--storage", choices=STORAGES, default="sqlite3")
    p.add_argument(
        "--format",
        choices=("raw", "jpeg"),
        default="raw",
        help="raw: sensor_msgs/Image rgb8; jpeg: sensor_msgs/CompressedImage",
    )
    p.add_argument(
        "--encoding", choices=sorted(RAW_ENCODINGS), default="rgb8", help="raw encoding"
    )
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--topic", help="default /camera/image_raw (/compressed for jpeg)")
    p.add_argument("--frame-id", default="camera-rgb")
    p.add_argument(
        "--distro",
        choices=("humble", "jazzy", "kilted"),
        default="kilted",
        help="typestore for serialisation",
    )
    args = p.parse_args(argv)
    return run_main("bench sample", lambda: _write_sample(args))


def _write_sample(args: argparse.Namespace) -> int:
    spec = SampleSpec(
        **{name: getattr(args, name) for name in _SAMPLE_AS_GIVEN},
        rate_hz=args.rate,
        compressed=args.format == "jpeg",
    )
    n = write_bag(
        args.out, sample_frames(spec), topic=args.topic, storage=args.storage, distro=args.distro
    )
    kind = "CompressedImage jpeg" if args.format == "jpeg" else f"Image {args.encoding}"
    print(
        f"wrote {n} frames {args.width}x{args.height} {kind} at {args.rate:g} Hz to "
        f"{args.out} ({args.storage})"
    )
    return EXIT_OK
