"""Box-depth fusion: the median relative inverse depth inside each detection box, on the device.

Which pixels a box covers: every pixel it overlaps, i.e. rows ``floor(y1) .. ceil(y2) - 1`` and
columns ``floor(x1) .. ceil(x2) - 1``, clipped to the image. A box that covers no pixel (zero
width or height, or outside the image) gets NaN.

The median is NumPy's (the mean of the two middle values for an even count). All boxes are
done in one batch of tensor ops, without a per-box loop or a host sync: each box is sampled on a
``grid x grid`` lattice of pixels gathered in one indexing op, then sorted.

Tolerance: a box of at most ``grid`` pixels in each direction is sampled completely, so its
median is exact. A larger box is sampled on ``grid`` evenly spaced pixel rows (and columns):
the pixel at the centre of each of ``grid`` equal strata. The result is then the exact median
of those ``grid**2`` pixels, whose rank among all the box's pixels is the middle within a few
per cent (the test checks the 0.5 +- 0.03 quantile on bicubic-upsampled random maps at the
default ``grid=64``).
"""

from __future__ import annotations

import torch

__all__ = ["DEFAULT_GRID", "box_depth_median", "box_depth_median_lowres", "box_pixel_ranges"]

DEFAULT_GRID = 64
_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic convolution constant


def box_pixel_ranges(
    boxes: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel rows [r0, r1) and columns [c0, c1) each xyxy box overlaps, clipped to the image.

    Args:
        boxes: (N, 4) float x1, y1, x2, y2 in pixels.
        height: Image height.
        width: Image width.

    Returns:
        r0, r1, c0, c1 as (N,) int64 tensors; an empty range has r1 <= r0 or c1 <= c0.
    """
    boxes = boxes.float()
    c0 = boxes[:, 0].floor().clamp(0, width).long()
    r0 = boxes[:, 1].floor().clamp(0, height).long()
    c1 = boxes[:, 2].ceil().clamp(0, width).long()
    r1 = boxes[:, 3].ceil().clamp(0, height).long()
    return r0, r1, c0, c1


def _sample_axis(
    lo: torch.Tensor, hi: torch.Tensor, grid: int, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to ``grid`` pixel indices in [lo, hi): all of them, or the centres of grid strata."""
    n = (hi - lo).clamp(min=0)
    count = n.clamp(max=grid)
    i = torch.arange(grid, device=lo.device)
    # Integer arithmetic: index of the centre of stratum i when [lo, hi) is cut into `count`
    # equal parts; equals lo + i when the range fits the grid.
    idx = lo[:, None] + ((2 * i + 1)[None, :] * n[:, None]) // (2 * count.clamp(min=1))[:, None]
    valid = i[None, :] < count[:, None]
    return idx.clamp(0, max(size - 1, 0)), valid, count


def _box_lattice(
    boxes: torch.Tensor, height: int, width: int, grid: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``grid x grid`` pixel lattice each box is sampled on, in an (H, W) image.

    Returns:
        rows (N, grid) and cols (N, grid) pixel indices, the (N, grid * grid) mask of the
        lattice points inside the box (row-major, as ``values.flatten(1)``) and the (N,) count
        of those points.

    Raises:
        ValueError: ``grid`` is below 1.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    r0, r1, c0, c1 = box_pixel_ranges(boxes, height, width)
    rows, row_ok, n_rows = _sample_axis(r0, r1, grid, height)
    cols, col_ok, n_cols = _sample_axis(c0, c1, grid, width)
    valid = row_ok[:, :, None] & col_ok[:, None, :]
    return rows, cols, valid.flatten(1), n_rows * n_cols


def _median_of_samples(
    values: torch.Tensor, valid: torch.Tensor, count: torch.Tensor
) -> torch.Tensor:
    """NumPy median of the valid entries of each row of ``values`` (N, M); NaN where none."""
    values = values.float().masked_fill(~valid, float("inf")).sort(dim=1).values
    last = values.shape[1] - 1
    lower = ((count - 1).clamp(min=0) // 2).clamp(max=last)
    upper = (count // 2).clamp(max=last)
    median = (values.gather(1, lower[:, None]) + values.gather(1, upper[:, None]))[:, 0] / 2
    return torch.where(count > 0, median, torch.full_like(median, float("nan")))


def box_depth_median(
    depth: torch.Tensor, boxes: torch.Tensor, grid: int = DEFAULT_GRID
) -> torch.Tensor:
    """Median of a full-resolution depth map inside each box (see the module docstring).

    Args:
        depth: (H, W) map at the resolution the boxes refer to (any float dtype, any device).
        boxes: (N, 4) xyxy boxes in pixels of that map, on the same device.
        grid: Samples per box side; boxes up to ``grid`` pixels per side are exact.

    Returns:
        (N,) float32 medians, NaN for boxes that cover no pixel.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {tuple(depth.shape)}")
    height, width = depth.shape
    rows, cols, valid, count = _box_lattice(boxes, height, width, grid)
    if height == 0 or width == 0:
        values = depth.new_zeros((boxes.shape[0], grid, grid))
    else:
        values = depth[rows[:, :, None], cols[:, None, :]]  # (N, grid, grid), one gather
    return _median_of_samples(values.flatten(1), valid, count)


def _cubic_taps(
    index: torch.Tensor, in_size: int, out_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source taps and weights of PyTorch's bicubic (align_corners=False) for output pixels.

    Returns (..., 4) int64 clamped source indices and (..., 4) float32 weights.
    """
    scale = in_size / out_size
    src = (index.float() + 0.5) * scale - 0.5  # not clamped at 0 for cubic (as PyTorch)
    first = src.floor()
    t = src - first
    a = _CUBIC_A

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = torch.stack((far(t + 1), near(t), near(1 - t), far(2 - t)), dim=-1)
    offsets = torch.arange(-1, 3, device=index.device)
    taps = (first.long()[..., None] + offsets).clamp(0, in_size - 1)
    return taps, weights


def box_depth_median_lowres(
    depth_lowres: torch.Tensor,
    output_hw: tuple[int, int],
    boxes: torch.Tensor,
    grid: int = DEFAULT_GRID,
) -> torch.Tensor:
    """Like :func:`box_depth_median` on the bicubic upsampling of a low-resolution map.

    The full-resolution map ``F.interpolate(depth_lowres[None, None], output_hw,
    mode="bicubic", align_corners=False)`` is never built: only the sampled pixels are
    interpolated. Equal to :func:`box_depth_median` on that map up to float rounding (~1e-6
    relative). Lets the engine skip the full-size upsample when nobody reads the depth image.

    Args:
        depth_lowres: (h, w) network-resolution map.
        output_hw: (H, W) of the image the boxes refer to.
        boxes: (N, 4) xyxy boxes in pixels of the (H, W) image.
        grid: Samples per box side.

    Returns:
        (N,) float32 medians, NaN for boxes that cover no pixel.
    """
    if depth_lowres.ndim != 2:
        raise ValueError(f"depth_lowres must be (h, w), got {tuple(depth_lowres.shape)}")
    height, width = output_hw
    h, w = depth_lowres.shape
    rows, cols, valid, count = _box_lattice(boxes, height, width, grid)
    low = depth_lowres.float()
    # As PyTorch's kernel: along x first, then along y. The x pass is done for every output
    # column once (h x W, cheap); the y pass only for the sampled pixels.
    col_taps, col_w = _cubic_taps(torch.arange(width, device=low.device), w, width)  # (W, 4)
    along_x = (low[:, col_taps] * col_w).sum(-1)  # (h, W)
    row_taps, row_w = _cubic_taps(rows, h, height)  # (N, grid, 4)
    taps = along_x[row_taps[:, :, None, :], cols[:, None, :, None]]  # (N, gr, gc, 4), one gather
    values = (taps * row_w[:, :, None, :]).sum(-1)
    return _median_of_samples(values.flatten(1), valid, count)
