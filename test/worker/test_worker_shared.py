"""Several cameras on one worker: routing, newest wins and fairness per camera, a shared life.

Real worker processes (the toy engine) and real shared memory. Each camera sends frames of its
own size with its own thresholds (class offset) and rotation, and every result is checked
against the camera's own frame and settings (``Cam.check_own``).
"""

from __future__ import annotations

import os
import signal

import pytest
from shared_helpers import Cam, Cams, rectification
from worker_helpers import EngineLog, Gate, alive, check_counts, our_segments, wait_for

from aria_perception.errors import PoisonFrameError, WorkerDiedError, WorkerTimeoutError
from aria_perception.records import Thresholds, WorkerState
from aria_perception.worker.registry import WorkerRegistry


def three(cams: Cams, **settings: object) -> list[Cam]:
    """rgb, left and right: their own sizes, confidences (class offsets) and rotations."""
    return [
        cams("rgb", (24, 32), settings, confidence=0.0, rotation=90),
        cams("left", (16, 20), settings, confidence=0.1, rotation=0),
        cams("right", (20, 16), settings, confidence=0.2, rotation=270),
    ]


def run_round(trio: list[Cam], value: int) -> None:
    """Each camera sends a frame marked ``value`` and waits for its result."""
    for cam in trio:
        assert cam.submit(value) is not None
    for cam in trio:
        assert cam.got.wait(lambda c=cam: any(g.tag[1] == value for g in c.got.results))


def test_three_cameras_share_one_worker_and_each_gets_only_its_own_results(
    cams: Cams, registry: WorkerRegistry
) -> None:
    trio = three(cams)
    assert registry.workers() == 1
    pids = {cam.client.stats().pid for cam in trio}
    assert len(pids) == 1 and None not in pids
    for value in (64, 130, 200, 65, 131, 201):  # 1 to 3 boxes: the class offsets show
        run_round(trio, value)
    ids = [frame_id for cam in trio for frame_id in cam.sent]
    assert len(ids) == len(set(ids)), "frame ids are unique among the worker's cameras"
    for cam in trio:
        cam.check_own()
        stats = cam.client.stats()
        assert (stats.cameras, stats.restarts, stats.state) == (3, 0, WorkerState.READY)
        assert stats.processed == len(cam.got.results) == 6 and not cam.got.errors
        check_counts(stats)


def test_thresholds_and_rectification_change_for_their_camera_only(cams: Cams) -> None:
    rgb, left, right = three(cams)
    left.client.set_thresholds(Thresholds(0.2, 0.45))
    left.config = left.config.replace(confidence=0.2)
    rgb.client.set_rectification(rectification(40))
    run_round([rgb, left, right], 130)
    for cam, width in ((rgb, 40.0), (left, -1.0), (right, -1.0)):
        cam.check_own()
        times = cam.got.results[-1].times
        assert times is not None and times.transfer_ms == width


def test_newest_wins_per_camera_and_cameras_take_turns(
    cams: Cams, gate: Gate, engine_log: EngineLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A camera flooding frames does not starve another: it runs next, after the frame on."""
    monkeypatch.setenv("ARIA_TOY_GATE", str(gate.path))
    flood, calm = cams("flood", (24, 32)), cams("calm", (16, 20))
    flood.submit(1)
    assert wait_for(lambda: engine_log.started() == [1], 30)
    for value in range(2, 10):
        flood.submit(value)
    calm.submit(200)
    gate.open()
    assert flood.got.wait(lambda: any(g.tag[1] == 9 for g in flood.got.results))
    calm.got.wait_results(1)
    assert engine_log.started()[:2] == [1, 200], engine_log.started()
    values = [g.tag[1] for g in flood.got.results]
    assert values[0] == 1 and values[-1] == 9 and values == sorted(values)
    flood_stats, calm_stats = flood.client.stats(), calm.client.stats()
    assert flood_stats.dropped >= 5 and calm_stats.dropped == 0
    for cam in (flood, calm):
        cam.check_own()
        check_counts(cam.client.stats())


def test_kill_9_brings_every_camera_back_with_its_settings_and_counts_one_restart(
    cams: Cams, gate: Gate, engine_log: EngineLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARIA_TOY_GATE", str(gate.path))
    trio = three(cams)
    rgb, left, _ = trio
    left.client.set_thresholds(Thresholds(0.2, 0.45))  # sent at run time: must come back
    left.config = left.config.replace(confidence=0.2)
    rgb.client.set_rectification(rectification(40))
    pid = rgb.client.stats().pid
    assert pid is not None
    for cam in trio:
        cam.submit(64)  # one frame each in the worker: the first runs (gated), two wait
    assert wait_for(lambda: engine_log.started() == [64], 30)
    os.kill(pid, signal.SIGKILL)
    errors = [cam.got.wait_errors(1)[0][2] for cam in trio]
    assert all(isinstance(e, WorkerDiedError) for e in errors), errors
    assert sum(isinstance(e, PoisonFrameError) for e in errors) == 1  # the frame it ran
    gate.open()
    assert wait_for(lambda: all(c.client.stats().state is WorkerState.READY for c in trio), 60)
    run_round(trio, 131)
    new_pid = rgb.client.stats().pid
    assert new_pid != pid and not alive(pid)
    for cam in trio:
        stats = cam.client.stats()
        assert (stats.restarts, stats.generation, stats.pid) == (1, 2, new_pid)
        cam.check_own()
        check_counts(stats)
    assert rgb.got.results[-1].times.transfer_ms == 40.0  # type: ignore[union-attr]


def test_a_poison_frame_is_charged_to_its_camera(
    cams: Cams, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARIA_TOY_POISON", "77")
    trio = three(cams)
    run_round(trio, 64)
    rgb, left, right = trio
    left.submit(77)
    _, tag, error, _ = left.got.wait_errors(1)[0]
    assert isinstance(error, PoisonFrameError) and tag == ("left", 77)
    assert wait_for(lambda: rgb.client.stats().state is WorkerState.READY, 60)
    run_round(trio, 65)
    assert [c.client.stats().poison for c in trio] == [0, 1, 0]
    assert [c.client.stats().rejected for c in trio] == [0, 1, 0]
    for cam in (rgb, right):  # told that the worker died, no frame of theirs charged
        assert [(fid, type(e)) for fid, _, e, _ in cam.got.errors] == [(-1, WorkerDiedError)]
    for cam in trio:
        cam.check_own()
        check_counts(cam.client.stats())


def test_cameras_leave_one_by_one_and_the_last_stops_the_worker(
    cams: Cams, registry: WorkerRegistry
) -> None:
    trio = three(cams)
    run_round(trio, 64)
    pid = trio[0].client.stats().pid
    assert pid is not None and len(our_segments()) == 3  # a segment per camera
    trio[1].client.close()
    assert len(our_segments()) == 2 and alive(pid)
    run_round([trio[0], trio[2]], 65)  # the others go on, on the same worker
    assert trio[0].client.stats().cameras == 2 and trio[2].client.stats().pid == pid
    trio[0].client.close()
    trio[2].client.close()
    assert registry.workers() == 0 and not our_segments()
    assert wait_for(lambda: not alive(pid), 10)


def test_cameras_with_different_engines_get_different_workers(
    cams: Cams, registry: WorkerRegistry
) -> None:
    small = cams("small", (24, 32), detector_image_size=320)
    big = cams("big", (24, 32))
    big_too = cams("big_too", (16, 20), rotation=90, confidence=0.1)  # per camera: same key
    assert registry.workers() == 2
    assert small.client.stats().pid != big.client.stats().pid == big_too.client.stats().pid
    run_round([small, big, big_too], 130)
    for cam in (small, big, big_too):
        cam.check_own()


@pytest.mark.slow
def test_a_slow_worker_that_advances_is_not_killed(
    cams: Cams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each frame takes 2.5 s in 25 steps, past the 1 s frame timeout: slow, not hung."""
    monkeypatch.setenv("ARIA_TOY_DELAY_S", "2.5")
    monkeypatch.setenv("ARIA_TOY_STEPS", "25")
    timeouts = {"frame_timeout_s": 1.0, "first_frame_timeout_s": 1.0}
    pair = [cams("a", (24, 32), timeouts), cams("b", (16, 20), timeouts)]
    run_round(pair, 64)  # b's frame waits for a's, then takes its own 2.5 s
    for cam in pair:
        stats = cam.client.stats()
        assert (stats.restarts, stats.failed, stats.processed) == (0, 0, 1), stats
        assert not cam.got.errors


def test_a_hung_worker_is_killed_and_every_camera_comes_back(cams: Cams) -> None:
    timeouts = {"frame_timeout_s": 1.0, "first_frame_timeout_s": 1.0}
    pair = [cams("a", (24, 32), timeouts), cams("b", (16, 20), timeouts)]
    run_round(pair, 64)
    pair[0].client.debug("hang")  # heartbeats go on, the main thread does not
    for cam in pair:
        cam.submit(65)
    for cam in pair:
        _, tag, error, _ = cam.got.wait_errors(1)[0]
        assert isinstance(error, WorkerTimeoutError) and tag == (cam.name, 65)
        assert "made no progress" in str(error) and "hung" in str(error)
    assert wait_for(lambda: pair[0].client.stats().state is WorkerState.READY, 60)
    run_round(pair, 66)
    assert [c.client.stats().restarts for c in pair] == [1, 1]
