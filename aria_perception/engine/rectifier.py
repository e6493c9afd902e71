"""Rectification on the device: a camera's remap grid in a static buffer, and the one sample.

The grid (:meth:`aria_perception.optics.Rectification.grid`: for each output pixel, the source
pixel) is computed on the host once per calibration and copied into a device buffer that keeps
its storage while the output size stays the same, so the prepare step's CUDA graphs, captured
on that buffer, follow a new calibration without a recapture. :func:`remap` samples a frame
through it, bilinearly (``grid_sample`` with ``align_corners=True``: pixel centres at
integers, as the grid's coordinates are); it both undistorts and turns the frame upright.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
from torch.nn import functional as F

from aria_perception.optics import Rectification, rectification_for

__all__ = ["OUTSIDE", "CameraGrid", "normalised_grid", "remap"]

_LOG = logging.getLogger(__name__)

#: Where a grid point that samples nothing goes, in grid_sample's [-1, 1] coordinates: far
#: enough out that all four bilinear neighbours are outside and the sample is 0.
OUTSIDE = -4.0


def normalised_grid(rectification: Rectification) -> np.ndarray:
    """The grid in ``grid_sample``'s coordinates: (1, H', W', 2) float32, -1 and 1 at centres.

    Pixel x of a source W pixels wide is ``2 x / (W - 1) - 1`` (``align_corners=True``); a point
    without a source pixel is :data:`OUTSIDE`.
    """
    grid = rectification.grid().astype(np.float64)
    width, height = rectification.calibration.size
    grid[..., 0] = grid[..., 0] * (2.0 / (width - 1)) - 1.0
    grid[..., 1] = grid[..., 1] * (2.0 / (height - 1)) - 1.0
    return np.nan_to_num(grid, nan=OUTSIDE).astype(np.float32)[None]


class CameraGrid:
    """One camera's rectification and its grid on the device.

    Args:
        device: where the grid lives.

    Attributes:
        rectification: the calibration, pinhole and rotation in use (None before the first).
        grid: (1, H', W', 2) float32 on ``device``; a new calibration with the same output size
            is copied into the same storage.
        version: counts the rectifications applied.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rectification: Rectification | None = None
        self.grid: torch.Tensor | None = None
        self.version = 0

    def update(self, rectification: Rectification, stream: torch.cuda.Stream | None) -> bool:
        """Use ``rectification`` from the next frame on.

        Args:
            rectification: the new calibration, pinhole and rotation.
            stream: the stream the prepare step runs on (the copy is ordered on it and waited
                for), None on the CPU.

        Returns:
            True when the grid kept its buffer (same output size), False for a new buffer.
        """
        host = torch.from_numpy(normalised_grid(rectification))
        kept = self.grid is not None and tuple(self.grid.shape) == tuple(host.shape)
        # On the prepare step's stream, waited for: no frame reads a half-written grid.
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            if kept:
                assert self.grid is not None
                self.grid.copy_(host)
            else:
                self.grid = host.to(self.device)
        if stream is not None:
            stream.synchronize()
        self.rectification = rectification
        self.version += 1
        width, height = rectification.output_size
        _LOG.info(
            "rectification %d: %s %dx%d -> pinhole %dx%d, focal %g px, rotation %d",
            self.version,
            rectification.calibration.model,
            *rectification.calibration.size,
            width,
            height,
            rectification.pinhole.focal_px,
            rectification.rotation,
        )
        return kept

    def check_frame(self, height: int, width: int) -> Rectification:
        """The rectification for a frame of ``width`` x ``height``.

        Raises:
            FrameError: no calibration yet, or one of another sensor size.
        """
        return rectification_for(self.rectification, width, height)


def remap(pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample ``pixels`` at ``grid``, bilinearly; zeros where the grid points outside.

    Args:
        pixels: (H, W, C) uint8 frame on the device (any strides).
        grid: (1, H', W', 2) float32 from :func:`normalised_grid`.

    Returns:
        (H', W', C) uint8, contiguous, rounded to the nearest level.
    """
    x = pixels.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[0].round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()
