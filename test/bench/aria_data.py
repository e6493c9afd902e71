"""Where the tests find the public Aria sample recordings, and what projectaria-tools reads there.

The recordings live outside the repository, in ``shared/data/aria/`` beside the checkout (a
git worktree sits one folder deeper, so its grandparent is looked at too). Tests that need them
skip with the reason when they are absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = (
    REPO / ".." / "shared" / "data" / "aria",
    REPO / ".." / ".." / "shared" / "data" / "aria",
)
GEN1 = "gen1_adt_sample.vrs"
GEN2 = "gen2_sample.vrs"


def aria_recording(name: str) -> Path:
    """The sample recording ``name``; skips the test when it is not there."""
    for folder in _CANDIDATES:
        if (folder / name).is_file():
            return (folder / name).resolve()
    pytest.skip(f"Aria sample {name} not found in {_CANDIDATES[0]} (shared/ beside the checkout)")


def provider(path: Path) -> Any:
    """projectaria-tools' data provider of a recording."""
    from projectaria_tools.core import data_provider

    return data_provider.create_vrs_data_provider(str(path))


def stream_id(text: str) -> Any:
    from projectaria_tools.core.stream_id import StreamId

    return StreamId(text)


def recorded(path: Path, stream: str) -> list[tuple[int, np.ndarray]]:
    """``(capture_timestamp_ns, pixels)`` of each record of a stream, as projectaria reads it."""
    p, sid = provider(path), stream_id(stream)
    out = []
    for i in range(p.get_num_data(sid)):
        image, record = p.get_image_data_by_index(sid, i)
        out.append((int(record.capture_timestamp_ns), np.asarray(image.to_numpy_array()).copy()))
    return out


def calibration(path: Path, label: str) -> tuple[str, list[float], tuple[int, int]]:
    """Model name, projection parameters and image size of a camera's factory calibration."""
    cam = provider(path).get_device_calibration().get_camera_calib(label)
    width, height = (int(v) for v in cam.get_image_size())
    return (
        str(cam.get_model_name()),
        [float(v) for v in cam.get_projection_params()],
        (width, height),
    )
