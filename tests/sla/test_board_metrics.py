"""The SLA board's figures built from small scenarios through ingest, the page (/sla) and the
API (GET /api/v1/sla/board) read through the app at Siyu's controllable clock, each expected
figure worked out by hand."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import event as db_events
from sqlalchemy import select

from siyu.conversations import service as conversation_service
from siyu.customers.models import Customer
from siyu.notify.models import OutboxMessage
from siyu.sla import service, tasks
from siyu.tenancy.models import Department, Staff
from tests.sla.test_calendar import bj
from tests.sla.test_engine import _recall
from tests.sla.test_never_ring import _ask as _card_then_call
from tests.sla.test_never_ring import _never_ring_policy, _send_calls
from tests.support.signed_in import SignedIn

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _get(w, path: str, role: str = "admin", staff: str | None = None) -> httpx.Response:
    """`path` as a signed-in person of the tenant sees it, at Siyu's clock."""
    response = _ask(w, "GET", path, role, staff)
    assert response.status_code == 200, response.text
    return response


def _ask(w, method: str, path: str, role: str = "admin", staff: str | None = None, **kw) -> httpx.Response:
    """`method` on `path` by a signed-in person of the tenant (with their CSRF token), at Siyu's clock."""
    return SignedIn(w.rt, w.tenant_id, role, staff, "看板")(method, path, **kw)


def _rows(page: str, table: str) -> list[list[str]]:
    """The cells of a table of the page, as text, row by row."""
    found = re.search(rf'<table[^>]*id="{table}".*?<tbody>(.*?)</tbody>', page, re.S)
    assert found, f"no table {table}"
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", found[1], re.S)
    ]


def test_a_teams_response_time_under_business_hours_is_told_in_business_time_too(local):
    """Shifts 09:00-18:00. Friday 17:59: a customer asks 张三 (销售一部) and one asks 王总 (总部);
    张三 answers on Monday at 09:01 (one business minute on Friday, one on Monday: 120 s), 王总
    at 09:11 (720 s). By the wall clock both took over 2 days and 15 hours. The team table said
    销售一部 answered 100 % within the first step's 2 minutes and, in the next cell, a median reply of
    "2 天 15 小时": its business-time figure was missing, as it was for the whole board and
    each agent before those were given by the policy's clock too."""
    w = local
    w.t0 = datetime(2025, 9, 12, 17, 59, tzinfo=SHANGHAI)  # a Friday
    w.clock(0)
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["09:00", "18:00"]], quiet_hours=[])
    w.say("周一能发货吗？", at=0, ext="wmteam1")
    w.say("周一能发货吗？", at=0, ext="wmteam2", staff="boss")
    monday_0901 = (2 * 24 + 15) * 3600 + 2 * 60
    w.reply("可以", at=monday_0901, ext="wmteam1")
    w.reply("可以", at=monday_0901 + 600, ext="wmteam2", staff="boss")
    w.pulled(monday_0901 + 3600)
    w.clock(monday_0901 + 3600)

    teams = {t["department_name"]: t for t in _get(w, "/api/v1/sla/board?day=2025-09-12").json()["by_team"]}
    sales, head_office = teams["销售一部"], teams["总部"]
    assert sales["first_response"]["median_s"] == monday_0901  # wall time: 63 h 2 min
    assert sales["first_step_share"] == 1.0  # 120 business seconds: within the 2 minutes
    assert sales["first_response_business"]["median_s"] == 120
    assert head_office["first_response_business"]["median_s"] == 720
    assert head_office["first_step_share"] == 0.0

    rows = {row[0]: row for row in _rows(_get(w, "/sla?day=2025-09-12").text, "by-team")}
    assert rows["销售一部"][2:] == ["100%", "2 天 15 小时", "2 分 0 秒"], rows  # (a past day: no 等待中)
    assert rows["总部"][2:] == ["0%", "2 天 15 小时", "12 分 0 秒"], rows


def test_the_customers_timeline_gives_a_reply_under_business_hours_in_business_time_too(local):
    """销售一部 counts business hours only (09:00-18:00), the tenant the wall clock. Friday 17:59
    马强 asks 张三 (销售一部), 刘总 asks 王总 (总部); 张三 answers on Monday at 09:01, 王总 at
    09:11. 马强's timeline said 用时 2 天 15 小时 alone, where the board counts 张三's reply
    2 minutes by his policy's clock; it now says that too, as the board words it, in the page
    and the API. 刘总's wait ran by the wall clock: nothing beside it."""
    w = local
    w.t0 = datetime(2025, 9, 12, 17, 59, tzinfo=SHANGHAI)  # a Friday
    w.clock(0)
    w.policy()
    with w.session() as s:
        service.save_policy(s, 2, business_hours_only=True, shifts=[["09:00", "18:00"]], quiet_hours=[])
    w.customer("wmbiz", "马强")
    w.customer("wmwall", "刘总")
    w.say("周一能发货吗？", at=0, ext="wmbiz")
    w.say("周一能发货吗？", at=0, ext="wmwall", staff="boss")
    monday_0901 = (2 * 24 + 15) * 3600 + 2 * 60
    w.reply("可以", at=monday_0901, ext="wmbiz")
    w.reply("可以", at=monday_0901 + 600, ext="wmwall", staff="boss")
    w.pulled(monday_0901 + 3600)
    w.clock(monday_0901 + 3600)
    with w.session() as s:
        biz, wall = (
            s.scalar(select(Customer.id).where(Customer.external_userid == ext))
            for ext in ("wmbiz", "wmwall")
        )

    page = _get(w, f"/customers/{biz}").text
    assert "张三 回复，用时 2 天 15 小时（工作时间 2 分 0 秒）" in page, re.findall(r"用时[^；<]*", page)
    page = _get(w, f"/customers/{wall}").text
    assert re.findall(r"用时[^；<]*", page) == ["用时 2 天 15 小时"]
    [entry] = [e for e in _get(w, f"/api/v1/customers/{biz}/timeline").json() if e["kind"] == "wait"]
    assert (entry["data"]["response_s"], entry["data"]["response_business_s"]) == (monday_0901, 120)
    [entry] = [e for e in _get(w, f"/api/v1/customers/{wall}/timeline").json() if e["kind"] == "wait"]
    assert (entry["data"]["response_s"], entry["data"]["response_business_s"]) == (monday_0901 + 600, None)


def test_an_agent_who_answered_none_of_the_days_customers_has_a_row_of_their_own(local):
    """Wednesday 23:58:00 a customer asks 张三, who answers at 00:03:00 (300 s); 23:58:30 one asks
    王五, who never answers. Wednesday's figures (read on Thursday at 00:11:40): 张三 answered one in
    300 s; 王五 answered none of his one. His wait counts against every step ("仍未回复") but the
    per-agent table listed 张三 alone, as if 王五 had had no customer at all; it now lists him with
    0 answered. Both waits began on Wednesday, so they are Wednesday's, however late answered;
    the steps they fired after midnight are Thursday's breaches, on the page as in the API."""
    w = local
    w.t0 = datetime(2025, 9, 10, 23, 58, tzinfo=SHANGHAI)  # Wednesday 23:58:00
    w.clock(0)
    w.policy()  # 2 min, 5 min, 10 min
    w.say("在吗？", at=0, ext="wmnight1")
    w.say("在吗？", at=30, ext="wmnight2", staff="wangwu")
    w.pulled(7200)
    w.clock(130)
    assert w.fire() == 1  # 张三's first step, due at 00:00:00
    w.reply("在的", at=300, ext="wmnight1")
    w.clock(700)
    assert w.fire() == 3  # 王五's three steps, due at 00:00:30, 00:03:30 and 00:08:30

    wednesday = _get(w, "/api/v1/sla/board?day=2025-09-10").json()
    assert wednesday["day"] == "2025-09-10"
    agents = {a["staff_name"]: (a["count"], a["median_s"]) for a in wednesday["first_response_by_agent"]}
    assert agents == {"张三": (1, 300.0), "王五": (0, None)}, agents
    assert (wednesday["first_response"]["count"], wednesday["first_response"]["median_s"]) == (1, 300.0)
    first = wednesday["within_steps"][0]
    assert (first["answered"], first["answered_late"], first["outlived"]) == (0, 1, 1)
    assert wednesday["breaches_total"] == 0  # every step fired on Thursday
    page = _get(w, "/sla?day=2025-09-10").text
    assert _rows(page, "first-response-by-agent") == [
        ["张三", "1", "5 分 0 秒", "5 分 0 秒", "5 分 0 秒"],
        ["王五", "0", "—", "—", "—"],
    ]
    assert '09-10 超时 <small class="muted">共 0 次提醒</small>' in page

    thursday = _get(w, "/api/v1/sla/board").json()
    assert thursday["day"] == "2025-09-11" and thursday["first_response"]["count"] == 0
    assert {a["staff_name"]: a["count"] for a in thursday["breaches_by_agent"]} == {"王五": 3, "张三": 1}
    page = _get(w, "/sla").text
    assert _rows(page, "breaches-by-agent") == [["王五", "3"], ["张三", "1"]]
    assert '今日超时 <small class="muted">共 4 次提醒</small>' in page


def test_several_questions_before_one_reply_are_one_response_timed_from_the_first(local):
    """README: a wait's response time runs from the first customer message that waited to the
    reply, and every wait of the day counts. 客户甲 writes at 0 s, 60 s and 90 s, answered at
    150 s: one response of 150 s. 客户乙 is answered at 60 s, writes again at 100 s and is
    answered at 400 s: two responses, 60 s and 300 s. Figures: 3 answered, mean 170 s, median
    150 s, p90 (nearest rank, the 3rd of 3) 300 s; within the 2-minute step 1 of 3."""
    w = local
    w.t0 = datetime(2025, 9, 10, 12, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    for at, text in [(0, "在吗"), (60, "这款有货吗"), (90, "？")]:
        w.say(text, at=at, ext="wmmany1")
    w.reply("有货", at=150, ext="wmmany1")
    w.say("在吗", at=0, ext="wmmany2")
    w.reply("在的", at=60, ext="wmmany2")
    w.say("什么时候发货？", at=100, ext="wmmany2")
    w.reply("明天", at=400, ext="wmmany2")
    w.pulled(3600)
    w.clock(3600)
    board = _get(w, "/api/v1/sla/board").json()
    assert board["first_response"] == {"count": 3, "mean_s": 170.0, "median_s": 150.0, "p90_s": 300.0}
    first = board["within_steps"][0]
    assert (first["answered"], first["answered_late"], first["outlived"]) == (1, 2, 0)
    page = _get(w, "/sla").text
    figures = re.search(r'id="first-response">(.*?)</div>\s*</div>', page, re.S)[1]
    assert re.findall(r"<b>(.*?)</b>", figures) == ["2 分 50 秒", "2 分 30 秒", "5 分 0 秒", "3"]
    assert _rows(page, "within-steps")[0][1:] == ["33.3%", "1", "2", "0"]


def test_steps_skipped_as_due_long_ago_are_listed_among_the_reminders_not_delivered(local):
    """Tuesday 22:00 a customer asks 张三; the archive is pulled up to 22:01 and then not until
    07:00 (it was down overnight). By then each step (22:02 to 张三, 22:05 to his leader, 22:10 a
    call) was due more than the policy's 6 hours before: skipped, not sent. The customer did wait
    past them, yet the board counted them nowhere: no breach, and 没送到的提醒 said 提醒都已送到.
    They are now listed there, as a step that found nobody to tell is, with when each was due;
    like those, they are no breaches (nobody was reminded)."""
    w = local
    w.t0 = datetime(2025, 9, 9, 22, 0, tzinfo=SHANGHAI)  # a Tuesday
    w.clock(0)
    w.policy()  # 2 min to the agent, 5 min to the leader, 10 min a call
    w.say("在吗？我的快递丢了", at=0, ext="wmstale1")
    w.pulled(60)
    w.clock(9 * 3600)  # Wednesday 07:00: the archive is back
    w.pulled(9 * 3600)
    assert w.fire() == 0
    assert [st[1] for st in w.steps("wmstale1")] == ["skipped", "skipped", "skipped"]

    board = _get(w, "/api/v1/sla/board").json()
    assert board["day"] == "2025-09-10" and board["breaches_total"] == 0
    problems = sorted(board["delivery_problems"], key=lambda p: p["error"])
    assert [(p["kind"], p["status"], p["recipient"], p["target"]) for p in problems] == [
        ("step", "stale", "zhangsan", "agent"),
        ("step", "stale", "zhangsan", "leader"),
        ("step", "stale", "zhangsan", "agent"),
    ], problems
    assert problems[0]["error"].startswith("第 1 步 09-09 22:02 到期，8 小时 58 分后才轮到"), problems[0]
    assert problems[1]["error"].startswith("第 2 步 09-09 22:05 到期"), problems[1]

    page = _get(w, "/sla").text
    rows = sorted(_rows(page, "delivery-problems"), key=lambda r: r[5])
    assert [row[3:5] for row in rows] == [
        ["张三", "过期未发"],
        ["张三 的上级", "过期未发"],
        ["张三", "过期未发"],
    ]
    assert rows[2][5].startswith("第 3 步 09-09 22:10 到期"), rows
    # an agent sees their own
    mine = _get(w, "/api/v1/sla/board", role="agent", staff="zhangsan").json()["delivery_problems"]
    assert len(mine) == 3


def test_a_stale_limit_changed_through_the_api_applies_to_the_steps_firing_after_it(local):
    """The archive is down for 2 hours while a customer waits for 张三: under the default 6
    hours, his 2-minute card still goes when it comes back. An admin then sets the policy's
    stale limit to 1 hour (PUT /api/v1/sla/policy refused the field). The next customer's wait,
    begun before that change, is held up 2 hours the same way: its card is skipped as 过期未发,
    and the board lists it so; held up only 30 minutes, a third one's goes."""
    w = local
    w.t0 = datetime(2025, 9, 9, 10, 0, tzinfo=SHANGHAI)  # a Tuesday
    w.clock(0)
    w.policy(steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}])
    w.say("在吗？", at=0, ext="wmlate1")
    w.pulled(60)
    w.clock(2 * 3600)  # the archive is back
    w.pulled(2 * 3600)
    assert w.fire() == 1 and w.steps("wmlate1")[0][1] == "fired"

    w.say("在吗？我的快递丢了", at=2 * 3600 + 60, ext="wmlate2")
    w.pulled(2 * 3600 + 90)
    r = _ask(w, "PUT", "/api/v1/sla/policy", json={"stale_after_s": 3600})
    assert r.status_code == 200 and r.json()["stale_after_s"] == 3600, r.text
    w.clock(4 * 3600 + 60)  # the card was due 2 hours ago
    w.pulled(4 * 3600 + 60)
    assert w.fire() == 0 and w.steps("wmlate2")[0][1] == "skipped"
    problems = _get(w, "/api/v1/sla/board").json()["delivery_problems"]
    assert [(p["status"], p["recipient"]) for p in problems] == [("stale", "zhangsan")], problems

    w.say("您好", at=4 * 3600 + 120, ext="wmlate3")
    w.pulled(4 * 3600 + 150)
    w.clock(4 * 3600 + 120 + 120 + 1800)  # due 30 minutes ago: within the hour
    w.pulled(4 * 3600 + 120 + 120 + 1800)
    assert w.fire() == 1 and w.steps("wmlate3")[0][1] == "fired"


def test_a_wait_whose_steps_were_skipped_as_due_long_ago_does_not_say_its_reminders_are_off(local):
    """The archive was down from 22:01 to 07:00 while a customer waited: every step was skipped as
    due long ago. The board's row and the chat said 提醒已关闭，这次等待不发提醒 (the policy had
    reminders off), which it had not; they say the reminders were not sent, and the row names
    each step skipped, as the API does."""
    w = local
    w.t0 = datetime(2025, 9, 9, 22, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    w.say("在吗？我的快递丢了", at=0, ext="wmstale2")
    w.pulled(60)
    w.clock(9 * 3600)
    w.pulled(9 * 3600)
    assert w.fire() == 0
    cid = w.conversation("wmstale2").id

    [row] = _get(w, "/api/v1/sla/board").json()["waiting"]
    assert row["fired"] == [] and row["next_step_at"] is None
    assert [(s["step"], s["target"], s["reason"]) for s in row["skipped"]] == [
        (0, "agent", "stale"),
        (1, "leader", "stale"),
        (2, "agent", "stale"),
    ], row
    page = _get(w, "/sla").text
    item = re.search(rf'<li class="cust conv" data-conversation="{cid}"[^>]*>.*?</li>', page, re.S)[0]
    assert "提醒已关闭" not in item and "提醒没有发出" in item, item
    assert "第 2 步·提醒卡片→上级 · 过期未发" in re.sub(r"<[^>]+>", "", item), item
    chat = _get(w, f"/conversations/{cid}").text
    assert "提醒已关闭" not in chat and "提醒没有发出" in chat


def test_a_day_of_thousands_of_reminders_not_delivered_lists_the_newest_and_counts_the_rest(local):
    """Chats imported after the archive was down overnight leave a step skipped as due long ago
    for every wait: the board's 没送到的提醒 listed every one of them (thousands of rows after
    an import of months). It lists the newest 100 and counts them all by status, and so does
    the API."""
    w = local
    w.t0 = datetime(2025, 9, 9, 22, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    for i in range(40):  # three steps each: 120 not sent
        w.say(f"在吗？第{i}单", at=i, ext=f"wmflood{i}")
    w.pulled(60)
    w.clock(9 * 3600)
    w.pulled(9 * 3600)
    w.fire()
    board = _get(w, "/api/v1/sla/board").json()
    assert len(board["delivery_problems"]) == 100
    assert board["delivery_problems_by_status"] == {"stale": 120}
    listed = [p["at"] for p in board["delivery_problems"]]
    assert listed == sorted(listed, reverse=True)  # the newest
    page = _get(w, "/sla").text
    assert len(_rows(page, "delivery-problems")) == 100
    cut = re.search(r'id="problems-cut">(.*?)</p>', page, re.S)
    assert cut and "共 120 条：过期未发 120 条" in cut[1]


# ---------------------------------------------------------------- two days, audited

# The default policy's steps: a card to the agent at 2 minutes, to their leader at 5, a call at 10.
STEPS = [(120, "app_message"), (300, "app_message"), (600, "voice_call")]


def _two_teams(w) -> None:
    """销售一部 (张三, 李四) and 销售二部 (王五, 赵六, led by 王总)."""
    with w.session() as s:
        s.add(Department(wecom_id=3, name="销售二部", parent_wecom_id=1, leaders=["boss"]))
        s.add(
            Staff(
                userid="zhaoliu",
                name="赵六",
                departments=[3],
                main_department=3,
                direct_leaders=["boss"],
                mobile="13800000004",
            )
        )
        wangwu = s.scalar(select(Staff).where(Staff.userid == "wangwu"))
        wangwu.departments, wangwu.main_department, wangwu.direct_leaders = [3], 3, ["boss"]


def _at(day: int, hms: str) -> int:
    """Seconds from t0 (Wednesday 2025-09-10 00:00 in Shanghai) to `hms` on day 1 or 2."""
    h, m, s = (int(x) for x in hms.split(":"))
    return (day - 1) * 86400 + h * 3600 + m * 60 + s


def _expected(waits: list[tuple], now_s: int, t0: datetime) -> dict:
    """The board's figures per local day, from the waits alone, by the README's definitions:
    (agent, team, started, ended or None, answered). A wait is its start day's; a step fires
    at its due second unless the wait ended by then, and is the breach of the day it fired."""

    def day(s: int) -> date:
        return (t0 + timedelta(seconds=s)).date()

    def summary(values: list[int]) -> tuple:
        if not values:
            return (0, None, None, None)
        ordered = sorted(values)
        return (
            len(values),
            sum(values) / len(values),
            statistics.median(values),
            ordered[-(-9 * len(ordered) // 10) - 1],
        )

    out: dict = {}
    for agent, team, started, ended, answered in waits:
        d = out.setdefault(day(started), {"responses": {}, "shares": {}, "breaches": {}, "teams": {}})
        took = (ended if ended is not None else now_s) - started
        if answered:
            d["responses"].setdefault(agent, []).append(took)
        else:
            d["responses"].setdefault(agent, [])
        t = d["teams"].setdefault(team, {"responses": [], "first": [0, 0, 0]})
        if answered:
            t["responses"].append(took)
        for i, (delay, action) in enumerate(STEPS):
            counts = d["shares"].setdefault(i, [0, 0, 0])  # in time, late, outlived
            kind = (0 if took <= delay else 1) if answered else (2 if took > delay else None)
            if kind is not None:
                counts[kind] += 1
                if i == 0:
                    t["first"][kind] += 1
            due = started + delay
            if due <= now_s and (ended is None or ended > due):
                fired = out.setdefault(day(due), {"responses": {}, "shares": {}, "breaches": {}, "teams": {}})
                fired["breaches"][(i, action, agent, team)] = (
                    fired["breaches"].get((i, action, agent, team), 0) + 1
                )
    for d in out.values():
        d["all"] = summary([v for vs in d["responses"].values() for v in vs])
        d["by_agent"] = {a: summary(vs) for a, vs in d["responses"].items()}
    return out


def test_two_days_of_two_teams_read_as_the_readme_defines_each_figure(local):
    """Two days in Shanghai of 4 agents in two teams under the default policy (2 min card, 5
    min leader's card, 10 min call), each figure worked out beside from the waits alone.
    Wednesday: 张三 answers in 60 s, and in 120 s (the first step's due second: in time, no
    card), the first customer then says 好的，谢谢 (a closing remark: no wait); 李四 answers in
    30 s, recalls the answer at a minute and answers again at 3 minutes (180 s: the reply
    recalled is none, and the first step fires at 2 minutes); 王五 answers
    after the call (720 s); 赵六's customer is marked 无需回复 at 3 minutes (past the first
    step only); 李四's customer recalls the question; 王五's customer gets the welcome message
    (not a reply) and is answered at 4 minutes; a customer asks 张三 in a group (no wait); 赵六's
    customer asks at 23:58 and is answered at 00:03:30 (Wednesday's wait, Thursday's two
    breaches). Thursday: 张三 answers at 07:30 (a UTC Wednesday) in 30 s, a customer who asked
    twice after 3 minutes from the first, one customer twice (20 s, 40 s); 王五 and 张三 each leave
    one waiting. Read on Thursday at 11:20:30."""
    w = local
    w.t0 = datetime(2025, 9, 10, 0, 0, tzinfo=SHANGHAI)
    w.clock(0)
    _two_teams(w)
    w.policy()

    welcome = "您好，我是您的专属顾问王五"
    group = {"roomid": "wrgroup1"}

    def welcome_sent() -> None:
        with w.session() as s:
            s.add(
                OutboxMessage(
                    kind="welcome",
                    dedupe_key="welcome:audit",
                    payload={"userid": "wangwu", "external_userid": "wmG", "sent_text": welcome},
                    status="sent",
                    sent_at=w.at(_at(1, "16:00:01")),
                )
            )
        w.ingest(
            {
                **w._message("wangwu", "wmG", welcome, _at(1, "16:00:01"), "welcome-echo"),
                "msgid": "welcome-echo",
            }
        )

    asked_e: list[str] = []
    taken_back: list[str] = []
    events: list[tuple[int, Callable[[], object]]] = [
        (_at(1, "10:00:00"), lambda: w.say("请问有货吗？", 0 + _at(1, "10:00:00"), ext="wmA")),
        (_at(1, "10:00:00"), lambda: w.say("能开发票吗？", _at(1, "10:00:00"), ext="wmB")),
        (_at(1, "10:01:00"), lambda: w.reply("有的", _at(1, "10:01:00"), ext="wmA")),
        (_at(1, "10:02:00"), lambda: w.reply("可以开", _at(1, "10:02:00"), ext="wmB")),
        (_at(1, "10:03:00"), lambda: w.say("好的，谢谢", _at(1, "10:03:00"), ext="wmA")),
        (
            _at(1, "11:00:00"),
            lambda: w.say("订单什么时候发货？", _at(1, "11:00:00"), ext="wmC", staff="wangwu"),
        ),
        (_at(1, "11:12:00"), lambda: w.reply("今天发", _at(1, "11:12:00"), ext="wmC", staff="wangwu")),
        (_at(1, "12:00:00"), lambda: w.say("能开发票吗？", _at(1, "12:00:00"), ext="wmR", staff="lisi")),
        (
            _at(1, "12:00:30"),
            lambda: taken_back.append(w.reply("不能", _at(1, "12:00:30"), ext="wmR", staff="lisi")),
        ),
        (
            _at(1, "12:01:00"),
            lambda: w.ingest(_taken_back(w, taken_back[0], _at(1, "12:01:00"), "lisi", "wmR")),
        ),
        (_at(1, "12:03:00"), lambda: w.reply("可以开", _at(1, "12:03:00"), ext="wmR", staff="lisi")),
        (_at(1, "14:00:00"), lambda: w.say("在吗？", _at(1, "14:00:00"), ext="wmD", staff="zhaoliu")),
        (_at(1, "14:03:00"), lambda: _dismiss(w, "wmD", "zhaoliu", _at(1, "14:03:00"))),
        (
            _at(1, "15:00:00"),
            lambda: asked_e.append(w.say("请问有货吗？", _at(1, "15:00:00"), ext="wmE", staff="lisi")),
        ),
        (_at(1, "15:01:00"), lambda: w.recall(asked_e[0], _at(1, "15:01:00"), ext="wmE", staff="lisi")),
        (
            _at(1, "16:00:00"),
            lambda: w.say("你好，想了解一下你们的课程", _at(1, "16:00:00"), ext="wmG", staff="wangwu"),
        ),
        (_at(1, "16:00:01"), welcome_sent),
        (
            _at(1, "16:04:00"),
            lambda: w.reply("您想了解哪门课？", _at(1, "16:04:00"), ext="wmG", staff="wangwu"),
        ),
        (
            _at(1, "17:00:00"),
            lambda: w.ingest(
                {**w._message("wmH", "zhangsan", "有人在吗？", _at(1, "17:00:00"), None), **group}
            ),
        ),
        (
            _at(1, "17:30:00"),
            lambda: w.ingest({**w._message("zhangsan", "wmH", "在的", _at(1, "17:30:00"), None), **group}),
        ),
        (_at(1, "23:58:00"), lambda: w.say("在吗？", _at(1, "23:58:00"), ext="wmI", staff="zhaoliu")),
        (_at(2, "00:03:30"), lambda: w.reply("在的", _at(2, "00:03:30"), ext="wmI", staff="zhaoliu")),
        (_at(2, "07:30:00"), lambda: w.say("几点开门？", _at(2, "07:30:00"), ext="wmJ")),
        (_at(2, "07:30:30"), lambda: w.reply("九点", _at(2, "07:30:30"), ext="wmJ")),
        (_at(2, "09:00:00"), lambda: w.say("请问有货吗？", _at(2, "09:00:00"), ext="wmK")),
        (_at(2, "09:01:00"), lambda: w.say("什么时候能发货？", _at(2, "09:01:00"), ext="wmK")),
        (_at(2, "09:03:00"), lambda: w.reply("有货，明天发", _at(2, "09:03:00"), ext="wmK")),
        (_at(2, "10:00:00"), lambda: w.say("订单什么时候发货？", _at(2, "10:00:00"), ext="wmA")),
        (_at(2, "10:00:20"), lambda: w.reply("今天发", _at(2, "10:00:20"), ext="wmA")),
        (_at(2, "10:05:00"), lambda: w.say("物流单号是多少？", _at(2, "10:05:00"), ext="wmA")),
        (_at(2, "10:05:40"), lambda: w.reply("SF123", _at(2, "10:05:40"), ext="wmA")),
        (_at(2, "11:00:00"), lambda: w.say("能便宜点吗？", _at(2, "11:00:00"), ext="wmM", staff="wangwu")),
        (_at(2, "11:15:00"), lambda: w.say("能开发票吗？", _at(2, "11:15:00"), ext="wmN")),
    ]
    one, two = "销售一部", "销售二部"
    waits = [  # (agent, team, started, ended, answered): what the scenario means, by hand
        ("zhangsan", one, _at(1, "10:00:00"), _at(1, "10:01:00"), True),
        ("zhangsan", one, _at(1, "10:00:00"), _at(1, "10:02:00"), True),
        ("wangwu", two, _at(1, "11:00:00"), _at(1, "11:12:00"), True),
        ("lisi", one, _at(1, "12:00:00"), _at(1, "12:03:00"), True),  # the reply recalled is none
        ("zhaoliu", two, _at(1, "14:00:00"), _at(1, "14:03:00"), False),
        ("wangwu", two, _at(1, "16:00:00"), _at(1, "16:04:00"), True),
        ("zhaoliu", two, _at(1, "23:58:00"), _at(2, "00:03:30"), True),
        ("zhangsan", one, _at(2, "07:30:00"), _at(2, "07:30:30"), True),
        ("zhangsan", one, _at(2, "09:00:00"), _at(2, "09:03:00"), True),
        ("zhangsan", one, _at(2, "10:00:00"), _at(2, "10:00:20"), True),
        ("zhangsan", one, _at(2, "10:05:00"), _at(2, "10:05:40"), True),
        ("wangwu", two, _at(2, "11:00:00"), None, False),
        ("zhangsan", one, _at(2, "11:15:00"), None, False),
    ]
    now_s = _at(2, "11:20:30")
    # Siyu's clock and the archive move through every message and every step's due second:
    # the steps fire when due (a reply at the due second itself comes first), as the worker would
    ticks = sorted({t for t, _ in events} | {s + d for _, _, s, _, _ in waits for d, _ in STEPS} | {now_s})
    for t in (t for t in ticks if t <= now_s):
        w.clock(t)
        for _, event in (e for e in events if e[0] == t):
            event()
        w.pulled(t)
        w.fire()

    expected = _expected(waits, now_s, w.t0)
    names = {"zhangsan": "张三", "lisi": "李四", "wangwu": "王五", "zhaoliu": "赵六"}
    for day in (date(2025, 9, 10), date(2025, 9, 11)):
        e = expected[day]
        board = _get(w, f"/api/v1/sla/board?day={day}").json()
        fr = board["first_response"]
        assert (fr["count"], fr["mean_s"], fr["median_s"], fr["p90_s"]) == e["all"], (day, fr)
        got = {
            a["staff_userid"]: (a["count"], a["mean_s"], a["median_s"], a["p90_s"])
            for a in board["first_response_by_agent"]
        }
        assert got == e["by_agent"], (day, got)
        shares = {
            x["step"]: [x["answered"], x["answered_late"], x["outlived"]] for x in board["within_steps"]
        }
        assert shares == e["shares"], (day, shares)
        for x in board["within_steps"]:
            decided = sum(e["shares"][x["step"]])
            assert x["share"] == e["shares"][x["step"]][0] / decided, (day, x)
        by_step: dict = {}
        by_agent: dict = {}
        by_team: dict = {}
        for (i, action, agent, team), n in e["breaches"].items():
            by_step[(i, action)] = by_step.get((i, action), 0) + n
            by_agent[names[agent]] = by_agent.get(names[agent], 0) + n
            by_team[team] = by_team.get(team, 0) + n
        assert {(x["step"], x["action"]): x["count"] for x in board["breaches_by_step"]} == by_step, day
        assert {x["staff_name"]: x["count"] for x in board["breaches_by_agent"]} == by_agent, day
        assert board["breaches_total"] == sum(by_step.values())
        teams = {t["department_name"]: t for t in board["by_team"]}
        for team, t in e["teams"].items():
            assert teams[team]["breaches"] == by_team.get(team, 0), (day, team)
            fr = teams[team]["first_response"]
            assert fr["count"] == len(t["responses"]) and fr["median_s"] == (
                statistics.median(t["responses"]) if t["responses"] else None
            ), (day, team, fr)
            decided = sum(t["first"])
            assert teams[team]["first_step_share"] == (t["first"][0] / decided if decided else None), (
                day,
                team,
            )
        # who waits now is today's (Thursday's), not Wednesday's
        waiting = {n: t["waiting"] for n, t in teams.items() if t["waiting"] != 0}
        assert waiting == ({one: 1, two: 1} if day == date(2025, 9, 11) else {one: None, two: None})
        # longest first (Siyu's clock runs on while the test reads: a second or two later)
        assert [(r["staff_name"], r["waited_s"] // 10) for r in board["waiting"]] == [
            ("王五", 123),
            ("张三", 33),
        ]

    # the same, worked out by hand, as the page shows it
    wednesday, thursday = expected[date(2025, 9, 10)], expected[date(2025, 9, 11)]
    assert wednesday["all"] == (6, 275, 210, 720)
    assert wednesday["shares"] == {0: [2, 4, 1], 1: [4, 2, 0], 2: [5, 1, 0]}
    assert thursday["all"] == (4, 67.5, 35, 180)
    assert thursday["shares"] == {0: [3, 1, 2], 1: [4, 0, 2], 2: [4, 0, 1]}
    page = _get(w, "/sla?day=2025-09-10").text
    assert '09-10 超时 <small class="muted">共 6 次提醒</small>' in page
    assert _rows(page, "breaches-by-agent") == [["王五", "4"], ["李四", "1"], ["赵六", "1"]]
    stats = re.search(r'id="first-response">(.*?)</div>\n</div>', page, re.S)[1]
    assert re.findall(r"<b>(.*?)</b>", stats) == ["4 分 35 秒", "3 分 30 秒", "12 分 0 秒", "6"]
    assert [r[1:] for r in _rows(page, "within-steps")] == [
        ["28.6%", "2", "4", "1"],
        ["66.7%", "4", "2", "0"],
        ["83.3%", "5", "1", "0"],
    ]
    assert _rows(page, "first-response-by-agent") == [
        ["张三", "2", "1 分 30 秒", "1 分 30 秒", "2 分 0 秒"],
        ["李四", "1", "3 分 0 秒", "3 分 0 秒", "3 分 0 秒"],
        ["王五", "2", "8 分 0 秒", "8 分 0 秒", "12 分 0 秒"],
        ["赵六", "1", "5 分 30 秒", "5 分 30 秒", "5 分 30 秒"],
    ]
    assert _rows(page, "by-team") == [
        ["销售二部", "5", "0%", "5 分 30 秒"],
        ["销售一部", "1", "66.7%", "2 分 0 秒"],
    ]
    today = _get(w, "/sla").text
    assert '超时 <small class="muted">共 8 次提醒</small>' in today
    assert _rows(today, "breaches-by-agent") == [["王五", "3"], ["张三", "3"], ["赵六", "2"]]


def _taken_back(w, msgid: str, at: int, staff: str, ext: str) -> dict:
    """`staff` recalls their message `msgid` at t0 + `at`."""
    message = {**w._message(staff, ext, "", at, "r" + msgid), "action": "recall", "msgtype": "revoke"}
    message["revoke"] = {"pre_msgid": msgid}
    message.pop("text")
    return message


def _dismiss(w, ext: str, staff: str, at: int) -> None:
    with w.session() as s:
        assert conversation_service.dismiss(s, w.conversation(ext, staff).id, at=w.at(at), by="赵六")


def test_under_business_hours_the_shares_and_steps_count_business_time_the_first_response_both(local):
    """Shifts 09:00-18:00. Wednesday 17:58 a customer asks 王五, who never answers; 17:59 one
    asks 张三, who answers on Thursday at 09:05 (1 business minute on Wednesday, 5 on
    Thursday: 360 s; 15 h 6 min by the wall clock). 王五's first step comes due at 18:00 on
    Wednesday, his later ones at 09:03 and 09:08 on Thursday, 张三's at 09:01 and 09:04: each
    the breach of the day it fired. Both waits are Wednesday's; read at Thursday 09:29."""
    w = local
    w.t0 = datetime(2025, 9, 10, 0, 0, tzinfo=SHANGHAI)  # Wednesday
    w.clock(0)
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["09:00", "18:00"]], quiet_hours=[])
    asked, answered, now_s = _at(1, "17:59:00"), _at(2, "09:05:00"), _at(2, "09:29:00")
    for t in range(_at(1, "17:58:00"), now_s + 1, 60):  # the worker, each minute
        w.clock(t)
        if t == _at(1, "17:58:00"):
            w.say("在吗？", at=t, ext="wmlate", staff="wangwu")
        if t == asked:
            w.say("明天能发货吗？", at=t)
        if t == answered:
            w.reply("可以", at=t)
        w.pulled(t)
        w.fire()

    wednesday = _get(w, "/api/v1/sla/board?day=2025-09-10").json()
    assert {a["staff_name"]: a["count"] for a in wednesday["breaches_by_agent"]} == {"王五": 1}
    assert wednesday["first_response"]["median_s"] == answered - asked  # wall time: 15 h 6 min
    assert wednesday["first_response_business"]["median_s"] == 360
    # by business time: 张三 late for the 2 and 5 minute steps, within 10; 王五 (31 business
    # minutes so far) past all three
    shares = [(x["answered"], x["answered_late"], x["outlived"]) for x in wednesday["within_steps"]]
    assert shares == [(0, 1, 1), (0, 1, 1), (1, 0, 1)], shares
    [row] = wednesday["waiting"]
    assert row["waited_business_s"] // 60 == 31 and row["waited_s"] // 3600 == 15, row
    thursday = _get(w, "/api/v1/sla/board").json()
    assert {a["staff_name"]: a["count"] for a in thursday["breaches_by_agent"]} == {"王五": 2, "张三": 2}
    assert thursday["first_response"]["count"] == 0  # no wait began on Thursday


# ---------------------------------------------------------------- whose reminder did not arrive


def _problem_rows(w, role: str = "admin", staff: str | None = None) -> tuple[list[dict], str]:
    """The day's reminders not delivered as the API lists them to one person, and their page's table."""
    person = SignedIn(w.rt, w.tenant_id, role, staff, "看板")
    problems = person("GET", "/api/v1/sla/board").json()["delivery_problems"]
    page = person("GET", "/sla").text
    return problems, re.search(r'<table[^>]*id="delivery-problems".*?</table>', page, re.S)[0]


def _card_given_up(w) -> None:
    """The cards firing queued are built, and WeCom gives them up at once (as the outbox
    records a Permanent answer: every recipient invalid)."""
    cards = [m for m in w.outbox() if m.status == "pending"]
    tasks._notices(w.rt, w.tenant_id, cards)
    with w.session() as s:
        for card in cards:
            row = s.get(OutboxMessage, card.id)
            row.status, row.attempts, row.last_error = "dead", 1, "消息接收人全部无效 (errcode 81013)"
            row.created_at = w.rt.now()  # queued on the test's day (the outbox stamps it by the wall clock)


def test_a_card_given_up_and_a_call_that_never_rings_name_the_customer_they_were_about(local, db, settings):
    """A card to 张三 about 王女士 WeCom gave up on, and the call to him that its policy never
    lets ring: 没送到的提醒 said 提醒卡片 · 张三 · 未送达 and 语音电话 · 张三 · 不会拨打, and a
    supervisor could not tell which customer was left waiting. Each row names her, linked to her
    chat, and so does the API."""
    w = local
    w.t0 = bj(2025, 9, 16, 22, 30).astimezone(UTC)  # a Tuesday night, in the shift
    w.clock(0)
    w.customer("wmcustomer1", "王女士")
    _never_ring_policy(w)
    _card_then_call(w, "wmcustomer1", 0)
    _card_given_up(w)
    [call] = _send_calls(w, db, settings)
    assert call.status == "never" and call.told_waits is None  # never planned: known by its step
    cid = w.conversation().id

    problems, table = _problem_rows(w)
    assert sorted((p["kind"], p["status"], p["customers"], p["customers_total"]) for p in problems) == [
        ("call", "never", [{"conversation_id": cid, "name": "王女士"}], 1),
        ("card", "given_up", [{"conversation_id": cid, "name": "王女士"}], 1),
    ], problems
    rows = sorted(_rows(table, "delivery-problems"), key=lambda r: r[1])
    assert [row[1:5] for row in rows] == [
        ["提醒卡片", "王女士", "张三", "未送达"],
        ["语音电话", "王女士", "张三", "不会拨打"],
    ], rows
    assert table.count(f'<a href="/conversations/{cid}">王女士</a>') == 2, table


def test_a_call_about_many_customers_names_the_longest_waiting_and_counts_them_all(local):
    """Five of 张三's customers wait; one call to him about them all fails. The row names the
    three who have waited longest and says 等 5 位客户; the API lists all five."""
    w = local
    w.t0 = datetime(2025, 9, 10, 12, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}], call_cooldown_s=900)
    names = ["甲先生", "乙女士", "丙先生", "丁女士", "戊先生"]
    for i, name in enumerate(names):
        w.customer(f"wmmany{i}", name)
        w.say("电话怎么打不通？", at=i, ext=f"wmmany{i}")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 5  # the first step queues the call; the others join it
    [message] = w.outbox("sla_call")
    assert tasks._call_plan(w.rt, w.tenant_id, message)["params"][0] == "5"
    with w.session() as s:  # the voice provider refused it for good (as the outbox records it)
        tasks._call_failed(s, message, "语音网关拒绝了这次呼叫")

    problems, table = _problem_rows(w)
    [call] = problems
    assert [c["name"] for c in call["customers"]] == names and call["customers_total"] == 5, call
    [row] = _rows(table, "delivery-problems")
    assert row[1:5] == ["语音电话", "甲先生、乙女士、丙先生等 5 位客户", "张三", "拨打失败"], row


def test_a_supervisor_is_not_told_the_name_of_another_teams_customer_a_reminder_was_about(local):
    """The policy's escalation contact is 张三 (销售一部): 王五's (销售二部) customer 孙先生 waits,
    and the call to 张三 about him and 张三's own 王女士 fails. 李四, who leads 销售一部, sees
    the call to 张三 named by 王女士 alone (he may not open 孙先生's chat), with 2 customers
    counted; the admin, and 张三 who was to be called, see both."""
    w = local
    w.t0 = datetime(2025, 9, 10, 12, 0, tzinfo=SHANGHAI)
    w.clock(0)
    _two_teams(w)
    w.policy(
        steps=[{"delay_s": 60, "action": "voice_call", "target": "contact"}],
        escalation_contact="zhangsan",
    )
    w.customer("wmother", "孙先生")
    w.customer("wmown", "王女士")
    w.say("在吗？", at=0, ext="wmother", staff="wangwu")
    w.say("在吗？", at=1, ext="wmown")
    w.pulled(7200)
    w.clock(70)
    w.fire()  # 王五's step calls 张三; 张三's own reaches nobody (the contact is himself)
    [message] = w.outbox("sla_call")
    assert tasks._call_plan(w.rt, w.tenant_id, message)["params"][0] == "2"
    with w.session() as s:
        tasks._call_failed(s, message, "语音网关拒绝了这次呼叫")
    other, own = w.conversation("wmother", "wangwu").id, w.conversation("wmown").id

    def call_row(role: str, staff: str | None = None) -> tuple[dict, list[str]]:
        problems, table = _problem_rows(w, role, staff)
        [call] = [p for p in problems if p["kind"] == "call"]
        [row] = [r for r in _rows(table, "delivery-problems") if r[1] == "语音电话"]
        return call, row

    call, row = call_row("supervisor", "lisi")
    assert call["customers"] == [{"conversation_id": own, "name": "王女士"}] and call["customers_total"] == 2
    assert row[2] == "王女士等 2 位客户", row
    for role, staff in [("admin", None), ("agent", "zhangsan")]:
        call, row = call_row(role, staff)
        assert [c["conversation_id"] for c in call["customers"]] == [other, own], (role, call)
        assert row[2] == "孙先生、王女士", (role, row)


def test_a_reminder_not_delivered_is_listed_to_whoever_sees_its_customer_and_to_whom_it_was_for(local):
    """Step 1 cards the agent, step 2 the policy's escalation contact 王五 (销售二部). 张三's 王女士
    and 王五's 孙先生 wait; WeCom gives up on every card. 李四, who leads 销售一部, was not told
    that the card to 王五 about 王女士 failed (tables and counts went by whom a card was for): he
    is, with her named, and 没送到的提醒 counts 2. 张三 still does not see the card to 王五 about 孙先生,
    nor 王五 the card to 张三; 王五 sees the card sent to him about 王女士, named for him."""
    w = local
    w.t0 = datetime(2025, 9, 10, 12, 0, tzinfo=SHANGHAI)
    w.clock(0)
    _two_teams(w)
    w.policy(
        steps=[
            {"delay_s": 60, "action": "app_message", "target": "agent"},
            {"delay_s": 120, "action": "app_message", "target": "contact"},
        ],
        escalation_contact="wangwu",
    )
    w.customer("wmown", "王女士")
    w.customer("wmother", "孙先生")
    w.say("在吗？", at=0, ext="wmown")
    w.say("在吗？", at=0, ext="wmother", staff="wangwu")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 2  # a card to each agent
    _card_given_up(w)
    w.clock(130)
    assert w.fire() == 1  # 张三's to 王五; 王五's own reaches nobody (the contact is himself)
    _card_given_up(w)
    own, other = w.conversation("wmown").id, w.conversation("wmother", "wangwu").id

    def cards(role: str, staff: str) -> tuple[list[tuple], dict, list[list[str]], str]:
        person = SignedIn(w.rt, w.tenant_id, role, staff, "看板")
        board = person("GET", "/api/v1/sla/board").json()
        listed = sorted(
            (p["recipient"], [c["conversation_id"] for c in p["customers"]])
            for p in board["delivery_problems"]
            if p["kind"] == "card"
        )
        page = person("GET", "/sla").text
        rows = sorted(r[1:5] for r in _rows(page, "delivery-problems") if r[1] == "提醒卡片")
        return listed, board["delivery_problems_by_status"], rows, page

    listed, counts, rows, page = cards("supervisor", "lisi")
    assert listed == [("wangwu", [own]), ("zhangsan", [own])], listed
    assert counts == {"given_up": 2}, counts
    assert rows == [["提醒卡片", "王女士", "张三", "未送达"], ["提醒卡片", "王女士", "王五", "未送达"]], rows
    assert '没送到的提醒 <small class="muted">2 条</small>' in page

    listed, counts, _, _ = cards("agent", "zhangsan")
    assert listed == [("wangwu", [own]), ("zhangsan", [own])], listed  # not 王五's card about 孙先生
    assert counts == {"given_up": 2}, counts

    listed, counts, rows, _ = cards("agent", "wangwu")
    assert listed == [("wangwu", [own]), ("wangwu", [other])], listed  # not the card to 张三
    assert counts == {"given_up": 2, "nobody": 1}, counts
    assert rows == [["提醒卡片", "孙先生", "王五", "未送达"], ["提醒卡片", "王女士", "王五", "未送达"]], rows


def test_the_customers_of_the_reminders_not_delivered_cost_the_board_the_same_reads_however_many(local):
    """The board is read often: naming each card's customers takes the same statements for one
    card given up as for four, to four members about four customers."""
    w = local
    w.t0 = datetime(2025, 9, 10, 12, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy(steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}])
    admin = SignedIn(w.rt, w.tenant_id, "admin", None, "看板")

    def reads() -> tuple[int, list[str]]:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        db_events.listen(w.rt.db.engine, "before_cursor_execute", listener)
        try:
            problems = admin("GET", "/api/v1/sla/board").json()["delivery_problems"]
        finally:
            db_events.remove(w.rt.db.engine, "before_cursor_execute", listener)
        return len(seen), sorted(c["name"] for p in problems for c in p["customers"])

    def asked(staff: str, at: int) -> None:
        w.customer(f"wm{staff}", f"{staff} 的客户")
        w.say("在吗？", at=at, ext=f"wm{staff}", staff=staff)
        w.pulled(at + 3600)
        w.clock(at + 70)
        assert w.fire() == 1
        _card_given_up(w)

    asked("zhangsan", 0)
    few, named = reads()
    assert named == ["zhangsan 的客户"]
    for staff in ("lisi", "wangwu", "boss"):
        asked(staff, 100)
    many, named = reads()
    assert len(named) == 4, named
    assert many == few, (few, many)


def test_a_supervisors_board_reads_only_the_failed_reminders_of_their_team(local):
    """王五 (销售二部) has 8 customers waiting, 张三 (销售一部) one; WeCom gives up on the card to
    each, the voice gateway refuses the call to each. 李四, who leads 销售一部, sees the card and
    the call to 张三; his board read every failed card and call of the day and sorted them out
    itself (5,000 a busy day, most about other teams: 0.1 to 0.2 s a board). It reads whole only
    those sent to his team or about its customers."""
    w = local
    w.t0 = datetime(2025, 9, 10, 12, 0, tzinfo=SHANGHAI)
    w.clock(0)
    _two_teams(w)
    w.policy(
        steps=[
            {"delay_s": 60, "action": "app_message", "target": "agent"},
            {"delay_s": 120, "action": "voice_call", "target": "agent"},
        ]
    )
    for i in range(8):
        w.say("在吗？", at=i, ext=f"wmother{i}", staff="wangwu")
    w.say("在吗？", at=0, ext="wmown")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 9
    _card_given_up(w)
    w.clock(130)
    assert w.fire() == 9
    for message in w.outbox("sla_call"):  # one call a callee, about all their customers
        assert tasks._call_plan(w.rt, w.tenant_id, message)
        with w.session() as s:
            tasks._call_failed(s, message, "语音网关拒绝了这次呼叫")
    lisi = SignedIn(w.rt, w.tenant_id, "supervisor", "lisi", "看板")
    statements = []
    listener = lambda *args: statements.append(args[2:4])  # noqa: E731
    db_events.listen(w.rt.db.engine, "before_cursor_execute", listener)
    try:
        board = lisi("GET", "/api/v1/sla/board").json()
    finally:
        db_events.remove(w.rt.db.engine, "before_cursor_execute", listener)

    assert sorted((p["kind"], p["recipient"]) for p in board["delivery_problems"]) == [
        ("call", "zhangsan"),
        ("card", "zhangsan"),
    ]
    assert board["delivery_problems_by_status"] == {"given_up": 1, "failed": 1}
    read = {}
    with w.rt.db.engine.connect() as conn:  # the cards and calls the board read whole, read again
        for sql, params in statements:
            whole = re.match(r"SELECT (.*?)\s+FROM (outbox|sla_calls)\b", sql, re.S)
            if whole and re.search(r"\.(last_)?error\b", whole[1]) and "created_at <" in sql:
                read[whole[2]] = read.get(whole[2], 0) + len(conn.exec_driver_sql(sql, params).all())
    assert read == {"outbox": 1, "sla_calls": 1}, read


def test_a_step_names_only_the_delays_its_waits_were_held_to(local):
    """销售二部 keeps a policy of its own: a card at 1 minute, where the tenant's is at 2. 王五 (who
    leads 销售二部) answers his customer in 90 s: late by his minute. His board's first row read
    第 1 步 按各自策略：1 分钟、2 分钟内 beside 超时回复 1, a reply of 1 分 30 秒 counted late under a
    limit of 2 minutes that no wait of his was held to, and rows for the tenant's 5 and 10 minute
    steps his policy has not; the API's `delays_s` listed the tenant's 120 as well. It names his
    minute alone. The admin, whose board counts 张三's 90 s under the tenant's 2 minutes too,
    reads both."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    _two_teams(w)
    w.policy()  # 2 min, 5 min, 10 min
    with w.session() as s:
        s.scalar(select(Department).where(Department.wecom_id == 3)).leaders = ["wangwu"]
        service.save_department_policy(
            s, 3, steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}], quiet_hours=[]
        )
    w.say("请问有货吗？", at=0, ext="wmdept1", staff="wangwu")
    w.say("请问有货吗？", at=0, ext="wmdept2")
    w.clock(60)
    w.pulled(60)
    assert w.fire() == 1  # 王五's minute
    w.reply("有的", at=90, ext="wmdept1", staff="wangwu")
    w.reply("有的", at=90, ext="wmdept2")
    w.pulled(3600)
    w.clock(3600)

    supervisor = SignedIn(w.rt, w.tenant_id, "supervisor", "wangwu", "看板")
    within = supervisor("GET", "/api/v1/sla/board").json()["within_steps"]
    assert [(x["delays_s"], x["answered"], x["answered_late"]) for x in within] == [([60], 0, 1)], within
    rows = _rows(supervisor("GET", "/sla").text, "within-steps")
    assert rows == [["第 1 步1 分钟内", "0%", "0", "1", "0"]], rows

    admin = _get(w, "/api/v1/sla/board").json()["within_steps"]
    assert [(x["delays_s"], x["answered"], x["answered_late"]) for x in admin] == [
        ([60, 120], 1, 1),
        ([300], 1, 0),
        ([600], 1, 0),
    ], admin
    rows = _rows(_get(w, "/sla").text, "within-steps")
    assert rows[0] == ["第 1 步按各自策略：1 分钟、2 分钟内", "50.0%", "1", "1", "0"], rows


def _said(page: str, section: str) -> str:
    """The text of the page's section headed `section` (今日首次响应), tags left out."""
    found = re.search(rf"<h2>{section}</h2>(.*?)</section>", page, re.S)
    assert found, f"no section {section}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found[1])).strip()


def test_a_reply_after_midnight_to_the_day_befores_wait_is_not_said_to_be_none_today(local):
    """Wednesday 23:58 a customer asks 张三, who answers at 00:03 on Thursday: the wait is
    Wednesday's, in Wednesday's figures. Thursday's board said 今日还没有回复过等待中的客户 right
    under 今日超时 1 次 (its 2-minute step fired at 00:00), though 张三 had answered a waiting customer
    that day; nor did Wednesday's figures say they count waits by the day they began. Thursday says
    no customer began waiting today and that such a reply counts on the day the wait began; once one
    begins and is not answered yet, that it has not been; Wednesday's note says the rule."""
    w = local
    w.t0 = datetime(2025, 9, 10, 23, 58, tzinfo=SHANGHAI)  # Wednesday 23:58:00
    w.clock(0)
    w.policy()
    w.say("在吗？", at=0, ext="wmlate1")
    w.clock(120)
    w.pulled(120)
    assert w.fire() == 1  # Thursday 00:00
    w.reply("在的", at=300, ext="wmlate1")
    w.pulled(400)
    w.clock(400)

    thursday = _get(w, "/sla").text
    assert '今日超时 <small class="muted">共 1 次提醒</small>' in thursday
    said = _said(thursday, "今日首次响应")
    assert "还没有回复过" not in said, said
    assert said == "今日还没有客户开始等待回复（之前开始等待、今日才回复的，算在开始等待的那天）。", said

    w.say("这款有货吗？", at=600, ext="wmlate2")
    w.pulled(700)
    w.clock(700)
    said = _said(_get(w, "/sla").text, "今日首次响应")
    assert said.startswith("今日开始等待的客户还没有得到回复（"), said

    wednesday = _get(w, "/sla?day=2025-09-10").text
    note = re.search(r'id="first-response-note">(.*?)</p>', wednesday, re.S)[1]
    assert "每次等待算一次" in note and "算在开始等待的那天" in note, note
    assert "超时提醒按发出的时间算" in note, note


def test_a_reply_a_fraction_of_a_second_past_a_step_does_not_read_as_within_it(local):
    """WeCom times messages to the millisecond. 张三 answers 119.6 s after his customer asked: within
    the 2-minute step; 王五 answers 120.4 s after his: late, his card fired at 120 s. The board
    said 2 分 0 秒 for both (rounded), 王五's under 超时回复 1 beside 第 1 步 2 分钟内, and the
    customer's timeline said 用时 2 分 0 秒 (cut down) for his. A response time is told in whole
    seconds rounded up: 王五's 2 分 1 秒, 张三's 2 分 0 秒, each on the side of the limit it is counted on."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    w.customer("wmfast", "马强")
    w.customer("wmslow", "刘总")
    w.say("请问有货吗？", at=0, ext="wmfast")
    w.say("请问有货吗？", at=0, ext="wmslow", staff="wangwu")
    w.reply("有的", at=119.6, ext="wmfast")
    w.clock(120)
    w.pulled(120)
    assert w.fire() == 1  # 王五's card
    w.reply("有的", at=120.4, ext="wmslow", staff="wangwu")
    w.pulled(3600)
    w.clock(3600)

    board = _get(w, "/api/v1/sla/board").json()
    first = board["within_steps"][0]
    assert (first["answered"], first["answered_late"]) == (1, 1) and board["breaches_total"] == 1
    page = _get(w, "/sla").text
    assert _rows(page, "first-response-by-agent") == [
        ["张三", "1", "2 分 0 秒", "2 分 0 秒", "2 分 0 秒"],
        ["王五", "1", "2 分 1 秒", "2 分 1 秒", "2 分 1 秒"],
    ]
    figures = re.search(r'id="first-response">(.*?)</div>\s*</div>', page, re.S)[1]
    assert re.findall(r"<b>(.*?)</b>", figures) == ["2 分 0 秒", "2 分 0 秒", "2 分 1 秒", "2"]

    with w.session() as s:
        slow = s.scalar(select(Customer.id).where(Customer.external_userid == "wmslow"))
    timeline = _get(w, f"/customers/{slow}").text
    assert "王五 回复，用时 2 分 1 秒" in timeline, re.findall(r"用时[^；<]*", timeline)


def test_the_on_time_note_names_every_way_a_wait_can_end_unanswered(local):
    """The customer waits 3 minutes (the 2-minute card fires) and then declines archiving: the
    wait ends unanswered and counts 仍未回复 for the first step. The note under the table said
    仍未回复 includes waits later marked 无需回复, 客户删除 or 转接: not this one, and 客户删除 read as
    either side deleting. It names each: the customer deleting the member, the member deleting the
    customer, the customer declining archiving, a transfer."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    w.say("在吗？", at=0, ext="wmdecline")
    w.clock(120)
    w.pulled(120)
    assert w.fire() == 1
    declined = {**w._message("wmdecline", "zhangsan", "", 180, None), "msgtype": "disagree"}
    declined.pop("text")
    declined["disagree"] = {"userid": "zhangsan", "disagree_time": 1}
    w.ingest(declined)
    assert w.waits("wmdecline")[0].close_reason == "declined"
    w.pulled(3600)
    w.clock(3600)

    page = _get(w, "/sla").text
    assert _rows(page, "within-steps")[0][1:] == ["0%", "0", "0", "1"]
    note = re.search(r'id="within-steps-note">(.*?)</p>', page, re.S)[1]
    assert "仍未回复：过了时限还没有回复" in note
    for ending in ("无需回复", "客户删除了成员", "成员删除了客户", "客户未同意会话存档", "转接给其他成员"):
        assert ending in note, (ending, note)


def test_a_snooze_holds_the_reminders_not_the_clock_of_the_on_time_shares(local):
    """10:00 a customer asks 张三, who snoozes the reminders for 15 minutes at 10:01 and answers at
    10:10. No step fires (each moved past the snooze): no breach. The customer still waited 10
    minutes: late for the 2 and 5 minute steps, within the 10, and a response of 10 分 0 秒."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()  # 2 min, 5 min, 10 min
    w.say("请问有货吗？", at=0, ext="wmsnooze")
    w.clock(60)
    with w.session() as s:
        assert service.snooze(s, w.conversation("wmsnooze").id, w.at(60 + 900), w.rt.now(), by="张三") == 1
    for t in (120, 300, 599):
        w.clock(t)
        w.pulled(t)
        assert w.fire() == 0
    w.reply("有的", at=600, ext="wmsnooze")
    w.pulled(3600)
    w.clock(3600)

    board = _get(w, "/api/v1/sla/board").json()
    assert board["breaches_total"] == 0 and board["first_response"]["median_s"] == 600
    shares = [(x["answered"], x["answered_late"], x["outlived"]) for x in board["within_steps"]]
    assert shares == [(0, 1, 0), (0, 1, 0), (1, 0, 0)], shares
    assert [r[1:] for r in _rows(_get(w, "/sla").text, "within-steps")] == [
        ["0%", "0", "1", "0"],
        ["0%", "0", "1", "0"],
        ["100%", "1", "0", "0"],
    ]


def test_business_time_stands_still_over_the_lunch_break(local):
    """Shifts 09:00-12:00 and 13:30-18:00. Customers ask 张三 at 11:59:00 and 11:59:30; he answers
    at 13:31:00 (60 + 60 business seconds: within the 2-minute step, due that very second) and
    13:32:00 (30 + 120: late; its card fired at 13:31:30, the day's one breach). By the wall clock
    both took over an hour and a half."""
    w = local
    w.t0 = datetime(2025, 9, 10, 0, 0, tzinfo=SHANGHAI)  # Wednesday
    w.clock(0)
    with w.session() as s:
        shifts = [["09:00", "12:00"], ["13:30", "18:00"]]
        service.save_policy(s, business_hours_only=True, shifts=shifts, quiet_hours=[])
    events = {
        _at(1, "11:59:00"): lambda: w.say("午饭前问一下", _at(1, "11:59:00"), ext="wmlunch1"),
        _at(1, "11:59:30"): lambda: w.say("午饭前问一下", _at(1, "11:59:30"), ext="wmlunch2"),
        _at(1, "13:31:00"): lambda: w.reply("好的", _at(1, "13:31:00"), ext="wmlunch1"),
        _at(1, "13:32:00"): lambda: w.reply("好的", _at(1, "13:32:00"), ext="wmlunch2"),
    }
    for t in range(_at(1, "11:59:00"), _at(1, "13:33:00"), 30):  # the worker, every 30 s
        w.clock(t)
        if t in events:
            events[t]()
        w.pulled(t)
        w.fire()

    board = _get(w, "/api/v1/sla/board").json()
    assert [(x["step"], x["count"]) for x in board["breaches_by_step"]] == [(0, 1)]
    business = board["first_response_business"]
    assert business == {"count": 2, "mean_s": 135.0, "median_s": 135.0, "p90_s": 150.0}, business
    assert board["first_response"]["median_s"] == 5535  # (5520 + 5550) / 2
    first = board["within_steps"][0]
    assert (first["answered"], first["answered_late"]) == (1, 1), first


def _recalled_while_waiting(w, recalled_at: int) -> None:
    """The default policy (a card to 张三 at 2 minutes, to his leader 李四 at 5, a call to 张三
    at 10); the customer writes 在吗 at 0 s and 这款有货吗 at 30 s, nobody replies, and the
    customer recalls 在吗 at `recalled_at`."""
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    w.customer("wmcustomer1", "王女士")
    first = w.say("在吗", at=0)
    w.say("这款有货吗", at=30)
    w.pulled(30)
    for t in range(60, recalled_at, 60):
        w.clock(t)
        w.pulled(t)
        w.fire()
    w.recall(first, at=recalled_at)


def _fired_at(w, since: int, until: int) -> list[int]:
    """The seconds after `since`, up to `until`, at which the worker passing every 10 s fires a step."""
    fired = []
    for t in range(since + 10, until + 1, 10):
        w.clock(t)
        w.pulled(t)
        fired += [t] * w.fire()
    return fired


def test_a_customer_recalling_their_first_message_is_not_reminded_about_twice(local):
    """Every step had fired when, at 700 s, the customer recalled 在吗: the second question has
    waited all along, the same wait, so no step fires again (a second card to 张三 and to 李四
    and a second call, 6 breaches for one wait). It began at 30 s: its reply at 800 s took
    770 s."""
    w = local
    _recalled_while_waiting(w, 700)
    assert _fired_at(w, 700, 790) == []
    w.reply("有货", at=800)
    w.pulled(800)
    board = _get(w, "/api/v1/sla/board").json()
    assert board["breaches_total"] == 3
    assert [(b["step"], b["count"]) for b in board["breaches_by_step"]] == [(0, 1), (1, 1), (2, 1)]
    assert board["first_response"]["median_s"] == 770.0
    cards = [o.payload.get("touser") for o in w.outbox("sla_notice")]
    assert cards == ["zhangsan", "lisi"] and len(w.outbox("sla_call")) == 1
    customer_id = w.conversation().customer_id
    timeline = _get(w, f"/api/v1/customers/{customer_id}/timeline").json()
    waits = [e for e in timeline if e["kind"] == "wait"]
    assert [(e["at"], e["data"]["state"], e["data"]["response_s"]) for e in waits] == [
        ("2025-09-10T02:00:30Z", "replied", 770.0)
    ]
    assert len(waits[0]["data"]["escalations"]) == 3


def _answer_taken_back(w, recalled_at: int, snooze_at: int | None = None) -> None:
    """The default policy; 张三 answered 在吗 (at 5 s), the customer asked 这款有货吗 (10 s),
    and 张三 recalled his answer (20 s): the customer waits from 在吗 (张三 carded at 120 s,
    李四 at 300 s, the call at 600 s), and recalls 在吗 at `recalled_at` (after 张三 held the
    reminders back until 1000 s at `snooze_at`, if given)."""
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    first = w.say("在吗", at=0)
    answer = w.reply("在", at=5)
    w.say("这款有货吗", at=10)
    w.recall(answer, at=20, ext="zhangsan", staff="wmcustomer1")
    w.pulled(20)
    _fired_at(w, 20, recalled_at)
    if snooze_at is not None:
        with w.session() as s:
            service.snooze(s, w.conversation().id, w.at(1000), w.at(snooze_at), by="张三")
    w.recall(first, at=recalled_at)


def test_a_customer_recalling_the_question_whose_answer_was_taken_back_is_not_reminded_twice(local):
    """At 310 s, after 李四's card, the customer recalls 在吗: 这款有货吗 waits on, the same wait,
    so neither card comes again (at 320 s, where 这款有货吗's own wait took up its steps again)
    and the call comes once, 10 minutes after 这款有货吗."""
    w = local
    _answer_taken_back(w, 310)
    assert _fired_at(w, 310, 600) == []
    assert _get(w, "/api/v1/sla/board").json()["breaches_total"] == 2
    assert _fired_at(w, 600, 900) == [610]
    assert [o.payload.get("touser") for o in w.outbox("sla_notice")] == ["zhangsan", "lisi"]
    assert [o.payload["callee"] for o in w.outbox("sla_call")] == ["zhangsan"]
    board = _get(w, "/api/v1/sla/board").json()
    assert [(b["step"], b["count"]) for b in board["breaches_by_step"]] == [(0, 1), (1, 1), (2, 1)]


def test_a_recall_of_the_question_whose_answer_was_taken_back_keeps_the_snooze(local):
    """张三 held the reminders back until 1000 s: after the recall at 310 s the call comes then, once."""
    w = local
    _answer_taken_back(w, 310, snooze_at=305)
    assert _fired_at(w, 310, 1300) == [1000]
    assert len(w.outbox("sla_call")) == 1


def test_a_recall_of_the_question_whose_answer_was_taken_back_after_the_call_repeats_nothing(local):
    w = local
    _answer_taken_back(w, 700)
    assert _fired_at(w, 700, 1300) == []
    assert _get(w, "/api/v1/sla/board").json()["breaches_total"] == 3


def test_a_recall_after_the_first_card_times_the_next_steps_from_the_question_kept(local):
    """Recalled at 200 s, after the card at 120 s: the wait runs from 30 s, so 李四's card comes
    at 330 s (not at 300 s, nor twice) and the call at 630 s; 张三 is not carded again."""
    w = local
    _recalled_while_waiting(w, 200)
    assert _fired_at(w, 200, 700) == [330, 630]
    assert [o.payload.get("touser") for o in w.outbox("sla_notice")] == ["zhangsan", "lisi"]
    assert _get(w, "/api/v1/sla/board").json()["breaches_total"] == 3


def test_both_recalls_in_one_pull_card_the_agent_once_and_the_leader_next(local):
    """张三 is carded at 120 s about 在吗 and answers 在 at 150 s; the customer asks 这款有货吗 at
    160 s. 张三 recalls 在 at 170 s, the customer 在吗 at 175 s, both brought by one pull: the
    customer has waited since 在吗 without an answer, then on 这款有货吗, one wait, so 张三 is not
    carded again (at 280 s, 2 minutes after 这款有货吗) but 李四 is, 5 minutes after it (460 s),
    as when the two recalls come in pulls of their own; 在 answered nothing (no first response
    of 150 s)."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    first = w.say("在吗", at=0)
    w.pulled(0)
    assert _fired_at(w, 0, 140) == [120]
    answer = w.reply("在", at=150)
    w.say("这款有货吗", at=160)
    w.pulled(160)
    assert _fired_at(w, 160, 190) == []
    w.ingest(_recall(w, answer, 170, by="zhangsan"), _recall(w, first, 175))
    assert _fired_at(w, 190, 800) == [460, 760]
    assert [o.payload.get("touser") for o in w.outbox("sla_notice")] == ["zhangsan", "lisi"]
    board = _get(w, "/api/v1/sla/board").json()
    assert board["breaches_total"] == 3 and board["first_response"]["count"] == 0


def test_a_recall_under_a_snooze_keeps_the_leaders_card_spaced_after_the_agents(local):
    """张三 answered 在吗 and took the answer back, so the customer waits from 在吗; at 30 s he
    holds the reminders back until 400 s: his card comes then, 李四's 3 minutes after it (580 s).
    The customer recalls 在吗 at 410 s: 这款有货吗 waits on, so 李四's card still comes at 580 s
    and the call 5 minutes after it, not 10 s after 张三's card."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    first = w.say("在吗", at=0)
    answer = w.reply("在", at=5)
    w.say("这款有货吗", at=10)
    w.recall(answer, at=20, ext="zhangsan", staff="wmcustomer1")
    w.pulled(20)
    with w.session() as s:
        service.snooze(s, w.conversation().id, w.at(400), w.at(30), by="张三")
    assert _fired_at(w, 20, 405) == [400]
    w.recall(first, at=410)
    assert _fired_at(w, 410, 1000) == [580, 880]
    assert [o.payload.get("touser") for o in w.outbox("sla_notice")] == ["zhangsan", "lisi"]


@pytest.mark.parametrize("first_taken_back", ["the answer", "the question"])
def test_a_question_and_its_answer_both_taken_back_answered_nothing_in_either_order(local, first_taken_back):
    """张三 answers 在吗 with 在 at 5 s, the customer asks 这款有货吗 at 10 s; at 15 s and 20 s the
    customer recalls 在吗 and 张三 recalls 在, in either order: 在吗 was never answered (it is no
    first response of 5 s, as it had stayed when the customer recalled first) and 这款有货吗
    waits on, 张三 carded about it at 130 s."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    first = w.say("在吗", at=0)
    answer = w.reply("在", at=5)
    w.say("这款有货吗", at=10)
    w.pulled(10)
    recalls = [_recall(w, answer, 15, by="zhangsan"), _recall(w, first, 20)]
    if first_taken_back == "the question":
        recalls = [_recall(w, first, 15), _recall(w, answer, 20, by="zhangsan")]
    for recall in recalls:
        w.ingest(recall)
    assert _fired_at(w, 20, 200) == [130]
    assert _get(w, "/api/v1/sla/board").json()["first_response"]["count"] == 0


def _wednesday_answered(w) -> None:
    """Wednesday 10:00 a customer asks 张三 (销售一部) and one asks 王总 (总部); both are answered
    at 10:01."""
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)  # Wednesday
    w.clock(0)
    w.policy()
    _two_teams(w)
    w.say("在吗？", at=0, ext="wmwed1")
    w.say("在吗？", at=0, ext="wmwed2", staff="boss")
    w.reply("在的", at=60, ext="wmwed1")
    w.reply("在的", at=60, ext="wmwed2", staff="boss")


def test_a_past_days_teams_are_those_busy_that_day_not_those_with_customers_waiting_now(local):
    """Wednesday 10:00 a customer asks 张三 (销售一部) and one asks 王总 (总部); both are answered
    at 10:01. Thursday 09:00 a customer asks 赵六 (销售二部), who has not answered by 09:01.
    Wednesday's 各团队 table listed 销售二部 too, a row of zeros beside "1 等待中": its team did
    nothing that day, its customer waits now. A past day lists the teams busy that day, and
    leaves who waits now to today's board; the API as the page."""
    w = local
    _wednesday_answered(w)
    w.say("在吗？", at=23 * 3600, ext="wmthu", staff="zhaoliu")  # Thursday 09:00
    w.pulled(23 * 3600 + 60)
    w.clock(23 * 3600 + 60)

    wednesday = _get(w, "/api/v1/sla/board?day=2025-09-10").json()["by_team"]
    assert {t["department_name"]: t["waiting"] for t in wednesday} == {"销售一部": None, "总部": None}
    page = _get(w, "/sla?day=2025-09-10").text
    assert sorted(_rows(page, "by-team")) == [
        ["总部", "0", "100%", "1 分 0 秒"],
        ["销售一部", "0", "100%", "1 分 0 秒"],
    ]
    table = re.search(r'<table class="data figures" id="by-team">.*?</section>', page, re.S)[0]
    assert "等待中" not in table

    today = _get(w, "/api/v1/sla/board").json()["by_team"]
    assert {t["department_name"]: t["waiting"] for t in today} == {"销售二部": 1}


def _read(page: str) -> str:
    """The page's text as a reader sees it: tags left out, runs of whitespace made one space."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))


def test_a_past_day_is_set_off_by_spaces_from_the_words_around_it(local):
    """A past day's board read 列出09-10有客户开始等待… and 之前开始等待、09-09才回复的, the date
    run into the characters beside it, where 09-10 超时 and 不是 09-10 的 on the same page have a
    space (today's board reads 今日 with none, as Chinese does)."""
    w = local
    _wednesday_answered(w)
    w.pulled(23 * 3600)
    w.clock(23 * 3600)  # Thursday 09:00

    wednesday = _read(_get(w, "/sla?day=2025-09-10").text)
    assert "列出 09-10 有客户开始等待或有超时的团队" in wednesday, wednesday
    tuesday = _read(_get(w, "/sla?day=2025-09-09").text)  # nobody began waiting that day
    said = "09-09 没有客户开始等待回复（之前开始等待、09-09 才回复的，算在开始等待的那天）"
    assert said in tuesday, tuesday
    for page in (wednesday, tuesday):
        stuck = re.findall(r"[\u4e00-\u9fff]\d\d-\d\d|\d\d-\d\d[\u4e00-\u9fff]", page)
        assert stuck == [], stuck
    today = _read(_get(w, "/sla").text)
    assert "今日还没有客户开始等待回复（之前开始等待、今日才回复的" in today, today
