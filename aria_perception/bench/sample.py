"""Sample camera sequences made from real photographs that installed packages ship.

Ultralytics ships ``assets/bus.jpg`` and ``assets/zidane.jpg`` (people, a bus: things the detector
knows) and matplotlib ships ``sample_data/grace_hopper.jpg``. Each photo becomes a stretch of the
sequence seen by a camera that pans and zooms smoothly over it, resampled to the wanted
resolution, so consecutive frames differ like video does. Packages are located without importing
them (importing ultralytics writes a settings file).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aria_perception.bench.errors import SampleError, UsageError
from aria_perception.bench.frame import RAW_ENCODINGS, Frame, FrameSet, raw_frame, to_jpeg

# (package, path inside it) of photographs known to ship with installed packages.
PHOTO_CANDIDATES = (
    ("ultralytics", "assets/bus.jpg"),
    ("ultralytics", "assets/zidane.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)
# A fixed epoch for sample stamps (2024-11-24), so generated bags are byte-reproducible.
SAMPLE_EPOCH_NS = 1_732_406_400 * 1_000_000_000


@dataclass(frozen=True)
class SampleSpec:
    """What sample sequence to make.

    Attributes:
        width: Output width in pixels (1408 for Aria's RGB camera).
        height: Output height.
        count: Number of frames.
        rate_hz: Frame rate the stamps are spaced at.
        compressed: Produce JPEG CompressedImage payloads instead of raw images.
        encoding: Encoding of raw frames (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``).
        jpeg_quality: JPEG quality when ``compressed``.
        frame_id: Header frame_id.
    """

    width: int = 640
    height: int = 480
    count: int = 60
    rate_hz: float = 30.0
    compressed: bool = False
    encoding: str = "rgb8"
    jpeg_quality: int = 90
    frame_id: str = "camera-rgb"

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 8192 and 16 <= self.height <= 8192):
            raise UsageError(f"sample size {self.width}x{self.height} outside 16..8192")
        if self.count < 1:
            raise UsageError(f"sample count must be >= 1, got {self.count}")
        if not self.rate_hz > 0:
            raise UsageError(f"sample rate must be > 0 Hz, got {self.rate_hz}")
        if self.encoding not in RAW_ENCODINGS:
            raise UsageError(f"sample encoding must be one of {sorted(RAW_ENCODINGS)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UsageError(f"jpeg quality must be 1..100, got {self.jpeg_quality}")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_photos() -> list[Path]:
    """Paths of the photographs installed packages ship (possibly empty)."""
    found = []
    for package, rel in PHOTO_CANDIDATES:
        root = _package_dir(package)
        if root is not None and (root / rel).is_file():
            found.append(root / rel)
    return found


def load_photos(paths: list[Path] | None = None) -> list[np.ndarray]:
    """Decode photographs to RGB arrays.

    Raises:
        SampleError: No photograph could be found or decoded.
    """
    import cv2

    paths = find_photos() if paths is None else paths
    photos = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            photos.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not photos:
        raise SampleError(
            "no sample photographs found: expected "
            + ", ".join(f"{pkg}/{rel}" for pkg, rel in PHOTO_CANDIDATES)
            + " (install ultralytics or matplotlib, or pass a bag with --bag)"
        )
    return photos


def _camera_path(t: float) -> tuple[float, float, float]:
    """Zoom (crop size as a fraction of the largest crop) and crop centre (0..1 of the free range).

    ``t`` runs 0..1 over one photo's stretch; everything is smooth and starts and ends at rest.
    """
    ease = 0.5 - 0.5 * math.cos(math.pi * t)
    zoom = 1.0 - 0.45 * math.sin(math.pi * t)  # zoom in to 55 % and back out
    cx = 0.5 + 0.5 * math.sin(2.0 * math.pi * ease)
    cy = 0.5 + 0.5 * math.sin(math.pi * ease - math.pi / 2.0)
    return zoom, min(max(cx, 0.0), 1.0), min(max(cy, 0.0), 1.0)


def render(photo: np.ndarray, width: int, height: int, t: float) -> np.ndarray:
    """One view of ``photo`` at path position ``t`` (0..1), resampled to ``width`` x ``height``."""
    import cv2

    ph, pw = photo.shape[:2]
    aspect = width / height
    # Largest crop of the output's aspect ratio that fits the photo.
    max_w = min(pw, ph * aspect)
    zoom, fx, fy = _camera_path(t)
    crop_w = max_w * zoom
    crop_h = crop_w / aspect
    x0 = fx * (pw - crop_w)
    y0 = fy * (ph - crop_h)
    scale = width / crop_w
    # One affine warp does crop + resize (sub-pixel smooth motion, no intermediate copy).
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], np.float64)
    shrink = int(1.0 / scale)
    if shrink > 1:
        # warpAffine has no area filter: pre-shrink so that the warp itself never minifies by
        # 2x or more (that would alias). Source coordinates shrink, so the linear part grows.
        photo = cv2.resize(photo, (pw // shrink, ph // shrink), interpolation=cv2.INTER_AREA)
        matrix[:, :2] *= shrink
    return cv2.warpAffine(
        photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def sample_pixels(
    spec: SampleSpec, photos: list[np.ndarray] | None = None
) -> Iterator[np.ndarray]:
    """Yield the sequence's frames as HxWx3 RGB arrays."""
    photos = load_photos() if photos is None else photos
    per_photo = max(1, math.ceil(spec.count / len(photos)))
    for i in range(spec.count):
        photo = photos[(i // per_photo) % len(photos)]
        j = i % per_photo
        t = j / (per_photo - 1) if per_photo > 1 else 0.5
        yield render(photo, spec.width, spec.height, t)


def sample_frames(spec: SampleSpec, photos: list[np.ndarray] | None = None) -> Iterator[Frame]:
    """Yield the sequence as :class:`Frame` records stamped ``1/rate_hz`` apart."""
    period_ns = round(1e9 / spec.rate_hz)
    for i, rgb in enumerate(sample_pixels(spec, photos)):
        frame = raw_frame(rgb, SAMPLE_EPOCH_NS + i * period_ns, spec.frame_id, spec.encoding)
        yield to_jpeg(frame, spec.jpeg_quality) if spec.compressed else frame


def sample_set(spec: SampleSpec) -> FrameSet:
    """The whole sample sequence in memory."""
    frames = list(sample_frames(spec))
    kind = "jpeg" if spec.compressed else spec.encoding
    return FrameSet(
        frames=frames,
        source=f"sample {spec.width}x{spec.height} {kind} x{spec.count} @ {spec.rate_hz:g} Hz",
        msgtype=frames[0].msgtype,
        frames_available=len(frames),
    )
