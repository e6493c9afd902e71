"""Track IDs for one camera's detections with one of Ultralytics' trackers (numpy in and out).

Ultralytics (and with it torch, about 1 s and 450 MB on first use) is imported when the first
:class:`ObjectTracker` of a type other than ``none`` is built, never at import of this module.
The trackers' ``update(results, img)`` needs an object with ``conf``, ``cls``, ``xywh`` and
``xyxy`` arrays that can be indexed by a mask: :class:`DetectionBoxes` is that view of our
arrays. They return the confirmed tracks only, each with the index of the detection it was
matched to in this frame; that index maps the IDs back (see "Tracking" in docs/design.md).
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace
from typing import Any

import numpy as np

from aria_perception.errors import ConfigError
from aria_perception.tracking.tracker_config import TrackerConfig

__all__ = ["NO_ID", "DetectionBoxes", "ObjectTracker", "buffer_frames"]

#: The ID of a detection no confirmed track was matched to.
NO_ID = -1
#: The frame rate the trackers' ``track_buffer`` is counted at (as Ultralytics defined it).
_BUFFER_FPS = 30.0
# Column of the detection index in the trackers' output rows ([..., track_id, score, cls, idx]).
_ID_COLUMN, _INDEX_COLUMN = -4, -1


class DetectionBoxes:
    """Detections as the trackers read them: ``xyxy``, ``xywh``, ``conf`` and ``cls`` arrays.

    Args:
        xyxy: (N, 4) boxes, corners in pixels.
        conf: (N,) scores.
        cls: (N,) class ids.
    """

    __slots__ = ("cls", "conf", "xywh", "xyxy")

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, dtype=np.float32).reshape(-1)
        self.cls = np.asarray(cls, dtype=np.float32).reshape(-1)
        if not len(self.xyxy) == len(self.conf) == len(self.cls):
            raise ValueError(
                f"{len(self.xyxy)} boxes, {len(self.conf)} scores and {len(self.cls)} class ids"
            )
        xywh = np.empty_like(self.xyxy)
        xywh[:, :2] = (self.xyxy[:, :2] + self.xyxy[:, 2:]) * 0.5
        xywh[:, 2:] = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = xywh

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> DetectionBoxes:
        return DetectionBoxes(self.xyxy[index], self.conf[index], self.cls[index])


def _tracker_class(tracker_type: str) -> Any:
    """The Ultralytics tracker class of ``tracker_type`` (imports Ultralytics, and torch)."""
    # Read by Ultralytics at its first import: no connectivity check (DNS lookups) and no pip
    # install of a missing requirement (its matching code would install `lap`).
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    try:
        from ultralytics.trackers.track import TRACKER_MAP
    except ImportError as err:
        raise ConfigError(
            f"tracker.type {tracker_type!r} needs Ultralytics, which cannot be imported: {err}"
        ) from err

    try:
        return TRACKER_MAP[tracker_type]
    except KeyError:
        raise ConfigError(
            f"tracker.type {tracker_type!r} has a shipped YAML but no tracker class in this "
            f"Ultralytics; it has {', '.join(sorted(TRACKER_MAP))}"
        ) from None


def buffer_frames(track_buffer: int, frame_rate: float) -> int:
    """``track_buffer`` (frames at 30 FPS) as frames at ``frame_rate`` (0 or less = 30 FPS).

    The number of frames a lost track is kept, so that it is kept for the same time,
    ``track_buffer / 30`` seconds, whatever the camera's rate (at least one frame).
    """
    fps = frame_rate if frame_rate > 0 and math.isfinite(frame_rate) else _BUFFER_FPS
    return max(1, round(track_buffer * fps / _BUFFER_FPS))


class ObjectTracker:
    """One camera's tracker state: detections in, a track ID per detection out.

    Not thread-safe: one caller at a time (the node calls it from its result thread).

    Args:
        config: the tracker type and settings (:func:`load_tracker_config`); ``none`` gives
            :data:`NO_ID` for every detection without importing Ultralytics.
        frame_rate: frames per second the tracker is fed at; ``track_buffer`` is scaled to it
            (:func:`buffer_frames`).

    Raises:
        ConfigError: the installed Ultralytics has no tracker class of this type.
    """

    def __init__(self, config: TrackerConfig, frame_rate: float = _BUFFER_FPS) -> None:
        self._config = config
        self._tracker: Any = None
        self._frames = 0
        self._buffer_frames = 0
        if not config.enabled:
            return
        settings = dict(config.settings)
        if "track_buffer" in settings:
            settings["track_buffer"] = buffer_frames(int(settings["track_buffer"]), frame_rate)
        self._buffer_frames = settings.get("track_buffer", 0)
        # The trackers read their settings as attributes (Ultralytics passes a namespace too);
        # device is where a ReID network would run, and ReID is refused by the config.
        tracker_class = _tracker_class(config.tracker_type)
        self._tracker = tracker_class(SimpleNamespace(**settings, device="cpu"))

    @property
    def config(self) -> TrackerConfig:
        """The type and settings this tracker was built from."""
        return self._config

    @property
    def buffer_frames(self) -> int:
        """Frames a lost track is kept before its ID is given up (0 for ``none``)."""
        return self._buffer_frames

    @property
    def frames(self) -> int:
        """Frames seen since the last reset."""
        return self._frames

    def reset(self) -> None:
        """Forget every track; IDs start again at 1."""
        self._frames = 0
        if self._tracker is not None:
            self._tracker.reset()

    def update(self, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Feed one frame's detections; the track ID of each (:data:`NO_ID` if unconfirmed).

        Args:
            xyxy: (N, 4) boxes, corners in pixels.
            scores: (N,) scores.
            class_ids: (N,) class ids.

        Returns:
            (N,) int64 track IDs, index for index with the detections.
        """
        boxes = DetectionBoxes(xyxy, scores, class_ids)
        ids = np.full(len(boxes), NO_ID, dtype=np.int64)
        self._frames += 1
        if self._tracker is None:
            return ids
        # No image: global motion compensation and ReID are off (see TrackerConfig).
        tracks = np.asarray(self._tracker.update(boxes, None))
        if tracks.size:
            index = tracks[:, _INDEX_COLUMN].astype(np.int64)
            ids[index] = tracks[:, _ID_COLUMN].astype(np.int64)
        return ids
