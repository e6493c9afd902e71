"""Fixtures of the ROS adapter tests: an rclpy context on a DDS domain of each test module."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from ros_harness import node_env

#: Modules of this session, in the order they take a domain.
_MODULES = itertools.count()


@pytest.fixture(scope="module")
def domain_id() -> int:
    """A DDS domain for this module, never one an earlier module of the session used.

    A node an earlier module killed leaves its participant in discovery until its lease ends;
    in the same domain, its stale reader of the same topic would be matched, and a reliable
    writer's large (fragmented) samples wait on it. Parallel sessions start apart (by pid).
    """
    return 1 + (os.getpid() * 37 + next(_MODULES)) % 200


@pytest.fixture(scope="module")
def ros_env(domain_id: int) -> dict[str, str]:
    """Environment for child processes of this module (same domain, localhost discovery)."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def ros_context(domain_id: int) -> Iterator[object]:
    """An initialised rclpy context of its own on the module's domain."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    yield context
    context.try_shutdown()


@pytest.fixture(scope="module")
def env(domain_id: int) -> dict[str, str]:
    """Environment of a node process of this module (its domain, the large-data profile)."""
    return node_env(domain_id)
