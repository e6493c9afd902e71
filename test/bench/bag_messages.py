"""Read every message of a bag with rosbags directly (independent of the bench's reader)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bag_messages(path: Path) -> dict[str, list[Any]]:
    """``{topic: [deserialised message, ...]}`` in log order (log time checked = stamp)."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    out: dict[str, list[Any]] = {}
    with Reader(path) as reader:
        for connection, log_ns, raw in reader.messages():
            msg = ts.deserialize_cdr(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            assert log_ns == stamp, (connection.topic, log_ns, stamp)
            out.setdefault(connection.topic, []).append(msg)
    return out


def msgtypes(path: Path) -> dict[str, str]:
    """``{topic: msgtype}`` of a bag."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
