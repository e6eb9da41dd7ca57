"""The archive page and the worker agree on who is archived when WeCom's permit list spells a
userid in other letter case than the directory (WeCom's userids are case-insensitive; the
worker compares them so: siyu.conversations.service.settle_unarchived)."""

from __future__ import annotations

import time
import uuid

import httpx

from siyu.conversations import service as conversations
from siyu.customers import service as customers
from siyu.runtime import Runtime
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Tenant
from tests.web.conftest import DEPARTMENTS, PASSWORD, _contact, _make_tenant, login

STAFF = [
    {"userid": "ZhangSan", "name": "张三", "department": [3]},
    {"userid": "zhaoliu", "name": "赵六", "department": [4]},
]


def test_a_member_the_worker_counts_archived_is_shown_archived_with_their_declining_customer(
    db, web_settings, siyu, emu_url
):
    rt = Runtime.create(web_settings, db)
    sfx = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        t = _make_tenant(db, rt, emu, "permitcase", staff=STAFF)
    now = int(time.time())
    ext = f"wmCASE{sfx}"
    with db.tenant_session(t.id) as s:
        tenancy.save_directory(s, DEPARTMENTS, STAFF)
        admin = f"admin-case-{sfx}"
        tenancy.add_person(s, admin, "管理员", "admin", PASSWORD)
        customers.record_added(
            s,
            {"UserID": "ZhangSan", "ExternalUserID": ext, "CreateTime": now - 60, "State": ""},
            _contact(ext, "吴女士", "ZhangSan", now - 60),
        )
        tenancy.save_archive_settings(s, rt.box, s.get(Tenant, t.id), "http", t.corp["archive_secret"])
    corp = t.corp["corp_id"]
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        # WeCom answers the permit list in lower case
        assert (
            emu.put(f"/_emulator/corps/{corp}/archive/permit", json={"userids": ["zhangsan"]}).status_code
            == 200
        )
        r = emu.post(
            f"/_emulator/corps/{corp}/archive/agree",
            json={"userid": "ZhangSan", "external_userid": ext, "agree": False},
        )
        assert r.status_code in (200, 201), r.text
    # the worker counts 张三 archived: nothing of his is settled as off the archive
    with db.tenant_session(t.id) as s:
        assert conversations.newly_unarchived(s, {"zhangsan"}) == ["zhaoliu"]

    client = login(siyu, admin)
    try:
        page = client.get("/setup/archive")
    finally:
        client.close()
    assert page.status_code == 200
    section = page.text.split('id="permit"', 1)[1]
    permitted = section.split('id="permit-users"', 1)[1].split("</p>", 1)[0]
    shown = (permitted, "吴女士" in section, section.split('id="not-permitted"', 1)[-1][:200])
    assert "张三" in permitted, shown
    assert (
        'id="not-permitted"' not in section
        or "张三" not in section.split('id="not-permitted"', 1)[1].split("</p>", 1)[0]
    )
    assert "吴女士" in section, "张三's customer who said no is not listed"
