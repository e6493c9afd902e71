"""Box-depth fusion against an exact NumPy median."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aria_perception.engine.fusion import (
    DEFAULT_GRID,
    box_depth_median,
    box_depth_median_lowres,
    box_pixel_ranges,
)


def _reference(depth: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Exact median of every pixel each box overlaps (floor/ceil, clipped), NaN when none."""
    height, width = depth.shape
    out = []
    for x1, y1, x2, y2 in boxes.astype(np.float64):
        r0, r1 = (int(np.clip(v, 0, height)) for v in (np.floor(y1), np.ceil(y2)))
        c0, c1 = (int(np.clip(v, 0, width)) for v in (np.floor(x1), np.ceil(x2)))
        patch = depth[r0:r1, c0:c1]
        out.append(np.median(patch) if patch.size else np.nan)
    return np.asarray(out, dtype=np.float32)


def _random_boxes(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    """Random boxes plus the awkward ones: edge-touching, tiny, empty, outside, inverted."""
    x = np.sort(rng.uniform(-0.2 * width, 1.2 * width, (n, 2)), axis=1)
    y = np.sort(rng.uniform(-0.2 * height, 1.2 * height, (n, 2)), axis=1)
    special = [
        [0, 0, width, height],  # whole image
        [0, 0, 1, 1],  # corner pixel
        [width - 0.5, height - 0.5, width, height],  # last pixel, sub-pixel box
        [2.2, 1.3, 2.4, 1.9] if width > 3 and height > 2 else [0, 0, 0.3, 0.3],  # tiny
        [0, 0, width, 1],  # top row
        [width - 1, 0, width, height],  # last column
        [1.0, 1.0, 1.0, 5.0],  # zero width: empty
        [width + 1, 0, width + 9, 4],  # right of the image: empty
        [-9, -9, -1, -1],  # above-left: empty
        [5, 5, 2, 2],  # inverted: empty
        [-3.7, -2.1, width + 4.2, height + 0.5],  # larger than the image
    ]
    return np.concatenate([np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1), special]).astype(
        np.float32
    )


@pytest.mark.parametrize(
    ("height", "width", "seed"), [(60, 50, 0), (37, 64, 1), (1, 9, 2), (8, 1, 3)]
)
def test_exact_median_matches_numpy(height: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    depth = rng.normal(size=(height, width)).astype(np.float32)
    depth[: height // 2, : width // 3] = 0.25  # ties inside boxes
    boxes = _random_boxes(rng, height, width, 60)
    got = box_depth_median(torch.from_numpy(depth), torch.from_numpy(boxes), grid=64).numpy()
    np.testing.assert_array_equal(got, _reference(depth, boxes))
    assert np.isnan(got[-5:-1]).all()  # the four empty boxes
    assert not np.isnan(got[-11:-5]).any()


def test_boxes_within_grid_are_exact_on_a_large_map() -> None:
    rng = np.random.default_rng(4)
    depth = rng.uniform(0, 100, (480, 700)).astype(np.float32)
    x1 = rng.uniform(-10, 690, 80)
    y1 = rng.uniform(-10, 470, 80)
    w = rng.uniform(0.1, DEFAULT_GRID - 1, 80)
    h = rng.uniform(0.1, DEFAULT_GRID - 1, 80)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], 1).astype(np.float32)
    got = box_depth_median(torch.from_numpy(depth), torch.from_numpy(boxes)).numpy()
    np.testing.assert_array_equal(got, _reference(depth, boxes))


@pytest.mark.parametrize("smooth", [True, False])
def test_large_boxes_within_stated_rank_tolerance(smooth: bool) -> None:
    # The real map is a bicubic upsampling of a 256x256 network output (smooth); pure noise is
    # the worst case for a subsample. Either way the result must sit at the middle rank of the
    # box's pixels within +-0.03.
    gen = torch.Generator().manual_seed(5)
    if smooth:
        low = torch.rand(1, 1, 256, 256, generator=gen)
        depth = F.interpolate(low, (1000, 1200), mode="bicubic", align_corners=False)[0, 0]
    else:
        depth = torch.rand(1000, 1200, generator=gen)
    boxes = torch.tensor(
        [[0, 0, 1200, 1000], [100.5, 50.2, 700.9, 999.0], [300, 300, 420, 900], [0, 0, 65, 500]],
        dtype=torch.float32,
    )
    got = box_depth_median(depth, boxes).numpy()
    exact = _reference(depth.numpy(), boxes.numpy())
    d = depth.numpy()
    for (x1, y1, x2, y2), value in zip(boxes.numpy(), got, strict=True):
        patch = d[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))]
        rank = float((patch <= value).mean())
        assert 0.47 <= rank <= 0.53, (rank, value)
    value_range = d.max() - d.min()
    assert np.abs(got - exact).max() <= 0.03 * value_range


def test_subsampled_result_is_not_trivially_exact() -> None:
    # Guard for the tolerance test above: a big box on noise is really subsampled.
    depth = torch.rand(1000, 1200, generator=torch.Generator().manual_seed(6))
    boxes = torch.tensor([[0, 0, 1200, 1000]], dtype=torch.float32)
    got = box_depth_median(depth, boxes, grid=8).numpy()
    assert got[0] != _reference(depth.numpy(), boxes.numpy())[0]


@pytest.mark.parametrize(("low_hw", "out_hw"), [((48, 64), (333, 450)), ((32, 32), (32, 32))])
def test_lowres_variant_matches_the_upsampled_map(
    low_hw: tuple[int, int], out_hw: tuple[int, int]
) -> None:
    gen = torch.Generator().manual_seed(7)
    low = torch.rand(low_hw, generator=gen) * 10
    full = F.interpolate(low[None, None], out_hw, mode="bicubic", align_corners=False)[0, 0]
    rng = np.random.default_rng(8)
    boxes = torch.from_numpy(_random_boxes(rng, out_hw[0], out_hw[1], 50))
    for grid in (8, DEFAULT_GRID):
        expected = box_depth_median(full, boxes, grid=grid)
        got = box_depth_median_lowres(low, out_hw, boxes, grid=grid)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_lowres_variant_catches_a_wrong_size() -> None:
    # Guard: sampling as if the image were a different size must not pass the same check.
    low = torch.rand(48, 64, generator=torch.Generator().manual_seed(9))
    full = F.interpolate(low[None, None], (333, 450), mode="bicubic", align_corners=False)[0, 0]
    boxes = torch.tensor([[10.0, 20.0, 200.0, 150.0], [300.0, 100.0, 450.0, 333.0]])
    expected = box_depth_median(full, boxes)
    wrong = box_depth_median_lowres(low, (340, 450), boxes)
    assert not torch.allclose(wrong, expected, rtol=1e-5, atol=1e-5)


def test_no_detections_and_dtypes() -> None:
    depth = torch.rand(40, 30)
    none = torch.zeros((0, 4))
    assert box_depth_median(depth, none).shape == (0,)
    assert box_depth_median_lowres(depth, (80, 60), none).shape == (0,)
    half = depth.half()
    boxes = torch.tensor([[0.0, 0.0, 30.0, 40.0], [3.5, 2.5, 9.0, 12.0]])
    got = box_depth_median(half, boxes)
    assert got.dtype == torch.float32
    expected = _reference(half.float().numpy(), boxes.numpy())
    np.testing.assert_array_equal(got.numpy(), expected)


def test_pixel_ranges() -> None:
    boxes = torch.tensor([[2.0, 3.0, 5.0, 7.0], [2.1, 3.9, 4.9, 7.01], [-1.0, -1.0, 99.0, 99.0]])
    r0, r1, c0, c1 = box_pixel_ranges(boxes, 10, 20)
    assert r0.tolist() == [3, 3, 0] and r1.tolist() == [7, 8, 10]
    assert c0.tolist() == [2, 2, 0] and c1.tolist() == [5, 5, 20]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="depth must be"):
        box_depth_median(torch.rand(1, 4, 4), torch.zeros((1, 4)))
    with pytest.raises(ValueError, match="grid"):
        box_depth_median(torch.rand(4, 4), torch.zeros((1, 4)), grid=0)
    with pytest.raises(ValueError, match="depth_lowres"):
        box_depth_median_lowres(torch.rand(4), (8, 8), torch.zeros((1, 4)))


@pytest.mark.gpu
def test_cuda_matches_cpu_without_host_sync() -> None:
    rng = np.random.default_rng(10)
    depth = torch.rand(1408, 1408, generator=torch.Generator().manual_seed(10))
    boxes = torch.from_numpy(_random_boxes(rng, 1408, 1408, 100))
    low = torch.rand(256, 256, generator=torch.Generator().manual_seed(11))
    expected = box_depth_median(depth, boxes)
    expected_low = box_depth_median_lowres(low, (1408, 1408), boxes)
    depth_gpu, boxes_gpu, low_gpu = depth.cuda(), boxes.cuda(), low.cuda()
    box_depth_median(depth_gpu, boxes_gpu)  # warm-up (lazy CUDA init syncs)
    box_depth_median_lowres(low_gpu, (1408, 1408), boxes_gpu)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = box_depth_median(depth_gpu, boxes_gpu)
        got_low = box_depth_median_lowres(low_gpu, (1408, 1408), boxes_gpu)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(got.cpu(), expected, equal_nan=True)
    torch.testing.assert_close(got_low.cpu(), expected_low, rtol=1e-5, atol=1e-5, equal_nan=True)
