"""MiDaS preprocessing and postprocessing with torch ops on the frame's device.

The official MiDaS small transform (``small_transform`` in MiDaS's ``hubconf.py``) runs on the
CPU with numpy and OpenCV: RGB / 255, ``Resize(256, 256, keep_aspect_ratio=True,
ensure_multiple_of=32, resize_method="upper_bound", cv2.INTER_CUBIC)``, normalise with the
ImageNet mean and std, HWC -> CHW. Here the same steps run where the frame already is (the GPU
in the worker), with the constants read from :data:`~aria_perception.engine.midas.MIDAS_SMALL_CFG`.

Bicubic resizing uses ``F.interpolate(mode="bicubic", align_corners=False, antialias=False)``:
the same cubic kernel (a = -0.75), pixel-centre alignment and border clamping as
``cv2.INTER_CUBIC``, and like it no antialiasing when shrinking.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from aria_perception.engine.midas import MIDAS_SMALL_CFG, MidasPretrainedCfg
from aria_perception.errors import ConfigError, FrameError
from aria_perception.records import check_frame_size


def _constrain_to_multiple(value: float, multiple_of: int, max_value: int) -> int:
    # The official ``Resize.constrain_to_multiple_of``: numpy round (halves to even, which
    # Python's round also does), then floor if that went above the bound.
    result = round(value / multiple_of) * multiple_of
    if result > max_value:
        result = math.floor(value / multiple_of) * multiple_of
    return int(result)


def midas_input_size(
    height: int,
    width: int,
    size: int = MIDAS_SMALL_CFG.input_size,
    multiple_of: int = MIDAS_SMALL_CFG.multiple_of,
) -> tuple[int, int]:
    """The (height, width) the official transform resizes a ``height`` x ``width`` image to.

    The limiting side is scaled to ``size`` keeping the aspect ratio; each side is then rounded
    to a multiple of ``multiple_of`` (halves to even) but not above ``size`` ("upper_bound").

    Args:
        height: image height in pixels.
        width: image width in pixels.
        size: the bound on both sides (``depth.input_size``).
        multiple_of: both output sides are multiples of this (32 for MiDaS).

    Returns:
        (h, w), both positive multiples of ``multiple_of``, neither above ``size``.

    Raises:
        ConfigError: ``size`` is smaller than ``multiple_of``.
        FrameError: the image is empty, or so elongated that one side would round to 0.
    """
    if multiple_of <= 0 or size < multiple_of:
        raise ConfigError(
            f"depth.input_size: {size} is too small; it must be at least {multiple_of} "
            f"(outputs are multiples of {multiple_of})"
        )
    check_frame_size(width, height, None, "frame")
    # Computed in Python floats (IEEE double), as the official code does in numpy float64, so
    # sizes that land on a rounding boundary come out the same. Like the official code, both
    # sides take the smaller of the two scales.
    scale = min(size / height, size / width)
    new_height = _constrain_to_multiple(scale * height, multiple_of, size)
    new_width = _constrain_to_multiple(scale * width, multiple_of, size)
    if new_height <= 0 or new_width <= 0:
        raise FrameError(
            f"frame size {width}x{height} is too elongated for depth: it would be resized to "
            f"{new_width}x{new_height} (depth.input_size {size})"
        )
    return new_height, new_width


def _as_nchw_uint8(image: torch.Tensor) -> torch.Tensor:
    """View an HxWx3 or Nx3xHxW uint8 tensor as N x 3 x H x W (no copy)."""
    if image.dtype != torch.uint8:
        raise FrameError(f"depth input must be uint8 RGB, got {image.dtype}")
    if image.dim() == 3:
        if image.shape[2] != 3:
            raise FrameError(f"depth input must be HxWx3 RGB, got shape {tuple(image.shape)}")
        return image.permute(2, 0, 1).unsqueeze(0)
    if image.dim() == 4:
        if image.shape[1] != 3:
            raise FrameError(f"depth input must be Nx3xHxW RGB, got shape {tuple(image.shape)}")
        return image
    raise FrameError(f"depth input must be HxWx3 or Nx3xHxW, got shape {tuple(image.shape)}")


def _normalisation(
    cfg: MidasPretrainedCfg, device: torch.device | str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    # (x / 255 - mean) / std folded into x * scale + shift, applied after the resize (the
    # resize is linear with weights summing to 1, so the order does not change the result
    # beyond float rounding).
    mean = torch.tensor(cfg.mean, dtype=torch.float64)
    std = torch.tensor(cfg.std, dtype=torch.float64)
    scale = (1.0 / (255.0 * std)).to(torch.float32).view(1, 3, 1, 1)
    shift = (-mean / std).to(torch.float32).view(1, 3, 1, 1)
    return scale.to(device), shift.to(device)


def _preprocess(
    image: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    size: int,
    multiple_of: int,
    dtype: torch.dtype,
    channels_last: bool,
) -> torch.Tensor:
    batch = _as_nchw_uint8(image)
    height, width = batch.shape[-2:]
    out_height, out_width = midas_input_size(height, width, size, multiple_of)
    # Resized in float32 whatever the output dtype: half precision would round the 0..255
    # values by up to 0.06 before normalisation.
    x = batch.to(torch.float32)
    if (out_height, out_width) != (height, width):
        x = F.interpolate(
            x, size=(out_height, out_width), mode="bicubic", align_corners=False, antialias=False
        )
    x = torch.addcmul(shift, x, scale)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype=dtype, memory_format=memory_format)


def midas_preprocess(
    image: torch.Tensor,
    *,
    size: int = MIDAS_SMALL_CFG.input_size,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    cfg: MidasPretrainedCfg = MIDAS_SMALL_CFG,
) -> torch.Tensor:
    """Turn RGB frames into MiDaS input, on the frames' device (the official small transform).

    For repeated use, and inside CUDA graphs, prefer :class:`MidasPreprocess`, which keeps its
    constants on the device; this function builds them on each call.

    Args:
        image: (H, W, 3) or (N, 3, H, W) uint8 RGB, on any device.
        size: the bound on both sides (``depth.input_size``).
        dtype: dtype of the result (the model's dtype).
        channels_last: return the tensor in channels_last memory format.
        cfg: the pretrained config to read mean, std and the size rule from.

    Returns:
        (N, 3, h, w) normalised tensor, (h, w) = :func:`midas_input_size`.

    Raises:
        FrameError: the image is not uint8 RGB of a usable size.
    """
    scale, shift = _normalisation(cfg, image.device)
    return _preprocess(image, scale, shift, size, cfg.multiple_of, dtype, channels_last)


class MidasPreprocess(nn.Module):
    """:func:`midas_preprocess` as a module whose constants live on the device.

    Nothing in ``forward`` copies from the host or synchronises, so it can be captured in a CUDA
    graph (one graph per input shape). The constants stay float32 when the module is moved:
    move it with ``.to(device)``; the output dtype is ``dtype``.

    Args:
        size: the bound on both sides (``depth.input_size``).
        dtype: dtype of the result (the model's dtype).
        channels_last: return the tensor in channels_last memory format.
        cfg: the pretrained config to read mean, std and the size rule from.
    """

    def __init__(
        self,
        size: int = MIDAS_SMALL_CFG.input_size,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        cfg: MidasPretrainedCfg = MIDAS_SMALL_CFG,
    ) -> None:
        super().__init__()
        # Checked once here, so that a bad size is a configuration error at start-up.
        midas_input_size(size, size, size, cfg.multiple_of)
        self.size = size
        self.dtype = dtype
        self.channels_last = channels_last
        self.cfg = cfg
        scale, shift = _normalisation(cfg, None)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) of the output for a ``height`` x ``width`` frame."""
        return midas_input_size(height, width, self.size, self.cfg.multiple_of)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(H, W, 3) or (N, 3, H, W) uint8 RGB -> (N, 3, h, w) normalised, on the same device."""
        return _preprocess(
            image,
            self.scale.float(),
            self.shift.float(),
            self.size,
            self.cfg.multiple_of,
            self.dtype,
            self.channels_last,
        )

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return f"size={self.size}, dtype={self.dtype}, channels_last={self.channels_last}"


def upsample_depth(
    prediction: torch.Tensor, size: tuple[int, int], dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Resize MiDaS output to ``size`` as the official code does (bicubic, align_corners=False).

    Args:
        prediction: (N, h, w) model output.
        size: the wanted (H, W), usually the frame's.
        dtype: compute and return in this dtype (e.g. float32 for half-precision output);
            default: the prediction's.

    Returns:
        (N, H, W) relative inverse depth. Bicubic can overshoot: values may dip slightly below
        0 near sharp edges, as in the official output.
    """
    if prediction.dim() != 3:
        raise ValueError(f"prediction must be (N, h, w), got shape {tuple(prediction.shape)}")
    x = prediction if dtype is None else prediction.to(dtype)
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"upsample size must be positive, got {size}")
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(
        x.unsqueeze(1), size=(height, width), mode="bicubic", align_corners=False
    ).squeeze(1)


__all__ = ["MidasPreprocess", "midas_input_size", "midas_preprocess", "upsample_depth"]
