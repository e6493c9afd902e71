"""What taking a raw image into the node costs: deserialised message vs serialized bytes.

The node's image callback validates a frame and copies its pixels once into a pre-allocated
buffer (shared memory in the node). Two intakes feed it (``input.raw_intake``):

* ``message``: rclpy hands the callback a deserialised ``sensor_msgs/Image``;
* ``serialized``: a raw subscription hands it the serialized bytes, and
  :func:`~aria_perception.ros.image_codec.serialized_image` reads the fields in place.

Two measurements, each timing both intakes on the same frame (medians and p95 in ms):

* ``offline``: one message serialised once with ``rclpy.serialization``; then, per iteration,
  ``deserialize_message`` + check + copy against parse + check + copy (and each part alone);
* ``take``: the same bytes published on a topic of a node in this process, taken from two
  subscriptions on it, one deserialising and one raw, with the call the executor makes
  (``take_message``): what rclpy itself costs each way before the callback runs, then the
  callback's check + copy.

Run ``python -m aria_perception.bench.intake_bench --size 1408x1408`` (``--json PATH`` writes
every figure as a full summary).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aria_perception.bench.console import EXIT_OK, run_main, write_json
from aria_perception.bench.errors import TargetTimeoutError
from aria_perception.bench.sizes import Size, parse_size
from aria_perception.stats import Summary

__all__ = ["IntakeFigures", "main", "measure_intake"]

_ENCODING = "rgb8"
_TAKE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class IntakeFigures:
    """Per-iteration timings (ms) of one measurement, by step name."""

    size: Size
    iterations: int
    figures: dict[str, Summary]


def _frame_message(size: Size) -> Any:
    from aria_perception.ros.image_codec import image_from_array

    pixels = np.random.default_rng(0).integers(0, 256, (size.height, size.width, 3), np.uint8)
    msg = image_from_array(pixels, _ENCODING)
    msg.header.stamp.sec, msg.header.frame_id = 1_700_000_000, "aria-rgb"
    return msg


def _timed(step: Callable[[], Any]) -> float:
    start = time.perf_counter()
    step()
    return (time.perf_counter() - start) * 1e3


def measure_offline(size: Size, iterations: int) -> IntakeFigures:
    """Deserialise + check + copy against parse + check + copy of one serialized frame."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from aria_perception.ros.image_codec import image_to_frame, serialized_image

    buf = serialize_message(_frame_message(size))
    out = np.empty((size.height, size.width, 3), np.uint8)
    limit = size.width * size.height

    def copy(received: Any) -> None:
        np.copyto(out, image_to_frame(received, limit).pixels)

    view = image_to_frame(serialized_image(buf), limit)
    steps: dict[str, Callable[[], Any]] = {
        "message: deserialize + check + copy": lambda: copy(deserialize_message(buf, Image)),
        "serialized: parse + check + copy": lambda: copy(serialized_image(buf)),
        "message: deserialize": lambda: deserialize_message(buf, Image),
        "serialized: parse": lambda: serialized_image(buf),
        "copy alone": lambda: np.copyto(out, view.pixels),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(iterations):
        for name, step in steps.items():  # interleaved: both intakes see the same machine load
            times[name].append(_timed(step))
    return IntakeFigures(size, iterations, {k: Summary.of(v) for k, v in times.items()})


def measure_take(size: Size, iterations: int, domain_id: int | None = None) -> IntakeFigures:
    """Take each published frame from a deserialising or a raw subscription, then copy it.

    One subscription at a time, as in the node (the memory allocator then sees the node's
    pattern, one message's buffers at a time); the two intakes take turns in four rounds so
    that a change in the machine's load reaches both.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from aria_perception.ros.image_codec import image_to_frame, serialized_image

    buf = serialize_message(_frame_message(size))
    out = np.empty((size.height, size.width, 3), np.uint8)
    limit = size.width * size.height
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    topic = "intake_bench/image"
    times: dict[str, list[float]] = {
        name: []
        for name in (
            "message: take + check + copy",
            "serialized: take + parse + check + copy",
            "message: take",
            "serialized: take",
        )
    }
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node("intake_bench", context=context)
    try:
        pub = node.create_publisher(Image, topic, qos)
        rounds = 4
        for turn in range(2 * rounds):
            raw = bool(turn % 2)
            label = "serialized" if raw else "message"
            total = f"{label}: take + {'parse + ' if raw else ''}check + copy"
            sub = node.create_subscription(Image, topic, lambda _: None, qos, raw=raw)
            try:
                for _ in range(-(-iterations // rounds)):
                    pub.publish(buf)  # serialized already: rclpy sends the bytes as they are
                    received, take_ms = _take(sub, raw)
                    start = time.perf_counter()
                    frame = image_to_frame(serialized_image(received) if raw else received, limit)
                    np.copyto(out, frame.pixels)
                    del frame, received  # freed before the next take, as in the node
                    intake_ms = (time.perf_counter() - start) * 1e3
                    times[f"{label}: take"].append(take_ms)
                    times[total].append(take_ms + intake_ms)
            finally:
                node.destroy_subscription(sub)
    finally:
        node.destroy_node()
        context.try_shutdown()
    return IntakeFigures(size, iterations, {k: Summary.of(v) for k, v in times.items()})


def _take(sub: Any, raw: bool) -> tuple[Any, float]:
    """The executor's take of one message, and how long the call that got it took (ms).

    Polled until the message has arrived; the calls that found nothing are not counted.
    """
    deadline = time.monotonic() + _TAKE_TIMEOUT_S
    while True:
        with sub.handle:
            start = time.perf_counter()
            taken = sub.handle.take_message(sub.msg_type, raw)
            took = (time.perf_counter() - start) * 1e3
        if taken is not None:
            return taken[0], took
        if time.monotonic() > deadline:
            raise TargetTimeoutError(f"no frame on {sub.topic_name} within {_TAKE_TIMEOUT_S} s")
        time.sleep(0)


def measure_intake(
    size: Size, iterations: int, domain_id: int | None = None
) -> list[tuple[str, IntakeFigures]]:
    """Both measurements, ``offline`` then ``take`` (on DDS domain ``domain_id``, if given)."""
    return [
        ("offline", measure_offline(size, iterations)),
        ("take", measure_take(size, iterations, domain_id)),
    ]


def _table(results: list[tuple[str, IntakeFigures]]) -> str:
    lines = []
    for kind, result in results:
        size = result.size
        lines.append(
            f"{kind}: {size.width}x{size.height} {_ENCODING}, {result.iterations} iterations (ms)"
        )
        lines.append(f"  {'step':44} {'p50':>7} {'p95':>7} {'mean':>7}")
        for name, s in result.figures.items():
            lines.append(f"  {name:44} {s.p50:7.3f} {s.p95:7.3f} {s.mean:7.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the table (and write JSON with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="python -m aria_perception.bench.intake_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--size", type=parse_size, default=Size(1408, 1408), help="WIDTHxHEIGHT")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--domain-id", type=int, help="DDS domain of the take measurement")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")

    def body() -> int:
        results = measure_intake(args.size, args.iterations, args.domain_id)
        print(_table(results))
        if args.json:
            data = {
                kind: {
                    "size": [r.size.width, r.size.height],
                    "iterations": r.iterations,
                    "figures": {k: s.as_dict() for k, s in r.figures.items()},
                }
                for kind, r in results
            }
            write_json(args.json, data, 2)
        return EXIT_OK

    return run_main(parser.prog, body)


if __name__ == "__main__":
    sys.exit(main())
