"""YOLO detector: parity with ``YOLO.predict``, weights handling, thresholds."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from aria_perception.engine.detector import YoloDetector
from aria_perception.engine.letterbox import Letterbox, letterbox_geometry, scale_boxes
from aria_perception.engine.yolo_post import DetectionTensors
from aria_perception.engine.yolo_weights import MODELS_ENV, find_weights
from aria_perception.errors import ConfigError, WeightsError

CONF, IOU, MAX_DET = 0.1, 0.45, 300


def _discriminative_weights(model: torch.nn.Module, seed: int) -> None:
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


def _image(height: int, width: int, seed: int) -> np.ndarray:
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


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A random YOLOv8n saved the way ultralytics saves models, and its in-memory twin."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolov8n.yaml")
    _discriminative_weights(yolo.model, seed=1)
    path = tmp_path_factory.mktemp("weights") / "rand_yolov8n.pt"
    yolo.save(path)
    twin = copy.deepcopy(yolo.model).half().float()  # Model.save stores fp16 tensors
    return path, twin


@pytest.fixture(scope="module")
def reference(saved: tuple[Path, torch.nn.Module]):
    from ultralytics import YOLO

    return YOLO(str(saved[0]))


@pytest.fixture(scope="module")
def detector(saved: tuple[Path, torch.nn.Module]) -> YoloDetector:
    return YoloDetector(saved[0], confidence=CONF, iou=IOU, max_detections=MAX_DET)


def _predict(reference, rgb: np.ndarray, **kwargs) -> np.ndarray:
    args = {"conf": CONF, "iou": IOU, "max_det": MAX_DET, "imgsz": 640, "device": "cpu"}
    result = reference.predict(rgb[..., ::-1].copy(), verbose=False, **{**args, **kwargs})[0]
    return result.boxes.data.cpu().numpy()  # (N, 6): x1, y1, x2, y2, score, class


def _unmatched(a: np.ndarray, b: np.ndarray, box_tol: float, score_tol: float) -> list[int]:
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
    missing = _unmatched(exp_sure, got, box_tol, score_tol)
    extra = _unmatched(got_sure, expected, box_tol, score_tol)
    assert not missing, (
        f"{len(missing)} expected detections not found, e.g. {exp_sure[missing[0]]}"
    )
    assert not extra, f"{len(extra)} detections not expected, e.g. {got_sure[extra[0]]}"


def _rows(dets: DetectionTensors) -> np.ndarray:
    return np.concatenate(
        [
            dets.boxes.cpu().numpy(),
            dets.scores.cpu().numpy()[:, None],
            dets.class_ids.cpu().numpy()[:, None].astype(np.float32),
        ],
        1,
    )


SHAPES = [(480, 640), (512, 512), (1408, 1408), (300, 700)]


@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_matches_yolo_predict(
    detector: YoloDetector,
    reference,
    height: int,
    width: int,
) -> None:
    rgb = _image(height, width, seed=height + width)
    expected = _predict(reference, rgb)
    got = _rows(detector.detect(torch.from_numpy(rgb)))
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
    rgb = _image(480, 640, seed=3)
    classes, counts = np.unique(_predict(reference, rgb)[:, 5], return_counts=True)
    keep = [int(c) for c in classes[np.argsort(counts)[-2:]]]
    expected = _predict(reference, rgb, conf=0.001, max_det=25, classes=keep)
    try:
        detector.set_thresholds(confidence=0.001, classes=keep)
        detector.max_detections = 25
        got = _rows(detector.detect(torch.from_numpy(rgb)))
    finally:
        detector.set_thresholds(confidence=CONF, classes=())
        detector.max_detections = MAX_DET
    assert len(expected) == 25 and set(np.unique(got[:, 5])) == set(keep)
    assert_same_detections(expected, got, 0.001, 25)


def test_parity_check_can_fail(detector: YoloDetector, reference) -> None:
    rgb = _image(480, 640, seed=4)
    expected = _predict(reference, rgb)
    got = _rows(detector.detect(torch.from_numpy(rgb)))
    assert_same_detections(expected, got, CONF, MAX_DET)
    shifted = got.copy()
    shifted[:, [0, 2]] += 1.5
    with pytest.raises(AssertionError):
        assert_same_detections(expected, shifted, CONF, MAX_DET)
    try:
        detector.set_thresholds(iou=0.7)
        looser = _rows(detector.detect(torch.from_numpy(rgb)))
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


def test_saved_checkpoint_loads_and_matches_the_in_memory_model(
    saved: tuple[Path, torch.nn.Module], detector: YoloDetector
) -> None:
    path, twin = saved
    assert detector.weights_status == "official"
    assert detector.weights_path == path.resolve()
    assert len(detector.class_names) == 80
    memory = YoloDetector.from_module(
        copy.deepcopy(twin), confidence=CONF, iou=IOU, max_detections=MAX_DET
    )
    image = torch.from_numpy(_image(300, 700, seed=5))
    batch = detector.preprocess(image)
    assert torch.equal(memory.forward(batch), detector.forward(batch))
    a, b = memory.detect(image), detector.detect(image)
    assert len(a) > 0
    for x, y in ((a.boxes, b.boxes), (a.scores, b.scores), (a.class_ids, b.class_ids)):
        assert torch.equal(x, y)


def test_anchor_grid_of_each_shape_stays_alive(detector: YoloDetector) -> None:
    # A CUDA graph captured for one shape keeps pointing at that shape's anchor grid, so
    # switching shapes must not replace (and free) it.
    a = detector.preprocess(torch.from_numpy(_image(480, 640, seed=12)))
    b = detector.preprocess(torch.from_numpy(_image(1408, 1408, seed=13)))
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
    image = torch.from_numpy(_image(480, 640, seed=3))
    expected = detector.forward(detector.preprocess(image))
    got = last.forward(last.preprocess(image))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)


def test_missing_weights_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    models = tmp_path / "models"
    with pytest.raises(WeightsError) as err:
        YoloDetector("yolov8n.pt", search_dir=models)
    text = str(err.value)
    for part in ("yolov8n.pt", str(tmp_path / "yolov8n.pt"), str(models / "yolov8n.pt")):
        assert part in text
    assert "models" in text and "allow_random_weights" in text
    with pytest.raises(WeightsError, match="allow_random_weights"):
        YoloDetector("yolov8n.yaml")  # a config means random weights: needs the switch
    with pytest.raises(WeightsError, match=str(tmp_path / "abs" / "x.pt")):
        YoloDetector(tmp_path / "abs" / "x.pt")


def test_unusable_weights_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load detector weights .*broken.pt"):
        YoloDetector(broken)
    with pytest.raises(ConfigError, match="detector.weights"):
        YoloDetector(tmp_path / "model.onnx")
    with pytest.raises(WeightsError, match="detection model"):
        YoloDetector("yolov8n-seg.yaml", allow_random_weights=True)  # Segment head


def test_random_weights_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="aria_perception.engine.yolo_weights"):
        det = YoloDetector(
            "yolov8n.pt", allow_random_weights=True, search_dir=tmp_path, image_size=320
        )
    assert det.weights_status == "random" and det.weights_path is None
    assert "RANDOM WEIGHTS" in caplog.text and "yolov8n.yaml" in caplog.text
    assert len(det.class_names) == 80 and det.class_names[:3] == ("person", "bicycle", "car")
    out = det.detect(torch.from_numpy(_image(120, 160, seed=6)))
    assert out.boxes.shape == (len(out), 4) and out.boxes.dtype == torch.float32
    assert out.scores.shape == (len(out),) and out.class_ids.dtype == torch.int64
    assert det.input_shape(120, 160) == (1, 3, 256, 320)
    with pytest.raises(WeightsError, match="best.pt' not found.*no random model.*best.yaml"):
        YoloDetector("best.pt", allow_random_weights=True, search_dir=tmp_path)


def test_weights_found_in_models_dir_and_cwd(
    saved: tuple[Path, torch.nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = saved[0]
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.pt").symlink_to(path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(MODELS_ENV, str(models))
    found, looked = find_weights("mine.pt")
    assert found == path.resolve() and looked == [elsewhere / "mine.pt", models / "mine.pt"]
    monkeypatch.chdir(path.parent)
    found, _ = find_weights(path.name)
    assert found == path.resolve()
    det = YoloDetector("mine.pt", image_size=320)
    assert det.weights_status == "official"


def test_thresholds_and_settings(detector: YoloDetector) -> None:
    image = torch.from_numpy(_image(300, 700, seed=1000))
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
    rgb = _image(height, width, seed=8)
    expected = _predict(reference, rgb, device="cuda:0")
    got = _rows(det.detect(torch.from_numpy(rgb).cuda()))
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
    image = torch.from_numpy(_image(height, width, seed=9)).cuda()
    raw32 = fp32.forward(fp32.preprocess(image))
    raw16 = fp16.forward(fp16.preprocess(image)).float()
    assert (raw32[0, 4:] - raw16[0, 4:]).abs().max() <= 0.03
    box_err = (raw32[0, :4] - raw16[0, :4]).abs().flatten()
    assert torch.quantile(box_err, 0.99) <= 1.5 and box_err.max() <= 8.0
    a, b = _rows(fp32.detect(image)), _rows(fp16.detect(image))
    for x, y in ((a, b), (b, a)):
        sure = x[x[:, 4] > CONF + 0.02]
        assert len(sure) >= 20
        assert len(_unmatched(sure, y, 2.0, 0.02)) <= 0.2 * len(sure)


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager_without_host_sync(
    saved: tuple[Path, torch.nn.Module],
) -> None:
    det = YoloDetector(saved[0], device="cuda", dtype="fp16", channels_last=True)
    shapes = [(1408, 1408), (480, 640)]
    statics = [torch.from_numpy(_image(h, w, seed=10)).cuda() for h, w in shapes]
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
        other = torch.from_numpy(_image(h, w, seed=11)).cuda()
        static.copy_(other)
        graph.replay()
        eager = det.forward(det.preprocess(other))
        torch.testing.assert_close(raw_static, eager, rtol=1e-3, atol=1e-3)
        a, b = _rows(det.postprocess(raw_static, (h, w))), _rows(det.postprocess(eager, (h, w)))
        assert_same_detections(a, b, det.confidence, det.max_detections)


# ------------------------------------------------------------- fixed-shape post-processing


def _fixed_rows(fixed) -> np.ndarray:
    n = int(fixed.count)
    return _rows(DetectionTensors(fixed.boxes[:n], fixed.scores[:n], fixed.class_ids[:n]))


@pytest.mark.parametrize(("height", "width"), [(480, 640), (300, 700)])
def test_fixed_postprocess_equals_the_exact_path(
    detector: YoloDetector, height: int, width: int
) -> None:
    image = torch.from_numpy(_image(height, width, seed=height + width))
    raw = detector.forward(detector.preprocess(image))
    exact = _rows(detector.postprocess(raw, (height, width)))
    fixed = detector.postprocess_fixed(raw, (height, width))
    # Hundreds of overlapping candidates: a real test of the NMS, not of an empty list.
    assert 200 < int(fixed.candidates) <= 1024 and len(exact) >= 30
    assert bool(fixed.exact)
    np.testing.assert_array_equal(_fixed_rows(fixed), exact)
    # Padding rows stay out of the count; the outputs keep their fixed shapes.
    assert fixed.boxes.shape == (MAX_DET, 4) and int(fixed.count) == len(exact)


def test_fixed_postprocess_follows_thresholds_and_caps(detector: YoloDetector) -> None:
    image = torch.from_numpy(_image(480, 640, seed=3))
    raw = detector.forward(detector.preprocess(image))
    classes, counts = np.unique(_rows(detector.postprocess(raw, (480, 640)))[:, 5],
                                return_counts=True)  # fmt: skip
    keep = [int(c) for c in classes[np.argsort(counts)[-3:]]]
    try:
        detector.set_thresholds(confidence=0.05, iou=0.3, classes=keep)
        detector.max_detections = 3
        exact = _rows(detector.postprocess(raw, (480, 640)))
        fixed = detector.postprocess_fixed(raw, (480, 640))
        assert bool(fixed.exact) and len(exact) == 3 and set(exact[:, 5]) <= set(keep)
        np.testing.assert_array_equal(_fixed_rows(fixed), exact)
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
    image = torch.from_numpy(_image(480, 640, seed=12)).cuda()
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
    present = np.unique(_rows(det.postprocess(raw, (480, 640)))[:, 5]).astype(int).tolist()
    for conf, iou, classes in ((CONF, IOU, ()), (0.2, 0.6, ()), (CONF, 0.3, present[:2])):
        det.set_thresholds(confidence=conf, iou=iou, classes=classes)
        graph.replay()
        torch.cuda.synchronize()
        expected = _rows(det.postprocess(raw, (480, 640)))
        assert bool(fixed.exact) and len(expected) > 0
        np.testing.assert_array_equal(_fixed_rows(fixed), expected)


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
    frames = [_image(480, 640, seed=s) for s in (20, 21)] + [_image(1408, 1408, seed=22)]
    for rgb in frames:
        for _ in range(4):  # capture, then replay
            a = fixed.process(rgb, want_depth=False)
        b = exact.process(rgb, want_depth=False)
        assert len(b.detections.boxes) >= 20
        for name in ("boxes", "scores", "class_ids", "depth"):
            np.testing.assert_array_equal(
                getattr(a.detections, name), getattr(b.detections, name), err_msg=name
            )
    captured, failed = fixed.graph_counts()
    assert captured > 0 and failed == 0
    # Both paths ran: the 1408x1408 frame has > 1024 candidates, 480x640 ones fit (mostly).
    assert fixed.fixed_post_frames >= 4 and fixed.exact_post_frames >= 4
    fixed.close()
    exact.close()
