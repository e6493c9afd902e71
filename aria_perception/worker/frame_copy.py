"""Copying a frame into its shared-memory input slot, on a few threads for multi-MB frames.

numpy releases the GIL while it copies, so pieces of rows copy in parallel. The pieces are shared
out, not assigned: the calling thread and the pool's threads each take the next piece until none
is left. A pool thread that wakes late (it slept since the last frame, 33 ms at a camera's rate)
then finds no piece left, the caller having copied it too, instead of holding the call until it
has woken and copied a band of its own: the caller waits for a piece being copied, never for a
wake-up.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["COPY_THREADS", "PARALLEL_COPY_BYTES", "PIECES_PER_THREAD", "copy_frame"]

#: Frames of at least this size are copied into a slot by several threads.
PARALLEL_COPY_BYTES = 1 << 20
#: Threads :func:`copy_frame` uses for such frames; None: the default (two where there are two
#: cores). The transport benchmark's ``--copy-threads`` sets it.
COPY_THREADS: int | None = None
#: Pieces of rows per thread. More, smaller pieces would share a late thread's work out more
#: finely, but each piece costs the GIL back: on a 2-core machine at 30 Hz (transport benchmark,
#: echo engine) two threads copied a 1408x1408 rgb8 frame in 1.54 ms p50 with one piece each,
#: 1.87-2.01 with two, 1.75-1.85 with four.
PIECES_PER_THREAD = 1

_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def copy_threads() -> int:
    """The threads a multi-MB copy uses, the caller included."""
    if COPY_THREADS is not None:
        return max(1, COPY_THREADS)
    # Measured on the GPU machine (5.9 MB, cold source, the caller copying one band): 1 thread
    # 0.65 ms p50 / 0.77 p95, 2 threads 0.41 / 0.58, 4 threads 0.32 / 0.41, 8 threads 0.60 /
    # 1.07. Two was chosen on end-to-end runs, where the copy competes with the node's other
    # threads (4 threads had a 1.8 ms p95 there).
    return max(1, min(2, os.cpu_count() or 1))


def pool_workers() -> int:
    """Threads in the copy pool now (the caller is the copy's other thread)."""
    return _pool_workers


def copy_frame(dst: np.ndarray, src: np.ndarray) -> None:
    """``np.copyto(dst, src)``, shared out over a few threads for multi-MB frames."""
    threads = copy_threads()
    if src.nbytes < PARALLEL_COPY_BYTES or threads == 1 or src.ndim == 0 or src.shape[0] < 2:
        np.copyto(dst, src)
        return
    bounds = np.linspace(0, src.shape[0], threads * PIECES_PER_THREAD + 1).astype(int)
    pieces = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    _SharedCopy(dst, src, pieces).run(_the_pool(threads - 1), threads - 1)


def _the_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="aria-copy")
            _pool_workers = workers
        return _pool


class _SharedCopy:
    """One frame's pieces, taken in turn by whichever thread is free."""

    def __init__(self, dst: np.ndarray, src: np.ndarray, pieces: list[tuple[int, int]]) -> None:
        self._dst, self._src, self._pieces = dst, src, pieces
        self._next = itertools.count()  # next() on it is atomic under the GIL
        self._left = len(pieces)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._error: BaseException | None = None

    def run(self, pool: ThreadPoolExecutor, helpers: int) -> None:
        """Copy every piece, with up to ``helpers`` pool threads; returns once all are copied."""
        for _ in range(helpers):
            pool.submit(self._take)
        self._take()
        self._done.wait()  # only a piece another thread is copying now can be left
        if self._error is not None:
            raise self._error

    def _take(self) -> None:
        while (k := next(self._next)) < len(self._pieces):
            a, b = self._pieces[k]
            try:
                np.copyto(self._dst[a:b], self._src[a:b])
            except BaseException as err:  # handed to the caller, whose copy it is
                self._error = err
            finally:
                with self._lock:
                    self._left -= 1
                    if self._left == 0:
                        self._done.set()
