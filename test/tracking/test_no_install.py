"""The tracking path installs nothing: ``lap`` comes from the environment, no network.

Ultralytics' matching code pip-installs ``lap`` at import when it cannot import it
(``check_requirements``). In a fresh interpreter with an audit hook that refuses every network
connection and name lookup and every installer, and records every program started, building
each shipped tracker and feeding it frames must succeed, with ``lap`` imported from this
environment's site-packages, ``check_requirements`` never called, and no program started but
the ``ldconfig`` that torch's import runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys

refused, started = [], []
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.fork",
                  "os.forkpty", "pty.spawn")

def hook(event, args):
    # A network connection or a name lookup: refused.
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        refused.append(event)
        raise RuntimeError(f"refused {event}")
    # A program started: recorded; an installer (pip, uv, anything given "install") refused.
    if event in PROCESS_EVENTS or event.startswith("os.exec"):
        words = " ".join(map(str, args[:2])) if args else event
        started.append(words)
        if any(w in words for w in ("pip", "install", "uv ", "conda")):
            refused.append(words)
            raise RuntimeError(f"refused {words}")

sys.addaudithook(hook)

calls = []

def profile(frame, event, arg):
    # Every Python call: Ultralytics' check_requirements (which pip-installs) must never run.
    code = frame.f_code
    if event == "call" and code.co_name == "check_requirements":
        calls.append(code.co_filename)

sys.setprofile(profile)

import numpy as np
from aria_perception.tracking import ObjectTracker, load_tracker_config, shipped_trackers

for kind in shipped_trackers():
    tracker = ObjectTracker(load_tracker_config(kind))
    for f in range(3):
        boxes = np.array([[10 + f, 10, 50 + f, 90], [200 - f, 10, 240 - f, 90]], np.float32)
        tracker.update(boxes, np.array([0.9, 0.8]), np.zeros(2))
sys.setprofile(None)
import os
import lap
from ultralytics.trackers.utils import matching
print(json.dumps({"lap": lap.__file__, "matching_lap": matching.lap.__file__,
                  "version": lap.__version__, "calls": calls, "refused": refused,
                  "started": started, "offline": os.environ.get("YOLO_OFFLINE"),
                  "autoinstall": os.environ.get("YOLO_AUTOINSTALL"),
                  "trackers": list(shipped_trackers())}))
"""


def test_no_import_of_the_tracking_path_installs_anything(tmp_path: Path) -> None:
    env = dict(os.environ)
    # As the node runs: the tracking path itself must keep Ultralytics offline.
    env.pop("YOLO_OFFLINE", None)
    env.pop("YOLO_AUTOINSTALL", None)
    env["YOLO_CONFIG_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    site = Path(sys.prefix).resolve()
    assert Path(report["lap"]).resolve().is_relative_to(site), report
    assert report["matching_lap"] == report["lap"] and report["version"] == "0.5.13"
    assert report["calls"] == [] and report["refused"] == [], report
    # torch's import runs `ldconfig -p` to find libraries (ctypes.util.find_library): nothing else.
    assert all("ldconfig" in words for words in report["started"]), report["started"]
    assert {"bytetrack", "botsort"} <= set(report["trackers"])
    assert (report["offline"], report["autoinstall"]) == ("1", "false")
