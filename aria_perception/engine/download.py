"""The ``models`` command: fetch the official weights on a machine that has internet.

MiDaS v2.1 small goes to the torch hub cache (where ``depth.weights: ""`` looks), the YOLO
checkpoint to the models directory (``$ARIA_PERCEPTION_MODELS`` or
``~/.cache/aria_perception/models``, where ``detector.weights`` file names are looked up).
Each file's SHA-256 is checked against the known one before the file is kept; where none is
known (:data:`YOLO_SHA256`), the command prints the file's for the user to compare. Nothing
else in the package downloads anything; this command is not run by the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import signal
import sys
import tempfile
import urllib.request
from pathlib import Path

from aria_perception.records import EngineConfig

#: Ultralytics' published detection checkpoints (file name -> URL).
YOLO_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.3.0/"
#: SHA-256 of the checkpoints of :data:`YOLO_RELEASE`, by file name ("" = none known).
YOLO_SHA256: dict[str, str] = {
    # Ultralytics publishes no checksum with the release and no authoritative value was found:
    # fill it in from a copy you trust (sha256sum yolov8n.pt), never from a guess.
    "yolov8n.pt": "",
}


def _download(url: str, dest: Path, sha256_prefix: str = "") -> str:
    """Fetch ``url`` into ``dest``; on any failure (or interruption) no partial file is left.

    Returns:
        The file's SHA-256, which starts with ``sha256_prefix`` (else it is not kept).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(  # closed by the with below, removed by the finally
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        with tmp, urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed URLs
            shutil.copyfileobj(response, tmp)
        digest = hashlib.sha256(tmp_path.read_bytes()).hexdigest()
        if sha256_prefix and not digest.startswith(sha256_prefix):
            raise RuntimeError(
                f"{url}: SHA-256 {digest[:12]}... does not start with {sha256_prefix}"
            )
        tmp_path.replace(dest)
    finally:
        tmp_path.unlink(missing_ok=True)
    return digest


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``models``."""
    from aria_perception.engine.midas import MIDAS_SMALL_CFG
    from aria_perception.engine.midas_weights import hub_checkpoint_dir
    from aria_perception.engine.yolo_weights import models_dir

    parser = argparse.ArgumentParser(prog="models", description=__doc__)
    parser.add_argument(
        "--detector",
        default=EngineConfig().detector_weights,
        help="Ultralytics checkpoint name (default: the detector.weights default)",
    )
    parser.add_argument("--force", action="store_true", help="download even if present")
    args = parser.parse_args(argv)
    # `timeout` and service managers stop us with SIGTERM: unwind, so no partial file is left.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    midas = MIDAS_SMALL_CFG.checkpoints[0]
    jobs = [
        (midas.url, hub_checkpoint_dir() / midas.file_name, midas.sha256_prefix),
        (
            YOLO_RELEASE + args.detector,
            models_dir() / args.detector,
            YOLO_SHA256.get(args.detector, ""),
        ),
    ]
    failed = 0
    for url, dest, sha in jobs:
        if dest.exists() and not args.force:
            print(f"models: {dest} already there")
            continue
        print(f"models: {url} -> {dest}")
        try:
            digest = _download(url, dest, sha)
        except (OSError, RuntimeError) as err:
            print(f"models: FAILED {url}: {err}", file=sys.stderr)
            failed += 1
            continue
        if not sha:
            print(f"models: no known SHA-256 for {dest.name}; it is {digest}: compare it with "
                  "that of a copy you trust")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
