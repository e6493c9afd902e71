"""PNG input that crashed the decoder: refused as a FrameError, and the engine goes on."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from png_cases import encode, hostile, interlaced, pixels, with_size

from aria_perception.engine import frames
from aria_perception.engine.engine import Engine
from aria_perception.errors import FrameError
from aria_perception.records import EngineConfig, check_png

VALID = encode(pixels())
CASES = hostile(VALID)


def _array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8)


@pytest.fixture(scope="module")
def engine() -> Engine:
    torch.manual_seed(0)
    with Engine(EngineConfig(device="cpu", allow_random_weights=True)) as eng:
        yield eng


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_check_names_what_is_wrong(name: str) -> None:
    data, reason = CASES[name]
    with pytest.raises(FrameError, match=reason):
        check_png(_array(data))


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_refuses_corrupt_png_and_goes_on(engine: Engine, name: str) -> None:
    data, reason = CASES[name]
    with pytest.raises(FrameError, match=reason):
        engine.process(_array(data), "png")
    result = engine.process(_array(VALID), "png")
    assert result.depth is not None and result.depth.shape == (240, 320)


def test_a_valid_png_is_accepted_with_its_size() -> None:
    assert check_png(_array(VALID)) == (240, 320)
    assert check_png(VALID, max_pixels=320 * 240) == (240, 320)
    with pytest.raises(FrameError, match="320x240 has 76800 pixels, more than"):
        check_png(VALID, max_pixels=320 * 240 - 1)


def test_an_interlaced_png_is_checked_pass_by_pass_and_decoded() -> None:
    for height, width in ((240, 320), (5, 3), (1, 1), (9, 17)):
        image = pixels(height, width, seed=height)
        data = interlaced(image)
        assert check_png(data) == (height, width)
        np.testing.assert_array_equal(frames.decode_png(_array(data)), image)
    taller = with_size(interlaced(pixels(9, 17)), 17, 10)
    with pytest.raises(FrameError, match="IHDR size 17x10 needs"):
        check_png(taller)


def _pillow_png(image, **options: object) -> np.ndarray:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **options)
    return _array(buf.getvalue())


def test_every_png_kind_decodes_as_torchvision_decoded_it() -> None:
    """Pillow's decoding is the one torchvision's decode_png gave for well-formed PNGs."""
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_png

    rgb = pixels(21, 34, seed=3)
    kinds = {
        "rgb": (Image.fromarray(rgb), {}),
        "rgba": (Image.fromarray(np.concatenate([rgb, rgb[..., :1]], -1)), {}),
        "grey": (Image.fromarray(rgb[..., 0]), {}),
        "grey_alpha": (Image.fromarray(rgb[..., 0]).convert("LA"), {}),
        "palette": (Image.fromarray(rgb).quantize(17), {}),
        "palette_4bit_transparent": (Image.fromarray(rgb).quantize(9), {"transparency": 3}),
        "bilevel": (Image.fromarray(rgb[..., 0]).convert("1"), {}),
    }
    for name, (image, options) in kinds.items():
        data = _pillow_png(image, **options)
        expected = decode_png(torch.from_numpy(data.copy()), mode=ImageReadMode.RGB)
        got = frames.decode_png(data)
        assert got.dtype == np.uint8 and got.shape == (21, 34, 3), name
        np.testing.assert_array_equal(got, expected.permute(1, 2, 0).numpy(), err_msg=name)


def test_sixteen_bit_grey_keeps_the_high_byte() -> None:
    from PIL import Image

    grey = pixels(7, 9)[..., 0].astype(np.uint16) * 257 + 3
    got = frames.decode_png(_pillow_png(Image.fromarray(grey)))
    np.testing.assert_array_equal(got, np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, 2))
