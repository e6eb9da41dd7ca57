"""Callback benchmark: how many WeCom callbacks one Siyu process acknowledges, and how fast
it turns them into customers, tags and welcome messages.

    .venv/bin/python benchmarks/callbacks.py [--events N] [--rate R] [--database URL]

Siyu runs as `siyu serve` pinned to one core (SQLite in a fresh temp dir unless --database
names a PostgreSQL server; a fresh database is then created and dropped). The WeCom emulator
and this driver share the other core. The driver pre-creates the customers in the emulator
(so externalcontact/get, mark_tag and send_welcome_msg work), builds each
add_external_contact event itself, encrypts it, and offers the callbacks open loop: event i
goes out at t0 + i/R whatever happened to the others; latency counts from that scheduled
moment, so waiting for a free connection counts too.

Phases
  ceiling   verify + decrypt + parse of prepared callbacks in this process (one core)
  ack       offered rate stepped up (then bisected) until Siyu stops keeping up; after each
            step the worker's backlog is drained, so every step starts from rest
  burst     N/4 events at the highest acknowledged rate, 4 % of them resent (WeCom's retries);
            time until every event is processed (contact fetched, tagged, welcome sent) and
            the share of welcome messages WeCom (the emulator) received within 20 s
  checks    duplicates: welcome codes used twice, customers, follows or events stored twice

`--events N` sets the scale: each ack step sends at most N/5 events, the burst N/4.
The last line is JSON; the tables before it are for people.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks._util import LoadClient, percentile, post_bytes, stop_process  # noqa: E402
from siyu.wecom.crypto import WeComCrypto  # noqa: E402
from siyu.wecom.events import envelope_encrypt, event_xml, parse_event  # noqa: E402

SLUG = "bench"
LADDER = [250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000]
P99_LIMIT_S = 0.1
BACKLOG_LIMIT_S = 0.1  # the last answer of a step may come at most this long after the last offer
WELCOME_WINDOW_S = 20.0
RETRY_EVERY = 25  # in the burst, every 25th callback is sent twice, like WeCom's retries
DEPARTMENTS = [
    {"id": 1, "name": "总部", "parentid": 0, "department_leader": ["boss"]},
    {"id": 2, "name": "销售一部", "parentid": 1, "department_leader": ["lisi"]},
]
STAFF = [
    {"userid": "boss", "name": "王总", "department": [1]},
    {"userid": "lisi", "name": "李四", "department": [2], "direct_leader": ["boss"]},
    {"userid": "zhangsan", "name": "张三", "department": [2], "direct_leader": ["lisi"]},
    {"userid": "wangwu", "name": "王五", "department": [2], "direct_leader": ["lisi"]},
]
CHANNEL_STAFF = ["zhangsan", "lisi", "wangwu"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Prepared:
    """One batch of callbacks, ready to send: raw HTTP requests and their schedule."""

    rate: float
    wall0: float  # unix time of offset 0
    offsets: list[float]  # seconds after t0, one per request (retries included)
    requests: list[bytes]
    ats: list[float]  # unix time of each unique event (CreateTime, welcome code issued)
    codes: list[str]
    unique: int


@dataclass
class Offer:
    """What happened to one batch on the wire."""

    n: int
    rate: float
    latencies: list[float]
    errors: int
    statuses: dict
    duration_s: float  # from t0 to the last answer
    backlog_s: float  # last answer minus the last scheduled offer
    send_lag_p99_s: float  # how late the driver itself sent (must stay ~0)
    cpu_s: float = 0.0  # Siyu's CPU during the offer

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def achieved(self) -> float:
        return self.n / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.p99 < P99_LIMIT_S and self.backlog_s <= BACKLOG_LIMIT_S


@dataclass
class Step:
    offer: Offer
    elapsed_s: float  # from t0 until the offer was over
    cpu_s: float  # Siyu's CPU over the same time
    done_during: int = 0  # events the worker finished meanwhile (its competition for the core)


@dataclass
class Bench:
    events: int
    rate: float | None
    database: str | None
    keep: bool = False
    step_s: float = 2.0  # seconds of offered load per ack step
    no_worker: bool = False  # diagnosis: the callback route alone
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="siyu-bench-")))
    procs: list = field(default_factory=list)
    admin_url: str | None = None
    db_name: str | None = None

    # ------------------------------------------------------------ processes

    def cores(self) -> tuple[str | None, str | None]:
        if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
            return None, None
        return "0", "1"

    def pinned(self, core: str | None, argv: list[str]) -> list[str]:
        return ["taskset", "-c", core, *argv] if core is not None else argv

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
        env.update(
            SIYU_DATA_DIR=str(self.tmp / "data"),
            SIYU_DATABASE_URL=self.db_url,
            SIYU_PUBLIC_URL=self.siyu_url,
            SIYU_WECOM_BASE_URL=self.emu_url,
            SIYU_WECOM_OAUTH_URL=self.emu_url,
            SIYU_WECOM_LOGIN_URL=self.emu_url,
            SIYU_SECRET_KEY=self.secret_key,
            SIYU_STAFF_SYNC_INTERVAL_S="0",
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
            [siyu, *args], cwd=self.tmp, env=self.env(), capture_output=True, text=True, timeout=120
        )
        if run.returncode:
            raise RuntimeError(f"siyu {' '.join(args[:2])} failed:\n{run.stdout}\n{run.stderr}")
        return run.stdout

    def wait_http(self, url: str, proc: subprocess.Popen, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.tmp / (name + '.log')}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy after {timeout}s")

    # ------------------------------------------------------------ set-up

    def create_database(self) -> str:
        if not self.database:
            return f"sqlite:///{self.tmp / 'data' / 'siyu.db'}"
        server = make_url(self.database)
        self.db_name = f"siyu_bench_{uuid.uuid4().hex[:10]}"
        self.admin_url = self.database
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        return server.set(database=self.db_name).render_as_string(hide_password=False)

    def drop_database(self) -> None:
        if not self.db_name:
            return
        admin = create_engine(make_url(self.admin_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        admin.dispose()

    def setup(self) -> None:
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        self.siyu_core, self.driver_core = self.cores()
        if self.driver_core is not None:
            os.sched_setaffinity(0, {int(self.driver_core)})
        self.secret_key = secrets.token_urlsafe(32)
        self.emu_port, self.siyu_port = free_port(), free_port()
        self.emu_url = f"http://127.0.0.1:{self.emu_port}"
        self.siyu_url = f"http://127.0.0.1:{self.siyu_port}"
        self.db_url = self.create_database()

        log(f"emulator on {self.emu_url} (core {self.driver_core}), work dir {self.tmp}")
        util = str(HERE / "_util.py")
        emu_proc = self.spawn(
            "emulator",
            self.pinned(self.driver_core, [sys.executable, util, "emulator", "--port", str(self.emu_port)]),
        )
        self.wait_http(f"{self.emu_url}/_emulator/health", emu_proc, "emulator")
        self.emu = httpx.Client(base_url=self.emu_url, timeout=120)
        callback_url = f"{self.siyu_url}/wecom/callback/{SLUG}"
        r = self.emu.post(
            "/_emulator/corps",
            json={
                "name": "基准科技",
                "departments": DEPARTMENTS,
                "staff": STAFF,
                "callback_url": callback_url,
            },
        )
        r.raise_for_status()
        self.corp = corp = r.json()
        self.emu.post(f"/_bench/corps/{corp['corp_id']}/unbounded_calls").raise_for_status()
        self.crypto = WeComCrypto(corp["token"], corp["encoding_aes_key"], corp["corp_id"])

        log(f"tenant {SLUG!r} on {self.db_url.split('@')[-1]}")
        self.cli(
            "tenant", "add", "--name", "基准科技", "--corp-id", corp["corp_id"],
            "--agent-id", str(corp["agent_id"]), "--agent-secret", corp["agent_secret"],
            "--contact-secret", corp["contact_secret"], "--token", corp["token"],
            "--aes-key", corp["encoding_aes_key"], "--slug", SLUG, "--no-check",
        )  # fmt: skip
        self.db = create_engine(self.db_url, connect_args={"timeout": 30} if "sqlite" in self.db_url else {})
        self.tenant_id = self.scalar("SELECT id FROM tenants WHERE slug = :s", s=SLUG)

        self.start_siyu(worker=True)

        self.cli("sync", "staff", "--tenant", SLUG)
        r = self.emu.post(
            f"/_emulator/corps/{corp['corp_id']}/console/tags",
            json={"action": "create", "group_name": "渠道来源", "tag": [{"name": "基准渠道"}], "wait": True},
        )
        r.raise_for_status()
        self.tag_id = r.json()["tag_ids"][0]
        self.wait_db(
            "the tag callback to be processed", "SELECT count(*) FROM tags WHERE wecom_id = :t", t=self.tag_id
        )
        spec = {
            "name": "基准渠道",
            "staff_userids": CHANNEL_STAFF,
            "tag_ids": [self.tag_id],
            "welcome_text": "{name} 你好，欢迎关注基准科技！",
        }
        try:
            self.channel_via_api(spec)
            how = "POST /api/v1/channels"
        except Exception as exc:  # noqa: BLE001 - the JSON API is young; the service works without it
            log(f"POST /api/v1/channels not usable ({exc!r}); creating the channel through the service")
            self.channel_via_service(spec)
            how = "siyu.customers.channels.create_channel"
        self.state, self.config_id = self.db_row(
            "SELECT state, config_id FROM channels ORDER BY id DESC LIMIT 1"
        )
        log(f"channel {self.state} / {self.config_id} created with {how}")

    def start_siyu(self, worker: bool) -> None:
        log(f"siyu serve on {self.siyu_url} (core {self.siyu_core}){'' if worker else ' without its worker'}")
        siyu = str(Path(sys.executable).with_name("siyu"))
        env = self.env()
        if not worker:
            env["SIYU_EMBEDDED_WORKER"] = "false"
        self.siyu = self.spawn(
            "siyu" if worker else "siyu-no-worker",
            self.pinned(
                self.siyu_core, [siyu, "serve", "--host", "127.0.0.1", "--port", str(self.siyu_port)]
            ),
            env,
        )
        self.wait_http(f"{self.siyu_url}/healthz", self.siyu, "siyu")
        self.ps = psutil.Process(self.siyu.pid)

    def channel_via_api(self, spec: dict) -> None:
        password = secrets.token_urlsafe(12)
        self.cli(
            "person", "add", "--tenant", SLUG, "--login", "bench", "--name", "基准", "--password", password
        )
        with httpx.Client(base_url=self.siyu_url, timeout=30) as web:
            web.get("/login").raise_for_status()
            csrf = web.cookies.get("siyu_login_csrf")
            r = web.post(
                "/login", data={"login": "bench", "password": password, "csrf_token": csrf, "next": "/"}
            )
            if r.status_code != 303:
                raise RuntimeError(f"login answered {r.status_code}")
            me = web.get("/api/v1/me")
            me.raise_for_status()
            r = web.post("/api/v1/channels", json=spec, headers={"X-CSRF-Token": me.json()["csrf_token"]})
            if r.status_code != 201:
                raise RuntimeError(f"POST /api/v1/channels answered {r.status_code}: {r.text[:300]}")

    def channel_via_service(self, spec: dict) -> None:
        from siyu.config import Settings
        from siyu.customers.channels import ChannelSpec, create_channel
        from siyu.runtime import Runtime

        settings = Settings(
            data_dir=self.tmp / "data",
            database_url=self.db_url,
            secret_key=self.secret_key,
            wecom_base_url=self.emu_url,
            auto_migrate=False,
        )
        rt = Runtime.create(settings)

        async def go():
            try:
                await create_channel(rt, self.tenant_id, ChannelSpec(**spec))
            finally:
                await rt.clients.aclose()

        asyncio.run(go())
        rt.db.dispose()

    # ------------------------------------------------------------ database reads

    def scalar(self, sql: str, **params):
        with self.db.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def db_row(self, sql: str, **params):
        with self.db.connect() as conn:
            return tuple(conn.execute(text(sql), params).one())

    def wait_db(self, what: str, sql: str, timeout: float = 30, **params) -> None:
        deadline = time.monotonic() + timeout
        while not self.scalar(sql, **params):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def backlog(self) -> int:
        """Callback events and outbox messages not finished yet."""
        return self.scalar(
            "SELECT (SELECT count(*) FROM callback_events WHERE status = 'pending')"
            " + (SELECT count(*) FROM outbox WHERE status = 'pending')"
        )

    def cpu(self) -> float:
        """Siyu's CPU seconds: the server and its worker child (both pinned to Siyu's core)."""
        total = 0.0
        for proc in [self.ps, *self.ps.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    # ------------------------------------------------------------ events

    def prepare(self, n: int, rate: float, retry_every: int = 0) -> Prepared:
        """Customers in the emulator and their encrypted add_external_contact callbacks."""
        lead = 0.5 + n * 0.0004  # time to create and encrypt them, roughly
        wall0 = time.time() + lead
        ats = [wall0 + i / rate for i in range(n)]
        rows = self.emu.post(
            f"/_bench/corps/{self.corp['corp_id']}/scan_many",
            json={"config_id": self.config_id, "at": ats, "prefix": f"客户{uuid.uuid4().hex[:4]}-"},
        )
        rows.raise_for_status()
        offsets, requests, codes = [], [], []
        for i, ((ext_id, userid, code), at) in enumerate(zip(rows.json(), ats, strict=True)):
            fields = {
                "ToUserName": self.corp["corp_id"],
                "FromUserName": "sys",
                "CreateTime": int(at),
                "MsgType": "event",
                "Event": "change_external_contact",
                "ChangeType": "add_external_contact",
                "UserID": userid,
                "ExternalUserID": ext_id,
                "State": self.state,
                "WelcomeCode": code,
            }
            body, params = self.crypto.encrypt_callback(
                event_xml(fields), self.corp["agent_id"], timestamp=str(int(at))
            )
            path = f"/wecom/callback/{SLUG}?{urlencode(params)}"
            req = post_bytes("127.0.0.1", self.siyu_port, path, body.encode())
            offsets.append(i / rate)
            requests.append(req)
            codes.append(code)
            if retry_every and i % retry_every == retry_every - 1:
                offsets.append(i / rate + 1.0)  # WeCom resends the identical callback
                requests.append(req)
        order = sorted(range(len(offsets)), key=offsets.__getitem__)
        return Prepared(rate, wall0, [offsets[k] for k in order], [requests[k] for k in order], ats, codes, n)

    async def _offer(self, prep: Prepared) -> Offer:
        client = LoadClient("127.0.0.1", self.siyu_port, max_conns=1024)
        n = len(prep.requests)
        await client.warm(min(128, n))
        lat: list[float | None] = [None] * n
        status: list[int] = [0] * n
        lag: list[float] = [0.0] * n
        wait = prep.wall0 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.2:
            log(f"  preparing took {-wait:.2f}s longer than planned; events are {-wait:.2f}s old")
        t0 = time.perf_counter()
        cpu0 = self.cpu()
        last_done = [t0]
        offsets, requests = prep.offsets, prep.requests

        async def one(i: int) -> None:
            sched = t0 + offsets[i]
            lag[i] = time.perf_counter() - sched
            try:
                st, _, done = await client.request(requests[i])
            except (ConnectionError, OSError):
                st, done = -1, time.perf_counter()
            lat[i], status[i] = done - sched, st
            last_done[0] = max(last_done[0], done)

        loop = asyncio.get_running_loop()
        tasks = []
        i = 0
        while i < n:
            now = time.perf_counter()
            while i < n and t0 + offsets[i] <= now:
                tasks.append(loop.create_task(one(i)))
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, t0 + offsets[i] - time.perf_counter()))
        timeout = 30.0 + n / max(prep.rate, 1)
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        client.close()
        cpu1 = self.cpu()
        answered = [x for x, st in zip(lat, status, strict=True) if x is not None and st == 200]
        statuses: dict = {}
        for st in status:
            key = str(st) if st > 0 else ("timeout" if st == 0 else "conn_error")
            statuses[key] = statuses.get(key, 0) + 1
        errors = n - len(answered)
        lats = [x if st == 200 else float("inf") for x, st in zip(lat, status, strict=True) if x is not None]
        lats += [float("inf")] * sum(1 for x in lat if x is None)
        return Offer(
            n=n,
            rate=prep.rate,
            latencies=lats,
            errors=errors,
            statuses=statuses,
            duration_s=last_done[0] - t0,
            backlog_s=(last_done[0] - (t0 + offsets[-1])) if not pending else float("inf"),
            send_lag_p99_s=percentile(lag, 99),
            cpu_s=cpu1 - cpu0,
        )

    def offer(self, prep: Prepared) -> tuple[Offer, float, float]:
        """Send a prepared batch; returns the offer and (perf_counter, cpu) at its t0."""
        import uvloop

        t_start, cpu_start = time.perf_counter() + max(0.0, prep.wall0 - time.time()), self.cpu()
        gc.collect()
        gc.freeze()  # no collector pauses in the driver while it keeps the schedule
        gc.disable()
        try:
            result = uvloop.run(self._offer(prep))
        finally:
            gc.enable()
            gc.unfreeze()
        return result, t_start, cpu_start

    def drain(self, t0: float, timeout: float) -> tuple[float, bool]:
        """Wait for the worker to finish everything; seconds from t0 and whether it did."""
        deadline = time.perf_counter() + timeout
        while True:
            left = self.backlog()
            if left == 0:
                return time.perf_counter() - t0, True
            if time.perf_counter() > deadline:
                log(f"  worker still has {left} rows after {timeout:.0f}s; going on")
                return time.perf_counter() - t0, False
            time.sleep(0.1)

    # ------------------------------------------------------------ phases

    def ceiling(self) -> float:
        prep = self.prepare(min(2000, max(100, self.events // 10)), 1000.0)
        items = []
        for req in prep.requests:
            head, body = req.split(b"\r\n\r\n", 1)
            query = head.split(b" ", 2)[1].decode().split("?", 1)[1]
            params = dict(p.split("=", 1) for p in query.split("&"))
            items.append((body, params["msg_signature"], params["timestamp"], params["nonce"]))
        crypto = WeComCrypto(self.corp["token"], self.corp["encoding_aes_key"], self.corp["corp_id"])
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            for body, sig, ts, nonce in items:
                inner = crypto.decrypt_callback(envelope_encrypt(body), sig, ts, nonce)
                parse_event(inner)
            done += len(items)
        return done / (time.perf_counter() - start)

    def shed(self) -> None:
        """Let in-flight work finish (at most 2 s), then take what is still waiting out of the
        worker's way, so that the next step starts from rest without draining for minutes."""
        deadline = time.monotonic() + 2.0
        while self.backlog() and time.monotonic() < deadline:
            time.sleep(0.1)
        with self.db.begin() as conn:
            conn.execute(
                text(
                    "UPDATE callback_events SET status = 'failed', last_error = 'benchmark: shed'"
                    " WHERE status = 'pending'"
                )
            )
            conn.execute(
                text(
                    "UPDATE outbox SET status = 'dead', last_error = 'benchmark: shed'"
                    " WHERE status = 'pending'"
                )
            )
        time.sleep(1.0)  # rows the worker had already claimed finish now

    def step(self, rate: float) -> Step:
        n = max(25, int(rate * self.step_s))
        prep = self.prepare(n, rate)
        offer, t0, cpu0 = self.offer(prep)
        done = self.scalar("SELECT count(*) FROM callback_events WHERE status = 'done'")
        step = Step(offer, time.perf_counter() - t0, self.cpu() - cpu0, done - self.done_before)
        self.shed()
        self.done_before = self.scalar("SELECT count(*) FROM callback_events WHERE status = 'done'")
        self.steps.append(step)
        o = offer
        log(
            f"  {rate:>6.0f}/s x{o.n:<5} answered {o.achieved:7.0f}/s  p50 {o.p50 * 1000:7.1f} ms"
            f"  p99 {o.p99 * 1000:8.1f} ms  backlog {o.backlog_s * 1000:8.1f} ms  errors {o.errors}"
            f"  -> {'ok' if o.ok else 'NO'};  worker processed {step.done_during} meanwhile"
            f" ({step.done_during / step.elapsed_s:4.0f}/s)"
            f"  Siyu cpu {step.cpu_s / step.elapsed_s:4.0%} of a core"
        )
        return step

    def warm_up(self) -> None:
        """First requests pay for lazy set-up (tenant keys, WeCom token, connection pools)."""
        rate = min(200.0, self.rate or 200.0)
        prep = self.prepare(max(25, int(rate * self.step_s)), rate)
        offer, _, _ = self.offer(prep)
        log(f"  warm-up: {offer.n} at {rate:.0f}/s, p99 {offer.p99 * 1000:.1f} ms (not counted)")
        self.shed()
        self.done_before = self.scalar("SELECT count(*) FROM callback_events WHERE status = 'done'")

    def ack_phase(self) -> Step | None:
        """Highest offered rate acknowledged without backlog (ladder, then bisection)."""
        self.done_before = self.scalar("SELECT count(*) FROM callback_events WHERE status = 'done'")
        self.warm_up()
        if self.rate:
            step = self.step(self.rate)
            return step if step.offer.ok else None
        best, worst = None, None
        for rate in LADDER:
            step = self.step(rate)
            if not step.offer.ok:
                worst = rate
                break
            best = step
        if best is None:  # not even the first rung: look below it
            for rate in (LADDER[0] / 2, LADDER[0] / 4):
                step = self.step(rate)
                if step.offer.ok:
                    best = step
                    break
        if best is not None and worst is not None:
            low, high = best.offer.rate, worst
            for _ in range(2):
                mid = round((low + high) / 2 / 50) * 50
                if mid in (low, high):
                    break
                step = self.step(mid)
                if step.offer.ok:
                    best, low = step, mid
                else:
                    high = mid
        return best

    def burst(self, rate: float) -> dict:
        n = max(50, self.events // 4)
        log(f"burst: {n} events (+{n // RETRY_EVERY} resent) at {rate:.0f}/s")
        prep = self.prepare(n, rate, retry_every=RETRY_EVERY)
        offer, t0, cpu0 = self.offer(prep)
        drain_s, drained = self.drain(t0, timeout=120 + n * 0.1)
        cpu = self.cpu() - cpu0
        summary = self.emu.get(f"/_bench/corps/{self.corp['corp_id']}/summary").json()
        received = {code: at for code, at in summary["welcomes"]}
        delays = [received[c] - at for c, at in zip(prep.codes, prep.ats, strict=True) if c in received]
        in_time = sum(1 for d in delays if d <= WELCOME_WINDOW_S)
        log(
            f"  offered {offer.n} at {rate:.0f}/s: p50 {offer.p50 * 1000:.1f} ms"
            f" p99 {offer.p99 * 1000:.1f} ms,"
            f" errors {offer.errors}; all processed after {drain_s:.1f}s"
            f" ({n / drain_s:.0f}/s); welcomes in time {in_time}/{n}"
        )
        return {
            "events": n,
            "rate": rate,
            "offer": offer,
            "drain_s": drain_s,
            "drained": drained,
            "processed_per_s": n / drain_s if drained else 0.0,
            "cpu_s": cpu,
            "welcome_within_20s": in_time / n,
            "welcome_p50_s": percentile(delays, 50),
            "welcome_p99_s": percentile(delays, 99),
            "welcome_max_s": max(delays, default=float("nan")),
            "summary": summary,
        }

    def duplicates(self, summary: dict) -> dict:
        calls = summary["calls"]
        codes = [c for c, _ in summary["welcomes"]]
        tid = {"t": self.tenant_id}
        return {
            "welcome_code_twice": len(codes) - len(set(codes)),
            "welcome_code_reused_41051": calls.get("externalcontact/send_welcome_msg 41051", 0),
            "customers_twice": self.scalar(
                "SELECT count(*) - count(DISTINCT external_userid) FROM customers WHERE tenant_id = :t", **tid
            ),
            "follows_twice": self.scalar(
                "SELECT count(*) FROM (SELECT customer_id, staff_userid FROM follows WHERE tenant_id = :t"
                " GROUP BY customer_id, staff_userid HAVING count(*) > 1) AS d",
                **tid,
            ),
            "events_twice": self.scalar(
                "SELECT count(*) - count(DISTINCT xml) FROM callback_events WHERE tenant_id = :t", **tid
            ),
            "mark_tag_extra": max(0, calls.get("externalcontact/mark_tag 0", 0) - summary["tagged"]),
        }

    # ------------------------------------------------------------ the run

    def split_cpu(self) -> tuple[float, float] | None:
        """Least squares over the ack steps: cpu = intake x callbacks + processing x events done."""
        rows = [(st.offer.n, st.done_during, st.cpu_s) for st in self.steps]
        sxx = sum(n * n for n, _, _ in rows)
        syy = sum(d * d for _, d, _ in rows)
        sxy = sum(n * d for n, d, _ in rows)
        sxc = sum(n * c for n, _, c in rows)
        syc = sum(d * c for _, d, c in rows)
        det = sxx * syy - sxy * sxy
        if len(rows) < 2 or abs(det) < 1e-9 * max(sxx * syy, 1):
            return None
        return (sxc * syy - syc * sxy) / det, (syc * sxx - sxc * sxy) / det

    def run(self) -> dict:
        self.steps: list[Step] = []
        self.setup()
        self.ceiling_per_s = ceiling = self.ceiling()
        log(f"ceiling (verify + decrypt + parse, one core): {ceiling:.0f}/s")
        log(
            f"ack: offered rate stepped up, {self.step_s:g}s per step;"
            " the worker's backlog is shed after each"
        )
        if self.no_worker:
            stop_process(self.siyu)
            self.start_siyu(worker=False)
        best = self.ack_phase()
        ack_rate = best.offer.rate if best else 0.0
        if self.no_worker:
            return self.intake_only(best)
        burst = self.burst(ack_rate or (self.rate or LADDER[0]))
        dup = self.duplicates(burst["summary"])
        calls = burst["summary"]["calls"]
        stored = self.db_row(
            "SELECT (SELECT count(*) FROM customers),"
            " (SELECT count(*) FROM follows WHERE channel_id IS NOT NULL),"
            " (SELECT count(*) FROM outbox WHERE kind = 'welcome' AND status = 'sent'),"
            " (SELECT count(*) FROM outbox WHERE kind = 'welcome' AND status = 'dead'),"
            " (SELECT count(*) FROM callback_events WHERE status = 'done'),"
            " (SELECT count(*) FROM callback_events)"
        )
        split = self.split_cpu()
        self.print_table(burst, split)
        ref = best.offer if best else (self.steps[0].offer if self.steps else burst["offer"])
        bo = burst["offer"]
        return {
            "ack_per_s": ack_rate,
            "ack_p50_s": round(ref.p50, 5),
            "ack_p99_s": round(ref.p99, 5),
            "cpu_s_per_event": round(burst["cpu_s"] / burst["events"], 6),
            "processed_per_s": round(burst["processed_per_s"], 1),
            "welcome_within_20s": round(burst["welcome_within_20s"], 4),
            "duplicates": sum(dup.values()),
            "ceiling_per_s": round(ceiling),
            "database": "postgresql" if self.database else "sqlite",
            "cpu_s_per_callback_intake": round(split[0], 6) if split else None,
            "cpu_s_per_event_processing": round(split[1], 6) if split else None,
            "burst": {
                "events": burst["events"],
                "resent": bo.n - burst["events"],
                "rate": burst["rate"],
                "ack_p99_s": round(bo.p99, 5),
                "errors": bo.errors,
                "processed_s": round(burst["drain_s"], 2),
                "drained": burst["drained"],
                "welcome_p50_s": round(burst["welcome_p50_s"], 2),
                "welcome_p99_s": round(burst["welcome_p99_s"], 2),
                "welcome_max_s": round(burst["welcome_max_s"], 2),
            },
            "steps": self.step_rows(),
            "duplicates_detail": dup,
            "stored": dict(
                zip(
                    ["customers", "channel_follows", "welcome_sent", "welcome_dead", "events_done", "events"],
                    stored,
                    strict=True,
                )
            ),
            "wecom_calls": calls,
        }

    def intake_only(self, best: Step | None) -> dict:
        """--no-worker: what the callback route alone can do on its core (a diagnosis)."""
        self.print_table(None, None)
        ref = best.offer if best else self.steps[0].offer
        cpu = sum(st.cpu_s for st in self.steps) / sum(st.offer.n for st in self.steps)
        return {
            "ack_per_s": best.offer.rate if best else 0.0,
            "ack_p50_s": round(ref.p50, 5),
            "ack_p99_s": round(ref.p99, 5),
            "cpu_s_per_event": round(cpu, 6),
            "processed_per_s": None,
            "welcome_within_20s": None,
            "duplicates": self.scalar(
                "SELECT count(*) - count(DISTINCT xml) FROM callback_events WHERE tenant_id = :t",
                t=self.tenant_id,
            ),
            "ceiling_per_s": round(self.ceiling_per_s),
            "database": "postgresql" if self.database else "sqlite",
            "worker": False,
            "steps": self.step_rows(),
        }

    def step_rows(self) -> list[dict]:
        return [
            {
                "rate": st.offer.rate,
                "n": st.offer.n,
                "answered_per_s": round(st.offer.achieved),
                "p50_s": round(st.offer.p50, 5),
                "p99_s": round(st.offer.p99, 5),
                "backlog_s": round(st.offer.backlog_s, 4),
                "errors": st.offer.errors,
                "ok": st.offer.ok,
                "worker_done": st.done_during,
                "siyu_cpu_share": round(st.cpu_s / st.elapsed_s, 3),
                "driver_lag_p99_s": round(st.offer.send_lag_p99_s, 4),
            }
            for st in self.steps
        ]

    def print_table(self, burst: dict | None, split: tuple[float, float] | None) -> None:
        print(
            f"{'offered/s':>9} {'events':>6} {'answered/s':>10} {'p50 ms':>8} {'p99 ms':>9}"
            f" {'backlog ms':>10}"
            f" {'errors':>6} {'ok':>3} {'worker done':>11} {'siyu cpu':>8} {'driver lag p99 ms':>17}"
        )
        for st in self.steps:
            o = st.offer
            print(
                f"{o.rate:>9.0f} {o.n:>6} {o.achieved:>10.0f} {o.p50 * 1000:>8.1f} {o.p99 * 1000:>9.1f}"
                f" {o.backlog_s * 1000:>10.1f} {o.errors:>6} {'yes' if o.ok else 'no':>3}"
                f" {st.done_during:>11} {st.cpu_s / st.elapsed_s:>8.0%} {o.send_lag_p99_s * 1000:>17.2f}"
            )
        if burst is None:
            sys.stdout.flush()
            return
        o = burst["offer"]
        print(
            f"burst: {burst['events']} events (+{o.n - burst['events']} resent) at {burst['rate']:.0f}/s,"
            f" p99 {o.p99 * 1000:.1f} ms, processed in {burst['drain_s']:.1f}s"
            f" ({burst['processed_per_s']:.0f}/s, {burst['cpu_s'] / burst['events'] * 1000:.1f} ms CPU each),"
            f" welcome within 20 s: {burst['welcome_within_20s']:.1%}"
            f" (p50 {burst['welcome_p50_s']:.1f}s, max {burst['welcome_max_s']:.1f}s)"
        )
        if split:
            print(
                f"Siyu CPU (fit over the steps): intake {split[0] * 1000:.2f} ms/callback,"
                f" processing {split[1] * 1000:.2f} ms/event"
            )
        sys.stdout.flush()

    def cleanup(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        db = getattr(self, "db", None)
        if db is not None:
            db.dispose()
        try:
            self.drop_database()
        except Exception as exc:  # noqa: BLE001
            log(f"could not drop {self.db_name}: {exc}")
        if self.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="scale: ack steps <= N/5 events, burst N/4")
    parser.add_argument("--rate", type=float, default=None, help="measure this offered rate only (events/s)")
    parser.add_argument("--database", default=None, help="PostgreSQL server URL (default: SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, SQLite file)")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="diagnosis: measure the callback route alone (SIYU_EMBEDDED_WORKER=false after set-up)",
    )
    args = parser.parse_args()

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    bench = Bench(
        args.events,
        args.rate,
        args.database,
        args.keep,
        step_s=min(2.0, max(0.3, args.events / 10000)),
        no_worker=args.no_worker,
    )
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
