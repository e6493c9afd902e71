"""Log lines under a flood of distinct bad frames: bounded in number and in length."""

from __future__ import annotations

import random

from aria_perception.errors import FrameError, PoisonFrameError, shorten
from aria_perception.ros.log_throttle import MAX_KINDS, LogThrottle, reason_kind

_rng = random.Random(7)


def _garbage(n: int) -> str:
    return "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz0123456789'\"\\ ") for _ in range(n))


def _encoding_error(encoding: str) -> FrameError:
    """What the shared validator says of an unknown encoding (it quotes it in full)."""
    return FrameError(
        f"unsupported encoding {encoding!r} (supported: rgb8, bgr8, mono8, rgba8, bgra8, jpeg, "
        "png)"
    )


def _magic_error(fmt: str, head: bytes) -> FrameError:
    """What the codec says of compressed data that is neither JPEG nor PNG."""
    return FrameError(
        f"compressed image (format {fmt!r}) is not JPEG or PNG data: it starts with "
        f"{head[:8].hex(' ')}"
    )


def test_distinct_quoted_data_and_hex_garbage_are_one_kind_each() -> None:
    encodings = {reason_kind(_encoding_error(_garbage(5000))) for _ in range(100)}
    heads = {reason_kind(_magic_error(_garbage(5000), _rng.randbytes(32))) for _ in range(100)}
    assert len(encodings) == 1 and len(heads) == 1
    assert encodings != heads  # different kinds of rejection stay apart
    assert all(len(k) <= 120 for k in encodings | heads)
    sizes = {reason_kind(FrameError(f"rgb8 frame {w}x{w} has {w * w} pixels")) for w in (1, 99)}
    assert len(sizes) == 1


def test_the_class_is_part_of_the_kind() -> None:
    assert reason_kind(FrameError("boom")) != reason_kind(PoisonFrameError("boom"))
    assert reason_kind(FrameError("boom")) == "FrameError: boom"


def test_a_flood_of_distinct_reasons_gives_a_bounded_number_of_lines() -> None:
    throttle = LogThrottle(period_s=3600.0)
    reasons: list[object] = [_encoding_error(_garbage(5000)) for _ in range(100)]
    reasons += [_magic_error(_garbage(5000), _rng.randbytes(8)) for _ in range(100)]
    assert sum(throttle.allow(r) for r in reasons) == 2  # type: ignore[arg-type]
    # Reasons nothing normalises (long words without digits): no more than MAX_KINDS lines.
    words = ["".join(_rng.choice("abcdefghijklmnop") for _ in range(20)) for _ in range(500)]
    allowed = sum(throttle.allow(f"FrameError: {w}") for w in words)
    assert allowed == MAX_KINDS - 2


def test_a_kind_comes_back_after_its_period() -> None:
    throttle = LogThrottle(period_s=0.0)
    assert throttle.allow("FrameError: x") and throttle.allow("FrameError: x")


def test_shorten_bounds_the_text_and_says_how_long_it_was() -> None:
    assert shorten("short") == "short"
    text = "x" * 5000
    cut = shorten(text)
    assert cut.startswith("x" * 200) and cut.endswith("… (5000 chars)") and len(cut) < 220
    assert shorten(text, 10) == "x" * 10 + "… (5000 chars)"
