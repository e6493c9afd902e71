"""Checks of the frames handed across a layer: encodings, sizes, compressed bytes, PNG files.

Every frame is checked here before anything decodes or copies it, at the node and again in the
worker (see "Failure model" in docs/design.md). Only numpy and the standard library are
imported; :mod:`aria_perception.records` re-exports every public name, where the other shared
records are.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from aria_perception.errors import FrameError

__all__ = [
    "COMPRESSED_FORMATS",
    "MAX_FRAME_PIXELS",
    "PNG_SIGNATURE",
    "RAW_CHANNELS",
    "check_encoded_frame",
    "check_frame_size",
    "check_png",
    "check_raw_frame",
    "raw_channels",
]

#: Raw image encodings the pipeline takes, with their channel counts.
RAW_CHANNELS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}
#: Compressed formats the worker decodes.
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")
#: The most pixels any frame may have (the upper bound of ``input.max_pixels``).
MAX_FRAME_PIXELS = 8192 * 8192


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
