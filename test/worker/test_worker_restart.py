"""The restart policy on its own: sliding window, max restarts, exponential backoff with a cap."""

from __future__ import annotations

from aria_perception.errors import WorkerDiedError, WorkerError
from aria_perception.worker.restart import RestartPolicy
from aria_perception.worker.settings import WorkerSettings


def policy(max_restarts: int = 5, window_s: float = 60.0) -> RestartPolicy:
    return RestartPolicy(
        max_restarts, window_s, backoff_initial_s=0.5, backoff_max_s=10.0, cooldown_s=30.0
    )


def test_backoff_doubles_within_the_window_up_to_the_cap() -> None:
    p = policy(max_restarts=10)
    delays = [p.on_failure(100.0 + i) - (100.0 + i) for i in range(7)]  # type: ignore[operator]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_gives_up_after_max_restarts_within_the_window() -> None:
    p = policy(max_restarts=2)
    assert p.on_failure(0.0) == 0.5
    assert p.on_failure(1.0) == 2.0
    assert p.on_failure(2.0) is None
    assert p.on_failure(3.0) is None  # and stays given up while the window holds both
    error = p.give_up_error(WorkerDiedError("worker (pid 7) was killed by SIGKILL"))
    assert isinstance(error, WorkerError)
    text = str(error)
    assert "failed 3 times within 60 s" in text and "max_restarts=2" in text
    assert "trying again in 30 s" in text
    assert "Last: WorkerDiedError: worker (pid 7) was killed by SIGKILL" in text


def test_failures_older_than_the_window_are_forgotten() -> None:
    p = policy(max_restarts=2, window_s=10.0)
    assert p.on_failure(0.0) == 0.5
    assert p.on_failure(5.0) == 6.0  # second in the window: 1 s
    assert p.on_failure(10.5) == 11.5  # the first expired: second in the window again
    assert p.recent_failures == 2
    assert p.on_failure(14.0) is None  # 5.0 and 10.5 are both within 10 s
    assert p.on_failure(21.0) == 21.5  # both expired: the backoff starts over


def test_a_failure_exactly_at_the_window_edge_still_counts() -> None:
    p = policy(max_restarts=1, window_s=10.0)
    assert p.on_failure(0.0) == 0.5
    assert p.on_failure(10.0) is None
    assert p.on_failure(10.001) == 10.501


def test_zero_restarts_gives_up_at_once() -> None:
    assert policy(max_restarts=0).on_failure(0.0) is None


def test_reset_forgets_every_failure() -> None:
    p = policy(max_restarts=1)
    p.on_failure(0.0)
    assert p.on_failure(1.0) is None
    p.reset()
    assert p.recent_failures == 0 and p.on_failure(2.0) == 2.5


def test_large_restart_counts_do_not_overflow_the_backoff() -> None:
    p = RestartPolicy(10_000, 1e9, backoff_initial_s=0.5, backoff_max_s=3.0)
    delays = [p.on_failure(float(i)) - i for i in range(2_000)]  # type: ignore[operator]
    assert delays[:4] == [0.5, 1.0, 2.0, 3.0] and set(delays[3:]) == {3.0}


def test_from_settings_uses_the_worker_settings() -> None:
    s = WorkerSettings(
        max_restarts=3, restart_window_s=7.0, backoff_initial_s=0.2, failed_cooldown_s=4.0
    )
    p = RestartPolicy.from_settings(s)
    assert (p.max_restarts, p.window_s, p.backoff_initial_s, p.backoff_max_s, p.cooldown_s) == (
        3,
        7.0,
        0.2,
        s.backoff_max_s,
        4.0,
    )
    assert RestartPolicy(1, 1.0, 0.1, 0.2).cooldown_s == WorkerSettings().failed_cooldown_s
