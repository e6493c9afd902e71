"""YOLO detector: parity with ``YOLO.predict``, letterbox, layouts, thresholds and settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from yolo_helpers import (
    CONF,
    IOU,
    MAX_DET,
    assert_same_detections,
    detection_rows,
    predict_reference,
    sample_image,
    unmatched,
)

from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.letterbox import Letterbox, letterbox_geometry, scale_boxes
from aria_perception.engine.runtime import Runtime
from aria_perception.errors import ConfigError
from aria_perception.records import EngineConfig

SHAPES = [(480, 640), (512, 512), (1408, 1408), (300, 700)]


@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_matches_yolo_predict(
    detector: YoloDetector,
    reference,
    height: int,
    width: int,
) -> None:
    rgb = sample_image(height, width, seed=height + width)
    expected = predict_reference(reference, rgb)
    got = detection_rows(detector.detect(torch.from_numpy(rgb)))
    # Not a vacuous comparison: many detections of several classes and sizes.
    assert len(expected) >= 20 and len(np.unique(expected[:, 5])) >= 3
    assert len(np.unique(np.round(expected[:, 2] - expected[:, 0]))) >= 10
    assert_same_detections(expected, got, CONF, MAX_DET)
    # Outputs are in input pixels and clipped to the image.
    assert (got[:, [0, 2]] >= 0).all() and (got[:, [0, 2]] <= width).all()
    assert (got[:, [1, 3]] >= 0).all() and (got[:, [1, 3]] <= height).all()
    assert (np.diff(got[:, 4]) <= 0).all()  # best first


def test_matches_yolo_predict_with_class_filter_and_low_confidence(
    detector: YoloDetector,
    reference,
) -> None:
    rgb = sample_image(480, 640, seed=3)
    classes, counts = np.unique(predict_reference(reference, rgb)[:, 5], return_counts=True)
    keep = [int(c) for c in classes[np.argsort(counts)[-2:]]]
    expected = predict_reference(reference, rgb, conf=0.001, max_det=25, classes=keep)
    try:
        detector.set_thresholds(confidence=0.001, classes=keep)
        detector.max_detections = 25
        got = detection_rows(detector.detect(torch.from_numpy(rgb)))
    finally:
        detector.set_thresholds(confidence=CONF, classes=())
        detector.max_detections = MAX_DET
    assert len(expected) == 25 and set(np.unique(got[:, 5])) == set(keep)
    assert_same_detections(expected, got, 0.001, 25)


def test_parity_check_can_fail(detector: YoloDetector, reference) -> None:
    rgb = sample_image(480, 640, seed=4)
    expected = predict_reference(reference, rgb)
    got = detection_rows(detector.detect(torch.from_numpy(rgb)))
    assert_same_detections(expected, got, CONF, MAX_DET)
    shifted = got.copy()
    shifted[:, [0, 2]] += 1.5
    with pytest.raises(AssertionError):
        assert_same_detections(expected, shifted, CONF, MAX_DET)
    try:
        detector.set_thresholds(iou=0.7)
        looser = detection_rows(detector.detect(torch.from_numpy(rgb)))
    finally:
        detector.set_thresholds(iou=IOU)
    with pytest.raises(AssertionError):
        assert_same_detections(expected, looser, CONF, MAX_DET)


@pytest.mark.parametrize(
    ("height", "width"),
    [(480, 640), (512, 512), (1408, 1408), (300, 700), (7, 5), (1080, 1920), (1280, 960),
     (641, 639), (3, 1000), (1, 1)],
)  # fmt: skip
def test_letterbox_is_bit_exact_with_ultralytics(height: int, width: int) -> None:
    from ultralytics.data.augment import LetterBox

    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    padded = LetterBox((640, 640), auto=True, stride=32)(image=rgb[..., ::-1].copy())
    expected = torch.from_numpy(padded[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    for channels_last in (False, True):
        got = Letterbox(640, 32, channels_last=channels_last)(torch.from_numpy(rgb))
        assert got.shape == expected.shape
        assert torch.equal(got, expected)
        assert got.is_contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )


@pytest.mark.parametrize(("height", "width"), [(480, 640), (1408, 1408), (300, 700), (7, 5)])
def test_box_scaling_matches_scale_boxes(height: int, width: int) -> None:
    from ultralytics.utils import ops

    geo = letterbox_geometry(height, width, 640, 32)
    gen = torch.Generator().manual_seed(height)
    boxes = torch.rand(50, 4, generator=gen) * torch.tensor(geo.padded_hw * 2).flip(0) * 1.1
    expected = ops.scale_boxes(geo.padded_hw, boxes.clone(), (height, width))
    torch.testing.assert_close(scale_boxes(boxes.clone(), geo), expected)


def test_anchor_grid_of_each_shape_stays_alive(detector: YoloDetector) -> None:
    # A CUDA graph captured for one shape keeps pointing at that shape's anchor grid, so
    # switching shapes must not replace (and free) it.
    a = detector.preprocess(torch.from_numpy(sample_image(480, 640, seed=12)))
    b = detector.preprocess(torch.from_numpy(sample_image(1408, 1408, seed=13)))
    raw_a = detector.forward(a)
    grid_a = detector.model.model[-1].anchors
    raw_b = detector.forward(b)
    assert detector.model.model[-1].anchors is not grid_a
    assert torch.equal(detector.forward(a), raw_a)
    assert detector.model.model[-1].anchors is grid_a
    assert torch.equal(detector.forward(b), raw_b)


def test_channels_last_network_pools_in_nchw_and_matches_the_plain_layout(
    saved: tuple[Path, torch.nn.Module], detector: YoloDetector
) -> None:
    # The channels-last max pool kernel is slow on CUDA, so channels-last detectors run their
    # pools (SPPF) in NCHW; the network's output must not change.
    last = YoloDetector(saved[0], confidence=CONF, iou=IOU, channels_last=True)
    pools = [m for m in last.model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    wrapped = [m for m in last.model.modules() if type(m).__name__ == "_ContiguousMaxPool"]
    assert len(pools) == len(wrapped) == 1  # YOLOv8's SPPF has one pool, applied three times
    x = torch.randn(1, 128, 20, 20).contiguous(memory_format=torch.channels_last)
    out = wrapped[0](x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, pools[0](x))
    image = torch.from_numpy(sample_image(480, 640, seed=3))
    expected = detector.forward(detector.preprocess(image))
    got = last.forward(last.preprocess(image))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)


def test_thresholds_and_settings(detector: YoloDetector) -> None:
    image = torch.from_numpy(sample_image(300, 700, seed=1000))
    base = detector.detect(image)
    try:
        detector.set_thresholds(confidence=0.5)
        high = detector.detect(image)
        assert 0 < len(high) < len(base) and (high.scores > 0.5).all()
        detector.set_thresholds(confidence=1.0)
        none = detector.detect(image)
        assert len(none) == 0 and none.boxes.shape == (0, 4)
        assert detector.iou == IOU  # untouched
    finally:
        detector.set_thresholds(confidence=CONF)
    for bad in ({"confidence": 1.5}, {"iou": -0.1}, {"classes": [80]}, {"classes": [-1]}):
        with pytest.raises(ConfigError, match="detector."):
            detector.set_thresholds(**bad)
    assert detector.confidence == CONF and detector.classes == ()
    assert detector.class_ids(["5", "0"]) == (5, 0)  # this checkpoint's names are "0".."79"
    with pytest.raises(ConfigError, match="unknown class name.*'person'"):
        detector.class_ids(["person"])


def test_bad_settings(saved: tuple[Path, torch.nn.Module]) -> None:
    with pytest.raises(ConfigError, match="detector.image_size"):
        YoloDetector(saved[0], image_size=600)
    with pytest.raises(ConfigError, match="detector.max_detections"):
        YoloDetector(saved[0], max_detections=0)
    with pytest.raises(ConfigError, match="precision"):
        YoloDetector(saved[0], dtype="int8")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        Letterbox(640, 32)(torch.zeros((10, 10, 4), dtype=torch.uint8))


def test_from_config_applies_the_engine_settings(saved: tuple[Path, torch.nn.Module]) -> None:
    config = EngineConfig(
        detector_weights=str(saved[0]),
        detector_image_size=320,
        confidence=0.3,
        iou=0.6,
        max_detections=7,
        classes=("5", "2"),
    )
    det = YoloDetector.from_config(config, Runtime(torch.device("cpu"), torch.float32))
    assert det.weights_path == saved[0].resolve() and det.weights_status == "official"
    assert (det.image_size, det.max_detections) == (320, 7)
    assert (det.confidence, det.iou, det.classes) == (0.3, 0.6, (5, 2))
    assert det.dtype == torch.float32 and not det.channels_last
    with pytest.raises(ConfigError, match="unknown class name.*'person'"):
        YoloDetector.from_config(
            config.replace(classes=("person",)), Runtime(torch.device("cpu"), torch.float32)
        )


# ---------------------------------------------------------------- GPU (run on the device)
@pytest.mark.gpu
@pytest.mark.parametrize(("height", "width"), [(1408, 1408), (480, 640)])
def test_cuda_fp32_matches_yolo_predict(
    saved: tuple[Path, torch.nn.Module],
    reference,
    height: int,
    width: int,
) -> None:
    det = YoloDetector(saved[0], device="cuda", confidence=CONF, iou=IOU, max_detections=MAX_DET)
    rgb = sample_image(height, width, seed=8)
    expected = predict_reference(reference, rgb, device="cuda:0")
    got = detection_rows(det.detect(torch.from_numpy(rgb).cuda()))
    assert_same_detections(expected, got, CONF, MAX_DET)


@pytest.mark.gpu
@pytest.mark.parametrize(("height", "width"), [(1408, 1408), (480, 640)])
def test_cuda_fp16_agrees_with_fp32(
    saved: tuple[Path, torch.nn.Module], height: int, width: int
) -> None:
    # Stated fp16 tolerance (random weights of this file; measured on CPU fp16, which is no
    # better than CUDA's): raw scores within 0.03; raw box coordinates (network pixels) within
    # 1.5 px for 99 % of them and 8 px for all. Detections: at least 80 % of the fp32 ones
    # clear of the threshold have an fp16 partner within 2 px / 0.02 / same class; the rest
    # are NMS picking a neighbouring anchor of nearly equal score, which random weights are
    # full of.
    settings = {"device": "cuda", "confidence": CONF, "iou": IOU, "max_detections": MAX_DET}
    fp32 = YoloDetector(saved[0], dtype="fp32", **settings)
    fp16 = YoloDetector(saved[0], dtype="fp16", channels_last=True, **settings)
    image = torch.from_numpy(sample_image(height, width, seed=9)).cuda()
    raw32 = fp32.forward(fp32.preprocess(image))
    raw16 = fp16.forward(fp16.preprocess(image)).float()
    assert (raw32[0, 4:] - raw16[0, 4:]).abs().max() <= 0.03
    box_err = (raw32[0, :4] - raw16[0, :4]).abs().flatten()
    assert torch.quantile(box_err, 0.99) <= 1.5 and box_err.max() <= 8.0
    a, b = detection_rows(fp32.detect(image)), detection_rows(fp16.detect(image))
    for x, y in ((a, b), (b, a)):
        sure = x[x[:, 4] > CONF + 0.02]
        assert len(sure) >= 20
        assert len(unmatched(sure, y, 2.0, 0.02)) <= 0.2 * len(sure)


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager_without_host_sync(
    saved: tuple[Path, torch.nn.Module],
) -> None:
    det = YoloDetector(saved[0], device="cuda", dtype="fp16", channels_last=True)
    shapes = [(1408, 1408), (480, 640)]
    statics = [torch.from_numpy(sample_image(h, w, seed=10)).cuda() for h, w in shapes]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up outside the graph (cuDNN autotune, tables, anchors)
            for static in statics:
                det.forward(det.preprocess(static))
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for static in statics:  # the capturable stages never sync with the host
            det.forward(det.preprocess(static))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    graphs, outputs = [], []
    for static in statics:  # one graph per input shape, as the engine does
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs.append(det.forward(det.preprocess(static)))
        graphs.append(graph)
    for (h, w), static, graph, raw_static in zip(shapes, statics, graphs, outputs, strict=True):
        other = torch.from_numpy(sample_image(h, w, seed=11)).cuda()
        static.copy_(other)
        graph.replay()
        eager = det.forward(det.preprocess(other))
        torch.testing.assert_close(raw_static, eager, rtol=1e-3, atol=1e-3)
        a, b = (
            detection_rows(det.postprocess(raw_static, (h, w))),
            detection_rows(det.postprocess(eager, (h, w))),
        )
        assert_same_detections(a, b, det.confidence, det.max_detections)
