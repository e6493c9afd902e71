"""MiDaS preprocessing on the device against a straightforward numpy/OpenCV version."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from aria_perception.engine.midas import MIDAS_SMALL_CFG
from aria_perception.engine.preprocess import (
    MidasPreprocess,
    midas_input_size,
    midas_preprocess,
    upsample_depth,
)
from aria_perception.errors import ConfigError, FrameError

# Our float32 torch pipeline against OpenCV in float64 (as the official transform computes):
# measured max difference 1.2e-6 in normalised units over the shapes below.
ATOL = 1e-5


def _official_size(
    height: int, width: int, size: int = 256, multiple: int = 32
) -> tuple[int, int]:
    """MiDaS ``Resize.get_size`` with upper_bound and keep_aspect_ratio, in numpy."""

    def constrain(x: float, max_val: int) -> int:
        y = (np.round(x / multiple) * multiple).astype(int)
        if y > max_val:
            y = (np.floor(x / multiple) * multiple).astype(int)
        return int(y)

    scale_height = size / height
    scale_width = size / width
    if scale_width < scale_height:
        scale_height = scale_width
    else:
        scale_width = scale_height
    return constrain(scale_height * height, size), constrain(scale_width * width, size)


def _official_transform(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """The official small_transform: /255, cv2 bicubic resize, normalise, CHW, float32."""
    image = rgb / 255.0
    height, width = _official_size(*rgb.shape[:2], size=size)
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    image = (image - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)[None]


def _random_rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _smooth_rgb(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[:height, :width]
    channels = [xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1), (xs + ys) % 256]
    return np.stack(channels, axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (480, 640, (192, 256)),
        (300, 500, (160, 256)),
        (1408, 1408, (256, 256)),
        (720, 1280, (128, 256)),  # 144 / 32 = 4.5 rounds to even: 128, not 160
        (1280, 720, (256, 128)),
        (100, 50, (256, 128)),  # small frames are scaled up
        (256, 256, (256, 256)),
    ],
)
def test_input_size_follows_the_official_rule(
    height: int, width: int, expected: tuple[int, int]
) -> None:
    assert midas_input_size(height, width) == expected == _official_size(height, width)


def test_input_size_agrees_with_numpy_on_many_shapes() -> None:
    rng = np.random.default_rng(0)
    shapes = rng.integers(8, 4000, size=(2000, 2))
    for height, width in shapes.tolist():
        if min(_official_size(height, width)) == 0:
            continue
        assert midas_input_size(height, width) == _official_size(height, width), (height, width)
        assert midas_input_size(height, width, 384) == _official_size(height, width, 384)


def test_input_size_refuses_what_cannot_be_resized() -> None:
    # Sizes print as width x height, like every size in the package.
    with pytest.raises(FrameError, match=r"frame size 1000x33 is too elongated.* to 256x0 "):
        midas_input_size(33, 1000)  # 8.4 rows would round to 0
    with pytest.raises(FrameError, match=r"zero-size frame \(640x0\)"):
        midas_input_size(0, 640)
    with pytest.raises(ConfigError, match="depth.input_size"):
        midas_input_size(480, 640, size=16)


@pytest.mark.parametrize(("height", "width"), [(480, 640), (300, 500), (1408, 1408), (100, 50)])
def test_preprocess_matches_the_numpy_opencv_transform(height: int, width: int) -> None:
    for rgb in (_random_rgb(height, width, seed=height), _smooth_rgb(height, width)):
        expected = _official_transform(rgb)
        actual = midas_preprocess(torch.from_numpy(rgb))
        assert actual.dtype == torch.float32 and actual.is_contiguous()
        assert tuple(actual.shape) == expected.shape
        np.testing.assert_allclose(actual.numpy(), expected, rtol=0, atol=ATOL)


def test_preprocess_at_input_size_only_normalises() -> None:
    rgb = _random_rgb(256, 192, seed=1)
    expected = _official_transform(rgb)
    np.testing.assert_allclose(
        midas_preprocess(torch.from_numpy(rgb)).numpy(), expected, atol=ATOL
    )


def test_a_batch_in_nchw_equals_single_frames() -> None:
    frames = np.stack([_random_rgb(120, 200, seed=s) for s in (2, 3)])
    batch = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    out = midas_preprocess(batch)
    assert out.shape == (2, 3, 160, 256)
    for index, frame in enumerate(frames):
        np.testing.assert_allclose(
            out[index : index + 1].numpy(), _official_transform(frame), atol=ATOL
        )


def test_dtype_and_channels_last_are_honoured() -> None:
    frame = torch.from_numpy(_random_rgb(240, 320, seed=4))
    reference = midas_preprocess(frame)
    half = midas_preprocess(frame, dtype=torch.float16, channels_last=True)
    assert half.dtype == torch.float16
    assert half.is_contiguous(memory_format=torch.channels_last)
    # Rounded to half at the end only: |x| < 4 here, where half's rounding error is <= 2**-10.
    assert torch.allclose(half.float(), reference, atol=2.0**-9, rtol=0)


def test_module_equals_function_and_keeps_no_state_dict() -> None:
    frame = torch.from_numpy(_random_rgb(300, 500, seed=5))
    module = MidasPreprocess()
    assert torch.equal(module(frame), midas_preprocess(frame))
    assert module.output_size(300, 500) == (160, 256)
    assert list(module.state_dict()) == []
    small = MidasPreprocess(size=128)
    assert small(frame).shape == (1, 3, 64, 128)
    with pytest.raises(ConfigError, match="depth.input_size"):
        MidasPreprocess(size=0)


def test_constants_come_from_the_pretrained_config() -> None:
    # A grey frame of value v maps to (v / 255 - mean) / std per channel.
    grey = torch.full((64, 64, 3), 128, dtype=torch.uint8)
    out = midas_preprocess(grey)
    for channel, (mean, std) in enumerate(
        zip(MIDAS_SMALL_CFG.mean, MIDAS_SMALL_CFG.std, strict=True)
    ):
        assert torch.allclose(out[0, channel], torch.tensor((128 / 255 - mean) / std), atol=1e-6)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (torch.zeros(32, 32, 3, dtype=torch.float32), "uint8"),
        (torch.zeros(32, 32, 4, dtype=torch.uint8), "HxWx3"),
        (torch.zeros(1, 4, 32, 32, dtype=torch.uint8), "Nx3xHxW"),
        (torch.zeros(32, 32, dtype=torch.uint8), "HxWx3 or Nx3xHxW"),
        (torch.zeros(8, 300, 3, dtype=torch.uint8), "elongated"),
    ],
)
def test_bad_frames_are_refused_with_the_reason(frame: torch.Tensor, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        midas_preprocess(frame)


def test_upsample_depth_matches_opencv_bicubic() -> None:
    # The official code upsamples with torch bicubic, align_corners=False: the same kernel and
    # pixel-centre alignment as cv2.INTER_CUBIC.
    rng = np.random.default_rng(6)
    prediction = rng.random((2, 48, 64)).astype(np.float32) * 10
    out = upsample_depth(torch.from_numpy(prediction), (150, 200))
    assert out.shape == (2, 150, 200) and out.dtype == torch.float32
    for index in range(2):
        expected = cv2.resize(prediction[index], (200, 150), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(out[index].numpy(), expected, rtol=0, atol=1e-4)


def test_upsample_depth_dtype_identity_and_errors() -> None:
    prediction = torch.rand(1, 32, 32)
    assert upsample_depth(prediction, (32, 32)) is prediction
    assert upsample_depth(prediction.half(), (64, 64), dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        upsample_depth(prediction[0], (64, 64))
    with pytest.raises(ValueError, match="positive"):
        upsample_depth(prediction, (0, 64))


@pytest.mark.gpu
def test_preprocess_on_cuda_matches_cpu_and_survives_graph_capture() -> None:
    device = torch.device("cuda")
    rgb = _random_rgb(1408, 1408, seed=7)
    expected = _official_transform(rgb)
    frame = torch.from_numpy(rgb).to(device)
    module = MidasPreprocess(dtype=torch.float16, channels_last=True).to(device)
    np.testing.assert_allclose(midas_preprocess(frame).cpu().numpy(), expected, rtol=0, atol=ATOL)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        module(frame)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = module(frame)
    other = torch.from_numpy(_random_rgb(1408, 1408, seed=8))
    frame.copy_(other.to(device))
    graph.replay()
    torch.cuda.synchronize()
    np.testing.assert_allclose(
        static_out.float().cpu().numpy(), _official_transform(other.numpy()), rtol=0, atol=2.0**-8
    )
