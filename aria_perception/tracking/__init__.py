"""Track IDs for detections, with the trackers Ultralytics ships (ROS-free: numpy in and out).

Importing this package imports neither torch nor Ultralytics: a tracker of a type other than
``none`` imports them when it is built (see "Tracking" in docs/design.md).

Modules: :mod:`~.tracker_config` (the shipped trackers, their settings and a
``tracker.config`` file over them) and :mod:`~.tracker` (:class:`ObjectTracker`: one camera's
tracker state, and the adapter from our arrays to what the trackers read).
"""

from aria_perception.tracking.tracker import NO_ID, DetectionBoxes, ObjectTracker, buffer_frames
from aria_perception.tracking.tracker_config import (
    DEFAULT_TRACKER,
    NO_TRACKER,
    TrackerConfig,
    load_tracker_config,
    shipped_config_path,
    shipped_trackers,
)

__all__ = [
    "DEFAULT_TRACKER",
    "NO_ID",
    "NO_TRACKER",
    "DetectionBoxes",
    "ObjectTracker",
    "TrackerConfig",
    "buffer_frames",
    "load_tracker_config",
    "shipped_config_path",
    "shipped_trackers",
]
