"""The paced phase's schedule: exact due times, no burst after a late frame."""

from __future__ import annotations

import pytest

from aria_perception.bench.errors import UsageError
from aria_perception.bench.pacing import Schedule, check_pacing, pacing_label


def test_frames_are_due_one_period_apart_when_on_time() -> None:
    s = Schedule(25.0, [], start=100.0)
    dues = []
    now = 100.0
    for _ in range(5):
        due = s.next_due(0, now)
        dues.append(due)
        now = due + 0.001  # published 1 ms after it was due
    assert dues == pytest.approx([100.0, 100.04, 100.08, 100.12, 100.16])


def test_recorded_pacing_follows_the_sources_gaps() -> None:
    s = Schedule("recorded", [0.1, 0.05, 0.2], start=0.0)
    assert [s.next_due(i % 3, 0.0) for i in range(4)] == pytest.approx([0.0, 0.05, 0.25, 0.35])
    assert s.period(2) == 0.2


def test_a_late_publisher_never_bursts() -> None:
    s = Schedule(10.0, [], start=0.0)
    assert s.next_due(0, 0.0) == 0.0
    # Less than half a period late: published at once, the schedule keeps its grid.
    assert s.next_due(0, 0.14) == pytest.approx(0.1)
    assert s.next_due(0, 0.15) == pytest.approx(0.2)
    # More than half a period late: the schedule restarts now instead of catching up.
    assert s.next_due(0, 0.9) == pytest.approx(0.9)
    assert s.next_due(0, 0.9) == pytest.approx(1.0)


def test_pacing_words() -> None:
    assert check_pacing("recorded") == "recorded" and check_pacing(30.0) == 30.0
    assert [pacing_label(p) for p in (30.0, 7.5, "max")] == ["30 Hz", "7.5 Hz", "max"]
    for bad in (0.0, -3.0, "fast"):
        with pytest.raises(UsageError, match="rate"):
            check_pacing(bad)
    with pytest.raises(UsageError, match="max"):
        Schedule("max", [], start=0.0)
