"""The SLA board's figures on a real database: the share answered within each step, and the
first-response percentiles."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from siyu.customers import service as customers
from siyu.sla import service
from siyu.sla.api import board_for
from siyu.web.auth import Viewer
from tests.sla.test_board_metrics import _dismiss, _get, _rows
from tests.sla.test_engine import _recall


def _noon_tomorrow(w) -> None:
    w.t0 = w.t0.replace(hour=4, minute=0, second=0, microsecond=0) + timedelta(days=1)  # 12:00 Beijing
    w.clock(0)


def _board(w, day=None) -> dict:
    with w.session() as s:
        return board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now(), day)


@pytest.mark.parametrize("status", ["lost", "deleted", "transferred"])
def test_a_wait_left_unanswered_past_a_step_until_the_contact_ended_counts_against_it(local, status):
    """The customer waited 6 minutes unanswered (steps 1 and 2 fired), then the customer removed
    the agent (lost), the agent removed the customer (deleted) or handed them to a colleague
    (transferred). The wait ran past both steps
    unanswered: it must count against them, as a wait marked "no reply needed" after them does,
    not vanish from the on-time share (the page showed no share at all while breaches stood at 2;
    an agent could clear a late wait from the figures by deleting the customer)."""
    w = local
    _noon_tomorrow(w)
    w.policy()  # 2 min, 5 min, 10 min
    w.say("在吗？我的订单怎么还没发货？", at=0)
    w.pulled(3600)
    w.clock(310)
    assert w.fire() == 2  # the agent's card at 2 minutes, the leader's at 5
    with w.session() as s:  # del_follow_user / del_external_contact at 6 minutes
        fields = {
            "UserID": "zhangsan",
            "ExternalUserID": "wmcustomer1",
            "CreateTime": str(int(w.at(360).timestamp())),
        }
        customers.record_follow_ended(s, fields, status)
    assert w.waits()[0].closed_at is not None
    w.clock(400)
    board = _board(w)
    assert board["breaches_total"] == 2
    first, second = board["within_steps"][:2]
    assert (first["outlived"], first["share"]) == (1, 0.0), first
    assert (second["outlived"], second["share"]) == (1, 0.0), second


def test_p90_of_ten_first_responses_is_not_the_slowest_one(local):
    """Ten customers answered: nine within a minute, one after an hour. 9 of the 10 (90 %) were
    answered within 60 s, so the page's "90% 在此之内" figure is 60 s; it read 1 hour (the single
    slowest answer, i.e. 100 %), because index int(0.9 * 10) = 9 is the 10th value."""
    w = local
    _noon_tomorrow(w)
    w.policy()
    for i in range(10):
        ext = f"wmp90{i}"
        w.say("请问有货吗？", at=0, ext=ext)
        w.reply("有的", at=60 if i < 9 else 3600, ext=ext)
    w.pulled(7200)
    w.clock(7200)
    first = _board(w)["first_response"]
    assert first["count"] == 10 and first["median_s"] == 60
    assert first["p90_s"] == 60, first
    assert _board(w)["first_response_business"] is None  # no policy counts business hours only


def test_a_reply_recalled_after_the_customer_wrote_again_is_not_a_first_response(local):
    """The agent answers a question at 10 s and recalls the answer at 30 s; the customer had
    written again at 20 s. Siyu's rule: a recalled reply leaves its question waiting, as if the
    answer never was (a reply recalled with nobody else waiting reopens the question from its own
    time). Here the question stayed "answered in 10 s" in the first-response figures and the
    board said the customer had waited since 20 s, not since their first question at 0 s."""
    w = local
    _noon_tomorrow(w)
    w.policy()
    w.say("订单什么时候发货？", at=0)
    answer = w.reply("已经发了", at=10)
    w.say("物流单号是多少？", at=20)
    w.ingest(_recall(w, answer, 30, by="zhangsan"))  # the agent takes the answer back: no answer now
    w.pulled(3600)
    w.clock(60)
    board = _board(w)
    [row] = board["waiting"]
    assert row["since"] == w.at(0) and row["waited_s"] == 60, row
    assert board["first_response"]["count"] == 0, board["first_response"]
    assert [(x.msgid, x.closed_at, x.close_reason) for x in w.waits()][0][1:] == (None, "")  # waits again
    assert w.waits()[1].close_reason == "merged"  # the later question's wait, folded into it
    w.clock(120)
    assert w.fire() == 1  # the agent is pushed 2 minutes after the question, as if never answered
    first = _board(w)["within_steps"][0]
    # one wait, the question's, now past the step; the folded one counts for nothing
    assert (first["answered"], first["answered_late"], first["outlived"]) == (0, 0, 1)


def test_an_older_question_pulled_after_the_reply_moves_the_first_response_back(local):
    """The customer asks at 0 s and again at 100 s; the agent answers at 150 s. The archive
    brings the 0 s question last (a re-pull, an import, clocks apart). README: "an older question
    pulled after a newer one, with no reply between, moves the wait's start back" - there was
    no reply between 0 s and 100 s, so the customer waited 150 s, past the 2-minute step. The
    board said 50 s, answered within the step (100 % on time)."""
    w = local
    _noon_tomorrow(w)
    w.policy()  # 2 min, 5 min, 10 min
    older = w._message("wmcustomer1", "zhangsan", "请问这款有货吗？", 0, None)
    w.say("什么时候能发货？", at=100)
    w.reply("有货，明天发", at=150)
    w.ingest(older)  # pulled late
    w.pulled(3600)
    w.clock(3600)
    board = _board(w)
    assert board["first_response"]["count"] == 1
    assert board["first_response"]["median_s"] == 150, board["first_response"]
    first = board["within_steps"][0]
    assert (first["answered"], first["answered_late"], first["share"]) == (0, 1, 0.0), first


def test_a_question_pulled_after_the_reply_it_alone_had_is_a_wait_answered_then(local):
    """The customer asks at 0 s, the agent answers at 90 s; the archive brings the question
    after the answer. It waited 90 s (answered within the 2-minute step): a wait of its own,
    where nothing had been recorded."""
    w = local
    _noon_tomorrow(w)
    w.policy()
    question = w._message("wmcustomer1", "zhangsan", "请问这款有货吗？", 0, None)
    w.reply("有货的", at=90)
    w.ingest(question)
    assert [(x.msgid, x.close_reason, x.response_s) for x in w.waits()] == [
        (question["msgid"], "replied", 90.0)
    ]
    assert w.steps() == []  # answered: no step was ever due
    w.ingest(question)  # pulled again: stored once, recorded once
    assert len(w.waits()) == 1
    w.clock(3600)
    board = _board(w)
    assert (board["first_response"]["count"], board["first_response"]["median_s"]) == (1, 90)
    assert board["within_steps"][0]["answered"] == 1


def test_a_snooze_on_the_later_question_holds_for_the_earlier_one_waiting_again(local):
    """The agent snoozes the chat for an hour while the customer's second question waits; then
    takes back the reply that had answered the first. The first waits again, and the snooze
    the agent asked for holds for it: no card before the hour is over."""
    from siyu.sla import service

    w = local
    _noon_tomorrow(w)
    w.policy()
    w.say("订单什么时候发货？", at=0)
    answer = w.reply("已经发了", at=10)
    w.say("物流单号是多少？", at=20)
    w.clock(25)
    with w.session() as s:
        assert service.snooze(s, w.conversation().id, w.at(25 + 3600), w.rt.now()) == 1
    w.ingest(_recall(w, answer, 30, by="zhangsan"))
    w.pulled(7200)
    with w.session() as s:
        assert service.snoozed_until(s, w.conversation().id, w.rt.now()) == w.at(25 + 3600)
    w.clock(3600)
    assert w.fire() == 0  # within the snooze
    w.clock(25 + 3600)
    assert w.fire() >= 1  # then the agent is told


def test_the_boards_queries_do_not_grow_with_the_number_of_teams(local):
    """Under a business-hours policy the board measured each team's waits with policies and a
    business calendar read afresh: two more queries for every team on the board (24 more for a
    tenant of 10 teams, 200 for one of 100). Answers in two teams and in six cost the same."""
    from sqlalchemy import event

    from siyu.sla import service
    from siyu.tenancy.models import Department, Staff

    w = local
    _noon_tomorrow(w)
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["00:00", "12:00"], ["12:00", "24:00"]])
        for dept in range(3, 7):
            s.add(Department(wecom_id=dept, name=f"销售{dept}部", parent_wecom_id=1, leaders=["lisi"]))
            s.add(Staff(userid=f"agent{dept}", name=f"成员{dept}", departments=[dept], main_department=dept))

    def answered(staff: str) -> None:
        w.say("请问有货吗？", at=0, ext=f"wm{staff}", staff=staff)
        w.reply("有的", at=200, ext=f"wm{staff}", staff=staff)

    def queries() -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(w.rt.db.engine, "before_cursor_execute", listener)
        try:
            board = _board(w)
        finally:
            event.remove(w.rt.db.engine, "before_cursor_execute", listener)
        return len(seen), len(board["by_team"])

    answered("zhangsan")
    answered("boss")
    w.pulled(3600)
    w.clock(3600)
    few, teams = queries()
    assert teams == 2
    for dept in range(3, 7):
        answered(f"agent{dept}")
    many, teams = queries()
    assert teams == 6
    assert many == few, (few, many)


def test_first_responses_under_business_hours_are_told_in_business_time_too(local):
    """A question of Tuesday 17:59 answered on Wednesday at 09:01, shifts 09:00-18:00: 15 hours
    by the wall clock, 2 minutes of business time. The board gives both; under a policy that
    counts business hours only, the wall figure alone made the team look 450 times slower."""
    from zoneinfo import ZoneInfo

    from siyu.sla import service

    w = local
    beijing = w.rt.now().astimezone(ZoneInfo("Asia/Shanghai"))
    tuesday = (beijing + timedelta(days=(1 - beijing.weekday()) % 7 or 7)).replace(
        hour=17, minute=59, second=0, microsecond=0
    )
    w.t0 = tuesday.astimezone(w.t0.tzinfo)
    w.clock(0)
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["09:00", "18:00"]], public_holidays=False)
    w.say("请问有货吗？", at=0)
    w.reply("有的", at=15 * 3600 + 120)
    w.pulled(20 * 3600)
    w.clock(20 * 3600)
    board = _board(w, tuesday.date())
    assert board["first_response"]["median_s"] == 15 * 3600 + 120
    assert board["first_response_business"]["median_s"] == 120
    [agent] = board["first_response_by_agent"]
    assert agent["business"]["median_s"] == 120 and agent["median_s"] == 15 * 3600 + 120


ONE_MINUTE_FIRST = [
    {"delay_s": 60, "action": "app_message", "target": "agent"},
    {"delay_s": 300, "action": "app_message", "target": "leader"},
]


@pytest.mark.parametrize(
    "recall_at, pulled",
    [
        (110, "one by one"),
        (110, "in one pull"),
        (90, "one by one"),  # recalled before the real answer came
        (90, "recall pulled after the answer"),  # an import, a re-pull: the recall stored last
    ],
)
def test_a_reply_recalled_after_a_later_one_is_not_the_first_response(local, recall_at, pulled):
    """The customer asks at 0 s; the agent sends "." at 5 s, the real answer at 100 s, and
    recalls the "." (WeCom allows it for 2 minutes). The first reply still standing came at
    100 s: the customer waited 100 s, past the 1-minute step, which never fired (the "." had
    stopped it): it is no breach, but the wait was answered late for it. The board said 5 s,
    answered within every step, however late the real answer came."""
    w = local
    _noon_tomorrow(w)
    w.policy(steps=ONE_MINUTE_FIRST)
    question = w._message("wmcustomer1", "zhangsan", "这款什么时候发货？", 0, None)
    dot = w._message("zhangsan", "wmcustomer1", ".", 5, None)
    answer = w._message("zhangsan", "wmcustomer1", "明天上午发", 100, None)
    recall = _recall(w, dot["msgid"], recall_at, by="zhangsan")
    if pulled == "in one pull":
        w.ingest(question, dot, answer, recall)
    elif pulled == "recall pulled after the answer":
        w.ingest(question, dot)
        w.ingest(answer)
        w.ingest(recall)
    else:
        for message in sorted([question, dot, answer, recall], key=lambda m: m["msgtime"]):
            w.ingest(message)
    assert w.conversation().awaiting_since is None  # answered
    w.pulled(3600)
    w.clock(3600)
    assert w.fire() == 0
    board = _board(w)
    assert board["first_response"]["count"] == 1
    assert board["first_response"]["median_s"] == 100, board["first_response"]
    first, second = board["within_steps"][:2]
    assert (first["answered"], first["answered_late"], first["share"]) == (0, 1, 0.0), first
    assert (second["answered"], second["share"]) == (1, 1.0), second
    assert board["breaches_total"] == 0  # the 1-minute step never fired: nobody was reminded
    assert board["waiting"] == []


def test_a_question_asked_between_a_recalled_reply_and_the_next_is_part_of_the_same_wait(local):
    """The customer asks at 0 s; the agent sends "." at 5 s; the customer asks again at 30 s;
    the agent answers at 100 s and recalls the "." at 110 s. Without the ".", the customer
    waited from 0 s to 100 s: one wait answered in 100 s. The board counted two answers, 5 s and
    70 s."""
    w = local
    _noon_tomorrow(w)
    w.policy(steps=ONE_MINUTE_FIRST)
    w.say("这款什么时候发货？", at=0)
    dot = w.reply(".", at=5)
    w.say("还有别的颜色吗？", at=30)
    w.reply("明天上午发，还有蓝色", at=100)
    w.ingest(_recall(w, dot, 110, by="zhangsan"))
    w.pulled(3600)
    w.clock(3600)
    board = _board(w)
    assert board["first_response"]["count"] == 1, board["first_response"]
    assert board["first_response"]["median_s"] == 100
    first = board["within_steps"][0]
    assert (first["answered"], first["answered_late"], first["outlived"]) == (0, 1, 0), first
    assert [x.close_reason for x in w.waits()] == ["replied", "merged"]


def test_a_wait_marked_no_reply_needed_before_the_reply_still_standing_stays_unanswered(local):
    """The customer asks at 0 s; the agent sends "." at 5 s; the customer asks again at 30 s;
    张三 marks it "no reply needed" at 80 s, writes again at 100 s and recalls the "." at 110 s.
    Without the ".", the question of 0 s waited until it was marked at 80 s: not answered, past
    the 1-minute step, and the reply at 100 s answered nothing. It must not become an answer in
    100 s."""
    from siyu.conversations import service as conversations

    w = local
    _noon_tomorrow(w)
    w.policy(steps=ONE_MINUTE_FIRST)
    w.say("这款什么时候发货？", at=0)
    dot = w.reply(".", at=5)
    w.say("还有别的颜色吗？", at=30)
    with w.session() as s:
        assert conversations.dismiss(s, w.conversation().id, w.at(80), by="张三")
    w.reply("有蓝色", at=100)
    w.ingest(_recall(w, dot, 110, by="zhangsan"))
    w.pulled(3600)
    w.clock(3600)
    board = _board(w)
    assert board["first_response"]["count"] == 0, board["first_response"]
    first = board["within_steps"][0]
    assert (first["answered"], first["answered_late"], first["outlived"]) == (0, 0, 1), first
    assert [(x.closed_at, x.close_reason, x.closed_by) for x in w.waits()] == [
        (w.at(80), "dismissed", "张三"),
        (w.at(80), "merged", "张三"),
    ]


def test_a_wait_answered_at_the_steps_very_delay_is_within_it_by_every_policy_and_team(local):
    """The on-time shares count each policy's waits by their own delays, for all and per team:
    张三's department answers within 60 s, the tenant's within 2 minutes. Answered at exactly
    the delay is within it; a second later is late; a wait still open past the delay ran past
    it."""
    from siyu.sla import service

    w = local
    _noon_tomorrow(w)
    with w.session() as s:
        service.save_policy(s, 0, quiet_hours=[])  # the tenant's: 2 min, 5 min, 10 min
        service.save_policy(s, 2, steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}])
    for ext, staff, replied in [
        ("wmz1", "zhangsan", 60),  # department 2: at its 60 s, within
        ("wmz2", "zhangsan", 61),  # a second late
        ("wmb1", "boss", 120),  # the tenant's: at its 2 minutes, within
        ("wmb2", "boss", 121),  # late for step 1, within step 2's 5 minutes
    ]:
        w.say("在吗？发货了吗", at=0, ext=ext, staff=staff)
        w.reply("发了", at=replied, ext=ext, staff=staff)
    w.say("还在吗？", at=0, ext="wmz3", staff="zhangsan")  # open: past department 2's 60 s
    w.say("还在吗？", at=0, ext="wmb3", staff="boss")  # open: past 2 minutes, not 5
    w.pulled(3600)
    w.clock(200)
    board = _board(w)
    first, second, third = board["within_steps"]
    assert (first["answered"], first["answered_late"], first["outlived"]) == (2, 2, 2), first
    assert first["delays_s"] == [60, 120] and first["share"] == 2 / 6
    # step 2 is the tenant's alone: 王总's two answers within 5 minutes, his open wait not past it yet
    assert (second["answered"], second["answered_late"], second["outlived"]) == (2, 0, 0), second
    assert second["delays_s"] == [300] and third["delays_s"] == [600]
    teams = {t["department_name"]: t["first_step_share"] for t in board["by_team"]}
    assert teams == {"销售一部": 1 / 3, "总部": 1 / 3}


def test_a_reply_recalled_after_the_wait_it_ended_went_on_and_was_marked_counts_no_answer(local):
    """The customer asks at 0 s; the agent sends "." at 5 s; the customer asks again at 30 s;
    张三 marks it "no reply needed" at 80 s; the customer asks something new at 90 s, still
    waiting, and the agent recalls the "." at 110 s. Without the ".", the question of 0 s
    waited until 80 s (the mark closed it, the 30 s question part of it) and the 90 s one waits
    on its own. The board kept the question answered in 5 s by the reply taken back: there was
    no later reply to fold it into, so nothing was corrected."""
    from siyu.conversations import service as conversations

    w = local
    _noon_tomorrow(w)
    w.policy(steps=ONE_MINUTE_FIRST)
    w.say("这款什么时候发货？", at=0)
    dot = w.reply(".", at=5)
    w.say("还有别的颜色吗？", at=30)
    with w.session() as s:
        assert conversations.dismiss(s, w.conversation().id, w.at(80), by="张三")
    w.say("能开发票吗？", at=90)
    w.ingest(_recall(w, dot, 110, by="zhangsan"))
    w.pulled(3600)
    w.clock(120)
    board = _board(w)
    assert board["first_response"]["count"] == 0, board["first_response"]
    [row] = board["waiting"]
    assert row["since"] == w.at(90)
    first = board["within_steps"][0]
    # the 0 s question, marked at 80 s, past the step; the 90 s one not yet at it
    assert (first["answered"], first["answered_late"], first["outlived"]) == (0, 0, 1), first
    assert [(x.closed_at, x.close_reason, x.closed_by) for x in w.waits()] == [
        (w.at(80), "dismissed", "张三"),
        (w.at(80), "merged", "张三"),
        (None, "", ""),
    ]
    assert w.fire() == 0  # the open wait's step is its own, at 150 s
    w.clock(150)
    assert w.fire() == 1
    assert w.conversation().awaiting_since == w.at(90)


def test_naming_who_each_next_step_reaches_costs_no_query_per_row(local):
    """Each row names who its next step reaches (提醒卡片发给上级 李四): the leaders of all the
    agents waiting are found at once, so two agents' customers waiting cost the board the
    same queries as six's."""
    from sqlalchemy import event

    from siyu.tenancy.models import Department, Staff

    w = local
    with w.session() as s:
        for dept in range(3, 7):
            s.add(Department(wecom_id=dept, name=f"销售{dept}部", parent_wecom_id=1, leaders=["lisi"]))
            s.add(Staff(userid=f"agent{dept}", name=f"成员{dept}", departments=[dept], main_department=dept))

    def queries() -> tuple[int, dict[str, str]]:
        w.pulled(130)
        w.clock(130)
        w.fire()  # each first step (a card to the agent) went: a card to the leader is next
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(w.rt.db.engine, "before_cursor_execute", listener)
        try:
            board = _board(w)
        finally:
            event.remove(w.rt.db.engine, "before_cursor_execute", listener)
        return len(seen), {r["staff_userid"]: r["next_step_to"]["name"] for r in board["waiting"]}

    for staff in ("zhangsan", "wangwu"):
        w.say("请问有货吗？", at=0, ext=f"wm{staff}", staff=staff)
    few, told = queries()
    # 张三's direct leader; 王五 has none: his department's
    assert told == {"zhangsan": "李四", "wangwu": "李四"}, told
    for dept in range(3, 7):
        w.say("请问有货吗？", at=0, ext=f"wmagent{dept}", staff=f"agent{dept}")
    many, told = queries()
    assert len(told) == 6 and set(told.values()) == {"李四"}, told
    assert many == few, (few, many)


@pytest.mark.parametrize(
    "day, midnight, hours",
    [("2025-10-26", (2025, 10, 25, 22), 25), ("2025-03-30", (2025, 3, 29, 23), 23)],
    ids=["clocks-back", "clocks-forward"],
)
def test_the_boards_day_in_berlin_on_a_day_the_clocks_change_holds_every_question_of_it_once(
    local, day, midnight, hours
):
    """Europe/Berlin's day of 26 October 2025 runs 25 hours (02:00-03:00 comes twice), that of
    30 March 23 (02:00-03:00 never comes). Questions asked 10 minutes before and after each of
    its midnights, and on the 25-hour day at 02:30 both times round, each answered in a minute:
    the day's first responses are the ones asked within it, none twice, none missed, and the
    board without a day shown then calls it 今天."""
    from datetime import UTC, date, datetime

    from tests.sla.test_policy_edges import _tenant_timezone

    w = local
    _tenant_timezone(w, "Europe/Berlin")
    w.policy()
    w.t0 = datetime(*midnight, tzinfo=UTC)  # the day's first moment
    w.clock(0)
    asked = [-600, 600, hours * 3600 - 600, hours * 3600 + 600]  # 23:50 and 00:10 at either end
    if hours == 25:
        asked += [9000, 12600]  # 02:30 CEST and 02:30 CET
    for i, at in enumerate(asked):
        w.say("请问有货吗？", at=at, ext=f"wmdst{i}")
        w.reply("有的", at=at + 60, ext=f"wmdst{i}")
    w.pulled(hours * 3600 + 3600)
    w.clock(hours * 3600 - 60)  # 23:59 on the day
    board = _board(w, date.fromisoformat(day))
    assert board["first_response"]["count"] == len(asked) - 2
    today = _board(w)
    assert today["day"] == date.fromisoformat(day) and today["first_response"]["count"] == len(asked) - 2


# ---- under business hours: each step judged by the moment it came due

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _seconds(w, *local) -> float:
    return (datetime(*local, tzinfo=SHANGHAI) - w.t0).total_seconds()


def test_a_wait_whose_first_reminder_fired_at_the_shifts_end_is_not_on_time(local):
    """Shifts 09:00-18:00, the default steps. Wednesday 17:58 three customers ask 张三; the first
    step comes due at 18:00 and fires for all three. At 18:30 张三 answers one and marks another
    无需回复; the third still waits. None was answered before the step (0 %): the board said
    100 %, its business clock standing at exactly 2 minutes from 18:00 to 09:00."""
    w = local
    w.t0 = datetime(2025, 9, 10, 17, 58, tzinfo=SHANGHAI)  # a Wednesday
    w.clock(0)
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["09:00", "18:00"]], quiet_hours=[])
    for ext in ("wmshift1", "wmshift2", "wmshift3"):
        w.say("明天能发货吗？", at=0, ext=ext)
    fired = 0
    for t in range(0, 1830, 30):  # the worker, every 30 s
        w.clock(t)
        w.pulled(t)
        fired += w.fire()
    assert fired == 3  # each wait's first step, at 18:00:00
    w.reply("可以", at=1800, ext="wmshift1")
    _dismiss(w, "wmshift3", "zhangsan", 1800)
    w.pulled(1860)
    w.clock(1860)

    board = _get(w, "/api/v1/sla/board").json()
    assert board["breaches_total"] == 3
    first = board["within_steps"][0]
    got = (first["answered"], first["answered_late"], first["outlived"], first["share"])
    assert got == (0, 1, 2, 0.0), first
    page = _get(w, "/sla").text
    assert _rows(page, "within-steps")[0][1:] == ["0%", "0", "1", "2"], _rows(page, "within-steps")


def test_a_reply_at_the_steps_due_millisecond_under_business_hours_is_within_it(local):
    """Shifts 09:00-12:00 and 13:30-18:00, one step at 4 business hours. Asked Wednesday
    17:00:00.013, the step is due Thursday 13:30:00.013 (3,599.987 s + 10,800 s + 0.013 s), and
    张三 answers at that very millisecond, as in time as a reply at the delay on the wall clock.
    The board said late: the business seconds, summed as floats, came to 14400.000000000002."""
    w = local
    w.t0 = datetime(2025, 9, 10, 17, 0, tzinfo=SHANGHAI)  # a Wednesday
    w.clock(0)
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=[["09:00", "12:00"], ["13:30", "18:00"]],
            quiet_hours=[],
            steps=[{"delay_s": 14400, "action": "app_message", "target": "agent"}],
        )
    w.say("请问有货吗？", at=0.013)
    due = _seconds(w, 2025, 9, 11, 13, 30) + 0.013
    w.reply("有的", at=due)
    w.pulled(due + 60)
    w.clock(due + 60)
    assert w.fire() == 0  # answered at the due moment: no reminder

    board = _get(w, "/api/v1/sla/board?day=2025-09-10").json()
    assert board["breaches_total"] == 0
    first = board["within_steps"][0]
    assert (first["answered"], first["answered_late"], first["share"]) == (1, 0, 1.0), first


def test_business_first_response_of_a_wait_answered_after_two_weeks_is_in_business_time(local):
    """Shifts 09:00-18:00. Asked Friday 2025-09-05 17:59, answered Monday 2025-09-22 09:01:
    60 s + ten workdays of 9 h + 60 s = 324,120 s (3 天 18 小时) of business time. The board's
    工作时间 figures gave the wall time, 1,436,520 s: waits of over 14 days fell back to it."""
    w = local
    w.t0 = datetime(2025, 9, 5, 17, 59, tzinfo=SHANGHAI)  # a Friday
    w.clock(0)
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["09:00", "18:00"]], quiet_hours=[])
    w.say("这款什么时候有货？", at=0)
    answered = _seconds(w, 2025, 9, 22, 9, 1)
    w.reply("今天到货了", at=answered)
    w.pulled(answered + 60)
    w.clock(answered + 60)

    board = _get(w, "/api/v1/sla/board?day=2025-09-05").json()
    assert board["first_response"]["median_s"] == 1436520  # wall time, as labelled
    business = board["first_response_business"]
    assert business is not None and business["median_s"] == 324120, business
    [agent] = board["first_response_by_agent"]
    assert agent["business"]["median_s"] == 324120, agent
    page = _get(w, "/sla?day=2025-09-05").text
    stats = re.search(r'id="first-response-business">(.*?)</div>\n</div>', page, re.S)[1]
    assert re.findall(r"<b>(.*?)</b>", stats)[1] == "3 天 18 小时", stats
