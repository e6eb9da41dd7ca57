"""Siyu and the WeCom emulator, both on real ports, wired together as in production:
a corp in the emulator, the same corp connected as a tenant in Siyu, callbacks flowing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database, utcnow
from siyu.emulator.app import create_emulator_app
from siyu.intake.models import CallbackEvent
from siyu.notify.models import OutboxMessage
from siyu.runtime import Runtime
from siyu.sla.models import SlaEscalation
from siyu.tenancy.models import Tenant
from siyu.tenancy.service import CorpCredentials, save_tenant
from siyu.wecom.events import event_xml
from tests.support.servers import bound_socket, port_of, serve

DEPARTMENTS = [
    {"id": 1, "name": "总部", "parentid": 0, "department_leader": ["boss"]},
    {"id": 2, "name": "销售一部", "parentid": 1, "department_leader": ["lisi"]},
]
STAFF = [
    {"userid": "boss", "name": "王总", "department": [1], "mobile": "13800000000"},
    {"userid": "lisi", "name": "李四", "department": [2], "direct_leader": ["boss"], "mobile": "13800000001"},
    {
        "userid": "zhangsan",
        "name": "张三",
        "department": [2],
        "direct_leader": ["lisi"],
        "mobile": "13800000002",
    },
    {"userid": "wangwu", "name": "王五", "department": [2], "mobile": "13800000003"},
]


@dataclass
class Stack:
    siyu: str
    emulator: str
    emu: httpx.Client
    corp: dict
    tenant_id: int
    slug: str
    rt: Runtime
    state: object = None  # the emulator's own state: WeCom's side, as its admin console changes it

    @property
    def wecom(self):
        """The emulated corp (a department deleted there, which no control route does)."""
        return self.state.corps[self.corp_id]

    def sync(self) -> dict:
        """The staff sync, as the worker runs it."""
        from siyu.tenancy.tasks import sync_staff

        return asyncio.run(sync_staff(self.rt, self.tenant_id))

    @property
    def corp_id(self) -> str:
        return self.corp["corp_id"]

    def control(self, method: str, path: str, **kw) -> dict | list:
        r = self.emu.request(method, f"/_emulator{path}", **kw)
        assert r.status_code < 300, r.text
        return r.json()

    def corp_path(self, path: str) -> str:
        return f"/corps/{self.corp_id}{path}"

    def scan(self, config_id: str, name: str, **kw) -> dict:
        return self.control(
            "POST",
            self.corp_path("/scan"),
            json={"config_id": config_id, "customer": {"name": name}, "wait": True, **kw},
        )

    def welcome_messages(self) -> list[dict]:
        return self.control("GET", self.corp_path("/welcome_messages"))

    def app_messages(self) -> list[dict]:
        return self.control("GET", self.corp_path("/app_messages"))

    def session(self):
        return self.rt.db.tenant_session(self.tenant_id)

    def stored_event(self, xml: str) -> int:
        """A customer-added callback event stored as the intake stores one (before any worker
        claims it): its id."""
        with self.session() as s:
            event = CallbackEvent(
                kind="change_external_contact/add_external_contact",
                digest=hashlib.sha256(xml.encode()).hexdigest(),
                xml=xml,
            )
            s.add(event)
            s.flush()
            return event.id

    def added_event(self, ext: str) -> int:
        """The event of `ext` adding 张三, stored as the intake stores one: its id."""
        xml = event_xml(
            {
                "ToUserName": self.corp_id, "FromUserName": "sys", "CreateTime": 1764036000,
                "MsgType": "event", "Event": "change_external_contact",
                "ChangeType": "add_external_contact", "UserID": "zhangsan", "ExternalUserID": ext,
            }
        )  # fmt: skip
        return self.stored_event(xml)

    def event_statuses(self, ids: list[int]) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(CallbackEvent.status).where(CallbackEvent.id.in_(ids))))

    def given_up_events(self, *exts: str) -> list[int]:
        """Events of `exts` adding 张三 that the running worker gave up (WeCom answers 无权限
        until the test deletes its faults): their ids."""
        no_permission = {"corp_id": self.corp_id, "path": "/cgi-bin/externalcontact/get", "errcode": 60011}
        self.control("POST", "/faults", json={**no_permission, "times": 1000})
        ids = [self.added_event(ext) for ext in exts]
        with self.session() as s:  # tried for two days already: the worker's next try is their last
            s.execute(
                update(CallbackEvent)
                .where(CallbackEvent.id.in_(ids))
                .values(attempts=30, received_at=utcnow() - timedelta(days=2), due_at=utcnow())
            )
        wait_for(lambda: self.event_statuses(ids) == ["failed"] * len(ids))
        return ids

    def enable_archive(self) -> dict:
        """会话存档 on, as an admin sets it up: a key pair generated in Siyu, its public half
        uploaded to WeCom; the archive callback Token / EncodingAESKey Siyu generated pasted,
        with the archive callback URL, into the 会话存档 app's 接收事件服务器 form (WeCom
        checks the URL then). Answers {url, token, encoding_aes_key}."""
        from siyu.conversations.service import add_archive_key
        from siyu.tenancy.models import Tenant
        from siyu.tenancy.service import archive_callback_pair, save_archive_settings
        from siyu.wecom.archive import generate_key_pair

        private_pem, public_pem = generate_key_pair()
        self.control(
            "POST", self.corp_path("/archive/keys"), json={"publickey_ver": 1, "public_key_pem": public_pem}
        )
        with self.session() as s:
            tenant = s.get(Tenant, self.tenant_id)
            save_archive_settings(s, self.rt.box, tenant, "http", self.corp["archive_secret"])
            add_archive_key(s, self.rt.box, 1, private_pem, public_pem)
            token, aes_key = archive_callback_pair(tenant, self.rt.box)
        pair = {
            "url": self.rt.settings.archive_callback_url(self.slug),
            "token": token,
            "encoding_aes_key": aes_key,
        }
        self.control(
            "PATCH",
            self.corp_path(""),
            json={
                "archive_callback_url": pair["url"],
                "archive_token": token,
                "archive_encoding_aes_key": aes_key,
            },
        )
        check = self.control("POST", self.corp_path("/archive/verify_callback"))
        assert check["ok"], check
        return pair

    def chat(self, sender: str, to: str, text: str, **extra) -> dict:
        """A message in the archive, as if typed in WeCom (WeCom then sends msgaudit_notify)."""
        body = {"from": sender, "tolist": [to], "msgtype": "text", "text": {"content": text}, **extra}
        return self.control("POST", self.corp_path("/archive/messages"), json=body)["messages"][0]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05):
    """Poll until `predicate()` is truthy; return its value or fail with what it last gave."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


def forget_pending(db: Database, tenant_id: int) -> None:
    """At a test's end: its tenant's work still queued is left undone for good. The database
    is shared by the whole run, and a later test's worker would otherwise spend its time
    retrying it against an emulator that is gone (or a tenant it cannot decrypt). Its SLA
    steps still to fire too: a later test's worker, its clock moved on, fired them, and their
    calls rang that test's voice gateway (an end-to-end test took one for its own)."""
    with db.tenant_session(tenant_id) as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.status == "pending").values(status="skipped"))
        s.execute(update(CallbackEvent).where(CallbackEvent.status == "pending").values(status="failed"))
        s.execute(
            update(SlaEscalation)
            .where(SlaEscalation.status == "pending")
            .values(status="cancelled", note="the test ended")
        )


def newest_tenant(db: Database) -> int:
    with db.system_session() as s:
        return s.scalar(select(func.max(Tenant.id))) or 0


def retire_tenants_after(db: Database, newest: int) -> None:
    """Every tenant made after `newest` (by a test now over) is left with nothing to do: its
    queued work forgotten, its archive no longer pulled. Every later test's worker serves every
    tenant in the shared database, and the archive pulls, sends and steps of a few hundred
    tenants of tests gone by, each failing against that test's emulator, had slowed its own
    work till waits on a busy machine ran out."""
    with db.system_session() as s:
        made = list(s.scalars(select(Tenant.id).where(Tenant.id > newest)))
        if made:
            s.execute(update(Tenant).where(Tenant.id.in_(made)).values(archive_mode="off"))
    for tenant_id in made:
        forget_pending(db, tenant_id)


def connect_corp(rt: Runtime, corp: dict, name: str) -> tuple[int, str]:
    """Connect an emulator corp (as POST /_emulator/corps answered it) to Siyu as a tenant
    under a fresh slug: (tenant id, slug)."""
    creds = CorpCredentials.of_emulator_corp(corp)
    with rt.db.system_session() as s:
        tenant = save_tenant(s, rt.box, name, creds, slug="t" + secrets.token_hex(4))
        return tenant.id, tenant.slug


def second_tenant(st: Stack, name: str) -> tuple[int, str, str]:
    """Another corp in the stack's emulator, connected as a tenant of its Siyu:
    (tenant id, slug, corp id)."""
    corp = st.control("POST", "/corps", json={"name": name, "departments": DEPARTMENTS, "staff": STAFF})
    tenant_id, slug = connect_corp(st.rt, corp, name)
    return tenant_id, slug, corp["corp_id"]


@contextlib.contextmanager
def stack(
    settings: Settings,
    db: Database,
    serve_siyu: bool = True,
    departments: list[dict] = DEPARTMENTS,
    staff: list[dict] = STAFF,
    **emulator_overrides,
) -> Iterator[Stack]:
    """`serve_siyu=False`: the emulator and the tenant only, for a test that runs Siyu's
    workers itself (no worker of the stack's own takes its rows first). `departments`, `staff`:
    the corp's directory in WeCom."""
    emulator_socket, siyu_socket = bound_socket(), bound_socket()
    emu_url = f"http://127.0.0.1:{port_of(emulator_socket)}"
    emu_app = create_emulator_app(public_url=emu_url, **{"retry_delay_s": 0.05, **emulator_overrides})
    with (
        serve(emu_app, emulator_socket),
        contextlib.closing(siyu_socket),  # not served when serve_siyu is False
        httpx.Client(base_url=emu_url, timeout=30) as emu,
    ):
        made = {"name": "示例科技", "departments": departments, "staff": staff}
        r = emu.post("/_emulator/corps", json=made)
        assert r.status_code == 201, r.text
        corp = r.json()
        settings = settings.model_copy(
            update={
                "public_url": f"http://127.0.0.1:{port_of(siyu_socket)}",
                "wecom_base_url": emu_url,
                "wecom_oauth_url": emu_url,
                "wecom_login_url": emu_url,
                "embedded_worker": True,
            }
        )
        rt = Runtime.create(settings, db)
        tenant_id, slug = connect_corp(rt, corp, "示例科技")
        if not serve_siyu:
            try:
                yield Stack("", emu_url, emu, corp, tenant_id, slug, rt, emu_app.state.emulator.state)
            finally:
                forget_pending(db, tenant_id)
            return
        with serve(create_app(settings, rt), siyu_socket) as siyu_url:
            r = emu.patch(
                f"/_emulator/corps/{corp['corp_id']}", json={"callback_url": settings.callback_url(slug)}
            )
            assert r.status_code == 200, r.text
            try:
                yield Stack(siyu_url, emu_url, emu, corp, tenant_id, slug, rt, emu_app.state.emulator.state)
            finally:
                forget_pending(db, tenant_id)
