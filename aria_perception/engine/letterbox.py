"""YOLO letterbox on the device, bit-exact with Ultralytics' ``LetterBox`` for one image.

``YOLO.predict`` (ultralytics 8.4) letterboxes a single ``.pt``-model image with
``LetterBox(imgsz, auto=True, stride=model.stride)``: scale so the image fits ``imgsz`` (up or
down), resize with ``cv2.resize(..., INTER_LINEAR)`` on the uint8 image, then pad with 114 to
the next multiple of the stride, centred. Boxes go back with ``ops.scale_boxes``.

The resize here reproduces OpenCV's fixed-point ``INTER_LINEAR`` for 8-bit images exactly
(11-bit coefficients, horizontal pass first, then
``((b0*(r0>>4))>>16 + (b1*(r1>>4))>>16 + 2)>>2``), so the network sees the very same input as
in ``YOLO.predict``. It runs as integer tensor ops with index and weight tables cached per
input shape: fixed shapes, no host sync, capturable in a CUDA graph.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

PAD_VALUE = 114
# OpenCV's INTER_RESIZE_COEF_BITS: interpolation weights are integers summing to ~2**11.
_COEF_SCALE = 2048
_CACHE_SIZE = 8


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where an input image lands in the network input, and how boxes go back.

    Attributes:
        input_hw: (H, W) of the image as given.
        resized_hw: (h, w) of the image after the resize, before padding.
        padded_hw: (Hp, Wp) of the network input.
        top: Rows of padding above the image.
        left: Columns of padding left of the image.
        gain_xy: Network pixels per input pixel, x and y (as ``ops.scale_boxes`` computes them).
        pad_xy: Offset of the image in the network input, x and y (as ``ops.scale_boxes``).
    """

    input_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    top: int
    left: int
    gain_xy: tuple[float, float]
    pad_xy: tuple[int, int]

    @property
    def needs_resize(self) -> bool:
        """True when the image is scaled (LetterBox skips cv2.resize for an unchanged size)."""
        return self.resized_hw != self.input_hw


def letterbox_geometry(
    height: int, width: int, image_size: int, stride: int, minimal_padding: bool = True
) -> LetterboxGeometry:
    """Compute the letterbox of one image as Ultralytics' ``LetterBox.get_params`` does.

    Args:
        height: Input image height in pixels.
        width: Input image width in pixels.
        image_size: Square network size (``imgsz``), a multiple of ``stride``.
        stride: Largest model stride (32 for YOLOv8).
        minimal_padding: Pad only to the next multiple of ``stride`` (``auto=True``, what
            ``YOLO.predict`` does for one image); False pads to ``image_size`` square.

    Returns:
        The geometry, including the box back-mapping of ``ops.scale_boxes``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    r = min(image_size / height, image_size / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    dw, dh = image_size - new_w, image_size - new_h
    if minimal_padding:
        dw, dh = int(np.mod(dw, stride)), int(np.mod(dh, stride))
    top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
    left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
    padded = (new_h + top + bottom, new_w + left + right)
    # ops.scale_boxes recomputes gain and padding from the two shapes rather than reusing the
    # letterbox's own numbers; mirror it so boxes come back exactly as in YOLO.predict.
    gain = min(padded[0] / height, padded[1] / width)
    back_h, back_w = (max(round(x * gain), 1) for x in (height, width))
    gain_xy = (back_w / width, back_h / height)
    pad_xy = (round((padded[1] - back_w) / 2 - 0.1), round((padded[0] - back_h) / 2 - 0.1))
    return LetterboxGeometry(
        input_hw=(height, width),
        resized_hw=(new_h, new_w),
        padded_hw=padded,
        top=top,
        left=left,
        gain_xy=gain_xy,
        pad_xy=pad_xy,
    )


def _linear_taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, ...]:
    """Source indices and fixed-point weights of OpenCV's INTER_LINEAR along one axis.

    OpenCV zeroes the fraction at the borders of the horizontal axis but keeps it on the
    vertical axis (there only the row index is clamped); ``clamp_weights`` picks which.
    """
    scale = 1.0 / (dst / src)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    frac = (pos - first.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low, high = first < 0, first >= src - 1
        frac[low | high] = 0.0
        first[low] = 0
        first[high] = src - 1
    w0 = np.rint((np.float32(1.0) - frac) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int32)
    return np.clip(first, 0, src - 1), np.clip(first + 1, 0, src - 1), w0, w1


@dataclass(frozen=True)
class _ResizeTables:
    rows: torch.Tensor  # (2h,) source rows: the h upper taps, then the h lower taps
    cols: torch.Tensor  # (2w,) source columns: left taps, then right taps
    col_w0: torch.Tensor  # (1, w, 1) int32
    col_w1: torch.Tensor
    row_w0: torch.Tensor  # (h, 1, 1) int32
    row_w1: torch.Tensor


def resize_tables(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], device: torch.device
) -> _ResizeTables:
    """Index and weight tables of an exact OpenCV INTER_LINEAR resize from src to dst."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    y0, y1, b0, b1 = _linear_taps(sh, dh, clamp_weights=False)
    x0, x1, a0, a1 = _linear_taps(sw, dw, clamp_weights=True)

    def dev(a: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).reshape(shape).to(device)

    return _ResizeTables(
        rows=dev(np.concatenate([y0, y1]), (-1,)),
        cols=dev(np.concatenate([x0, x1]), (-1,)),
        col_w0=dev(a0, (1, dw, 1)),
        col_w1=dev(a1, (1, dw, 1)),
        row_w0=dev(b0, (dh, 1, 1)),
        row_w1=dev(b1, (dh, 1, 1)),
    )


def resize_linear_u8(image: torch.Tensor, tables: _ResizeTables) -> torch.Tensor:
    """Resize an (H, W, C) uint8 tensor exactly like ``cv2.resize(..., INTER_LINEAR)``.

    Args:
        image: (H, W, C) uint8 tensor.
        tables: From :func:`resize_tables` for this image's size and the wanted size.

    Returns:
        (h, w, C) uint8 tensor on the image's device.
    """
    h, w = tables.row_w0.shape[0], tables.col_w0.shape[1]
    # Gathering rows first is exact (rows are independent in the horizontal pass) and only
    # touches the 2h source rows the vertical pass needs.
    taps = image.index_select(0, tables.rows).index_select(1, tables.cols).to(torch.int32)
    horizontal = taps[:, :w] * tables.col_w0 + taps[:, w:] * tables.col_w1  # (2h, w, C)
    upper = (horizontal[:h] >> 4) * tables.row_w0 >> 16
    lower = (horizontal[h:] >> 4) * tables.row_w1 >> 16
    return ((upper + lower + 2) >> 2).clamp_(0, 255).to(torch.uint8)


class Letterbox:
    """Device letterbox: HxWx3 uint8 RGB tensor to the normalised NCHW network input.

    Args:
        image_size: Square network size, a multiple of ``stride``.
        stride: Largest model stride.
        dtype: Output dtype (float32 or float16).
        channels_last: Return an NCHW tensor with channels-last strides (no extra copy: the
            padded canvas is built in HWC order).
        minimal_padding: See :func:`letterbox_geometry`.
    """

    def __init__(
        self,
        image_size: int,
        stride: int,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        minimal_padding: bool = True,
    ) -> None:
        self.image_size = image_size
        self.stride = stride
        self.dtype = dtype
        self.channels_last = channels_last
        self.minimal_padding = minimal_padding
        self._geometry: OrderedDict[tuple[int, int], LetterboxGeometry] = OrderedDict()
        self._tables: OrderedDict[tuple[int, int, str], _ResizeTables] = OrderedDict()

    def geometry(self, height: int, width: int) -> LetterboxGeometry:
        """The (cached) letterbox geometry of an input size."""
        key = (height, width)
        geo = self._geometry.get(key)
        if geo is None:
            geo = letterbox_geometry(
                height, width, self.image_size, self.stride, self.minimal_padding
            )
            _remember(self._geometry, key, geo)
        return geo

    def resize_tables(self, height: int, width: int, device: torch.device) -> object | None:
        """The tables an input size is resized with on ``device`` (None when it is not resized).

        They live in a small cache that a stream of new sizes turns over. A CUDA graph that ran
        the letterbox keeps reading these very tensors, so whoever replays one must hold them.
        """
        geo = self.geometry(height, width)
        return self._resize_tables(geo, device) if geo.needs_resize else None

    def _resize_tables(self, geo: LetterboxGeometry, device: torch.device) -> _ResizeTables:
        key = (*geo.input_hw, str(device))
        tables = self._tables.get(key)
        if tables is None:
            tables = resize_tables(geo.input_hw, geo.resized_hw, device)
            _remember(self._tables, key, tables)
        return tables

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Letterbox one image.

        Args:
            image: (H, W, 3) uint8 RGB tensor on the target device.

        Returns:
            (1, 3, Hp, Wp) tensor of ``dtype`` with values in [0, 1], RGB.
        """
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an HxWx3 uint8 image, got {tuple(image.shape)} {image.dtype}"
            )
        geo = self.geometry(int(image.shape[0]), int(image.shape[1]))
        if geo.needs_resize:
            image = resize_linear_u8(image, self._resize_tables(geo, image.device))
        (hp, wp), (h, w) = geo.padded_hw, geo.resized_hw
        if (hp, wp) == (h, w):
            canvas = image.unsqueeze(0)
        else:
            canvas = image.new_full((1, hp, wp, 3), PAD_VALUE)
            canvas[0, geo.top : geo.top + h, geo.left : geo.left + w] = image
        # Same arithmetic as the predictor: to float, then divide by 255.
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return canvas.permute(0, 3, 1, 2).to(self.dtype, memory_format=layout).div_(255.0)


def _remember(cache: OrderedDict, key: object, value: object) -> None:
    """Insert into a small LRU cache (input sizes are few; a changing size must not grow it)."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def scale_boxes(boxes: torch.Tensor, geometry: LetterboxGeometry) -> torch.Tensor:
    """Network-input xyxy boxes back to input pixels, clipped, in place (``ops.scale_boxes``).

    Args:
        boxes: (N, 4) float xyxy in network-input pixels; modified and returned.
        geometry: The letterbox geometry of the image.
    """
    (gain_x, gain_y), (pad_x, pad_y) = geometry.gain_xy, geometry.pad_xy
    height, width = geometry.input_hw
    boxes[:, 0::2] -= pad_x
    boxes[:, 1::2] -= pad_y
    boxes[:, 0::2] /= gain_x
    boxes[:, 1::2] /= gain_y
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    return boxes
