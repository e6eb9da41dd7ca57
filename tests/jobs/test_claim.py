"""Claiming due rows: two workers never get the same row; a crashed worker's rows come back."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from sqlalchemy import select, update

from siyu.db import utcnow
from siyu.jobs.claim import backoff, claim
from siyu.jobs.worker import Worker
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from siyu.runtime import Runtime
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


def test_a_worker_never_runs_more_rows_at_once_than_its_concurrency(db, settings):
    """`siyu worker --concurrency 2`: "rows run at once". A row that ended while another still
    ran left room for one more, and the loop had claimed a whole `concurrency` more."""
    tid = tenant(db)
    with db.tenant_session(tid) as s:
        for i in range(8):
            outbox.enqueue(s, "welcome", f"hunt-conc:{i}", {"i": i}, priority=outbox.URGENT)
    rt = Runtime.create(settings, db)
    in_flight, most, done = [0], [0], []

    async def run_one(_rt, row) -> None:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        try:
            # the first of each pair is quick, the second slow
            await asyncio.sleep(0.05 if row.payload.get("i", 0) % 2 == 0 else 0.6)
        finally:
            in_flight[0] -= 1
            if row.tenant_id == tid:  # (another test's urgent row may be claimed too)
                done.append(row.id)

    async def main() -> None:
        worker = Worker(rt, concurrency=2, poll_s=0.05)
        loop = asyncio.create_task(worker._loop(worker._claim_urgent, run_one, running=worker._urgent))
        for _ in range(200):
            if len(done) >= 8:
                break
            await asyncio.sleep(0.05)
        worker.stop()
        await loop

    asyncio.run(main())
    assert len(done) == 8
    assert most[0] <= 2, f"{most[0]} rows ran at once with concurrency 2"


def test_backoff_never_waits_past_its_cap():
    """Retries are at most hourly (README): the jitter had taken a capped hour to up to 72 minutes."""
    waits = [backoff(attempts).total_seconds() for attempts in range(1, 40) for _ in range(50)]
    assert max(waits) <= 3600 and min(waits) >= 0.8
