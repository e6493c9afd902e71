"""Shared-memory slots with real segments and real spawned processes."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from worker_helpers import our_segments

from aria_perception.errors import FrameError
from aria_perception.records import Detections, EngineResult, StageTimes
from aria_perception.worker.slots import (
    INPUT_SLOTS,
    OUTPUT_SLOTS,
    SharedSlots,
    SlotLayout,
)

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = SlotLayout(input_bytes=64 * 48 * 4, max_depth_pixels=64 * 48, max_detections=7)


def _result(h: int, w: int, n: int, seed: int) -> EngineResult:
    rng = np.random.default_rng(seed)
    return EngineResult(
        detections=Detections(
            boxes=rng.random((n, 4), np.float32) * 40,
            scores=rng.random(n, np.float32),
            class_ids=rng.integers(0, 80, n).astype(np.int32),
            depth=rng.random(n, np.float32),
        ),
        depth=rng.random((h, w), np.float32),
    )


def test_layout_slots_are_aligned_and_disjoint() -> None:
    spans = [(LAYOUT.input_offset(i), LAYOUT.input_bytes) for i in range(INPUT_SLOTS)]
    spans += [(LAYOUT.output_offset(i), LAYOUT.output_stride) for i in range(OUTPUT_SLOTS)]
    for offset, _ in spans:
        assert offset % 4096 == 0
    ends = [offset + size for offset, size in sorted(spans)]
    starts = sorted(offset for offset, _ in spans)
    assert all(end <= nxt for end, nxt in zip(ends, starts[1:], strict=False))
    assert ends[-1] <= LAYOUT.size


def test_segment_named_after_pid_and_unlinked_once() -> None:
    slots = SharedSlots.create(LAYOUT)
    assert slots.name.startswith(f"aria_{os.getpid()}_")
    assert our_segments() == {slots.name}
    slots.close()
    slots.unlink()
    slots.unlink()  # idempotent: a second unlink would confuse the resource tracker
    assert our_segments() == set()


def test_attached_side_may_not_unlink() -> None:
    with SharedSlots.create(LAYOUT) as owner:
        other = SharedSlots.attach(owner.name, LAYOUT)
        with pytest.raises(RuntimeError, match="only the process that created"):
            other.unlink()
        other.close()
        assert our_segments() == {owner.name}
    assert our_segments() == set()


def test_output_slot_roundtrip_and_read_only_depth() -> None:
    with SharedSlots.create(LAYOUT) as slots:
        expected = _result(40, 30, 5, seed=1)
        n, shape = slots.output(1).write(expected)
        assert (n, shape) == (5, (40, 30))
        got = slots.output(1).read(n, shape, StageTimes(total_ms=3.0), depth_fresh=False)
        np.testing.assert_array_equal(got.depth, expected.depth)
        np.testing.assert_array_equal(got.detections.boxes, expected.detections.boxes)
        np.testing.assert_array_equal(got.detections.class_ids, expected.detections.class_ids)
        np.testing.assert_array_equal(got.detections.depth, expected.detections.depth)
        assert got.times.total_ms == 3.0 and got.depth_fresh is False
        with pytest.raises(ValueError):
            got.depth[0, 0] = 1.0  # a callback cannot scribble on the slot
        # Detections are copies: the next write to the slot does not change them.
        boxes = got.detections.boxes.copy()
        slots.output(1).write(_result(40, 30, 5, seed=2))
        np.testing.assert_array_equal(got.detections.boxes, boxes)
        del got


def test_output_slot_refuses_what_does_not_fit() -> None:
    with SharedSlots.create(LAYOUT) as slots:
        with pytest.raises(FrameError, match="over max_pixels"):
            slots.output(0).write(_result(64, 49, 1, seed=0))
        with pytest.raises(FrameError, match="detections do not fit"):
            slots.output(0).write(_result(4, 4, 8, seed=0))
        n, shape = slots.output(0).write(EngineResult(detections=Detections.empty(), depth=None))
        assert (n, shape) == (0, None)


def test_depth_written_in_place_is_not_copied_again() -> None:
    with SharedSlots.create(LAYOUT) as slots:
        out = slots.output(0)
        target = out.depth[: 6 * 5].reshape(6, 5)
        target[...] = np.arange(30, dtype=np.float32).reshape(6, 5)  # as Engine(depth_out=...)
        result = EngineResult(detections=Detections.empty(), depth=target)
        assert out.write(result) == (0, (6, 5))
        got = out.read(0, (6, 5), StageTimes(), True)
        np.testing.assert_array_equal(got.depth, np.arange(30, dtype=np.float32).reshape(6, 5))
        # A depth map elsewhere is copied in.
        other = np.full((6, 5), 7, np.float32)
        out.write(EngineResult(detections=Detections.empty(), depth=other))
        np.testing.assert_array_equal(got.depth, other)
        del got, target


def test_kept_view_does_not_break_close() -> None:
    slots = SharedSlots.create(LAYOUT)
    slots.output(0).write(_result(8, 8, 0, seed=0))
    kept = slots.output(0).read(0, (8, 8), StageTimes(), True).depth
    expected = kept.copy()
    slots.close()
    slots.unlink()
    del slots
    assert our_segments() == set()
    # The mapping follows its last view: still readable, no crash, same values.
    np.testing.assert_array_equal(kept, expected)


def _child_fill(name: str, layout: SlotLayout) -> None:
    """In a spawned child: read input slot 2, write a result derived from it into output 0."""
    slots = SharedSlots.attach(name, layout)
    frame = slots.input(2)[: 20 * 10 * 3].reshape(20, 10, 3)
    depth = frame.mean(axis=2, dtype=np.float32)
    boxes = np.array([[1, 2, 3, 4]], np.float32) * frame[0, 0, 0]
    dets = Detections(boxes, np.ones(1, np.float32), np.ones(1, np.int32), np.ones(1, np.float32))
    slots.output(0).write(EngineResult(detections=dets, depth=depth))
    slots.close()


def test_frame_and_result_cross_a_spawned_process() -> None:
    with SharedSlots.create(LAYOUT) as slots:
        frame = np.random.default_rng(3).integers(0, 255, (20, 10, 3), dtype=np.uint8)
        slots.input(2)[: frame.size] = frame.ravel()
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_child_fill, args=(slots.name, LAYOUT))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        got = slots.output(0).read(1, (20, 10), StageTimes(), True)
        np.testing.assert_allclose(got.depth, frame.mean(axis=2, dtype=np.float32))
        np.testing.assert_array_equal(
            got.detections.boxes[0], np.float32([1, 2, 3, 4]) * frame[0, 0, 0]
        )
        del got
        # The child's exit did not unlink the parent's segment.
        assert our_segments() == {slots.name}


def test_no_resource_tracker_complaints(tmp_path: Path) -> None:
    """Children attach (and die hard) without the tracker unlinking or warning about anything."""
    script = tmp_path / "slots_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, os, sys
            from aria_perception.worker.slots import SharedSlots, SlotLayout

            def attach_and_die(name, layout, hard):
                slots = SharedSlots.attach(name, layout)
                slots.input(0)[:4] = 7
                if hard:
                    os._exit(9)
                slots.close()

            if __name__ == "__main__":
                layout = SlotLayout(4096, 1024, 4)
                slots = SharedSlots.create(layout, prefix="ariatest")
                ctx = multiprocessing.get_context("spawn")
                for hard in (False, True):
                    p = ctx.Process(target=attach_and_die, args=(slots.name, layout, hard))
                    p.start(); p.join(60)
                assert os.path.exists("/dev/shm/" + slots.name), "a child unlinked it"
                assert list(slots.input(0)[:4]) == [7] * 4
                slots.close(); slots.unlink()
                print("NAME", slots.name)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.split("NAME ")[1].strip()
    assert not os.path.exists(f"/dev/shm/{name}")
    # The resource tracker's complaints: "leaked shared_memory", KeyError on a double unregister.
    assert "resource_tracker" not in proc.stderr and "KeyError" not in proc.stderr, proc.stderr
