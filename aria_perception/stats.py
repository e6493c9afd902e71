"""Percentiles and summaries of timings: the one implementation the node and the benchmarks use.

Standard library only (no numpy, no torch): the node's diagnostics, the worker's transport
benchmark and the bench reports all import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

__all__ = ["Summary", "percentile", "percentiles"]


def _sorted_finite(values: Iterable[float]) -> list[float]:
    return sorted(float(v) for v in values if not math.isnan(float(v)))


def _at(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def percentile(values: Iterable[float], q: float) -> float:
    """Percentile ``q`` (0..100) of ``values``, linearly interpolated (numpy's default method).

    NaN values are ignored; the result is NaN when nothing is left.
    """
    return _at(_sorted_finite(values), q)


def percentiles(values: Iterable[float], *qs: float) -> tuple[float, ...]:
    """Several percentiles of ``values`` with one sort (NaN each when empty)."""
    ordered = _sorted_finite(values)
    return tuple(_at(ordered, q) for q in qs)


@dataclass(frozen=True)
class Summary:
    """Distribution of a series of timings (NaN fields when the series is empty)."""

    count: int
    p50: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        """Summarise ``values`` (NaN values are ignored)."""
        ordered = _sorted_finite(values)
        n = len(ordered)
        if n == 0:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan, nan)
        mean = sum(ordered) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in ordered) / n)
        p50, p95, p99 = (_at(ordered, q) for q in (50.0, 95.0, 99.0))
        return cls(n, p50, p95, p99, mean, std, ordered[0], ordered[-1])

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for JSON reports)."""
        return asdict(self)
