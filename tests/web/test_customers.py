"""The read side: role scoping, tenant isolation, search and filters, profile and timeline."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from siyu.customers import service as customers
from siyu.customers.models import Customer
from siyu.db.paging import not_handed_out
from siyu.web.api_errors import NOT_FOUND_TEXT
from tests.support import days


def names(resp) -> set[str]:
    assert resp.status_code == 200, resp.text
    return {c["name"] for c in resp.json()["items"]}


# ---------------------------------------------------------------- role scoping


def test_an_agent_sees_only_their_own_customers(as_role, world):
    agent = as_role("agent")
    assert names(agent.get("/api/v1/customers")) == {"王女士", "孙小姐"}
    for other in ("陈先生", "刘总"):
        r = agent.get(f"/api/v1/customers/{world.a.customers[other]}")
        assert r.status_code == 404 and r.json() == {"detail": NOT_FOUND_TEXT}
        assert agent.get(f"/api/v1/customers/{world.a.customers[other]}/timeline").status_code == 404
        assert agent.get(f"/customers/{world.a.customers[other]}").status_code == 404
    page = agent.get("/customers")
    assert "王女士" in page.text and "孙小姐" in page.text
    assert "陈先生" not in page.text and "刘总" not in page.text


def test_a_supervisor_sees_their_team(as_role, world):
    sup = as_role("supervisor")
    # 张三 (sub-department of the one 王五 leads) and 李四 (direct report), not 赵六.
    assert names(sup.get("/api/v1/customers")) == {"王女士", "孙小姐", "陈先生"}
    assert sup.get(f"/api/v1/customers/{world.a.customers['刘总']}").status_code == 404
    assert sup.get(f"/api/v1/customers/{world.a.customers['陈先生']}").status_code == 200
    # Filtering by someone outside the team finds nothing rather than leaking.
    assert names(sup.get("/api/v1/customers", params={"staff": "zhaoliu"})) == set()


def test_the_member_filter_takes_a_userid_in_any_case(as_role):
    """WeCom's userids are case-insensitive (不区分大小写), yet ?staff=LiSi found none of lisi's
    customers, in the API or on the page, whose chip read 成员：LiSi."""
    admin, sup, admin_b = as_role("admin"), as_role("supervisor"), as_role("admin", "b")
    assert names(admin.get("/api/v1/customers", params={"staff": "LiSi"})) == {"陈先生"}
    page = admin.get("/customers", params={"staff": "LiSi"}).text
    assert "成员：李四 <a" in page and '<option value="lisi" selected>李四</option>' in page
    assert "陈先生" in page and "王女士" not in page
    # within the reader's scope, and the reader's tenant (B's zhangsan is B's)
    assert names(sup.get("/api/v1/customers", params={"staff": "ZhaoLiu"})) == set()
    assert "刘总" not in sup.get("/customers", params={"staff": "ZhaoLiu"}).text
    assert names(admin_b.get("/api/v1/customers", params={"staff": "ZhangSan"})) == {"乙方客户"}
    assert names(admin.get("/api/v1/customers", params={"staff": "ZhangSan2"})) == set()


def test_an_admin_sees_the_whole_tenant(as_role):
    assert names(as_role("admin").get("/api/v1/customers")) == {"王女士", "孙小姐", "陈先生", "刘总"}


# ---------------------------------------------------------------- tenant isolation


def test_one_tenant_never_sees_another_tenants_customers(as_role, world):
    admin_a, admin_b = as_role("admin"), as_role("admin", "b")
    foreign = world.b.customers["乙方客户"]
    missing = 987654321
    for path in (f"/api/v1/customers/{foreign}", f"/api/v1/customers/{foreign}/timeline"):
        r = admin_a.get(path)
        assert r.status_code == 404 and r.json() == {"detail": NOT_FOUND_TEXT}
    assert admin_a.get(f"/api/v1/customers/{missing}").json() == {"detail": NOT_FOUND_TEXT}
    assert "乙方客户" not in names(admin_a.get("/api/v1/customers", params={"per_page": 100}))
    assert names(admin_a.get("/api/v1/customers", params={"q": "乙"})) == set()
    assert names(admin_a.get("/api/v1/customers", params={"q": "乙备注"})) == set()
    # The UI: the foreign profile answers exactly like a missing one; lists leave it out.
    ui_foreign, ui_missing = admin_a.get(f"/customers/{foreign}"), admin_a.get(f"/customers/{missing}")
    assert ui_foreign.status_code == ui_missing.status_code == 404
    assert "乙方客户" not in ui_foreign.text
    assert "乙方客户" not in admin_a.get("/customers").text
    assert "乙方客户" not in admin_a.get("/").text
    # Channels and tags too.
    b_channel = world.b.channels["乙方海报"]
    assert admin_a.get(f"/api/v1/channels/{b_channel}").json() == {"detail": NOT_FOUND_TEXT}
    assert admin_a.get(f"/api/v1/channels/{b_channel}/stats").status_code == 404
    assert admin_a.get(f"/api/v1/channels/{b_channel}/qr.png").status_code == 404
    assert admin_a.get(f"/channels/{b_channel}").status_code == 404
    assert "乙方海报" not in {c["name"] for c in admin_a.get("/api/v1/channels").json()}
    assert b_channel not in {c["id"] for c in admin_a.get("/api/v1/channels").json()}
    # And the other way round: B sees its own customer and nothing of A's.
    assert names(admin_b.get("/api/v1/customers")) == {"乙方客户"}
    assert admin_b.get(f"/api/v1/customers/{world.a.customers['王女士']}").status_code == 404


# ---------------------------------------------------------------- search and filters


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "王女"}, {"王女士"}),  # name
        ({"q": "报价"}, {"王女士"}),  # remark
        ({"q": "13800001111"}, {"王女士"}),  # remark_mobiles
        ({"q": "0000111"}, {"王女士"}),  # part of a phone number
        ({"q": "大客户"}, {"刘总"}),
        ({"q": "%"}, set()),  # LIKE wildcards are literal
        ({"staff": "lisi"}, {"陈先生"}),
        ({"status": "lost"}, {"孙小姐"}),
        ({"status": "active"}, {"王女士", "陈先生", "刘总"}),
        ({"q": "王", "status": "lost"}, set()),
    ],
)
def test_search_and_filters(as_role, params, expected):
    assert names(as_role("admin").get("/api/v1/customers", params=params)) == expected


def test_filter_by_tag_channel_and_added_dates(as_role, world):
    admin = as_role("admin")
    assert names(admin.get("/api/v1/customers", params={"tag": world.a.tags["VIP"]})) == {"王女士"}
    # The channel applies its tag 新客 to everyone it brings.
    assert names(admin.get("/api/v1/customers", params={"tag": world.a.tags["新客"]})) == {
        "王女士",
        "陈先生",
        "孙小姐",
    }
    channel = world.a.channels["门店海报"]
    assert names(admin.get("/api/v1/customers", params={"channel": channel})) == {
        "王女士",
        "陈先生",
        "孙小姐",
    }
    today = days.today()
    recent = {"added_from": (today - timedelta(days=5)).isoformat(), "added_to": today.isoformat()}
    assert "刘总" not in names(admin.get("/api/v1/customers", params=recent))
    old = {"added_to": (today - timedelta(days=8)).isoformat()}
    assert names(admin.get("/api/v1/customers", params=old)) == {"刘总"}
    # The same filters on the page.
    page = admin.get("/customers", params={"channel": channel, "status": "lost"})
    assert "孙小姐" in page.text and "王女士" not in page.text


def test_a_date_range_typed_backwards_says_so_on_the_page(as_role, world):
    """The list's 添加日期 from the 6th to the 5th answered 没有找到客户, as if nobody had been
    added (the API refuses such a range, 422; the page said nothing of it). It says the dates
    are the wrong way round and links to them turned around, the other filters kept."""
    import re
    from html import unescape

    admin = as_role("admin")
    later, earlier = days.today().isoformat(), (days.today() - timedelta(days=30)).isoformat()
    channel = world.a.channels["门店海报"]
    page = admin.get("/customers", params={"from": later, "to": earlier, "channel": channel}).text
    said = re.search(r'id="dates-reversed">(.*?)</p>', page, re.S)
    assert said and f"开始日期 {later} 晚于结束日期 {earlier}" in said[1], page
    assert "没有找到客户" not in page
    swapped = admin.get(unescape(re.search(r'href="([^"]+)"', said[1])[1])).text
    assert "王女士" in swapped and 'id="dates-reversed"' not in swapped
    assert f'name="from" value="{earlier}"' in swapped and f'name="to" value="{later}"' in swapped


def test_a_date_typed_in_the_address_that_is_no_date_is_said_not_ignored(as_role, world):
    """/customers?from=2026-13-45 listed every customer as if filtered, without a word (the date
    was dropped). The page says the date is no date and was not used; the other filters hold."""
    import re

    admin = as_role("admin")
    channel = world.a.channels["门店海报"]
    page = admin.get("/customers", params={"from": "2026-13-45", "channel": channel}).text
    said = re.findall(r'<p class="notice" role="status" id="bad-date-\d">(.*?)</p>', page)
    assert said == ["添加日期的开始日期“2026-13-45”不是有效日期，没有按它筛选：请在筛选里重新选择日期。"], (
        said
    )
    assert "王女士" in page  # the channel's customer, listed by the filter that holds
    good = admin.get("/customers", params={"from": days.today().isoformat()}).text
    assert 'id="bad-date-' not in good


def test_a_date_range_from_the_calendar_s_first_day_or_to_its_last_bounds_nothing(as_role):
    """`added_from=0001-01-01` (a script's "from the start") was a 500 on the API and the page,
    its midnight in Beijing lying before year 1 in UTC, and `added_to=9999-12-31` a 422 (the
    day after it past the calendar): each bounds nothing, and every customer is listed."""
    admin = as_role("admin")
    every = admin.get("/api/v1/customers").json()["total"]
    for params in ({"added_from": "0001-01-01"}, {"added_to": "9999-12-31"}):
        r = admin.get("/api/v1/customers", params=params)
        assert r.status_code == 200 and r.json()["total"] == every, (params, r.text[:200])
    page = admin.get("/customers", params={"from": "0001-01-01", "to": "9999-12-31"})
    assert page.status_code == 200 and "王女士" in page.text and f"共 {every} 位" in page.text


def test_a_backwards_range_shows_no_count_above_its_notice(as_role):
    """Above 开始日期 … 晚于结束日期 …, 查不到任何客户, the heading said 共 0 位: a count of a search
    that was not made. The heading gives none then."""
    import re

    later, earlier = days.today().isoformat(), (days.today() - timedelta(days=30)).isoformat()
    page = as_role("admin").get("/customers", params={"from": later, "to": earlier}).text
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S)[1]
    assert 'id="dates-reversed"' in page and "共" not in heading, heading
    assert "共" in re.search(r"<h1>(.*?)</h1>", as_role("admin").get("/customers").text, re.S)[1]


def test_pagination(as_role):
    admin = as_role("admin")
    first = admin.get("/api/v1/customers", params={"per_page": 3}).json()
    assert first["total"] == 4 and first["pages"] == 2 and len(first["items"]) == 3
    second = admin.get("/api/v1/customers", params={"per_page": 3, "page": 2}).json()
    assert len(second["items"]) == 1
    assert {c["id"] for c in first["items"]}.isdisjoint({c["id"] for c in second["items"]})
    # Newest first.
    assert [c["name"] for c in first["items"]] == ["王女士", "孙小姐", "陈先生"]


def test_bad_query_parameters_answer_422(as_role):
    admin = as_role("admin")
    for params in ({"status": "gone"}, {"per_page": 1000}, {"page": 0}, {"added_from": "yesterday"}):
        r = admin.get("/api/v1/customers", params=params)
        assert r.status_code == 422, params
    r = admin.get("/api/v1/customers", params={"added_from": "2025-02-02", "added_to": "2025-01-01"})
    assert r.status_code == 422 and "added_from" in r.json()["detail"]


def test_a_tag_deleted_in_wecom_is_struck_through_on_the_customer(as_role, world, db):
    """The customer keeps a tag deleted in WeCom's console (history), but the page does not show
    it as one the customer still has in WeCom."""
    admin = as_role("admin")
    cid = world.a.customers["王女士"]
    with db.tenant_session(world.a.id) as s:
        customers.mark_tags_deleted(s, ["tagVIP"])
    try:
        tags = {t["name"]: t["deleted"] for t in admin.get(f"/api/v1/customers/{cid}").json()["tags"]}
        assert tags == {"VIP": True, "新客": False}
        page = admin.get(f"/customers/{cid}").text
        assert '<span class="tag deleted" title="客户等级 · 已在企业微信中删除"><s>VIP</s></span>' in page
        assert '<span class="tag" title="客户等级">新客</span>' in page
    finally:
        with db.tenant_session(world.a.id) as s:
            customers.upsert_tags(
                s, [{"group_id": "grp1", "group_name": "客户等级", "tag": [{"id": "tagVIP", "name": "VIP"}]}]
            )


# ---------------------------------------------------------------- profile and timeline


def test_profile_and_timeline(as_role, world):
    admin = as_role("admin")
    cid = world.a.customers["王女士"]
    p = admin.get(f"/api/v1/customers/{cid}").json()
    assert p["name"] == "王女士"
    (follow,) = p["follows"]
    assert follow["staff_name"] == "张三" and follow["remark"] == "王姐-报价"
    assert follow["remark_mobiles"] == ["13800001111"]
    assert follow["channel"]["name"] == "门店海报"
    assert {t["name"] for t in p["tags"]} == {"VIP", "新客"}
    events = admin.get(f"/api/v1/customers/{cid}/timeline").json()
    kinds = [e["kind"] for e in events]
    assert {"added", "channel", "tagged"} <= set(kinds)
    ats = [e["at"] for e in events]
    assert ats == sorted(ats, reverse=True)
    lost = admin.get(f"/api/v1/customers/{world.a.customers['孙小姐']}/timeline").json()
    assert lost[0]["kind"] == "lost" and "流失" in lost[0]["text"]
    page = admin.get(f"/customers/{cid}")
    assert page.status_code == 200
    for text in ("王女士", "王姐-报价", "13800001111", "门店海报", "VIP", "张三", "通过渠道「门店海报」添加"):
        assert text in page.text


def test_dashboard_counts_today_within_scope(as_role, db, world):
    """今日流失 counts the day's losses among the viewer's customers: one of 张三's for him, one of
    李四's too for the admin. The losses are the test's own, made today: the world's (孙小姐 lost
    3 h before the package began) are yesterday's once the run has passed midnight in
    Shanghai, or from the day before if the package began just after it."""
    import re
    import uuid

    from tests.web.conftest import _add, remove_customers

    days.clear_of_midnight(120)  # the counts before and after on one day

    def losses(client) -> int:
        return int(re.search(r'data-stat="losses">(\d+)<', client.get("/").text)[1])

    agent, admin = as_role("agent"), as_role("admin")
    before = losses(agent), losses(admin)
    sfx, made = uuid.uuid4().hex[:6], []
    try:
        with db.tenant_session(world.a.id) as s:
            for userid in ("zhangsan", "lisi"):
                ext = f"wmT{userid[:2]}{sfx}"
                made.append(_add(s, None, ext, f"今日流失{userid}", userid, days.today_at(600)))
                ended = {"UserID": userid, "ExternalUserID": ext, "CreateTime": days.today_at(60)}
                customers.record_follow_ended(s, ended, "lost")
        assert (losses(agent), losses(admin)) == (before[0] + 1, before[1] + 2)
        page = as_role("agent").get("/")
        assert page.status_code == 200
        assert "王女士" in page.text and "陈先生" not in page.text and "今日流失lisi" not in page.text
    finally:  # the other tests count the world's customers
        remove_customers(db, world.a.id, made)


def test_a_chat_that_began_before_its_customer_was_known_is_theirs_once_they_are(as_role, db, world):
    """The archive often brings a new customer's first 你好 before the add_external_contact
    event has made the customer (WeCom retrying the event, a sync still running)."""
    import time

    from sqlalchemy import select

    from siyu.conversations.models import Conversation
    from siyu.customers import service as customers
    from tests.conversations.conftest import Archive, store
    from tests.web.conftest import _contact

    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhangsan", "你好，想问下价格", 60)
    store(db, world.a.id, arc.items)  # the pull came first
    agent = as_role("agent")
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    assert agent.get(f"/api/v1/conversations/{cid}").json()["title"] != "周女士"
    now = int(time.time())
    with db.tenant_session(world.a.id) as s:  # then the add event's customer
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": now - 120, "State": ""}
        customer_id = customers.record_added(s, fields, _contact(ext, "周女士", "zhangsan", now - 120)).id
    assert agent.get(f"/api/v1/conversations/{cid}").json()["title"] == "周女士"  # not the raw wm… id
    listed = agent.get("/api/v1/conversations", params={"customer": customer_id}).json()["items"]
    assert [x["id"] for x in listed] == [cid]  # and on their profile


def test_the_timeline_says_who_deleted_the_customer_once(as_role, world, db):
    """Each line of the timeline begins with the member's name: a member deleting the customer
    read 张三 成员删除了客户 (张三 member deleted the customer)."""
    customer_id = world.b.customers["乙方客户"]  # tenant B: no test counts its customers' states
    with db.tenant_session(world.b.id) as s:
        ext = s.get(Customer, customer_id).external_userid
        ended = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": int(time.time())}
        customers.record_follow_ended(s, ended, "deleted")  # del_external_contact
        # another member's follow of the same customer handed over (在职/离职继承)
        moved = {"UserID": "wangwu", "ExternalUserID": ext, "CreateTime": int(time.time())}
        customers.record_follow_ended(s, moved, "transferred")
    page = as_role("admin", "b").get(f"/customers/{customer_id}").text
    assert "<b>张三</b> 删除了客户" in page and "成员删除了客户" not in page
    assert "<b>王五</b> 不再跟进：客户已转接给其他成员" in page  # not 王五 客户已转接给其他成员


def test_paging_by_cursor_shows_each_customer_once_while_new_ones_are_added(as_role, world, db):
    """The list is newest first, so each customer added while a script pages through it (a
    scan of a channel's code) pushed the others one place down: page 2 began with the last
    customer of page 1, and a sync saw them twice. Page by the `next` a page hands out (as
    the conversation list does): the customers below its last one, none twice, none missed."""
    import uuid

    from tests.web.conftest import _contact

    sfx, now = uuid.uuid4().hex[:6], int(time.time())

    def add(i: int) -> int:  # tenant B: no other test counts its customers
        ext = f"wmP{i}{sfx}"
        fields = {"UserID": "lisi", "ExternalUserID": ext, "CreateTime": now - 600 + i, "State": ""}
        with db.tenant_session(world.b.id) as s:
            return customers.record_added(
                s, fields, _contact(ext, f"翻页{sfx}-{i}", "lisi", now - 600 + i)
            ).id

    made = [add(i) for i in range(5)]
    admin = as_role("admin", "b")

    def ids(params: dict) -> tuple[list[int], dict]:
        r = admin.get("/api/v1/customers", params={"q": f"翻页{sfx}", "per_page": 2, **params})
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]], r.json()

    first, page = ids({})
    assert first == [made[4], made[3]] and page["prev"] is None and page["page"] == 1
    newest = add(9)  # added while the script pages
    second, page = ids({"after": page["next"]})
    assert second == [made[2], made[1]] and page["page"] is None
    third, last = ids({"after": page["next"]})
    assert third == [made[0]] and last["next"] is None
    assert ids({"before": last["prev"]})[0] == second
    back, page = ids({"before": page["prev"]})
    assert back == [made[4], made[3]]  # where page 1 was
    assert ids({"before": page["prev"]})[0] == [newest, made[4]]  # and the top, whole
    bad = admin.get("/api/v1/customers", params={"after": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json() == {"detail": not_handed_out("after")}
    assert admin.get("/api/v1/customers", params={"after": last["prev"], "page": 2}).status_code == 422


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_cursor_whose_time_no_clock_can_hold_is_refused_as_one_not_handed_out(as_role, moment):
    """A cursor is base64 of JSON a script can write by hand: one whose time lies past the
    calendar's ends once in UTC was a 500 (OverflowError binding it), and the connection was
    dropped, on every list that pages by cursor; it is a cursor no list handed out."""
    import base64
    import json

    forged = base64.urlsafe_b64encode(json.dumps([{"t": moment}, 1]).encode()).decode()
    admin = as_role("admin")
    for path, params in (
        ("/api/v1/customers", {}),
        ("/api/v1/messages/search", {"q": "iphone"}),
        ("/api/v1/sla/board", {}),
    ):
        for way in ("after", "before"):
            r = admin.get(path, params={**params, way: forged})
            assert r.status_code == 422 and r.json() == {"detail": not_handed_out(way)}, (
                path,
                way,
                r.text[:200],
            )
    chats = base64.urlsafe_b64encode(json.dumps([0, {"t": moment}, {"t": moment}, 1]).encode()).decode()
    r = admin.get("/api/v1/conversations", params={"after": chats})
    assert r.status_code == 422 and r.json() == {"detail": not_handed_out("after")}, r.text[:200]
    page = admin.get("/customers", params={"after": forged})
    assert page.status_code == 200 and "翻页链接已失效，已回到第一页" in page.text


def test_the_timeline_pages_on_to_older_events(as_role, world):
    """The timeline gave the newest `limit` events (500 at most) and no way to the older ones:
    a customer whose tags had changed often lost their add, channel and first tags from the
    API. `before` the last event's id gives the events older than it, none twice, events of
    the same moment (an add's added, channel, tagged) included."""
    admin = as_role("admin")
    url = f"/api/v1/customers/{world.a.customers['王女士']}/timeline"
    whole = [e["id"] for e in admin.get(url).json()]
    assert len(whole) >= 3
    seen, before = [], None
    for _ in whole:  # (pages of 2: fewer pages than events)
        page = admin.get(url, params={"limit": 2} | ({"before": before} if before else {})).json()
        if not page:
            break
        seen += [e["id"] for e in page]
        before = page[-1]["id"]
    assert seen == whole
    foreign = admin.get(f"/api/v1/customers/{world.a.customers['陈先生']}/timeline").json()[0]["id"]
    r = admin.get(url, params={"before": foreign})
    assert r.status_code == 422 and r.json() == {
        "detail": f"该客户的时间线里没有事件 {foreign} / before: no event {foreign}"
        " in this customer's timeline"
    }


def _tagged_often(db, world, edits: int, added_ago: int) -> int:
    """A customer of 张三's whose VIP tag was put on and taken off `edits` times since the add."""
    import uuid

    from tests.web.conftest import _contact

    sfx, now = uuid.uuid4().hex[:8], int(time.time())
    ext, added = f"wmP{sfx}", now - added_ago
    with db.tenant_session(world.a.id) as s:
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": added, "State": ""}
        cid = customers.record_added(s, fields, _contact(ext, f"常客{sfx}", "zhangsan", added)).id
        for i in range(edits):
            at = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": added + 60 * (i + 1)}
            tags = ["VIP"] if i % 2 == 0 else []
            customers.record_edited(s, at, _contact(ext, f"常客{sfx}", "zhangsan", added, tags=tags))
    return cid


def test_the_customer_page_pages_on_to_the_older_timeline(as_role, db, world):
    """A customer whose tags changed 250 times: the page showed the newest 200 entries as the
    whole timeline, their 添加了客户 gone with nothing saying older entries were left out. It
    links to the older ones; a link gone stale opens the newest, saying so."""
    from tests.web.conftest import remove_customers

    cid = _tagged_often(db, world, 250, 30 * 86400)
    agent = as_role("agent")
    try:
        newest = agent.get(f"/customers/{cid}").text
        assert "添加了客户" not in newest and newest.count('class="ev ') == 200
        older = re.search(rf'href="/customers/{cid}\?before=(\d+)#timeline" rel="next">更早的记录', newest)
        rest = agent.get(f"/customers/{cid}", params={"before": older[1]}).text
        assert "添加了客户" in rest and "更早的记录" not in rest and "回到最新的记录" in rest
        assert rest.count('class="ev ') == 251 - 200  # (the add and 250 tag changes, less the newest)
        for stale in ("abc", str(world.a.customers["王女士"] * 10**6), "99999999999999999999999"):
            page = agent.get(f"/customers/{cid}", params={"before": stale})
            assert page.status_code == 200 and "翻页链接已失效，已回到最新的记录" in page.text, stale
    finally:
        remove_customers(db, world.a.id, [cid])


def test_timeline_entries_of_another_year_say_which_year(as_role, db, world):
    """A customer added 14 months ago, tagged since: each entry read MM-DD HH:MM, last year's
    add and this year's tag of the same day alike."""
    from tests.web.conftest import _contact, remove_customers

    cid = _tagged_often(db, world, 0, 425 * 86400)
    with db.tenant_session(world.a.id) as s:
        ext = s.get(Customer, cid).external_userid
        at = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": int(time.time()) - 60}
        customers.record_edited(
            s, at, _contact(ext, "常客", "zhangsan", int(time.time()) - 425 * 86400, tags=["VIP"])
        )
    try:
        page = as_role("agent").get(f"/customers/{cid}").text
        times = re.findall(r'<li class="ev ev-(\w+)"><time>([^<]+)</time>', page)
        added = (datetime.now(UTC) - timedelta(days=425)).astimezone(ZoneInfo("Asia/Shanghai"))
        assert dict(times)["added"].startswith(f"{added.year}-{added:%m-%d} ")
        assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d", dict(times)["tagged"])  # (this year's)
    finally:
        remove_customers(db, world.a.id, [cid])


def test_the_customer_list_clears_only_filters_and_says_when_a_page_address_went_stale(as_role):
    """/customers?after=zzz (a cursor this list never hands out) showed 清除 as if a filter were
    set, and it and ?page=abc showed the first page without a word."""
    admin = as_role("admin")
    plain = admin.get("/customers").text
    assert 'class="clear"' not in plain and "翻页链接已失效" not in plain
    # a page past the last (customers gone since it was handed out) read 没有找到客户 under
    # 共 N 位, with a pager of 999 / 1
    for params in ({"after": "zzz"}, {"page": "abc"}, {"page": "-2"}, {"page": "999"}, {"page": "0"}):
        page = admin.get("/customers", params=params)
        assert page.status_code == 200 and "王女士" in page.text, params
        assert 'class="clear"' not in page.text and "翻页链接已失效，已回到第一页" in page.text, params
        assert "没有找到客户" not in page.text and "999 /" not in page.text, params
    assert 'class="clear"' in admin.get("/customers", params={"q": "王"}).text


# ---------------------------------------------------------------- service history


def _chatted(db, world):
    """A customer of 张三's and 赵六's who wrote to both: 张三 answered the first question and
    the second waits; 赵六 answered theirs."""
    from sqlalchemy import select

    from siyu.conversations.models import Conversation
    from tests.conversations.conftest import Archive, store
    from tests.web.conftest import _contact

    arc, now = Archive(), int(time.time())
    ext = f"wmT{arc.sfx}"
    asked = arc.text(ext, "zhangsan", "这款电视有现货吗？", 600)
    arc.text("zhangsan", ext, "有的，今天就能发", 540)
    again = arc.text(ext, "zhangsan", "能开发票吗？", 300)
    arc.text(ext, "zhaoliu", "赵经理，报价单发我一下？", 500)
    arc.text("zhaoliu", ext, "好的，马上发", 480)
    store(db, world.a.id, arc.items)  # the chats came before the add event (a customer not yet known)
    with db.tenant_session(world.a.id) as s:
        for userid in ("zhangsan", "zhaoliu"):
            fields = {"UserID": userid, "ExternalUserID": ext, "CreateTime": now - 900, "State": ""}
            cid = customers.record_added(s, fields, _contact(ext, f"马强{arc.sfx}", userid, now - 900)).id
        edited = _contact(ext, f"马强{arc.sfx}", "zhangsan", now - 900)
        edited["follow_user"][0]["description"] = "想换大屏"
        at = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": now - 800}
        customers.record_edited(s, at, edited)
    with db.tenant_session(world.a.id) as s:
        found = select(Conversation.staff_userid, Conversation.id).where(Conversation.external_userid == ext)
        chats = {r.staff_userid: r.id for r in s.execute(found)}
    return cid, chats, asked, again


def test_the_timeline_tells_the_customers_waits_and_how_they_ended(as_role, db, world):
    """The timeline told only the contact's life (added, tagged, remark ...): a customer who
    wrote five times, was answered and waits again showed four events, and a question marked
    无需回复 appeared nowhere on their page. Each wait is told where it began, with what they
    wrote and how it ended, linked to its chat, among the acquisition events; the remark's
    description shows; an agent sees only the chats that are theirs."""
    cid, chats, asked, again = _chatted(db, world)
    admin, agent = as_role("admin"), as_role("agent")
    url = f"/api/v1/customers/{cid}/timeline"
    waits = [e for e in admin.get(url).json() if e["kind"] == "wait"]
    assert [e["data"]["quote"] for e in waits] == [
        "能开发票吗？",
        "赵经理，报价单发我一下？",
        "这款电视有现货吗？",
    ]
    assert "仍在等待回复" in waits[0]["text"] and "张三 回复，用时 1 分 0 秒" in waits[2]["text"]
    assert "赵六 回复" in waits[1]["text"]
    snooze = f"/api/v1/conversations/{chats['zhangsan']}/snooze"
    assert agent.post(snooze, json={"minutes": 30}, headers={"X-CSRF-Token": agent.csrf}).status_code == 200
    held = agent.get(url).json()[0]
    assert "仍在等待回复（张三 已暂缓提醒至 " in held["text"] and held["data"]["snoozed_by"] == "张三"
    r = admin.post(
        f"/api/v1/conversations/{chats['zhangsan']}/dismiss",
        json={"msgid": again},
        headers={"X-CSRF-Token": admin.csrf},
    )
    assert r.status_code == 200, r.text

    events = agent.get(url).json()
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["wait", "wait", "remark"] and "added" in kinds[3:]  # newest first, mixed
    newest, first = events[0], events[1]
    assert newest["text"] == "客户发来消息等待回复：「能开发票吗？」；甲管理员 标记为无需回复"
    assert first["data"]["replied_by"] == "张三" and first["data"]["conversation_id"] == chats["zhangsan"]
    assert "报价单" not in str(events)  # 赵六's chat is not the agent's to read
    remark = next(e for e in events if e["kind"] == "remark")
    assert "描述：想换大屏" in remark["text"]
    # the next page goes on from a wait's entry as from an event's
    assert [e["id"] for e in agent.get(url, params={"before": first["id"]}).json()] == [
        e["id"] for e in events[2:]
    ]

    page = agent.get(f"/customers/{cid}").text
    started = page.index("客户发来消息等待回复：「这款电视有现货吗？」；张三 回复")
    assert page.index("甲管理员 标记为无需回复") < started < page.index("描述：想换大屏")
    assert f'<a href="/conversations/{chats["zhangsan"]}">客户发来消息等待回复' in page
    assert "报价单" not in page
    assert "赵经理，报价单发我一下？" in as_role("admin").get(f"/customers/{cid}").text


def test_the_timeline_writes_a_waits_times_in_utc_as_every_answer_does(as_role, db, world):
    """A wait's closed_at and snoozed_until (and its steps' fired_at) read
    2026-12-06T20:05:08.659000+00:00, where every other time of the API, the entry's own `at`
    included, reads …Z as the spec says: a client comparing the snooze's `until` with the
    timeline's saw two times, and one parsing the spec's form met another."""
    import re

    cid, chats, _, _ = _chatted(db, world)
    agent = as_role("agent")
    snooze = f"/api/v1/conversations/{chats['zhangsan']}/snooze"
    until = agent.post(snooze, json={"minutes": 15}, headers={"X-CSRF-Token": agent.csrf}).json()["until"]
    events = agent.get(f"/api/v1/customers/{cid}/timeline").json()
    held, answered = (e for e in events if e["kind"] == "wait")
    assert held["data"]["snoozed_until"] == until and until.endswith("Z"), held
    assert answered["data"]["closed_at"].endswith("Z"), answered
    times = re.findall(r'"(\d{4}-\d\d-\d\dT[^"]*)"', json.dumps(events))
    assert times and [t for t in times if not t.endswith("Z")] == []


def test_the_timeline_says_a_snooze_ends_at_the_minute_the_chat_says(as_role, db, world):
    """A snooze to 09:44:20 read 09:44 on the customer's timeline and 09:45 on the chat and the
    board beside it (a time to come is shown as the minute it will have come by): an agent
    reading both saw two ends. The timeline says the chat's minute."""
    import re

    cid, chats, _, _ = _chatted(db, world)
    agent = as_role("agent")
    snooze = f"/api/v1/conversations/{chats['zhangsan']}/snooze"
    assert agent.post(snooze, json={"minutes": 15}, headers={"X-CSRF-Token": agent.csrf}).status_code == 200
    # (the chat leaves out today's date, the timeline, a record to read later, keeps it)
    chat = re.search(
        r"提醒已暂缓至 ((?:\d\d-\d\d )?\d\d:\d\d)", agent.get(f"/conversations/{chats['zhangsan']}").text
    )
    timeline = re.search(r"已暂缓提醒至 (\d\d-\d\d \d\d:\d\d)", agent.get(f"/customers/{cid}").text)
    assert chat and timeline and timeline.group(1).endswith(chat.group(1))


@pytest.mark.parametrize("older", [2, 0])
def test_the_page_shows_a_chatty_customers_newest_waits_and_links_to_their_chats(as_role, db, world, older):
    """A customer who wrote hundreds of times would load every wait on their page: it shows
    the newest ones and sends the reader to the customer's chats for the rest (only where there
    are more: one with exactly as many as shown was told of older ones)."""
    from siyu.web.pages import WAITS_SHOWN
    from tests.conversations.conftest import Archive, store
    from tests.web.conftest import _contact

    arc, now = Archive(), int(time.time())
    ext = f"wmM{arc.sfx}"
    for i in range(WAITS_SHOWN + older):
        arc.text(ext, "zhangsan", f"第{i}个问题？", 3000 - 60 * i)
        arc.text("zhangsan", ext, f"第{i}个回答", 2990 - 60 * i)
    with db.tenant_session(world.a.id) as s:
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": now - 3600, "State": ""}
        cid = customers.record_added(s, fields, _contact(ext, f"话多{arc.sfx}", "zhangsan", now - 3600)).id
    store(db, world.a.id, arc.items)
    agent = as_role("agent")
    page = agent.get(f"/customers/{cid}").text
    assert page.count("客户发来消息等待回复") == WAITS_SHOWN
    assert f"第{WAITS_SHOWN + older - 1}个问题" in page  # the newest
    assert ("「第1个问题？」" not in page) == bool(older)
    link = f'更早的在下一页，或见<a href="/conversations?customer={cid}">全部会话 ›</a>'
    assert (link in page) == bool(older)
    api = agent.get(f"/api/v1/customers/{cid}/timeline").json()
    assert sum(e["kind"] == "wait" for e in api) == WAITS_SHOWN + older and api[-1]["kind"] == "added"


def test_a_timeline_link_with_a_superscript_digit_is_no_500(as_role, world):
    """?before=² (str.isdigit() is true of ² and ①, int() refuses them): the customer page
    failed with a 500 where any other bad cursor goes back to the newest entries, said so."""
    agent = as_role("agent")
    r = agent.get(f"/customers/{world.a.customers['王女士']}?before=²")
    assert r.status_code == 200, r.status_code
    assert "翻页链接已失效" in r.text


def test_a_group_whose_owner_wecom_never_told_shows_no_dangling_owner(as_role, db, world):
    """A group WeCom refuses groupchat/get for (60011) is listed as 群聊 <its id>, its owner
    unknown (""): the customer page read （…加入，扫描群二维码；群主 ） with nobody after 群主."""
    from sqlalchemy import delete

    from siyu.conversations.models import GroupChat, GroupMember

    chat_id = "wrUnknown" + uuid.uuid4().hex[:8]
    cid = world.a.customers["陈先生"]
    with db.tenant_session(world.a.id) as s:
        s.add(GroupChat(chat_id=chat_id, status="unknown", owner_userid="", problem="60011"))
        s.add(GroupMember(chat_id=chat_id, customer_id=cid, joined_at=datetime.now(UTC), join_scene=3))
    try:
        page = as_role("admin").get(f"/customers/{cid}").text
        shown = re.findall(r'<li class="group">(.*?)</li>', page, re.S)
        assert len(shown) == 1 and f"群聊 {chat_id}" in shown[0], shown
        assert not re.search(r"群主\s*）", shown[0]), shown[0]
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(GroupMember).where(GroupMember.chat_id == chat_id))
            s.execute(delete(GroupChat).where(GroupChat.chat_id == chat_id))
