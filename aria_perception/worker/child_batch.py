"""Running frames in the worker: one frame, or several cameras' as one engine call.

A frame run alone goes through :func:`run_batch` as a batch of one, with the engine's
``process`` (:func:`process_alone`): the announcing, the answers and the failure rules below
are the same for both.

With ``EngineConfig.batch_cameras`` and an engine that has ``process_batch`` (see
:mod:`~aria_perception.worker.engine_api`), the worker's loop serves the camera whose turn it is
(round-robin, as without batching) together with every other camera that can run now (a request
waiting and an output slot free) and has the same detector thresholds: one
:class:`~aria_perception.records.BatchItem` per camera, at most one frame per camera, in the
order of the round. Cameras whose thresholds differ wait for their own turn, as they would
without batching (and then run with the cameras of their thresholds); a batch of one frame
goes through ``Engine.process``, exactly as without batching.

Every frame of a batch is announced with ``Started`` before the call and answered on its own:
a ``Result`` in its camera's output slot (``engine_ms`` is the whole call's time,
``batch_size`` the number of frames in it), or ``FrameFailed`` (not fatal) for a frame the
engine refused. An exception from the whole call fails every frame of the batch fatally and
the worker exits; a crash in the call (the process dies) leaves each camera's started frame as
that camera's poison frame, so a crash in a batched call marks every frame of the batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from aria_perception.errors import EngineError, FrameError
from aria_perception.records import BatchItem, EngineConfig, EngineResult, Thresholds
from aria_perception.worker import protocol as msg
from aria_perception.worker.child_camera import ChildCamera
from aria_perception.worker.engine_api import InferenceEngine

__all__ = [
    "BatchCall",
    "BatchHost",
    "Taken",
    "answer",
    "batch_partners",
    "batch_process",
    "process_alone",
    "run_batch",
]

#: An engine's ``process_batch``.
BatchCall = Callable[[Sequence[BatchItem]], list[EngineResult | FrameError]]

#: How old the GPU memory figure sent with a result may be.
_FRAME_MEMORY_AGE_S = 1.0


class BatchHost(Protocol):
    """What :func:`run_batch` uses of the worker (``child._Worker``)."""

    gen: int
    steps: int
    raise_next: msg.ErrorInfo | None
    keywords: frozenset[str]

    def send(self, message: object) -> None:
        """Send ``message`` to the parent."""
        ...

    def apply(self, engine: InferenceEngine, thresholds: Thresholds) -> None:
        """Make ``thresholds`` the engine's."""
        ...

    def memory(self, max_age_s: float = 0.0) -> tuple[float, float]:
        """GPU memory (current, peak) in MB, at most ``max_age_s`` old."""
        ...


class Taken(NamedTuple):
    """A camera's request taken for a batch: the camera, the request, when it arrived."""

    camera: ChildCamera
    request: msg.FrameRequest
    received: float


def batch_process(engine: InferenceEngine, config: EngineConfig) -> BatchCall | None:
    """The engine's ``process_batch`` when ``config.batch_cameras`` asks for batching."""
    if not config.batch_cameras:
        return None
    method = getattr(engine, "process_batch", None)
    return method if callable(method) else None


def batch_partners(cameras: dict[str, ChildCamera], first: ChildCamera) -> list[ChildCamera]:
    """The other cameras that can run with ``first`` now, in the round's order after it.

    Runnable (a request waiting, an output slot free) and with ``first``'s thresholds.
    """
    names = list(cameras)
    at = names.index(first.name) + 1 if first.name in cameras else 0
    partners = []
    for name in names[at:] + names[:at]:
        camera = cameras[name]
        if camera is not first and camera.runnable and camera.thresholds == first.thresholds:
            partners.append(camera)
    return partners


def process_alone(engine: InferenceEngine, keywords: frozenset[str]) -> BatchCall:
    """``engine.process`` as a call of one frame, with the optional keywords it takes."""

    def call(items: Sequence[BatchItem]) -> list[EngineResult | FrameError]:
        [item] = items
        extra: dict[str, object] = {}
        if item.rect_out is not None:
            extra["rect_out"] = item.rect_out
        if "camera" in keywords:
            extra["camera"] = item.camera
        if item.rotation is not None:  # set only where the engine takes it (_item)
            extra["rotation"] = item.rotation
        frame, encoding = item.frame, item.encoding
        kw = {"want_depth": item.want_depth, "depth_out": item.depth_out, **extra}
        return [engine.process(frame, encoding, **kw)]

    return call


def _item(host: BatchHost, taken: Taken, out_slot: int, rectify: bool) -> BatchItem:
    """``taken``'s frame as the engine's ``process`` arguments."""
    camera, request = taken.camera, taken.request
    out = camera.slots.output(out_slot)
    item = BatchItem(
        frame=camera.pixels(request),
        encoding=request.encoding,
        want_depth=request.want_depth,
        depth_out=camera.depth_out(out, request, rectify),
    )
    if request.want_rect and out.rect.size:  # optional: only rectifying engines get it
        item.rect_out = out.rect
    if "camera" in host.keywords:
        item.camera = camera.name
    if camera.rotation is not None and "rotation" in host.keywords:
        item.rotation = camera.rotation
    return item


def run_batch(
    host: BatchHost,
    engine: InferenceEngine,
    process_batch: BatchCall,
    batch: Sequence[Taken],
    rectify: bool,
) -> bool:
    """Run ``batch`` (one request per camera, same thresholds) as one engine call.

    ``process_batch`` is the engine's, or :func:`process_alone` for a frame run alone.

    Returns:
        False when the call failed as a whole and the worker must go: every frame of the
        batch not answered yet was answered with a fatal ``FrameFailed``. (A ``FrameError``
        raised for the whole call fails those frames without ending the worker.)
    """
    slots = []
    for taken in batch:
        slots.append(taken.camera.free_outputs.pop(0))
        # Before the engine sees the frames: should it kill us, the parent knows which ones.
        request = taken.request
        host.send(msg.Started(request.frame_id, host.gen, time.monotonic(), request.camera))
    answered = 0
    try:
        if host.raise_next is not None:
            injected, host.raise_next = host.raise_next, None
            raise injected.to_exception()
        host.apply(engine, batch[0].camera.thresholds)  # shared by every camera of the batch
        items = [
            _item(host, taken, slot, rectify) for taken, slot in zip(batch, slots, strict=True)
        ]
        t0 = time.monotonic()
        results = process_batch(items)
        t1 = time.monotonic()
        if len(results) != len(batch):
            raise EngineError(
                f"the engine returned {len(results)} results for {len(batch)} frames"
            )
        for taken, slot, result in zip(batch, slots, results, strict=True):
            answer(host, taken, slot, result, (t0, t1), len(batch))
            answered += 1
    except Exception as exc:
        # A FrameError for the whole call refuses its frames, the worker goes on (as for one
        # frame); anything else (CUDA errors, OOM) needs a fresh process.
        fatal = not isinstance(exc, FrameError)
        error = msg.ErrorInfo.from_exception(exc)
        for taken, slot in zip(batch[answered:], slots[answered:], strict=True):
            request = taken.request
            if not fatal:
                taken.camera.free_outputs.append(slot)
            host.send(msg.FrameFailed(request.frame_id, host.gen, error, fatal, request.camera))
        return not fatal
    return True


def answer(
    host: BatchHost,
    taken: Taken,
    out_slot: int,
    result: EngineResult | FrameError,
    call: tuple[float, float],
    batch_size: int,
) -> None:
    """Write one frame's result to its output slot and send it; or report its FrameError.

    ``call`` is when the engine call started and ended; ``batch_size`` its frames. For a frame
    run alone as for one of a batch; an error other than a FrameError propagates.
    """
    camera, request = taken.camera, taken.request
    try:
        if isinstance(result, FrameError):
            raise result
        if not isinstance(result, EngineResult):
            raise EngineError(f"the engine returned {type(result).__name__}, not an EngineResult")
        t2 = time.monotonic()
        out = camera.slots.output(out_slot)
        n, depth_shape = out.write(result)
        rect_shape = out.write_rectified(result)
        t3 = time.monotonic()
    except FrameError as exc:
        camera.free_outputs.append(out_slot)  # nothing in it for the parent to read
        error = msg.ErrorInfo.from_exception(exc)
        host.send(msg.FrameFailed(request.frame_id, host.gen, error, False, request.camera))
        return
    host.steps += 1
    current, peak = host.memory(max_age_s=_FRAME_MEMORY_AGE_S)
    t0, t1 = call
    host.send(
        msg.Result(
            frame_id=request.frame_id,
            generation=host.gen,
            out_slot=out_slot,
            n_detections=n,
            depth_shape=depth_shape,
            depth_fresh=bool(result.depth_fresh),
            times=result.times,
            engine_ms=(t1 - t0) * 1e3,
            copy_out_ms=(t3 - t2) * 1e3,
            received_at=taken.received,
            started_at=t0,
            sent_at=time.monotonic(),
            gpu_mem_mb=current,
            gpu_mem_peak_mb=peak,
            rect_shape=rect_shape,
            camera=request.camera,
            batch_size=batch_size,
        )
    )
