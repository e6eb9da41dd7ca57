"""Database work for code that runs on an event loop: in a thread, never on the loop.

A worker's loops (cards, SLA steps, callback events, its stop) share one event loop, as a
server's requests share its own. A call on the loop during a database outage (a server gone
silent answers nothing, and nothing tells the client) holds all of them until the
connection's limits give up on it (80 s by default)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siyu.db.database import Database


class OneAtATime:
    """Work that must not overlap with other work of its kind on the same event loop (the
    order it had when it ran on the loop), while the loop's other work goes on meanwhile. A
    lock per event loop: a lock belongs to the loop it is first awaited on."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def lock(self) -> asyncio.Lock:
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


async def in_tenant(
    db: Database,
    tenant_id: int,
    work: Callable[..., Any],
    *args: Any,
    one_at_a_time: OneAtATime | None = None,
) -> Any:
    """`work(session, *args)` in one transaction of the tenant's, in a thread; its result.
    `one_at_a_time`: never at once with other work given the same."""

    def run() -> Any:
        with db.tenant_session(tenant_id) as s:
            return work(s, *args)

    if one_at_a_time is None:
        return await asyncio.to_thread(run)
    async with one_at_a_time.lock():
        return await asyncio.to_thread(run)


async def in_system(db: Database, work: Callable[..., Any], *args: Any) -> Any:
    """`work(session, *args)` in one transaction that sees every tenant, in a thread."""

    def run() -> Any:
        with db.system_session() as s:
            return work(s, *args)

    return await asyncio.to_thread(run)
