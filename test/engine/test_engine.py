"""The engine end to end: both networks on one frame, rotation, encodings, skip, errors."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch

from aria_perception.engine.engine import Engine
from aria_perception.engine.fusion import box_depth_median
from aria_perception.errors import ConfigError, FrameError, WeightsError
from aria_perception.records import EngineConfig, Thresholds, validate_engine_config

# Random YOLO weights score every box about 1.5e-4: a confidence below that yields boxes.
LOW_CONF = 1e-4


def _config(**changes: object) -> EngineConfig:
    base = EngineConfig(device="cpu", allow_random_weights=True, confidence=LOW_CONF)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def engine() -> Engine:
    torch.manual_seed(0)
    with Engine(_config()) as eng:
        yield eng


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    # Smooth structure plus noise, so both networks see something other than flat noise.
    yy, xx = np.mgrid[0:240, 0:320]
    base = np.stack([yy, xx, (yy + xx) // 2], -1) % 256
    noise = np.random.default_rng(0).integers(0, 40, base.shape)
    return ((base + noise) % 256).astype(np.uint8)


def test_info_announces_random_weights_and_class_names(engine: Engine) -> None:
    assert engine.info.weights == "random"
    assert engine.info.precision == "fp32"
    assert engine.info.device == "cpu"
    assert engine.info.class_names[0] == "person"
    assert len(engine.info.class_names) == 80


def test_full_size_aria_frame_end_to_end(engine: Engine) -> None:
    aria = np.random.default_rng(1).integers(0, 256, (1408, 1408, 3), dtype=np.uint8)
    result = engine.process(aria)
    assert result.depth is not None
    assert result.depth.shape == (1408, 1408)
    assert result.depth.dtype == np.float32
    assert np.isfinite(result.depth).all()
    dets = result.detections
    assert len(dets) > 0
    assert (dets.boxes[:, 0] >= 0).all() and (dets.boxes[:, 2] <= 1408).all()
    assert (dets.boxes[:, 1] >= 0).all() and (dets.boxes[:, 3] <= 1408).all()
    assert ((dets.class_ids >= 0) & (dets.class_ids < 80)).all()
    # Box depth is the median of the returned depth map inside each box.
    expected = box_depth_median(torch.from_numpy(result.depth), torch.from_numpy(dets.boxes))
    np.testing.assert_allclose(dets.depth, expected.numpy(), rtol=2e-3, atol=2e-3)
    assert result.times.depth_ms > 0 and result.times.detect_ms > 0


def test_results_match_the_networks_called_directly(engine: Engine, frame: np.ndarray) -> None:
    from aria_perception.engine.preprocess import upsample_depth

    result = engine.process(frame)
    with torch.inference_mode():
        image = torch.from_numpy(frame)
        pred = engine.midas(engine.midas_preprocess(image))
        depth = upsample_depth(pred, frame.shape[:2], torch.float32)[0].numpy()
        direct = engine.detector.detect(image)
    np.testing.assert_allclose(result.depth, depth, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.detections.boxes, direct.boxes.numpy(), atol=1e-4)
    np.testing.assert_allclose(result.detections.scores, direct.scores.numpy(), atol=1e-6)
    np.testing.assert_array_equal(result.detections.class_ids, direct.class_ids.numpy())


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_reports_boxes_and_depth_in_received_pixels(
    engine: Engine, frame: np.ndarray, rotation: int
) -> None:
    """Rotating inside the engine equals rotating the frame first and mapping results back."""
    upright = np.ascontiguousarray(np.rot90(frame, -rotation // 90))  # what the nets should see
    reference = engine.process(upright)
    with Engine(_config(rotation=rotation)) as rotating:
        rotating.midas.load_state_dict(engine.midas.state_dict())
        rotating.detector.model.load_state_dict(engine.detector.model.state_dict())
        result = rotating.process(frame)
    assert result.depth.shape == frame.shape[:2]
    back = np.rot90(reference.depth, rotation // 90)  # upright depth turned back
    np.testing.assert_allclose(result.depth, back, rtol=1e-5, atol=1e-6)
    assert len(result.detections) == len(reference.detections) > 0
    height, width = frame.shape[:2]
    boxes = result.detections.boxes
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= width).all()
    assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= height).all()
    # Map the received-frame boxes into the upright frame and compare.
    x1, y1, x2, y2 = boxes.T
    if rotation == 90:
        mapped = np.stack([height - y2, x1, height - y1, x2], 1)
    elif rotation == 180:
        mapped = np.stack([width - x2, height - y2, width - x1, height - y1], 1)
    else:
        mapped = np.stack([y1, width - x2, y2, width - x1], 1)
    np.testing.assert_allclose(mapped, reference.detections.boxes, atol=1e-3)
    np.testing.assert_allclose(result.detections.depth, reference.detections.depth, atol=1e-5)


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8"])
def test_encodings_give_the_rgb_result(engine: Engine, frame: np.ndarray, encoding: str) -> None:
    reference = engine.process(frame)
    pixels = frame[..., ::-1] if encoding.startswith("bgr") else frame
    if encoding.endswith("a8"):
        pixels = np.concatenate([pixels, np.full(frame.shape[:2] + (1,), 255, np.uint8)], -1)
    result = engine.process(np.ascontiguousarray(pixels), encoding)
    np.testing.assert_array_equal(result.depth, reference.depth)
    np.testing.assert_array_equal(result.detections.boxes, reference.detections.boxes)


def test_mono_frames_are_accepted(engine: Engine, frame: np.ndarray) -> None:
    result = engine.process(np.ascontiguousarray(frame[..., 0]), "mono8")
    assert result.depth.shape == frame.shape[:2]


def test_png_input_equals_raw_input(engine: Engine, frame: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    encoded = np.frombuffer(buf.getvalue(), np.uint8)
    reference = engine.process(frame)
    result = engine.process(encoded, "png")
    np.testing.assert_array_equal(result.depth, reference.depth)
    np.testing.assert_array_equal(result.detections.boxes, reference.detections.boxes)


def test_host_time_is_the_whole_call_on_the_cpu(engine: Engine, frame: np.ndarray) -> None:
    start = time.perf_counter()
    result = engine.process(frame)
    wall_ms = (time.perf_counter() - start) * 1000
    # Nothing is waited for on the CPU: the host's time is the call's (less what wraps it).
    assert 0.5 * wall_ms < result.times.host_ms <= wall_ms


def test_no_depth_wanted_still_gives_box_depth(engine: Engine, frame: np.ndarray) -> None:
    reference = engine.process(frame)
    result = engine.process(frame, want_depth=False)
    assert result.depth is None
    np.testing.assert_allclose(result.detections.depth, reference.detections.depth, atol=1e-5)


def test_depth_out_receives_the_map(engine: Engine, frame: np.ndarray) -> None:
    out = np.full(frame.shape[:2], -1.0, np.float32)
    result = engine.process(frame, depth_out=out)
    assert result.depth is out
    assert (out >= -0.5).all()
    with pytest.raises(FrameError, match="depth_out must be float32"):
        engine.process(frame, depth_out=np.zeros((2, 2), np.float32))
    # A flat buffer (a shared-memory slot) receives the map in its first H * W elements.
    flat = np.full(frame.shape[0] * frame.shape[1] + 10, -1.0, np.float32)
    result = engine.process(frame, depth_out=flat)
    assert result.depth.shape == frame.shape[:2]
    assert np.shares_memory(result.depth, flat)
    np.testing.assert_array_equal(flat[: result.depth.size], result.depth.reshape(-1))
    assert (flat[result.depth.size :] == -1.0).all()


def test_depth_frame_skip_reuses_the_map() -> None:
    with Engine(_config(depth_frame_skip=3, detector_enabled=False)) as eng:
        rng = np.random.default_rng(2)
        frames = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(6)]
        results = [eng.process(f) for f in frames]
    assert [r.depth_fresh for r in results] == [True, False, False, True, False, False]
    np.testing.assert_array_equal(results[1].depth, results[0].depth)
    assert not np.array_equal(results[3].depth, results[2].depth)
    assert all(len(r.detections) == 0 for r in results)


def test_thresholds_change_at_run_time(frame: np.ndarray) -> None:
    with Engine(_config()) as eng:
        many = eng.process(frame).detections
        eng.set_thresholds(Thresholds(confidence=0.9, iou=0.45))
        assert len(eng.process(frame).detections) == 0
        eng.set_thresholds(Thresholds(confidence=LOW_CONF, iou=0.45, classes=("person",)))
        only = eng.process(frame).detections
        assert len(many) > 0
        assert set(only.class_ids.tolist()) <= {0}
        with pytest.raises(ConfigError, match="unknown class name"):
            eng.set_thresholds(Thresholds(confidence=0.5, iou=0.5, classes=("unicorn",)))


@pytest.mark.parametrize(
    ("frame_", "encoding", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((4, 4, 4), np.uint8), "rgb8", r"rgb8 frame must be \(H, W, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), "rgb8", r"zero-size rgb8 frame \(4x0\)"),
        (np.zeros((4, 4, 3), np.uint8), "yuv422", "unsupported encoding"),
        (np.frombuffer(b"\xff\xd8\xff\xe0garbage", np.uint8), "jpeg", "corrupt jpeg"),
    ],
)
def test_bad_frames_are_frame_errors_and_the_engine_goes_on(
    engine: Engine, frame: np.ndarray, frame_: np.ndarray, encoding: str, match: str
) -> None:
    with pytest.raises(FrameError, match=match):
        engine.process(frame_, encoding)
    assert engine.process(frame).depth is not None


def test_config_errors_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="depth.frame_skip"):
        validate_engine_config(_config(depth_frame_skip=0))
    with pytest.raises(ConfigError, match="input.rotation"):
        validate_engine_config(_config(rotation=45))
    with pytest.raises(ConfigError, match="nothing to compute"):
        validate_engine_config(_config(depth_enabled=False, detector_enabled=False))
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Engine(_config(precision="fp16"))


@pytest.mark.parametrize("bad", [{"confidence": 1.5}, {"iou": -0.1}, {"confidence": True}])
def test_config_thresholds_follow_the_rules_of_thresholds(bad: dict) -> None:
    """One rule, one message: the same as a run-time change of the thresholds."""
    with pytest.raises(ConfigError) as from_thresholds:
        Thresholds(**{"confidence": 0.25, "iou": 0.45, **bad})
    with pytest.raises(ConfigError) as from_config:
        Engine(_config(**bad))
    assert str(from_config.value) == str(from_thresholds.value)


def test_missing_weights_fail_without_random(tmp_path) -> None:
    with pytest.raises(WeightsError, match="midas_v21_small_256.pt"):
        Engine(_config(allow_random_weights=False, depth_weights=str(tmp_path / "none.pt")))


# ----------------------------------------------------------------------------------- GPU


def _gpu_config(**changes: object) -> EngineConfig:
    # Uncompiled unless a test says otherwise: compiling takes tens of seconds per shape, and
    # test_compile.py checks the compiled engine against this one.
    return _config(device="cuda:0", compile="off").replace(**changes)


@pytest.fixture(scope="module")
def gpu_frame() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (1408, 1408, 3), dtype=np.uint8)


def _same_weights(target: Engine, source: Engine) -> None:
    target.midas.load_state_dict(source.midas.state_dict())
    target.detector.model.load_state_dict(source.detector.model.state_dict())


@pytest.mark.gpu
def test_gpu_graphs_streams_and_eager_agree(gpu_frame: np.ndarray) -> None:
    torch.manual_seed(0)
    reference = Engine(_gpu_config(cuda_graphs=False, parallel_streams=False))
    variants = {
        "graphs+parallel": _gpu_config(),
        "graphs+sequential": _gpu_config(parallel_streams=False),
        "eager+parallel": _gpu_config(cuda_graphs=False),
    }
    ref = [reference.process(gpu_frame) for _ in range(2)][-1]
    for name, cfg in variants.items():
        eng = Engine(cfg)
        _same_weights(eng, reference)
        for _ in range(5):  # first frames capture, later ones replay
            got = eng.process(gpu_frame)
        np.testing.assert_array_equal(got.depth, ref.depth, err_msg=name)
        np.testing.assert_array_equal(got.detections.boxes, ref.detections.boxes, err_msg=name)
        np.testing.assert_array_equal(got.detections.depth, ref.detections.depth, err_msg=name)
        captured, failed = eng.graph_counts()
        if "graphs" in name:
            assert captured > 0 and failed == 0, f"{name}: graphs were not captured"
        else:
            assert captured == failed == 0, name
        eng.close()


@pytest.mark.gpu
def test_gpu_host_time_leaves_out_the_wait_for_the_gpu(gpu_frame: np.ndarray) -> None:
    with Engine(_gpu_config()) as eng:
        for _ in range(3):
            eng.process(gpu_frame)
        start = time.perf_counter()
        result = eng.process(gpu_frame)
        wall_ms = (time.perf_counter() - start) * 1000
    # Uncompiled, the GPU takes about 2.6 ms of a 1408x1408 frame, the host a fraction of it.
    assert 0 < result.times.host_ms < 0.8 * wall_ms, (result.times.host_ms, wall_ms)


@pytest.mark.gpu
def test_gpu_fp16_agrees_with_fp32(gpu_frame: np.ndarray) -> None:
    fp32 = Engine(_gpu_config(precision="fp32"))
    fp16 = Engine(_gpu_config(precision="fp16"))
    _same_weights(fp16, fp32)
    a, b = fp32.process(gpu_frame), fp16.process(gpu_frame)
    # Relative L2 error of the depth map: random weights are ill-conditioned in fp16.
    rel = np.linalg.norm(a.depth - b.depth) / np.linalg.norm(a.depth)
    assert rel < 0.08, rel
    assert fp16.info.precision == "fp16"


def _stream_overlap_us(config: EngineConfig, frame: np.ndarray) -> tuple[float, int]:
    """Total time kernels of different CUDA streams ran at once, and the streams seen."""
    from torch.profiler import ProfilerActivity, profile

    eng = Engine(config)
    for _ in range(3):
        eng.process(frame)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            eng.process(frame)
    eng.close()
    spans: dict[int, list[tuple[float, float]]] = {}
    for ev in prof.events():
        if ev.device_type.name == "CUDA" and ev.time_range.elapsed_us() > 0:
            spans.setdefault(ev.device_resource_id, []).append(
                (ev.time_range.start, ev.time_range.end)
            )
    streams = sorted(spans)
    overlap = 0.0
    for i, a in enumerate(streams):
        for b in streams[i + 1 :]:
            overlap += sum(
                max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in spans[a] for s2, e2 in spans[b]
            )
    return overlap, len(streams)


@pytest.mark.gpu
def test_gpu_depth_and_detection_kernels_overlap(gpu_frame: np.ndarray) -> None:
    """Profiler trace: kernels of two streams run at the same time, and only when parallel.

    Each frame is synchronised before the next, and the upload stream's work precedes both
    networks, so the only kernels that can overlap are MiDaS's and YOLO's. With CUDA graphs,
    as in production: eagerly, the host launches MiDaS's kernels no faster than the GPU runs
    them, so YOLO's arrive after MiDaS is done (launch-bound; measured 0 us of overlap).
    """
    parallel, n_parallel = _stream_overlap_us(_gpu_config(), gpu_frame)
    sequential, n_sequential = _stream_overlap_us(_gpu_config(parallel_streams=False), gpu_frame)
    assert n_parallel >= 2, f"only {n_parallel} stream(s) seen"
    assert parallel > 100.0, f"depth and detection overlapped for only {parallel:.1f} us"
    assert sequential == 0.0, f"one stream, yet {sequential:.1f} us of overlap: bad measure"


def test_progress_moves_within_the_networks_on_the_cpu(engine: Engine, frame: np.ndarray) -> None:
    # The worker tells a slow frame from a hung one by this count: on the CPU one network can
    # take seconds, so every layer moves it, not only each stage of the frame.
    before = engine.progress
    engine.process(frame)
    layers = sum(1 for _ in engine.midas.modules()) + sum(
        1 for _ in engine.detector.model.modules()
    )
    assert engine.progress - before >= layers
