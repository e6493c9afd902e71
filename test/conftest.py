"""Suite-wide fixtures: keep libraries offline and threads bounded on the 2-core CI machine."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Set before anything imports ultralytics or torch.hub (they read these at import): a private
# settings dir, no network, an empty hub cache, and threads bounded for the 2-core CI machine.
_OFFLINE_DIR = tempfile.mkdtemp(prefix="aria-test-")
atexit.register(shutil.rmtree, _OFFLINE_DIR, True)
os.environ["YOLO_CONFIG_DIR"] = os.path.join(_OFFLINE_DIR, "ultralytics")
os.environ["TORCH_HOME"] = os.path.join(_OFFLINE_DIR, "torch")
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "2")
# DDS discovery stays on this machine (no multicast to the network), and each test session gets
# its own domain so parallel sessions on one machine never see each other's topics.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests where CUDA is not available (checked without importing torch early)."""
    if not any("gpu" in item.keywords for item in items):
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on the GPU device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
