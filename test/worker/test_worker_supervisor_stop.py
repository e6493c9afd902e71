"""Stopping with the toy engine: no process and no /dev/shm segment outlives a supervisor.

Also when the stop comes from a callback, when the worker hangs, and when the owning process
is killed, terminated or interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from worker_helpers import (
    Collector,
    EngineLog,
    Make,
    alive,
    check_counts,
    our_segments,
    toy_frame,
    wait_for,
)

from aria_perception.records import WorkerState
from aria_perception.worker.supervisor import FrameResult

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def test_stop_is_clean_idempotent_and_final(make: Make, engine_log: EngineLog) -> None:
    sup, col = make(gated=True)  # the worker is held inside the first frame: nothing finishes
    sup.start()
    pid = sup.stats().pid
    sup.submit(toy_frame(1), "rgb8", tag="in flight")
    assert wait_for(lambda: engine_log.started() == [1], 30)
    sup.submit(toy_frame(2), "rgb8", tag="waiting")
    sup.stop(timeout_s=2.0)  # the worker cannot answer the shutdown: it is terminated
    assert not alive(pid) and not our_segments()
    sup.stop()
    stats = sup.stats()
    assert stats.state is WorkerState.STOPPED and stats.pid is None
    assert stats.dropped == 2 and not col.results and not col.errors  # no callbacks
    assert sup.submit(toy_frame(3), "rgb8") is None
    check_counts(sup.stats())


def test_stop_kills_a_hung_worker(make: Make) -> None:
    sup, _ = make()
    sup.start()
    pid = sup.stats().pid
    sup.debug("hang")
    sup.submit(toy_frame(1), "rgb8")
    stopper = threading.Thread(target=sup.stop, kwargs={"timeout_s": 1.0})
    stopper.start()
    stopper.join(60)
    assert not stopper.is_alive(), "stop() did not return"
    assert not alive(pid) and not our_segments()


def test_stop_from_inside_a_callback(make: Make) -> None:
    calls: list[WorkerState] = []
    col = Collector()

    def on_result(r: FrameResult) -> None:
        col.on_result(r)
        sup.stop()
        calls.append(sup.state)

    sup, _ = make(on_result=on_result)
    sup.start()
    pid = sup.stats().pid
    sup.submit(toy_frame(1), "rgb8")
    col.wait_results(1)
    assert wait_for(lambda: not our_segments(), 30)
    assert calls == [WorkerState.STOPPED] and not alive(pid)


PARENT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import numpy as np
    from aria_perception.records import EngineConfig
    from aria_perception.worker.settings import WorkerSettings
    from aria_perception.worker.supervisor import Supervisor

    if __name__ == "__main__":
        mode = sys.argv[1]
        if mode == "sigterm":
            def on_term(signum, frame):
                raise SystemExit(0)  # the owner turns SIGTERM into a normal exit
            signal.signal(signal.SIGTERM, on_term)
        settings = WorkerSettings(
            max_pixels=64 * 64, engine_factory="worker_toy_engine:ToyEngine",
            heartbeat_interval_s=0.1,
        )
        config = EngineConfig(device="cpu", allow_random_weights=True)
        results = threading.Semaphore(0)
        try:
            with Supervisor(config, settings, on_result=lambda r: results.release()) as sup:
                prefix = f"aria_{os.getpid()}_"
                (name,) = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
                print("READY", sup.stats().pid, name, flush=True)
                delivered = 0
                while True:
                    sup.submit(np.zeros((8, 8, 3), np.uint8), "rgb8")
                    time.sleep(0.01)
                    while results.acquire(blocking=False):
                        delivered += 1
                        if delivered == 3:
                            print("STREAMING", flush=True)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        finally:
            print("STOPPED", sup.state.name, flush=True)
    """
)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT to the process group"])
def test_worker_and_segments_go_when_the_parent_goes(tmp_path: Path, how: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    mode = {"SIGKILL": "kill", "SIGTERM": "sigterm"}.get(how, "sigint")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARIA_TOY_")}
    parent = subprocess.Popen(
        [sys.executable, str(script), mode],
        cwd=ROOT,
        env={**env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a node in a terminal
    )
    try:
        line = parent.stdout.readline()
        assert line.startswith("READY"), line + parent.stderr.read()
        _, worker_pid, name = line.split()
        worker_pid = int(worker_pid)
        assert alive(worker_pid) and os.path.exists(f"/dev/shm/{name}")
        line = parent.stdout.readline()  # results are flowing: stop it mid-stream
        assert line.startswith("STREAMING"), line + parent.stderr.read()
        if how == "SIGKILL":
            parent.kill()
        elif how == "SIGTERM":
            parent.terminate()
        else:
            os.killpg(parent.pid, signal.SIGINT)  # Ctrl-C: parent and worker both get it
        out, err = parent.communicate(timeout=60)
        assert wait_for(lambda: not alive(worker_pid), 30), "worker outlived its parent"
        assert wait_for(lambda: not os.path.exists(f"/dev/shm/{name}"), 30), "segment left"
        if how != "SIGKILL":
            assert parent.returncode == 0, err
            assert "STOPPED STOPPED" in out and "Traceback" not in err, err
            # An orderly stop unlinks by itself: the resource tracker had nothing to clean.
            assert "leaked" not in err, err
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate()


def test_a_supervisor_left_running_is_stopped_at_exit(tmp_path: Path) -> None:
    script = tmp_path / "forgetful.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from aria_perception.records import EngineConfig
            from aria_perception.worker.settings import WorkerSettings
            from aria_perception.worker.supervisor import Supervisor

            if __name__ == "__main__":
                settings = WorkerSettings(max_pixels=64 * 64,
                                          engine_factory="worker_toy_engine:ToyEngine")
                sup = Supervisor(EngineConfig(device="cpu", allow_random_weights=True), settings,
                                 on_result=lambda r: None)
                sup.start()
                prefix = f"aria_{os.getpid()}_"
                (name,) = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
                print(sup.stats().pid, name, flush=True)
                # exits without stop(): the exit handler must stop the worker
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARIA_TOY_")}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    worker_pid, name = proc.stdout.split()
    assert wait_for(lambda: not alive(int(worker_pid)), 30)
    assert not os.path.exists(f"/dev/shm/{name}")
    assert "leaked" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
