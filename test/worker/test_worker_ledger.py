"""The supervisor's bookkeeping on its own: slots, newest wins, answers, deadlines, counters."""

from __future__ import annotations

import math

import pytest

from aria_perception.worker.ledger import MAX_IN_WORKER, Job, Ledger, Loss
from aria_perception.worker.slots import INPUT_SLOTS

FRAME_S = 5.0
FIRST_S = 60.0


def ledger(generation: int = 1) -> Ledger:
    book = Ledger(FRAME_S, FIRST_S)
    book.worker_ready(generation)
    return book


def job(frame_id: int, slot: int, shape: tuple[int, ...] = (24, 32, 3), enc: str = "rgb8") -> Job:
    return Job(frame_id, f"tag{frame_id}", slot, shape, enc, True, 0.0, 0.1)


def submit(book: Ledger, frame_id: int, now: float = 0.0, **kw: object) -> tuple[Job, bool]:
    """What ``Supervisor.submit`` does: claim a slot, then admit; whether it was sent."""
    slot = book.claim_slot()
    assert slot is not None
    j = job(frame_id, slot, **kw)  # type: ignore[arg-type]
    sent = book.admit(j, now)
    assert sent in (j, None)
    return j, sent is j


def test_jobs_go_to_the_worker_until_it_is_full_then_the_newest_waits() -> None:
    book = ledger()
    sent = [submit(book, i) for i in range(1, 6)]
    assert [s for _, s in sent] == [True] * MAX_IN_WORKER + [False, False]
    c = book.counts()
    # The 4th frame was pending; the 5th took its slot: dropped, newest wins.
    assert (c.submitted, c.in_flight, c.pending, c.dropped) == (5, MAX_IN_WORKER, 1, 1)
    assert c.accounted and book.free_slots == 0
    assert [j.generation for j, s in sent if s] == [1] * MAX_IN_WORKER
    # Every job holds its own slot; the replaced one's slot went to the newest.
    slots = [j.in_slot for j, _ in sent]
    assert sorted(set(slots[:3] + slots[4:])) == list(range(INPUT_SLOTS))
    assert slots[4] == slots[3]


def test_answers_free_slots_in_order_and_let_the_pending_job_in() -> None:
    book = ledger()
    jobs = [submit(book, i)[0] for i in range(1, 5)]  # three in the worker, one pending
    assert book.dispatch_pending(1.0) is None  # no room yet
    assert book.processed(1, 1, 1.0) is jobs[0]
    assert book.dispatch_pending(1.0) is jobs[3]  # it goes in behind the others
    assert book.dispatch_pending(1.0) is None
    assert book.skipped(2, 1, 2.0) is jobs[1]
    assert book.rejected(3, 1, 3.0) is jobs[2]
    assert book.processed(4, 1, 4.0) is jobs[3]
    c = book.counts()
    assert (c.processed, c.dropped, c.rejected, c.in_flight, c.pending) == (2, 1, 1, 0, 0)
    assert c.accounted and book.free_slots == INPUT_SLOTS and book.front is None


def test_answers_for_anything_but_the_front_job_are_stale_and_never_matched() -> None:
    book = ledger(generation=2)
    first, _ = submit(book, 10)
    second, _ = submit(book, 11)
    # An earlier worker's answer for the same frame id, the second job out of order, a job
    # that does not exist, a fatal failure from an earlier worker.
    assert book.processed(10, 1, 1.0) is None
    assert book.processed(11, 2, 1.0) is None
    assert book.rejected(99, 2, 1.0) is None
    assert book.failed_fatally(10, 1, 1.0) is None
    c = book.counts()
    assert (c.stale, c.processed, c.in_flight) == (4, 0, 2)
    assert book.front is first
    assert book.processed(10, 2, 1.0) is first and book.processed(11, 2, 1.0) is second
    assert book.counts().accounted


def test_an_answer_after_the_worker_was_lost_is_stale() -> None:
    book = ledger()
    j, _ = submit(book, 1)
    assert book.worker_lost(died=True) == Loss(j, poison=False)  # it never started: not poison
    book.worker_ready(2)
    assert book.processed(1, 1, 1.0) is None and book.counts().stale == 1


def test_a_lost_worker_fails_its_current_job_and_drops_the_rest() -> None:
    book = ledger()
    jobs = [submit(book, i)[0] for i in range(1, 5)]
    assert book.worker_lost(died=False) == Loss(jobs[0], poison=False)
    c = book.counts()
    assert (c.failed, c.dropped, c.in_flight, c.pending) == (1, 3, 0, 0)
    assert c.accounted and book.free_slots == INPUT_SLOTS
    assert book.worker_lost(died=True) == Loss(None, poison=False)  # nothing left to lose


def test_a_fatal_failure_drops_the_jobs_behind_it_and_keeps_the_pending_one() -> None:
    book = ledger()
    jobs = [submit(book, i)[0] for i in range(1, 5)]
    assert book.failed_fatally(1, 1, 1.0) is jobs[0]
    c = book.counts()
    assert (c.failed, c.dropped, c.in_flight, c.pending) == (1, 2, 0, 1)
    assert book.worker_lost(died=True).job is None  # the pending job goes with the worker
    c = book.counts()
    assert (c.failed, c.dropped, c.pending) == (1, 3, 0) and c.accounted


def test_refused_rejected_and_unclaimed_frames_are_counted() -> None:
    book = ledger()
    book.reject()
    book.refuse()
    slot = book.claim_slot()
    assert slot is not None
    book.unclaim(slot)
    c = book.counts()
    assert (c.submitted, c.rejected, c.dropped) == (3, 1, 2) and c.accounted
    assert book.free_slots == INPUT_SLOTS


def test_drop_all_and_reset() -> None:
    book = ledger()
    for i in range(1, 5):
        submit(book, i)
    book.drop_all()
    c = book.counts()
    assert (c.dropped, c.in_flight, c.pending) == (4, 0, 0) and c.accounted
    assert book.free_slots == INPUT_SLOTS
    book.reset()
    assert book.free_slots == INPUT_SLOTS and book.counts().submitted == 4  # counters kept


def test_first_frame_of_each_shape_gets_the_long_timeout_and_later_ones_the_short() -> None:
    book = ledger()
    assert book.deadline == math.inf and book.overdue(1e9) is None
    a, _ = submit(book, 1, now=10.0)
    assert a.dispatched_at == 10.0 and a.deadline == 10.0 + FIRST_S
    b, _ = submit(book, 2, now=11.0)
    assert b.deadline == math.inf  # its time starts when it is the front job
    book.processed(1, 1, 20.0)
    assert b.deadline == 20.0 + FRAME_S and book.deadline == b.deadline  # the shape is warm
    assert book.overdue(25.0) is None and book.overdue(25.1) is b
    book.processed(2, 1, 21.0)
    c, _ = submit(book, 3, now=30.0, shape=(48, 64, 3))  # a new shape: cold again
    assert c.deadline == 30.0 + FIRST_S
    book.processed(3, 1, 31.0)
    d, _ = submit(book, 4, now=40.0, shape=(999,), enc="jpeg")  # compressed, size unknown
    book.processed(4, 1, 41.0)
    e, _ = submit(book, 5, now=50.0, shape=(5,), enc="jpeg")
    assert (d.deadline, e.deadline) == (40.0 + FIRST_S, 50.0 + FRAME_S)
    book.processed(5, 1, 51.0)
    book.worker_ready(2)  # a new worker: every shape is cold again
    f, _ = submit(book, 6, now=60.0)
    assert f.deadline == 60.0 + FIRST_S and f.generation == 2


def test_first_frame_timeout_is_never_shorter_than_the_frame_timeout() -> None:
    book = Ledger(frame_timeout_s=5.0, first_frame_timeout_s=1.0)
    book.worker_ready(1)
    j, _ = submit(book, 1, now=0.0)
    assert j.deadline == 5.0


def test_a_ledger_needs_room_for_a_running_and_a_waiting_frame() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Ledger(1.0, 1.0, input_slots=1)


def test_the_clock_of_a_started_job_counts_from_its_start() -> None:
    book = ledger()
    warm, _ = submit(book, 1, now=0.0)
    book.processed(1, 1, 1.0)  # the shape is warm from now on
    a, _ = submit(book, 2, now=10.0)
    b, _ = submit(book, 3, now=10.0)
    assert (a.deadline, a.timeout_s, a.started_at) == (10.0 + FRAME_S, FRAME_S, None)
    # The worker took long to get to it (a slow earlier frame, a starved machine): its clock
    # starts again when it starts; the time before does not count.
    assert book.started(2, 1, 14.0) is a
    assert (a.started_at, a.deadline) == (14.0, 14.0 + FRAME_S)
    assert book.overdue(16.0) is None and book.overdue(19.1) is a
    # A start of anything but the front job (an earlier worker's, a job behind it) is ignored
    # and counts nothing.
    assert book.started(2, 0, 15.0) is None and book.started(3, 1, 15.0) is None
    assert a.started_at == 14.0 and b.started_at is None and book.counts().stale == 0
    book.processed(2, 1, 16.0)
    assert (b.deadline, b.started_at) == (16.0 + FRAME_S, None)  # its turn: must start


def test_only_a_processed_frame_warms_its_shape() -> None:
    """A skipped or refused first frame of a shape leaves the next one the first-frame time."""
    book = ledger()
    a, _ = submit(book, 1, now=0.0)
    b, _ = submit(book, 2, now=0.0)
    c, _ = submit(book, 3, now=0.0)
    book.skipped(1, 1, 1.0)  # the newest wins: a never ran
    assert b.timeout_s == FIRST_S
    book.started(2, 1, 1.5)
    book.rejected(2, 1, 2.0)  # the engine refused it
    assert c.timeout_s == FIRST_S
    book.started(3, 1, 2.5)
    assert c.deadline == 2.5 + FIRST_S  # c is the first of its shape the engine runs through
    book.processed(3, 1, 3.0)
    d, _ = submit(book, 4, now=4.0)
    book.started(4, 1, 4.5)
    assert d.deadline == 4.5 + FRAME_S


def test_compressed_frames_of_a_new_decoded_size_get_the_first_frame_timeout() -> None:
    book = ledger()
    sizes = [(480, 640), (480, 640), (1080, 1920), None, None]
    jobs = []
    for i, size in enumerate(sizes, 1):
        slot = book.claim_slot()
        assert slot is not None
        j = Job(i, None, slot, (5000,), "png", True, 0.0, 0.1, size=size)
        assert book.admit(j, 0.0) is j
        book.started(i, 1, 1.0)
        jobs.append(j.timeout_s)
        book.processed(i, 1, 1.0)
    assert jobs == [FIRST_S, FRAME_S, FIRST_S, FIRST_S, FRAME_S]


def test_a_worker_that_dies_running_a_job_makes_it_poison_and_drops_the_rest() -> None:
    book = ledger()
    jobs = [submit(book, i)[0] for i in range(1, 5)]  # three in the worker, one pending
    book.skipped(1, 1, 1.0)
    assert book.started(2, 1, 1.0) is jobs[1]
    assert book.worker_lost(died=True) == Loss(jobs[1], poison=True)
    c = book.counts()
    # Only the frame it ran is poison (a bad frame: rejected too); the one waiting behind it
    # and the pending one are dropped.
    assert (c.poison, c.rejected, c.failed, c.dropped) == (1, 1, 0, 3)
    assert c.accounted and book.free_slots == INPUT_SLOTS


def test_a_worker_killed_as_hung_fails_the_job_it_ran_not_poison() -> None:
    book = ledger()
    j, _ = submit(book, 1)
    book.started(1, 1, 0.5)
    assert book.worker_lost(died=False) == Loss(j, poison=False)
    c = book.counts()
    assert (c.poison, c.rejected, c.failed) == (0, 0, 1) and c.accounted


def test_counts_are_a_snapshot_the_ledger_does_not_change_later() -> None:
    book = ledger()
    submit(book, 1)
    before = book.counts()
    before.dropped += 10  # a caller's copy: the ledger's counters are its own
    submit(book, 2)
    after = book.counts()
    assert (before.submitted, before.in_flight) == (1, 1)
    assert (after.submitted, after.dropped, after.in_flight) == (2, 0, 2) and after.accounted


def test_a_sent_job_asks_for_its_slot_shape_and_encoding_in_its_generation() -> None:
    book = ledger(generation=4)
    j, sent = submit(book, 7, shape=(5, 6), enc="mono8")
    assert sent
    request = j.request()
    assert (request.frame_id, request.generation, request.in_slot) == (7, 4, j.in_slot)
    assert (request.shape, request.encoding, request.want_depth) == ((5, 6), "mono8", True)
