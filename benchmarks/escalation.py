"""Escalation benchmark: N customers wait for a reply, their first escalation steps come due
over a few minutes, and K `siyu worker` processes fire them; how late does WeCom (the
emulator) receive each step's app message (message/send textcard)?

    .venv/bin/python benchmarks/escalation.py [--conversations N] [--workers K] [--database URL]
        [--spread-s S] [--merge-window-s W]

Set-up (not timed): the WeCom emulator (core 1, no rate limit, but WeCom's per-member limit
on app messages: beyond 30 a minute to one member they are dropped, silently) with a corp of
--agents agents (default: one per 40 waiting conversations, 2,500 for 100,000) in teams of
10, the conversations going to them in turn; the
tenant added with `siyu tenant add` and its staff synced with `siyu sync staff`; a tenant
SLA policy (step 1: app message to the agent 120 s after the customer's message; steps 2
and 3 an hour and more later, so only step 1 comes due in the run; merge window W, default
0; a person's cards still keep to WeCom's pace, siyu.sla.firing.next_card_at);
N known customers; one customer question per conversation stored through the real path
(`conversations.tasks.store_batch`: message, conversation, SLA wait and escalation rows),
msgtimes spaced so that the first steps come due evenly over S seconds. The questions are
stored with msgtimes two days ahead and then every stored time is moved back by the same
amount once the workers are up (a uniform shift of the rows the ingest wrote: the same state
as ingesting at the right moment, without guessing how long the ingest takes). The archive
cursor's pulled_until is set far ahead, so steps are allowed to fire as soon as they are due
(a real puller holds them back by SIYU_ARCHIVE_LAG_S on top).

Run: K `siyu worker` processes (SQLite: K = 1) claim and fire the steps; the outbox sends
the cards to the emulator. lateness = emulator received_at - the step's due_at (both on this
machine's wall clock). Cards are attributed to escalation steps through the outbox rows
(payload: the escalation ids of the card; sent in the order the emulator received them, per
recipient). duplicates = steps in more than one sent card + resent cards (the larger of: cards
WeCom received beyond the outbox rows marked sent; single-conversation cards received twice
for the same conversation).
fired = due steps that reached WeCom (in a card it delivered); due = steps due by the end of
the spread. beyond the pace = received - the later of the step's due time and its card's
due time (a card held for its person's spacing is due when WeCom's pace lets it go): the
lateness Siyu adds on top of what WeCom's per-member limit imposes.

The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(ROOT / "src")):
    if p not in sys.path:
        sys.path.insert(0, p)

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import bindparam, func, select, text, update  # noqa: E402

import siyu.sla  # noqa: E402, F401 - registers the SLA wait listener
from benchmarks._archive import (  # noqa: E402
    QUESTIONS,
    external_userid,
    fill,
    fresh_database,
    image_message,
    log,
    organisation,
    store_customers,
    summarize_folded,
    text_message,
)
from benchmarks._util import percentile, stop_process  # noqa: E402

SLUG = "bench"
# Default --agents: a person has a few dozen customers waiting at once, not a thousand. With
# 100 agents for 100,000 conversations each agent has 5.5 steps due a second, and WeCom's
# per-member limit (30 app messages a minute) alone holds most of them back for seconds.
WAITING_PER_AGENT = 40
STEP_DELAY_S = 120
BATCH = 1000
GOAL_P99_S = 1.0
COUNT_EVERY_S = 5.0  # how often progress is counted
SLICE_S = 10.0  # lateness is also printed by slices of due times this long


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="siyu-escalation-"))
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.secret_key = secrets.token_urlsafe(32)
        self.emu_port = free_port()
        self.emu_url = f"http://127.0.0.1:{self.emu_port}"
        two = (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
        self.emu_core = "1" if two else None

    # ------------------------------------------------------------ processes

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
        env.update(
            SIYU_DATA_DIR=str(self.tmp / "data"),
            SIYU_DATABASE_URL=self.db_url,
            SIYU_PUBLIC_URL="http://127.0.0.1:8000",
            SIYU_WECOM_BASE_URL=self.emu_url,
            SIYU_WECOM_OAUTH_URL=self.emu_url,
            SIYU_WECOM_LOGIN_URL=self.emu_url,
            SIYU_SECRET_KEY=self.secret_key,
            SIYU_STAFF_SYNC_INTERVAL_S="0",
            SIYU_ARCHIVE_POLL_S="3600",
        )
        return env

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            argv, cwd=self.tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def cli(self, *args: str) -> str:
        siyu = str(Path(sys.executable).with_name("siyu"))
        run = subprocess.run(
            [siyu, *args], cwd=self.tmp, env=self.env(), capture_output=True, text=True, timeout=300
        )
        if run.returncode:
            raise RuntimeError(f"siyu {' '.join(args[:2])} failed:\n{run.stdout}\n{run.stderr}")
        return run.stdout

    def start_emulator(self) -> None:
        argv = [sys.executable, str(HERE / "_archive.py"), "emulator", "--port", str(self.emu_port)]
        if self.emu_core is not None:
            argv = ["taskset", "-c", self.emu_core, *argv]
        self.emu_proc = self.spawn("emulator", argv)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.emu_proc.poll() is not None:
                raise RuntimeError(f"emulator exited; see {self.tmp / 'emulator.log'}")
            try:
                if httpx.get(f"{self.emu_url}/_emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("emulator not healthy after 60s")
        self.emu = httpx.Client(base_url=self.emu_url, timeout=300)

    def start_workers(self) -> None:
        siyu = str(Path(sys.executable).with_name("siyu"))
        env = self.env()
        env["SIYU_AUTO_MIGRATE"] = "false"
        for k in range(self.args.workers):
            self.workers.append(
                self.spawn(f"worker{k}", [siyu, "worker", "--concurrency", str(self.args.concurrency)], env)
            )
        deadline = time.monotonic() + 4  # imports and first connections
        while time.monotonic() < deadline:
            for k, w in enumerate(self.workers):
                if w.poll() is not None:
                    raise RuntimeError(f"worker {k} exited; see {self.tmp / f'worker{k}.log'}")
            time.sleep(0.2)

    # ------------------------------------------------------------ set-up

    def setup(self, db_url: str) -> None:
        from siyu.config import Settings
        from siyu.db import Database
        from siyu.runtime import Runtime

        self.db_url = db_url
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        self.start_emulator()
        departments, staff = organisation(self.args.agents)
        self.agents = [s["userid"] for s in staff if s["userid"].startswith("agent")]
        r = self.emu.post(
            "/_emulator/corps", json={"name": "基准科技", "departments": departments, "staff": staff}
        )
        r.raise_for_status()
        self.corp = corp = r.json()
        self.emu.patch(
            f"/_emulator/corps/{corp['corp_id']}", json={"rate_limits": {"*": 10**9}}
        ).raise_for_status()
        log(f"emulator on {self.emu_url} (core {self.emu_core}); tenant on {db_url.split('@')[-1]}")
        self.cli(
            "tenant", "add", "--name", "基准科技", "--corp-id", corp["corp_id"],
            "--agent-id", str(corp["agent_id"]), "--agent-secret", corp["agent_secret"],
            "--contact-secret", corp["contact_secret"], "--token", corp["token"],
            "--aes-key", corp["encoding_aes_key"], "--slug", SLUG, "--no-check",
        )  # fmt: skip
        self.cli("sync", "staff", "--tenant", SLUG)
        settings = Settings(
            data_dir=self.tmp / "data",
            database_url=db_url,
            secret_key=self.secret_key,
            wecom_base_url=self.emu_url,
            auto_migrate=False,
        )
        self.db = Database(db_url, settings.database_timeouts.unhurried())  # seeding: no statement limit
        self.rt = Runtime.create(settings, self.db)
        with self.db.system_session() as s:
            from siyu.tenancy.models import Tenant

            self.tenant_id = s.scalar(select(Tenant.id).where(Tenant.slug == SLUG))
        from siyu.sla.service import save_policy

        with self.db.tenant_session(self.tenant_id) as s:
            save_policy(
                s,
                0,
                steps=[
                    {"delay_s": STEP_DELAY_S, "action": "app_message", "target": "agent"},
                    {"delay_s": 3600, "action": "app_message", "target": "leader"},
                    {"delay_s": 7200, "action": "voice_call", "target": "agent"},
                ],
                merge_window_s=self.args.merge_window_s,
            )

    def store_waits(self) -> None:
        """One question per conversation, due (step 1) evenly over the spread, two days ahead."""
        import random

        from siyu.conversations import tasks as conversation_tasks
        from siyu.wecom.archive import ArchivedMessage

        n, spread = self.args.conversations, self.args.spread_s
        rng = random.Random(3)
        customers = [external_userid(i) for i in range(n)]
        store_customers(self.db, self.tenant_id, customers)
        self.placeholder = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        base_ms = int(self.placeholder.timestamp() * 1000)
        items = []
        for i, ext in enumerate(customers):
            due_ms = base_ms + int(spread * 1000 * (i + 0.5) / n)
            at_ms = due_ms - STEP_DELAY_S * 1000
            agent = self.agents[i % len(self.agents)]
            msgid = f"{i}_{at_ms}_external"
            if rng.random() < 0.1:
                message = image_message(msgid, ext, agent, at_ms)
            else:
                message = text_message(msgid, ext, agent, at_ms, fill(rng.choice(QUESTIONS), rng))
            items.append(ArchivedMessage(i + 1, msgid, message))

        async def store() -> None:
            for k in range(0, len(items), BATCH):
                await conversation_tasks.store_batch(
                    self.rt, self.tenant_id, items[k : k + BATCH], self.rt.now(), drained=False
                )

        t = time.perf_counter()
        asyncio.run(store())
        self.ingest_s = time.perf_counter() - t
        from siyu.sla.models import SlaEscalation, SlaWait

        with self.db.tenant_session(self.tenant_id) as s:
            self.waits = s.scalar(select(func.count()).select_from(SlaWait))
            self.steps_stored = s.scalar(select(func.count()).select_from(SlaEscalation))
        log(
            f"stored {n} questions in {self.ingest_s:.1f}s ({n / self.ingest_s:,.0f}/s):"
            f" {self.waits} waits, {self.steps_stored} escalation rows"
        )

    def shift(self, t_go: datetime) -> None:
        """Move every time the ingest stored back by (placeholder - t_go)."""
        delta = self.placeholder - t_go
        columns = {
            "sla_escalations": ["due_at"],
            "sla_waits": ["started_at"],
            "conversations": ["awaiting_since", "last_message_at", "last_inbound_at"],
            "messages": ["sent_at"],
        }
        t = time.perf_counter()
        with self.db.engine.begin() as conn:
            if self.db.is_postgres:
                for table, cols in columns.items():
                    sets = ", ".join(f"{c} = {c} - make_interval(secs => :d)" for c in cols)
                    conn.execute(
                        text(f"UPDATE {table} SET {sets} WHERE tenant_id = :t"),
                        {"d": delta.total_seconds(), "t": self.tenant_id},
                    )
            else:
                from siyu.db.base import Base

                for table_name, cols in columns.items():
                    table = Base.metadata.tables[table_name]
                    rows = conn.execute(
                        select(table.c.id, *[table.c[c] for c in cols]).where(
                            table.c.tenant_id == self.tenant_id
                        )
                    ).all()
                    params = [
                        {
                            "rid": r[0],
                            **{c: v and v - delta for c, v in zip(cols, r[1:], strict=True)},
                        }
                        for r in rows
                    ]
                    stmt = (
                        update(table)
                        .where(table.c.id == bindparam("rid"))
                        .values({c: bindparam(c) for c in cols})
                    )
                    if params:
                        conn.execute(stmt, params)
            # the archive is pulled far beyond every due time: steps may fire once due
            from siyu.conversations.models import ArchiveCursor

            conn.execute(
                update(ArchiveCursor)
                .where(ArchiveCursor.tenant_id == self.tenant_id, ArchiveCursor.source == "archive")
                .values(pulled_until=t_go + timedelta(days=1))
            )
        log(f"times moved to start at {t_go:%H:%M:%S} in {time.perf_counter() - t:.1f}s")

    # ------------------------------------------------------------ the run

    def cpu_of(self, procs) -> float:
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
                for c in p.children(recursive=True):
                    t = c.cpu_times()
                    total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total

    def postgres_cpu(self) -> float:
        total = 0.0
        for p in psutil.process_iter(["name"]):
            try:
                if (p.info["name"] or "").startswith("postgres"):
                    t = p.cpu_times()
                    total += t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def counts(self) -> dict:
        from siyu.notify.models import OutboxMessage
        from siyu.sla.models import SlaEscalation

        e, o = SlaEscalation, OutboxMessage
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(e.status, func.count())
                .where(e.tenant_id == self.tenant_id, e.due_at <= self.t_end)
                .group_by(e.status)
            ).all()
            outbox = conn.execute(
                select(o.status, func.count())
                .where(o.tenant_id == self.tenant_id, o.kind == "sla_notice")
                .group_by(o.status)
            ).all()
        return {"steps": {k: v for k, v in rows}, "outbox": {k: v for k, v in outbox}}

    def run(self) -> dict:
        a = self.args
        with fresh_database(a.database, self.tmp) as url:
            try:
                self.setup(url)
                self.store_waits()
                log(f"starting {a.workers} `siyu worker` (concurrency {a.concurrency})")
                self.start_workers()
                lead_s = a.lead_s if a.lead_s is not None else 3.0 + a.conversations / 5000
                t_go = datetime.now(UTC) + timedelta(seconds=lead_s)
                self.t_go = t_go
                self.shift(t_go)
                if datetime.now(UTC) > t_go:
                    log("warning: the shift took longer than the lead; early steps start late")
                self.t_end = t_go + timedelta(seconds=a.spread_s)
                return self.measure()
            finally:
                for w in self.workers:
                    stop_process(w)
                if hasattr(self, "db"):
                    self.db.dispose()

    def measure(self) -> dict:
        a = self.args
        worker_ps = [psutil.Process(w.pid) for w in self.workers]
        emu_ps = psutil.Process(self.emu_proc.pid)
        spies = []
        if a.profile:
            spy = str(Path(sys.executable).with_name("py-spy"))
            for k, w in enumerate(self.workers):
                out = self.tmp / f"worker{k}.folded"
                argv = [spy, "record", "-p", str(w.pid), "-r", "200", "--gil", "-f", "raw", "-o", str(out)]
                spies.append((self.spawn(f"py-spy{k}", argv), out))
        cpu0 = (self.cpu_of(worker_ps), self.cpu_of([emu_ps]), self.postgres_cpu(), time.perf_counter())
        log(f"{a.conversations} steps due from {self.t_go:%H:%M:%S} over {a.spread_s:g}s; waiting")
        deadline = self.t_end + timedelta(seconds=a.drain_s)
        due_total = None
        last_log = 0.0
        progress = []
        while True:
            time.sleep(COUNT_EVERY_S)  # counting all steps is heavy: it must not load the database
            now = datetime.now(UTC)
            c = self.counts()
            steps, outbox = c["steps"], c["outbox"]
            due_now = sum(steps.values())
            fired = steps.get("fired", 0)
            pending_cards = outbox.get("pending", 0)
            progress.append((time.perf_counter() - cpu0[3], fired, outbox.get("sent", 0)))
            if time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                sent = outbox.get("sent", 0)
                log(f"  fired {fired}/{due_now} steps; cards sent {sent}, pending {pending_cards}")
            if now > self.t_end and fired >= due_now and pending_cards == 0:
                due_total = due_now
                break
            if now > deadline:
                log("drain timeout: not everything due was fired and sent")
                due_total = due_now
                break
        elapsed = time.perf_counter() - cpu0[3]
        cpu = {
            "workers": self.cpu_of(worker_ps) - cpu0[0],
            "emulator": self.cpu_of([emu_ps]) - cpu0[1],
            "postgres": self.postgres_cpu() - cpu0[2] if self.db.is_postgres else 0.0,
        }
        for proc, out in spies:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                stop_process(proc)
            if out.exists():
                print(summarize_folded(out), file=sys.stderr)
        time.sleep(0.5)
        return self.analyse(due_total, elapsed, cpu)

    # ------------------------------------------------------------ results

    def analyse(self, due_total: int, elapsed: float, cpu: dict) -> dict:
        a = self.args
        received = self.emu.get(f"/_bench/corps/{self.corp['corp_id']}/app_messages_compact").json()
        dropped = self.emu.get(f"/_bench/corps/{self.corp['corp_id']}/app_messages_dropped").json()["dropped"]
        from siyu.notify.models import OutboxMessage
        from siyu.sla.models import SlaEscalation

        e, o = SlaEscalation, OutboxMessage
        with self.db.engine.connect() as conn:
            steps = {
                r[0]: (r[1], r[2], r[3], r[4])
                for r in conn.execute(
                    select(e.id, e.conversation_id, e.step, e.due_at, e.fired_at).where(
                        e.tenant_id == self.tenant_id, e.due_at <= self.t_end
                    )
                )
            }
            cards = conn.execute(
                select(o.id, o.payload, o.sent_at, o.due_at)
                .where(o.tenant_id == self.tenant_id, o.kind == "sla_notice", o.status == "sent")
                .order_by(o.sent_at, o.id)
            ).all()
        due_at = {sid: due.timestamp() for sid, (_, _, due, _) in steps.items()}
        fire_delay = [fired.timestamp() - due.timestamp() for _, _, due, fired in steps.values() if fired]

        # pair outbox rows with what WeCom received, per recipient, in order
        by_user_sent: dict[str, list] = defaultdict(list)
        for _, payload, _, card_due in cards:
            payload = json.loads(payload) if isinstance(payload, str) else payload
            by_user_sent[payload["touser"]].append((payload["escalations"], card_due.timestamp()))
        by_user_received: dict[str, list] = defaultdict(list)
        for at, touser, _title, url in received:
            by_user_received[touser].append((at, url))
        delivered_at: dict[int, list[float]] = defaultdict(list)
        send_delay: list[float] = []  # from a card's due time (after its merge window) to WeCom
        # from the later of the step's due time and its card's (the card held for the
        # person's spacing: WeCom delivers no faster) to WeCom
        beyond_pace: dict[int, float] = {}
        extra_cards = 0
        for user, got in by_user_received.items():
            got.sort()
            sent = by_user_sent.get(user, [])
            extra_cards += max(0, len(got) - len(sent))
            for (at, _), (escalations, card_due) in zip(got, sent, strict=False):
                send_delay.append(at - card_due)
                for sid in escalations:
                    delivered_at[sid].append(at)
                    if sid in due_at and sid not in beyond_pace:
                        beyond_pace[sid] = at - max(due_at[sid], card_due)
        # single-conversation cards carry the conversation in their link
        per_conversation = Counter()
        for _, _, _, url in received:
            m = re.search(r"next=/conversations/(\d+)", url)
            if m:
                per_conversation[int(m.group(1))] += 1
        twice_by_link = sum(n - 1 for n in per_conversation.values() if n > 1)
        in_several_cards = sum(len(v) - 1 for v in delivered_at.values() if len(v) > 1)
        # extra cards and conversations linked twice see the same resends from two sides
        duplicates = in_several_cards + max(extra_cards, twice_by_link)
        late_by_step = {sid: min(ats) - due_at[sid] for sid, ats in delivered_at.items() if sid in due_at}
        lateness = list(late_by_step.values())
        fired = len(lateness)
        p50, p99 = percentile(lateness, 50), percentile(lateness, 99)
        worst = max(lateness, default=float("nan"))
        early = sum(1 for x in lateness if x < 0)
        counts = self.counts()
        share = {k: v / elapsed for k, v in cpu.items()}
        print(
            f"{'conversations':>13} {'workers':>7} {'db':>10} {'due':>7} {'fired':>7} {'dup':>4}"
            f" {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'cards':>7} {'run s':>6}"
        )
        print(
            f"{a.conversations:>13} {a.workers:>7} {'postgresql' if self.db.is_postgres else 'sqlite':>10}"
            f" {due_total:>7} {fired:>7} {duplicates:>4} {p50:>7.3f} {p99:>7.3f} {worst:>7.3f}"
            f" {len(received):>7} {elapsed:>6.0f}"
        )
        print(
            f"CPU over the run (share of one core): workers {share['workers']:.0%},"
            f" emulator {share['emulator']:.0%}, postgres {share['postgres']:.0%};"
            f" {cpu['workers'] / max(1, fired) * 1000:.2f} ms worker CPU per step"
        )
        print(
            f"where the time goes: due -> fired p50 {percentile(fire_delay, 50):.3f} s,"
            f" p99 {percentile(fire_delay, 99):.3f} s; card due (merge window over) -> WeCom"
            f" p50 {percentile(send_delay, 50):.3f} s, p99 {percentile(send_delay, 99):.3f} s"
        )
        paced = list(beyond_pace.values())
        # when in the run the late ones were: a tail spread evenly is the steady rate, one in
        # a few slices a stall (a vacuum, a burst of claims)
        slices: dict[int, list[float]] = defaultdict(list)
        t_go = self.t_go.timestamp()
        for sid, late in late_by_step.items():
            slices[int((due_at[sid] - t_go) // SLICE_S)].append(late)
        print(
            f"lateness p99 by {SLICE_S:g} s of due times: "
            + " ".join(f"{percentile(slices[k], 99):.2f}" for k in sorted(slices))
        )
        print(
            f"beyond the pace (from the later of the step's due time and its card's, which waits"
            f" for the person's card spacing): p50 {percentile(paced, 50):.3f} s,"
            f" p99 {percentile(paced, 99):.3f} s; {a.agents} agents;"
            f" app messages WeCom would have dropped: {dropped}"
        )
        print(f"escalation rows due by the end: {counts['steps']}; sla_notice outbox: {counts['outbox']}")
        goal_met = self.db.is_postgres and p99 <= GOAL_P99_S and duplicates == 0 and fired == due_total
        print(
            f"goal (PostgreSQL, p99 <= {GOAL_P99_S:g} s, duplicates 0, fired = due):"
            f" {'met' if goal_met else 'NOT met'}"
        )
        sys.stdout.flush()
        return {
            "lateness_p50_s": round(p50, 4),
            "lateness_p99_s": round(p99, 4),
            "lateness_max_s": round(worst, 4),
            "fired": fired,
            "due": due_total,
            "duplicates": duplicates,
            "conversations": a.conversations,
            "workers": a.workers,
            "concurrency": a.concurrency,
            "database": "postgresql" if self.db.is_postgres else "sqlite",
            "spread_s": a.spread_s,
            "merge_window_s": a.merge_window_s,
            "agents": a.agents,
            "cards_received": len(received),
            "dropped_by_wecom": dropped,
            "beyond_pace_p50_s": round(percentile(paced, 50), 4),
            "beyond_pace_p99_s": round(percentile(paced, 99), 4),
            "fired_early": early,
            "goal_met": bool(goal_met),
            "run_s": round(elapsed, 1),
            "setup_ingest_per_s": round(a.conversations / self.ingest_s, 1),
            "cpu_share": {k: round(v, 3) for k, v in share.items()},
            "fire_delay_p50_s": round(percentile(fire_delay, 50), 4),
            "fire_delay_p99_s": round(percentile(fire_delay, 99), 4),
            "send_delay_p50_s": round(percentile(send_delay, 50), 4),
            "send_delay_p99_s": round(percentile(send_delay, 99), 4),
            "worker_cpu_ms_per_step": round(cpu["workers"] / max(1, fired) * 1000, 3),
            "duplicates_detail": {
                "in_several_cards": in_several_cards,
                "cards_beyond_outbox": extra_cards,
                "conversation_twice_by_link": twice_by_link,
            },
            "db_status": counts,
        }

    def cleanup(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000, help="waiting conversations")
    parser.add_argument("--workers", type=int, default=2, help="`siyu worker` processes (SQLite: 1)")
    parser.add_argument("--database", default=None, help="PostgreSQL server URL (default: SQLite file)")
    parser.add_argument("--spread-s", type=float, default=180.0, help="first steps come due over this long")
    parser.add_argument("--merge-window-s", type=float, default=0.0, help="the policy's card merge window")
    parser.add_argument(
        "--agents",
        type=int,
        default=None,
        help=f"agents the conversations go to, in turn (default: one per {WAITING_PER_AGENT} conversations)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="each worker's --concurrency")
    parser.add_argument(
        "--lead-s",
        type=float,
        default=None,
        help="from the end of set-up to the first due step (default: 3 s, plus 1 s per 5,000 waits to shift)",
    )
    parser.add_argument(
        "--drain-s", type=float, default=120.0, help="give up this long after the last due step"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the workers; summary on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, SQLite file)")
    args = parser.parse_args()
    if args.agents is None:
        args.agents = max(1, args.conversations // WAITING_PER_AGENT)
    if min(args.conversations, args.workers, args.agents, args.concurrency) < 1:
        parser.error("--conversations, --workers, --agents and --concurrency must be positive")
    if args.spread_s < 0 or args.drain_s < 0 or (args.lead_s is not None and args.lead_s < 0):
        parser.error("--spread-s, --drain-s and --lead-s may not be negative")
    if not args.database and args.workers != 1:
        log("SQLite: one worker process (SQLite has one writer; several workers are for PostgreSQL)")
        args.workers = 1

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    bench = Bench(args)
    try:
        result = bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    finally:
        bench.cleanup()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
