"""Fixtures for the web UI and the JSON API: a real WeCom emulator, Siyu under uvicorn on a
known port (its public_url must be right for OAuth redirects), and two seeded tenants.

Tenant A ("甲") has a team: 王五 leads 销售部 (and so its sub-department 销售一组, where
张三 works) and is 李四's direct leader; 赵六 is outside his team. Tenant B ("乙") exists to
prove that A never sees it. Both are corps in the emulator, so channels, QR codes, staff
sync and OAuth run against it for real. Everything is seeded once per test run through
the services (save_tenant, save_directory, add_person, record_added, create_channel).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from siyu.app import create_app
from siyu.config import Settings
from siyu.customers import channels as channel_service
from siyu.customers import service as customers
from siyu.emulator import create_emulator_app
from siyu.runtime import Runtime
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Staff, Tenant
from tests.support import TEST_SECRET_KEY
from tests.support.servers import bound_socket, port_of, serve

PASSWORD = "pass-word-123"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


# WeCom's own browser on a phone: WeCom's OAuth signs in only there (elsewhere Siyu's WeCom
# sign-in goes by QR scan)
IN_WECOM = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Mobile/15E148 wxwork/4.1.26 MicroMessenger/7.0.1 Language/zh ColorScheme/Light"
)


@pytest.fixture(scope="session")
def browser_context_args():
    # Not built on the plugin's own (it needs the session-wide Playwright; see test_browser.py).
    return {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "locale": "zh-CN",
    }


@pytest.fixture
def wecom_page(browser, browser_context_args):
    """A page in WeCom's own browser on a phone, where a card's link is opened."""
    context = browser.new_context(**browser_context_args, user_agent=IN_WECOM)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="package")
def emu_url():
    with serve(create_emulator_app(retry_delay_s=0.05, callback_timeout_s=2.0)) as url:
        yield url


@pytest.fixture(scope="package")
def siyu_socket():
    """Held from before the settings name Siyu's URL until Siyu serves on it."""
    with closing(bound_socket()) as sock:
        yield sock


@pytest.fixture(scope="package")
def web_settings(tmp_path_factory, database_url, emu_url, siyu_socket) -> Settings:
    port = port_of(siyu_socket)
    return Settings(
        data_dir=tmp_path_factory.mktemp("web"),
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        public_url=f"http://127.0.0.1:{port}",
        auto_migrate=False,
        embedded_worker=False,
        staff_sync_interval_s=0,
        wecom_base_url=emu_url,
        wecom_oauth_url=emu_url,
        wecom_login_url=emu_url,
    )


@pytest.fixture(scope="package")
def siyu(web_settings, db, siyu_socket):
    """Siyu's base URL (its public_url)."""
    app = create_app(web_settings, Runtime.create(web_settings, db))
    with serve(app, siyu_socket) as url:
        yield url


# ---------------------------------------------------------------- the seeded world

DEPARTMENTS = [
    {"id": 1, "name": "总部", "parentid": 0},
    {"id": 2, "name": "销售部", "parentid": 1, "department_leader": ["wangwu"]},
    {"id": 3, "name": "销售一组", "parentid": 2},
    {"id": 4, "name": "客服部", "parentid": 1},
]
STAFF = [
    {"userid": "wangwu", "name": "王五", "department": [2]},
    {"userid": "zhangsan", "name": "张三", "department": [3]},
    {"userid": "lisi", "name": "李四", "department": [4], "direct_leader": ["wangwu"]},
    {"userid": "zhaoliu", "name": "赵六", "department": [4]},
    {"userid": "qianqi", "name": "钱七", "department": [4]},  # in WeCom, not yet synced to Siyu
    {"userid": "sunba", "name": "孙八", "department": [4]},  # synced, then left
]
TAG_GROUPS = [
    {
        "group_id": "grp1",
        "group_name": "客户等级",
        "tag": [{"id": "tagVIP", "name": "VIP"}, {"id": "tagNEW", "name": "新客"}],
    }
]


@dataclass
class Tenant_:
    id: int
    slug: str
    corp: dict
    logins: dict[str, str] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)


@dataclass
class World:
    a: Tenant_
    b: Tenant_
    emu_url: str


def _contact(ext: str, name: str, userid: str, at: int, remark="", mobiles=(), tags=(), state=""):
    return {
        "external_contact": {"external_userid": ext, "name": name, "type": 1, "gender": 2, "avatar": ""},
        "follow_user": [
            {
                "userid": userid,
                "remark": remark,
                "description": "",
                "createtime": at,
                "remark_mobiles": list(mobiles),
                "add_way": 1,
                "oper_userid": ext,
                "state": state,
                "tags": [
                    {"group_name": "客户等级", "tag_name": t, "tag_id": f"tag{t}", "type": 1} for t in tags
                ],
            }
        ],
    }


def remove_customers(db, tenant_id: int, ids: list[int]) -> None:
    """Customers a test added to the package's world, gone again with their follows, tags and
    timelines: the other tests count the world's customers."""
    from sqlalchemy import delete

    from siyu.customers.models import Customer, Follow, FollowTag, TimelineEvent

    with db.tenant_session(tenant_id) as s:
        follows = select(Follow.id).where(Follow.customer_id.in_(ids))
        s.execute(delete(FollowTag).where(FollowTag.follow_id.in_(follows)))
        for table in (TimelineEvent, Follow):
            s.execute(delete(table).where(table.customer_id.in_(ids)))
        s.execute(delete(Customer).where(Customer.id.in_(ids)))


def _add(s, tenant, ext, name, userid, at, **kw) -> int:
    fields = {"UserID": userid, "ExternalUserID": ext, "CreateTime": at, "State": kw.get("state", "")}
    return customers.record_added(s, fields, _contact(ext, name, userid, at, **kw)).id


def _make_tenant(db, rt, emu: httpx.Client, label: str, staff=STAFF) -> Tenant_:
    corp = emu.post(
        "/_emulator/corps", json={"name": f"{label}公司", "departments": DEPARTMENTS, "staff": staff}
    )
    assert corp.status_code == 201, corp.text
    corp = corp.json()
    creds = tenancy.CorpCredentials.of_emulator_corp(corp)
    with db.system_session() as s:
        t = tenancy.save_tenant(s, rt.box, f"{label}公司", creds, slug=f"{label}-{uuid.uuid4().hex[:8]}")
        tenant_id, slug = t.id, t.slug
    return Tenant_(tenant_id, slug, corp)


def _in_thread(coro_fn) -> None:
    """asyncio.run in a thread of its own: Playwright's sync API keeps a loop in this one."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coro_fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _seed(db, rt, emu: httpx.Client, emu_url: str) -> World:
    sfx = uuid.uuid4().hex[:6]
    a = _make_tenant(db, rt, emu, "jia")
    b = _make_tenant(db, rt, emu, "yi")
    synced = [s for s in STAFF if s["userid"] != "qianqi"]
    for t in (a, b):
        with db.tenant_session(t.id) as s:
            tenancy.save_directory(s, DEPARTMENTS, synced)
            tags = customers.upsert_tags(s, TAG_GROUPS)
            t.tags = {tag.name: tag.id for tag in tags.values()}
    with db.tenant_session(a.id) as s:  # 孙八 left the company
        tenancy.save_directory(s, DEPARTMENTS, [x for x in synced if x["userid"] != "sunba"])

    async def make_channels():
        try:
            for t, name in ((a, "门店海报"), (b, "乙方海报")):
                spec = channel_service.ChannelSpec(
                    name=name, staff_userids=["zhangsan", "lisi"], tag_ids=["tagNEW"]
                )
                t.channels[name] = await channel_service.create_channel(rt, t.id, spec)
        finally:
            await rt.clients.aclose()

    _in_thread(make_channels)
    now = int(time.time())
    day = 86400
    with db.tenant_session(a.id) as s:
        tenant = s.get(Tenant, a.id)
        from siyu.customers.models import Channel

        state = s.get(Channel, a.channels["门店海报"]).state
        a.customers["王女士"] = _add(
            s, tenant, "wmA1" + sfx, "王女士", "zhangsan", now - 3600, remark="王姐-报价",
            mobiles=["13800001111"], tags=["VIP"], state=state,
        )  # fmt: skip
        a.customers["陈先生"] = _add(s, tenant, "wmA2" + sfx, "陈先生", "lisi", now - 3 * day, state=state)
        a.customers["刘总"] = _add(
            s, tenant, "wmA3" + sfx, "刘总", "zhaoliu", now - 10 * day, remark="大客户"
        )
        a.customers["孙小姐"] = _add(
            s, tenant, "wmA4" + sfx, "孙小姐", "zhangsan", now - 2 * day, state=state
        )
        # lost 3 h ago, before the question the chats have her waiting on since 2 h ago (a loss
        # after it settles what she said until then: her question would owe nothing)
        customers.record_follow_ended(
            s, {"UserID": "zhangsan", "ExternalUserID": "wmA4" + sfx, "CreateTime": now - 3 * 3600}, "lost"
        )
        for role, (login, name, userid) in {
            "admin": (f"admin-{sfx}", "甲管理员", None),
            "supervisor": (f"wangwu-{sfx}", "王五", "wangwu"),
            "agent": (f"zhangsan-{sfx}", "张三", "zhangsan"),
        }.items():
            tenancy.add_person(s, login, name, role, PASSWORD, userid)
            a.logins[role] = login
    with db.tenant_session(b.id) as s:
        tenant = s.get(Tenant, b.id)
        b.customers["乙方客户"] = _add(
            s, tenant, "wmB1" + sfx, "乙方客户", "zhangsan", now - 7200, remark="乙备注"
        )
        tenancy.add_person(s, f"admin-b-{sfx}", "乙管理员", "admin", PASSWORD)
        b.logins["admin"] = f"admin-b-{sfx}"
    return World(a, b, emu_url)


@pytest.fixture(scope="package")
def world(db, web_settings, emu_url, siyu) -> World:
    rt = Runtime.create(web_settings, db)
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        return _seed(db, rt, emu, emu_url)


# ---------------------------------------------------------------- HTTP helpers

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(base_url: str, login_name: str, password: str = PASSWORD) -> httpx.Client:
    """A client signed in through the login form; `.csrf` holds the session's CSRF token."""
    client = httpx.Client(base_url=base_url, timeout=10)
    page = client.get("/login")
    token = _CSRF_FIELD.search(page.text).group(1)
    r = client.post(
        "/login", data={"login": login_name, "password": password, "csrf_token": token, "next": "/"}
    )
    assert r.status_code == 303, r.text
    client.csrf = client.get("/api/v1/me").json()["csrf_token"]
    return client


@pytest.fixture
def as_role(siyu, world):
    clients: list[httpx.Client] = []

    def make(role: str, tenant: str = "a") -> httpx.Client:
        t = world.a if tenant == "a" else world.b
        client = login(siyu, t.logins[role])
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


# ---------------------------------------------------------------- channels


@pytest.fixture
def new_channel(as_role):
    """`make(client, name, staff_userids)`: a channel made through the API (its JSON), disabled
    again at the test's end (after anything the test undid, a leaver taken back)."""
    made: list[tuple[httpx.Client, int]] = []

    def make(client: httpx.Client, name: str, staff_userids: list[str]) -> dict:
        body = {"name": name, "staff_userids": staff_userids}
        r = client.post("/api/v1/channels", json=body, headers={"X-CSRF-Token": client.csrf})
        assert r.status_code == 201, r.text
        made.append((client, r.json()["id"]))
        return r.json()

    yield make
    for client, channel_id in made:
        client.post(f"/api/v1/channels/{channel_id}/disable", headers={"X-CSRF-Token": client.csrf})


@contextmanager
def zhaoliu_left(world, db):
    """赵六 leaves the company: WeCom's directory, then the staff sync marks him inactive; back
    at the end, as the other tests of the world expect him."""
    corp = f"{world.emu_url}/_emulator/corps/{world.a.corp['corp_id']}"
    assert httpx.delete(f"{corp}/staff/zhaoliu").status_code == 200
    with db.tenant_session(world.a.id) as s:
        s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).active = False
    try:
        yield
    finally:
        zhaoliu = {"userid": "zhaoliu", "name": "赵六", "department": [4]}
        assert httpx.post(f"{corp}/staff", json=zhaoliu).status_code == 201
        with db.tenant_session(world.a.id) as s:
            s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).active = True


@contextmanager
def wecom_fault(world, path: str, **fault):
    """The emulator answers tenant A's calls to `path` so (errcode=, delay_s=) until the end."""
    faults = f"{world.emu_url}/_emulator/faults"
    r = httpx.post(faults, json={"corp_id": world.a.corp["corp_id"], "path": path, **fault})
    assert r.status_code == 201, r.text
    try:
        yield faults
    finally:
        httpx.delete(faults)


# ---------------------------------------------------------------- browser tests


# pytest-playwright keeps Playwright (and the event loop its sync API runs in this thread)
# for the whole session, which breaks later tests that call asyncio.run(). Here it lives for
# each module only; `page`, `context` and the launch/context args fixtures are the plugin's.
@pytest.fixture(scope="module")
def playwright():
    pw = sync_playwright().start()
    yield pw
    pw.stop()


@pytest.fixture(scope="module")
def browser_type(playwright, browser_name):
    return getattr(playwright, browser_name or "chromium")


@pytest.fixture(scope="module")
def launch_browser(browser_type_launch_args, browser_type):
    def launch(**kwargs):
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="module")
def browser(launch_browser):
    browser = launch_browser()
    yield browser
    browser.close()


def sign_in(page, base_url: str, login: str, next_path: str) -> None:
    """Through the login form, landing on `next_path`."""
    page.goto(f"{base_url}/login?next={next_path}")
    page.get_by_label("账号").fill(login)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()


def fits_the_phone(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page is {width}px wide on a 390px phone"
