"""Errors of the benchmarks: what a user can get wrong and what a measured target can do wrong.

Every error here is a :class:`BenchError`; the command lines turn one into a one-line message on
stderr and exit status 2. Low-level failures (rosbags, file system, the worker) are translated
where they happen (``raise BagError(...) from err``), so no traceback reaches a user for a
mistake of theirs.
"""

from __future__ import annotations

import argparse

from aria_perception.errors import AriaPerceptionError


class BenchError(AriaPerceptionError):
    """The benchmark cannot run or finish as asked; the message says why in one line."""


class UsageError(BenchError, ValueError):
    """An argument or setting is out of range or contradicts another; the message names it."""


class SizeError(UsageError, argparse.ArgumentTypeError):
    """A ``WIDTHxHEIGHT`` argument cannot be read (argparse shows the message as it is)."""


class BagError(BenchError):
    """A bag cannot be read or written as the bench needs (missing, unreadable, mixed)."""


class TopicError(BagError):
    """The bag has no image topic by that name, none at all, or several and none was chosen."""


class FrameDataError(BenchError, ValueError):
    """A frame cannot be decoded or converted (unsupported encoding, corrupt or short data)."""


class RecordingError(BenchError):
    """A VRS recording cannot be read or imported (missing, not VRS, truncated, no images)."""


class SampleError(BenchError):
    """No sample photograph could be found or decoded."""


class TargetError(BenchError):
    """The target under test (the node, the echo reference, the worker) failed the bench."""


class TargetExitedError(TargetError):
    """The target's process exited while the bench needed it."""


class TargetTimeoutError(TargetError):
    """The target did not appear, match or answer within the time it was given."""


class ReportError(BenchError):
    """A report cannot be written, or a ``report.json`` cannot be read back."""
