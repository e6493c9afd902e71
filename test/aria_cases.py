"""What the rectification tests share: the Aria sample recording and a numpy bilinear remap.

The recordings are in ``<repository>/../shared/data/aria`` (never copied into the repository),
or where ``ARIA_DATA_DIR`` says; tests that need them skip with the reason when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: ``<repository>/../shared/data/aria``; ``ARIA_DATA_DIR`` names another place (a worktree).
ARIA_DATA = Path(os.environ.get("ARIA_DATA_DIR") or ROOT.parent / "shared" / "data" / "aria")
GEN1_VRS = ARIA_DATA / "gen1_adt_sample.vrs"
RGB_STREAM = "214-1"

#: The factory calibration of the sample's RGB camera (``projection_params()``: f, cx, cy,
#: k0..k5, p0, p1, s0..s3), for tests that run without projectaria-tools.
RGB_PARAMS = (
    610.9410078676575, 715.1148341104505, 716.7147122529825, 0.4060356696288849,
    -0.489948419647729, 0.1745652818132035, 1.132983686620576, -1.701635218233742,
    0.6511555293441647, 0.0006211469747214578, 1.932200015697112e-05, -1.485525650871087e-05,
    0.0002601225712292815, -0.0006582109778598294, 3.761395141407565e-05,
)  # fmt: skip


def fisheye624_fields(params: Any, width: int, height: int) -> dict[str, Any]:
    """CameraInfo fields of a Fisheye624 camera by the package's convention."""
    f, cx, cy = (float(v) for v in params[:3])
    return {
        "distortion_model": "fisheye624",
        "k": [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
        "d": [float(v) for v in params[3:]],
        "width": width,
        "height": height,
    }


def aria_provider() -> Any:
    """A projectaria-tools VRS data provider of the Gen1 sample, or a skip saying why not."""
    if not GEN1_VRS.is_file():
        pytest.skip(f"the Aria sample recording is absent ({GEN1_VRS})")
    data_provider = pytest.importorskip("projectaria_tools.core.data_provider")
    return data_provider.create_vrs_data_provider(str(GEN1_VRS))


def remap_bilinear(image: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``grid``'s (x, y) source pixels, bilinearly, zeros outside.

    The reference of the engine's sampling: pixel centres at integers, a neighbour outside the
    image counts as 0, a NaN coordinate gives 0. Returns float64 (H', W', C).
    """
    img = image.astype(np.float64)
    if img.ndim == 2:
        img = img[..., None]
    h, w = img.shape[:2]
    x, y = grid[..., 0].astype(np.float64), grid[..., 1].astype(np.float64)
    valid = np.isfinite(x) & np.isfinite(y)
    x, y = np.where(valid, x, -10.0), np.where(valid, y, -10.0)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    out = np.zeros((*x.shape, img.shape[2]))
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                           (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        xi, yi = (x0 + dx).astype(int), (y0 + dy).astype(int)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        values = img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
        out += np.where(inside[..., None], values, 0.0) * weight
    return out
