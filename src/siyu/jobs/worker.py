"""The worker loop: claims callback events and outbox messages and runs them.

Runs inside `siyu serve` in the embedded default (as a child process, see siyu.jobs.child),
or as any number of `siyu worker` processes against PostgreSQL. Stored work wakes it at
once (`Runtime.wake`); work stored by other processes is found at the next poll.

Urgent outbox messages (welcome messages: WeCom accepts them for 20 s only) have a loop of
their own, and while any is in flight the other loops claim nothing new, so a burst of
new customers is greeted first and recorded right after.

Each loop runs at most its share of rows (or claims) of one company at once, and keeps a
quarter more beside them for the others: one company's backlog sent to a WeCom answering
slowly (a frequency block, a timeout) had filled every slot, and another company's cards
waited minutes behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter

from siyu.conversations import tasks as conversation_tasks
from siyu.conversations.search import SearchBacklog
from siyu.db.outage import Outage
from siyu.intake import tasks as intake_tasks
from siyu.intake.models import CallbackEvent
from siyu.jobs.claim import claim
from siyu.notify import outbox
from siyu.notify import tasks as notify_tasks
from siyu.notify.models import OutboxMessage
from siyu.sla import tasks as sla_tasks  # also registers the SLA's wait listener and senders
from siyu.sla.models import SlaEscalation
from siyu.tenancy.tasks import sync_due_staff

log = logging.getLogger(__name__)
OUTBOX_BATCHES = 4  # claims of one company's outbox messages sent at once (a quarter more for others)
# How often a loop whose company has its share running looks for other companies' rows, once it
# found none: that claim reads past the company's backlog (73 ms at 100,000 rows on SQLite).
OTHERS_LOOK_S = 1.0
# Rows a claim of outbox messages takes. A claim costs four transactions whatever its size
# (claim, lease renewal, preparing its texts, recording), and they, not the sends, bound how
# fast cards go: 100,000 escalation cards to 2,500 agents in 3 minutes reached WeCom with p99
# 11.2 s in claims of 10 and 0.55 s in claims of 40; later, with claims capped at the
# worker's --concurrency (32 by default), 0.89-1.92 s, and 0.35-0.43 s in claims of 64 (with
# the emulator's routing made cheaper at the same time). The WeCom client still has at most
# 10 calls in flight to one API (siyu.wecom.ratelimit), so a claim goes out in waves.
OUTBOX_CLAIM = 64
# The tables claimed from: vacuumed this often where PostgreSQL's autovacuum is off
# (`Database.tidy`).
QUEUE_TABLES = (
    OutboxMessage.__tablename__,
    SlaEscalation.__tablename__,
    CallbackEvent.__tablename__,
    SearchBacklog.__tablename__,
)
TIDY_S = 10.0
# A worker makes many short-lived objects a batch (rows, parsed messages, waits) and few that
# live: with Python's default (a young collection every 700 allocations) archive ingest ran
# 2-3 % slower (benchmarks/ingest.py, runs alternating: ratio 0.241-0.247 -> 0.248-0.255).
COLLECT_EVERY = (10_000, 50, 100)
# What the worker logs when the database stops answering its loops, and when it answers again
OUTAGE_BEGINS = (
    "the database does not answer ({what}: {reason}); the worker keeps trying and goes on once it does"
)
OUTAGE_ENDS = "the database answers again after {down_s:.0f} s ({failures} failed tries); the worker goes on"


def settle_collector() -> None:
    """For a worker process, once started: what start-up made (modules, SQLAlchemy's
    metadata, compiled patterns) lives as long as the process, so the collector stops
    scanning it (gc.freeze), and the young generation is collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECT_EVERY)


class Worker:
    def __init__(self, rt, concurrency: int = 32, poll_s: float = 0.5, scheduled: bool = False):
        if concurrency < 1:  # (none at once: callbacks and urgent messages would never run)
            raise ValueError(f"a worker runs at least one row at once, not {concurrency}")
        self.rt = rt
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.scheduled = scheduled  # also run periodic jobs (staff sync)
        self._stop = asyncio.Event()
        self._urgent: set[asyncio.Task] = set()
        self._wakes: list[asyncio.Event] = []
        self.outage = Outage(log, OUTAGE_BEGINS, OUTAGE_ENDS)  # the loops' failures: logged once

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loops = [
            self._loop(self._claim_urgent, notify_tasks.send, running=self._urgent),
            self._loop(self._claim_events, intake_tasks.process, yields=True),
            self._loop(
                self._claim_outbox, notify_tasks.send_batch, yields=True, batches=OUTBOX_BATCHES, outbox=True
            ),
            self._sla(),
        ]
        if self.scheduled:
            loops.append(self._periodic())
            loops.append(self._every(TIDY_S, self._tidy, "tidying the queue tables"))
            loops.append(self._archive())
            loops.append(
                self._every(
                    conversation_tasks.MEMBERS_READ_EVERY_S,
                    conversation_tasks.read_unread_members,
                    "reading customer groups' members",
                )
            )
            loops.append(
                self._every(
                    conversation_tasks.PERMIT_READ_EVERY_S,
                    conversation_tasks.read_permit_lists,
                    "reading who the archive covers",
                )
            )
        try:
            await asyncio.gather(*loops)
        finally:
            for event in self._wakes:
                self.rt.forget_wake(event)

    def _claim_urgent(self, room: int, leaving_out: list[int]) -> list:
        return claim(
            self.rt.db,
            OutboxMessage,
            room,
            order_by=(OutboxMessage.deadline_at,),
            where=(OutboxMessage.priority == outbox.URGENT, *_other_than(OutboxMessage, leaving_out)),
            lease=self.rt.settings.work_lease,
        )

    def _claim_events(self, room: int, leaving_out: list[int]) -> list:
        return claim(
            self.rt.db,
            CallbackEvent,
            room,
            where=_other_than(CallbackEvent, leaving_out),
            lease=self.rt.settings.work_lease,
        )

    def _claim_outbox(self, room: int, leaving_out: list[int]) -> list:
        """A claim of OUTBOX_CLAIM rows, whatever the room (run as one batch)."""
        return claim(
            self.rt.db,
            OutboxMessage,
            OUTBOX_CLAIM,
            order_by=(OutboxMessage.priority,),
            where=(OutboxMessage.priority > outbox.URGENT, *_other_than(OutboxMessage, leaving_out)),
            lease=self.rt.settings.work_lease,
        )

    async def _loop(
        self,
        claim_rows,
        run_one,
        running: set | None = None,
        yields: bool = False,
        woken: bool = True,
        batches: int = 0,
        outbox: bool = False,
    ) -> None:
        """Claim and run rows. `yields`: claim nothing while urgent work runs. `woken`: start
        at once when work is stored (else poll only). `batches`: run each claim's rows as one
        task, `run_one(rt, rows)`, with at most this many claims of one company in flight.
        `outbox`: also woken when a queued message comes due (Runtime.wake_after). A company
        has at most its share (`batches`, else the worker's concurrency) running at once; a
        quarter more is kept for the others beside it (see the module's docstring)."""
        share = batches or self.concurrency
        limit = share + max(1, share // 4)
        load: Counter[int] = Counter()  # tasks running, by company
        others_at = 0.0  # when to look again for other companies' rows beside those with their share
        if woken:
            waiting = self.rt.new_wake(outbox=outbox)
            self._wakes.append(waiting)
        else:
            waiting = asyncio.Event()
        running = running if running is not None else set()

        def finished(tenants: set[int]) -> None:
            had_share = any(load[t] >= share for t in tenants)
            load.subtract(tenants)
            for t in tenants:
                if load[t] <= 0:
                    del load[t]
            if running is self._urgent and not running:
                self.rt.wake()  # urgent work is done: the loops that yielded may claim again
            elif had_share or len(running) == limit - 1:
                waiting.set()  # this loop, or a company's share of it, was full and has room again

        while not self._stop.is_set():
            waiting.clear()
            rows = []
            # rows claimed: only as many as there is room for (a row finishing had let a full
            # claim of `concurrency` more start beside the rest, up to twice as many at once),
            # none of a company that has its share running, and no more than fills another's
            full = [t for t, n in load.items() if n >= share]
            busiest = max((n for n in load.values() if n < share), default=0)
            room = min(limit - len(running), share - busiest)
            # (a claim leaving out a company reads past its backlog: where the last found no
            # other company's rows, looked for again OTHERS_LOOK_S later, not at every wake)
            others_later = full and time.monotonic() < others_at
            if room > 0 and not (yields and self._urgent) and not others_later:
                asked_at = time.monotonic()
                try:
                    rows = await asyncio.to_thread(claim_rows, room, full)
                except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the loop
                    if not self.outage.failed(exc, "claiming work", asked_at):
                        log.exception("claiming work failed")
                else:
                    self.outage.answered(asked_at)
                    if full and not rows:
                        others_at = time.monotonic() + OTHERS_LOOK_S
            for work in [rows] if batches and rows else rows:
                tenants = {row.tenant_id for row in work} if batches else {work.tenant_id}
                load.update(tenants)
                task = asyncio.create_task(self._guard(run_one, work))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _task, tenants=tenants: finished(tenants))
            if rows and len(rows) == (OUTBOX_CLAIM if batches else room):
                await asyncio.sleep(0)
                continue
            waiter = asyncio.create_task(waiting.wait())
            stopper = asyncio.create_task(self._stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
        if running:
            await asyncio.wait(running, timeout=10)

    async def _sla(self) -> None:
        """Fire SLA steps as they come due: claim and fire a batch (in a thread, so that the
        other loops' sends go on meanwhile), then sleep until the next step is due, at most
        sla_tasks.POLL_S (new waits are seen then) and at least sla_tasks.GATHER_S (steps
        coming due close together fire as one batch). A pull in this process that moves the
        archive on wakes it at once: steps wait for the archive far more often than for the
        clock, since the archive is never pulled past now."""
        moved = self.rt.new_sla_wake()
        self._wakes.append(moved)
        while not self._stop.is_set():
            delay = sla_tasks.POLL_S
            moved.clear()
            asked_at = time.monotonic()
            try:
                claimed, fired = await asyncio.to_thread(sla_tasks.claim_and_fire, self.rt, sla_tasks.BATCH)
                self.outage.answered(asked_at)
                if fired:
                    self.rt.wake_senders()  # the notices are in the outbox: send them now
                if claimed >= sla_tasks.BATCH:  # (several tenants may give more)
                    await asyncio.sleep(0)
                    continue
                # Steps are flowing: the next is as good as due, asking costs more than it saves
                delay = (
                    sla_tasks.GATHER_S
                    if claimed
                    else await asyncio.to_thread(sla_tasks.next_due_in, self.rt, sla_tasks.POLL_S)
                )
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the loop
                if not self.outage.failed(exc, "firing SLA steps", asked_at):
                    log.exception("firing SLA steps failed")
            await asyncio.sleep(sla_tasks.GATHER_S)
            waits = {asyncio.create_task(self._stop.wait()), asyncio.create_task(moved.wait())}
            rest = max(0.0, delay - sla_tasks.GATHER_S)
            await asyncio.wait(waits, timeout=rest, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()

    async def _archive(self) -> None:
        """The archive timer: each round starts the pulls of the tenants not being pulled and
        does not wait for them, so that a tenant's backlog holds up no other's next pull. A
        stop cancels those under way."""

        async def start_pulls(rt) -> None:
            await conversation_tasks.pull_all(rt, wait=False)

        try:
            await self._every(self.rt.settings.archive_poll_s, start_pulls, "archive pull")
        finally:
            await conversation_tasks.stop_pulls()

    async def _tidy(self, rt) -> None:
        await asyncio.to_thread(rt.db.tidy, QUEUE_TABLES)

    async def _periodic(self) -> None:
        await self._every(300, sync_due_staff, "scheduled staff sync")

    async def _every(self, every_s: float, job, what: str) -> None:
        while not self._stop.is_set():
            # A stop cancels the job where it waits, not when it ends (a staff sync waiting out
            # WeCom's limits; the archive's pulls are `_archive`'s): `systemctl stop` and Ctrl-C
            # had waited minutes, then killed it. What it writes in a thread is finished first.
            asked_at = time.monotonic()
            running = asyncio.create_task(job(self.rt))
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not running.done():
                running.cancel()
                await asyncio.wait({running})
                return
            error = None if running.cancelled() else running.exception()
            # WeCom or the database being down must not stop the worker
            if error is not None and not self.outage.failed(error, what, asked_at):
                log.error("%s failed", what, exc_info=error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every_s)

    async def _guard(self, run_one, work) -> None:
        asked_at = time.monotonic()
        try:
            await run_one(self.rt, work)
        except Exception as exc:  # noqa: BLE001
            rows = work if isinstance(work, list) else [work]
            what = f"job {type(rows[0]).__name__} {[r.id for r in rows]}"
            if not self.outage.failed(exc, what, asked_at):  # (its lease runs out and it is tried again)
                log.exception("%s failed unexpectedly", what)


def _other_than(model, tenants: list[int]) -> tuple:
    """The claim's condition leaving out these companies' rows (none: no condition)."""
    return (model.tenant_id.not_in(tenants),) if tenants else ()
