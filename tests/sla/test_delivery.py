"""Escalations leaving Siyu over real HTTP: textcards through the WeCom emulator's
message/send, merged per person and dropped once answered, and voice calls through the
emulator's voice gateway and through Tencent Cloud's SDK."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, update

from siyu.config import Settings
from siyu.db import utcnow
from siyu.emulator import voice as voice_gateway
from siyu.notify.models import OutboxMessage
from siyu.notify.outbox import Permanent, Retry
from siyu.sla import firing, queries, service, tasks
from siyu.sla.models import SlaCall, SlaEscalation
from siyu.sla.voice import TencentVoice, VoiceCall, provider_for
from siyu.tenancy.models import Department, Staff
from siyu.tenancy.tasks import sync_staff
from tests.notify.test_recording import claimed, run_as_worker
from tests.sla.conftest import Wait, now_ms
from tests.support.servers import serve
from tests.support.stack import stack, wait_for


@pytest.fixture
def gateway():
    app = FastAPI()
    app.include_router(voice_gateway.build_router())
    with serve(app) as url:
        yield url


class LiveWait(Wait):
    """Here the stack's own worker polls SLA steps too, so a step may be fired by it or by
    `fire_due` below: count what fired once the due steps have settled, whoever fired them,
    from before the clock (or the archive) moved. Counted from when `fire` began, a step the
    worker fired in between (the test's thread held back on a loaded machine) went uncounted."""

    _before: int | None = None

    def clock(self, seconds: float) -> None:
        if self._before is None:  # (steps cannot fire before it moves: nothing is missed)
            self._before = self.fired()
        super().clock(seconds)

    def pulled(self, seconds: float) -> None:
        if self._before is None:
            self._before = self.fired()
        super().pulled(seconds)

    def fire(self) -> int:
        before, self._before = (self.fired() if self._before is None else self._before), None
        asyncio.run(tasks.fire_due(self.rt))
        # longer than the worker's SLA poll (0.5 s), with room for a loaded machine (1.2 s was
        # once too short, on a machine running other suites beside this one)
        deadline = time.monotonic() + 5.0
        while self.fired() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.fired() - before


@pytest.fixture
def w(stack, gateway, monkeypatch) -> Wait:
    voice = {"voice_provider": "emulator", "voice_emulator_url": gateway}
    monkeypatch.setattr(stack.rt, "settings", stack.rt.settings.model_copy(update=voice))
    asyncio.run(sync_staff(stack.rt, stack.tenant_id))
    w = LiveWait(stack.rt, stack.tenant_id, now_ms(stack.rt))
    w.stack, w.gateway = stack, gateway
    w.customer("wmcustomer1", "王女士")
    w.customer("wmcustomer2", "赵先生")
    with w.session() as s:
        service.save_policy(s, quiet_hours=[], merge_window_s=0.3)
    return w


def cards(w, userid: str) -> list[dict]:
    return [m["payload"]["textcard"] for m in w.stack.app_messages() if userid in m["recipients"]]


def calls(w) -> list[dict]:
    """This tenant's calls (the database is shared: the stack's worker also sends what
    other tests left queued)."""
    import httpx

    calls = httpx.get(f"{w.gateway}/_emulator/voice/calls").json()
    return [c for c in calls if c["session_context"].startswith(f"siyu:{w.tenant_id}:")]


def test_agent_card_then_leader_card_then_a_voice_call(w):
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()

    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert card["title"] == "王女士 已等待 2 分钟 未回复"
    assert "你好，这个套餐多少钱？" in card["description"] and "已等待 2 分钟" in card["description"]
    link = f"{w.stack.siyu}/auth/wecom/{w.stack.slug}?next=/conversations/{conversation.id}%3Fcard%3D"
    number = card["url"].removeprefix(link).partition("&")[0]
    assert number.isdigit() and card["url"] == f"{link}{number}&card={number}"
    assert card["btntxt"] == "去回复"

    w.clock(300)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "lisi"))
    assert card["title"] == "张三的客户 王女士 已等待 5 分钟 未回复"
    assert card["btntxt"] == "查看" and "请提醒张三尽快回复" in card["description"]

    w.clock(600)
    assert w.fire() == 1
    [call] = wait_for(lambda: calls(w))
    assert call["called_number"] == "+8613800000002"  # zhangsan's mobile in his profile
    assert call["template_params"] == ["1", "10"]
    assert "您有1位客户在等待回复，最长已等10分钟" in call["text"]
    placed = wait_for(lambda: (c := _call_row(w)) and c.status == "placed" and c)
    assert placed.call_id == call["call_id"] and placed.provider == "emulator"
    assert len(cards(w, "zhangsan")) == 1


def test_a_card_about_one_wait_reaches_the_member_whole_however_long_the_names_and_question(w):
    """WeCom cuts a textcard's title past 128 bytes and its description past 512 bytes without
    a word (the emulator records the card as members see it): a long name and a question full
    of characters HTML escapes must not push the closing line, or the markup's end, off it."""
    name = "深圳市前海某某跨境电商供应链管理有限公司采购部王经理🌟🌟"
    w.customer("wmcustomer3", name)
    w.say("在吗", at=0, ext="wmcustomer3")
    w.say("发货了吗？" + '"急"' * 20, at=5, ext="wmcustomer3")
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    w.clock(300)
    assert w.fire() == 1
    for userid, closing in (("zhangsan", "请尽快回复</div>"), ("lisi", "请提醒张三尽快回复</div>")):
        [sent] = wait_for(lambda u=userid: [m for m in w.stack.app_messages() if u in m["recipients"]])
        card = sent["payload"]["textcard"]
        assert sent["truncated"] == [], card
        assert card["description"].endswith(closing) and "&quot;急&quot;" in card["description"]
        assert card["title"].endswith("未回复") and card["title"].startswith(("深圳市", "张三的客户 深圳市"))


def _remark(w, remark: str, ext: str = "wmcustomer1", staff: str = "zhangsan") -> None:
    """The member's own remark on the customer (备注: how WeCom lists the chat on their phone)."""
    from siyu.customers.models import Customer, Follow

    with w.session() as s:
        customer = s.scalar(select(Customer).where(Customer.external_userid == ext))
        s.add(Follow(customer_id=customer.id, staff_userid=staff, remark=remark))


def _at_ten(w) -> None:
    """The test's second 0 at 10:00 tomorrow in Beijing (its cards tell the time of day)."""
    w.t0 = w.rt.now().replace(hour=2, minute=0, second=0, microsecond=0) + timedelta(days=1)
    w.clock(0)


def test_a_card_names_the_customer_by_the_recipients_own_remark_as_their_phone_lists_the_chat(w):
    """张三 has 王女士 as 王姐-报价 in WeCom, which lists the chat so on his phone: his card
    named her 王女士 alone, and he had to guess which chat to open. 李四, who has no remark on
    her, reads her WeChat name."""
    _remark(w, "王姐-报价")
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert card["title"] == "王女士（备注：王姐-报价） 已等待 2 分钟 未回复"
    assert "王女士（备注：王姐-报价）：你好，这个套餐多少钱？</div>" in card["description"]
    w.clock(300)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "lisi"))
    assert card["title"] == "张三的客户 王女士 已等待 5 分钟 未回复"


def test_a_long_customer_name_gives_way_to_the_remark_in_the_cards_title(w):
    name = "深圳市前海某某跨境电商供应链管理有限公司采购部王经理🌟🌟"
    w.customer("wmcustomer3", name)
    _remark(w, "深圳王经理-跨境报价", ext="wmcustomer3")
    w.say("在吗", at=0, ext="wmcustomer3")
    w.say("发货了吗？" + '"急"' * 20, at=5, ext="wmcustomer3")
    w.say("在吗", at=1, ext="wmcustomer2")
    w.pulled(3600)
    w.clock(125)
    assert w.fire() == 2
    [sent] = wait_for(lambda: [m for m in w.stack.app_messages() if "zhangsan" in m["recipients"]])
    card = sent["payload"]["textcard"]
    assert sent["truncated"] == [], card
    assert card["title"] == "2 位客户等待回复，最长 2 分钟"
    assert "（备注：深圳王经理-跨境报价）：在吗 / 发货了吗？" in card["description"], card
    assert "赵先生：在吗 · 2 分钟" in card["description"], card
    w.reply("在的", at=130, ext="wmcustomer2")
    _remark(w, "深圳王经理-跨境报价", staff="lisi", ext="wmcustomer3")  # his own, too
    w.clock(300)
    assert w.fire() == 1
    [sent] = wait_for(lambda: [m for m in w.stack.app_messages() if "lisi" in m["recipients"]])
    card = sent["payload"]["textcard"]
    assert sent["truncated"] == [], card
    assert card["title"].startswith("张三的客户 深圳市前海"), card
    assert card["title"].endswith("…（备注：深圳王经理-跨境报价） 已等待 5 分钟 未回复"), card


def test_an_agents_card_says_who_is_told_next_and_the_leaders_that_the_agent_was(w):
    """张三's card said 请尽快回复 and nothing of 李四 being told at 10:05, nor of the call at
    10:10; 李四's said 请提醒张三尽快回复 and not that 张三 had had his own card at 10:02."""
    _at_ten(w)
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert card["description"].endswith(
        '<div class="gray">10:05:00 仍未回复将提醒李四</div>'
        '<div class="highlight">已等待 2 分钟，请尽快回复</div>'
    ), card["description"]
    wait_for(lambda: _statuses(w) == ["sent"])
    w.clock(300)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "lisi"))
    assert card["description"].endswith(
        '<div class="gray">已于 10:02 提醒张三</div>'
        '<div class="highlight">已等待 5 分钟，请提醒张三尽快回复</div>'
    ), card["description"]


def test_a_card_in_the_hour_clocks_go_back_says_which_pass_of_it_each_time_is(w):
    """New York, 1 November 2026: at 02:00 EDT the clocks go back to 01:00 EST. The customer
    asked at 01:58 EDT and 张三's card said 11-01 01:58 发来 … 01:03 仍未回复将提醒李四: the next
    step read as an hour before the question. Each time in the repeated hour names its offset."""
    from siyu.tenancy.models import Tenant

    with w.rt.db.system_session() as s:
        s.get(Tenant, w.tenant_id).timezone = "America/New_York"
    w.t0 = datetime(2026, 11, 1, 5, 58, tzinfo=UTC)  # 01:58 EDT
    w.clock(0)
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    w.clock(120)  # 01:00 EST, the hour's second pass
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    said = card["description"]
    assert "11-01 01:58（UTC-04:00） 发来" in said, said
    assert '<div class="gray">01:03:00（UTC-05:00） 仍未回复将提醒李四</div>' in said, said


def test_an_agents_card_promises_no_call_the_cooldown_will_skip(w):
    """张三 was rung at 10:00:30 about another customer (a 15-minute cooldown). His card at 10:01
    said 10:02 仍未回复将给你打电话, and at 10:02 firing placed no call (刚打过电话，未再拨打), as the
    board says. The card keeps quiet about it; past the cooldown it promises the call as before."""
    from siyu.sla.models import SlaCall

    _at_ten(w)
    w.policy(
        merge_window_s=0.3,
        call_cooldown_s=900,
        steps=[
            {"delay_s": 60, "action": "app_message", "target": "agent"},
            {"delay_s": 120, "action": "voice_call", "target": "agent"},
        ],
    )
    with w.session() as s:
        s.add(SlaCall(callee_userid="zhangsan", status="placed", created_at=w.at(30), placed_at=w.at(30)))
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert "仍未回复将" not in card["description"], card["description"]
    w.clock(120)
    assert w.fire() == 1
    assert w.outbox("sla_call") == []  # covered, as the card no longer promised

    w.say("还在吗？", at=1000, ext="wmcustomer2")  # 10:16:40: its call at 10:18:40, past the cooldown
    w.pulled(3600)
    w.clock(1060)
    assert w.fire() == 1
    [_, card] = wait_for(lambda: cards(w, "zhangsan")[1:] and cards(w, "zhangsan"))
    # (the minute it will have come by, as the board says it: due 10:18:40)
    assert '<div class="gray">10:18:40 仍未回复将给你打电话</div>' in card["description"], card["description"]


def test_a_leaders_card_says_the_agent_held_the_reminders_back(w):
    """张三 had his card at 10:02 and snoozed the reminders at 10:03 till 10:08: 李四's card,
    at 10:08, said nothing of either."""
    _at_ten(w)
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    wait_for(lambda: cards(w, "zhangsan"))
    w.clock(180)
    with w.session() as s:
        service.snooze(s, w.conversation().id, w.at(480), w.rt.now(), by="张三")
    w.clock(480)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "lisi"))
    assert (
        '<div class="gray">已于 10:02 提醒张三；张三 10:03 暂缓提醒至 10:08</div>'
        '<div class="highlight">已等待 8 分钟，请提醒张三尽快回复</div>'
    ) in card["description"], card["description"]


def test_a_card_quotes_what_was_asked_after_the_greeting_the_clock_started_at(w):
    w.say("在吗", at=0)
    w.say("订单号 58231204317", at=5)
    recalled = w.say("发错了", at=8)
    w.recall(recalled, at=9)
    w.say("我的订单什么时候发货？", at=20)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert card["title"] == "王女士 已等待 2 分钟 未回复"  # counted from 在吗
    assert "起发来 3 条" in card["description"]
    assert "王女士：在吗 / 订单号 58231204317 / 我的订单什么时候发货？</div>" in card["description"]


def test_a_card_counts_every_waiting_message_though_it_quotes_the_first_and_the_last_few(w):
    for i in range(7):
        w.say(f"第{i}个问题？", at=i)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert "起发来 7 条" in card["description"] and "第6个问题？</div>" in card["description"]
    assert (
        "王女士：第0个问题？ / … / 第2个问题？" in card["description"]
    )  # the one not quoted is said to be there


def test_a_question_then_many_nudges_is_quoted_by_its_question(w):
    """A question and then five 在吗: the quote was the five nudges alone, the question not even
    among the messages it was built from."""
    w.say("你们的企业版支持会话存档吗？", at=0)
    for i in range(5):
        w.say("在吗？", at=i + 1)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert "起发来 6 条" in card["description"]
    assert "王女士：你们的企业版支持会话存档吗？ / 在吗？" in card["description"]


LONG_FIRST = (
    "您好，我想咨询一下贵公司的企业版套餐，我们公司有五十个人左右，"
    "需要开通客户管理和会话存档功能，价格大概多少"
)


@pytest.mark.parametrize(
    ("texts", "limit", "line"),
    [
        (["在吗", "报价发我"], 24, "在吗 / 报价发我"),
        (["在吗", "你好", "有没有 256G 的黑色，今天能发吗"], 24, "在吗 / 你好 / 有没有 256G 的黑色，…"),
        (["在吗", "你好", "报价单发我"], 14, "在吗 / … / 报价单发我"),
        (["在吗", "这款有没有 256G 的黑色，今天下单能发顺丰吗"], 20, "在吗 / 这款有没有 256G 的黑色…"),
        (["这款有没有 256G 的黑色，今天下单能发顺丰吗"], 20, "这款有没有 256G 的黑色，今天下单…"),
        (["a", "b  c", " "], 60, "a / b c"),
        # of seven, the first and the last given (as waiting_asked gives them): the rest between
        ((["在吗", "报价发我"], 7), 24, "在吗 / … / 报价发我"),
        ([], 60, ""),
        # a long question, then two short ones: each is cut, none left out
        (
            [LONG_FIRST, "还有一个问题：能开专票吗？", "在吗？"],
            60,
            LONG_FIRST[:37] + "… / 还有一个问题：能开专票吗？ / 在吗？",
        ),
        ([LONG_FIRST, "还有一个问题：能开专票吗？", "在吗？"], 24, "您好，我想咨… / 还有一个问题… / 在吗？"),
        ([LONG_FIRST, "还有一个问题：能开专票吗？", "在吗？"], 18, "您好，我想咨询… / … / 在吗？"),
    ],
)
def test_a_quote_keeps_the_start_of_each_waiting_message(texts, limit, line):
    from siyu.conversations.queries import quote_asks

    texts, total = texts if isinstance(texts, tuple) else (texts, None)
    assert quote_asks(texts, limit, total) == line and len(line) <= limit


def test_a_card_quotes_the_long_first_question_not_only_the_nudges_after_it(w):
    """A long first question then 还有一个问题：能开专票吗？ and 在吗？: the card quoted
    … / 还有一个问题：能开专票吗？ / 在吗？, the question itself left out to fit."""
    w.say(LONG_FIRST, at=0)
    w.say("还有一个问题：能开专票吗？", at=5)
    w.say("在吗？", at=10)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert "王女士：您好，我想咨询一下贵公司" in card["description"], card["description"]
    assert "/ 在吗？</div>" in card["description"] and len(card["description"].encode()) <= 512


def test_a_call_about_several_waits_tells_the_longest_not_that_all_waited_so_long(w):
    w.say("你好，这个套餐多少钱？", at=0)
    w.say("能开发票吗？", at=400, ext="wmcustomer2")
    w.pulled(3600)
    w.clock(600)
    while w.fire():
        pass
    [call] = wait_for(lambda: calls(w))
    assert call["template_params"] == ["2", "10"]
    assert "您有2位客户在等待回复，最长已等10分钟" in call["text"]  # had been "2位客户已等待10分钟"


def test_steps_due_to_one_person_arrive_as_one_card(w):
    with w.session() as s:
        service.save_policy(s, merge_window_s=1.0)
    w.say("在吗？", at=0)
    w.say("请问能开发票吗？", at=3, ext="wmcustomer2")
    w.pulled(3600)
    w.clock(125)
    assert w.fire() == 2
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert card["title"] == "2 位客户等待回复，最长 2 分钟"
    assert "王女士" in card["description"] and "赵先生" in card["description"]
    [sent] = w.outbox()  # its link opens the card's customers, waiting still
    assert card["url"].endswith(f"?next=/conversations%3Fwaiting%3D1%26card%3D{sent.id}&card={sent.id}")
    assert "请尽快回复</div>" in card["description"]  # both his own
    time.sleep(1.5)
    assert len(cards(w, "zhangsan")) == 1
    # one card: the second step joined the first (recorded sent a moment after WeCom has it)
    wait_for(lambda: _statuses(w) == ["sent"])


def test_a_card_worded_as_one_of_an_hour_ago_still_reaches_the_member(w):
    """Cards ask for WeCom's duplicate check, which drops a send equal to one of the last
    hours. The same two customers asking the same again an hour later, answered as late, make
    a card worded as the first: it is a second reminder all the same, and is delivered."""
    with w.session() as s:
        service.save_policy(s, merge_window_s=1.0)
    for hour in (0, 3600):
        w.say("在吗？", at=hour)
        w.say("请问能开发票吗？", at=hour + 3, ext="wmcustomer2")
        w.pulled(hour + 3600)
        w.clock(hour + 125)
        assert w.fire() == 2
        wait_for(lambda: [m.status for m in w.outbox()][-1:] == ["sent"])  # (then answered)
        w.reply("在的", at=hour + 130)
        w.reply("可以开", at=hour + 130, ext="wmcustomer2")
    first, second = cards(w, "zhangsan")
    assert first["title"] == second["title"] == "2 位客户等待回复，最长 2 分钟"
    assert first["description"] == second["description"]


def test_a_lone_step_is_told_at_once_and_the_next_within_the_window_waits_for_it(w):
    with w.session() as s:
        service.save_policy(s, merge_window_s=60.0)
    w.say("在吗？", at=0)
    w.say("请问能开发票吗？", at=10, ext="wmcustomer2")
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1  # 王女士: nobody was told lately, so the card goes now, not in a minute
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert "王女士" in card["title"]
    w.clock(130)
    assert w.fire() == 1  # 赵先生, ten seconds later: his card waits for the window to end
    time.sleep(1.0)
    assert len(cards(w, "zhangsan")) == 1
    wait_for(lambda: _statuses(w) == ["pending", "sent"])  # (the first recorded a moment after it went)


def _second_card_queued(w) -> None:
    """Two of zhangsan's customers wait a second apart: the first card has gone, the
    second customer's step has fired within the merge window after it."""
    w.say("在吗？", at=0)
    w.say("请问能开发票吗？", at=1, ext="wmcustomer2")
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    wait_for(lambda: cards(w, "zhangsan"))
    w.clock(121)
    assert w.fire() == 1


def test_a_short_merge_window_still_keeps_to_the_pace_wecom_delivers_at(w):
    # the fixture's policy merges within 0.3 s; WeCom drops app messages beyond 30 a minute
    burst = firing.CARD_BURST
    # the customers 5 s apart by Siyu's clock, which runs on with the real one: a second apart,
    # a loaded machine taking a second between moving it and firing fired two steps (and the
    # last must ask before the first one's second step, at 300 s, comes due)
    for i in range(burst + 1):
        w.customer(f"wmburst{i}", f"客户{i}")
        w.say(f"问题{i}？", at=5 * i, ext=f"wmburst{i}")
    w.pulled(3600)
    for i in range(burst):  # each card goes at once, up to the burst (WeCom's pace is real time)
        w.clock(120 + 5 * i)
        assert w.fire() == 1
        wait_for(lambda i=i: len(cards(w, "zhangsan")) == i + 1)
    w.clock(120 + 5 * burst)
    assert w.fire() == 1
    # held for the pace, counted from when the first card went (the merge window alone would
    # have let it go at once); asserted on the queue, not by sleeping: on a busy machine the
    # burst itself can take the 4 s, and then the card rightly goes at once
    first, *_, held = w.outbox()
    assert held.due_at >= max(first.due_at, first.sent_at) + timedelta(seconds=firing.CARD_SPACING_S - 0.01)
    # sent once due, however late a loaded machine's worker gets to it (3 s of leeway had been
    # too little: a worker held back 8 s failed it); that it waited is asserted above and below
    wait_for(lambda: len(_sent(w)) == burst + 1, timeout=firing.CARD_SPACING_S + 20)
    received = [m for m in w.stack.app_messages() if "zhangsan" in m["recipients"]]
    assert len(received) == burst + 1 and f"客户{burst}" in received[-1]["payload"]["textcard"]["title"]
    # as WeCom got them, not only as they were queued
    assert received[-1]["received_at"] - received[0]["received_at"] >= firing.CARD_SPACING_S - 0.5


def _sent(w) -> list[OutboxMessage]:
    with w.session() as s:
        return list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "sla_notice", OutboxMessage.status == "sent")
                .order_by(OutboxMessage.due_at)
            )
        )


def test_a_queued_card_is_dropped_when_the_customer_is_answered_meanwhile(w):
    # a window far longer than the test takes (a 4 s one ran out first on a loaded machine, and
    # the card went before the reply), brought to its end once the customer is answered
    with w.session() as s:
        service.save_policy(s, merge_window_s=600.0)
    _second_card_queued(w)  # within the window after the first card: queued, not yet sent
    w.reply("您好，可以开的", at=121, ext="wmcustomer2")  # before it leaves
    # (the first card is recorded as sent a moment after WeCom has it: CI once read it pending)
    assert wait_for(lambda: _statuses(w) == ["pending", "sent"])
    with w.session() as s:  # the window ends (the outbox's clock is the wall's)
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind == "sla_notice", OutboxMessage.status == "pending")
            .values(due_at=utcnow())
        )
    wait_for(lambda: _statuses(w) == ["sent", "skipped"])
    assert len(cards(w, "zhangsan")) == 1


def _call_row(w) -> SlaCall | None:
    with w.session() as s:
        return s.scalar(select(SlaCall))


def _statuses(w) -> list[str]:
    with w.session() as s:
        return sorted(s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "sla_notice")))


def test_a_welcome_message_is_not_a_reply(w):
    welcome = "王女士您好，我是您的专属顾问"
    with w.session() as s:
        s.add(
            OutboxMessage(
                kind="welcome",
                dedupe_key=f"welcome:{w.t0.timestamp()}",
                payload={"userid": "zhangsan", "external_userid": "wmcustomer1", "sent_text": welcome},
                status="sent",
                sent_at=utcnow(),
            )
        )
    w.say("你好，想了解一下你们的课程", at=0)
    w.ingest(
        {
            "msgid": "welcome-echo-1",
            "action": "send",
            "from": "zhangsan",
            "tolist": ["wmcustomer1"],
            "roomid": "",
            "msgtime": int(w.at(1).timestamp() * 1000),
            "msgtype": "text",
            "text": {"content": welcome},
        }
    )
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    wait_for(lambda: cards(w, "zhangsan"))


def tencent_settings(url: str) -> Settings:
    """Tencent Cloud VMS as Siyu is configured for it, its API at `url` (http://host:port)."""
    return Settings(
        voice_provider="tencent",
        voice_tencent_secret_id="AKIDexample",
        voice_tencent_secret_key="secret",
        voice_tencent_sdk_app_id="1400006666",
        voice_tencent_template_id="4356",
        voice_tencent_endpoint=url.removeprefix("http://"),
        voice_tencent_scheme="http",
    )


def test_voice_calls_through_tencent_clouds_sdk(gateway):
    provider = TencentVoice(tencent_settings(gateway))
    call_id = asyncio.run(provider.call(VoiceCall("138 0000 0002", ["2", "10"], "", "siyu:1:call:7")))
    import httpx

    [call] = httpx.get(f"{gateway}/_emulator/voice/calls").json()
    assert call["call_id"] == call_id and call["provider"] == "tencent"
    assert call["called_number"] == "+8613800000002" and call["template_params"] == ["2", "10"]
    assert call["template_id"] == "4356" and call["session_context"] == "siyu:1:call:7"

    with pytest.raises(Permanent):
        asyncio.run(provider.call(VoiceCall("12345", ["1", "1"], "", "x")))
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"fail": 1})
    with pytest.raises(Retry, match="腾讯云语音 InternalError.*稍后重试"):  # retried by the outbox
        asyncio.run(provider.call(VoiceCall("13800000002", ["1", "1"], "", "x")))
    with pytest.raises(Permanent, match="SECRET"):
        TencentVoice(Settings(voice_provider="tencent"))


def test_voice_settings_come_from_siyus_settings_and_the_environment(monkeypatch):
    """SIYU_VOICE_* are fields of siyu.config.Settings; provider_for reads rt.settings."""

    class Rt:
        settings = Settings(wecom_base_url="http://wecom.example")

    assert Rt.settings.voice_provider == "off" and provider_for(Rt) is None
    Rt.settings = Settings(wecom_base_url="http://wecom.example", voice_provider="emulator")
    provider = provider_for(Rt)
    assert provider.name == "emulator" and provider.url == "http://wecom.example/_emulator/voice/calls"
    monkeypatch.setenv("SIYU_VOICE_PROVIDER", "Tencent")
    monkeypatch.setenv("SIYU_VOICE_TENCENT_SECRET_ID", "AKIDenv")
    monkeypatch.setenv("SIYU_VOICE_TENCENT_SECRET_KEY", "k")
    monkeypatch.setenv("SIYU_VOICE_TENCENT_SDK_APP_ID", "1400000001")
    monkeypatch.setenv("SIYU_VOICE_TENCENT_TEMPLATE_ID", "1")
    monkeypatch.setenv("SIYU_VOICE_PLAY_TIMES", "3")
    Rt.settings = Settings()
    provider = provider_for(Rt)
    assert provider.name == "tencent" and provider.settings.voice_tencent_secret_id == "AKIDenv"
    assert Rt.settings.voice_play_times == 3 and Rt.settings.voice_tencent_region == "ap-guangzhou"
    monkeypatch.setenv("SIYU_VOICE_PROVIDER", "alibaba")
    with pytest.raises(Permanent, match="unknown SIYU_VOICE_PROVIDER"):
        provider_for(type("Rt", (), {"settings": Settings()}))


def _reached(w) -> dict[int, tuple[str, str]]:
    with w.session() as s:
        fired = list(s.scalars(select(SlaEscalation).where(SlaEscalation.status == "fired")))
        return {e.step: queries.deliveries(s, [e])[e.id] for e in fired}


def _problems(w) -> list[dict]:
    with w.session() as s:
        return queries.delivery_problems(s, utcnow() - timedelta(days=1), utcnow() + timedelta(days=1))[0]


def test_a_card_wecom_refuses_shows_as_being_retried_with_wecoms_answer(w):
    w.stack.control(
        "POST",
        "/faults",
        json={"corp_id": w.stack.corp_id, "path": "/cgi-bin/message/send", "errcode": -1, "times": 50},
    )
    try:
        w.say("这个怎么退货？", at=0)
        w.pulled(3600)
        w.clock(120)
        assert w.fire() == 1
        state, error = wait_for(lambda: (r := _reached(w).get(0)) and r[0] == "retrying" and r)
        assert "WeCom is busy" in error  # what WeCom answered, in words
        [problem] = wait_for(lambda: _problems(w))
        assert (problem["kind"], problem["recipient"], problem["status"]) == ("card", "zhangsan", "retrying")
        assert problem["attempts"] >= 1 and problem["next_try_at"] is not None
    finally:
        w.stack.control("DELETE", "/faults")


def test_a_card_wecom_says_reached_nobody_is_given_up_at_once_with_why(w):
    """81013: every recipient invalid (left the app's visible range): twelve retries over
    hours could not change it."""
    fault = {"corp_id": w.stack.corp_id, "path": "/cgi-bin/message/send", "errcode": 81013, "times": 50}
    w.stack.control("POST", "/faults", json=fault)
    try:
        w.say("这个怎么退货？", at=0)
        w.pulled(3600)
        w.clock(120)
        assert w.fire() == 1
        state, error = wait_for(lambda: (r := _reached(w).get(0)) and r[0] == "given_up" and r)
        assert "消息接收人全部无效" in error
        [problem] = _problems(w)
        assert (problem["recipient"], problem["status"], problem["attempts"]) == ("zhangsan", "given_up", 1)
        assert [c["name"] for c in problem["customers"]] == ["王女士"]  # whom it told of
    finally:
        w.stack.control("DELETE", "/faults")


def test_a_card_to_an_agent_without_an_account_license_is_given_up_at_once_with_why(w):
    """WeCom answers errcode 0 and lists the member under unlicenseduser: nothing reached them,
    and retrying cannot change it (the corp must assign them a license)."""
    member = {"userid": "qianqi", "name": "钱七", "department": [2], "licensed": False}
    w.stack.control("POST", w.stack.corp_path("/staff"), json=member)
    asyncio.run(sync_staff(w.stack.rt, w.stack.tenant_id))
    w.say("发票什么时候开？", at=0, staff="qianqi")
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    state, error = wait_for(lambda: (r := _reached(w).get(0)) and r[0] == "given_up" and r)
    assert "unlicenseduser: qianqi" in error
    [problem] = _problems(w)
    assert (problem["recipient"], problem["status"], problem["attempts"]) == ("qianqi", "given_up", 1)
    assert not [m for m in w.stack.app_messages() if "qianqi" in m["recipients"]]


def call_fired_in_quiet_hours(w, ext: str = "wmcustomer1", staff: str = "zhangsan") -> None:
    """At 03:19 in Beijing the call step fires in quiet hours 22:00-05:00: its call waits for
    them to end (w.at(102 * 60))."""
    with w.session() as s:
        steps = [{"delay_s": 60, "action": "voice_call", "target": "agent"}]
        service.save_policy(s, now=w.rt.now(), steps=steps, quiet_hours=["22:00", "05:00"])
    start = w.rt.now().replace(hour=19, minute=18, second=0, microsecond=0)  # 03:18 in Beijing
    w.t0 = start + timedelta(days=1)
    w.clock(0)
    w.say("急！能改地址吗？", at=0, ext=ext, staff=staff)
    w.pulled(3600)
    w.clock(60)  # 03:19: the call step fires
    assert w.fire() == 1


def held_call(w, callee: str | None = None) -> OutboxMessage | None:
    """The call put off till quiet hours end (due over an hour from now), the callee's if named.
    The stack's tenant is shared: other tests' calls went long ago."""
    due_later = OutboxMessage.kind == "sla_call", OutboxMessage.due_at > utcnow() + timedelta(hours=1)
    with w.session() as s:
        for m in s.scalars(select(OutboxMessage).where(*due_later)):
            if callee is None or m.payload.get("callee") == callee:
                return m
    return None


def _failed_try(w) -> OutboxMessage | None:
    """The call, once a try of it failed. (Not by its attempts: a claim counts them, before
    the try has rung or failed.)"""
    with w.session() as s:
        return s.scalar(
            select(OutboxMessage).where(OutboxMessage.kind == "sla_call", OutboxMessage.last_error != "")
        )


def test_a_call_that_would_ring_in_quiet_hours_waits_for_them_to_end(w):
    """The step fires at 21:59 (quiet hours from 22:00); the call's tries fail till 22:05, and
    its retry then is held till 08:00 instead of ringing (the voice gateway answers again only
    once it is held)."""
    import httpx

    with w.session() as s:
        steps = [{"delay_s": 60, "action": "voice_call", "target": "agent"}]
        service.save_policy(s, steps=steps, quiet_hours=["22:00", "08:00"])
    start = w.rt.now().replace(hour=13, minute=58, second=0, microsecond=0)  # 21:58 in Beijing
    w.t0 = start + timedelta(days=1)
    w.clock(0)
    # every try fails until the clock is past 22:00: a retry comes a second or so later by the
    # real clock, and one that rang before the test moved Siyu's clock on made this test flaky
    httpx.post(f"{w.gateway}/_emulator/voice/faults", json={"fail": 1000})
    w.say("急！能改地址吗？", at=0)
    w.pulled(3600)
    w.clock(60)  # 21:59: the call step fires
    assert w.fire() == 1
    assert "503" in wait_for(lambda: _failed_try(w)).last_error
    w.clock(7 * 60)  # 22:05
    # the next retry is up to a few seconds off, more if the tries before it were many. The
    # gateway answers again only once the call is held: a try begun before the clock moved (the
    # test's thread held back) read the time as 21:59, and would ring had it answered by then
    held = wait_for(lambda: held_call(w), timeout=30.0)
    httpx.post(f"{w.gateway}/_emulator/voice/faults", json={"fail": 0})
    assert held.due_at == w.at(10 * 3600 + 2 * 60)  # 08:00 next morning
    time.sleep(1.5)  # the worker has had its chance to ring
    assert calls(w) == [] and held_call(w).status == "pending"


def test_a_held_call_rings_when_quiet_hours_are_shortened_and_waits_when_they_are_lengthened(w):
    """03:19 a call step fires in quiet hours ending 05:00, and its call waits for them. The
    admin lengthens them to 08:00: the call waits till 08:00 (its outbox row was still due at
    05:00). Then shortens them to 23:00-03:00, already over: the call rings now. The call had
    stayed due at 08:00, while the board, reading the new quiet hours, said it had gone out."""
    call_fired_in_quiet_hours(w)

    assert wait_for(lambda: held_call(w)).due_at == w.at(102 * 60)  # 05:00
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), quiet_hours=["22:00", "08:00"])
    assert held_call(w).due_at == w.at(282 * 60)  # 08:00
    with w.session() as s:
        assert queries.calls_held(s, w.rt.now()) == [w.at(282 * 60)]
        service.save_policy(s, now=w.rt.now(), quiet_hours=["23:00", "03:00"])
    [call] = wait_for(lambda: calls(w))
    assert call["template_params"] == ["1", "1"]  # one customer, waiting a minute
    with w.session() as s:
        assert queries.calls_held(s, w.rt.now()) == []


def test_a_call_not_placed_because_voice_is_off_is_shown_with_why(w, monkeypatch):
    off = w.stack.rt.settings.model_copy(update={"voice_provider": "off"})
    monkeypatch.setattr(w.stack.rt, "settings", off)
    with w.session() as s:
        service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    w.say("人呢？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    state, error = wait_for(lambda: (r := _reached(w).get(0)) and r[0] == "skipped" and r)
    assert "未开通语音电话" in error
    [problem] = _problems(w)
    assert (problem["kind"], problem["status"]) == ("call", "skipped")
    assert "SIYU_VOICE_PROVIDER" in problem["error"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 秒"),
        (30.7, "30 秒"),
        (60, "1 分钟"),
        (3599, "59 分钟"),
        (3600, "1 小时"),
        (3720, "1 小时 2 分钟"),
    ],  # noqa: E501
)
def test_a_card_says_how_long_in_seconds_under_a_minute(seconds, text):
    assert tasks.waited(seconds) == text


def test_a_call_not_placed_because_everyone_was_answered_is_no_delivery_problem(w):
    with w.session() as s:
        for error in (queries.CALL_NOT_NEEDED, "answered before the call"):  # and as older rows say it
            s.add(SlaCall(callee_userid="zhangsan", status="skipped", error=error, created_at=utcnow()))
        refused = "语音网关拒绝了这次呼叫"
        s.add(SlaCall(callee_userid="zhangsan", status="failed", error=refused, created_at=utcnow()))
    assert [(p["status"], p["error"]) for p in _problems(w)] == [("failed", "语音网关拒绝了这次呼叫")]


def test_a_card_sent_again_after_its_first_send_got_no_answer_reaches_the_member_once(settings, db):
    """WeCom got the card but its answer came after Siyu stopped waiting: the retry sends the
    card as it was (not the minutes waited of the retry's time), which WeCom's duplicate check
    drops, so the member has one card, not two."""
    quick = settings.model_copy(update={"wecom_timeout_s": 2.0})
    with stack(quick, db, serve_siyu=False) as st:
        asyncio.run(sync_staff(st.rt, st.tenant_id))
        w = Wait(st.rt, st.tenant_id, now_ms(st.rt))
        w.customer("wmcustomer1", "王女士")
        w.policy()
        w.say("你好，这个套餐多少钱？", at=0)
        w.pulled(3600)
        w.clock(120)
        assert w.fire() == 1
        [card] = w.outbox()
        slow = {"corp_id": st.corp_id, "path": "/cgi-bin/message/send", "delay_s": 4.0}
        st.control("POST", "/faults", json=slow)
        run_as_worker(st.rt, claimed(db, [card.id], quick.work_lease))  # no answer in time
        w.clock(180)  # the retry a minute later by Siyu's clock: built now, it would say 3 minutes
        run_as_worker(st.rt, wait_for(lambda: claimed(db, [card.id], quick.work_lease), timeout=30))

        def answered() -> int:  # the slow first send too, answered after Siyu gave up on it
            calls = st.control("GET", st.corp_path("/calls"))
            return sum(1 for c in calls if c["path"] == "/cgi-bin/message/send" and c["errcode"] == 0)

        wait_for(lambda: answered() == 2, timeout=30)
        got = [m["payload"]["textcard"]["title"] for m in st.app_messages() if "zhangsan" in m["recipients"]]
        assert got == ["王女士 已等待 2 分钟 未回复"]
        assert [m.status for m in w.outbox()] == ["sent"]


# ------------------------------------------------ a card's link, tapped on a member's phone


def tapped(w, userid: str, url: str) -> httpx.Response:
    """The page `url` (a card's link) opens for `userid`, signed in to WeCom on their phone."""
    with httpx.Client(follow_redirects=True, timeout=10) as phone:
        corp = w.stack.corp_id
        r = phone.get(f"{w.stack.emulator}/_emulator/oauth/as/{corp}/{userid}", params={"next": url})
        r.read()
        return r


def said(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</p>', page, re.S)
    return re.sub(r"<[^>]+>|\s+", "", found[1]) if found else ""


def test_a_card_opened_after_the_customer_was_answered_says_so(w):
    """The agent answered in WeCom, then tapped the card: the chat opened with no wait bar and
    nothing about the card, so they could not tell whether the reminder still stood."""
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    before = tapped(w, "zhangsan", card["url"])
    assert before.url.path == f"/conversations/{conversation.id}" and "等待回复" in before.text
    assert said(before.text, "card-closed") == ""  # still waiting: the wait bar says so

    w.reply("您好，套餐 199 元一个月", at=150)
    r = tapped(w, "zhangsan", card["url"])
    assert r.status_code == 200 and r.url.path == f"/conversations/{conversation.id}"
    at = w.at(150).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d%H:%M")
    assert said(r.text, "card-closed") == f"这张提醒里的客户已在{at}得到张三的回复，不用再处理。"


def test_the_conversation_list_tells_the_wait_by_the_clock_the_card_read(w):
    """The list (page and API) measured the wait by the machine's clock, not Siyu's: under
    the tests' clock a card saying 2 分钟 opened a list saying 等待 0 秒."""
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    link = urlsplit(card["url"])  # the card's sign-in, on to the waiting list instead of the chat
    to_list = link._replace(query=urlencode({"next": "/conversations?waiting=1"})).geturl()
    with httpx.Client(follow_redirects=True, timeout=10) as phone:
        corp = w.stack.corp_id
        r = phone.get(f"{w.stack.emulator}/_emulator/oauth/as/{corp}/zhangsan", params={"next": to_list})
        assert r.status_code == 200 and r.url.path == "/conversations", r.url
        row = re.search(r'<span class="wait" data-waited="(\d+)"[^>]*>([^<]*)</span>', r.text)
        assert row and _two_minutes_on(int(row[1]), row[2]), row
        items = phone.get(f"{r.url.scheme}://{r.url.netloc.decode()}/api/v1/conversations").json()["items"]
        [mine] = [c for c in items if c["id"] == conversation.id]
        assert _two_minutes_on(mine["waiting_seconds"])


def _two_minutes_on(seconds: int, said: str = "") -> bool:
    """A wait of 2 minutes by Siyu's clock, which runs on while a test reads it (the machine's
    clock said 0 秒): a slow database's second or few, not an exact 120."""
    return 120 <= seconds < 150 and (not said or said == f"等待 2 分 {seconds - 120} 秒")


def test_the_customer_page_tells_the_wait_by_the_clock_the_card_read(w):
    """The customer's page lists their chats with each wait, measured by the machine's clock
    where the list and the cards read Siyu's: 等待 0 秒 beside a card saying 2 分钟."""
    from siyu.customers.models import Follow

    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    with w.session() as s:  # (张三's customer: whose page he may open)
        s.add(Follow(customer_id=conversation.customer_id, staff_userid="zhangsan"))
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    link = urlsplit(card["url"])
    to_customer = link._replace(query=urlencode({"next": f"/customers/{conversation.customer_id}"})).geturl()
    with httpx.Client(follow_redirects=True, timeout=10) as phone:
        corp = w.stack.corp_id
        r = phone.get(f"{w.stack.emulator}/_emulator/oauth/as/{corp}/zhangsan", params={"next": to_customer})
        assert r.status_code == 200 and r.url.path == f"/customers/{conversation.customer_id}", r.url
        badge = re.search(r'data-waited="(\d+)" data-waited-prefix="等待 ">([^<]*)</span>', r.text)
        assert badge and _two_minutes_on(int(badge[1]), badge[2]), badge


def test_a_card_opened_after_the_agent_answered_and_left_marks_them(w):
    """The leader the card reached opened it once 张三 had left: the chat's header read 成员
    张三（已离职） above 这张提醒里的客户已在 … 得到 张三 的回复, unmarked."""
    from siyu.tenancy.models import Staff

    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    w.reply("您好，套餐 199 元一个月", at=150)
    at = w.at(150).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d%H:%M")
    with w.session() as s:  # (the staff sync's verdict; the next test's sync brings him back)
        s.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=False, wecom_status=5))
    try:
        r = tapped(w, "lisi", card["url"])
        assert r.status_code == 200 and r.url.path == f"/conversations/{conversation.id}"
        closed = said(r.text, "card-closed")
        assert closed == f"这张提醒里的客户已在{at}得到张三（已离职）的回复，不用再处理。"
    finally:
        with w.session() as s:
            s.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=True, wecom_status=1))


@pytest.mark.parametrize("customers", [1, 2])
def test_a_leaders_card_about_a_member_who_left_asks_to_hand_the_customer_over(w, customers):
    """张三 left the company with customers waiting: his own cards reach nobody, his leader's go
    out. They read 张三的客户 … 请提醒张三尽快回复 (两位: 请提醒同事尽快回复), a reminder nobody
    can pass on, while the chat they open says nobody there will reply and to hand them over."""
    from siyu.tenancy.models import Staff

    w.say("你好，这个套餐多少钱？", at=0)
    if customers == 2:
        w.say("请问能开发票吗？", at=1, ext="wmcustomer2")
    w.pulled(3600)
    with w.session() as s:  # (the staff sync's verdict; put back below, as the other tests expect him)
        s.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=False, wecom_status=5))
    try:
        w.clock(305)
        while w.fire():
            pass
        [card] = wait_for(lambda: cards(w, "lisi"))
    finally:
        with w.session() as s:
            s.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=True, wecom_status=1))
    assert "提醒" not in card["description"], card["description"]
    if customers == 1:
        assert card["title"] == "张三（已离职）的客户 王女士 已等待 5 分钟 未回复"
        assert card["description"].endswith(
            "已等待 5 分钟，张三已离职，请在企业微信管理后台把客户分配给在职成员</div>"
        )
    else:
        assert card["title"] == "2 位客户等待回复，最长 5 分钟"
        assert "王女士（张三，已离职）：" in card["description"]
        assert card["description"].endswith("离职或停用成员的客户，请在企业微信管理后台分配给在职成员</div>")


def test_a_card_opened_after_a_colleague_marked_it_no_reply_needed_says_who(w):
    from siyu.conversations import service as conversations

    w.say("好的，谢谢", at=0)
    w.say("对了，发票怎么开？", at=5)
    w.pulled(3600)
    conversation = w.conversation()
    w.clock(125)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    with w.session() as s:
        assert conversations.dismiss(s, conversation.id, w.at(130), by="李四")
    at = w.at(130).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d%H:%M")
    # the agent; and the leader the card is forwarded to, who marked it: 你, not their own name
    for userid, by in (("zhangsan", "李四"), ("lisi", "你")):
        r = tapped(w, userid, card["url"])
        assert r.status_code == 200 and r.url.path == f"/conversations/{conversation.id}"
        assert said(r.text, "card-closed") == f"这张提醒里的客户已在{at}被{by}标记为无需回复，不用再处理。"
    # a member who may not see the chat learns nothing of it from the forwarded link
    r = tapped(w, "wangwu", card["url"])
    assert r.status_code == 404 and "card-closed" not in r.text and "李四" not in r.text


def test_the_chat_a_business_hours_card_opens_tells_the_wait_by_the_cards_clock(w):
    """A question of Friday 17:59, carded on Monday 09:01 as 已等待 2 分钟（工作时间）: the chat
    it opened said 等待 2 天 15 小时 alone, as if the card had been wrong."""
    from tests.sla.test_calendar import bj, business_policy

    business_policy(w)
    w.t0 = bj(2025, 9, 19, 17, 59).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("周一能发货吗？", at=0)
    monday = (bj(2025, 9, 22, 9, 1) - w.t0).total_seconds()
    w.pulled(monday)
    w.clock(monday)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    assert card["title"] == "王女士 已等待 2 分钟（工作时间） 未回复"
    r = tapped(w, "zhangsan", card["url"])
    bar = re.search(r'<section class="waitbar" aria-label="等待回复">(.*?)</section>', r.text, re.S)[1]
    said = re.sub(r"<[^>]+>|\s+", "", bar.split("<form")[0])
    # (Siyu's clock runs on: a second may pass)
    assert re.match(r"王女士等待2天15小时工作时间2分\d+秒“周一能发货吗？”", said), said


def test_a_card_forwarded_to_a_member_who_may_not_see_the_chat_says_whom_card_links_open_for(w):
    """A card's link forwarded to a colleague answered the generic 这个页面不存在，或你没有权限查看,
    leaving them to wonder whether the link was broken. It says now whom a card's link opens for,
    and says it the same for a card and chat that exist, a made-up card, and a chat that does
    not exist: nothing about the card or its customer is told."""
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    forwarded = tapped(w, "wangwu", card["url"])
    assert forwarded.status_code == 404 and forwarded.url.path == f"/conversations/{conversation.id}"
    told = re.search(r'<p class="alert" role="alert">(.*?)</p>', forwarded.text, re.S)[1]
    assert "提醒的链接只有收到提醒的成员、其主管和管理员能打开" in told
    card_id = card["url"].rpartition("&card=")[2]
    made_up = card["url"].replace(f"%3Fcard%3D{card_id}", "%3Fcard%3D999999")
    for url in (
        made_up,
        card["url"].replace(f"/conversations/{conversation.id}%3F", "/conversations/999999%3F"),
    ):
        r = tapped(w, "wangwu", url)
        assert r.status_code == 404 and re.search(r'role="alert">(.*?)</p>', r.text, re.S)[1] == told, url
    plain = tapped(w, "wangwu", card["url"].replace("%3Fcard%3D", "%3Fx%3D"))  # no card: as it was
    assert plain.status_code == 404 and "提醒" not in plain.text


def test_the_agents_card_names_the_next_step_to_the_second_within_the_boards_minute(local):
    """张三's card at 10:02:40 and the board at that moment speak of one step, 李四's card due at
    10:05:40: the board says 下一步 10:06 (it will have come by then). The card had said 10:05
    仍未回复将提醒李四 (at 10:05:10 the board said nothing was due till 10:06), then 10:06, a
    deadline after the step (an answer at 10:05:45, "before 10:06", had 李四 told all the same):
    it says 10:05:40, the deadline as it is."""
    from siyu.sla.tasks import _notice
    from tests.sla.test_board_metrics import _get
    from tests.sla.test_never_ring import _row

    w = local
    _at_ten(w)  # 10:00:00 in Shanghai
    w.policy(
        steps=[
            {"delay_s": 120, "action": "app_message", "target": "agent"},
            {"delay_s": 300, "action": "app_message", "target": "leader"},
        ]
    )
    w.say("今天下单今天能发吗", at=40)  # 10:00:40: the card at 10:02:40, 李四 told at 10:05:40
    w.pulled(7200)
    w.clock(161)
    assert w.fire() == 1
    said = _notice(w.rt, w.tenant_id, w.outbox("sla_notice")[-1])["textcard"]["description"]
    row = _row(_get(w, "/sla").text, w.conversation().id)
    assert '下一步 10:06 <span class="next-step">提醒卡片发给上级 李四</span>' in row, row
    assert '<div class="gray">10:05:40 仍未回复将提醒李四</div>' in said, said


def test_a_member_renamed_in_wecom_is_named_so_by_what_they_do_from_the_card(w):
    """张三 signed in from his card once (his Siyu login made then, named 张三), and was then
    renamed 张三丰 in WeCom (the staff sync brought it). He signs in from the card again and puts
    the reminders off: his Siyu login is still 张三, whatever WeCom says (person_for_staff updates
    the role a leader gets, never the name), so the leader's card reads
    已于 19:04 提醒张三丰；张三 19:04 暂缓提醒至 19:05 under the title 张三丰的客户: a colleague
    named 张三, who does not exist, held 张三丰's reminders back. The board and the chat said
    暂缓至 …（张三） likewise. A rename in WeCom now renames the login at the staff sync."""
    from tests.web.conftest import IN_WECOM

    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    corp = w.stack.corp_id

    def signed_in_from_the_card() -> tuple[httpx.Client, httpx.Response]:
        phone = httpx.Client(follow_redirects=True, timeout=10, headers={"user-agent": IN_WECOM})
        r = phone.get(f"{w.stack.emulator}/_emulator/oauth/as/{corp}/zhangsan", params={"next": card["url"]})
        assert r.status_code == 200 and r.url.path == f"/conversations/{conversation.id}", r.url
        return phone, r

    phone, _ = signed_in_from_the_card()  # his login is made: 张三
    phone.close()
    w.stack.wecom.staff["zhangsan"].name = "张三丰"  # renamed in WeCom's admin console
    w.stack.sync()
    phone, r = signed_in_from_the_card()
    try:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.text)[1]
        w.clock(125)
        snoozed = phone.post(
            f"{w.stack.siyu}/conversations/{conversation.id}/snooze",
            data={"csrf_token": csrf, "minutes": 1, "next": f"/conversations/{conversation.id}"},
        )
        assert snoozed.status_code == 200 and "已暂缓提醒" in snoozed.text
        me = phone.get(f"{w.stack.siyu}/api/v1/me").json()["display_name"]
    finally:
        phone.close()
    w.clock(300)
    while w.fire():
        pass
    [leaders] = wait_for(lambda: cards(w, "lisi"))
    assert leaders["title"].startswith("张三丰的客户")
    around = re.search(r'<div class="gray">(已于[^<]*)</div>', leaders["description"])[1]
    assert re.search(r"；张三丰 \d\d:\d\d 暂缓提醒至", around), around
    assert me == "张三丰"


def _leader_step_unreached(w) -> dict:
    """A customer waits past the leader's step, which reaches nobody: the board's entry for it."""
    w.say("有人吗？", at=0)
    w.pulled(3600)
    w.clock(300)
    w.fire()
    assert w.steps()[1][:2] == (1, "skipped")
    with w.session() as s:
        [problem], _ = queries.delivery_problems(s, w.at(0) - timedelta(days=1), w.at(0) + timedelta(days=1))
    return problem


def test_a_leader_step_whose_leaders_all_left_does_not_say_the_member_has_no_leader(local):
    """张三's direct leader 李四 (also 销售一部's head) and 总部's head 王总 have left (WeCom
    status 5). His leader step reaches nobody; the board must not tell the admin that he has
    no direct leader and his department no head, which WeCom's console contradicts: the fix is
    to name leaders who are still with the company."""
    w = local
    w.policy()
    with w.session() as s:
        s.execute(
            update(Staff).where(Staff.userid.in_(["lisi", "boss"])).values(active=False, wecom_status=5)
        )
    problem = _leader_step_unreached(w)
    assert problem["status"] == "nobody"
    assert "没有直属上级" not in problem["error"], problem["error"]


def test_the_boards_next_leader_step_and_firing_agree_for_a_disabled_direct_leader(local):
    """李四 is disabled (status 2): the board names who the leader's card will reach as firing
    resolves it (王总 above 销售一部)."""
    w = local
    w.policy()
    with w.session() as s:
        s.execute(update(Staff).where(Staff.userid == "lisi").values(active=False, wecom_status=2))
    w.say("有人吗？", at=0)
    w.pulled(3600)
    w.clock(150)
    w.fire()
    with w.session() as s:
        rows = queries.waiting_now(s, w.rt.now())
        told = service.next_step_people(s, rows)
    w.clock(300)
    w.fire()
    assert w.steps()[1] == (1, "fired", "boss")
    assert told == {w.conversation().id: "boss"}


def test_a_leader_outside_the_apps_visible_range_is_not_said_to_have_left(local):
    """张三's direct leader is outside the app's visible range (never synced, still with the
    company): his leader step reaches nobody, and the board says why, not that his leaders left."""
    w = local
    w.policy()
    with w.session() as s:
        # 张三's direct leader 王总 sits in 总部, outside the app's visible range: never synced,
        # still with the company; 销售一部 has no head
        s.execute(update(Staff).where(Staff.userid == "zhangsan").values(direct_leaders=["boss"]))
        s.execute(update(Department).where(Department.wecom_id == 2).values(leaders=[]))
        s.execute(delete(Staff).where(Staff.userid.in_(["boss", "lisi"])))
        s.execute(update(Department).where(Department.wecom_id == 1).values(leaders=[]))
    problem = _leader_step_unreached(w)
    assert "已离职或停用" not in problem["error"], problem["error"]
    assert "不在应用的可见范围内" in problem["error"], problem["error"]


@pytest.mark.parametrize(
    ("errcode", "why"), [(82001, "全部无效"), (40031, "UserID 列表"), (60111, "UserID 不存在")]
)
def test_a_card_wecom_answers_all_recipients_invalid_is_given_up_at_once(w, errcode, why):
    """82001 (WeCom's "All touser & toparty & totag invalid": every recipient empty or invalid),
    40031 (不合法的UserID列表) and 60111 (UserID not found) say the same as 81013: the card reached
    nobody, and retrying twelve times over 35 minutes cannot change that. The board should say so
    at once, as it does for 81013, not show the card as being retried with an errmsg of no
    meaning to the admin."""
    fault = {"corp_id": w.stack.corp_id, "path": "/cgi-bin/message/send", "errcode": errcode, "times": 50}
    w.stack.control("POST", "/faults", json=fault)
    try:
        w.say("这个怎么退货？", at=0)
        w.pulled(3600)
        w.clock(120)
        assert w.fire() == 1
        state, error = wait_for(lambda: (r := _reached(w).get(0)) and r[0] in ("retrying", "given_up") and r)
        assert state == "given_up", (state, error)
        [problem] = _problems(w)
        assert (problem["recipient"], problem["status"], problem["attempts"]) == ("zhangsan", "given_up", 1)
        assert why in problem["error"], problem["error"]
    finally:
        w.stack.control("DELETE", "/faults")


def test_a_card_wecom_refuses_with_48002_names_the_apps_own_secret(w):
    """48002 on message/send: the app's secret may not send app messages (a 客户联系 secret pasted
    as the app's, or the app disabled). The board had told the admin to "use the 客户联系 secret",
    the advice for the customer-contact APIs, which cannot send an app message."""
    fault = {"corp_id": w.stack.corp_id, "path": "/cgi-bin/message/send", "errcode": 48002, "times": 50}
    w.stack.control("POST", "/faults", json=fault)
    try:
        w.say("这个怎么退货？", at=0)
        w.pulled(3600)
        w.clock(120)
        assert w.fire() == 1
        wait_for(lambda: (r := _reached(w).get(0)) and r[0] in ("retrying", "given_up") and r)
        [problem] = _problems(w)
        assert "应用无权发送应用消息" in problem["error"] and "use the 客户联系" not in problem["error"]
    finally:
        w.stack.control("DELETE", "/faults")


def test_a_call_the_gateway_answered_too_late_is_not_rung_again(w, monkeypatch):
    """The voice gateway places the call and answers after Siyu stopped waiting (a slow
    network; the same as a worker killed while it waits). The call was retried, and 张三's
    phone rang twice for one step: a call that may have rung is not placed again, and the
    board says its outcome is unknown."""
    import httpx

    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update={"voice_timeout_s": 0.5}))
    with w.session() as s:
        service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    httpx.post(f"{w.gateway}/_emulator/voice/faults", json={"slow": 1, "delay_s": 2.0})
    w.say("急！能改地址吗？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    failed = wait_for(lambda: (c := _call_row(w)) and c.status == "failed" and c, timeout=30.0)
    assert failed.error == tasks.CALL_OUTCOME_UNKNOWN
    time.sleep(2.5)  # the slow answer has come, and the worker has had its chance to ring again
    assert len(calls(w)) == 1
    [problem] = _problems(w)
    assert (problem["kind"], problem["status"]) == ("call", "failed") and "呼叫结果未知" in problem["error"]


def test_a_tencent_gateway_page_is_told_in_words_not_as_python_bytes():
    """Tencent's endpoint (or a proxy before it) answering with a 502 page: the call is retried,
    and why reads in words on the board, not as the page's bytes (b'<html>…')."""
    from fastapi.responses import HTMLResponse

    app = FastAPI()

    @app.post("/")
    async def bad_gateway():
        return HTMLResponse("<html><body>502 Bad Gateway</body></html>", status_code=502)

    with serve(app) as url, pytest.raises(Retry) as refused:
        asyncio.run(TencentVoice(tencent_settings(url)).call(VoiceCall("13800000002", ["1", "1"], "", "x")))
    assert str(refused.value) == "腾讯云语音服务暂时无法访问（网关回了一个错误页），稍后重试"
