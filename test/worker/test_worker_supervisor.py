"""Supervisor mechanics with real spawned workers running the test-only toy engine.

The toy engine (``worker_toy_engine``) starts in a fraction of a second, so every test can have
its own worker and break it at will: drops, bad frames, crashes, hangs, restarts, shutdown. The
same paths with the real engine are covered in ``test_worker_engine.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from worker_helpers import (
    Collector,
    alive,
    assert_same_result,
    check_counts,
    our_segments,
    wait_for,
)
from worker_toy_engine import FACTORY, ToyEngine

from aria_perception.errors import (
    ConfigError,
    EngineError,
    FrameError,
    WeightsError,
    WorkerDiedError,
    WorkerError,
    WorkerStartError,
    WorkerTimeoutError,
)
from aria_perception.records import EngineConfig, Thresholds, WorkerState
from aria_perception.worker.settings import WorkerSettings
from aria_perception.worker.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CONFIG = EngineConfig(device="cpu", allow_random_weights=True, max_detections=8)
FAST = dict(
    max_pixels=128 * 128,
    engine_factory=FACTORY,
    startup_timeout_s=60.0,
    frame_timeout_s=10.0,
    first_frame_timeout_s=10.0,
    heartbeat_interval_s=0.1,
    heartbeat_timeout_s=10.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
)

Make = Callable[..., tuple[Supervisor, Collector]]


@pytest.fixture
def make(monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """Build toy-engine supervisors (not started); all are stopped after the test."""
    made: list[Supervisor] = []

    def build(
        delay: float = 0.0,
        start_delay: float = 0.0,
        config: EngineConfig = CONFIG,
        **settings: object,
    ) -> tuple[Supervisor, Collector]:
        # The spawned worker inherits the environment: the toy engine's knobs.
        monkeypatch.setenv("ARIA_TOY_DELAY_S", str(delay))
        monkeypatch.setenv("ARIA_TOY_START_DELAY_S", str(start_delay))
        collector = Collector()
        sup = Supervisor(
            config,
            WorkerSettings(**{**FAST, **settings}),  # type: ignore[arg-type]
            on_result=collector.on_result,
            on_error=collector.on_error,
        )
        made.append(sup)
        return sup, collector

    yield build
    for sup in made:
        sup.stop()


def reference(config: EngineConfig = CONFIG) -> ToyEngine:
    engine = ToyEngine(config)
    engine.delay_s = 0.0
    return engine


def frame(value: int, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(value)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[0, 0, 0] = value % 256  # the toy engine's box count comes from here
    return image


def test_results_equal_in_process_engine_for_every_input_kind(make: Make) -> None:
    sup, col = make()
    info = sup.start()
    assert info.class_names == ("person", "car", "dog") and sup.state is WorkerState.READY
    rng = np.random.default_rng(0)
    padded = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    padded[0, 0, 0] = 200
    inputs: list[tuple[object, str, bool]] = [
        (frame(130), "rgb8", True),
        (frame(255, 17, 5), "bgr8", True),
        (frame(64, 128, 128), "rgb8", True),  # exactly max_pixels
        (rng.integers(0, 256, (20, 30), dtype=np.uint8), "mono8", True),
        (rng.integers(0, 256, (20, 30, 1), dtype=np.uint8), "mono8", True),
        (rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), "rgba8", True),
        (rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), "bgra8", True),
        (padded[:, :40], "rgb8", True),  # a strided view, as a padded row step gives
        (b"TOY" + bytes(range(200)), "jpeg", True),
        (np.frombuffer(b"TOY" + bytes(50), np.uint8), "png", True),
        (frame(190), "rgb8", False),
    ]
    engine = reference()
    ids = []
    for i, (data, encoding, want_depth) in enumerate(inputs):
        ids.append(sup.submit(data, encoding, tag=("tag", i), want_depth=want_depth))
        col.wait_results(i + 1)
    for i, (got, (data, encoding, want_depth)) in enumerate(zip(col.results, inputs, strict=True)):
        assert got.tag == ("tag", i) and got.frame_id == ids[i] and got.generation == 1
        array = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
        expected = engine.process(np.ascontiguousarray(array), encoding, want_depth=want_depth)
        assert_same_result(got, expected)
        t = got.timing
        assert 0 <= t.copy_in_ms <= t.roundtrip_ms and 0 <= t.engine_ms <= t.roundtrip_ms
    assert len(col.results[2].detections) == 1 and col.results[2].depth.shape == (128, 128)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stats = sup.stats()
    assert (stats.processed, stats.dropped, stats.rejected, stats.failed) == (len(inputs), 0, 0, 0)
    assert (stats.gpu_mem_mb, stats.gpu_mem_peak_mb) == (1.5, 2.5)  # reported by the worker
    assert stats.pid is not None and alive(stats.pid) and stats.pid != os.getpid()
    check_counts(stats)
    assert not col.errors


def test_newest_frame_wins_and_older_waiting_frames_are_dropped(make: Make) -> None:
    sup, col = make(delay=0.4)
    sup.start()
    frames = [frame(i) for i in range(5)]
    ids = [sup.submit(f, "rgb8", tag=i) for i, f in enumerate(frames)]
    assert all(i is not None for i in ids)
    assert wait_for(lambda: col.results and col.results[-1].tag == 4, 10)
    time.sleep(0.6)  # nothing else may come
    results = list(col.results)
    tags = [r.tag for r in results]
    # Whichever frame the worker saw newest when it first looked (usually 0; on a loaded machine
    # it may already see 1, 2 or even 4: each skipped frame frees a slot for the pending one),
    # then at most one more it knew of when it finished, then the newest: all in order.
    assert tags[-1] == 4 and tags == sorted(tags) and len(tags) <= 3
    engine = reference()
    for r in results:
        assert_same_result(r, engine.process(frames[r.tag], "rgb8"))
    stats = sup.stats()
    assert (stats.processed, stats.dropped) == (len(tags), 5 - len(tags))
    check_counts(stats)
    # The newest frame waited for two frames at most: latency does not grow with a queue.
    assert results[-1].timing.wait_ms < 2 * 1000 * 0.4 + 300


def test_a_slow_consumer_never_sees_its_result_overwritten(make: Make) -> None:
    """The worker outruns ``on_result``: it must wait for the output slot to be released."""
    sup, _ = make(delay=0.0)
    seen: list[tuple[int, np.ndarray, float, float]] = []

    def slow(r) -> None:  # reads the shared-memory depth map only after a while
        time.sleep(0.05)
        seen.append((r.tag, r.result.depth.copy(), r.timing.to_worker_ms, r.timing.to_parent_ms))

    sup._on_result = slow
    sup.start()
    frames = [frame(i) for i in range(30)]
    for i, f in enumerate(frames):
        sup.submit(f, "rgb8", tag=i)
        time.sleep(0.01)  # ~100 Hz into a ~20 Hz consumer
    assert wait_for(lambda: seen and seen[-1][0] == 29, 10)
    assert wait_for(lambda: not (sup.stats().in_flight or sup.stats().pending), 10)
    check_counts(sup.stats())
    tags = [t for t, *_ in seen]
    assert tags == sorted(tags) and len(tags) >= 5
    engine = reference()
    for tag, depth, to_worker, to_parent in seen:
        np.testing.assert_array_equal(depth, engine.process(frames[tag], "rgb8").depth)
        assert to_worker >= 0 and to_parent >= 0


def test_stream_faster_than_the_worker_keeps_latency_bounded(make: Make) -> None:
    delay = 0.05
    sup, col = make(delay=delay)
    sup.start()
    frames = [frame(i) for i in range(60)]
    for i, f in enumerate(frames):
        sup.submit(f, "rgb8", tag=i)
        time.sleep(0.005)  # ~200 Hz against a ~20 Hz worker
    assert wait_for(lambda: not (sup.stats().in_flight or sup.stats().pending), 10)
    stats = sup.stats()
    check_counts(stats)
    assert stats.processed == len(col.results) and stats.dropped > 20
    tags = [r.tag for r in col.results]
    assert tags == sorted(tags) and tags[-1] == 59  # in order, and the last frame made it
    engine = reference()
    for r in col.results:
        assert_same_result(r, engine.process(frames[r.tag], "rgb8"))
        # In flight + one waiting at most: never a queue.
        assert r.timing.roundtrip_ms < 1000 * (2 * delay) + 500


def test_bad_frames_are_rejected_and_the_worker_goes_on(make: Make) -> None:
    sup, col = make(max_encoded_bytes=1000)
    sup.start()
    pid = sup.stats().pid
    bad = [
        (frame(1), "yuv422", "unsupported encoding 'yuv422'"),
        (np.zeros((8, 8, 4), np.uint8), "rgb8", r"must be \(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((0, 8, 3), np.uint8), "rgb8", "zero-size"),
        (np.zeros((129, 128, 3), np.uint8), "rgb8", "more than input.max_pixels=16384"),
        (b"", "jpeg", "empty"),
        (bytes(1001), "png", "over the 1000 bytes"),
        (np.zeros((4, 4), np.uint8), "jpeg", "1-D"),
    ]
    for data, encoding, match in bad:
        with pytest.raises(FrameError, match=match):
            sup.submit(data, encoding, tag="bad")
    assert sup.stats().rejected == len(bad)
    # A frame only the engine can find bad: reported through on_error, the worker survives.
    fid = sup.submit(b"XXXnot-an-image", "jpeg", tag="corrupt")
    col.wait_errors(1)
    frame_id, tag, error, _ = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "corrupt", FrameError)
    assert "corrupt jpeg data" in str(error)
    sup.submit(frame(70), "rgb8", tag="good")
    assert col.wait_results(1)[0].tag == "good"
    stats = sup.stats()
    assert stats.rejected == len(bad) + 1 and stats.processed == 1
    assert stats.pid == pid and stats.restarts == 0 and stats.state is WorkerState.READY
    assert stats.last_error == "FrameError: corrupt jpeg data"
    check_counts(stats)


def test_engine_error_reaches_the_parent_typed_and_the_worker_is_replaced(make: Make) -> None:
    sup, col = make()
    sup.start()
    sup.debug("raise", "EngineError", "CUDA out of memory. Tried to allocate 2.00 GiB")
    fid = sup.submit(frame(3), "rgb8", tag="oom")
    col.wait_errors(1)
    frame_id, tag, error, _ = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "oom", EngineError)
    assert str(error) == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert wait_for(lambda: sup.stats().generation == 2 and sup.state is WorkerState.READY, 30)
    sup.submit(frame(4), "rgb8", tag="after")
    got = col.wait_results(1)[0]
    assert (got.tag, got.generation) == ("after", 2)
    stats = sup.stats()
    assert (stats.failed, stats.restarts, stats.processed) == (1, 1, 1)
    assert len(col.errors) == 1  # reported once, for its frame
    check_counts(stats)


@pytest.mark.parametrize("fault", ["kill -9", "crash", "segfault"])
def test_crash_mid_stream_is_noticed_within_a_second_and_recovered(make: Make, fault: str) -> None:
    sup, col = make(delay=0.02)
    sup.start()
    frames = [frame(i) for i in range(400)]
    stop = threading.Event()

    def stream() -> None:
        for i, f in enumerate(frames):
            if stop.is_set():
                return
            sup.submit(f, "rgb8", tag=i)
            time.sleep(0.01)

    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        col.wait_results(5)
        pid = sup.stats().pid
        faulted_at = time.monotonic()
        if fault == "kill -9":
            os.kill(pid, signal.SIGKILL)
        else:
            sup.debug(fault)
        col.wait_errors(1, timeout=5)
        frame_id, _, error, noticed_at = col.errors[0]
        assert isinstance(error, WorkerDiedError)
        expected = {"kill -9": "SIGKILL", "crash": "exited with code 70", "segfault": "SIGSEGV"}
        assert expected[fault] in str(error) and str(pid) in str(error)
        assert noticed_at - faulted_at < 1.0
        assert not alive(pid)
        # Processing resumes in a new generation.
        assert wait_for(lambda: any(r.generation == 2 for r in col.results), 30)
    finally:
        stop.set()
        feeder.join()
    assert wait_for(lambda: not (sup.stats().in_flight or sup.stats().pending), 10)
    stats = sup.stats()
    assert stats.restarts == 1 and stats.generation == 2 and stats.state is WorkerState.READY
    assert stats.pid != pid and stats.last_error.startswith("WorkerDiedError")
    check_counts(stats)
    assert stats.failed == sum(1 for e in col.errors if e[0] != -1)
    # No result landed on the wrong frame, before or after the crash.
    engine = reference()
    lost = {e[1] for e in col.errors if e[0] != -1}
    for r in col.results:
        assert r.tag not in lost
        assert_same_result(r, engine.process(frames[r.tag], "rgb8"))
    tags = [r.tag for r in col.results]
    assert tags == sorted(tags)


def test_hung_worker_is_killed_after_the_frame_timeout_and_replaced(make: Make) -> None:
    sup, col = make(frame_timeout_s=1.0, first_frame_timeout_s=1.0)
    sup.start()
    pid = sup.stats().pid
    sup.submit(frame(1), "rgb8", tag="warm")
    col.wait_results(1)
    sup.debug("hang")  # heartbeats go on: only the frame timeout can catch this
    sent = time.monotonic()
    fid = sup.submit(frame(2), "rgb8", tag="stuck")
    col.wait_errors(1, timeout=10)
    frame_id, tag, error, at = col.errors[0]
    assert (frame_id, tag, type(error)) == (fid, "stuck", WorkerTimeoutError)
    assert "within 1 s" in str(error) and "frame_timeout_s" in str(error)
    assert 1.0 <= at - sent < 3.0
    assert wait_for(lambda: not alive(pid), 5)
    assert wait_for(lambda: sup.state is WorkerState.READY and sup.stats().generation == 2, 30)
    sup.submit(frame(3), "rgb8", tag="after")
    assert col.wait_results(2)[1].tag == "after"
    stats = sup.stats()
    assert (stats.restarts, stats.failed, stats.processed) == (1, 1, 2)
    check_counts(stats)


def test_frozen_idle_worker_is_caught_by_the_heartbeat(make: Make) -> None:
    sup, col = make(heartbeat_interval_s=0.1, heartbeat_timeout_s=1.0)
    sup.start()
    pid = sup.stats().pid
    frozen_at = time.monotonic()
    sup.debug("freeze")
    col.wait_errors(1, timeout=10)
    frame_id, tag, error, at = col.errors[0]
    assert (frame_id, tag, type(error)) == (-1, None, WorkerTimeoutError)
    assert "heartbeat" in str(error)
    assert 1.0 - 0.1 <= at - frozen_at < 3.0  # silence counts from the last heartbeat
    assert wait_for(lambda: not alive(pid), 5)
    assert wait_for(lambda: sup.state is WorkerState.READY and sup.stats().generation == 2, 30)


def test_restarts_back_off_then_give_up(make: Make) -> None:
    sup, col = make(max_restarts=2, backoff_initial_s=0.4, backoff_max_s=10.0)
    sup.start()
    delays = []
    for generation in (2, 3):
        crashed = time.monotonic()
        sup.debug("crash")
        assert wait_for(lambda g=generation: sup.stats().generation == g, 30)
        delays.append(time.monotonic() - crashed)
        assert wait_for(lambda: sup.state is WorkerState.READY, 30)
    assert delays[0] >= 0.4 and delays[1] >= 0.8  # exponential backoff
    pid = sup.stats().pid
    sup.debug("crash")
    assert wait_for(lambda: sup.state is WorkerState.FAILED, 10)
    errors = col.wait_errors(4)
    assert [type(e[2]) for e in errors] == [WorkerDiedError] * 3 + [WorkerError]
    stats = sup.stats()
    assert "giving up" in stats.last_error and "max_restarts=2" in stats.last_error
    assert stats.restarts == 2 and stats.pid is None and not alive(pid)
    assert sup.submit(frame(1), "rgb8", tag="late") is None
    assert sup.stats().dropped == 1
    check_counts(sup.stats())
    sup.stop()
    assert sup.state is WorkerState.STOPPED and not our_segments()


def test_missing_weights_fail_fast_with_the_workers_error(make: Make) -> None:
    config = CONFIG.replace(allow_random_weights=False, detector_weights="/nowhere/yolo.pt")
    sup, col = make(config=config)
    started = time.monotonic()
    with pytest.raises(WorkerStartError) as caught:
        sup.start()
    assert time.monotonic() - started < 20
    message = str(caught.value)
    assert "WeightsError" in message and "/nowhere/yolo.pt" in message
    assert isinstance(caught.value.__cause__, WeightsError)
    stats = sup.stats()
    assert stats.state is WorkerState.FAILED and stats.restarts == 0 and stats.pid is None
    assert stats.last_error is not None and "/nowhere/yolo.pt" in stats.last_error
    assert not our_segments()
    assert sup.submit(frame(1), "rgb8") is None


def test_startup_timeout(make: Make) -> None:
    sup, _ = make(start_delay=60, startup_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(WorkerStartError, match="not ready within 1 s"):
        sup.start()
    assert time.monotonic() - started < 10
    assert sup.state is WorkerState.FAILED and not our_segments()


def test_unknown_engine_factory(make: Make) -> None:
    sup, _ = make(engine_factory="worker_toy_engine:Nope")
    with pytest.raises(WorkerStartError, match="ConfigError: .*has no 'Nope'"):
        sup.start()


def test_thresholds_checked_applied_and_kept_across_restarts(make: Make) -> None:
    sup, col = make()
    sup.start()
    with pytest.raises(ConfigError, match="unknown class name"):
        sup.set_thresholds(Thresholds(0.5, 0.5, ("unicorn",)))
    with pytest.raises(ConfigError, match="detector.confidence"):
        sup.set_thresholds(Thresholds(1.5, 0.5))
    with pytest.raises(ConfigError, match="detector.iou"):
        sup.set_thresholds(Thresholds(0.5, -0.1))
    thresholds = Thresholds(0.5, 0.3, ("dog",))
    sup.set_thresholds(thresholds)
    engine = reference()
    engine.set_thresholds(thresholds)
    image = frame(250)
    sup.submit(image, "rgb8", tag=1)
    assert_same_result(col.wait_results(1)[0], engine.process(image, "rgb8"))
    sup.debug("crash")
    assert wait_for(lambda: sup.stats().generation == 2 and sup.state is WorkerState.READY, 30)
    sup.submit(image, "rgb8", tag=2)
    assert_same_result(col.wait_results(2)[1], engine.process(image, "rgb8"))
    # Errors the worker reports outside a frame arrive typed, with frame id -1.
    sup.debug("raise", kind="NoSuchError")
    errors = col.wait_errors(2)
    assert errors[-1][:2] == (-1, None) and isinstance(errors[-1][2], ConfigError)
    assert "NoSuchError" in str(errors[-1][2])


def test_stop_is_clean_idempotent_and_final(make: Make) -> None:
    sup, col = make(delay=1.0)
    sup.start()
    pid = sup.stats().pid
    sup.submit(frame(1), "rgb8", tag="in flight")
    sup.submit(frame(2), "rgb8", tag="waiting")
    started = time.monotonic()
    sup.stop()
    assert time.monotonic() - started < 5
    assert not alive(pid) and not our_segments()
    sup.stop()
    stats = sup.stats()
    assert stats.state is WorkerState.STOPPED and stats.dropped == 2 and not col.results
    assert sup.submit(frame(3), "rgb8") is None
    check_counts(sup.stats())


def test_stop_kills_a_hung_worker_in_time(make: Make) -> None:
    sup, _ = make()
    sup.start()
    pid = sup.stats().pid
    sup.debug("hang")
    sup.submit(frame(1), "rgb8")
    started = time.monotonic()
    sup.stop(timeout_s=1.0)
    assert time.monotonic() - started < 2.5
    assert not alive(pid) and not our_segments()


def test_stop_from_inside_a_callback(make: Make) -> None:
    sup, col = make()
    calls = []

    def on_result(r: object) -> None:
        col.on_result(r)  # type: ignore[arg-type]
        sup.stop()
        calls.append(sup.state)

    sup._on_result = on_result  # the callback needs the supervisor it is given to
    sup.start()
    sup.submit(frame(1), "rgb8")
    col.wait_results(1)
    assert wait_for(lambda: not our_segments(), 5)
    assert calls == [WorkerState.STOPPED]


def test_context_manager_and_start_again(make: Make) -> None:
    sup, col = make()
    with sup as started:
        assert started is sup and sup.state is WorkerState.READY
        name = next(iter(our_segments()))
        sup.submit(frame(1), "rgb8", tag="a")
        col.wait_results(1)
    assert sup.state is WorkerState.STOPPED and not our_segments()
    sup.start()
    assert our_segments() and name not in our_segments()
    sup.submit(frame(2), "rgb8", tag="b")
    assert col.wait_results(2)[1].tag == "b"
    with pytest.raises(WorkerError, match="already started"):
        sup.start()


def test_parent_side_never_imports_torch() -> None:
    code = (
        "import sys; import aria_perception.worker.supervisor, aria_perception.worker; "
        "heavy = [m for m in ('torch', 'timm', 'ultralytics', 'cv2') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


PARENT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
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
        try:
            with Supervisor(config, settings, on_result=lambda r: None) as sup:
                prefix = f"aria_{os.getpid()}_"
                (name,) = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
                print("READY", sup.stats().pid, name, flush=True)
                while True:
                    sup.submit(np.zeros((8, 8, 3), np.uint8), "rgb8")
                    time.sleep(0.01)
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
    parent = subprocess.Popen(
        [sys.executable, str(script), mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])},
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
        time.sleep(0.3)  # mid-stream
        signalled = time.monotonic()
        if how == "SIGKILL":
            parent.kill()
        elif how == "SIGTERM":
            parent.terminate()
        else:
            os.killpg(parent.pid, signal.SIGINT)  # Ctrl-C: parent and worker both get it
        out, err = parent.communicate(timeout=30)
        assert wait_for(lambda: not alive(worker_pid), 5), "worker outlived its parent"
        assert wait_for(lambda: not os.path.exists(f"/dev/shm/{name}"), 5), "segment left"
        assert time.monotonic() - signalled < 10
        if how != "SIGKILL":
            assert parent.returncode == 0, err
            assert "STOPPED STOPPED" in out and "Traceback" not in err, err
            # An orderly stop unlinks by itself: the resource tracker had nothing to clean.
            assert "leaked" not in err, err
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate()
