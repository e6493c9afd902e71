"""Shared-memory slots: frames go to the worker and results come back without pickling.

One POSIX shared-memory segment per supervisor, created and unlinked by the parent (the only
owner), attached by each worker generation. It holds :data:`INPUT_SLOTS` input slots (raw pixels or
compressed bytes) and :data:`OUTPUT_SLOTS` output slots (depth map plus fixed-capacity detection
arrays). Which slot a frame or a result uses is decided by the parent and named in the small
control messages of :mod:`aria_perception.worker.protocol`.
"""

from __future__ import annotations

import itertools
import math
import mmap
import os
import sys
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from aria_perception.errors import FrameError, WorkerStartError
from aria_perception.records import (
    COMPRESSED_FORMATS,
    Detections,
    EngineResult,
    StageTimes,
    check_encoded_frame,
    check_raw_frame,
)
from aria_perception.worker.settings import WorkerSettings

#: Up to three frames in the worker (one running, the newer ones waiting there: it runs only the
#: newest of them next) and one being copied in by ``submit``; when all are taken, a frame
#: pending in the parent gives its slot to the newer one.
INPUT_SLOTS = 4
#: The parent's callback reads one while the worker writes the next frame's result.
OUTPUT_SLOTS = 2

_PAGE = 4096
_LINE = 64
_names = itertools.count()


def input_data(frame: object, encoding: str, settings: WorkerSettings) -> np.ndarray:
    """``frame`` as it goes into an input slot, checked against the slot sizes.

    Args:
        frame: (H, W, C) or (H, W) uint8 pixels in a raw ``encoding``, or the compressed bytes
            (a 1-D uint8 array or a bytes-like object) for ``jpeg``/``png``.
        encoding: The raw encoding or compressed format.
        settings: ``max_pixels`` and ``encoded_bytes`` bound what fits.

    Returns:
        The pixels as given, or the compressed bytes as a 1-D uint8 array.

    Raises:
        FrameError: the frame does not fit its encoding or the slots.
    """
    if encoding not in COMPRESSED_FORMATS:
        check_raw_frame(frame, encoding, settings.max_pixels)
        return frame  # type: ignore[return-value]  # checked: a uint8 array
    if not isinstance(frame, np.ndarray):
        try:
            frame = np.frombuffer(frame, np.uint8)  # type: ignore[call-overload]
        except TypeError as err:
            got = type(frame).__name__
            raise FrameError(f"{encoding} frame must be bytes, got {got}") from err
    check_encoded_frame(frame, encoding, settings.encoded_bytes)
    return frame


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class SlotLayout:
    """Sizes and offsets of the slots in the segment (both processes compute the same ones).

    Attributes:
        input_bytes: Capacity of one input slot in bytes.
        max_depth_pixels: Capacity of one depth map in float32 values.
        max_detections: Capacity of the detection arrays of one output slot.
        rect_bytes: Capacity of the rectified frame of one output slot (0 without
            ``input.rectify``).
    """

    input_bytes: int
    max_depth_pixels: int
    max_detections: int
    rect_bytes: int = 0

    def __post_init__(self) -> None:
        if (
            self.input_bytes < 1
            or self.max_depth_pixels < 1
            or self.max_detections < 0
            or self.rect_bytes < 0
        ):
            raise ValueError(f"invalid slot layout {self}")

    @property
    def input_stride(self) -> int:
        """Bytes from one input slot to the next (page aligned)."""
        return _align(self.input_bytes, _PAGE)

    @property
    def _det_offsets(self) -> tuple[int, int, int, int, int, int]:
        """Offsets of boxes, scores, class ids, box depth, the rectified frame and the end."""
        boxes = _align(self.max_depth_pixels * 4, _LINE)
        scores = _align(boxes + self.max_detections * 16, _LINE)
        class_ids = _align(scores + self.max_detections * 4, _LINE)
        box_depth = _align(class_ids + self.max_detections * 4, _LINE)
        rect = _align(box_depth + self.max_detections * 4, _LINE)
        return boxes, scores, class_ids, box_depth, rect, rect + self.rect_bytes

    @property
    def output_stride(self) -> int:
        """Bytes from one output slot to the next (page aligned)."""
        return _align(self._det_offsets[-1], _PAGE)

    @property
    def size(self) -> int:
        """Bytes of the whole segment."""
        return INPUT_SLOTS * self.input_stride + OUTPUT_SLOTS * self.output_stride

    def input_offset(self, index: int) -> int:
        """Offset of input slot ``index`` in the segment."""
        return index * self.input_stride

    def output_offset(self, index: int) -> int:
        """Offset of output slot ``index`` in the segment."""
        return INPUT_SLOTS * self.input_stride + index * self.output_stride


class OutputSlot:
    """Views of one output slot: a depth map and fixed-capacity detection arrays."""

    def __init__(self, buf: mmap.mmap, offset: int, layout: SlotLayout) -> None:
        cap = layout.max_detections
        boxes, scores, class_ids, box_depth, rect, _ = layout._det_offsets
        self.depth = np.ndarray((layout.max_depth_pixels,), np.float32, buf, offset)
        self.boxes = np.ndarray((cap, 4), np.float32, buf, offset + boxes)
        self.scores = np.ndarray((cap,), np.float32, buf, offset + scores)
        self.class_ids = np.ndarray((cap,), np.int32, buf, offset + class_ids)
        self.box_depth = np.ndarray((cap,), np.float32, buf, offset + box_depth)
        self.rect = np.ndarray((layout.rect_bytes,), np.uint8, buf, offset + rect)

    def write(self, result: EngineResult) -> tuple[int, tuple[int, int] | None]:
        """Copy ``result`` into the slot (worker side).

        Returns:
            The number of detections written and the depth map's shape (``None`` without depth).

        Raises:
            FrameError: the depth map is larger than the slot (a decoded frame over max_pixels)
                or more detections came back than the slot holds.
        """
        dets = result.detections
        n = len(dets)
        if n > self.scores.shape[0]:
            raise FrameError(
                f"{n} detections do not fit the {self.scores.shape[0]} the worker was sized for "
                "(detector.max_detections)"
            )
        self.boxes[:n] = dets.boxes
        self.scores[:n] = dets.scores
        self.class_ids[:n] = dets.class_ids
        self.box_depth[:n] = dets.depth
        depth = result.depth
        if depth is None:
            return n, None
        if depth.ndim != 2:
            raise FrameError(f"depth map must be 2-D, got shape {depth.shape}")
        h, w = depth.shape
        if h * w > self.depth.shape[0]:
            raise FrameError(
                f"frame of {w}x{h} = {h * w} pixels is over max_pixels={self.depth.shape[0]}"
            )
        target = self.depth[: h * w].reshape(h, w)
        if not _same_memory(depth, target):  # unless the engine wrote it in place (depth_out)
            np.copyto(target, depth, casting="same_kind")
        return n, (h, w)

    def write_rectified(self, result: EngineResult) -> tuple[int, int, int] | None:
        """Copy the result's rectified frame into the slot, unless written there in place.

        Returns:
            Its (H, W, C) shape, or ``None`` without one.

        Raises:
            FrameError: it is larger than the slot's rectified-frame capacity.
        """
        image = result.rectified
        if image is None:
            return None
        if image.ndim != 3 or image.dtype != np.uint8 or image.size > self.rect.shape[0]:
            raise FrameError(
                f"rectified frame {image.dtype} {image.shape} does not fit the "
                f"{self.rect.shape[0]} bytes of the output slot"
            )
        target = self.rect[: image.size].reshape(image.shape)
        if not _same_memory(image, target):
            np.copyto(target, image)
        h, w, c = image.shape
        return h, w, c

    def read(
        self,
        n: int,
        depth_shape: tuple[int, int] | None,
        times: StageTimes,
        depth_fresh: bool,
        rect_shape: tuple[int, int, int] | None = None,
    ) -> EngineResult:
        """The result in the slot (parent side).

        Detections are copied (they are small); the depth map and the rectified frame are
        read-only views of the slot, valid until the slot is used again.
        """
        dets = Detections(
            boxes=self.boxes[:n].copy(),
            scores=self.scores[:n].copy(),
            class_ids=self.class_ids[:n].copy(),
            depth=self.box_depth[:n].copy(),
        )
        depth = None
        if depth_shape is not None:
            h, w = depth_shape
            depth = self.depth[: h * w].reshape(h, w)
            depth.flags.writeable = False
        rect = None
        if rect_shape is not None:
            rect = self.rect[: math.prod(rect_shape)].reshape(rect_shape)
            rect.flags.writeable = False
        return EngineResult(dets, depth, times, depth_fresh, rectified=rect)


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` are the very same elements (same start, shape and strides)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def _attach_untracked(name: str) -> shared_memory.SharedMemory:
    """Attach to an existing segment without handing it to a resource tracker.

    Before Python 3.13 attaching registers the segment with the resource tracker, which would
    unlink it (or warn about it) when the attaching process ends; only the creating parent may do
    that. A spawned worker shares the parent's tracker, so the registration is skipped rather than
    undone (an ``unregister`` would also drop the parent's own registration).
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name, track=False)  # type: ignore[call-arg]
    from multiprocessing import resource_tracker

    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        return shared_memory.SharedMemory(name)
    finally:
        resource_tracker.register = register  # type: ignore[assignment]


class SharedSlots:
    """The slot segment of a supervisor: created and unlinked by the parent, attached by workers.

    Use :meth:`create` in the parent and :meth:`attach` in a worker. Both give the same views:
    :meth:`input` for the input slots and :meth:`output` for the output slots.
    """

    def __init__(self, shm: shared_memory.SharedMemory, layout: SlotLayout, owner: bool) -> None:
        # numpy views do not pin a buffer export, so unmapping under a live view would leave it
        # dangling. Hence a mapping of our own whose life follows its views by reference count:
        # close() only drops our references, and the pages are unmapped when the last view
        # (say, a depth map a callback kept) is gone. SharedMemory's own mapping is closed now.
        mapping = mmap.mmap(shm._fd, layout.size)  # type: ignore[attr-defined]
        shm.close()
        self._shm = shm  # kept for the name and unlink()
        self._closed = False
        self._unlinked = False
        self.layout = layout
        self.owner = owner
        self.name = shm.name
        self._inputs = [
            np.ndarray((layout.input_bytes,), np.uint8, mapping, layout.input_offset(i))
            for i in range(INPUT_SLOTS)
        ]
        self._outputs = [
            OutputSlot(mapping, layout.output_offset(i), layout) for i in range(OUTPUT_SLOTS)
        ]
        self._whole = np.ndarray((layout.size,), np.uint8, mapping, 0)

    @classmethod
    def create(cls, layout: SlotLayout, prefix: str = "aria") -> SharedSlots:
        """Create a new segment named ``<prefix>_<pid>_<n>`` with its memory reserved.

        Raises:
            WorkerStartError: /dev/shm cannot hold the segment.
        """
        while True:
            name = f"{prefix}_{os.getpid()}_{next(_names)}"
            try:
                shm = shared_memory.SharedMemory(name, create=True, size=layout.size)
            except FileExistsError:  # a leftover of an earlier process with the same pid
                continue
            break
        try:
            # Reserve the pages now: a full /dev/shm must fail here with a message, not later
            # with SIGBUS in whichever process first touches an unbacked page.
            fd = getattr(shm, "_fd", -1)
            if fd >= 0 and hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, layout.size)
        except OSError as err:
            shm.close()
            shm.unlink()
            raise WorkerStartError(
                f"cannot reserve {layout.size / 2**20:.0f} MiB of shared memory for the worker "
                f"slots ({err}); enlarge /dev/shm or lower input.max_pixels"
            ) from err
        return cls(shm, layout, owner=True)

    @classmethod
    def attach(cls, name: str, layout: SlotLayout) -> SharedSlots:
        """Attach to the parent's segment ``name`` (worker side; never unlinks it)."""
        shm = _attach_untracked(name)
        if shm.size < layout.size:
            shm.close()
            raise WorkerStartError(
                f"shared memory {name!r} has {shm.size} bytes, the layout needs {layout.size}"
            )
        return cls(shm, layout, owner=False)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def buffer(self) -> np.ndarray:
        """The whole segment as one uint8 view (for page-locking it once in the worker)."""
        return self._whole

    def input(self, index: int) -> np.ndarray:
        """The whole input slot ``index`` as a 1-D uint8 array."""
        if self._closed:
            raise ValueError("shared slots are closed")
        return self._inputs[index]

    def output(self, index: int) -> OutputSlot:
        """Output slot ``index``."""
        if self._closed:
            raise ValueError("shared slots are closed")
        return self._outputs[index]

    def close(self) -> None:
        """Drop this object's views of the segment (idempotent).

        The pages are unmapped once no view of them is left anywhere in the process, so a view
        someone kept stays valid.
        """
        self._closed = True
        self._inputs = []
        self._outputs = []
        self._whole = np.zeros(0, np.uint8)

    def unlink(self) -> None:
        """Remove the segment's name (parent only, once; the memory goes with the last mapping)."""
        if not self.owner:
            raise RuntimeError("only the process that created the shared slots may unlink them")
        if self._unlinked:
            return
        self._unlinked = True
        # SharedMemory.unlink also unregisters the name from the resource tracker, so it must
        # run exactly once, here.
        self._shm.unlink()

    def __enter__(self) -> SharedSlots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self.owner:
            self.unlink()
