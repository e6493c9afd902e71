"""Frames on the device: encodings to RGB, compressed decoding, and the ``input.rotation`` maps.

The node hands over the frame as it was received (raw pixels in the message's encoding, or the
compressed bytes); everything here runs on the engine's device so that the host only copies.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import torch

from aria_perception.errors import FrameError
from aria_perception.records import ROTATIONS, check_png, raw_channels


def to_rgb(pixels: torch.Tensor, encoding: str) -> torch.Tensor:
    """Return an (H, W, 3) uint8 RGB view or copy of ``pixels`` given in ``encoding``.

    Args:
        pixels: (H, W, C) or (H, W) uint8 tensor in the message's encoding, of the shape
            :func:`~aria_perception.records.check_raw_frame` accepted for it.
        encoding: one of :data:`~aria_perception.records.RAW_CHANNELS`.

    Raises:
        FrameError: the encoding is unknown.
    """
    raw_channels(encoding)
    if pixels.dim() == 2:
        pixels = pixels.unsqueeze(-1)
    if encoding == "rgb8":
        return pixels
    if encoding == "mono8":
        return pixels.expand(-1, -1, 3)
    if encoding == "rgba8":
        return pixels[..., :3]
    # bgr8 / bgra8: reverse the first three channels. A flip, not an index list: the list
    # would be a host tensor copied to the device, which a CUDA graph capture refuses.
    return pixels[..., :3].flip(-1)


def decode(data: torch.Tensor, fmt: str, device: torch.device) -> torch.Tensor:
    """Decode compressed bytes to an (H, W, 3) uint8 RGB tensor on ``device``.

    JPEG is decoded on the GPU (nvjpeg through torchvision) when ``device`` is CUDA, so only the
    compressed bytes cross the bus; PNG is checked and decoded on the CPU (:func:`decode_png`)
    and uploaded.

    Args:
        data: the bytes as a 1-D uint8 CPU tensor, as
            :func:`~aria_perception.records.check_encoded_frame` accepted them.
        fmt: ``jpeg`` or ``png``.
        device: where the pixels go.

    Raises:
        FrameError: corrupt data.
    """
    if fmt == "png":
        return torch.from_numpy(decode_png(data.numpy())).to(device, non_blocking=True)
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        target = device if device.type == "cuda" else "cpu"
        chw = decode_jpeg(data, mode=ImageReadMode.RGB, device=target)
    except RuntimeError as err:
        raise FrameError(f"corrupt {fmt} data: {err}") from err
    return chw.permute(1, 2, 0).to(device, non_blocking=True)


def decode_png(data: np.ndarray) -> np.ndarray:
    """Decode PNG bytes to an (H, W, 3) uint8 RGB array; any PNG bytes give it or a FrameError.

    The bytes are checked whole first (:func:`~aria_perception.records.check_png`: chunks,
    CRCs, the image data against the IHDR size), then decoded by Pillow, which reports errors
    instead of crashing: torchvision's ``decode_png`` takes the process down when libpng fails
    in the middle of the rows. The image data is inflated once, by the check: Pillow gets it
    in stored (uncompressed) deflate blocks, which it copies instead of inflating again. Grey
    and palette images become RGB, alpha is dropped, 16-bit samples keep their high byte.

    Args:
        data: the PNG file's bytes, 1-D uint8.

    Raises:
        FrameError: the data is not a PNG that can be read whole.
    """
    from PIL import Image

    png = memoryview(np.ascontiguousarray(data)).cast("B")
    rows: list[bytes] = []
    check_png(png, keep=rows)
    stored = _with_image_data(png, zlib.compress(b"".join(rows), 0))
    try:
        with Image.open(io.BytesIO(stored), formats=("PNG",)) as image:
            image.load()
            if image.mode.startswith("I"):  # 16-bit grey: keep the high byte
                grey = (np.asarray(image) >> 8).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            # np.array: a writable copy (np.asarray gives a read-only view of Pillow's bytes).
            return np.array(image if image.mode == "RGB" else image.convert("RGB"))
    except Exception as err:  # Pillow raises many types for bad data; all are the frame's fault
        raise FrameError(f"corrupt png data: {err}") from err


def _with_image_data(png: memoryview, image_data: bytes) -> bytes:
    """Checked PNG bytes with their IDAT chunks replaced by one that holds ``image_data``."""
    parts: list[bytes | memoryview] = [png[:8]]
    pos, replaced = 8, False
    while pos < len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        kind, end = bytes(png[pos + 4 : pos + 8]), pos + 12 + length
        if kind != b"IDAT":
            parts.append(png[pos:end])
        elif not replaced:
            crc = zlib.crc32(image_data, zlib.crc32(kind))
            parts += [struct.pack(">I", len(image_data)), kind, image_data, struct.pack(">I", crc)]
            replaced = True
        if kind == b"IEND":
            break
        pos = end
    return b"".join(parts)


def rotation_turns(rotation: int) -> int:
    """Quarter turns for :func:`torch.rot90` that turn an image ``rotation`` degrees clockwise."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation}")
    return -(rotation // 90)


def rotate_image(
    image: torch.Tensor, rotation: int, dims: tuple[int, int] = (0, 1)
) -> torch.Tensor:
    """Rotate an image tensor ``rotation`` degrees clockwise over its (row, column) ``dims``."""
    turns = rotation_turns(rotation)
    return image if turns == 0 else torch.rot90(image, turns, dims)


def unrotate_image(
    image: torch.Tensor, rotation: int, dims: tuple[int, int] = (0, 1)
) -> torch.Tensor:
    """Undo :func:`rotate_image`."""
    turns = rotation_turns(rotation)
    return image if turns == 0 else torch.rot90(image, -turns, dims)


def unrotate_boxes(boxes: torch.Tensor, rotation: int, height: int, width: int) -> torch.Tensor:
    """Map xyxy boxes found in the rotated image back to the received image's pixels.

    Args:
        boxes: (N, 4) x1, y1, x2, y2 in the rotated image (continuous pixel edges).
        rotation: the clockwise rotation that was applied.
        height: received image height.
        width: received image width.
    """
    if rotation == 0 or boxes.numel() == 0:
        return boxes
    x1, y1, x2, y2 = boxes.unbind(-1)
    if rotation == 90:  # received (x, y) -> rotated (height - y, x)
        out = (y1, height - x2, y2, height - x1)
    elif rotation == 180:  # -> (width - x, height - y)
        out = (width - x2, height - y2, width - x1, height - y1)
    elif rotation == 270:  # -> (y, width - x)
        out = (width - y2, x1, width - y1, x2)
    else:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation}")
    return torch.stack(out, dim=-1)
