"""Read-side benchmark: how long the pages agents, supervisors and admins open all day take
over real HTTP at a tenant's size, against a plain indexed SELECT of one page of the same
conversations table measured in turn.

    .venv/bin/python benchmarks/reads.py [--conversations N] [--database URL] [--rounds R]

Set-up (not timed): a tenant of N conversations (default 50,000): 1:1 chats of customers with
100 agents (one per 500 chats, at least 10) in teams of 10 under a leader each, and one group
chat in 50 (the agents' groups, where their customers ask too), over the last two days, about
3.5 messages each (questions, images, replies, closings such as 好的谢谢); one chat in ten ends
on a question nobody has answered (asked up to 12 hours ago). 90 % of the customers are known
contacts of their agent. The messages are stored as a pull stores them
(`siyu.conversations.tasks.pull` from an in-memory archive, like benchmarks/ingest.py: message
rows, conversations, SLA waits and steps, search tokens, needs-reply verdicts), the group
chats' names and owners as WeCom's lookup stores them, and the steps that came due are fired
by the SLA firing itself (`siyu.sla.tasks.fire_next`; steps older than the policy's six hours
are skipped, as a worker skips them), their cards then marked sent. Waits answered within the
archive never fired a step (they were stored at once), so the day's breaches are those of the
chats still waiting.

Run: `siyu serve` (no embedded worker) in a process of its own on a free port; an agent
(agent0000), their team leader (leader00, a supervisor of 10 agents) and an admin sign in
through the login form; each round each of them opens, one request at a time: the
conversation list (its first page, and a page in the middle of it by cursor), the waiting
tab, a search for a Chinese phrase (什么时候发货) and for one character (货), one waiting chat
of the agent's, that customer's profile with their chats (their 1:1 chat and the group they
wrote in), their customers (the page, and GET /api/v1/customers: its first page), the SLA
board page and its API (/api/v1/sla/board) as a client asks for it: the first page (its
default limit), and the next page by the first's cursor. The rounds run under the
tenant's default policy (wall clock), then again after the admin turns on business hours
only (PUT /api/v1/sla/policy). Each request is timed by the client, from sending to the whole
answer (HTTP 200 required). After every request the baseline runs once, in turn: SELECT one
page (20 rows) of the agent's conversations by the index on (tenant_id, staff_userid,
last_message_at), from this process. ratio = a request kind's p50 / the baseline's p50 (the
machines this runs on drift in speed within minutes: what the two measured in turn share is
the machine's speed at the time). Also given: the HTTP floor (GET /api/v1/me, the session and
one row; `floor_ratio` = p50 / its p50: it runs in the server, so it slows with the server's
share of the machine, which the baseline does not see). A first pass of every request is not
counted (caches, prepared plans).

The database is a fresh SQLite file (default) or a fresh PostgreSQL database created on the
server --database names, dropped afterwards. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(ROOT / "src")):
    if p not in sys.path:
        sys.path.insert(0, p)

import httpx  # noqa: E402
from sqlalchemy import func, insert, select, update  # noqa: E402

import siyu.sla  # noqa: E402, F401 - registers the SLA wait listener, as every ingesting process must
from benchmarks._archive import (  # noqa: E402
    CLOSINGS,
    FOLLOW_UPS,
    GROUP_TALK,
    QUESTIONS,
    REPLIES,
    external_userid,
    fill,
    image_message,
    log,
    migrated_database,
    new_tenant,
    organisation,
    run_in_workdir,
    store_customers,
    store_organisation,
    text_message,
)
from benchmarks._util import percentile, stop_process  # noqa: E402
from benchmarks.ingest import MemorySource  # noqa: E402
from siyu.conversations import tasks as conversation_tasks  # noqa: E402
from siyu.conversations.models import Conversation, GroupChat, Message  # noqa: E402
from siyu.customers.models import Customer, Follow  # noqa: E402
from siyu.notify.models import OutboxMessage  # noqa: E402
from siyu.runtime import Runtime  # noqa: E402
from siyu.sla import tasks as sla_tasks  # noqa: E402
from siyu.sla.models import SlaEscalation, SlaWait  # noqa: E402
from siyu.tenancy import service as tenancy  # noqa: E402
from siyu.wecom.archive import ArchivedMessage  # noqa: E402

CHATS_PER_AGENT = 500
GROUP_EVERY = 50  # one conversation in this many is a group chat
WAITING_SHARE = 0.10
WINDOW_S = 2 * 86400
PASSWORD = "bench-pass-word-1"
PHRASE, CHARACTER = "什么时候发货", "货"
SLOW_S = 0.5  # a request slower than this at p50 is worth a look
ROLES = ("agent", "supervisor", "admin")
KINDS = (
    "list",
    "list_later",
    "waiting",
    "search_phrase",
    "search_char",
    "chat",
    "customer",
    "customers",
    "customers_api",
    "board",
    "board_api",
    "board_api_next",
)
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


# ---------------------------------------------------------------- the archive


def make_archive(n: int, agents: list[str], seed: int = 3) -> tuple[list[ArchivedMessage], dict]:
    """N conversations' messages ordered by msgtime, numbered by seq; and who is who:
    {"customers": [(external_userid, agent)], "groups": [(roomid, owner, [customer senders])]}."""
    rng = random.Random(seed)
    now = time.time()
    events: list[tuple[float, str, dict]] = []
    serial = iter(range(10**9))

    def add(at: float, sender: str, to: str, content: str | None, roomid: str = "") -> None:
        mid = f"{next(serial)}_{int(at * 1000)}_{'external' if sender.startswith('wm') else 'internal'}"
        if content is None:
            message = image_message(mid, sender, to, int(at * 1000))
        else:
            message = text_message(mid, sender, to, int(at * 1000), content, roomid)
        events.append((at, mid, message))

    groups = max(1, n // GROUP_EVERY)
    customers: list[tuple[str, str]] = []
    by_agent: dict[str, list[str]] = {}
    for i in range(n - groups):
        ext, agent = external_userid(i), agents[rng.randrange(len(agents))]
        customers.append((ext, agent))
        by_agent.setdefault(agent, []).append(ext)
        waiting = rng.random() < WAITING_SHARE
        chat: list[tuple[float, str, str, str | None]] = []  # (offset s, from, to, text)
        t = 0.0
        exchanges = rng.choice((1, 1, 1, 2))
        for x in range(exchanges):
            for _ in range(rng.choice((1, 1, 2))):
                t += rng.uniform(2, 60)
                text = None if rng.random() < 0.1 else fill(rng.choice(QUESTIONS), rng)
                chat.append((t, ext, agent, text))
            if waiting and x == exchanges - 1:
                break
            t += rng.uniform(20, 900)
            chat.append((t, agent, ext, fill(rng.choice(REPLIES), rng)))
            roll = rng.random()
            if roll < 0.6:
                t += rng.uniform(5, 300)
                chat.append((t, ext, agent, rng.choice(CLOSINGS)))
            elif roll < 0.8 and x < exchanges - 1:
                t += rng.uniform(5, 300)
                chat.append((t, ext, agent, rng.choice(FOLLOW_UPS)))
            t += rng.uniform(600, 7200)
        # a waiting chat's last question up to 12 hours ago; the others end within the window
        end = now - (rng.uniform(60, 12 * 3600) if waiting else rng.uniform(60, WINDOW_S))
        start = end - chat[-1][0]
        for offset, sender, to, text in chat:
            add(start + offset, sender, to, text)
    rooms = []
    for g in range(groups):
        roomid = f"wr{g:08d}" + "z" * 20
        owner = agents[g % len(agents)]
        theirs = by_agent.get(owner) or [c for c, _ in customers[:20]]
        members = rng.sample(theirs, min(len(theirs), rng.randint(3, 8)))
        at = now - rng.uniform(3600, WINDOW_S)
        senders = []
        for _ in range(rng.randint(3, 8)):
            at += rng.uniform(5, 600)
            if rng.random() < 0.35:
                add(at, owner, "", fill(rng.choice(REPLIES), rng), roomid)
            else:
                member = rng.choice(members)
                senders.append(member)
                add(at, member, "", fill(rng.choice(GROUP_TALK), rng), roomid)
        rooms.append((roomid, owner, senders))
    events.sort(key=lambda e: e[0])
    items = [
        ArchivedMessage(seq, mid, message, json.dumps(message, ensure_ascii=False))
        for seq, (_, mid, message) in enumerate(events, start=1)
    ]
    return items, {"customers": customers, "groups": rooms}


# ---------------------------------------------------------------- set-up


def seed(args, settings, db) -> dict:
    """The tenant, its staff, customers and chats (see the module's doc); what the requests need."""
    rt = Runtime.create(settings, db)
    n_agents = max(10, args.conversations // CHATS_PER_AGENT)
    departments, staff = organisation(n_agents)
    agents = [s["userid"] for s in staff if s["userid"].startswith("agent")]
    tenant_id = new_tenant(db, rt.box, "基准科技")
    logins = {"agent": "bench-agent", "supervisor": "bench-leader", "admin": "bench-admin"}
    with db.tenant_session(tenant_id) as s:
        store_organisation(s, departments, staff)
        tenancy.add_person(s, logins["agent"], "坐席", "agent", PASSWORD, agents[0])
        tenancy.add_person(s, logins["supervisor"], "组长", "supervisor", PASSWORD, "leader00")
        tenancy.add_person(s, logins["admin"], "管理员", "admin", PASSWORD)

    t = time.perf_counter()
    items, who = make_archive(args.conversations, agents)
    customers = who["customers"]
    known = [(ext, agent) for i, (ext, agent) in enumerate(customers) if i % 10]  # 90 % known contacts
    store_customers(db, tenant_id, [ext for ext, _ in known])
    with db.tenant_session(tenant_id) as s:
        ids = dict(s.execute(select(Customer.external_userid, Customer.id)).all())
    follows = [
        {"tenant_id": tenant_id, "customer_id": ids[ext], "staff_userid": agent, "status": "active"}
        for ext, agent in known
    ]
    with db.engine.begin() as conn:
        for i in range(0, len(follows), 5000):
            conn.execute(insert(Follow), follows[i : i + 5000])
    log(f"{len(items)} messages of {args.conversations} conversations made in {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    conversation_tasks.classifier()
    asyncio.run(conversation_tasks.pull(rt, tenant_id, MemorySource(items)))
    log(f"stored as a pull stores them in {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    now = datetime.now(UTC)
    groups = [
        {
            "tenant_id": tenant_id,
            "chat_id": roomid,
            "name": f"{owner}的客户群{k}",
            "owner_userid": owner,
            "member_count": 1 + len(set(senders)),
            "customer_count": len(set(senders)),
            "status": "active",
            "checked_at": now,
        }
        for k, (roomid, owner, senders) in enumerate(who["groups"])
    ]
    with db.engine.begin() as conn:
        conn.execute(insert(GroupChat), groups)
    fired = 0
    while True:
        outcomes = sla_tasks.fire_next(rt, sla_tasks.BATCH)
        if not outcomes:
            break
        fired += sum(1 for o in outcomes.values() if o in sla_tasks.FIRED)
    with db.tenant_session(tenant_id) as s:  # the senders delivered the cards meanwhile
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(status="sent", sent_at=OutboxMessage.due_at)
            .execution_options(synchronize_session=False)
        )
    log(f"group chats named, {fired} due steps fired in {time.perf_counter() - t:.1f}s")

    # The agent's chat to open: a waiting 1:1 chat of a known customer who also wrote in a group.
    in_groups = {ext for roomid, owner, senders in who["groups"] if owner == agents[0] for ext in senders}
    with db.tenant_session(tenant_id) as s:
        row = s.execute(
            select(Conversation.id, Conversation.customer_id)
            .where(
                Conversation.staff_userid == agents[0],
                Conversation.kind == "single",
                Conversation.customer_id.is_not(None),
                Conversation.awaiting_since.is_not(None),
            )
            .order_by(Conversation.external_userid.in_(in_groups).desc(), Conversation.id)
            .limit(1)
        ).first()
        counts = stored_counts(s)
    if row is None:
        raise SystemExit("the agent has no waiting chat: give more --conversations")
    return {
        "tenant_id": tenant_id,
        "logins": logins,
        "agent": agents[0],
        "chat": row.id,
        "customer": row.customer_id,
        "stored": {**counts, "fired_steps": fired},
    }


def stored_counts(s) -> dict:
    def count(model, *where):
        return s.scalar(select(func.count()).select_from(model).where(*where))

    return {
        "conversations": count(Conversation),
        "group_chats": count(Conversation, Conversation.kind == "group"),
        "waiting": count(Conversation, Conversation.awaiting_since.is_not(None)),
        "messages": count(Message),
        "customers": count(Customer),
        "waits": count(SlaWait),
        "waits_open": count(SlaWait, SlaWait.closed_at.is_(None)),
        "escalations_fired": count(SlaEscalation, SlaEscalation.status == "fired"),
    }


# ---------------------------------------------------------------- the server and its clients


def start_server(settings, workdir: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        SIYU_DATA_DIR=str(settings.data_dir),
        SIYU_DATABASE_URL=settings.database_url,
        SIYU_SECRET_KEY=settings.secret_key,
        SIYU_PUBLIC_URL=url,
        SIYU_AUTO_MIGRATE="false",
        SIYU_EMBEDDED_WORKER="false",
        SIYU_STAFF_SYNC_INTERVAL_S="0",
    )
    out = open(workdir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the process
    argv = [sys.executable, "-m", "siyu", "serve", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"siyu serve exited:\n{(workdir / 'serve.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError("siyu serve did not answer in 60 s")


def sign_in(url: str, login: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=120)
    token = _CSRF_FIELD.search(client.get("/login").text).group(1)
    r = client.post("/login", data={"login": login, "password": PASSWORD, "csrf_token": token, "next": "/"})
    if r.status_code != 303:
        raise RuntimeError(f"{login} could not sign in: {r.status_code} {r.text[:300]}")
    client.headers["X-CSRF-Token"] = client.get("/api/v1/me").json()["csrf_token"]
    return client


def request_paths(client: httpx.Client, seeded: dict) -> dict[str, str]:
    """Each request kind's path for this viewer; the later page's cursor is that of the page in
    the middle of their list (read here, not timed)."""
    first = client.get("/api/v1/conversations", params={"per_page": 20}).json()
    middle = max(1, first["pages"] // 2)
    page = client.get("/api/v1/conversations", params={"per_page": 20, "page": middle}).json()
    cursor = page["next"] or first["next"]
    board_next = client.get("/api/v1/sla/board").json().get("next")  # (the start code gave none)
    return {
        "list": "/conversations",
        "list_later": "/conversations?" + urlencode({"after": cursor}) if cursor else "/conversations",
        "waiting": "/conversations?waiting=1",
        "search_phrase": "/conversations?" + urlencode({"q": PHRASE}),
        "search_char": "/conversations?" + urlencode({"q": CHARACTER}),
        "chat": f"/conversations/{seeded['chat']}",
        "customer": f"/customers/{seeded['customer']}",
        "customers": "/customers",
        "customers_api": "/api/v1/customers",
        "board": "/sla",
        "board_api": "/api/v1/sla/board",
        "board_api_next": "/api/v1/sla/board?" + urlencode({"after": board_next})
        if board_next
        else "/api/v1/sla/board",
    }


# ---------------------------------------------------------------- the run


def measure(args, settings, db, workdir: Path) -> dict:
    dialect = db.engine.dialect.name
    t = time.perf_counter()
    seeded = seed(args, settings, db)
    seed_s = time.perf_counter() - t
    log(f"{dialect}: seeded in {seed_s:.1f}s: {seeded['stored']}")

    c = Conversation.__table__.c
    baseline_stmt = (
        select(Conversation.__table__)
        .where(c.tenant_id == seeded["tenant_id"], c.staff_userid == seeded["agent"])
        .order_by(c.last_message_at.desc())
        .limit(20)
    )

    def baseline() -> float:
        t = time.perf_counter()
        with db.engine.connect() as conn:
            rows = conn.execute(baseline_stmt).all()
        took = time.perf_counter() - t
        assert len(rows) == 20
        return took

    proc, url = start_server(settings, workdir)
    clients: dict[str, httpx.Client] = {}
    try:
        clients = {role: sign_in(url, seeded["logins"][role]) for role in ROLES}
        paths = {role: request_paths(clients[role], seeded) for role in ROLES}
        times: dict[str, dict[str, dict[str, list[float]]]] = {}
        base: list[float] = []
        floor: list[float] = []

        def timed(client: httpx.Client, path: str) -> float:
            t = time.perf_counter()
            r = client.get(path)
            took = time.perf_counter() - t
            if r.status_code != 200:
                raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
            return took

        for policy in ("wall", "business"):
            if policy == "business":
                r = clients["admin"].put("/api/v1/sla/policy", json={"business_hours_only": True})
                if r.status_code != 200:
                    raise RuntimeError(f"PUT /api/v1/sla/policy: {r.status_code} {r.text[:300]}")
            got = times[policy] = {kind: {role: [] for role in ROLES} for kind in KINDS}
            for role in ROLES:  # a first pass, not counted
                for kind in KINDS:
                    timed(clients[role], paths[role][kind])
            log(f"{policy}: {args.rounds} rounds of {len(KINDS)} requests x {len(ROLES)} roles")
            for _ in range(args.rounds):
                for role in ROLES:
                    floor.append(timed(clients[role], "/api/v1/me"))
                    base.append(baseline())
                    for kind in KINDS:
                        got[kind][role].append(timed(clients[role], paths[role][kind]))
                        base.append(baseline())
    finally:
        for client in clients.values():
            client.close()
        stop_process(proc)

    base_p50, floor_p50 = percentile(base, 50), percentile(floor, 50)
    results: dict = {}
    slow = []
    lines = [f"{'policy':<9} {'request':<14} " + " ".join(f"{r + ' p50/p95 ms, ratio':>26}" for r in ROLES)]
    for policy, kinds in times.items():
        results[policy] = {}
        for kind, by_role in kinds.items():
            results[policy][kind] = {}
            cells = []
            for role, values in by_role.items():
                p50, p95 = percentile(values, 50), percentile(values, 95)
                results[policy][kind][role] = {
                    "p50_ms": round(p50 * 1000, 1),
                    "p95_ms": round(p95 * 1000, 1),
                    "ratio": round(p50 / base_p50, 1),
                    "floor_ratio": round(p50 / floor_p50, 2),
                }
                cells.append(f"{p50 * 1000:>8.0f} / {p95 * 1000:<6.0f} {p50 / base_p50:>6.0f}x")
                if p50 > SLOW_S:
                    slow.append(f"{policy} {kind} {role} p50 {p50:.2f}s")
            lines.append(f"{policy:<9} {kind:<14} " + " ".join(f"{cell:>26}" for cell in cells))
    print("\n".join(lines))
    print(
        f"{dialect}: {seeded['stored']['conversations']} conversations, {seeded['stored']['messages']}"
        f" messages, {seeded['stored']['waiting']} waiting; baseline (one indexed page, SELECT from"
        f" this process) p50 {base_p50 * 1000:.2f} ms, p95 {percentile(base, 95) * 1000:.2f} ms;"
        f" HTTP floor (GET /api/v1/me, in turn too) p50 {floor_p50 * 1000:.1f} ms"
    )
    print("over 0.5 s at p50: " + ("; ".join(slow) if slow else "none"))
    return {
        "database": dialect,
        "conversations": args.conversations,
        "rounds": args.rounds,
        "seed_s": round(seed_s, 1),
        "stored": seeded["stored"],
        "baseline_p50_ms": round(base_p50 * 1000, 3),
        "baseline_p95_ms": round(percentile(base, 95) * 1000, 3),
        "floor_p50_ms": round(floor_p50 * 1000, 2),
        "results": results,
        "slow": slow,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=50_000, help="conversations in the tenant")
    parser.add_argument("--database", default=None, help="PostgreSQL server URL (default: SQLite file)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every request, per policy")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (SQLite file, server log)")
    args = parser.parse_args()
    if args.conversations < 100:
        parser.error("--conversations must be at least 100")
    if args.rounds < 1:
        parser.error("--rounds must be positive")

    def run(workdir: Path) -> dict:
        with migrated_database(args.database, workdir) as (settings, db):
            return measure(args, settings, db, workdir)

    run_in_workdir("siyu-reads-", run, keep=args.keep)


if __name__ == "__main__":
    main()
