"""Fixed-shape, sync-free candidate selection and greedy NMS (CUDA-graph capturable).

torchvision's NMS and a ``nonzero`` over the confidence mask each stop the host until the GPU
has caught up: two syncs per frame in the middle of the detector's stream, and a run of small
kernels launched one by one after each. Here every tensor has a shape fixed by the settings
(``k`` candidates, ``max_out`` detections), so the whole post-processing can live in one CUDA
graph with the network.

Exactness: the result equals ``torchvision.ops.nms`` (greedy, best score first, suppress when
IoU > threshold) whenever the two flags say so: no more than ``k`` candidates passed the
filter, and the fixed-point iteration below converged. The caller checks both flags on the host
after the frame's one sync and falls back to the exact variable-size path when either fails.

Greedy NMS as a fixed point: with candidates sorted by score and ``S[j, i]`` = "j outscores i
and IoU(j, i) > t", greedy keeps ``x[i] = valid[i] and not any_j(S[j, i] and x[j])``. Component
i depends only on j < i, so the map has exactly one fixed point, the greedy result, and
iterating from ``x = valid`` reaches it in at most (longest suppression chain + 1) steps. One
extra step tells whether a fixed point was reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "FixedDetections",
    "box_iou_matrix",
    "compact_rows",
    "greedy_nms_fixed",
    "select_top_candidates",
]

#: Fixed-point iterations run in the graph. Suppression chains (a box suppressed by one that
#: is itself suppressed, ...) are short in real detections; the dense random-weight test
#: detectors need 9 to 16 steps. A longer chain is detected by the convergence flag and
#: recomputed exactly.
NMS_ITERATIONS = 16


@dataclass(frozen=True)
class FixedDetections:
    """Detections in fixed-size tensors (rows past ``count`` are padding).

    Attributes:
        boxes: (M, 4) float32 xyxy.
        scores: (M,) float32.
        class_ids: (M,) int64.
        count: () int64 number of real rows (at most M).
        candidates: () int64 number of boxes that passed the confidence and class filter.
        exact: () bool: the result equals the variable-size path's (no candidate was cut and
            the NMS iteration converged).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor
    count: torch.Tensor
    candidates: torch.Tensor
    exact: torch.Tensor


def select_top_candidates(
    scores: torch.Tensor, passed: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` best-scoring entries among those that ``passed``, best first.

    Args:
        scores: (A,) float scores, all >= 0 (sigmoid outputs).
        passed: (A,) bool filter (confidence, classes).
        k: Candidates kept (at most A).

    Returns:
        ``index`` (k,) int64 into the A entries, ``valid`` (k,) bool (the entry passed), and
        ``candidates`` () int64, how many passed in all (more than k: some were cut).
    """
    masked = torch.where(passed, scores, torch.full_like(scores, -1.0))
    top, index = masked.topk(k, sorted=True)
    return index, top >= 0, passed.sum()


def box_iou_matrix(boxes: torch.Tensor) -> torch.Tensor:
    """(K, K) IoU of xyxy boxes, with torchvision's NMS arithmetic (float32)."""
    x1, y1, x2, y2 = boxes.float().unbind(1)
    area = (x2 - x1) * (y2 - y1)
    width = torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :])
    height = torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :])
    inter = width.clamp(min=0) * height.clamp(min=0)
    return inter / (area[:, None] + area[None, :] - inter)


def greedy_nms_fixed(
    boxes: torch.Tensor,
    valid: torch.Tensor,
    iou_threshold: torch.Tensor | float,
    iterations: int = NMS_ITERATIONS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy NMS of score-sorted boxes by fixed-point iteration (see the module docstring).

    Args:
        boxes: (K, 4) xyxy, best score first (class offsets already added for class-aware NMS).
        valid: (K,) bool: which rows are real candidates.
        iou_threshold: suppress when IoU > this (a 0-d tensor keeps it changeable in a graph).
        iterations: Fixed-point steps before the convergence check.

    Returns:
        ``keep`` (K,) bool and ``converged`` () bool; ``keep`` is greedy NMS's result when
        ``converged`` is true.
    """
    k = boxes.shape[0]
    # On CUDA the matrix is half precision: its entries are 0 or 1 and a step only asks
    # whether a count is zero, which rounding cannot change (a sum of ones never rounds to
    # 0); it halves the bytes each step reads. Row i lists the earlier boxes that suppress i.
    dtype = torch.float16 if boxes.is_cuda else torch.float32
    earlier = torch.ones(k, k, dtype=torch.bool, device=boxes.device).tril_(-1)  # j < i
    suppressed_by = ((box_iou_matrix(boxes) > iou_threshold) & earlier).to(dtype)
    # One step in two kernels: y = valid - suppressed_by @ keep, keep = max(y, 0). A valid
    # box with no kept suppressor gets 1; every other entry (invalid boxes included) 0.
    base = valid.to(dtype)

    def step(keep: torch.Tensor) -> torch.Tensor:
        return torch.addmv(base, suppressed_by, keep, alpha=-1).clamp_(min=0)

    keep = base
    for _ in range(iterations):
        keep = step(keep)
    after = step(keep)
    return after > 0, (after == keep).all()


def compact_rows(keep: torch.Tensor, max_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each kept row goes in a (max_out + 1)-row output, and how many rows are real.

    Kept rows go to 0, 1, 2 ... in order; everything else (and kept rows past ``max_out``) to
    the spare row ``max_out``, which the caller drops.
    """
    rank = keep.long().cumsum(0) - 1
    take = keep & (rank < max_out)
    slot = torch.where(take, rank, torch.full_like(rank, max_out))
    return slot, take.sum()
