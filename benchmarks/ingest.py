"""Archive ingest benchmark: how many archived messages per second Siyu stores end to end
(message row, conversation state, SLA waits and escalation rows, search tokens, needs-reply
verdicts), against a plain SQLAlchemy Core executemany of the same rows into the same table.

    .venv/bin/python benchmarks/ingest.py [--messages N] [--database URL] [--rounds R] [--parts P]
        [--profile]

The archive is made up here: many customers x 100 agents in 1:1 chats (questions, follow-ups,
images, replies, closing remarks such as 好的谢谢, recalls), some group chats and some internal
staff chats, in Chinese, ordered by msgtime and numbered by seq like WeCom's archive. They
are pulled by the archive puller itself, `siyu.conversations.tasks.pull`, from an in-memory
source: fetches of 1000, stored up to `tasks.BATCHES_PER_STORE` fetches at a time with the
cursor row (`service.ingest` with the default needs-reply classifier, the SLA wait listener;
on PostgreSQL in parts at once, by conversation, as `siyu.conversations.tasks.store_batch`
decides, or in --parts parts) and
then indexed for search in transactions of their own (on PostgreSQL on the puller's
indexing thread, while the next batch is stored). Wall clock until the pull returns, when
every message is also searchable; the classifier module is loaded before (a worker loads it
once, when its first batch comes).

Baseline: the rows `ingest` inserted into `messages` (read back, `recalled` reset to what
ingest wrote), re-stamped for a second tenant so that they land in the same table with the
same indexes, inserted with `connection.execute(insert(Message), rows)` in batches of 1000,
one transaction each. ratio = ingest_per_s / baseline_per_s.

The two are measured in turn, in R rounds (default 10): each round pulls the next N/R
archived messages (the archive as it stood then; a pull returns once it has caught up), then
inserts those rows as the baseline. Both rates are over all rounds. The machines this runs on
drift in speed by a fifth within a minute: measured one after the other (ingest, then the
baseline), a slow minute fell on one of the two alone, and runs of the same code gave ratios
from 0.43 to 0.59. In turn, both see the same minutes and the same table sizes (the ingest's
tables hold the baseline's rows so far too, which slows it slightly, if anything).

The database is a fresh SQLite file (default) or a fresh PostgreSQL database created on the
server that --database names and dropped afterwards. Phase timings (inclusive wall time of
the main steps of `ingest`, and SQL time by statement; summed over the parts' threads where
a batch is stored in parts, so they may add up to more than the wall time) go to stdout;
--profile adds a cProfile summary on stderr (of the puller and of the threads it stores on;
their times add up to more than the wall time where they overlap). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import cProfile
import io
import json
import os
import pstats
import random
import re
import shutil
import sys
import threading
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(ROOT / "src")):
    if p not in sys.path:
        sys.path.insert(0, p)

from sqlalchemy import event, func, insert, select  # noqa: E402

import siyu.sla  # noqa: E402, F401 - registers the SLA wait listener, as every ingesting process must
from benchmarks._archive import (  # noqa: E402
    CLOSINGS,
    FOLLOW_UPS,
    GROUP_TALK,
    INTERNAL,
    QUESTIONS,
    REPLIES,
    external_userid,
    fill,
    image_message,
    log,
    migrated_database,
    organisation,
    recall_message,
    run_in_workdir,
    store_customers,
    store_organisation,
    text_message,
)
from siyu.config import Settings  # noqa: E402
from siyu.conversations import search, service  # noqa: E402
from siyu.conversations import tasks as conversation_tasks  # noqa: E402
from siyu.conversations.models import Conversation, Message  # noqa: E402
from siyu.db import Database  # noqa: E402
from siyu.jobs.worker import settle_collector  # noqa: E402
from siyu.runtime import Runtime  # noqa: E402
from siyu.sla.models import SlaEscalation, SlaWait  # noqa: E402
from siyu.wecom.archive import ArchivedMessage  # noqa: E402

BATCH = conversation_tasks.BATCH  # the puller's
AGENTS = 100
SQLITE_GOAL_PER_S = 10_000
PG_GOAL_RATIO = 0.5


# ---------------------------------------------------------------- the archive


class MemorySource:
    """The made-up archive as an archive source: what WeCom's would hand over, decrypted."""

    def __init__(self, items: list[ArchivedMessage]) -> None:
        self.items, self.seqs = items, [i.seq for i in items]

    async def fetch(self, after_seq: int, limit: int) -> list[ArchivedMessage]:
        start = bisect.bisect_right(self.seqs, after_seq)
        return self.items[start : start + limit]

    async def aclose(self) -> None:
        pass


def make_archive(n: int, seed: int = 1) -> tuple[list[ArchivedMessage], list[str]]:
    """N archived messages ordered by msgtime, numbered by seq; and the customers' ids."""
    rng = random.Random(seed)
    agents = [f"agent{a:04d}" for a in range(AGENTS)]
    window_s = max(3600.0, n * 0.5)  # ~2 messages a second across the corp
    t_end = time.time() - 3600
    t_start = t_end - window_s
    events: list[tuple[float, str, dict]] = []  # (unix time, msgid, message)
    serial = iter(range(10**9))

    def msgid(at: float, who: str) -> str:
        return f"{next(serial)}_{int(at * 1000)}_{'external' if who.startswith('wm') else 'internal'}"

    def add(at: float, kind: str, sender: str, to: str, content: str = "", roomid: str = "", pre: str = ""):
        mid = msgid(at, sender)
        at_ms = int(at * 1000)
        if kind == "text":
            message = text_message(mid, sender, to, at_ms, content, roomid)
        elif kind == "image":
            message = image_message(mid, sender, to, at_ms)
        else:
            message = recall_message(mid, sender, to, at_ms, pre)
        events.append((at, mid, message))
        return mid

    customers: list[str] = []
    rooms = [(f"wr{r:06d}" + "y" * 20, rng.choice(agents)) for r in range(max(1, n // 2000))]
    while len(events) < n:
        roll = rng.random()
        if roll < 0.05:  # a burst of group chat
            roomid, owner = rng.choice(rooms)
            at = rng.uniform(t_start, t_end)
            for _ in range(rng.randint(2, 6)):
                at += rng.uniform(5, 120)
                if rng.random() < 0.3:
                    add(at, "text", owner, "", fill(rng.choice(REPLIES), rng), roomid)
                else:
                    member = external_userid(10**7 + rng.randrange(5000))
                    add(at, "text", member, "", fill(rng.choice(GROUP_TALK), rng), roomid)
            continue
        if roll < 0.08:  # staff among themselves
            a, b = rng.sample(agents, 2)
            at = rng.uniform(t_start, t_end)
            add(at, "text", a, b, fill(rng.choice(INTERNAL), rng))
            if rng.random() < 0.5:
                add(at + rng.uniform(10, 300), "text", b, a, "好的")
            continue
        # a 1:1 conversation: exchanges of question(s), reply(ies), closing or follow-up
        ext = external_userid(len(customers))
        customers.append(ext)
        agent = rng.choice(agents)
        at = rng.uniform(t_start, t_end)
        length = rng.randint(3, 14)
        sent = 0
        while sent < length:
            for _ in range(rng.choice((1, 1, 1, 2))):
                at += rng.uniform(2, 60)
                if rng.random() < 0.1:
                    last = add(at, "image", ext, agent)
                else:
                    last = add(at, "text", ext, agent, fill(rng.choice(QUESTIONS), rng))
                sent += 1
                if rng.random() < 0.03:  # recalled, then asked again
                    at += rng.uniform(2, 30)
                    add(at, "recall", ext, agent, pre=last)
                    at += rng.uniform(2, 30)
                    add(at, "text", ext, agent, fill(rng.choice(QUESTIONS), rng))
                    sent += 2
            if rng.random() < 0.07:  # nobody answered (yet): the wait stays open
                break
            for _ in range(rng.choice((1, 1, 2))):
                at += rng.uniform(20, 900)
                add(at, "text", agent, ext, fill(rng.choice(REPLIES), rng))
                sent += 1
            at += rng.uniform(5, 300)
            roll = rng.random()
            if roll < 0.55:
                add(at, "text", ext, agent, rng.choice(CLOSINGS))
                sent += 1
            elif roll < 0.85:
                add(at, "text", ext, agent, rng.choice(FOLLOW_UPS))
                sent += 1
            at += rng.uniform(600, 7200)  # the next exchange comes later
    events.sort(key=lambda e: e[0])
    # As the SDK source hands them over: the dict, and the JSON text it was decrypted from.
    items = [
        ArchivedMessage(seq, mid, message, json.dumps(message, ensure_ascii=False))
        for seq, (_, mid, message) in enumerate(events[:n], start=1)
    ]
    return items, customers


# ---------------------------------------------------------------- phase timing


class ThreadProfiles:
    """cProfile for the threads that store batches: a profiler sees only the thread that
    enables it, and the puller stores on threads of its own (`tasks.store_batch`)."""

    ENTRIES = ("_store_batch", "_store_part")  # what such a thread runs first

    def __init__(self) -> None:
        self.main = cProfile.Profile()
        self.threads: list[cProfile.Profile] = []
        self.on = threading.local()
        self.originals = {name: getattr(conversation_tasks, name) for name in self.ENTRIES}

    def install(self) -> None:
        for name, original in self.originals.items():
            setattr(conversation_tasks, name, self._profiled(original))

    def uninstall(self) -> None:
        for name, original in self.originals.items():
            setattr(conversation_tasks, name, original)

    def _profiled(self, entry):
        def run(*args, **kwargs):
            if getattr(self.on, "profiling", False):  # the first part, on the batch's own thread
                return entry(*args, **kwargs)
            profile = cProfile.Profile()
            self.on.profiling = True
            profile.enable()
            try:
                return entry(*args, **kwargs)
            finally:
                profile.disable()
                self.on.profiling = False
                self.threads.append(profile)

        return run

    def stats(self, out) -> pstats.Stats:
        return pstats.Stats(self.main, *self.threads, stream=out)


class Phases:
    """Inclusive wall time of named steps of `ingest` (wrapping module functions), and SQL
    time by statement kind and table (cursor events)."""

    def __init__(self) -> None:
        self.time: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.sql_time: dict[str, float] = defaultdict(float)
        self.sql_calls: dict[str, int] = defaultdict(int)
        self._undo: list = []
        self.active = False  # SQL is counted while an ingest round runs

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        times, calls = self.time, self.calls
        clock = time.perf_counter

        def timed(*args, **kwargs):
            t = clock()
            try:
                return original(*args, **kwargs)
            finally:
                times[label] += clock() - t
                calls[label] += 1

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def install(self, engine) -> None:
        self.wrap(service, "_parse", "parse")
        self.wrap(service, "_conversations", "conversations: find + create")
        self.wrap(service, "_siyu_sent", "welcome echoes (outbox lookup)")
        self.wrap(service, "_last_outbound_texts", "classifier context: last staff message")
        self.wrap(service, "_apply", "conversation state (in memory)")
        self.wrap(service, "_write_back", "conversation UPDATE")
        self.wrap(service, "_recall", "recalls")
        self.wrap(service, "render", "render")
        self.wrap(service, "ingest", "service.ingest")
        self.wrap(search, "queue", "search: tokens queued (SQLite: indexed)")
        self.wrap(search, "index_backlog", "search indexing (PostgreSQL: its own thread)")
        from siyu.sla import service as sla

        self.wrap(sla.PolicyBook, "for_staff", "SLA policies for the batch's staff")
        self.wrap(sla, "_store_new_waits", "SLA new waits + escalation rows")
        self.wrap(sla, "_store_closed_waits", "SLA closed waits + cancelled steps")
        from sqlalchemy.orm import Session

        def flush_start(session, flush_context, instances):
            session.info["bench_flush_t"] = time.perf_counter()

        def flush_end(session, flush_context):
            t = session.info.pop("bench_flush_t", None)
            if t is not None:
                self.time["ORM flush (autoflush + commit)"] += time.perf_counter() - t
                self.calls["ORM flush (autoflush + commit)"] += 1

        event.listen(Session, "before_flush", flush_start)
        event.listen(Session, "after_flush_postexec", flush_end)
        self._undo.append(lambda: event.remove(Session, "before_flush", flush_start))
        self._undo.append(lambda: event.remove(Session, "after_flush_postexec", flush_end))
        listeners = list(service.WAIT_LISTENERS)
        for i, listener in enumerate(listeners):
            holder = type("H", (), {"f": staticmethod(listener)})
            self.wrap(holder, "f", "SLA listener (waits + escalation rows)")
            service.WAIT_LISTENERS[i] = holder.f
        self._undo.append(lambda: service.WAIT_LISTENERS.__setitem__(slice(None), listeners))
        classifier = conversation_tasks.classifier()
        holder = type("C", (), {"classify": staticmethod(classifier.classify)})
        self.wrap(holder, "classify", "needs-reply classify")
        original_factory = conversation_tasks.classifier
        conversation_tasks.classifier = lambda: holder
        self._undo.append(lambda: setattr(conversation_tasks, "classifier", original_factory))

        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info["bench_t"] = time.perf_counter()

        def after(conn, cursor, statement, parameters, context, executemany):
            if not self.active:  # the baseline's
                return
            label = self.sql_label(statement)
            self.sql_time[label] += time.perf_counter() - conn.info.pop("bench_t", time.perf_counter())
            self.sql_calls[label] += 1

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        self._undo.append(lambda: event.remove(engine, "before_cursor_execute", before))
        self._undo.append(lambda: event.remove(engine, "after_cursor_execute", after))

    @staticmethod
    def sql_label(statement: str) -> str:
        s = statement.lstrip()
        head = s[:12].upper()
        if head.startswith("INSERT"):
            m = re.match(r"INSERT INTO \"?(\w+)", s, re.I)
            return f"INSERT {m.group(1) if m else '?'}"
        if head.startswith("UPDATE"):
            m = re.match(r"UPDATE \"?(\w+)", s, re.I)
            return f"UPDATE {m.group(1) if m else '?'}"
        if head.startswith("DELETE"):
            m = re.match(r"DELETE FROM \"?(\w+)", s, re.I)
            return f"DELETE {m.group(1) if m else '?'}"
        if head.startswith("SELECT"):
            m = re.search(r"\bFROM \"?(\w+)", s, re.I)
            return f"SELECT {m.group(1) if m else '?'}"
        return s.split(None, 1)[0].upper() if s else "?"

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def table(self, wall: float, n: int) -> str:
        order = [
            "service.ingest",
            "parse",
            "conversations: find + create",
            "welcome echoes (outbox lookup)",
            "classifier context: last staff message",
            "needs-reply classify",
            "render",
            "search: tokens queued (SQLite: indexed)",
            "search indexing (PostgreSQL: its own thread)",
            "conversation state (in memory)",
            "recalls",
            "conversation UPDATE",
            "SLA listener (waits + escalation rows)",
            "SLA policies for the batch's staff",
            "SLA new waits + escalation rows",
            "SLA closed waits + cancelled steps",
            "ORM flush (autoflush + commit)",
        ]
        lines = [
            f"{'phase (inclusive wall time)':<44} {'calls':>8} {'seconds':>8} {'% wall':>7} {'µs/msg':>7}"
        ]

        def line(label: str, seconds: float, calls: int | str) -> None:
            lines.append(
                f"{label:<44} {calls:>8} {seconds:>8.2f} {seconds / wall:>7.1%} {seconds / n * 1e6:>7.1f}"
            )

        line("pull: every batch stored and indexed", wall, "")
        for label in order:
            if label in self.time:
                line(("  " if label != "service.ingest" else "") + label, self.time[label], self.calls[label])
        insert_messages = self.sql_time.get("INSERT messages", 0.0)
        line(
            "  INSERT messages (SQL, executemany)", insert_messages, self.sql_calls.get("INSERT messages", 0)
        )
        outside = wall - self.time.get("service.ingest", 0.0)
        if outside >= 0:
            line("outside ingest: cursor, commit, batch loop, search", outside, "")
        else:  # parts stored at once: their times add up to more than the wall time
            lines.append("outside ingest: not told apart (the batches' parts ran at once)")
        lines.append("")
        lines.append(
            f"{'SQL by statement (cursor time)':<44} {'calls':>8} {'seconds':>8} {'% wall':>7} {'µs/msg':>7}"
        )
        for label, seconds in sorted(self.sql_time.items(), key=lambda kv: -kv[1]):
            line(label, seconds, self.sql_calls[label])
        line("all SQL", sum(self.sql_time.values()), sum(self.sql_calls.values()))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "python": {k: round(v, 3) for k, v in sorted(self.time.items(), key=lambda kv: -kv[1])},
            "sql": {k: round(v, 3) for k, v in sorted(self.sql_time.items(), key=lambda kv: -kv[1])},
            "sql_calls": dict(sorted(self.sql_calls.items(), key=lambda kv: -kv[1])),
        }


# ---------------------------------------------------------------- the run


def measure(args, settings: Settings, db: Database) -> dict:
    from benchmarks._archive import new_tenant

    dialect = db.engine.dialect.name
    rt = Runtime.create(settings, db)
    departments, staff = organisation(AGENTS)
    tenant_id = new_tenant(db, rt.box, "基准科技")
    baseline_tenant = new_tenant(db, rt.box, "基准对照")
    for tid in (tenant_id, baseline_tenant):
        with db.tenant_session(tid) as s:
            store_organisation(s, departments, staff)

    t = time.perf_counter()
    items, customers = make_archive(args.messages)
    known = [c for i, c in enumerate(customers) if i % 10]  # 90 % are known contacts already
    store_customers(db, tenant_id, known)
    log(
        f"{dialect}: {len(items)} archived messages, {len(customers)} 1:1 customers"
        f" ({len(known)} known) made in {time.perf_counter() - t:.1f}s"
    )

    conversation_tasks.classifier()  # imported (its patterns compiled) as a worker does at start
    # The collector as a worker sets it at start (the baseline runs under it too); the
    # made-up archive, frozen with the rest, is not Siyu's garbage either.
    settle_collector()
    phases = Phases()
    if not args.no_phases:
        phases.install(db.engine)
    profiler = ThreadProfiles() if args.profile else None
    if profiler:
        profiler.install()

    stmt = insert(Message)
    bounds = round_bounds(len(items), args.rounds)
    log(
        f"{len(bounds)} rounds, each: ingest its messages through conversations.tasks.pull, in"
        f" batches of {BATCH}; then the baseline: the same rows for another tenant, Core"
        f" insert(Message) executemany in batches of {BATCH}"
    )
    ingest_s = baseline_s = 0.0
    duplicates = baseline_n = 0
    for start, end in bounds:
        source = MemorySource(items[:end])  # the archive as it stood when the round began
        phases.active = True
        if profiler:
            profiler.main.enable()
        t0 = time.perf_counter()
        counts = asyncio.run(conversation_tasks.pull(rt, tenant_id, source, parts=args.parts))
        ingest_s += time.perf_counter() - t0
        if profiler:
            profiler.main.disable()
        phases.active = False
        duplicates += counts["duplicates"]

        rows = read_back(db, tenant_id, items[start].seq, items[end - 1].seq)
        baseline_rows = [{**r, "tenant_id": baseline_tenant, "recalled": False} for r in rows]
        t0 = time.perf_counter()
        for i in range(0, len(baseline_rows), BATCH):
            with db.engine.begin() as conn:
                conn.execute(stmt, baseline_rows[i : i + BATCH])
        baseline_s += time.perf_counter() - t0
        baseline_n += len(baseline_rows)
    phases.uninstall()
    if profiler:
        profiler.uninstall()
    ingest_per_s = len(items) / ingest_s
    baseline_per_s = baseline_n / baseline_s
    log(f"  ingest: {len(items)} in {ingest_s:.2f}s: {ingest_per_s:,.0f} messages/s")
    log(f"  baseline: {baseline_n} in {baseline_s:.2f}s: {baseline_per_s:,.0f} rows/s")

    counts = stored_counts(db, tenant_id)
    ratio = ingest_per_s / baseline_per_s
    if not args.no_phases:
        print(phases.table(ingest_s, len(items)))
        print()
    print(
        f"{dialect}: ingest {ingest_per_s:,.0f} messages/s ({len(items)} in {ingest_s:.2f}s),"
        f" baseline {baseline_per_s:,.0f} rows/s ({baseline_s:.2f}s), ratio {ratio:.3f}"
    )
    print(
        "stored: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; duplicates skipped {duplicates}"
    )
    goal = (
        {"goal": f"ratio >= {PG_GOAL_RATIO}", "met": ratio >= PG_GOAL_RATIO}
        if dialect == "postgresql"
        else {"goal": f">= {SQLITE_GOAL_PER_S} messages/s", "met": ingest_per_s >= SQLITE_GOAL_PER_S}
    )
    print(f"goal {goal['goal']}: {'met' if goal['met'] else 'NOT met'}")
    sys.stdout.flush()
    if profiler:
        out = io.StringIO()
        stats = profiler.stats(out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        print(out.getvalue(), file=sys.stderr)
    return {
        "ingest_per_s": round(ingest_per_s, 1),
        "baseline_per_s": round(baseline_per_s, 1),
        "ratio": round(ratio, 4),
        "database": dialect,
        "messages": len(items),
        "batch": BATCH,
        "ingest_s": round(ingest_s, 3),
        "baseline_s": round(baseline_s, 3),
        "rounds": len(bounds),
        "parts": conversation_tasks.parts_for(db, min(BATCH, len(items)), args.parts),
        "goal": goal["goal"],
        "goal_met": goal["met"],
        "stored": counts,
        "phases_s": phases.as_dict() if not args.no_phases else None,
        "profiled": bool(profiler),
    }


def round_bounds(n: int, rounds: int) -> list[tuple[int, int]]:
    """[start, end) of each round's messages: whole batches, as even as they come."""
    batches = -(-n // BATCH)
    rounds = max(1, min(rounds, batches))
    cuts = [min(n, (batches * k // rounds) * BATCH) for k in range(rounds + 1)]
    return [(a, b) for a, b in pairwise(cuts) if b > a]


def read_back(db: Database, tenant_id: int, first_seq: int, last_seq: int) -> list[dict]:
    """The messages rows ingest stored for these seqs, in seq order."""
    cols = [c for c in Message.__table__.columns if c.name != "id"]
    query = select(*cols).where(Message.seq.between(first_seq, last_seq)).order_by(Message.seq)
    with db.tenant_session(tenant_id) as s:
        return [dict(r._mapping) for r in s.execute(query)]


def stored_counts(db: Database, tenant_id: int) -> dict:
    with db.tenant_session(tenant_id) as s:

        def count(model, *where):
            return s.scalar(select(func.count()).select_from(model).where(*where))

        return {
            "messages": count(Message),
            "conversations": count(Conversation),
            "awaiting": count(Conversation, Conversation.awaiting_since.is_not(None)),
            "waits": count(SlaWait),
            "waits_open": count(SlaWait, SlaWait.closed_at.is_(None)),
            "escalations": count(SlaEscalation),
            "needs_reply": count(Message, Message.needs_reply.is_(True)),
            "closing": count(Message, Message.needs_reply.is_(False)),
            "recalled": count(Message, Message.recalled.is_(True)),
            "search_rows": count(search.MessageSearch),
            "search_backlog": count(search.SearchBacklog),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="archived messages to ingest")
    parser.add_argument("--database", default=None, help="PostgreSQL server URL (default: SQLite file)")
    parser.add_argument("--profile", action="store_true", help="cProfile the ingest; summary on stderr")
    parser.add_argument(
        "--no-phases", action="store_true", help="no phase timing (no wrappers, no SQL events)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="ingest and baseline measured in turn, this many times (the machine's speed drifts)",
    )
    parser.add_argument(
        "--parts", type=int, default=None, help="store each batch in this many parts at once (PostgreSQL)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (SQLite file)")
    args = parser.parse_args()
    if args.messages < 1 or args.rounds < 1 or (args.parts is not None and args.parts < 1):
        parser.error("--messages, --rounds and --parts must be positive")

    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        os.sched_setaffinity(0, {0})  # one core for Siyu; the database server has the other

    def run(workdir: Path) -> dict:
        with migrated_database(args.database, workdir) as (settings, db):
            return measure(args, settings, db)

    run_in_workdir("siyu-ingest-", run, keep=args.keep)


if __name__ == "__main__":
    main()
