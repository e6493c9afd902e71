"""Fixed-shape NMS: equal to torchvision's greedy NMS whenever its flags say so."""

from __future__ import annotations

import pytest
import torch
import torchvision

from aria_perception.engine import nms


def _clustered_boxes(seed: int, n: int, clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes jittered around a few centres (many overlaps), distinct scores best first."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(clusters, 2, generator=gen) * 600
    which = torch.randint(0, clusters, (n,), generator=gen)
    xy = centres[which] + torch.randn(n, 2, generator=gen) * 12
    wh = 30 + torch.rand(n, 2, generator=gen) * 60
    boxes = torch.cat((xy - wh / 2, xy + wh / 2), 1)
    scores = torch.randperm(n, generator=gen).float() / n + 0.01
    order = scores.argsort(descending=True)
    return boxes[order], scores[order]


_DEVICES = [
    "cpu",
    # On CUDA the suppression matrix is half precision: the same result is required.
    pytest.param("cuda", marks=pytest.mark.gpu),
]


@pytest.mark.parametrize("device", _DEVICES)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_converged_result_equals_torchvision(device: str, seed: int, iou: float) -> None:
    boxes, scores = _clustered_boxes(seed, n=300, clusters=12)
    valid = torch.ones(300, dtype=torch.bool)
    valid[250:] = False  # padding rows never count
    keep, converged = nms.greedy_nms_fixed(
        boxes.to(device), valid.to(device), torch.tensor(iou, device=device), iterations=64
    )
    assert bool(converged)
    expected = torchvision.ops.nms(boxes[:250], scores[:250], iou).sort().values
    got = keep.cpu().nonzero().squeeze(1)
    assert torch.equal(got, expected)
    assert 5 < len(got) < 240  # clusters overlap, but not everything is suppressed


def test_a_long_chain_is_flagged_until_enough_iterations() -> None:
    # Each box overlaps only its neighbours (IoU 0.25), scores fall along the chain: greedy
    # keeps every other box, and settling box i takes about i fixed-point steps.
    n = 12
    x = torch.arange(n, dtype=torch.float32) * 6
    boxes = torch.stack((x, torch.zeros(n), x + 10, torch.full((n,), 10.0)), 1)
    valid = torch.ones(n, dtype=torch.bool)
    expected = torchvision.ops.nms(boxes, torch.linspace(1, 0.1, n), 0.2).sort().values
    assert torch.equal(expected, torch.arange(0, n, 2))
    keep, converged = nms.greedy_nms_fixed(boxes, valid, 0.2, iterations=3)
    assert not bool(converged)
    keep, converged = nms.greedy_nms_fixed(boxes, valid, 0.2, iterations=n)
    assert bool(converged) and torch.equal(keep.nonzero().squeeze(1), expected)


def test_iou_matrix_matches_torchvision() -> None:
    boxes, _ = _clustered_boxes(7, n=64, clusters=4)
    torch.testing.assert_close(nms.box_iou_matrix(boxes), torchvision.ops.box_iou(boxes, boxes))


def test_candidates_are_the_best_that_passed_and_counted() -> None:
    scores = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.95, 0.2])
    passed = torch.tensor([True, False, True, True, False, True])
    index, valid, count = nms.select_top_candidates(scores, passed, 3)
    assert index.tolist() == [0, 2, 3] and valid.all() and int(count) == 4
    index, valid, count = nms.select_top_candidates(scores, passed, 6)
    assert index[:4].tolist() == [0, 2, 3, 5] and valid.tolist() == [True] * 4 + [False] * 2


def test_compact_rows_keeps_order_and_caps() -> None:
    keep = torch.tensor([False, True, True, False, True, True])
    slot, count = nms.compact_rows(keep, max_out=3)
    assert slot.tolist() == [3, 0, 1, 3, 2, 3] and int(count) == 3
