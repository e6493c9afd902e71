"""Read and write rosbag2 bags of camera frames with rosbags (no ROS installation needed).

Both storage plugins rosbags knows are supported: ``sqlite3`` (the Humble default) and ``mcap``
(the default since Iron). Messages are (de)serialised with a rosbags typestore; Image and
CompressedImage have the same definition in every ROS 2 distribution.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aria_perception.bench.camera_info import CameraInfoFields
from aria_perception.bench.errors import BagError, FrameDataError, TopicError
from aria_perception.bench.frame import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    Frame,
    FrameSet,
    as_byte_array,
    pixels,
)
from aria_perception.bench.topics import camera_info_topic

if TYPE_CHECKING:
    from rosbags.rosbag2 import Reader, Writer

STORAGES = ("sqlite3", "mcap")
TYPESTORES = ("humble", "jazzy", "kilted")
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
#: The topic replayed from a bag of several image topics when none is chosen: Aria's RGB camera.
PREFERRED_IMAGE_TOPICS = ("/camera_rgb/image_raw", "/camera_rgb/image_raw/compressed")


def typestore_for(distro: str = "kilted") -> Any:
    """The rosbags typestore of a ROS 2 distribution (``humble``, ``jazzy``, ``kilted``)."""
    from rosbags.typesys import Stores, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    return get_typestore(stores.get(distro, Stores.ROS2_KILTED))


def header_msg(typestore: Any, stamp_ns: int, frame_id: str) -> Any:
    """A rosbags ``std_msgs/Header`` of ``typestore`` stamped ``stamp_ns``."""
    time_t = typestore.types["builtin_interfaces/msg/Time"]
    header_t = typestore.types["std_msgs/msg/Header"]
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return header_t(stamp=time_t(sec=sec, nanosec=nanosec), frame_id=frame_id)


def camera_info_msg(typestore: Any, header: Any, fields: CameraInfoFields) -> Any:
    """A rosbags ``sensor_msgs/CameraInfo`` of ``typestore`` with these calibration fields."""
    roi = typestore.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return typestore.types[CAMERA_INFO_TYPE](
        header=header,
        height=fields.height,
        width=fields.width,
        distortion_model=fields.distortion_model,
        d=np.array(fields.d, np.float64),
        k=np.array(fields.k, np.float64),
        r=np.array(fields.r, np.float64),
        p=np.array(fields.p, np.float64),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def camera_info_fields_of(msg: Any) -> CameraInfoFields:
    """The calibration fields of a deserialised CameraInfo (rosbags or rclpy message)."""
    return CameraInfoFields(
        width=int(msg.width),
        height=int(msg.height),
        distortion_model=str(msg.distortion_model),
        d=tuple(float(v) for v in msg.d),
        k=tuple(float(v) for v in msg.k),
        r=tuple(float(v) for v in msg.r),
        p=tuple(float(v) for v in msg.p),
    )


def write_bag(
    path: str | Path,
    frames: Iterable[Frame],
    *,
    topic: str | None = None,
    storage: str = "sqlite3",
    distro: str = "kilted",
) -> int:
    """Write frames to a new rosbag2 bag.

    Args:
        path: Bag directory to create (must not exist).
        frames: Frames, all raw or all compressed; each is logged at its header stamp.
        topic: Topic name; default ``/camera/image_raw`` (``.../compressed`` for JPEG frames).
        storage: ``sqlite3`` or ``mcap``.
        distro: Typestore used for serialisation and the recorded message definitions.

    Returns:
        Number of frames written.

    Raises:
        BagError: Bad arguments, an existing path, or mixed raw/compressed frames.
    """
    path = Path(path)
    writer = bag_writer(path, storage)
    try:
        return _write(writer, frames, topic, typestore_for(distro))
    except write_errors() as err:
        raise BagError(f"cannot write bag {path}: {err}") from err


def bag_writer(path: str | Path, storage: str) -> Writer:
    """A rosbags writer (not yet opened) of a new bag.

    Raises:
        BagError: An unknown storage, or ``path`` exists.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} exists; rosbag2 writes a new directory")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    return Writer(path, version=9, storage_plugin=plugin)


def write_errors() -> tuple[type[BaseException], ...]:
    """What writing a bag with rosbags raises (its types, imported on first use)."""
    from rosbags.rosbag2 import WriterError
    from rosbags.serde import SerdeError

    return (WriterError, SerdeError, OSError)


def _write(writer: Writer, frames: Iterable[Frame], topic: str | None, typestore: Any) -> int:
    count = 0
    with writer:
        connection = None
        compressed = None
        for frame in frames:
            if compressed is None:
                compressed = frame.compressed
                if topic is None:
                    topic = DEFAULT_IMAGE_TOPIC + ("/compressed" if compressed else "")
                connection = writer.add_connection(topic, frame.msgtype, typestore=typestore)
            elif frame.compressed != compressed:
                raise BagError("cannot mix raw and compressed frames on one topic")
            writer.write(connection, frame.stamp_ns, _serialized(typestore, frame))
            count += 1
    return count


def _serialized(typestore: Any, frame: Frame) -> bytes:
    """A frame as the CDR bytes of its Image or CompressedImage message."""
    data = np.frombuffer(frame.data, np.uint8)
    header = header_msg(typestore, frame.stamp_ns, frame.frame_id)
    if frame.compressed:
        msg = typestore.types[COMPRESSED_TYPE](header=header, format=frame.encoding, data=data)
    else:
        msg = typestore.types[IMAGE_TYPE](
            header=header,
            height=frame.height,
            width=frame.width,
            encoding=frame.encoding,
            is_bigendian=0,
            step=frame.step,
            data=data,
        )
    return typestore.serialize_cdr(msg, frame.msgtype)


def write_topics(
    path: str | Path,
    topics: Mapping[str, Sequence[Frame]],
    *,
    storage: str = "sqlite3",
    distro: str = "kilted",
) -> int:
    """Write several image topics into one new bag, every message logged at its stamp.

    Returns:
        Number of messages written.

    Raises:
        BagError: Bad arguments, an existing path, or a topic mixing raw and compressed frames.
    """
    path = Path(path)
    writer = bag_writer(path, storage)
    typestore = typestore_for(distro)
    for topic, frames in topics.items():
        if len({f.compressed for f in frames}) > 1:
            raise BagError(f"cannot mix raw and compressed frames on one topic ({topic})")
    events = sorted(
        ((f.stamp_ns, n, i) for n, frames in enumerate(topics.values()) for i, f in
         enumerate(frames))
    )  # fmt: skip
    try:
        with writer:
            connections = [
                writer.add_connection(topic, frames[0].msgtype, typestore=typestore)
                for topic, frames in topics.items()
            ]
            lists = list(topics.values())
            for stamp, n, i in events:
                writer.write(connections[n], stamp, _serialized(typestore, lists[n][i]))
    except write_errors() as err:
        raise BagError(f"cannot write bag {path}: {err}") from err
    return len(events)


def image_topics(path: str | Path) -> dict[str, str]:
    """Topics of Image or CompressedImage messages in a bag, ``{topic: msgtype}``."""
    with _reading(path) as reader:
        return {
            c.topic: c.msgtype
            for c in reader.connections
            if c.msgtype in (IMAGE_TYPE, COMPRESSED_TYPE)
        }


@contextmanager
def _reading(path: str | Path) -> Iterator[Reader]:
    """Open a bag for reading, turning rosbags' errors into :class:`BagError`."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # rosbags raises several types for unreadable bags
        raise BagError(f"cannot open bag {path}: {err}") from err
    try:
        yield reader
    finally:
        reader.close()


def _choose_topic(images: dict[str, str], topic: str | None, path: str | Path) -> str:
    """The image topic to read: the one asked for, the bag's only one, or Aria's RGB camera."""
    if topic is None:
        preferred = [t for t in PREFERRED_IMAGE_TOPICS if t in images]
        if len(images) > 1 and preferred:
            return preferred[0]
        if len(images) != 1:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(images.items())) or "none"
            raise TopicError(
                f"bag {path} has {len(images)} image topics ({listing}); choose one with --topic"
                if images
                else f"bag {path} has no sensor_msgs Image or CompressedImage topic"
            )
        return next(iter(images))
    if topic not in images:
        others = ", ".join(sorted(images)) or "none"
        raise TopicError(f"bag {path} has no image topic {topic!r} (image topics: {others})")
    return topic


def _frame(msg: Any, compressed: bool) -> Frame:
    """A frame from a deserialised Image or CompressedImage (size 0 for compressed ones)."""
    stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    if compressed:
        return Frame(
            stamp_ns=stamp_ns,
            frame_id=msg.header.frame_id,
            width=0,
            height=0,
            encoding=msg.format,
            step=0,
            data=as_byte_array(msg.data),
            compressed=True,
        )
    return Frame(
        stamp_ns=stamp_ns,
        frame_id=msg.header.frame_id,
        width=msg.width,
        height=msg.height,
        encoding=msg.encoding,
        step=msg.step,
        data=as_byte_array(msg.data),
    )


def read_bag(
    path: str | Path, topic: str | None = None, limit: int | None = None, distro: str = "kilted"
) -> FrameSet:
    """Load camera frames from a rosbag2 bag (sqlite3 or mcap, detected by rosbags).

    Args:
        path: Bag directory (or a single ``.mcap``/``.db3`` file rosbags accepts).
        topic: Image or CompressedImage topic; may be omitted when the bag has only one.
        limit: Load at most this many frames (a long bag of raw Aria frames is many GB).
        distro: Typestore for deserialisation.

    Returns:
        The frames in log order. Compressed frames get their size by decoding the first one.

    Raises:
        TopicError: No image topic, an ambiguous or unknown topic, or an empty topic.
        BagError: The bag cannot be opened or its messages cannot be read.
    """
    from rosbags.rosbag2 import ReaderError
    from rosbags.serde import SerdeError

    typestore = typestore_for(distro)
    with _reading(path) as reader:
        images = {
            c.topic: c.msgtype
            for c in reader.connections
            if c.msgtype in (IMAGE_TYPE, COMPRESSED_TYPE)
        }
        topic = _choose_topic(images, topic, path)
        msgtype = images[topic]
        connections = [c for c in reader.connections if c.topic == topic]
        total = sum(c.msgcount for c in connections)
        frames: list[Frame] = []
        size: tuple[int, int] | None = None
        try:
            for connection, _, raw in reader.messages(connections=connections):
                if limit is not None and len(frames) >= limit:
                    break
                msg = typestore.deserialize_cdr(raw, connection.msgtype)
                frame = _frame(msg, msgtype == COMPRESSED_TYPE)
                if frame.compressed:
                    if size is None:
                        height, width = pixels(frame).shape[:2]
                        size = (width, height)
                    frame = dataclasses.replace(frame, width=size[0], height=size[1])
                frames.append(frame)
        except FrameDataError as err:
            raise BagError(f"bag {path}, topic {topic}: {err}") from err
        except (ReaderError, SerdeError, OSError, ValueError, KeyError, struct.error) as err:
            raise BagError(f"cannot read topic {topic} of bag {path}: {err}") from err
        info_topic = camera_info_topic(topic)
        infos = _camera_infos(reader, typestore, info_topic, {f.stamp_ns for f in frames}, path)
    if not frames:
        raise TopicError(f"topic {topic} in bag {path} holds no messages")
    return FrameSet(
        frames=frames,
        source=str(path),
        topic=topic,
        msgtype=msgtype,
        frames_available=total,
        camera_infos=tuple(infos.get(f.stamp_ns) for f in frames) if infos else (),
        camera_info_topic=info_topic if infos else "",
    )


def _camera_infos(
    reader: Reader, typestore: Any, topic: str, stamps: set[int], path: str | Path
) -> dict[int, CameraInfoFields]:
    """The bag's CameraInfo messages on ``topic`` stamped like one of the frames, by stamp."""
    from rosbags.rosbag2 import ReaderError
    from rosbags.serde import SerdeError

    connections = [
        c for c in reader.connections if c.topic == topic and c.msgtype == CAMERA_INFO_TYPE
    ]
    if not connections:
        return {}
    infos: dict[int, CameraInfoFields] = {}
    try:
        for connection, _, raw in reader.messages(connections=connections):
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if stamp in stamps:
                infos[stamp] = camera_info_fields_of(msg)
    except (ReaderError, SerdeError, OSError, ValueError, KeyError, struct.error) as err:
        raise BagError(f"cannot read topic {topic} of bag {path}: {err}") from err
    return infos
