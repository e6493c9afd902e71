"""YOLO post-processing: the fixed-shape, graph-capturable path against the exact one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from yolo_helpers import CONF, IOU, MAX_DET, detection_rows, sample_image

from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.yolo_post import DetectionTensors


def fixed_rows(fixed) -> np.ndarray:
    n = int(fixed.count)
    return detection_rows(DetectionTensors(fixed.boxes[:n], fixed.scores[:n], fixed.class_ids[:n]))


@pytest.mark.parametrize(("height", "width"), [(480, 640), (300, 700)])
def test_fixed_postprocess_equals_the_exact_path(
    detector: YoloDetector, height: int, width: int
) -> None:
    image = torch.from_numpy(sample_image(height, width, seed=height + width))
    raw = detector.forward(detector.preprocess(image))
    exact = detection_rows(detector.postprocess(raw, (height, width)))
    fixed = detector.postprocess_fixed(raw, (height, width))
    # Hundreds of overlapping candidates: a real test of the NMS, not of an empty list.
    assert 200 < int(fixed.candidates) <= 1024 and len(exact) >= 30
    assert bool(fixed.exact)
    np.testing.assert_array_equal(fixed_rows(fixed), exact)
    # Padding rows stay out of the count; the outputs keep their fixed shapes.
    assert fixed.boxes.shape == (MAX_DET, 4) and int(fixed.count) == len(exact)


def test_fixed_postprocess_follows_thresholds_and_caps(detector: YoloDetector) -> None:
    image = torch.from_numpy(sample_image(480, 640, seed=3))
    raw = detector.forward(detector.preprocess(image))
    classes, counts = np.unique(detection_rows(detector.postprocess(raw, (480, 640)))[:, 5],
                                return_counts=True)  # fmt: skip
    keep = [int(c) for c in classes[np.argsort(counts)[-3:]]]
    try:
        detector.set_thresholds(confidence=0.05, iou=0.3, classes=keep)
        detector.max_detections = 3
        exact = detection_rows(detector.postprocess(raw, (480, 640)))
        fixed = detector.postprocess_fixed(raw, (480, 640))
        assert bool(fixed.exact) and len(exact) == 3 and set(exact[:, 5]) <= set(keep)
        np.testing.assert_array_equal(fixed_rows(fixed), exact)
        # More candidates than the fixed size holds: flagged, the caller takes the exact path.
        few = detector.postprocess_fixed(raw, (480, 640), candidates=8)
        assert int(few.candidates) > 8 and not bool(few.exact)
    finally:
        detector.set_thresholds(confidence=CONF, iou=IOU, classes=())
        detector.max_detections = MAX_DET


@pytest.mark.gpu
def test_cuda_graph_of_fixed_postprocess_follows_threshold_changes(
    saved: tuple[Path, torch.nn.Module],
) -> None:
    det = YoloDetector(saved[0], device="cuda", dtype="fp32", confidence=CONF, iou=IOU,
                       max_detections=MAX_DET)  # fmt: skip
    image = torch.from_numpy(sample_image(480, 640, seed=12)).cuda()
    raw = det.forward(det.preprocess(image))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            det.postprocess_fixed(raw, (480, 640))
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # capture fails on any host sync inside
        fixed = det.postprocess_fixed(raw, (480, 640))
    present = (
        np.unique(detection_rows(det.postprocess(raw, (480, 640)))[:, 5]).astype(int).tolist()
    )
    for conf, iou, classes in ((CONF, IOU, ()), (0.2, 0.6, ()), (CONF, 0.3, present[:2])):
        det.set_thresholds(confidence=conf, iou=iou, classes=classes)
        graph.replay()
        torch.cuda.synchronize()
        expected = detection_rows(det.postprocess(raw, (480, 640)))
        assert bool(fixed.exact) and len(expected) > 0
        np.testing.assert_array_equal(fixed_rows(fixed), expected)


@pytest.mark.gpu
def test_cuda_engine_fixed_nms_equals_exact_engine(
    saved: tuple[Path, torch.nn.Module],
) -> None:
    """The engine's graph-captured NMS gives the exact path's detections, box depth included.

    A frame it cannot do exactly takes the exact path and still agrees.
    """
    from aria_perception.engine.engine import Engine
    from aria_perception.records import EngineConfig

    config = EngineConfig(
        device="cuda:0", precision="fp32", allow_random_weights=True,
        detector_weights=str(saved[0]), confidence=CONF, iou=IOU, max_detections=MAX_DET,
    )  # fmt: skip
    torch.manual_seed(0)
    fixed = Engine(config)
    exact = Engine(config, fixed_nms=False)
    exact.midas.load_state_dict(fixed.midas.state_dict())
    frames = [sample_image(480, 640, seed=s) for s in (20, 21)] + [
        sample_image(1408, 1408, seed=22)
    ]
    for rgb in frames:
        for _ in range(4):  # capture, then replay
            a = fixed.process(rgb, want_depth=False)
        b = exact.process(rgb, want_depth=False)
        assert len(b.detections.boxes) >= 20
        for name in ("boxes", "scores", "class_ids"):
            np.testing.assert_array_equal(
                getattr(a.detections, name), getattr(b.detections, name), err_msg=name
            )
        # Box depth reads each engine's own MiDaS output: the two agree to float32 rounding,
        # not bit for bit (measured on the H200: at most 2.4e-5 relative apart).
        np.testing.assert_allclose(a.detections.depth, b.detections.depth, rtol=1e-4, atol=0)
    captured, failed = fixed.graph_counts()
    assert captured > 0 and failed == 0
    # Both paths ran: the 1408x1408 frame has > 1024 candidates, 480x640 ones fit (mostly).
    assert fixed.fixed_post_frames >= 4 and fixed.exact_post_frames >= 4
    fixed.close()
    exact.close()
