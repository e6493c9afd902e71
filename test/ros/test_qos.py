"""Input QoS: profiles per policy and the auto policy re-matching a publisher (real DDS)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from aria_perception.ros import qos


def test_profiles() -> None:
    if qos.BEST_AVAILABLE is not None:
        assert qos.input_profile("auto").reliability == ReliabilityPolicy.BEST_AVAILABLE
    else:
        assert qos.input_profile("auto") == qos_profile_sensor_data
    assert qos.input_profile("sensor_data") == qos_profile_sensor_data
    assert qos.input_profile("reliable").reliability == ReliabilityPolicy.RELIABLE
    assert qos.input_profile("best_effort").reliability == ReliabilityPolicy.BEST_EFFORT
    for name in ("auto", "reliable", "best_effort"):
        assert qos.input_profile(name).durability in (
            DurabilityPolicy.VOLATILE,
            qos_profile_sensor_data.durability,
        )
    with pytest.raises(ValueError, match="unknown input.qos"):
        qos.input_profile("fast")


def test_matching_profile() -> None:
    rel = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    be = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    assert qos.matching_profile([rel]).reliability == ReliabilityPolicy.RELIABLE
    assert qos.matching_profile([rel, be]).reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos.matching_profile([]).reliability == ReliabilityPolicy.RELIABLE
    assert "BEST_EFFORT" in qos.describe(be)


class _Rig:
    """A subscriber node with an :class:`InputSubscription`, a publisher node, one executor.

    ``with _Rig(...) as rig:`` subscribes; leaving it unsubscribes and destroys the nodes.
    """

    def __init__(self, ros_context, name: str, topic: str, policy: str, raw: bool = False):
        self.sub_node = rclpy.create_node(f"qos_sub_{name}", context=ros_context)
        self.pub_node = rclpy.create_node(f"qos_pub_{name}", context=ros_context)
        self.executor = SingleThreadedExecutor(context=ros_context)
        self.executor.add_node(self.sub_node)
        self.executor.add_node(self.pub_node)
        self.topic = topic
        self.received: list[Image] = []
        self.sub = qos.InputSubscription(
            self.sub_node, Image, topic, self.received.append, policy, raw=raw
        )

    def __enter__(self) -> _Rig:
        self.sub.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sub.destroy()
        self.executor.shutdown()
        self.sub_node.destroy_node()
        self.pub_node.destroy_node()

    def spin(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Spin until ``until()`` holds or ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            self.executor.spin_once(timeout_sec=0.05)

    def publish_until(self, reliability, done: Callable[[], bool], timeout: float = 60.0) -> bool:
        """Start a publisher, publish until ``done()`` (or ``timeout``), then remove it."""
        pub = self.pub_node.create_publisher(
            Image, self.topic, QoSProfile(depth=5, reliability=reliability)
        )
        msg = Image(height=1, width=1, encoding="mono8", step=1)
        msg.data = [7]

        def published() -> bool:
            if done():
                return True
            pub.publish(msg)
            return False

        try:
            self.spin(timeout, published)
            return done()
        finally:
            self.pub_node.destroy_publisher(pub)


def _exchange(
    ros_context,
    policy: str,
    publisher_reliability,
    until: Callable[[list], bool],
    raw: bool = False,
):
    """Subscribe with ``policy``, then start a publisher and publish until ``until(received)``.

    ``raw`` subscribes to the serialized messages (``input.raw_intake``).

    Returns:
        What was received, and the subscription.
    """
    topic = f"/qos_test_{policy}{'_raw' if raw else ''}/image"
    with _Rig(ros_context, policy, topic, policy, raw) as rig:
        rig.publish_until(publisher_reliability, lambda: until(rig.received))
        return rig.received, rig.sub


def _three(received: list) -> bool:
    return len(received) >= 3


@pytest.mark.skipif(qos.BEST_AVAILABLE is None, reason="best-available QoS needs Iron or later")
@pytest.mark.parametrize("raw", [False, True])
def test_auto_rematches_a_best_effort_publisher_started_later(ros_context, capfd, raw) -> None:
    received, sub = _exchange(ros_context, "auto", ReliabilityPolicy.BEST_EFFORT, _three, raw)
    assert len(received) >= 3
    # The re-created subscription keeps the intake: serialized bytes stay serialized bytes.
    assert all(isinstance(m, bytes if raw else Image) for m in received)
    assert sub.rematches == 1
    assert sub.profile.reliability == ReliabilityPolicy.BEST_EFFORT
    log = capfd.readouterr().err
    topic = f"/qos_test_auto{'_raw' if raw else ''}/image"
    assert f"input.qos auto: publisher(s) on {topic} offer" in log
    assert "re-subscribed with BEST_EFFORT" in log
    assert ("(Image, serialized, input.qos auto" in log) == raw


@pytest.mark.skipif(qos.BEST_AVAILABLE is None, reason="best-available QoS needs Iron or later")
def test_auto_reads_reliably_again_once_the_best_effort_publisher_is_gone(
    ros_context, capfd
) -> None:
    topic = "/qos_test_restore/image"
    with _Rig(ros_context, "restore", topic, "auto") as rig:
        sub, received = rig.sub, rig.received
        assert rig.publish_until(ReliabilityPolicy.BEST_EFFORT, lambda: len(received) >= 3)
        assert sub.profile.reliability == ReliabilityPolicy.BEST_EFFORT and sub.rematches == 1
        # The best-effort publisher is gone; a reliable one comes: the reader is reliable again.
        received.clear()
        assert rig.publish_until(
            ReliabilityPolicy.RELIABLE, lambda: sub.rematches == 2 and len(received) >= 3
        ), (sub.rematches, len(received))
        assert sub.profile.reliability == qos.BEST_AVAILABLE
        [info] = rig.sub_node.get_subscriptions_info_by_topic(topic)
        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        log = capfd.readouterr().err
        assert f"input.qos auto: no best-effort publisher is left on {topic}" in log


def test_auto_with_a_reliable_publisher_started_later(ros_context) -> None:
    received, sub = _exchange(ros_context, "auto", ReliabilityPolicy.RELIABLE, _three)
    assert len(received) >= 3 and sub.rematches == 0


def test_forced_reliable_does_not_rematch_a_best_effort_publisher(ros_context, capfd) -> None:
    err: list[str] = []

    def told(received: list) -> bool:
        err.append(capfd.readouterr().err)
        return "NO frames will arrive from it" in "".join(err)

    received, sub = _exchange(ros_context, "reliable", ReliabilityPolicy.BEST_EFFORT, told)
    assert told(received), "an incompatible publisher must never be silent"
    assert received == [] and sub.rematches == 0
    assert sub.profile.reliability == ReliabilityPolicy.RELIABLE


@pytest.mark.skipif(qos.BEST_AVAILABLE is None, reason="best-available QoS needs Iron or later")
def test_auto_looks_again_when_the_graph_lists_the_publisher_late(
    ros_context, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incompatible-QoS event can come before the graph lists the publisher it is about."""
    monkeypatch.setattr(qos, "REMATCH_WAIT_S", 1.5)
    with _Rig(ros_context, "late", "/qos_test_late/image", "auto") as rig:
        sub, received = rig.sub, rig.received
        before = sub.profile
        # The event as it comes when the graph does not list its publisher yet (here: none).
        sub._on_incompatible_qos(SimpleNamespace(last_policy_kind=None))
        rig.spin(0.5)
        # Still looking: nothing re-subscribed, no error yet.
        assert sub._timer is not None and sub.rematches == 0 and sub.profile == before
        assert "cannot match" not in capfd.readouterr().err
        # The publisher shows up while it looks: it is matched.
        rig.publish_until(ReliabilityPolicy.BEST_EFFORT, lambda: len(received) >= 3, 30.0)
        assert len(received) >= 3 and sub.rematches == 1
        assert sub.profile.reliability == ReliabilityPolicy.BEST_EFFORT
        # No best-effort publisher ever shows up: after the wait it says so, once.
        sub._on_incompatible_qos(SimpleNamespace(last_policy_kind=None))
        rig.spin(5.0, lambda: sub._timer is None)
        assert sub._timer is None
        assert "input.qos auto cannot match by reliability" in capfd.readouterr().err
