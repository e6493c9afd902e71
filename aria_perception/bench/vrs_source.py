"""A Project Aria VRS recording as the importer sees it: camera streams, frames, calibration.

Reading goes through projectaria-tools (imported here, inside the functions, so nothing else in
the package needs it). A camera stream's *name* is its VRS label without the ``camera-`` prefix
(``rgb``, ``slam-left``, ``slam-right``, ``et`` on Aria Gen1; ``et-left``, ``slam-front-left``...
on Gen2), and ``et`` also names every eye-tracking camera of a recording. Its ROS camera is
``camera_`` + the name with ``_`` for ``-`` (``camera_rgb``, ``camera_slam_left``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aria_perception.bench.camera_info import CameraInfoFields, camera_info_fields
from aria_perception.bench.errors import RecordingError, UsageError
from aria_perception.bench.vrs_records import is_vrs, record_spans

DEFAULT_STREAMS = ("rgb", "slam-left", "slam-right")
EYE_TRACKING = "et"
_LABEL_PREFIX = "camera-"


@dataclass(frozen=True)
class CameraStream:
    """One image stream of a recording.

    Attributes:
        stream_id: projectaria-tools' stream id, ``"214-1"``.
        label: The VRS label, ``camera-rgb``.
        count: Image records in the recording.
        calibration: The factory calibration as CameraInfo fields; None when the recording has
            none for this label, or one of a model with no CameraInfo convention.
    """

    stream_id: str
    label: str
    count: int
    calibration: CameraInfoFields | None

    @property
    def name(self) -> str:
        """The name ``--streams`` takes: the label without ``camera-`` (``rgb``)."""
        return self.label.removeprefix(_LABEL_PREFIX)

    @property
    def camera(self) -> str:
        """The ROS camera name and ``frame_id``: ``camera_rgb``."""
        return "camera_" + self.name.replace("-", "_")

    @property
    def eye_tracking(self) -> bool:
        """Whether it is an eye-tracking camera (named by the ``et`` alias)."""
        return self.name == EYE_TRACKING or self.name.startswith(EYE_TRACKING + "-")


@dataclass(frozen=True)
class ImageRecord:
    """One decoded image record.

    Attributes:
        stream: Its stream.
        index: Its index in the stream.
        capture_ns: Device capture time (``capture_timestamp_ns``, the device clock).
        pixels: ``HxWx3`` (RGB) or ``HxW`` (mono) uint8, as recorded.
    """

    stream: CameraStream
    index: int
    capture_ns: int
    pixels: np.ndarray


@contextmanager
def native_log_hidden() -> Iterator[None]:
    """Send what native code writes to stderr (projectaria-tools' log) to a discarded file.

    Python's ``sys.stderr`` keeps writing to the real stderr meanwhile, so progress bars and
    messages still show; only the C++ log lines, which would bury them, go.
    """
    sys.stderr.flush()
    saved_fd = os.dup(2)
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        sys.stderr = open(saved_fd, "w", closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr = python_stderr
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def select_streams(
    streams: Sequence[CameraStream], wanted: Sequence[str] | None
) -> tuple[list[CameraStream], list[str]]:
    """The streams ``--streams`` names, and the default names this recording lacks.

    Args:
        streams: The recording's image streams.
        wanted: Names (``et`` names every eye-tracking camera); None for the defaults, which
            may be absent.

    Returns:
        The selected streams in the recording's order, and the absent default names.

    Raises:
        UsageError: A name given explicitly is not in the recording, or nothing is selected.
    """
    by_name = {s.name: s for s in streams}
    available = ", ".join(s.name for s in streams) + (
        f" ({EYE_TRACKING} names every eye-tracking camera)"
        if any(s.eye_tracking for s in streams)
        else ""
    )
    names = list(DEFAULT_STREAMS if wanted is None else wanted)
    chosen: set[str] = set()
    absent: list[str] = []
    for name in names:
        if name == EYE_TRACKING and name not in by_name:
            matches = [s.name for s in streams if s.eye_tracking]
        else:
            matches = [name] if name in by_name else []
        if not matches:
            if wanted is not None:
                raise UsageError(
                    f"the recording has no camera stream {name!r}; it has: {available}"
                )
            absent.append(name)
        chosen.update(matches)
    selected = [s for s in streams if s.name in chosen]
    if not selected:
        raise UsageError(
            f"none of the default streams {', '.join(DEFAULT_STREAMS)} is in the recording; "
            f"choose with --streams from: {available}"
        )
    return selected, absent


class VrsRecording:
    """An open VRS recording (projectaria-tools' data provider).

    Args:
        path: The ``.vrs`` file.

    Raises:
        RecordingError: The file is missing, not VRS, truncated, or holds no image stream.
    """

    def __init__(self, path: str | Path) -> None:
        from projectaria_tools.core import data_provider

        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"recording {self.path} does not exist or is not a file")
        if not is_vrs(self.path):
            raise RecordingError(f"{self.path} is not a VRS file (no VRS file header)")
        for _ in record_spans(self.path):  # raises on a truncated file
            pass
        try:
            provider = data_provider.create_vrs_data_provider(str(self.path))
        except (RuntimeError, ValueError) as err:
            raise RecordingError(f"cannot read recording {self.path}: {err}") from err
        if provider is None:
            raise RecordingError(f"projectaria-tools cannot open {self.path} as a VRS recording")
        self._provider: Any = provider
        self._stream_ids: dict[str, Any] = {}
        self.streams = self._image_streams()
        if not self.streams:
            raise RecordingError(f"recording {self.path} holds no camera image stream")

    def _image_streams(self) -> list[CameraStream]:
        from projectaria_tools.core.sensor_data import SensorDataType

        provider = self._provider
        try:
            calib = provider.get_device_calibration()
        except RuntimeError:
            calib = None
        labels = set(calib.get_camera_labels()) if calib is not None else set()
        streams = []
        for sid in provider.get_all_streams():
            if provider.get_sensor_data_type(sid) != SensorDataType.IMAGE:
                continue
            count = provider.get_num_data(sid)
            if count == 0:
                continue
            label = provider.get_label_from_stream_id(sid)
            fields = None
            if label in labels:
                cam = calib.get_camera_calib(label)
                width, height = (int(v) for v in cam.get_image_size())
                params = [float(v) for v in cam.get_projection_params()]
                fields = camera_info_fields(str(cam.get_model_name()), params, width, height)
            self._stream_ids[str(sid)] = sid
            streams.append(CameraStream(str(sid), label, count, fields))
        return streams

    def capture_times(self, stream: CameraStream) -> list[int]:
        """Device capture times of the stream's records (ns), in index order."""
        from projectaria_tools.core.sensor_data import TimeDomain

        sid = self._stream_ids[stream.stream_id]
        return [int(t) for t in self._provider.get_timestamps_ns(sid, TimeDomain.DEVICE_TIME)]

    def image(self, stream: CameraStream, index: int) -> ImageRecord:
        """Decode one image record.

        Raises:
            RecordingError: The record cannot be decoded.
        """
        sid = self._stream_ids[stream.stream_id]
        try:
            data, record = self._provider.get_image_data_by_index(sid, index)
        except (RuntimeError, ValueError, IndexError) as err:
            raise RecordingError(
                f"cannot read record {index} of {stream.label} ({stream.stream_id}): {err}"
            ) from err
        # A record whose image fails to decode comes back valid but empty; converting that to
        # an array would crash the process.
        if not data.is_valid() or data.get_width() == 0 or data.get_height() == 0:
            raise RecordingError(
                f"record {index} of {stream.label} ({stream.stream_id}) in {self.path} "
                "cannot be decoded"
            )
        pixels = np.asarray(data.to_numpy_array())
        if pixels.dtype != np.uint8 or not (
            pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
        ):
            raise RecordingError(
                f"{stream.label} ({stream.stream_id}) holds {pixels.shape} {pixels.dtype} "
                "images; the importer takes 8-bit RGB or mono"
            )
        return ImageRecord(stream, index, int(record.capture_timestamp_ns), pixels)
