"""Shared pieces of the YOLO tests: a discriminative random detector, images, comparisons."""

from __future__ import annotations

import numpy as np
import torch

from aria_perception.engine.yolo_post import DetectionTensors

CONF, IOU, MAX_DET = 0.1, 0.45, 300


def discriminative_weights(model: torch.nn.Module, seed: int) -> None:
    """Random weights under which a random YOLOv8 gives varied, image-dependent detections.

    With Ultralytics' own init the signal fades through the ~50 SiLU layers, every anchor
    scores about the class bias and all boxes have one size: near-ties everywhere, a parity
    test on that could pass for wrong code. A normal init that roughly keeps the activation
    scale (gain 1.5: activations stay below ~100, fine for fp16) plus scaled head outputs gives
    dozens of detections of many classes, sizes and scores.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            # DFL's fixed 0..15 projection has requires_grad=False: leave it alone.
            if isinstance(module, torch.nn.Conv2d) and module.weight.requires_grad:
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, 1.5 / fan_in**0.5, generator=gen)
                if module.bias is not None:
                    module.bias.zero_()
        head = model.model[-1]
        for branch in head.cv3:
            branch[-1].weight.mul_(0.15)
            branch[-1].bias.fill_(-5.0)
        for branch in head.cv2:
            branch[-1].weight.mul_(0.2)


def sample_image(height: int, width: int, seed: int) -> np.ndarray:
    """A structured RGB test image: gradients, stripes, rectangles, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    img = np.zeros((height, width, 3), np.int64)
    img[..., 0] = xx * 255 // max(width, 1)
    img[..., 1] = yy * 255 // max(height, 1)
    img[..., 2] = ((xx + yy) % 64) * 4
    for _ in range(6):
        y0, x0 = rng.integers(0, max(height - 20, 1)), rng.integers(0, max(width - 20, 1))
        h, w = rng.integers(10, max(height // 2, 11)), rng.integers(10, max(width // 2, 11))
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    img += rng.integers(-15, 15, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def predict_reference(reference, rgb: np.ndarray, **kwargs) -> np.ndarray:
    args = {"conf": CONF, "iou": IOU, "max_det": MAX_DET, "imgsz": 640, "device": "cpu"}
    result = reference.predict(rgb[..., ::-1].copy(), verbose=False, **{**args, **kwargs})[0]
    return result.boxes.data.cpu().numpy()  # (N, 6): x1, y1, x2, y2, score, class


def unmatched(a: np.ndarray, b: np.ndarray, box_tol: float, score_tol: float) -> list[int]:
    """Rows of ``a`` (N, 6) without a distinct partner in ``b``: same class, close box/score."""
    used = np.zeros(len(b), bool)
    missing = []
    for i, row in enumerate(a):
        box_err = np.abs(b[:, :4] - row[:4]).max(1) if len(b) else np.zeros(0)
        ok = (
            ~used
            & (b[:, 5] == row[5])
            & (box_err <= box_tol)
            & (np.abs(b[:, 4] - row[4]) <= score_tol)
        )
        if ok.any():
            used[np.flatnonzero(ok)[np.argmin(box_err[ok])]] = True
        else:
            missing.append(i)
    return missing


def assert_same_detections(
    expected: np.ndarray,
    got: np.ndarray,
    conf: float,
    max_det: int,
    box_tol: float = 1.0,
    score_tol: float = 1e-3,
) -> None:
    """Both ways: every detection of one has a partner in the other (class, box, score).

    Detections within ``score_tol`` of a cut-off (the confidence threshold, or the last kept
    score when ``max_det`` truncated a list) may rightly be on one side only, so those are not
    required to have a partner.
    """
    cut = conf
    if max(len(expected), len(got)) >= max_det:
        cut = max(cut, min(expected[:, 4].min(), got[:, 4].min()))
    exp_sure = expected[expected[:, 4] > cut + score_tol]
    got_sure = got[got[:, 4] > cut + score_tol]
    missing = unmatched(exp_sure, got, box_tol, score_tol)
    extra = unmatched(got_sure, expected, box_tol, score_tol)
    assert not missing, (
        f"{len(missing)} expected detections not found, e.g. {exp_sure[missing[0]]}"
    )
    assert not extra, f"{len(extra)} detections not expected, e.g. {got_sure[extra[0]]}"


def detection_rows(dets: DetectionTensors) -> np.ndarray:
    return np.concatenate(
        [
            dets.boxes.cpu().numpy(),
            dets.scores.cpu().numpy()[:, None],
            dets.class_ids.cpu().numpy()[:, None].astype(np.float32),
        ],
        1,
    )
