"""Claiming due rows: two workers never get the same row; a crashed worker's rows come back."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select, update

from siyu.db import utcnow
from siyu.jobs.claim import claim
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from tests.support import new_tenant as tenant


def pending(db, tenant_id: int, n: int) -> set[int]:
    with db.tenant_session(tenant_id) as s:
        for i in range(n):
            outbox.enqueue(s, "app_message", f"k{i}", {"i": i})
        return set(s.scalars(select(OutboxMessage.id).where(OutboxMessage.dedupe_key.like("k%"))))


def ids_of(rows) -> list[int]:
    return [r.id for r in rows]


def test_concurrent_claims_are_disjoint(db):
    tid = tenant(db)
    ids = pending(db, tid, 120)
    claimed: list[list[int]] = [[], [], []]

    def worker(slot: int) -> None:
        while True:
            rows = claim(db, OutboxMessage, 7)  # other tests' rows may come along: kept apart
            if not rows:
                return
            claimed[slot].extend(m.id for m in rows if m.id in ids)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for part in claimed for i in part]
    assert len(everything) == len(set(everything)) == 120  # each row exactly once
    assert set(everything) == ids


def test_a_crashed_workers_lease_runs_out_and_the_row_is_claimed_again(db):
    tid = tenant(db)
    (row_id,) = pending(db, tid, 1)
    assert row_id in ids_of(claim(db, OutboxMessage, 1000))
    assert row_id not in ids_of(claim(db, OutboxMessage, 1000))  # leased: nobody else takes it
    with db.system_session() as s:  # the worker died; time passes beyond the lease
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    assert row_id in ids_of(claim(db, OutboxMessage, 1000))
    with db.tenant_session(tid) as s:
        assert s.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == row_id)) == 2


def test_the_same_side_effect_is_queued_once(db):
    tid = tenant(db)
    with db.tenant_session(tid) as s:
        first = outbox.enqueue(s, "welcome", "welcome:CODE", {})
        again = outbox.enqueue(s, "welcome", "welcome:CODE", {})
    assert first is True and again is False


def test_a_worker_whose_lease_ran_out_does_not_send(db):
    """Worker A claimed, stalled past its lease; worker B claimed the row again. Only B may
    go on to the side effect: A's renewal, just before sending, is refused."""
    from siyu.jobs.claim import renew

    tid = tenant(db)
    (row_id,) = pending(db, tid, 1)
    a = next(r for r in claim(db, OutboxMessage, 1000) if r.id == row_id)
    with db.system_session() as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    b = next(r for r in claim(db, OutboxMessage, 1000) if r.id == row_id)
    assert renew(db, a) is None
    assert renew(db, b) is not None


def test_a_batch_renewal_keeps_only_the_rows_still_this_claims(db):
    """A batch of rows claimed together, one of which another worker took over after the
    lease ran out: renewing the batch keeps the others and leaves that one alone."""
    from siyu.jobs.claim import renew_many

    tid = tenant(db)
    ids = pending(db, tid, 3)
    mine = [r for r in claim(db, OutboxMessage, 1000) if r.id in ids]
    assert len(mine) == 3
    taken = mine[0].id
    with db.system_session() as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == taken)
            .values(claimed_until=utcnow() - timedelta(seconds=1))
        )
    assert [r.id for r in claim(db, OutboxMessage, 1000) if r.id in ids] == [taken]
    assert renew_many(db, mine) == ids - {taken}
    assert renew_many(db, []) == set()
