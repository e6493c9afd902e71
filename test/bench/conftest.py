"""Fixtures of the bench's tests."""

from __future__ import annotations

import os
import zlib

import pytest


@pytest.fixture
def domain_id(request: pytest.FixtureRequest) -> int:
    """A DDS domain of this test alone, apart from the 1..200 the suite's conftest picks.

    215..232: ids whose DDS ports lie outside Linux's ephemeral port range.
    """
    salt = zlib.crc32(request.node.nodeid.encode())
    return 215 + (os.getpid() + salt) % 18
