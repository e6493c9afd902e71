"""What a replay observes: one record per published frame, the target's diagnostics statuses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FrameRecord:
    """What happened to one published frame (times are wall-clock ns).

    Attributes:
        phase: ``prime``, ``warmup``, ``latency`` or ``throughput``.
        index: Position within the phase.
        source_index: Which source frame was published.
        stamp_ns: The unique header stamp it carried (= its publish time).
        frame_id: The header frame_id it carried.
        publish_call_ns: Time spent inside ``publish()`` (serialisation + hand-off to DDS).
        recv_ns: Reception time of its ``detections``; None if none came.
        detections: Number of detections in the answer.
        header_ok: Whether the answer's frame_id equals the frame's.
        sent_ns: When the target's middleware wrote the answer (``source_timestamp``): splits
            the latency into "to the node and through it" and "back" (None where unknown).
        depth_recv_ns: Reception time of its ``depth/raw``, if collected.
        depth_ok: Whether that depth image was 32FC1 at the frame's size.
        published_ns: When it was published, where that differs from its stamp (frames of
            several streams that share one stamp go one after another); None: at its stamp.
    """

    phase: str
    index: int
    source_index: int
    stamp_ns: int
    frame_id: str
    publish_call_ns: int = 0
    recv_ns: int | None = None
    detections: int | None = None
    header_ok: bool | None = None
    sent_ns: int | None = None
    depth_recv_ns: int | None = None
    depth_ok: bool | None = None
    published_ns: int | None = None

    @property
    def latency_ms(self) -> float | None:
        """End-to-end latency in ms (from its own publish), None when the frame got no answer."""
        sent = self.stamp_ns if self.published_ns is None else self.published_ns
        return None if self.recv_ns is None else (self.recv_ns - sent) / 1e6


@dataclass
class DiagSample:
    """One DiagnosticStatus of the target as received (``t_ns`` wall clock)."""

    t_ns: int
    level: int
    name: str
    message: str
    hardware_id: str
    values: dict[str, str] = field(default_factory=dict)
