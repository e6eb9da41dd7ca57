"""Whether a card or call spoke of a customer, as the board and the customer's timeline tell it:
read ahead for one still to go, and kept as it went however the wait is snoozed afterwards."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import select

from siyu.customers import queries
from siyu.customers.models import Customer
from siyu.notify.models import OutboxMessage
from siyu.sla import queries as sla_queries
from siyu.sla import service
from siyu.sla.api import board_for
from siyu.sla.models import SlaCall
from siyu.sla.tasks import _call_plan, _notices
from siyu.web.auth import Viewer
from tests.support.signed_in import SignedIn


def _board(w) -> dict[str, list[str]]:
    """Each waiting customer's fired steps, as the board reads them, by the customer's name."""
    with w.session() as s:
        board = board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now())
    return {row["customer"]: [f["delivery"] for f in row["fired"]] for row in board["waiting"]}


def _timeline(w, ext: str) -> str:
    admin = SimpleNamespace(tenant_id=w.tenant_id, visible_staff=None, timezone="Asia/Shanghai")
    with w.session() as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
        [entry] = queries.timeline(s, admin, customer_id, now=w.rt.now())
    return entry["text"]


def _snooze(w, ext: str, minutes: int = 15) -> None:
    with w.session() as s:
        until = w.rt.now() + timedelta(minutes=minutes)
        service.snooze(s, w.conversation(ext).id, until, w.rt.now(), by="张三")


def _customers(w, *names: tuple[str, str]) -> None:
    for ext, name in names:
        w.customer(ext, name)


def test_a_card_still_to_go_reads_not_sent_once_its_wait_is_snoozed_and_leaves_it_out_after(local):
    """One card to 张三 for 王女士 and 马强, held for the merge window; 张三 snoozes 马强 for 15
    minutes. The board said 排队中 for 马强 until the card went; and a card that went after the
    snooze had ended named 马强 after all, the reminder 张三 had held back (a call left him out)."""
    w = local
    _customers(w, ("wmA", "王女士"), ("wmB", "马强"))
    w.policy(steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}], merge_window_s=60)
    w.say("问题A？", at=0, ext="wmA")
    w.say("问题B？", at=1, ext="wmB")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 2
    [message] = w.outbox()  # one card to 张三 for both, still to go
    w.clock(80)
    _snooze(w, "wmB")
    assert _board(w) == {"王女士": ["queued"], "马强": ["snoozed"]}
    assert _timeline(w, "wmB").endswith("；已升级：提醒卡片给负责成员 张三（已暂缓，未发）")
    assert _timeline(w, "wmA").endswith("；已升级：提醒卡片给负责成员 张三（排队中）")
    w.clock(80 + 16 * 60)  # the snooze is over when the card is built at last (WeCom's pace, say)
    body = _notices(w.rt, w.tenant_id, [message])[message.id]
    assert body is not None and "王女士" in body["textcard"]["title"], body
    assert "马强" not in str(body["textcard"]), body["textcard"]
    with w.session() as s:  # as the sender records it
        s.get(OutboxMessage, message.id).status = "sent"
    assert _board(w) == {"王女士": ["sent"], "马强": ["snoozed"]}
    assert _timeline(w, "wmB").endswith("；已升级：提醒卡片给负责成员 张三（已暂缓，未发）")


def test_a_card_still_to_go_for_a_wait_answered_meanwhile_reads_ended(local):
    """The timeline said 排队中 for a card that would leave out a customer answered meanwhile."""
    w = local
    _customers(w, ("wmA", "王女士"), ("wmB", "马强"))
    w.policy(steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}], merge_window_s=60)
    w.say("问题A？", at=0, ext="wmA")
    w.say("问题B？", at=1, ext="wmB")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 2
    w.reply("您好", at=75, ext="wmB")
    w.clock(80)
    assert _timeline(w, "wmB").endswith("；已升级：提醒卡片给负责成员 张三（等待已结束，未发）")
    assert _timeline(w, "wmA").endswith("；已升级：提醒卡片给负责成员 张三（排队中）")


def _call_about(w, exts: list[str]) -> OutboxMessage:
    """The first customer's step queues a call to 张三; the others' join it."""
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}], call_cooldown_s=900)
    for i, ext in enumerate(exts):
        w.say(f"问题{i}？", at=i, ext=ext)
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == len(exts)
    [message] = w.outbox("sla_call")
    return message


def _rings(w, message: OutboxMessage) -> dict:
    plan = _call_plan(w.rt, w.tenant_id, message)
    assert plan is not None
    with w.session() as s:  # and rang (as the sender records it)
        call = s.get(SlaCall, plan["call"])
        call.status, call.placed_at = "placed", w.rt.now()
    return plan


def test_a_wait_snoozed_before_the_call_rang_and_again_after_reads_not_placed(local):
    """张三 snoozes 马强 before the call rings about 王女士 alone, and again after it (his first
    snooze over, 马强 still waiting). Only the latest snooze is kept, and it came after the call:
    马强's step read 已拨打, though the call had not spoken of him."""
    w = local
    _customers(w, ("wmA", "王女士"), ("wmB", "马强"))
    message = _call_about(w, ["wmA", "wmB"])
    w.clock(80)
    _snooze(w, "wmB", minutes=5)
    w.clock(90)
    assert _rings(w, message)["params"][0] == "1"  # about 王女士 alone
    assert _board(w) == {"王女士": ["placed"], "马强": ["snoozed"]}
    w.clock(80 + 6 * 60)
    _snooze(w, "wmB")
    _snooze(w, "wmA")  # (snoozed after the call that spoke of her: it rang for her all the same)
    assert _board(w) == {"王女士": ["placed"], "马强": ["snoozed"]}
    assert _timeline(w, "wmB").endswith("；已升级：语音电话给负责成员 张三（已暂缓，未打）")
    assert _timeline(w, "wmA").endswith("；已升级：语音电话给负责成员 张三（已拨打）")


def card_to_four_two_left_out(w) -> OutboxMessage:
    """One card to 张三 for 王女士, 马强, 赵先生 and 钱女士, not yet built; he snoozes 马强 and answers
    赵先生 before it is (at 90 s): the card's row."""
    _customers(w, ("wmA", "王女士"), ("wmB", "马强"), ("wmC", "赵先生"), ("wmD", "钱女士"))
    w.policy(steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}], merge_window_s=60)
    for i, ext in enumerate(("wmA", "wmB", "wmC", "wmD")):
        w.say(f"问题{i}？", at=i, ext=ext)
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 4
    [message] = w.outbox()
    w.clock(80)
    _snooze(w, "wmB")
    w.reply("您好", at=85, ext="wmC")
    w.clock(90)
    return message


def _sent_before_cards_kept_their_waits(w, snooze_again: bool = False) -> None:
    """card_to_four_two_left_out's card, gone as a card sent before cards kept the waits they
    spoke of: its text kept, its waits not."""
    message = card_to_four_two_left_out(w)
    body = _notices(w.rt, w.tenant_id, [message])[message.id]
    assert body is not None and body["textcard"]["title"].startswith("2 位客户等待回复")  # 王女士, 钱女士
    with w.session() as s:
        card = s.get(OutboxMessage, message.id)
        payload = dict(card.payload)
        del payload[sla_queries.CARD_TOLD]
        card.payload, card.status, card.sent_at = payload, "sent", w.rt.now()
    if snooze_again:  # the first snooze over, 马强 still waiting
        w.clock(90 + 16 * 60)
        _snooze(w, "wmB")


def test_a_card_sent_before_cards_kept_their_waits_reads_by_its_text_and_the_dates(local):
    """A card sent before cards kept the waits they spoke of said 已送达 for every customer on it,
    though its title named two: now the two it left out read so."""
    w = local
    _sent_before_cards_kept_their_waits(w)
    assert _timeline(w, "wmA").endswith("；已升级：提醒卡片给负责成员 张三（已送达）")
    assert _timeline(w, "wmB").endswith("；已升级：提醒卡片给负责成员 张三（已暂缓，未发）")
    assert _timeline(w, "wmC").endswith("；已升级：提醒卡片给负责成员 张三（等待已结束，未发）")
    assert _board(w) == {"王女士": ["sent"], "马强": ["snoozed"], "钱女士": ["sent"]}


def test_a_card_sent_before_cards_kept_their_waits_is_read_as_before_where_the_dates_cannot_tell(local):
    """马强 snoozed again since: his snooze of then is not kept, and the dates tell only that 赵先生
    was left out, one of the two the title leaves out. Nothing is guessed: the card reads as before."""
    w = local
    _sent_before_cards_kept_their_waits(w, snooze_again=True)
    assert _board(w) == {"王女士": ["sent"], "马强": ["sent"], "钱女士": ["sent"]}


def test_a_call_step_snoozed_before_its_held_call_rang_reads_queued_once_a_later_step_joins_it(local):
    """03:19 王女士's first call step fires in quiet hours (22:00-05:00): the call waits for 05:00.
    03:20 张三 snoozes her for 15 minutes; when it is over her second call step fires and joins
    that call, which will speak of her (her latest step on it fired after the snooze). The first
    step read 已暂缓，电话不会再为这位客户打 all the same, and the second 排队中: the one call
    read two ways, the first wrongly."""
    w = local
    _customers(w, ("wmA", "王女士"))
    steps = [
        {"delay_s": 60, "action": "voice_call", "target": "agent"},
        {"delay_s": 600, "action": "voice_call", "target": "agent"},
    ]
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), steps=steps, quiet_hours=["22:00", "05:00"])
    w.t0 = w.rt.now().replace(hour=19, minute=18, second=0, microsecond=0) + timedelta(days=1)  # 03:18
    w.clock(0)
    w.say("急！能改地址吗？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(60)  # 03:19: the first step fires, its call held till 05:00
    assert w.fire() == 1
    w.clock(120)
    _snooze(w, "wmA")  # till 03:35
    w.clock(37 * 60)  # 03:55: the snooze over, the second step fires and joins the held call
    assert w.fire() == 1
    [message] = w.outbox("sla_call")
    assert len(message.payload["escalations"]) == 2
    assert _board(w) == {"王女士": ["queued", "queued"]}
    five = w.at(102 * 60)  # 05:00
    with w.session() as s:  # the chat's 电话将于 05:00 拨打
        assert sla_queries.open_wait_call(s, w.conversation("wmA").id, w.rt.now()).held_until == five
    held = f"语音电话给负责成员 张三（免打扰，{five.astimezone(ZoneInfo('Asia/Shanghai')):%m-%d %H:%M} 拨打）"
    assert _timeline(w, "wmA").endswith(f"；已升级：{held}、{held}"), _timeline(w, "wmA")
    w.clock(102 * 60 + 30)  # 05:00:30: it rings, about her
    plan = _rings(w, message)
    assert plan["params"][0] == "1"
    with w.session() as s:
        call = s.get(SlaCall, plan["call"])
        assert call.told_waits == [w.waits("wmA")[0].id]
    assert _board(w) == {"王女士": ["placed", "placed"]}


def test_the_timeline_stops_saying_a_wait_is_snoozed_once_the_snooze_is_over(local):
    """张三 snoozed 王女士 for 15 minutes; once they were over, with her still waiting, her timeline
    still said 张三 已暂缓提醒至 and a time gone by, as if her reminders were still held back."""
    w = local
    _customers(w, ("wmA", "王女士"))
    w.policy(steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}])
    w.say("发票什么时候开？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(30)
    _snooze(w, "wmA")
    assert "（张三 已暂缓提醒至 " in _timeline(w, "wmA")
    w.clock(16 * 60)  # the snooze is over
    assert _timeline(w, "wmA").startswith("客户发来消息等待回复：「发票什么时候开？」；仍在等待回复"), (
        _timeline(w, "wmA")
    )
    assert "已暂缓" not in _timeline(w, "wmA"), _timeline(w, "wmA")


def test_a_merged_card_opens_only_the_customers_it_told_of(local):
    """One card to 张三 for 王女士, 马强, 赵先生, 钱女士; before it goes he snoozes 马强 and answers
    赵先生, so the card says "2 位客户等待回复" and names 王女士 and 钱女士 only. Tapping it lists
    those two, not 马强 the card left out (he still waits, snoozed): the page had said 3 位."""
    w = local
    message = card_to_four_two_left_out(w)
    body = _notices(w.rt, w.tenant_id, [message])[message.id]  # built (and its told waits written) as it goes
    card = body["textcard"]
    assert card["title"].startswith("2 位客户等待回复") and "马强" not in card["description"], card
    with w.session() as s:  # as the sender records it
        s.get(OutboxMessage, message.id).status = "sent"

    agent = SignedIn(w.rt, w.tenant_id, role="agent", staff="zhangsan")
    listed = agent("GET", "/api/v1/conversations", params={"waiting": 1, "card": message.id}).json()
    names = sorted(c["customer"]["name"] for c in listed["items"])
    page = agent("GET", "/conversations", params={"waiting": 1, "card": message.id}).text
    heading = page[page.find('id="card-heading">') :][:60]
    assert names == ["王女士", "钱女士"], (names, heading)
