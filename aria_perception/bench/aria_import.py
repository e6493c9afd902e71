"""``bench import``: a Project Aria VRS recording to a rosbag2 bag that ``bench --bag`` replays.

Every image record of the chosen cameras becomes a ``sensor_msgs/Image`` (rgb8 for the RGB
camera, mono8 for the others) on ``/<camera>/image_raw``, as recorded: no rotation, no
undistortion. With ``--compressed`` the RGB camera's records become ``CompressedImage`` on
``/camera_rgb/image_raw/compressed``: the recorded JPEG bytes where the recording holds JPEG,
else encoded once. Each image is followed by a ``sensor_msgs/CameraInfo`` on
``/<camera>/camera_info`` with the same header and the factory calibration (the convention is in
:mod:`.camera_info`). ``header.stamp`` and the bag's log time are the record's device capture
time (``capture_timestamp_ns``, the glasses' own clock); ``frame_id`` is the camera name.

The bag is written into a temporary folder beside ``--out`` and renamed to ``--out`` when
complete, so an interrupted or failed import leaves no bag that looks whole.
"""

from __future__ import annotations

import argparse
import heapq
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aria_perception.bench.bag import (
    CAMERA_INFO_TYPE,
    STORAGES,
    TYPESTORES,
    bag_writer,
    camera_info_msg,
    header_msg,
    typestore_for,
    write_errors,
)
from aria_perception.bench.console import EXIT_INTERRUPTED, EXIT_OK, run_main
from aria_perception.bench.errors import BagError, RecordingError, UsageError
from aria_perception.bench.frame import COMPRESSED_TYPE, IMAGE_TYPE, JPEG_FORMAT
from aria_perception.bench.vrs_records import jpeg_size

PROG = "bench import"
RGB = "rgb"


@dataclass(frozen=True)
class ImportSpec:
    """What to import and how.

    Attributes:
        recording: The ``.vrs`` file.
        out: The bag directory to create (absent or an empty directory).
        streams: Camera names (``rgb``, ``slam-left``, ``et``...); None: the defaults, those
            the recording has.
        start_s: Start of the window, seconds after the first image record of the chosen
            cameras.
        duration_s: Length of the window in seconds; None: to the end.
        compressed: RGB as CompressedImage JPEG instead of Image rgb8.
        jpeg_quality: Quality of the JPEG encoded where the recording holds none.
        storage: ``mcap`` or ``sqlite3``.
        distro: Typestore of the serialisation.
        progress: Show a progress bar (on a terminal).
    """

    recording: Path
    out: Path
    streams: tuple[str, ...] | None = None
    start_s: float = 0.0
    duration_s: float | None = None
    compressed: bool = False
    jpeg_quality: int = 90
    storage: str = "mcap"
    distro: str = "kilted"
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.start_s >= 0:
            raise UsageError(f"--start must be >= 0 s, got {self.start_s}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise UsageError(f"--duration must be > 0 s, got {self.duration_s}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UsageError(f"--jpeg-quality must be 1..100, got {self.jpeg_quality}")
        if self.storage not in STORAGES:
            raise UsageError(f"--storage must be one of {STORAGES}, got {self.storage!r}")


@dataclass
class ImportResult:
    """What an import wrote.

    Attributes:
        out: The bag directory.
        storage: Its storage plugin.
        counts: Messages per topic, in the order the topics were created.
        first_ns: Capture time of the first image written.
        last_ns: Capture time of the last one.
        absent: Default camera names the recording lacks.
        others: The recording's cameras that were not imported.
        passed_through: Recorded JPEGs written unchanged.
        encoded: Frames encoded to JPEG (the recording held no JPEG for them).
        notes: Other things the user should know (a camera without CameraInfo).
    """

    out: Path
    storage: str
    counts: dict[str, int] = field(default_factory=dict)
    first_ns: int = 0
    last_ns: int = 0
    absent: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    passed_through: int = 0
    encoded: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: where, each topic's count, the recording time covered."""
        topics = ", ".join(f"{t} {n}" for t, n in self.counts.items())
        span = (self.last_ns - self.first_ns) / 1e9
        return f"wrote {self.out} ({self.storage}): {topics}; {span:.3f} s of device time"


def _check_out(out: Path) -> None:
    if out.is_dir():
        if any(out.iterdir()):
            raise UsageError(f"--out {out} exists and is not empty")
    elif out.exists():
        raise UsageError(f"--out {out} exists and is not a directory")


def _plan(recording: Any, streams: list, spec: ImportSpec) -> list[tuple[int, int, int]]:
    """``(capture_ns, stream position, index)`` of the records in the window, in time order."""
    times = [recording.capture_times(s) for s in streams]
    first = min(t[0] for t in times if t)
    lo = first + round(spec.start_s * 1e9)
    hi = None if spec.duration_s is None else lo + round(spec.duration_s * 1e9)
    per_stream = [
        [(t, pos, i) for i, t in enumerate(ts) if t >= lo and (hi is None or t < hi)]
        for pos, ts in enumerate(times)
    ]
    return list(heapq.merge(*per_stream))


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class _Writer:
    """Writes one recording's images and CameraInfos into an open rosbags writer."""

    def __init__(self, writer: Any, spec: ImportSpec, result: ImportResult, jpegs: Any) -> None:
        self.writer = writer
        self.spec = spec
        self.result = result
        self.jpegs = jpegs
        self.typestore = typestore_for(spec.distro)
        self.connections: dict[str, tuple[Any, Any | None]] = {}

    def _connect(self, record: Any) -> tuple[Any, Any | None]:
        stream = record.stream
        if stream.stream_id in self.connections:
            return self.connections[stream.stream_id]
        compressed = self.spec.compressed and stream.name == RGB
        base = f"/{stream.camera}/image_raw"
        image_topic, msgtype = (
            (base + "/compressed", COMPRESSED_TYPE) if compressed else (base, IMAGE_TYPE)
        )
        image = self.writer.add_connection(image_topic, msgtype, typestore=self.typestore)
        self.result.counts[image_topic] = 0
        info = None
        height, width = record.pixels.shape[:2]
        cal = stream.calibration
        if cal is None:
            self.result.notes.append(
                f"{stream.camera}: no CameraInfo (the recording has no calibration of "
                f"{stream.label} in a model with a CameraInfo convention)"
            )
        elif (cal.width, cal.height) != (width, height):
            self.result.notes.append(
                f"{stream.camera}: no CameraInfo (calibrated for {cal.width}x{cal.height}, "
                f"recorded at {width}x{height})"
            )
        else:
            info_topic = f"/{stream.camera}/camera_info"
            info = self.writer.add_connection(
                info_topic, CAMERA_INFO_TYPE, typestore=self.typestore
            )
            self.result.counts[info_topic] = 0
        self.connections[stream.stream_id] = (image, info)
        return image, info

    def _image_msg(self, record: Any, header: Any, compressed: bool) -> Any:
        pixels = record.pixels
        if compressed:
            data = self.jpegs.jpeg(record.stream.stream_id, record.capture_ns)
            height, width = pixels.shape[:2]
            if data is not None and jpeg_size(data) == (width, height):
                self.result.passed_through += 1
            else:
                data = _encode_jpeg(pixels, self.spec.jpeg_quality)
                self.result.encoded += 1
            return self.typestore.types[COMPRESSED_TYPE](
                header=header, format=JPEG_FORMAT, data=np.frombuffer(data, np.uint8)
            )
        height, width = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else 3
        return self.typestore.types[IMAGE_TYPE](
            header=header,
            height=height,
            width=width,
            encoding="mono8" if channels == 1 else "rgb8",
            is_bigendian=0,
            step=width * channels,
            data=np.ascontiguousarray(pixels).reshape(-1),
        )

    def write(self, record: Any) -> None:
        image, info = self._connect(record)
        stamp = record.capture_ns
        header = header_msg(self.typestore, stamp, record.stream.camera)
        msg = self._image_msg(record, header, image.msgtype == COMPRESSED_TYPE)
        self.writer.write(image, stamp, self.typestore.serialize_cdr(msg, image.msgtype))
        self.result.counts[image.topic] += 1
        if info is not None:
            cal = record.stream.calibration
            msg = camera_info_msg(self.typestore, header, cal)
            self.writer.write(info, stamp, self.typestore.serialize_cdr(msg, CAMERA_INFO_TYPE))
            self.result.counts[info.topic] += 1
        if not self.result.first_ns:
            self.result.first_ns = stamp
        self.result.last_ns = stamp


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc="import",
        unit="frame",
        disable=None if enabled else True,
        leave=False,
        file=sys.stderr,
    )


def _records(recording: Any, streams: list, plan: list) -> Iterator[Any]:
    for capture_ns, pos, index in plan:
        record = recording.image(streams[pos], index)
        if record.capture_ns != capture_ns:
            raise RecordingError(
                f"record {index} of {streams[pos].label} has capture time {record.capture_ns} "
                f"ns, its index said {capture_ns} ns"
            )
        yield record


def import_recording(spec: ImportSpec) -> ImportResult:
    """Import a recording into a new bag at ``spec.out`` (see the module's description).

    Returns:
        What was written.

    Raises:
        UsageError: ``--out`` is in use, or a stream named explicitly is not in the recording.
        RecordingError: The recording is missing, not VRS, truncated, has no image stream,
            nothing in the window, or a record that cannot be decoded.
        BagError: The bag cannot be written.
        KeyboardInterrupt: Interrupted; nothing is left at ``spec.out``.
    """
    from aria_perception.bench.vrs_records import JpegRecords
    from aria_perception.bench.vrs_source import VrsRecording, native_log_hidden, select_streams

    out = Path(spec.out)
    _check_out(out)
    result = ImportResult(out=out, storage=spec.storage)
    with native_log_hidden():
        recording = VrsRecording(spec.recording)
        streams, result.absent = select_streams(recording.streams, spec.streams)
        result.others = [s.name for s in recording.streams if s not in streams]
        plan = _plan(recording, streams, spec)
        if not plan:
            end = "the end" if spec.duration_s is None else f"{spec.start_s + spec.duration_s:g} s"
            raise RecordingError(
                f"no image records of {', '.join(s.name for s in streams)} from "
                f"{spec.start_s:g} s to {end} after the first image"
            )
        wanted = {s.stream_id for s in streams if s.name == RGB} if spec.compressed else set()
        jpegs = JpegRecords(recording.path, wanted)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
        except OSError as err:
            raise BagError(f"cannot create a folder beside {out}: {err}") from err
        try:
            writer = bag_writer(temp / out.name, spec.storage)
            bar = _progress(len(plan), spec.progress)
            try:
                with writer:
                    target = _Writer(writer, spec, result, jpegs)
                    for record in _records(recording, streams, plan):
                        target.write(record)
                        bar.update(1)
            except write_errors() as err:
                raise BagError(f"cannot write bag {out}: {err}") from err
            finally:
                bar.close()
            if out.is_dir():
                out.rmdir()
            os.replace(temp / out.name, out)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return result


def build_parser() -> argparse.ArgumentParser:
    """The ``bench import`` argument parser."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Import a Project Aria VRS recording into a rosbag2 bag that "
        "'bench --bag' replays: /<camera>/image_raw and /<camera>/camera_info per camera, "
        "stamped with the device capture time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("recording", type=Path, help="the .vrs file")
    p.add_argument("--out", type=Path, required=True, help="bag directory to create")
    p.add_argument(
        "--streams",
        default=None,
        help="cameras, comma-separated: rgb, slam-left, slam-right, et (every eye-tracking "
        "camera), or any camera's VRS label without 'camera-' (default: rgb,slam-left,"
        "slam-right, those the recording has)",
    )
    p.add_argument("--start", type=float, default=0.0, help="seconds after the first image")
    p.add_argument("--duration", type=float, default=None, help="seconds to import (all)")
    p.add_argument(
        "--compressed",
        action="store_true",
        help="RGB as CompressedImage on /camera_rgb/image_raw/compressed: the recorded JPEG "
        "unchanged, or encoded once where the recording holds none",
    )
    p.add_argument("--jpeg-quality", type=int, default=90, help="for frames encoded here")
    p.add_argument("--storage", choices=STORAGES, default="mcap")
    p.add_argument("--distro", choices=TYPESTORES, default="kilted", help="typestore")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _run(args: argparse.Namespace) -> int:
    streams = None
    if args.streams is not None:
        streams = tuple(s.strip() for s in args.streams.split(",") if s.strip())
        if not streams:
            raise UsageError("--streams names no camera")
    spec = ImportSpec(
        recording=args.recording,
        out=args.out,
        streams=streams,
        start_s=args.start,
        duration_s=args.duration,
        compressed=args.compressed,
        jpeg_quality=args.jpeg_quality,
        storage=args.storage,
        distro=args.distro,
        progress=not args.no_progress,
    )
    # run_main turns Ctrl-C and SIGTERM into this, once: the temporary folder is removed on the
    # way out.
    try:
        result = import_recording(spec)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written to {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(result.summary())
    if result.absent:
        others = ", ".join(result.others) or "none"
        print(
            f"note: the recording has no {', '.join(result.absent)} camera (a default); "
            f"its other cameras: {others} (choose with --streams)"
        )
    if result.passed_through or result.encoded:
        print(
            f"note: {result.passed_through} recorded JPEGs passed through, "
            f"{result.encoded} frames encoded to JPEG"
        )
    for note in result.notes:
        print(f"note: {note}")
    return EXIT_OK


def import_main(argv: list[str]) -> int:
    """Entry point of ``bench import``."""
    args = build_parser().parse_args(argv)
    return run_main(PROG, lambda: _run(args))
