"""设置's company settings say who last changed them and when: the default welcome text and the
time zone, which any admin may change; the zone's last change also says the zone before it,
since past days are read in the zone as it is now. Another tenant's settings say nothing of it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from siyu.tenancy.models import Tenant
from tests.sla.conftest import Wait, local_tenant
from tests.support.signed_in import SignedIn
from tests.support.stack import forget_pending

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def tenants(db, settings) -> Iterator[tuple[Wait, Wait]]:
    ours, other = (
        Wait(*local_tenant(db, settings), datetime(2026, 12, 6, 10, 5, tzinfo=SHANGHAI)) for _ in "ab"
    )
    for w in (ours, other):
        w.clock(0)
    yield ours, other
    for w in (ours, other):
        forget_pending(db, w.tenant_id)


def _as(w: Wait, name: str):
    """A call through the app at Siyu's clock, as the admin `name` of the tenant, signed in."""
    person = SignedIn(w.rt, w.tenant_id, "admin", None, name)
    return lambda method, path, **form: person(method, path, form if method == "POST" else None)


def _said(page: str, id_: str) -> str | None:
    found = re.search(rf'id="{id_}">([^<]*)<', page)
    return found[1] if found else None


def test_who_changed_the_welcome_and_the_zone_and_when_is_on_the_setup_page_and_in_me(tenants):
    w, other = tenants
    zhang, li, wang = _as(w, "张三"), _as(w, "李四"), _as(w, "王五")
    assert _said(zhang("GET", "/setup").text, "welcome-changed") is None  # never changed

    assert zhang("POST", "/setup/welcome", welcome_text="{name}您好").status_code == 303
    page = wang("GET", "/setup").text
    assert _said(page, "welcome-changed") == "张三 2026-12-06 10:05 修改"
    assert _said(page, "timezone-changed") is None
    assert wang("GET", "/api/v1/me").json()["tenant"]["timezone_changed"] is None

    w.clock(3600)  # 11:05 in Shanghai
    refused = li("POST", "/setup/timezone", timezone="Asia/Tokio")
    assert refused.status_code == 422 and _said(refused.text, "timezone-changed") is None
    assert li("POST", "/setup/timezone", timezone="Asia/Tokyo").status_code == 303
    page = wang("GET", "/setup").text
    # times in the zone as it is now: 11:05 in Shanghai is 12:05 in Tokyo
    assert _said(page, "timezone-changed").startswith(
        "时区由 Asia/Shanghai 改为 Asia/Tokyo，李四 2026-12-06 12:05。"
    )
    assert "过去各天的数字" in _said(page, "timezone-changed")
    assert _said(page, "welcome-changed") == "张三 2026-12-06 11:05 修改"
    me = wang("GET", "/api/v1/me").json()["tenant"]
    assert me["timezone"] == "Asia/Tokyo"
    changed = me["timezone_changed"]
    # (to the minute, as the page says it: Siyu's clock runs on with the real one, and a busy
    # machine had let a second pass before the POST)
    assert changed.pop("changed_at").startswith("2026-12-06T03:05:")
    assert changed == {"previous": "Asia/Shanghai", "timezone": "Asia/Tokyo", "changed_by": "李四"}

    # saved again unchanged: who last changed them stays
    w.clock(7200)
    assert wang("POST", "/setup/timezone", timezone="Asia/Tokyo").status_code == 303
    assert wang("POST", "/setup/welcome", welcome_text=" {name}您好 ").status_code == 303
    page = wang("GET", "/setup").text
    assert "李四 2026-12-06 12:05" in _said(page, "timezone-changed")
    assert _said(page, "welcome-changed") == "张三 2026-12-06 11:05 修改"
    # cleared: a change too
    assert wang("POST", "/setup/welcome", welcome_text="").status_code == 303
    assert _said(zhang("GET", "/setup").text, "welcome-changed") == "王五 2026-12-06 13:05 修改"
    # read by who made the change, it is theirs: their own name was taken for another's doing
    assert _said(wang("GET", "/setup").text, "welcome-changed") == "你 2026-12-06 13:05 修改"
    assert "，你 2026-12-06 12:05。" in _said(li("GET", "/setup").text, "timezone-changed")

    admin = _as(other, "赵六")
    page = admin("GET", "/setup").text
    assert _said(page, "welcome-changed") is None and _said(page, "timezone-changed") is None
    assert _said(page, "timezone-current") == "Asia/Shanghai"
    assert admin("GET", "/api/v1/me").json()["tenant"]["timezone_changed"] is None
    with other.rt.db.system_session() as s:
        assert s.get(Tenant, other.tenant_id).welcome_text == ""
