"""A frame's copy into its slot: every byte, whatever the size and threads; no thread awaited."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from aria_perception.worker import frame_copy
from aria_perception.worker.frame_copy import copy_frame

FRAME = (1408, 1408, 3)


@pytest.mark.parametrize("threads", [None, 1, 3], ids=["default", "one-thread", "three-threads"])
@pytest.mark.parametrize("shape", [FRAME, (700, 900), (3_000_000,), (5, 7, 3)])
def test_copy_frame_copies_every_byte_whatever_the_size(
    shape: tuple[int, ...], threads: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frame_copy, "COPY_THREADS", threads)
    src = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    dst = np.zeros_like(src)
    copy_frame(dst, src)
    np.testing.assert_array_equal(dst, src)
    # A strided source (a padded row step seen through a view) too.
    if len(shape) == 3:
        padded = np.zeros((shape[0], shape[1] + 8, shape[2]), np.uint8)
        padded[:, : shape[1]] = src
        dst2 = np.zeros_like(src)
        copy_frame(dst2, padded[:, : shape[1]])
        np.testing.assert_array_equal(dst2, src)
    if threads is not None and threads > 1 and src.nbytes >= frame_copy.PARALLEL_COPY_BYTES:
        assert frame_copy.pool_workers() == threads - 1  # the caller is the other thread


def test_a_pool_thread_that_never_wakes_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frame_copy, "COPY_THREADS", 2)
    src = np.random.default_rng(1).integers(0, 256, FRAME, dtype=np.uint8)
    dst = np.zeros_like(src)
    # The pool's one thread is held busy, as one asleep or descheduled for the whole copy.
    pool, held, release = frame_copy._the_pool(1), threading.Event(), threading.Event()
    busy = pool.submit(lambda: (held.set(), release.wait()))
    assert held.wait(30)
    copier = threading.Thread(target=copy_frame, args=(dst, src))
    copier.start()
    copier.join(60)  # the caller copies every piece itself
    finished = not copier.is_alive()
    release.set()
    busy.result(30)
    assert finished, "copy_frame waited for a pool thread that had not started"
    np.testing.assert_array_equal(dst, src)
    # The late thread finds no piece left and leaves the frame alone: the next copy is whole.
    src2 = src[::-1].copy()
    copy_frame(dst, src2)
    np.testing.assert_array_equal(dst, src2)


def test_a_failing_copy_raises_in_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frame_copy, "COPY_THREADS", 2)
    src = np.zeros(FRAME, np.uint8)
    with pytest.raises(ValueError):
        copy_frame(np.zeros((*FRAME[:2], 4), np.uint8), src)  # no shape to copy into
    dst = np.zeros_like(src)
    copy_frame(dst, src + 7)  # and the pool still works
    assert (dst == 7).all()
