"""The customer page's timeline paged to its end shows every wait; the customer list says the
year of a customer added in another."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from siyu.customers import service as customers
from siyu.customers.models import Customer, TimelineEvent
from tests.sla.conftest import Wait, local_tenant, now_ms
from tests.support.signed_in import SignedIn


@pytest.fixture
def w(db, settings):
    return local_tenant(db, settings)


def _follow(userid: str, at: int) -> dict:
    return {"userid": userid, "remark": "", "description": "", "createtime": at, "add_way": 1, "tags": []}


def _added(s, ext: str, name: str, userid: str, at: int) -> int:
    contact = {
        "external_contact": {"external_userid": ext, "name": name, "type": 1, "gender": 1, "avatar": ""},
        "follow_user": [_follow(userid, at)],
    }
    return customers.record_added(s, {"UserID": userid, "ExternalUserID": ext, "CreateTime": at}, contact).id


def test_paging_the_customer_page_timeline_skips_no_wait_it_shows_older_ones_of(w, db):
    """A customer who asked 80 times over 80 hours, among 400 other entries (tags). Paging the
    customer page's timeline with 更早的记录 › shows every wait on some page: page 1 shows the
    newest 30 and ends above the 31st (it had gone on below its last entry, and the waits
    between the 30th and it were shown on no page)."""
    rt, tid = w
    wt = Wait(rt, tid, now_ms(rt) - timedelta(days=5))
    start = int(wt.t0.timestamp()) - 10
    with db.tenant_session(tid) as s:
        cid = _added(s, "wmcustomer1", "常问客户", "zhangsan", start)
    for i in range(80):
        wt.say(f"请问第{i}号问题怎么办？", i * 3600)
        wt.reply(f"好的，第{i}号这样办", i * 3600 + 100)
    with db.tenant_session(tid) as s:
        for i in range(400):
            at = wt.t0 + timedelta(seconds=i * 720 + 7)
            s.add(
                TimelineEvent(
                    customer_id=cid, kind="tagged", at=at, staff_userid="zhangsan", data={"tags": [f"t{i}"]}
                )
            )
    admin = SignedIn(rt, tid, "admin")
    shown: list[int] = []
    url = f"/customers/{cid}"
    while url:
        page = admin("GET", url)
        assert page.status_code == 200
        shown += [int(n) for n in re.findall(r"请问第(\d+)号问题", page.text)]
        more = re.search(r'href="(/customers/\d+\?before=-?\d+)#timeline" rel="next"', page.text)
        url = more.group(1) if more else None
    # every wait newer than the oldest one shown is shown too (none skipped in between)
    skipped = sorted(set(range(min(shown), 80)) - set(shown))
    assert skipped == [], f"waits never shown on any page: {skipped}; shown: {sorted(shown)}"


def test_the_customer_list_says_the_year_of_a_customer_added_in_another_year(w, db):
    """The list is newest first over years: a customer added 13 months ago shows the year of
    their 首次添加 (as MM-DD alone, they had read like one of this year)."""
    rt, tid = w
    now = rt.now()
    old = now - timedelta(days=400)
    with db.tenant_session(tid) as s:
        cid = _added(s, "wm" + secrets.token_hex(6), "去年的客户", "zhangsan", int(old.timestamp()))
        assert s.get(Customer, cid).first_added_at.year == old.year
    page = SignedIn(rt, tid, "admin")("GET", "/customers").text
    row = re.search(rf'<a href="/customers/{cid}">.*?<time>(.*?)</time>', page, re.S).group(1)
    local = old.astimezone(ZoneInfo("Asia/Shanghai"))
    assert str(local.year) in row, f"row shows {row!r} for a customer first added {local:%Y-%m-%d}"
