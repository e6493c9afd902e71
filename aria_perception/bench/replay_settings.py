"""How the bench publishes frames and awaits answers: the settings and the QoS they make."""

from __future__ import annotations

from dataclasses import dataclass

from aria_perception.bench.errors import UsageError

PUBLISHER_QOS = ("reliable", "best_effort", "sensor_data")


@dataclass(frozen=True)
class ReplaySettings:
    """How frames are published and answers awaited.

    Attributes:
        qos: Publisher reliability: ``reliable`` (default), ``best_effort`` or ``sensor_data``.
        qos_depth: Publisher history depth.
        window: Frames in flight at most in ``max`` pacing (publish the next one as soon as
            fewer than this many are unanswered).
        result_timeout_s: A frame unanswered for this long counts as dropped.
        status_node: Keep diagnostics statuses whose name ends in this node name.
    """

    qos: str = "reliable"
    qos_depth: int = 5
    window: int = 2
    result_timeout_s: float = 5.0
    status_node: str = "perception"

    def __post_init__(self) -> None:
        if self.qos not in PUBLISHER_QOS:
            raise UsageError(f"publisher qos must be one of {PUBLISHER_QOS}, got {self.qos!r}")
        if self.window < 1:
            raise UsageError(f"window must be >= 1, got {self.window}")
        if self.qos_depth < 1:
            raise UsageError(f"qos depth must be >= 1, got {self.qos_depth}")
        if not self.result_timeout_s > 0:
            raise UsageError(f"result timeout must be > 0 s, got {self.result_timeout_s}")


def result_qos():
    """Subscriptions match whatever reliability the target publishes with."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = getattr(ReliabilityPolicy, "BEST_AVAILABLE", ReliabilityPolicy.RELIABLE)
    return QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST, reliability=reliability)


def publisher_qos(settings: ReplaySettings):
    """The publisher profile of ``settings.qos`` and ``settings.qos_depth``."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if settings.qos == "sensor_data":
        return qos_profile_sensor_data
    reliability = (
        ReliabilityPolicy.RELIABLE if settings.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(
        depth=settings.qos_depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability
    )


# A reliable writer repairs a lost sample only when its next heartbeat (Fast DDS: every 3 s)
# shows the gap; a KEEP_LAST history of a few samples has overwritten it by then. CameraInfo is
# small, so its publisher keeps a few seconds of frames.
CAMERA_INFO_DEPTH = 200


def camera_info_qos(settings: ReplaySettings):
    """The publisher profile of the frames' CameraInfo: the frames' own, with a deep history."""
    from rclpy.qos import HistoryPolicy, QoSProfile

    frames = publisher_qos(settings)
    return QoSProfile(
        depth=max(frames.depth, CAMERA_INFO_DEPTH),
        history=HistoryPolicy.KEEP_LAST,
        reliability=frames.reliability,
        durability=frames.durability,
    )


def with_message_info() -> bool:
    """Whether subscription callbacks can receive MessageInfo (Iron and later)."""
    import rclpy.subscription

    return hasattr(rclpy.subscription, "MessageInfo")
