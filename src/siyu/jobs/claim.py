"""Claiming due rows so that several workers never run the same row at once.

A claim is a lease (`claimed_until`): a worker that dies mid-row leaves it to be claimed
again once the lease runs out, so a crash loses nothing. A live worker renews the leases of
the rows it runs (`held`), however long their work takes. On PostgreSQL rows are picked
with FOR UPDATE SKIP LOCKED; SQLite has one writer at a time anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from siyu.db import Database, utcnow

log = logging.getLogger(__name__)
# How long a claim holds its rows past its last renewal: a worker that dies mid-run (killed,
# its machine gone) leaves them to others this long (SIYU_WORK_LEASE_S).
LEASE = timedelta(seconds=60)


def claim(db: Database, model, limit: int, order_by=(), where=(), lease: timedelta = LEASE) -> list:
    """Lease up to `limit` due rows in one UPDATE ... RETURNING statement, so that the pick
    and the lease are atomic on SQLite as well (it has no SKIP LOCKED). Returns the rows,
    detached from the session, as they are after the claim."""
    now = utcnow()
    due = (
        select(model.id)
        .where(
            model.status == "pending",
            model.due_at <= now,
            or_(model.claimed_until.is_(None), model.claimed_until < now),
            *where,
        )
        .order_by(*order_by, model.due_at)
        .limit(limit)
    )
    if db.is_postgres:
        due = due.with_for_update(skip_locked=True)
    else:
        with db.system_session() as s:
            # A plain read first: on SQLite an UPDATE takes the one write lock even when it
            # matches nothing, and idle loops would contend with the callback intake for it.
            # (PostgreSQL's UPDATE that matches nothing locks nothing: one statement is less.)
            if s.scalar(due.with_only_columns(model.id).limit(1)) is None:
                return []
    stmt = (
        update(model)
        .where(model.id.in_(due))
        .values(claimed_until=now + lease, attempts=model.attempts + 1)
        .returning(model)
        .execution_options(synchronize_session=False)
    )
    with db.system_session() as s:
        rows = list(s.scalars(stmt))
        s.expunge_all()
    return rows


def renew(db: Database, row, lease: timedelta = LEASE) -> datetime | None:
    """Just before a side effect: extend the lease, if it is still this claim's. None means
    the lease ran out meanwhile and another worker has the row: do nothing."""
    return row.claimed_until if renew_many(db, [row], lease) else None


def renew_many(db: Database, rows: list, lease: timedelta = LEASE) -> set[int]:
    """`renew` for rows claimed together: one UPDATE per claim time (normally one). Returns
    the ids whose lease was still this claim's (now extended); those rows carry their new
    lease, which the next renewal must find."""
    if not rows:
        return set()
    until = utcnow() + lease
    model = type(rows[0])
    by_claim: dict[datetime, list[int]] = {}
    for row in rows:
        by_claim.setdefault(row.claimed_until, []).append(row.id)
    renewed: set[int] = set()
    with db.system_session() as s:
        for claimed_until, ids in by_claim.items():
            stmt = (
                update(model)
                .where(model.id.in_(ids), model.status == "pending", model.claimed_until == claimed_until)
                .values(claimed_until=until)
                .returning(model.id)
                .execution_options(synchronize_session=False)
            )
            renewed.update(s.scalars(stmt))
    for row in rows:
        if row.id in renewed:
            row.claimed_until = until
    return renewed


@contextlib.asynccontextmanager
async def held(db: Database, rows: list, lease: timedelta = LEASE) -> AsyncIterator[None]:
    """Keep the leases of `rows` (as `renew_many` left them) while the block runs, renewing
    them every third of `lease`. Waits for a renewal under way before leaving, so that none
    lands after the block has recorded its outcome."""
    stop = asyncio.Event()

    async def beat() -> None:
        live = list(rows)
        while live:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), lease.total_seconds() / 3)
                return
            try:
                kept = await asyncio.to_thread(renew_many, db, live, lease)
            except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                log.exception("renewing the leases of %d rows failed", len(live))
                continue
            lost = [row.id for row in live if row.id not in kept]
            if lost:
                log.warning(  # (or the work recorded itself done just now)
                    "leases of %s %s not renewed: run out, another worker may run them again",
                    type(live[0]).__name__,
                    lost,
                )
            live = [row for row in live if row.id in kept]

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        stop.set()
        await beating


def backoff(attempts: int, base: float = 1.0, cap: float = 3600.0) -> timedelta:
    """Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at an hour, the jitter too (it
    had let a retry wait up to 72 minutes where "at most hourly" is promised)."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=min(cap, delay * random.uniform(0.8, 1.2)))
