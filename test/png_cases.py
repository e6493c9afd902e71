"""PNG bytes for the hostile-input tests: valid images and corruptions that crash decoders.

Built in memory (Pillow for the valid image, zlib and struct for the rest): no files.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The seven Adam7 passes: first column, first row, column step, row step.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))  # fmt: skip


def pixels(height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """An (H, W, 3) uint8 image with structure and noise."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([yy, xx, (yy + xx) // 2], -1) % 256
    noise = np.random.default_rng(seed).integers(0, 40, base.shape)
    return ((base + noise) % 256).astype(np.uint8)


def encode(image: np.ndarray) -> bytes:
    """``image`` as PNG bytes, written by Pillow."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    """One chunk with its length and a correct CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, body) of every chunk of a well-formed PNG."""
    pos, out = len(SIGNATURE), []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def image_data(data: bytes) -> bytes:
    """The compressed image data: every IDAT chunk's body, joined."""
    return b"".join(body for kind, body in chunks(data) if kind == b"IDAT")


def rebuild(data: bytes, **bodies: bytes) -> bytes:
    """``data`` with the bodies of the named chunk types replaced (all IDATs become one).

    CRCs are recomputed: what is wrong is only what the caller changed.
    """
    idat = image_data(data)
    out, wrote_idat = SIGNATURE, False
    for kind, body in chunks(data):
        if kind == b"IDAT":
            if not wrote_idat:
                out += chunk(kind, bodies.get("IDAT", idat))
            wrote_idat = True
            continue
        out += chunk(kind, bodies.get(kind.decode(), body))
    return out


def with_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` with an IHDR announcing another size (and a correct CRC)."""
    ihdr = dict(chunks(data))[b"IHDR"]
    return rebuild(data, IHDR=struct.pack(">II", width, height) + ihdr[8:])


def with_rows(data: bytes, edit) -> bytes:
    """``data`` with its inflated image data passed through ``edit`` and compressed again."""
    raw = zlib.decompress(image_data(data))
    return rebuild(data, IDAT=zlib.compress(edit(bytearray(raw))))


def interlaced(image: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG of ``image`` (Pillow writes none)."""
    height, width = image.shape[:2]
    raw = b""
    for x0, y0, dx, dy in ADAM7:
        sub = image[y0::dy, x0::dx]
        if sub.size:  # an empty pass has no rows at all
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return (
        SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _bad_filter(raw: bytearray) -> bytearray:
    raw[0] = 7  # the first row's filter type: there are five (0..4)
    return raw


def hostile(data: bytes) -> dict[str, tuple[bytes, str]]:
    """Corruptions of the 320x240 PNG ``data``: name -> (bytes, what the refusal says)."""
    crc = bytearray(data)
    crc[60:200] = bytes(140)
    adler = bytearray(zlib.compress(zlib.decompress(image_data(data))))
    adler[-1] ^= 1
    return {
        "idat_crc": (bytes(crc), "CRC error in the IDAT chunk"),
        "ihdr_320x241": (with_size(data, 320, 241), "IHDR size 320x241 needs"),
        "ihdr_321x240": (with_size(data, 321, 240), "IHDR size 321x240 needs"),
        "ihdr_1990x1990": (with_size(data, 1990, 1990), "IHDR size 1990x1990 needs"),
        "truncated": (data[: len(data) // 2], "truncated PNG"),
        "no_iend": (data[:-12], "without an IEND chunk"),
        "bad_signature": (b"\x89PNX" + data[4:], "not PNG data"),
        "bad_filter": (with_rows(data, _bad_filter), "unknown filter type"),
        "bad_checksum": (rebuild(data, IDAT=bytes(adler)), "incorrect data check"),
        "too_much_data": (with_rows(data, lambda raw: raw + bytes(961)), "holds more than"),
        "after_the_stream": (
            rebuild(data, IDAT=image_data(data) + b"junk"),
            "after the end of the compressed image data",
        ),
        "critical_chunk": (
            data[:33] + chunk(b"ABCD", b"??") + data[33:],
            "unknown critical chunk ABCD",
        ),
        "chunk_flood": (  # valid, but decoders take seconds over so many chunks
            data[:33] + chunk(b"tEXt", b"k\x00v") * 10_000 + data[33:],
            "more than 10000 chunks",
        ),
    }
