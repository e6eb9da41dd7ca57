"""The customer's timeline tells who was told about a wait: the cards the escalation steps
sent and the call, on the wait's entry (read from the steps that fired)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import select

from siyu.customers import queries
from siyu.customers.models import Customer
from siyu.notify.models import OutboxMessage
from siyu.sla import service
from tests.sla.test_board_metrics import _get


def test_a_waits_entry_names_the_cards_and_the_call_its_steps_sent(local):
    w = local
    w.policy()
    w.customer("wmcustomer1", "马强")
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    for at in (120, 300, 600):
        w.clock(at)
        assert w.fire() == 1
    w.reply("您好，199 元", at=700)
    admin = SimpleNamespace(tenant_id=w.tenant_id, visible_staff=None, timezone="Asia/Shanghai")
    with w.session() as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == "wmcustomer1"))
        [entry] = queries.timeline(s, admin, customer_id, now=w.rt.now())
    assert entry["kind"] == "wait" and entry["data"]["state"] == "replied"
    assert entry["text"] == (
        "客户发来消息等待回复：「你好，这个套餐多少钱？」；张三 回复，用时 11 分 40 秒"
        # (nothing sent the cards in this test: still to go, they will leave out a customer
        # answered meanwhile; the call had not rung when 张三 answered)
        "；已升级：提醒卡片给负责成员 张三（等待已结束，未发）、提醒卡片给上级 李四（等待已结束，未发）"
        "、语音电话给负责成员 张三（等待已结束，未打）"
    )
    assert [e["recipient_name"] for e in entry["data"]["escalations"]] == ["张三", "李四", "张三"]


def _entry(w, ext: str = "wmcustomer1") -> dict:
    admin = SimpleNamespace(tenant_id=w.tenant_id, visible_staff=None, timezone="Asia/Shanghai")
    with w.session() as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
        [entry] = queries.timeline(s, admin, customer_id, now=w.rt.now())
    return entry


def test_a_waits_entry_tells_each_step_as_it_went(local):
    """The card to 张三 went, WeCom refused the one to 李四, and 张三 snoozed the wait while
    the call waited to ring: the call never rang. The entry said 已升级 to all three alike."""
    w = local
    w.policy()
    w.customer("wmcustomer1", "马强")
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    for at in (120, 300, 600):
        w.clock(at)
        assert w.fire() == 1
    with w.session() as s:  # as the sender recorded them
        to_zhangsan, to_lisi = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "sla_notice").order_by(OutboxMessage.id)
        )
        to_zhangsan.status = "sent"
        to_lisi.status, to_lisi.last_error = (
            "dead",
            "企业微信拒绝发送：成员不在应用可见范围内 / errcode 60011",
        )
    w.clock(610)
    with w.session() as s:
        service.snooze(s, w.conversation().id, w.rt.now() + timedelta(minutes=15), w.rt.now(), by="张三")
    entry = _entry(w)
    assert entry["text"].endswith(
        "；已升级：提醒卡片给负责成员 张三（已送达）"
        "、提醒卡片给上级 李四（未送达：企业微信拒绝发送：成员不在应用可见范围内）"
        "、语音电话给负责成员 张三（已暂缓，未打）"
    ), entry["text"]
    went = [(e["delivery"], e["delivery_text"]) for e in entry["data"]["escalations"]]
    assert went[2] == ("snoozed", "已暂缓，未打")


def test_a_waits_entry_says_until_when_quiet_hours_hold_its_call(local):
    """A call step fired in quiet hours: its call waits for them to end. The entry said it had
    gone (已升级：语音电话…) though nobody was rung yet."""
    w = local
    local_start = w.at(0).astimezone(ZoneInfo("Asia/Shanghai"))
    ends = (local_start + timedelta(hours=3)).replace(second=0, microsecond=0)
    with w.session() as s:
        service.save_policy(
            s,
            now=w.rt.now(),
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
            quiet_hours=[(local_start - timedelta(hours=1)).strftime("%H:%M"), ends.strftime("%H:%M")],
        )
    w.customer("wmcustomer1", "马强")
    w.say("急！能改地址吗？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    entry = _entry(w)
    assert entry["text"].endswith(
        f"；已升级：语音电话给负责成员 张三（免打扰，{ends.strftime('%m-%d %H:%M')} 拨打）"
    ), entry["text"]


def test_a_waits_entry_says_its_card_left_it_out_when_snoozed_or_answered_first(local):
    """One card to 张三 for three customers; he snoozed 马强's wait and answered 赵先生 before it
    went, so it spoke of 王女士 alone. Their entries said the card reached 张三 (已送达)."""
    from tests.sla.test_call_delivery import _card_went

    w = local
    for ext, name in (("wmA", "王女士"), ("wmB", "马强"), ("wmC", "赵先生")):
        w.customer(ext, name)
    _card_went(w, ["wmA", "wmB", "wmC"], snoozed="wmB", answered="wmC")
    assert _entry(w, "wmA")["text"].endswith("；已升级：提醒卡片给负责成员 张三（已送达）")
    snoozed = _entry(w, "wmB")
    assert snoozed["text"].endswith("；已升级：提醒卡片给负责成员 张三（已暂缓，未发）"), snoozed["text"]
    went = [(e["delivery"], e["delivery_text"]) for e in snoozed["data"]["escalations"]]
    assert went == [("snoozed", "已暂缓，未发")]
    answered = _entry(w, "wmC")["text"]
    assert answered.endswith("；已升级：提醒卡片给负责成员 张三（等待已结束，未发）"), answered


def test_timeline_gives_business_time_of_a_reply_after_two_weeks_as_the_board_does(local):
    """Shifts 09:00-18:00. Asked Friday 2025-09-05 17:59, answered Monday 2025-09-22 09:01:
    60 s + ten workdays of 9 h + 60 s = 324,120 s (3 天 18 小时) of business time, as the board's
    first_response_business says. The README: the customer's timeline gives the reply's time
    "by that clock too, as the board counts it" (response_business_s). It gave null and the
    page the wall time alone, as waits of over 14 days fall back to the wall clock there."""
    w = local
    w.t0 = datetime(2025, 9, 5, 17, 59, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Friday
    w.clock(0)
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["09:00", "18:00"]], quiet_hours=[])
    w.customer("wmcustomer1", "马强")
    w.say("这款什么时候有货？", at=0)
    answered = (datetime(2025, 9, 22, 9, 1, tzinfo=ZoneInfo("Asia/Shanghai")) - w.t0).total_seconds()
    w.reply("今天到货了", at=answered)
    w.pulled(answered + 60)
    w.clock(answered + 60)

    board = _get(w, "/api/v1/sla/board?day=2025-09-05").json()
    assert board["first_response_business"]["median_s"] == 324120  # the board: business time

    with w.session() as s:
        cid = s.scalar(select(Customer.id).where(Customer.external_userid == "wmcustomer1"))
    [entry] = [e for e in _get(w, f"/api/v1/customers/{cid}/timeline").json() if e["kind"] == "wait"]
    assert entry["data"]["response_s"] == 1436520
    assert entry["data"]["response_business_s"] == 324120, entry["data"]
    page = _get(w, f"/customers/{cid}").text
    assert "（工作时间 3 天 18 小时）" in page, re.findall(r"用时[^；<]*", page)


def test_a_wait_firing_found_no_longer_awaited_ends_in_words_on_the_timeline(local):
    """A wait whose chat no longer awaits it, where nothing had closed it, is closed by firing
    as "closed"; the customer's timeline had shown that English word as its ending."""
    from siyu.conversations.models import Conversation

    w = local
    w.policy()
    w.customer("wmcustomer1", "马强")
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    with w.session() as s:  # (closed where no SLA listener ran)
        s.get(Conversation, w.conversation().id).awaiting_msgid = ""
    w.clock(120)
    w.fire()
    entry = _entry(w)
    assert entry["data"]["state"] == "closed"
    assert entry["text"].endswith("；会话已不再等待回复，不再计时"), entry["text"]
