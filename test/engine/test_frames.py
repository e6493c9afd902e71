from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from aria_perception.engine import frames
from aria_perception.errors import FrameError


def _box_of(mask: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_found_in_the_rotated_frame_map_back_to_received_pixels(rotation: int) -> None:
    height, width = 48, 80
    received = torch.zeros(height, width, dtype=torch.bool)
    received[5:17, 30:71] = True  # x 30..71, y 5..17
    rotated = frames.rotate_image(received, rotation)
    assert rotated.shape == ((height, width) if rotation in (0, 180) else (width, height))
    box = torch.tensor([_box_of(rotated)])
    back = frames.unrotate_boxes(box, rotation, height, width)
    assert back.tolist() == [[30.0, 5.0, 71.0, 17.0]]
    assert torch.equal(frames.unrotate_image(rotated, rotation), received)


def test_rotation_is_clockwise() -> None:
    image = torch.tensor([[1, 2], [3, 4]])
    # Clockwise by 90: the left column, read bottom to top, becomes the top row.
    assert frames.rotate_image(image, 90).tolist() == [[3, 1], [4, 2]]


@pytest.mark.parametrize(
    ("encoding", "make"),
    [
        ("rgb8", lambda rgb: rgb),
        ("bgr8", lambda rgb: rgb[..., ::-1]),
        ("rgba8", lambda rgb: np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7)], -1)),
        (
            "bgra8",
            lambda rgb: np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 7)], -1),
        ),
    ],
)
def test_encodings_convert_to_rgb(encoding: str, make) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    given = torch.from_numpy(np.ascontiguousarray(make(rgb)).astype(np.uint8))
    assert torch.equal(frames.to_rgb(given, encoding), torch.from_numpy(rgb))


@pytest.mark.gpu
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_every_encoding_converts_inside_a_cuda_graph(encoding: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (run on the GPU device)")
    rng = np.random.default_rng(1)
    shape = (6, 9) if encoding == "mono8" else (6, 9, len(encoding) - 1)
    given = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8)).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        frames.to_rgb(given, encoding) + 0  # warm-up off the capturing stream
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = frames.to_rgb(given, encoding) + 0
    other = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8))
    given.copy_(other.cuda())
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_out.cpu(), frames.to_rgb(other, encoding))


def test_mono_expands_to_three_channels() -> None:
    mono = torch.arange(12, dtype=torch.uint8).reshape(3, 4)
    rgb = frames.to_rgb(mono, "mono8")
    assert rgb.shape == (3, 4, 3)
    assert torch.equal(rgb[..., 1], mono)


def test_unknown_encoding_is_a_frame_error() -> None:
    # The shape rules of each encoding are check_raw_frame's (records), run before upload.
    with pytest.raises(FrameError, match="unsupported encoding 'mono16'"):
        frames.to_rgb(torch.zeros(2, 2, 1, dtype=torch.uint8), "mono16")


def _encoded(fmt: str, rgb: np.ndarray) -> torch.Tensor:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG" if fmt == "jpeg" else "PNG", quality=95)
    return torch.from_numpy(np.frombuffer(buf.getvalue(), dtype=np.uint8).copy())


def test_png_decodes_exactly_and_jpeg_closely() -> None:
    rng = np.random.default_rng(1)
    rgb = np.repeat(np.repeat(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8), 4, 0), 4, 1)
    png = frames.decode(_encoded("png", rgb), "png", torch.device("cpu"))
    assert torch.equal(png, torch.from_numpy(rgb))
    yy, xx = np.mgrid[0:32, 0:40]
    smooth = np.stack([yy * 7, xx * 6, (yy + xx) * 3], -1).astype(np.uint8)
    jpeg = frames.decode(_encoded("jpeg", smooth), "jpeg", torch.device("cpu"))
    assert jpeg.shape == smooth.shape
    assert (jpeg.float() - torch.from_numpy(smooth).float()).abs().mean() < 3


def test_corrupt_jpeg_is_a_frame_error() -> None:
    data = _encoded("jpeg", np.zeros((16, 16, 3), np.uint8))[:40]
    with pytest.raises(FrameError, match="corrupt jpeg"):
        frames.decode(data, "jpeg", torch.device("cpu"))
