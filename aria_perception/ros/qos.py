"""Input QoS: profiles, and an input subscription that never fails silently.

``auto`` subscribes with best-available reliability where the distro has it (Iron and later) and,
when an incompatible-QoS event shows a publisher it cannot match, re-creates the subscription to
match and logs what it did; once no best-effort publisher is left, it subscribes with
best-available reliability again, so that a later reliable publisher is read reliably (large
frames are lost over a best-effort link). On Humble it uses the sensor-data profile.
``sensor_data``, ``reliable`` and ``best_effort`` force a profile; a publisher they cannot
match is logged as an error. Lost samples (Fast DDS drops fragmented large frames for
best-effort readers) are counted and warned about with the fix.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import (  # type: ignore[no-redef]
        SubscriptionEventCallbacks,
        UnsupportedEventTypeError,
    )

#: ``ReliabilityPolicy.BEST_AVAILABLE`` where the distro has it (Iron+), else None.
BEST_AVAILABLE = getattr(ReliabilityPolicy, "BEST_AVAILABLE", None)
#: Whether subscriptions report publishers matching and leaving (Iron+).
_MATCHED_EVENT = "matched" in inspect.signature(SubscriptionEventCallbacks.__init__).parameters
#: Queue depth of the input subscription: newest frame wins downstream, so keep it short.
INPUT_DEPTH = 2
#: How long ``auto`` looks for the publisher an incompatible-QoS event was about, and how often:
#: the event can come before the ROS graph lists that publisher (seen under load).
REMATCH_WAIT_S = 5.0
REMATCH_PERIOD_S = 0.1

LARGE_DATA_FIX = (
    "large frames are fragmented over UDP and a best-effort reader loses them: set "
    "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA on BOTH publisher and subscriber, "
    "or FASTDDS_DEFAULT_PROFILES_FILE (FASTRTPS_DEFAULT_PROFILES_FILE before Kilted)="
    "<share>/aria_perception/config/fastdds_large_data.xml on both (the launch file does), "
    "or use input.qos: reliable with a reliable publisher"
)


def input_profile(policy: str) -> QoSProfile:
    """The subscription profile for an ``input.qos`` policy name.

    Raises:
        ValueError: unknown policy.
    """
    if policy == "auto":
        if BEST_AVAILABLE is None:
            return qos_profile_sensor_data
        return _profile(BEST_AVAILABLE)
    if policy == "sensor_data":
        return qos_profile_sensor_data
    if policy == "reliable":
        return _profile(ReliabilityPolicy.RELIABLE)
    if policy == "best_effort":
        return _profile(ReliabilityPolicy.BEST_EFFORT)
    raise ValueError(f"unknown input.qos {policy!r}")


def _profile(reliability: Any) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=INPUT_DEPTH,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


def matching_profile(publisher_profiles: list[QoSProfile]) -> QoSProfile:
    """A profile that matches every given publisher: reliable unless one is best-effort.

    A volatile reader with default deadline and liveliness matches any writer on those
    policies, so reliability is the only one that can need changing.
    """
    if any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in publisher_profiles):
        return _profile(ReliabilityPolicy.BEST_EFFORT)
    return _profile(ReliabilityPolicy.RELIABLE)


def describe(profile: QoSProfile) -> str:
    """Short text of a profile for logs (``RELIABLE/VOLATILE depth 2``)."""
    return f"{_name(profile.reliability)}/{_name(profile.durability)} depth {profile.depth}"


def _name(policy: Any) -> str:
    return getattr(policy, "name", str(policy))


def _policy_name(kind: Any) -> str:
    try:
        from rclpy.qos import qos_policy_name_from_kind

        return qos_policy_name_from_kind(kind)
    except Exception:  # noqa: BLE001 - only for a log line; the kind itself is still shown
        return str(kind)


class InputSubscription:
    """The input image subscription, with QoS matching and loss accounting.

    Args:
        node: the owning node.
        msg_type: ``sensor_msgs/Image`` or ``CompressedImage``.
        topic: topic name (relative names resolve against the node).
        callback: the message callback.
        policy: ``input.qos`` policy name.
        callback_group: group of the subscription and its events.
        raw: hand ``callback`` the serialized message (``bytes``) instead of a deserialised
            one (``input.raw_intake``); QoS, re-matching and loss accounting are the same.
    """

    def __init__(
        self,
        node: Any,
        msg_type: Any,
        topic: str,
        callback: Callable[[Any], None],
        policy: str,
        callback_group: Any = None,
        raw: bool = False,
    ) -> None:
        self._node = node
        self._msg_type = msg_type
        self._topic = topic
        self._callback = callback
        self._policy = policy
        self._group = callback_group
        self._raw = raw
        self._logger = node.get_logger()
        self._sub: Any = None
        self._profile = input_profile(policy)
        self._timer: Any = None
        self._rematch_until = 0.0  # monotonic time the current re-match stops looking
        self._restore_timer: Any = None
        self._lock = threading.Lock()
        self.lost_samples = 0
        self.rematches = 0

    @property
    def profile(self) -> QoSProfile:
        """The profile the subscription currently uses."""
        return self._profile

    @property
    def subscription(self) -> Any:
        """The rclpy subscription (None while not subscribed)."""
        return self._sub

    @property
    def topic_name(self) -> str:
        """The resolved topic name."""
        if self._sub is not None:
            return self._sub.topic_name
        return self._topic

    def create(self) -> None:
        """Subscribe (idempotent)."""
        if self._sub is not None:
            return
        self._sub = self._subscribe(self._profile)
        self._logger.info(
            f"subscribed to {self._sub.topic_name} ({self._msg_type.__name__}"
            f"{', serialized' if self._raw else ''}, input.qos "
            f"{self._policy}: {describe(self._profile)})"
        )

    def destroy(self) -> None:
        """Unsubscribe (idempotent)."""
        for timer in (self._timer, self._restore_timer):
            if timer is not None:
                self._node.destroy_timer(timer)
        self._timer = self._restore_timer = None
        if self._sub is not None:
            self._node.destroy_subscription(self._sub)
            self._sub = None

    def _subscribe(self, profile: QoSProfile) -> Any:
        events: dict[str, Any] = {"message_lost": self._on_message_lost}
        if _MATCHED_EVENT and self._policy == "auto" and BEST_AVAILABLE is not None:
            events["matched"] = self._on_matched
        try:
            return self._create_subscription(profile, **events)
        except (TypeError, UnsupportedEventTypeError):
            # An RMW without the message-lost event: keep the incompatible-QoS one.
            self._logger.warning(
                "this RMW does not report lost messages: lost_samples will stay 0"
            )
            return self._create_subscription(profile)

    def _create_subscription(self, profile: QoSProfile, **events: Any) -> Any:
        """Subscribe with the incompatible-QoS event and ``events`` (more event callbacks)."""
        callbacks = SubscriptionEventCallbacks(
            incompatible_qos=self._on_incompatible_qos, **events
        )
        return self._node.create_subscription(
            self._msg_type,
            self._topic,
            self._callback,
            profile,
            callback_group=self._group,
            event_callbacks=callbacks,
            raw=self._raw,
        )

    def _on_message_lost(self, info: Any) -> None:
        change = int(getattr(info, "total_count_change", 0))
        with self._lock:
            self.lost_samples += change
            total = self.lost_samples
        self._logger.warning(
            f"{change} message(s) lost on {self.topic_name} ({total} in total): {LARGE_DATA_FIX}",
            throttle_duration_sec=10.0,
        )

    def _on_incompatible_qos(self, info: Any) -> None:
        policy = _policy_name(getattr(info, "last_policy_kind", "?"))
        if self._policy != "auto":
            self._logger.error(
                f"a publisher on {self.topic_name} offers QoS incompatible with input.qos "
                f"{self._policy} ({describe(self._profile)}; incompatible policy: {policy}): "
                "NO frames will arrive from it. Use input.qos: auto or best_effort, or change "
                "the publisher.",
                throttle_duration_sec=10.0,
            )
            return
        # Re-create outside this event's own callback (a one-shot timer in the same group).
        if self._timer is None:
            self._rematch_until = time.monotonic() + REMATCH_WAIT_S
            self._timer = self._node.create_timer(0.01, self._rematch, callback_group=self._group)

    def _on_matched(self, info: Any) -> None:
        """A publisher came or went: after a best-effort one is gone, restore best-available."""
        if self._profile.reliability != ReliabilityPolicy.BEST_EFFORT:
            return
        if self._restore_timer is None:  # outside this event's own callback, as _rematch
            self._restore_timer = self._node.create_timer(
                0.01, self._restore, callback_group=self._group
            )

    def _restore(self) -> None:
        if self._restore_timer is not None:
            self._node.destroy_timer(self._restore_timer)
            self._restore_timer = None
        if self._sub is None or self._profile.reliability != ReliabilityPolicy.BEST_EFFORT:
            return
        topic = self._sub.topic_name
        infos = self._node.get_publishers_info_by_topic(topic)
        if any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos):
            return
        self._resubscribe(input_profile("auto"))
        self._logger.warning(
            f"input.qos auto: no best-effort publisher is left on {topic}; re-subscribed with "
            f"{describe(self._profile)}"
        )

    def _resubscribe(self, profile: QoSProfile) -> QoSProfile:
        """Re-create the subscription with ``profile`` (a re-match); the profile it had."""
        old, self._profile = self._profile, profile
        self._node.destroy_subscription(self._sub)
        self._sub = self._subscribe(profile)
        self.rematches += 1
        return old

    def _rematch(self) -> None:
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if self._sub is None:
            return
        topic = self._sub.topic_name
        infos = self._node.get_publishers_info_by_topic(topic)
        wanted = matching_profile([i.qos_profile for i in infos])
        best_effort = ReliabilityPolicy.BEST_EFFORT
        if wanted.reliability != best_effort and time.monotonic() < self._rematch_until:
            # Only a best-effort publisher is incompatible with a reliable reader, and the event
            # can come before the graph lists it: look again shortly.
            self._timer = self._node.create_timer(
                REMATCH_PERIOD_S, self._rematch, callback_group=self._group
            )
            return
        if wanted.reliability != best_effort or self._profile.reliability == best_effort:
            self._logger.error(
                f"a publisher on {topic} offers incompatible QoS that input.qos auto cannot "
                f"match by reliability (publishers: "
                f"{', '.join(describe(i.qos_profile) for i in infos) or 'none'})",
                throttle_duration_sec=10.0,
            )
            return
        old = self._resubscribe(wanted)
        offered = ", ".join(
            f"{i.node_namespace.rstrip('/')}/{i.node_name}: {describe(i.qos_profile)}"
            for i in infos
        )
        self._logger.warning(
            f"input.qos auto: publisher(s) on {topic} offer {offered}; re-subscribed with "
            f"{describe(wanted)} (was {describe(old)})"
        )
