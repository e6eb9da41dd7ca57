"""The tenant's time zone, set on 设置 → 时区 or with `siyu tenant set-timezone`: refused unless
an IANA name, admins only, and followed at once by the board's and the home page's 今天 and by
the business hours of waits still open; another tenant keeps its own."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from siyu.customers.models import Channel, Customer, Follow
from siyu.sla.models import SlaEscalation
from siyu.tenancy.models import Tenant
from tests.sla.conftest import Wait, local_tenant, now_ms
from tests.support.signed_in import SignedIn
from tests.support.stack import forget_pending

SHANGHAI, TOKYO = ZoneInfo("Asia/Shanghai"), ZoneInfo("Asia/Tokyo")


@pytest.fixture
def local(db, settings) -> Iterator[Wait]:
    rt, tenant_id = local_tenant(db, settings)
    yield Wait(rt, tenant_id, now_ms(rt))
    forget_pending(db, tenant_id)


def _call(w: Wait, method: str, path: str, role: str = "admin", staff: str | None = None, **form):
    """`path` through the app at Siyu's clock, as a signed-in person of the tenant."""
    return SignedIn(w.rt, w.tenant_id, role, staff, "时区")(method, path, form if method == "POST" else None)


def _zone(w: Wait) -> str:
    with w.rt.db.system_session() as s:
        return s.get(Tenant, w.tenant_id).timezone


def test_an_admin_sets_the_zone_on_the_setup_page_and_a_wrong_one_is_refused_naming_it(local):
    w = local
    w.t0 = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
    w.clock(0)
    page = _call(w, "GET", "/setup").text
    assert re.search(r'id="timezone-current">Asia/Shanghai<', page)
    assert 'id="timezone-now">2026-03-02 09:00<' in page
    assert '<option value="Europe/Berlin">' in page

    refused = _call(w, "POST", "/setup/timezone", timezone="Asia/Tokio")
    assert refused.status_code == 422
    assert "时区「Asia/Tokio」不存在" in refused.text and 'value="Asia/Tokio"' in refused.text
    assert _zone(w) == "Asia/Shanghai"
    for role, staff in (("supervisor", "lisi"), ("agent", "zhangsan")):
        assert _call(w, "POST", "/setup/timezone", role, staff, timezone="Asia/Tokyo").status_code == 403
    assert _zone(w) == "Asia/Shanghai"

    saved = _call(w, "POST", "/setup/timezone", timezone=" Europe/Berlin ")
    assert saved.status_code == 303 and saved.headers["location"] == "/setup?done=timezone#timezone"
    assert _zone(w) == "Europe/Berlin"
    page = _call(w, "GET", "/setup?done=timezone").text
    assert 'id="timezone-current">Europe/Berlin<' in page and "时区已保存" in page
    assert 'id="timezone-now">2026-03-02 02:00<' in page  # 01:00 UTC, CET


def test_the_boards_and_the_home_pages_today_follow_the_new_zone_and_not_another_tenants(local, db, settings):
    """Monday 23:30 in Shanghai a customer asks 张三, who answers a minute later; the same
    moment one is added. Read on Tuesday at 12:00 Shanghai time, that was Monday's; in Tokyo
    (an hour ahead) it was already Tuesday 00:30, so Tokyo's today counts them."""
    w = local
    other = Wait(*local_tenant(db, settings), w.t0)
    for t in (w, other):
        t.t0 = datetime(2026, 3, 2, 23, 30, tzinfo=SHANGHAI)
        t.clock(0)
        t.policy()
        t.say("在吗？", at=0)
        t.reply("在的", at=60)
        with t.session() as s:
            customer = Customer(external_userid="wmtz" + secrets.token_hex(4), name="夜里加的")
            s.add(customer)
            s.flush()
            s.add(Follow(customer_id=customer.id, staff_userid="zhangsan", added_at=t.at(0)))
    for t in (w, other):
        t.clock(12.5 * 3600)  # Tuesday 12:00 in Shanghai

    def today(t: Wait) -> tuple[str, int, str]:
        board = _call(t, "GET", "/api/v1/sla/board").json()
        adds = re.search(r'data-stat="adds">(\d+)<', _call(t, "GET", "/").text)[1]
        return board["day"], board["first_response"]["count"], adds

    assert today(w) == ("2026-03-03", 0, "0")
    assert _call(w, "GET", "/api/v1/me").json()["tenant"]["timezone"] == "Asia/Shanghai"
    assert _call(w, "POST", "/setup/timezone", timezone="Asia/Tokyo").status_code == 303
    # an integration asking for the board of a `day` learns which zone that day is in
    assert _call(w, "GET", "/api/v1/me").json()["tenant"]["timezone"] == "Asia/Tokyo"
    assert today(w) == ("2026-03-03", 1, "1")
    assert today(other) == ("2026-03-03", 0, "0")
    forget_pending(db, other.tenant_id)


def test_waits_timed_by_business_hours_move_with_the_zone_and_wall_clock_ones_stay(local):
    """Shifts 09:00-18:00. Monday 17:59 in Shanghai a customer asks 张三: one business minute
    that day, so the 2-minute step is due Tuesday 09:01 Shanghai time. Moved to Tokyo, that
    17:59 is 18:59, after hours: the whole two minutes come Tuesday 09:00-09:02 Tokyo time
    (08:02 in Shanghai). A wall-clock policy's step stays where it was."""
    w = local
    w.t0 = datetime(2026, 3, 2, 17, 59, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy(business_hours_only=True, shifts=[["09:00", "18:00"]], public_holidays=False)
    w.say("在吗？", at=0)

    def due() -> datetime:
        with w.session() as s:
            step = s.scalar(select(SlaEscalation).where(SlaEscalation.status == "pending"))
            return step.due_at.astimezone(SHANGHAI)

    assert due() == datetime(2026, 3, 3, 9, 1, tzinfo=SHANGHAI)
    assert _call(w, "POST", "/setup/timezone", timezone="Asia/Tokyo").status_code == 303
    assert due() == datetime(2026, 3, 3, 9, 2, tzinfo=TOKYO)

    w.policy(business_hours_only=False)
    wall = due()
    assert _call(w, "POST", "/setup/timezone", timezone="Europe/Berlin").status_code == 303
    assert due() == wall


def test_the_channel_page_its_stats_and_the_home_page_count_the_day_on_siyus_clock(local):
    """Siyu's clock (the demo's, a test's) on Monday 2026-03-02 15:00 in Shanghai, the
    machine's on another day. Two customers came through 门店海报 that Monday morning, one of
    them removed 张三 at noon; a third came later by the machine's clock. The channel page and
    its stats counted 30 days back from the machine's day (no Monday; the third on its day),
    and the home page's 今日新增 counted the third with Monday's two."""
    w = local
    w.t0 = datetime(2026, 3, 2, 15, 0, tzinfo=SHANGHAI)
    w.clock(0)
    machine_day = datetime.now(SHANGHAI).date()
    assert machine_day != w.t0.date()
    with w.session() as s:
        channel = Channel(name="门店海报", state="tz" + secrets.token_hex(4), staff_userids=["zhangsan"])
        s.add(channel)
        s.flush()
        channel_id = channel.id
        for name, added, ended in (
            ("周一甲", w.at(-6 * 3600), None),
            ("周一乙", w.at(-5 * 3600), w.at(-3 * 3600)),
            ("机器那天的", datetime.now(SHANGHAI), None),
        ):
            customer = Customer(external_userid="wmtz" + secrets.token_hex(4), name=name)
            s.add(customer)
            s.flush()
            s.add(
                Follow(
                    customer_id=customer.id,
                    staff_userid="zhangsan",
                    channel_id=channel_id,
                    added_at=added,
                    ended_at=ended,
                    status="lost" if ended else "active",
                )
            )

    page = _call(w, "GET", f"/channels/{channel_id}").text
    rows = re.findall(r"<tr[^>]*><td>(\d{4}-\d\d-\d\d)</td><td>(\d+)</td><td>(\d+)</td>", page)
    assert rows[0] == ("2026-03-02", "2", "1")  # newest first: Siyu's today
    assert len(rows) == 30 and rows[-1][0] == "2026-02-01"
    days = _call(w, "GET", f"/api/v1/channels/{channel_id}/stats?days=7").json()["days"]
    assert [d["day"] for d in days][-1] == "2026-03-02"
    assert (days[-1]["adds"], days[-1]["losses"]) == (2, 1)
    assert sum(d["adds"] for d in days) == 2

    home = _call(w, "GET", "/").text
    tiles = dict(re.findall(r'data-stat="(\w+)">(\d+)<', home))
    assert (tiles["adds"], tiles["losses"]) == ("2", "1")


def test_the_chat_tells_the_two_passes_of_the_hour_clocks_go_back_apart(local):
    """New York, 1 November 2026: 01:00-02:00 comes twice. The customer wrote at 01:30 EDT and
    again 50 minutes later, at 01:20 EST; the chat showed 01:30 then 01:20, as if the second
    message came first. Each time in that hour names its offset; the hours around it do not."""
    w = local
    with w.rt.db.system_session() as s:
        s.get(Tenant, w.tenant_id).timezone = "America/New_York"
    w.t0 = datetime(2026, 11, 1, 5, 30, tzinfo=ZoneInfo("UTC"))  # 01:30 EDT
    w.clock(0)
    w.say("在吗？", at=0)
    w.say("还在吗？", at=3000)  # 01:20 EST
    w.say("有人吗？", at=6000)  # 02:10 EST
    w.clock(6000)
    page = _call(w, "GET", f"/conversations/{w.conversation().id}").text
    times = re.findall(r'<time datetime="[^"]+">([^<]+)</time>', page)
    assert times == ["01:30（UTC-04:00）", "01:20（UTC-05:00）", "02:10"], times
