"""设置 saved by two admins at once, and a company name longer than its column."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from siyu.emulator import create_emulator_app
from siyu.runtime import Runtime
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import SettingChange, Tenant
from tests.support.servers import serve
from tests.support.signed_in import SignedIn


@pytest.fixture(scope="module")
def emu_url():
    with serve(create_emulator_app(retry_delay_s=0.05, callback_timeout_s=2.0)) as url:
        yield url


@dataclass
class Corp:
    rt: Runtime
    tenant_id: int
    slug: str
    corp: dict
    emu: httpx.Client

    def admin(self, name: str = "管理员", role: str = "admin", staff=None) -> SignedIn:
        return SignedIn(self.rt, self.tenant_id, role, staff, name)

    def session(self):
        return self.rt.db.tenant_session(self.tenant_id)


@pytest.fixture
def corp(db, settings, emu_url):
    s2 = settings.model_copy(update={"wecom_base_url": emu_url})
    rt = Runtime.create(s2, db)
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        made = emu.post(
            "/_emulator/corps",
            json={"name": "甲公司", "staff": [{"userid": "zhangsan", "name": "张三", "department": [1]}]},
        )
        assert made.status_code == 201, made.text
        data = made.json()
        creds = tenancy.CorpCredentials.of_emulator_corp(data)
        with db.system_session() as s:
            t = tenancy.save_tenant(s, rt.box, "甲公司", creds, slug="h" + secrets.token_hex(4))
            tenant_id, slug = t.id, t.slug
        yield Corp(rt, tenant_id, slug, data, emu)
        asyncio.run(rt.clients.aclose())


def _form(corp, **kw):
    base = {"name": "甲公司", "corp_id": corp.corp["corp_id"], "agent_id": str(corp.corp["agent_id"])}
    return {**base, **kw}


def test_two_admins_saving_the_default_welcome_at_once_keep_a_true_history(corp, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's write lock to line the two saves up")
    wang, li = corp.admin("王五"), corp.admin("李四")
    answers: dict[str, int] = {}

    def save(who, name, text):
        answers[name] = who("POST", "/setup/welcome", {"welcome_text": text}).status_code

    # another writer (the worker, say) holds the database for a moment: both saves read the
    # text before, then wait to write, one after the other
    other = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
    other.execute("BEGIN IMMEDIATE")
    threads = [
        threading.Thread(target=save, args=(wang, "王五", "{name}您好，我是王五")),
        threading.Thread(target=save, args=(li, "李四", "{name}您好，我是李四")),
    ]
    for t in threads:
        t.start()
    time.sleep(1.5)
    other.rollback()
    other.close()
    for t in threads:
        t.join(30)
    assert answers == {"王五": 303, "李四": 303}

    with corp.session() as s:
        now = s.get(Tenant, corp.tenant_id).welcome_text
        rows = list(
            s.scalars(
                select(SettingChange)
                .where(SettingChange.setting == "welcome_text")
                .order_by(SettingChange.id)
            )
        )
    history = [(r.old_value, r.new_value, r.changed_by) for r in rows]
    assert len(rows) == 2 and rows[-1].new_value == now, history
    # the later change replaced the earlier one's text, not the empty text both had read
    assert rows[1].old_value == rows[0].new_value, history


def test_a_company_name_longer_than_the_column_is_refused_clearly(corp):
    """tenants.name is VARCHAR(200): a longer name typed on 设置 had been saved whole on SQLite
    and was a 500 on PostgreSQL; neither said 企业名称 is too long."""
    admin = corp.admin("王五")
    r = admin("POST", "/setup", _form(corp, name="长" * 201))
    with corp.session() as s:
        name = s.get(Tenant, corp.tenant_id).name
    assert r.status_code == 422 and "企业名称" in r.text, (r.status_code, len(name))
    assert name == "甲公司"


def test_right_credentials_are_saved_while_wecom_limits_the_follow_list(corp):
    """/setup re-saved while WeCom limits the call that tells the 客户联系 Secret from the archive's:
    the limit says nothing of the Secret, and the save goes through (it had been refused)."""
    admin = corp.admin("王五")
    path = "/cgi-bin/externalcontact/get_follow_user_list"
    fault = {"corp_id": corp.corp["corp_id"], "path": path, "errcode": 45009, "times": 1000}
    assert corp.emu.post("/_emulator/faults", json=fault).status_code < 300
    try:
        started = time.monotonic()
        # the admin only changes the company's name and AgentId stays right: every secret is right
        r = admin("POST", "/setup", _form(corp, name="甲公司（华东）"))
        took = time.monotonic() - started
    finally:
        corp.emu.delete("/_emulator/faults")
    with corp.session() as s:
        name = s.get(Tenant, corp.tenant_id).name
    shown = r.text.split('id="setup-error">', 1)[-1].split("</p>", 1)[0] if r.status_code != 303 else ""
    assert (r.status_code, name) == (303, "甲公司（华东）"), (r.status_code, round(took, 1), shown)


def _drawn_version(page: httpx.Response) -> str:
    form = page.text.split('action="/setup" class="stack"', 1)[1]
    return form.split('name="version" value="', 1)[1].split('"', 1)[0]


def test_an_old_credentials_form_does_not_undo_another_admins_save(corp):
    """王五 opens 设置; meanwhile 李四 renames the company. 王五 then saves his form, which still
    says the old name: it had been saved over 李四's, without a word. Now it is refused and the
    page shows what is stored; saved again from that page, it goes through."""
    wang, li = corp.admin("王五"), corp.admin("李四")
    wangs = _drawn_version(wang("GET", "/setup"))
    lis = _drawn_version(li("GET", "/setup"))
    assert li("POST", "/setup", _form(corp, name="甲公司（华东）", version=lis)).status_code == 303
    r = wang("POST", "/setup", _form(corp, version=wangs))
    with corp.session() as s:
        name = s.get(Tenant, corp.tenant_id).name
    assert name == "甲公司（华东）", "王五's old form undid 李四's new company name"
    assert r.status_code == 409 and "另一位管理员" in r.text, r.status_code
    assert 'value="甲公司（华东）"' in r.text  # the page shows what is stored now
    again = wang("POST", "/setup", _form(corp, name="甲公司（总部）", version=_drawn_version(r)))
    with corp.session() as s:
        assert (again.status_code, s.get(Tenant, corp.tenant_id).name) == (303, "甲公司（总部）")


def test_a_credentials_form_saved_twice_by_a_double_click_is_saved_not_refused(corp):
    admin = corp.admin("王五")
    form = _form(corp, name="甲公司（华东）", version=_drawn_version(admin("GET", "/setup")))
    assert admin("POST", "/setup", form).status_code == 303
    assert admin("POST", "/setup", form).status_code == 303  # the same values: nobody's undone


def test_a_credentials_form_with_a_version_siyu_never_gave_saves_nothing(corp):
    r = corp.admin("王五")("POST", "/setup", _form(corp, name="甲公司（华东）", version="drop table"))
    with corp.session() as s:
        name = s.get(Tenant, corp.tenant_id).name
    assert (r.status_code, name) == (422, "甲公司"), r.status_code
    assert "版本不是 Siyu 给出的" in r.text
