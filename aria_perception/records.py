"""Records shared by the node process and the worker process.

Only numpy and the standard library are imported here: the node side must never import torch.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from aria_perception.errors import ConfigError, FrameError

ROTATIONS = (0, 90, 180, 270)
#: Raw image encodings the pipeline takes, with their channel counts.
RAW_CHANNELS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}
#: Compressed formats the worker decodes.
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")
PRECISIONS = ("auto", "fp16", "fp32")
#: The most pixels any frame may have (the upper bound of ``input.max_pixels``).
MAX_FRAME_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class EngineConfig:
    """Everything the inference engine needs to build itself.

    The defaults here are the package's defaults: the node's parameters, the worker and the
    benchmarks read them from this class instead of re-typing them.
    """

    device: str = "auto"
    precision: str = "auto"
    depth_enabled: bool = True
    depth_weights: str = ""
    depth_input_size: int = 256
    depth_frame_skip: int = 1
    detector_enabled: bool = True
    detector_weights: str = "yolov8n.pt"
    detector_trust_pickle: bool = False
    detector_image_size: int = 640
    confidence: float = 0.25
    iou: float = 0.45
    max_detections: int = 100
    classes: tuple[str, ...] = ()
    allow_random_weights: bool = False
    rotation: int = 0
    parallel_streams: bool = True
    cuda_graphs: bool = True

    def replace(self, **changes: object) -> EngineConfig:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Thresholds:
    """The detector settings that may change at run time.

    Raises:
        ConfigError: ``confidence`` or ``iou`` is not a number within [0, 1], or ``classes`` is
            not a sequence of names (checked on construction: a ``Thresholds`` is always valid).
    """

    confidence: float
    iou: float
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value in (("detector.confidence", self.confidence), ("detector.iou", self.iou)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number within [0, 1], got {value!r}")
            if not 0.0 <= float(value) <= 1.0:  # also refuses NaN
                raise ConfigError(f"{name} must be within [0, 1], got {value!r}")
        if isinstance(self.classes, str) or not all(isinstance(c, str) for c in self.classes):
            raise ConfigError(f"detector.classes must be a list of names, got {self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes))

    def check_classes(self, class_names: Sequence[str]) -> None:
        """Raise ConfigError for a name in ``classes`` that is not one of ``class_names``."""
        check_class_names(self.classes, class_names)


def check_class_names(classes: Sequence[str], class_names: Sequence[str]) -> None:
    """The rule of ``detector.classes``: every name is a class of the loaded detector.

    Raises:
        ConfigError: naming the unknown classes and a few of the model's.
    """
    known = set(class_names)
    unknown = [c for c in classes if c not in known]
    if unknown:
        sample = ", ".join(class_names[:8]) + (", ..." if len(class_names) > 8 else "")
        raise ConfigError(
            f"detector.classes: unknown class name(s) {unknown}; this model has "
            f"{len(class_names)} classes ({sample})"
        )


def check_integer(
    name: str, value: object, *, minimum: int = 1, multiple: int = 1, why: str = ""
) -> None:
    """The rule of an integer setting: an int (not a bool), at least ``minimum``.

    With ``multiple`` above 1 the rule is "a positive multiple of ``multiple``" instead.

    Args:
        name: the parameter, named in the message.
        value: the value to check.
        minimum: the smallest value allowed.
        multiple: the value must be a multiple of this (1: any integer).
        why: said after the multiple, e.g. " (the model stride)".

    Raises:
        ConfigError: naming the parameter, the rule and the value.
    """
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if multiple > 1:
        if not (is_int and value >= max(minimum, multiple) and value % multiple == 0):
            raise ConfigError(
                f"{name} must be a positive multiple of {multiple}{why}, got {value!r}"
            )
    elif not (is_int and value >= minimum):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def validate_engine_config(config: EngineConfig) -> None:
    """The checks of an :class:`EngineConfig` that need no model; ConfigError names the parameter.

    Confidence, IoU and class names follow the rules of :class:`Thresholds` (the same rules as a
    run-time change); what needs the model (class names known, image size a multiple of the
    model stride) is checked when the model is built.

    Raises:
        ConfigError: the first value out of range.
    """
    if not (config.depth_enabled or config.detector_enabled):
        raise ConfigError("depth.enabled and detector.enabled are both false: nothing to compute")
    check_integer("depth.input_size", config.depth_input_size, multiple=32)
    check_integer("depth.frame_skip", config.depth_frame_skip, minimum=1)
    check_integer("detector.image_size", config.detector_image_size, multiple=32)
    check_integer("detector.max_detections", config.max_detections, minimum=1)
    if config.rotation not in ROTATIONS:
        raise ConfigError(f"input.rotation must be one of {ROTATIONS}, got {config.rotation!r}")
    Thresholds(config.confidence, config.iou, config.classes)


@dataclass
class Detections:
    """Detections of one frame; boxes are xyxy pixels of the image as received."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int32
    depth: np.ndarray  # (N,) float32 median relative inverse depth in the box, NaN if none

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int32),
            depth=np.zeros((0,), np.float32),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class StageTimes:
    """Per-stage times of one frame in milliseconds (GPU event time on CUDA)."""

    preprocess_ms: float = 0.0
    depth_ms: float = 0.0
    detect_ms: float = 0.0
    transfer_ms: float = 0.0
    total_ms: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """The times as a plain dict."""
        return dataclasses.asdict(self)


@dataclass
class EngineResult:
    """What the engine returns for one frame."""

    detections: Detections
    depth: np.ndarray | None  # (H, W) float32 at the received resolution, or None
    times: StageTimes = field(default_factory=StageTimes)
    depth_fresh: bool = True  # False when depth.frame_skip reused an earlier map


@dataclass(frozen=True)
class EngineInfo:
    """What the engine tells its owner once it is built."""

    device: str  # e.g. "cuda:0" or "cpu"
    device_name: str  # GPU name or "cpu"
    precision: str  # "fp16" or "fp32"
    class_names: tuple[str, ...]
    weights: str  # "official" or "random" (random if either network is random)


class WorkerState(IntEnum):
    """Life of the inference worker as the supervisor sees it."""

    STOPPED = 0
    STARTING = 1
    READY = 2
    RESTARTING = 3
    FAILED = 4


def check_frame_size(width: int, height: int, max_pixels: int | None, what: str = "image") -> None:
    """The size rule of every frame: not empty, at most ``max_pixels`` pixels.

    Messages print sizes as width x height, like every other size in this package.

    Raises:
        FrameError: zero size, or more pixels than ``max_pixels`` (``input.max_pixels``).
    """
    if height <= 0 or width <= 0:
        raise FrameError(f"zero-size {what} ({width}x{height})")
    if max_pixels is not None and height * width > max_pixels:
        raise FrameError(
            f"{what} {width}x{height} has {height * width} pixels, more than "
            f"input.max_pixels={max_pixels}"
        )


def raw_channels(encoding: str) -> int:
    """Channel count of a raw encoding.

    Raises:
        FrameError: the encoding is not one of :data:`RAW_CHANNELS`.
    """
    channels = RAW_CHANNELS.get(encoding)
    if channels is None:
        raise FrameError(
            f"unsupported encoding {encoding!r} "
            f"(supported: {', '.join([*RAW_CHANNELS, *COMPRESSED_FORMATS])})"
        )
    return channels


def check_raw_frame(
    frame: object, encoding: str, max_pixels: int | None = None
) -> tuple[int, int, int]:
    """The one check of a decoded frame handed across a layer: pixels that fit the encoding.

    Args:
        frame: the pixels, (H, W, C) or, for one channel, (H, W) uint8 (any strides).
        encoding: one of :data:`RAW_CHANNELS`.
        max_pixels: refuse frames with more pixels; None for no limit.

    Returns:
        (height, width, channels).

    Raises:
        FrameError: unknown encoding, not a uint8 array, a shape that does not fit the
            encoding, zero size or too many pixels.
    """
    channels = raw_channels(encoding)
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        got = f"{frame.dtype} array" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise FrameError(f"{encoding} frame must be a uint8 numpy array, got {got}")
    shape = frame.shape
    ok = (frame.ndim == 3 and shape[2] == channels) or (frame.ndim == 2 and channels == 1)
    if not ok:
        raise FrameError(f"{encoding} frame must be (H, W, {channels}) uint8, got shape {shape}")
    height, width = int(shape[0]), int(shape[1])
    check_frame_size(width, height, max_pixels, f"{encoding} frame")
    return height, width, channels


def check_encoded_frame(data: np.ndarray, fmt: str, max_bytes: int | None = None) -> None:
    """The one check of compressed bytes handed across a layer.

    Raises:
        FrameError: unknown format, not 1-D uint8, empty, or more than ``max_bytes`` bytes.
    """
    if fmt not in COMPRESSED_FORMATS:
        raise FrameError(
            f"unsupported compressed format {fmt!r} (supported: {', '.join(COMPRESSED_FORMATS)})"
        )
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise FrameError(f"{fmt} frame must be 1-D uint8 bytes, got {got}")
    if data.size == 0:
        raise FrameError(f"{fmt} frame is empty")
    if max_bytes is not None and data.size > max_bytes:
        raise FrameError(
            f"{fmt} frame of {data.size} bytes is over the {max_bytes} bytes the worker slots hold"
        )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colour type -> (the bit depths the PNG specification allows with it, samples per pixel).
_PNG_COLOUR_TYPES = {0: ((1, 2, 4, 8, 16), 1), 2: ((8, 16), 3), 3: ((1, 2, 4, 8), 1),
                     4: ((8, 16), 2), 6: ((8, 16), 4)}  # fmt: skip
# The seven Adam7 passes: first column, first row, column step, row step.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip
_PNG_MAX_CHUNK = 2**31 - 1
_PNG_MAX_CHUNKS = 10_000  # decoders spend time on each: a flood of them stalls them
_PNG_FILTERS = 5  # a row's first byte: none, sub, up, average, paeth
_INFLATE_PIECE = 1 << 22  # inflated data is checked in pieces of this many bytes, never kept


def check_png(
    data: bytes | np.ndarray,
    max_pixels: int | None = MAX_FRAME_PIXELS,
    keep: list[bytes] | None = None,
) -> tuple[int, int]:
    """Check PNG bytes so that a decoder meets no error while it reads the rows; (height, width).

    A decoder failing halfway through an image can take the process down (torchvision's
    ``decode_png`` does), so all it could fail on is checked: the signature; each chunk's
    length, type and CRC; IHDR first, its size within ``max_pixels`` (before inflating
    anything), a bit depth / colour type pair of the PNG specification; PLTE before the data of
    a palette image; no unknown critical chunk; consecutive IDATs; IEND. The data must inflate
    without a zlib error to exactly the IHDR's size (rows of 1 + row bytes, per Adam7 pass when
    interlaced), each row starting with one of the five filter types. It is inflated in pieces,
    appended to ``keep`` when given (for a decoder not to inflate it again), else dropped.

    Raises:
        FrameError: naming what is wrong.
    """
    view = memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data)
    view = view.cast("B")
    if bytes(view[:8]) != PNG_SIGNATURE:
        raise FrameError(f"not PNG data: the signature is {bytes(view[:8]).hex(' ')}")
    pos, header, palette, idat, idat_ended = 8, None, False, [], False
    for _ in range(_PNG_MAX_CHUNKS):
        if pos + 12 > len(view):
            if header is None:
                raise FrameError("PNG data without an IHDR header (truncated or corrupt)")
            raise FrameError(f"truncated PNG: it ends at byte {len(view)} without an IEND chunk")
        length, kind = struct.unpack_from(">I4s", view, pos)
        end, name = pos + 8 + length, kind.decode("latin-1")
        if not kind.isalpha():
            raise FrameError(f"corrupt PNG: chunk type {kind!r} at byte {pos} is not 4 letters")
        if length > _PNG_MAX_CHUNK or end + 4 > len(view):
            raise FrameError(f"truncated PNG: the {name} chunk at byte {pos} runs past the end")
        if zlib.crc32(view[pos + 4 : end]) != struct.unpack_from(">I", view, end)[0]:
            raise FrameError(f"corrupt PNG: CRC error in the {name} chunk at byte {pos}")
        if (header is None) != (kind == b"IHDR"):
            raise FrameError(f"corrupt PNG: {name} chunk at byte {pos}; IHDR comes first, once")
        if kind == b"IHDR":
            header = _png_header(view[pos + 8 : end], max_pixels)
        elif kind == b"IDAT":
            if idat_ended:
                raise FrameError(f"corrupt PNG: the IDAT chunks are not consecutive (byte {pos})")
            idat.append(view[pos + 8 : end])
        elif kind == b"IEND":
            break
        else:
            idat_ended = bool(idat)
            if kind == b"PLTE" and (idat or length % 3 or not 0 < length <= 3 * 256):
                raise FrameError(
                    f"corrupt PNG: a PLTE chunk of {length} bytes at byte {pos} "
                    "(it holds 1 to 256 colours and comes before IDAT)"
                )
            palette = palette or kind == b"PLTE"
            if name[0].isupper() and kind != b"PLTE":  # critical: a decoder must understand it
                raise FrameError(f"unsupported PNG: unknown critical chunk {name} at byte {pos}")
        pos = end + 4
    else:
        raise FrameError(f"unsupported PNG: more than {_PNG_MAX_CHUNKS} chunks")
    if not idat or (header[3] == 3 and not palette):
        raise FrameError("corrupt PNG: no image data (IDAT) or a palette image without PLTE")
    _check_png_data(idat, *header, keep)
    return header[1], header[0]


def _png_header(body: memoryview, max_pixels: int | None) -> tuple[int, int, int, int, bool]:
    """The IHDR chunk's width, height, bit depth, colour type and interlacing, checked."""
    if len(body) != 13:
        raise FrameError(f"corrupt PNG: the IHDR chunk holds {len(body)} bytes, not 13")
    width, height, depth, colour, compress, filtering, interlace = struct.unpack(">IIBBBBB", body)
    check_frame_size(width, height, max_pixels, "png image")
    if depth not in _PNG_COLOUR_TYPES.get(colour, ((),))[0]:
        raise FrameError(f"unsupported PNG: bit depth {depth} with colour type {colour}")
    methods = f"{compress}/{filtering}/{interlace}"
    if compress or filtering or interlace > 1:  # the specification defines 0, 0 and 0 or 1
        raise FrameError(f"unsupported PNG: compression/filter/interlace methods {methods}")
    return width, height, depth, colour, bool(interlace)


def _check_png_data(
    idat: list[memoryview], width: int, height: int, depth: int, colour: int, interlaced: bool,
    keep: list[bytes] | None,
) -> None:  # fmt: skip
    """Inflate the image data in pieces: the exact size, filter bytes, a whole stream."""
    bits, runs, expected = depth * _PNG_COLOUR_TYPES[colour][1], [], 0
    for x0, y0, dx, dy in _ADAM7 if interlaced else ((0, 0, 1, 1),):
        columns, rows = max(0, -(-(width - x0) // dx)), max(0, -(-(height - y0) // dy))
        if columns and rows:  # an empty Adam7 pass has no rows at all
            stride = 1 + (columns * bits + 7) // 8
            runs.append((expected, stride, expected + stride * rows))
            expected += stride * rows
    inflater, done, extra, filters_ok = zlib.decompressobj(), 0, 0, True
    try:
        for body in idat:
            if inflater.eof or done > expected:
                extra += len(body)
                continue
            pending: bytes | memoryview = body
            while True:
                piece = inflater.decompress(pending, _INFLATE_PIECE)
                pending = inflater.unconsumed_tail
                if filters_ok and done + len(piece) <= expected:
                    filters_ok = _filter_bytes_ok(np.frombuffer(piece, np.uint8), done, runs)
                    if keep is not None:
                        keep.append(piece)
                done += len(piece)
                if inflater.eof or done > expected or not pending and len(piece) < _INFLATE_PIECE:
                    break
    except zlib.error as err:
        raise FrameError(f"corrupt PNG image data: {err}") from err
    if done != expected or not inflater.eof:
        holds = f"more than {expected}" if done > expected else f"{done}"
        raise FrameError(
            f"corrupt PNG: the IHDR size {width}x{height} needs {expected} bytes of image data, "
            f"it holds {holds}{'' if inflater.eof else ' (truncated)'}"
        )
    if not filters_ok:  # after the size check: rows of a wrong size have wrong filter bytes
        raise FrameError("corrupt PNG: a row of the image data has an unknown filter type")
    extra += len(inflater.unused_data)
    if extra:  # no encoder writes any; decoders differ on it (libpng warns)
        raise FrameError(f"corrupt PNG: {extra} bytes after the end of the compressed image data")


def _filter_bytes_ok(piece: np.ndarray, start: int, runs: list[tuple[int, int, int]]) -> bool:
    """Whether every row start in ``piece`` (inflated bytes from ``start`` on) is a filter type."""
    for first, stride, end in runs:
        low, high = max(first, start), min(end, start + piece.shape[0])
        row = first + -(-(low - first) // stride) * stride  # the first row start at or after low
        if row < high and int(piece[row - start : high - start : stride].max()) >= _PNG_FILTERS:
            return False
    return True
