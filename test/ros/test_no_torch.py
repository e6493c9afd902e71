"""DESIGN 2: the node process never imports torch, not even indirectly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import aria_perception.ros.node, aria_perception.ros.container
import aria_perception.ros.image_codec, aria_perception.ros.messages, aria_perception.ros.overlay
import aria_perception.ros.params, aria_perception.ros.diagnostics, aria_perception.ros.qos
# What on_configure imports lazily: the supervisor (parent side of the worker).
import aria_perception.worker.settings, aria_perception.worker.supervisor
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm',
                                                            'ultralytics'))
print(','.join(heavy))
assert 'rclpy' in sys.modules
"""


def test_importing_the_node_does_not_import_torch() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"heavy modules imported: {proc.stdout}"
