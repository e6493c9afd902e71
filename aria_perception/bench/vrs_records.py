"""The record layout of a VRS file, read with the standard library: where each record lies.

projectaria-tools decodes images but does not hand out the bytes a record holds. To pass an
Aria camera's JPEG through unchanged, and to tell a truncated file from a short one, this module
walks the file's records itself. A VRS file starts with a file header (magic ``VisionRe``,
the record header size, the offset of the first user record); every record starts with a
32-byte header: its size (header included), the previous record's size, the recordable type id,
the format version, the timestamp (seconds, a double), the instance id, the record type
(3 = data), the compression (0 = none) and the uncompressed size. An image data record holds a
DataLayout (the frame's metadata) followed by the image; a JPEG image is the record's tail.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aria_perception.bench.errors import RecordingError

MAGIC = b"VisionRe"
_FILE_HEADER = struct.Struct("<8sQIIqqq")
_RECORD_HEADER = struct.Struct("<IIiIdHBBI")
DATA_RECORD = 3
NO_COMPRESSION = 0
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"


@dataclass(frozen=True)
class RecordSpan:
    """Where one record lies in the file.

    Attributes:
        stream: ``"<type id>-<instance id>"``, as projectaria-tools' ``StreamId`` prints it.
        record_type: 3 for data records.
        timestamp_s: The record's timestamp (seconds; Aria's device capture time).
        compression: 0 when the payload is stored as it is.
        offset: File offset of the payload (after the record header).
        size: Payload bytes.
    """

    stream: str
    record_type: int
    timestamp_s: float
    compression: int
    offset: int
    size: int


def is_vrs(path: str | Path) -> bool:
    """Whether the file starts with VRS's magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def record_spans(path: str | Path) -> Iterator[RecordSpan]:
    """Every user record of a VRS file, in file order.

    Raises:
        RecordingError: The file is not VRS, or a record reaches past its end (truncated).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            yield from _walk(f, path, os.fstat(f.fileno()).st_size)
    except OSError as err:
        raise RecordingError(f"cannot read {path}: {err.strerror or err}") from err


def _walk(f: BinaryIO, path: Path, end: int) -> Iterator[RecordSpan]:
    """The records of an open file of ``end`` bytes, reading headers only (files are GBs)."""
    head = f.read(_FILE_HEADER.size)
    if len(head) < _FILE_HEADER.size or not head.startswith(MAGIC):
        raise RecordingError(f"{path} is not a VRS file (no VRS file header)")
    _, _, _, header_size, _, _, first = _FILE_HEADER.unpack(head)
    if header_size != _RECORD_HEADER.size or not 0 < first <= end:
        raise RecordingError(f"{path} has a VRS file header this importer cannot read")
    offset = first
    while offset < end:
        f.seek(offset)
        raw = f.read(_RECORD_HEADER.size)
        if len(raw) < _RECORD_HEADER.size:
            raise RecordingError(
                f"{path} is truncated: {len(raw)} bytes of a record header at byte {offset}, "
                "the end of the file"
            )
        size, _, type_id, _, stamp, instance, rtype, compression, _ = _RECORD_HEADER.unpack(raw)
        if size < _RECORD_HEADER.size:
            raise RecordingError(f"{path} is corrupt: a record of {size} bytes at byte {offset}")
        if offset + size > end:
            raise RecordingError(
                f"{path} is truncated: the record of stream {type_id}-{instance} at byte "
                f"{offset} needs {size} bytes, the file ends after {end - offset}"
            )
        yield RecordSpan(
            f"{type_id}-{instance}",
            rtype,
            stamp,
            compression,
            offset + _RECORD_HEADER.size,
            size - _RECORD_HEADER.size,
        )
        offset += size


def _jpeg_start(payload: bytes) -> int | None:
    """Offset of the JPEG that ends ``payload``: an SOI whose marker segments chain up to SOS.

    A DataLayout value could hold the SOI's bytes by chance; its segments would not chain.
    """
    start = payload.find(JPEG_SOI)
    while start >= 0:
        pos = start + 2
        while pos + 4 <= len(payload) and payload[pos] == 0xFF:
            marker = payload[pos + 1]
            if marker == 0xDA:  # start of scan: the header chained correctly
                return start
            pos += 2 + int.from_bytes(payload[pos + 2 : pos + 4], "big")
        start = payload.find(JPEG_SOI, start + 1)
    return None


def jpeg_size(jpeg: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's frame header, or None when it has none."""
    pos = 2
    while pos + 9 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker = jpeg[pos + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            height, width = struct.unpack_from(">HH", jpeg, pos + 5)
            return width, height
        if marker == 0xDA:
            return None
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    return None


class JpegRecords:
    """The JPEG bytes of a recording's image records, looked up by stream and capture time.

    Args:
        path: The VRS file (already known to be readable and complete).
        streams: Streams to index, ``"214-1"`` style.
    """

    def __init__(self, path: str | Path, streams: set[str]) -> None:
        self._path = Path(path)
        self._spans: dict[str, list[RecordSpan]] = {s: [] for s in streams}
        for span in record_spans(path):
            if span.record_type == DATA_RECORD and span.stream in self._spans:
                self._spans[span.stream].append(span)

    def jpeg(self, stream: str, capture_ns: int) -> bytes | None:
        """The JPEG of the stream's data record captured at ``capture_ns``, or None.

        None when no record has that timestamp (to the microsecond: the header's double holds
        the device time in seconds), when it is compressed, or when it does not end in a JPEG.
        """
        spans = [
            s
            for s in self._spans.get(stream, ())
            if abs(round(s.timestamp_s * 1e9) - capture_ns) < 1000
        ]
        if len(spans) != 1 or spans[0].compression != NO_COMPRESSION:
            return None
        span = spans[0]
        with open(self._path, "rb") as f:
            f.seek(span.offset)
            payload = f.read(span.size)
        start = _jpeg_start(payload)
        if start is None or not payload.endswith(JPEG_EOI):
            return None
        return payload[start:]
