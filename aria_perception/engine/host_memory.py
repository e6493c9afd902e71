"""The host side of the engine's transfers: page-locked buffers and pinned staging.

On CUDA a copy between the device and pageable host memory is staged by the driver and blocks;
one from or into page-locked memory is a DMA that can run asynchronously on a stream. The
engine's long-lived buffers (the worker's shared-memory slots) are page-locked in place with
``cudaHostRegister`` (:meth:`HostMemory.register`); anything else goes through a reused pinned
staging buffer. On the CPU both are plain copies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch

from aria_perception.errors import FrameError

__all__ = ["HostMemory", "PinnedBuffer", "output_target"]

_LOG = logging.getLogger(__name__)


class PinnedBuffer:
    """A pinned host buffer of one dtype, grown as needed and reused from frame to frame.

    Args:
        dtype: the element type.
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self._buffer: torch.Tensor | None = None
        self._busy: torch.cuda.Event | None = None

    def take(self, numel: int) -> torch.Tensor:
        """The first ``numel`` elements (valid until the next :meth:`take`).

        Waits for the copy that :meth:`busy_until_done` marked, if any: the buffer is reused.
        """
        if self._busy is not None:
            self._busy.synchronize()
            self._busy = None
        buf = self._buffer
        if buf is None or buf.numel() < numel:
            buf = torch.empty(max(numel, 1), dtype=self.dtype, pin_memory=True)
            self._buffer = buf
        return buf[:numel]

    def busy_until_done(self) -> None:
        """Mark a copy from the buffer just queued on the current CUDA stream.

        The next :meth:`take` waits for it: the frames of one batch are staged in a row.
        """
        self._busy = torch.cuda.Event()
        self._busy.record()

    def release(self) -> None:
        """Free the buffer."""
        self._buffer = None
        self._busy = None


class HostMemory:
    """Copies between host arrays and device tensors, by DMA where the host memory allows.

    Args:
        is_cuda: whether the device is a GPU (else every method is a plain copy).
    """

    def __init__(self, is_cuda: bool) -> None:
        self.is_cuda = is_cuda
        self._registered: list[tuple[int, int]] = []  # (address, nbytes) page-locked by us
        self.frame_staging = PinnedBuffer(torch.uint8)
        self.detections_staging = PinnedBuffer(torch.float32)
        self.exact_staging = PinnedBuffer(torch.float32)
        self._output_staging: dict[tuple[str, int], PinnedBuffer] = {}

    def output_staging(self, what: str, index: int, dtype: torch.dtype) -> PinnedBuffer:
        """The staging buffer of output ``what`` of a round's ``index``-th frame.

        A round (:meth:`Engine.process_batch`) queues the copies of every frame's outputs (depth
        map, rectified frame) before it reads any, so each frame stages in its own buffer.
        """
        buffer = self._output_staging.get((what, index))
        if buffer is None:
            buffer = self._output_staging[what, index] = PinnedBuffer(dtype)
        return buffer

    def register(self, array: np.ndarray) -> bool:
        """Page-lock ``array``'s memory (until :meth:`unregister` or :meth:`close`).

        Returns:
            False on the CPU or on failure.
        """
        if not self.is_cuda or array.nbytes == 0:
            return False
        address = array.__array_interface__["data"][0]
        if self._is_registered(address, array.nbytes):
            return True
        err = torch.cuda.cudart().cudaHostRegister(address, array.nbytes, 0)
        if int(err) != 0:
            _LOG.warning("cudaHostRegister of %d bytes failed (%s); staging copies", array.nbytes,
                         err)  # fmt: skip
            return False
        self._registered.append((address, array.nbytes))
        return True

    def unregister(self, array: np.ndarray) -> None:
        """Undo :meth:`register` of exactly ``array``, else nothing.

        The caller has synchronised the device: no copy may still read or write the memory.
        """
        entry = (array.__array_interface__["data"][0], array.nbytes)
        if entry not in self._registered:
            return
        torch.cuda.cudart().cudaHostUnregister(entry[0])
        self._registered.remove(entry)

    def _is_registered(self, address: int, nbytes: int) -> bool:
        return any(a <= address and address + nbytes <= a + n for a, n in self._registered)

    def registered_tensor(self, array: np.ndarray) -> torch.Tensor | None:
        """``array`` as a flat tensor if it lies in registered memory (DMA-able), else None."""
        if not self._registered or not array.flags.c_contiguous:
            return None
        address = array.__array_interface__["data"][0]
        if not self._is_registered(address, array.nbytes):
            return None
        return torch.from_numpy(array).reshape(-1)

    def upload(self, frame: np.ndarray, target: torch.Tensor) -> None:
        """Copy ``frame``'s pixels into the device tensor ``target`` on the current stream.

        From registered memory straight to the device, else through the pinned staging buffer
        (one host copy), without blocking the host on CUDA.
        """
        src = torch.from_numpy(np.ascontiguousarray(frame))
        if not self.is_cuda:
            target.copy_(src.view(target.shape))
            return
        direct = self.registered_tensor(frame)
        if direct is not None:
            target.view(-1).copy_(direct, non_blocking=True)
            return
        pinned = self.frame_staging.take(src.numel())
        pinned.copy_(src.reshape(-1))
        target.view(-1).copy_(pinned, non_blocking=True)
        self.frame_staging.busy_until_done()

    def download(
        self, tensor: torch.Tensor | None, staging: PinnedBuffer
    ) -> Callable[[], np.ndarray]:
        """Start copying ``tensor`` to the host; the returned function reads it once synced.

        On CUDA the copy goes to ``staging`` without blocking; the caller must synchronise the
        current stream before calling the returned function, whose array is only valid until
        the next frame (copy it to keep it). None gives an empty array.
        """
        if tensor is None:
            return lambda: np.zeros(0, np.float32)
        flat = tensor.reshape(-1)
        if not self.is_cuda:
            return flat.numpy
        pinned = staging.take(flat.numel())
        pinned.copy_(flat, non_blocking=True)
        return pinned.numpy

    def output_dest(
        self, out: np.ndarray, shape: tuple[int, ...], dtype: type, what: str
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """Where an output of ``shape`` and ``dtype`` goes in ``out``, and whether by DMA.

        Returns:
            The target array (:func:`output_target`) and, when it lies in registered memory,
            the same memory as a flat tensor to copy into straight from the device (else None).

        Raises:
            FrameError: ``out`` does not fit.
        """
        target = output_target(out, shape, dtype, what)
        return target, self.registered_tensor(target)

    def fetch_into(
        self, tensor: torch.Tensor, out: np.ndarray, what: str, staging: PinnedBuffer
    ) -> Callable[[], np.ndarray]:
        """Start copying ``tensor`` into ``out``; the returned function gives ``out`` once synced.

        Straight into ``out`` by DMA when it lies in registered memory (a shared-memory slot),
        else through ``staging`` and a host copy when the function is called.

        Args:
            tensor: the device tensor.
            out: an array of ``tensor``'s shape and dtype, or a flat buffer of at least as many
                elements (:func:`output_target`).
            what: the argument's name, for the error.
            staging: the pinned buffer for the staged path.

        Raises:
            FrameError: ``out`` does not fit.
        """
        dtype = np.dtype(str(tensor.dtype).removeprefix("torch."))
        target, direct = self.output_dest(out, tuple(tensor.shape), dtype.type, what)
        if direct is not None:
            direct.copy_(tensor.reshape(-1), non_blocking=True)
            return lambda: target
        fetch = self.download(tensor, staging)

        def read() -> np.ndarray:
            target[...] = fetch().reshape(target.shape)
            return target

        return read

    def close(self) -> None:
        """Unregister the page-locked memory and free the staging buffers (after a sync)."""
        for buffer in (
            self.frame_staging,
            self.detections_staging,
            self.exact_staging,
            *self._output_staging.values(),
        ):
            buffer.release()
        self._output_staging.clear()
        for address, _ in self._registered:
            torch.cuda.cudart().cudaHostUnregister(address)
        self._registered.clear()


def output_target(out: np.ndarray, shape: tuple[int, ...], dtype: type, what: str) -> np.ndarray:
    """``out`` as the array of ``shape`` to write an output into.

    ``out`` is either that array or a flat buffer of at least as many elements (a shared-memory
    slot, for outputs whose size is known only once the frame is decoded or rectified).

    Raises:
        FrameError: ``out`` is neither.
    """
    size = math.prod(shape)
    if out.dtype == dtype and out.ndim == 1 and out.size >= size:
        return out[:size].reshape(shape)
    if out.dtype != dtype or out.shape != shape:
        raise FrameError(
            f"{what} must be {np.dtype(dtype).name} {shape} (or a flat buffer of at least "
            f"{size} elements), got {out.dtype} {out.shape}"
        )
    return out
