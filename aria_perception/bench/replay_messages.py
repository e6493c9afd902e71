"""The rclpy messages the replayer reads and builds: stamps, images, diagnostics.

The CameraInfo it publishes is :func:`aria_perception.ros.messages.camera_info_msg`, the one
the node builds its output CameraInfo with.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aria_perception.bench.observations import DiagSample


def stamp_ns(header: Any) -> int:
    """A header's stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def received_ns(info: Any) -> int:
    """When the middleware received a message (``MessageInfo``), else the clock now."""
    stamp = info.get("received_timestamp") if isinstance(info, dict) else None
    return int(stamp) if stamp else time.time_ns()


def sent_ns(info: Any) -> int | None:
    """When the publisher sent a message (``MessageInfo``), where the middleware says."""
    stamp = info.get("source_timestamp") if isinstance(info, dict) else None
    return int(stamp) if stamp else None


def image_array(msg: Any, channels: int) -> np.ndarray:
    """A copy of a ``sensor_msgs/Image``'s pixels (``HxW`` for one channel, ``step`` dropped).

    Raises:
        ValueError: The data does not hold ``height`` rows of ``step`` bytes.
    """
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    img = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    return img.copy() if channels > 1 else img[..., 0].copy()


def diag_sample(status: Any, recv_ns: int) -> DiagSample:
    """A ``diagnostic_msgs/DiagnosticStatus`` received at ``recv_ns`` as a :class:`DiagSample`."""
    level = status.level
    return DiagSample(
        t_ns=recv_ns,
        level=int.from_bytes(level, "little") if isinstance(level, bytes) else int(level),
        name=status.name,
        message=status.message,
        hardware_id=status.hardware_id,
        values={kv.key: kv.value for kv in status.values},
    )
