"""Image sizes on the command line: the one reader of every ``WIDTHxHEIGHT`` argument."""

from __future__ import annotations

from typing import NamedTuple

from aria_perception.bench.errors import SizeError


class Size(NamedTuple):
    """An image size, width first as ``640x480`` is written (never unpack it as ``h, w``).

    Attributes:
        width: Pixels per row.
        height: Rows.
    """

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, the order of numpy arrays."""
        return self.height, self.width


def parse_size(text: str) -> Size:
    """Read ``WIDTHxHEIGHT`` (``640x480``, ``1408X1408``); usable as an argparse ``type``.

    Raises:
        SizeError: Not two positive integers joined by ``x`` (an ``ArgumentTypeError``, so
            argparse reports it as a usage error, and a :class:`~.errors.UsageError`).
    """
    parts = text.strip().lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError as err:
        raise SizeError(f"size must be WIDTHxHEIGHT like 640x480, got {text!r}") from err
    if width <= 0 or height <= 0:
        raise SizeError(f"size must be positive, got {text!r}")
    return Size(width, height)
