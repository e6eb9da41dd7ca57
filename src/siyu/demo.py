"""`siyu demo`: Siyu on SQLite, the WeCom emulator and a simulated world, in one process tree.

The demo is throwaway: its data directory is wiped on each start, because the emulator
keeps its state in memory and a new emulator is a new corp.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console

from siyu.config import Settings

console = Console()

DEPARTMENTS = [
    {"id": 1, "name": "示例科技", "parentid": 0, "department_leader": ["wangzong"]},
    {"id": 2, "name": "销售部", "parentid": 1, "department_leader": ["lisi"]},
    {"id": 3, "name": "客服部", "parentid": 1, "department_leader": ["zhaoliu"]},
]
STAFF = [
    {"userid": "wangzong", "name": "王总", "department": [1], "position": "总经理", "mobile": "13800000000"},
    {
        "userid": "lisi",
        "name": "李四",
        "department": [2],
        "direct_leader": ["wangzong"],
        "position": "销售主管",
        "mobile": "13800000001",
    },
    {
        "userid": "zhangsan",
        "name": "张三",
        "department": [2],
        "direct_leader": ["lisi"],
        "position": "销售顾问",
        "mobile": "13800000002",
    },
    {
        "userid": "xiaomei",
        "name": "小美",
        "department": [2],
        "direct_leader": ["lisi"],
        "position": "销售顾问",
        "mobile": "13800000003",
    },
    {
        "userid": "zhaoliu",
        "name": "赵六",
        "department": [3],
        "direct_leader": ["wangzong"],
        "position": "客服主管",
        "mobile": "13800000004",
    },
    {
        "userid": "sunqi",
        "name": "孙七",
        "department": [3],
        "direct_leader": ["zhaoliu"],
        "position": "客服专员",
        "mobile": "13800000005",
    },
]
CHANNELS = [
    {
        "name": "官网首页",
        "staff": ["zhangsan"],
        "tag": "官网",
        "welcome": "{name}您好！我是示例科技的张三，有任何问题随时问我。",
    },
    {
        "name": "展会易拉宝",
        "staff": ["zhangsan", "xiaomei"],
        "tag": "展会",
        "welcome": "{name}您好，感谢在展会上添加我们！这是产品手册，请查收。",
        "link": {"title": "示例科技产品手册", "url": "https://example.com/brochure", "desc": "2026 年版"},
    },
    {
        "name": "门店海报",
        "staff": ["xiaomei"],
        "tag": "门店",
        "welcome": "{name}您好，欢迎光临！到店出示本消息享会员价。",
    },
    {
        "name": "售后服务卡",
        "departments": [3],
        "tag": "售后",
        "welcome": "{name}您好，我是您的售后顾问，产品问题请直接留言。",
    },
]
LOGINS = [
    ("admin", "管理员", "admin", None),
    ("lisi", "李四", "supervisor", "lisi"),
    ("zhangsan", "张三", "agent", "zhangsan"),
]
PASSWORD = "siyu-demo"
ZONE = "Asia/Shanghai"  # the demo company's, as every tenant's until an admin sets another


def _wait_healthy(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start within {timeout:.0f}s")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _spawn(args: list[str], env: dict, procs: list[subprocess.Popen]) -> subprocess.Popen:
    """Started and in `procs` before a Ctrl-C can come between: one pressed while Popen waited
    for the child to start had left it running unseen, holding its port."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "siyu.cli", *args],
            env=env,
            start_new_session=True,
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, held),
        )
        procs.append(proc)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return proc


def _stop(procs: list[subprocess.Popen]) -> None:
    """Siyu first, then the emulator it calls: stopped together, Siyu's last archive pull met
    the emulator going away and logged a failed call as the demo ended."""
    for proc in reversed(procs):
        if proc.poll() is None:  # (SIGTERM: one still importing stops without a traceback)
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _seed(settings: Settings, emulator_url: str) -> tuple[str, list[str], int]:
    """The demo corp in the emulator and in Siyu: staff, logins, tags, channels."""
    from siyu.customers import service as customers
    from siyu.customers.channels import ChannelSpec, create_channel
    from siyu.runtime import Runtime
    from siyu.tenancy import service as tenancy
    from siyu.tenancy.tasks import sync_staff

    async with httpx.AsyncClient(base_url=emulator_url, timeout=30) as emu:
        corp = (
            await emu.post(
                "/_emulator/corps", json={"name": "示例科技", "departments": DEPARTMENTS, "staff": STAFF}
            )
        ).json()
        rt = Runtime.create(settings)
        rt.db.migrate()
        creds = tenancy.CorpCredentials.of_emulator_corp(corp)
        await tenancy.check_credentials(creds, settings.wecom_base_url)
        with rt.db.system_session() as s:
            tenant = tenancy.save_tenant(s, rt.box, "示例科技", creds, slug="demo")
            tenant_id, slug = tenant.id, tenant.slug
        with rt.db.tenant_session(tenant_id) as s:
            for login, name, role, userid in LOGINS:
                tenancy.add_person(s, login, name, role, PASSWORD, userid)
        await sync_staff(rt, tenant_id)
        contact = (await rt.clients.get(tenant_id)).contact
        group = (await contact.add_corp_tag(group_name="来源渠道", tags=[c["tag"] for c in CHANNELS]))[
            "tag_group"
        ]
        tag_ids = {t["name"]: t["id"] for t in group["tag"]}
        with rt.db.tenant_session(tenant_id) as s:
            customers.upsert_tags(s, [group])
        config_ids = []
        for c in CHANNELS:
            spec = ChannelSpec(
                name=c["name"],
                staff_userids=c.get("staff", []),
                department_ids=c.get("departments", []),
                tag_ids=[tag_ids[c["tag"]]],
                welcome_text=c["welcome"],
                welcome_link=c.get("link", {}),
            )
            channel_id = await create_channel(rt, tenant_id, spec)
            with rt.db.tenant_session(tenant_id) as s:
                from siyu.customers.models import Channel

                config_ids.append(s.get(Channel, channel_id).config_id)
        await _enable_archive(rt, emu, corp, tenant_id)
        await emu.patch(
            f"/_emulator/corps/{corp['corp_id']}", json={"callback_url": settings.callback_url(slug)}
        )
        await rt.clients.aclose()
        rt.db.dispose()
        return corp["corp_id"], config_ids, tenant_id


async def _enable_archive(rt, emu: httpx.AsyncClient, corp: dict, tenant_id: int) -> None:
    """会话存档: a key pair made in Siyu, its public half given to WeCom, the emulator's archive."""
    from siyu.conversations.service import add_archive_key
    from siyu.tenancy.models import Tenant
    from siyu.tenancy.service import archive_callback_pair, save_archive_settings
    from siyu.wecom.archive import generate_key_pair

    private_pem, public_pem = generate_key_pair()
    await emu.post(
        f"/_emulator/corps/{corp['corp_id']}/archive/keys",
        json={"publickey_ver": 1, "public_key_pem": public_pem},
    )
    with rt.db.tenant_session(tenant_id) as s:
        tenant = s.get(Tenant, tenant_id)
        save_archive_settings(s, rt.box, tenant, "http", corp["archive_secret"])
        add_archive_key(s, rt.box, 1, private_pem, public_pem)
        token, aes_key = archive_callback_pair(tenant, rt.box)
        slug = tenant.slug
    # The archive app's own callback (msgaudit_notify), with the pair Siyu generated.
    await emu.patch(
        f"/_emulator/corps/{corp['corp_id']}",
        json={
            "archive_callback_url": rt.settings.archive_callback_url(slug),
            "archive_token": token,
            "archive_encoding_aes_key": aes_key,
        },
    )


class Received:
    """What WeCom received from Siyu since the last look, one line each, for the demo's console:
    the cards and texts its app put on a member's phone (escalations, loss alerts) and the calls
    placed through the voice gateway. Nothing else in the demo shows them."""

    def __init__(self, corp_id: str, zone_of: Callable[[], str] = lambda: ZONE) -> None:
        self.corp_id = corp_id
        # the company's zone as it is now: an admin may change it during the demo (设置 → 时区)
        self.zone_of, self.zone = zone_of, ZONE
        self.messages = self.calls = 0  # how many of each were shown
        self.names = {s["userid"]: s["name"] for s in STAFF}
        self.phones = {"+86" + s["mobile"]: s["name"] for s in STAFF}

    async def lines(self, http: httpx.AsyncClient) -> list[str]:
        messages = (
            await http.get(f"/_emulator/corps/{self.corp_id}/app_messages", params={"after": self.messages})
        ).json()
        calls = (await http.get("/_emulator/voice/calls", params={"after": self.calls})).json()
        try:
            zone = await asyncio.to_thread(self.zone_of)
        except Exception:  # noqa: BLE001 - the database busy a moment: the zone as last read
            zone = self.zone
        out = []
        if zone != self.zone:
            from siyu.sla.models import DEFAULT_QUIET_HOURS

            start, end = DEFAULT_QUIET_HOURS
            out.append(f"时区已改为 {zone}：此后的时间，与电话的免打扰时段 {start}-{end}，都按该时区")
            self.zone = zone
        self.messages += len(messages)
        self.calls += len(calls)
        for m in messages:
            link = ""
            if m["msgtype"] == "textcard":
                said = m["payload"]["textcard"]["title"]  # as the phone shows it, cut where WeCom cuts
                link = _page_of(m["payload"]["textcard"].get("url", ""))
            elif m["msgtype"] == "text":  # a loss alert: its link as the phone shows it
                said, link = _as_shown(m["payload"]["text"]["content"])
            else:
                said = f"[{m['msgtype']}]"
            to = "、".join(self.names.get(u, u) for u in m["recipients"]) or "（无人收到）"
            dropped = "、".join(self.names.get(u, u) for u in m["dropped"])
            late = f"（超出企业微信的频率限制，没送到：{dropped}）" if dropped else ""
            if m.get("duplicate_of"):  # a retry of one that got through: WeCom's duplicate check
                to = "、".join(self.names.get(u, u) for u in str(m["payload"].get("touser", "")).split("|"))
                late, link = "（与先前一条相同，企业微信查重后未再送达）", ""
            # the link last, after two spaces: a terminal makes it one to click
            out.append(
                f"{_at(m['received_at'], zone)} 企业微信 → {to}：{said}{late}" + (f"  {link}" if link else "")
            )
        for c in calls:
            who = self.phones.get(c["called_number"], c["called_number"])
            out.append(f"{_at(c['received_at'], zone)} 语音电话 → {who}：{c['text']}")
        return out


LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)


def _as_shown(text: str) -> tuple[str, str]:
    """A text message as WeCom shows it, its HTML read (a link as its words, 张&amp;三 as 张&三),
    and the page its first link opens."""
    first = LINK.search(text)
    said = html.unescape(LINK.sub(lambda m: m.group(2), text))
    return said, _page_of(html.unescape(first.group(1))) if first else ""


def _page_of(url: str) -> str:
    """The page a card's link opens, without the sign-in through WeCom it goes by (which a
    browser beside the demo, signed in already, does not need) and the card's own number."""
    parts = urlsplit(url)
    target = parse_qs(parts.query).get("next", [""])[0]
    if not parts.path.startswith("/auth/wecom/") or not target.startswith("/"):
        return url
    return f"{parts.scheme}://{parts.netloc}{target}"


def _at(timestamp: float, zone: str) -> str:
    return datetime.fromtimestamp(timestamp, ZoneInfo(zone)).strftime("%H:%M:%S")


SEED = 2026  # the simulated world's: each demo tells the same story
FIRST_WAVE = 8


async def first_wave(world) -> None:
    """A first wave of customers, one every 0.3 s, so the UI has customers within seconds. They
    only scan: Siyu's worker starts a few seconds after its web server, and a customer who left
    or was deleted before it fetched them stayed （未命名） for good (an edit raced the channel's
    tags, a loss alert named 一位客户（…JF3h））."""
    weights, world.weights = world.weights, {"scan": 1.0}
    try:
        for _ in range(FIRST_WAVE):
            await world.step()
            await asyncio.sleep(0.3)
    finally:
        world.weights = weights


async def step(world, http: httpx.AsyncClient) -> None:
    """One thing happens in the simulated world. Customers scan the codes the corp has now: a
    channel made during the demo gets customers too, a stopped one (停用) no more."""
    ways = (await http.get(f"/_emulator/corps/{world.corp_id}/contact_ways")).json()
    if ways:  # (with none left, scans go on failing unseen rather than stopping the world)
        world.config_ids = [w["config_id"] for w in ways]
    await world.step()


async def _world(
    emulator_url: str, corp_id: str, config_ids: list[str], stop: asyncio.Event, zone_of: Callable[[], str]
) -> None:
    from siyu.emulator.world import World

    world = World(emulator_url, corp_id, seed=SEED, config_ids=config_ids)
    received = Received(corp_id, zone_of)
    http = httpx.AsyncClient(base_url=emulator_url, timeout=10)
    try:
        await first_wave(world)
        weights = {
            "scan": 0.33,
            "chat": 0.42,
            "group": 0.05,
            "group_members": 0.04,  # customers join, leave or are removed from a group
            "edit": 0.12,
            "customer_leaves": 0.05,
            "staff_deletes": 0.03,
        }
        world.weights = weights
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                await step(world, http)
                for line in await received.lines(http):
                    console.print(line, markup=False, highlight=False, soft_wrap=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 3.0)
    finally:
        await http.aclose()
        await world.close()


def _company_zone(settings: Settings, tenant_id: int) -> Callable[[], str]:
    """Reads the demo company's time zone as it is now (its admin may change it)."""
    from siyu.db import Database
    from siyu.sla.service import tenant_timezone

    db = Database(settings.sqlalchemy_url, settings.database_timeouts)

    def zone() -> str:
        with db.tenant_session(tenant_id) as s:
            return tenant_timezone(s)

    return zone


def banner(siyu_url: str, emulator_url: str, corp_id: str, now: datetime) -> list[str]:
    """What the demo prints once it runs. Calls keep to the default quiet hours in the
    company's zone, which for half the world's day is night in Shanghai: say so, or a demo
    shows cards and never a call."""
    from siyu.sla.calendar import quiet_until
    from siyu.sla.models import DEFAULT_QUIET_HOURS

    start, end = DEFAULT_QUIET_HOURS
    there = f"{now.astimezone(ZoneInfo(ZONE)):%H:%M} there now"
    if quiet_until(now, DEFAULT_QUIET_HOURS, ZONE):
        there += f", so the next ring at {end}"
    return [
        f"\n[bold green]Siyu demo is running:[/bold green] {siyu_url}",
        f"  log in as [bold]admin[/bold] / [bold]{PASSWORD}[/bold]  (also lisi = supervisor, "
        "zhangsan = agent, same password)",
        f"  WeCom emulator: {emulator_url}/_emulator/corps/{corp_id}",
        "  customers arrive through 4 channels and chat (会话存档); Ctrl-C stops everything",
        f"  calls (the last step) ring outside quiet hours, {start}-{end} {ZONE}, the demo company's"
        f" time: {there}",
        "  below: what WeCom receives from Siyu (app messages to staff, calls)\n",
    ]


# Left in the demo's folder: only a folder that has it (or an empty one) is emptied at start.
DEMO_MARK = ".siyu-demo"


DEFAULT_DATA_DIR = "data/demo"


def _is_demo_dir(data: Path) -> bool:
    """Empty, marked by an earlier demo, or the default folder as demos made it before the mark
    (its SQLite files and key only)."""
    if not data.is_dir():
        return False
    names = [p.name for p in data.iterdir()]
    if not names or DEMO_MARK in names:
        return True
    legacy = all(n == "secret.key" or n.startswith("siyu.db") for n in names)
    return legacy and data.resolve() == Path(DEFAULT_DATA_DIR).resolve()


def demo_env(data: Path, siyu_url: str, emulator_url: str) -> dict:
    """The environment of the demo's Siyu and emulator processes."""
    return {
        **os.environ,
        "SIYU_DATA_DIR": str(data),
        "SIYU_DATABASE_URL": "",
        "SIYU_PUBLIC_URL": siyu_url,
        "SIYU_WECOM_BASE_URL": emulator_url,
        "SIYU_WECOM_OAUTH_URL": emulator_url,
        "SIYU_WECOM_LOGIN_URL": emulator_url,
        # the last step's call rings the emulator's voice gateway (each staff member has a number)
        "SIYU_VOICE_PROVIDER": os.environ.get("SIYU_VOICE_PROVIDER", "emulator"),
        # the emulator archives at once: pulled every second and trusted a second after, steps
        # fire within a second or two of their time (WeCom's own archive trails by seconds)
        "SIYU_ARCHIVE_POLL_S": os.environ.get("SIYU_ARCHIVE_POLL_S", "1"),
        "SIYU_ARCHIVE_LAG_S": os.environ.get("SIYU_ARCHIVE_LAG_S", "1"),
        # the console is for what happens in the demo's world, not each process's schema check
        "SIYU_QUIET_LOGGERS": "alembic",
    }


def run_demo(port: int = 8000, emulator_port: int = 8081, data_dir: str = DEFAULT_DATA_DIR) -> None:
    if port == emulator_port:  # (it had started the emulator and seeded the folder first)
        raise SystemExit(f"--port and --emulator-port are both {port}: Siyu and the emulator need one each")
    for port_, option in ((port, "--port"), (emulator_port, "--emulator-port")):
        if not _port_free(port_):
            raise SystemExit(f"port {port_} is in use; choose another with {option}")
    data = Path(data_dir)
    if data.exists() and not _is_demo_dir(data):
        raise SystemExit(
            f"{data} is not empty and is not a demo's folder: the demo starts afresh by emptying its"
            " folder, so choose a new or empty one with --data-dir"
        )
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    (data / DEMO_MARK).write_text("made by `siyu demo`, which empties this folder each time it starts\n")
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    siyu_url = f"http://127.0.0.1:{port}"
    env = demo_env(data, siyu_url, emulator_url)
    settings = Settings(
        data_dir=data,
        database_url="",
        public_url=siyu_url,
        wecom_base_url=emulator_url,
        wecom_oauth_url=emulator_url,
        wecom_login_url=emulator_url,
    )
    procs: list[subprocess.Popen] = []
    try:
        console.print("starting the WeCom emulator ...")
        _spawn(["emulator", "--port", str(emulator_port), "--log-level", "warning"], env, procs)
        _wait_healthy(f"{emulator_url}/_emulator/health", procs[-1], "the emulator")
        corp_id, config_ids, tenant_id = asyncio.run(_seed(settings, emulator_url))
        console.print("starting Siyu ...")
        _spawn(["serve", "--port", str(port)], env, procs)
        _wait_healthy(f"{siyu_url}/healthz", procs[-1], "Siyu")
        for line in banner(siyu_url, emulator_url, corp_id, datetime.now(UTC)):
            console.print(line, soft_wrap=True)  # whole lines in a file or pipe too
        stop = asyncio.Event()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await _world(emulator_url, corp_id, config_ids, stop, _company_zone(settings, tenant_id))

        asyncio.run(main())
    finally:
        _stop(procs)
        console.print("demo stopped")
