# ruff: noqa: F811 - the fixtures imported from test_delivery are test parameters
"""Escalation calls as the people concerned see them: a call being retried shown on the board
with why, a snooze honoured by a call still to ring, Tencent VMS errors that retrying cannot fix."""

from __future__ import annotations

import asyncio
import socket
import threading
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from siyu.db import utcnow
from siyu.notify.models import OutboxMessage
from siyu.notify.outbox import Retry
from siyu.sla import queries, service, tasks
from siyu.sla.models import SlaCall, SlaEscalation
from siyu.sla.voice import TencentVoice, VoiceCall
from tests.sla.test_delivery import (  # noqa: F401 - the fixtures
    _at_ten,
    _problems,
    _reached,
    call_fired_in_quiet_hours,
    calls,
    gateway,
    held_call,
    tencent_settings,
    w,
)
from tests.sla.test_held_calls import _voice
from tests.sla.test_never_ring import PENDING_CALLS, _send_calls
from tests.support.stack import wait_for


def test_a_call_being_retried_shows_on_the_board_with_why(w):
    """A card WeCom refuses shows as "retrying" with WeCom's answer; a call the voice provider
    refuses (its gateway down, Tencent out of balance...) is retried for an hour by the
    outbox, all the while shown as merely "queued", with no error and not among the day's
    undelivered escalations: the admin cannot see that the phone is not ringing, nor why."""
    with w.session() as s:
        service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    httpx.post(f"{w.gateway}/_emulator/voice/faults", json={"fail": 50, "status": 503})
    try:
        w.say("人呢？快回我", at=0)
        w.pulled(3600)
        w.clock(60)
        assert w.fire() == 1

        def refused() -> OutboxMessage | None:
            with w.session() as s:
                return s.scalar(
                    select(OutboxMessage).where(
                        OutboxMessage.kind == "sla_call", OutboxMessage.last_error != ""
                    )
                )

        message = wait_for(refused, timeout=30)  # (the shared database keeps the worker busy)
        assert message.status == "pending" and "503" in message.last_error  # being retried
        state, error = _reached(w)[0]
        assert state == "retrying" and "503" in error, (state, error)
        assert error.startswith("语音网关暂时无法呼叫（HTTP 503），稍后重试"), error  # words, not a trace
        [problem] = _problems(w)
        assert (problem["kind"], problem["recipient"], problem["status"]) == ("call", "zhangsan", "retrying")
        assert [c["name"] for c in problem["customers"]] == ["王女士"]  # whom it was to ring about
    finally:
        httpx.post(f"{w.gateway}/_emulator/voice/faults", json={"fail": 0})


def test_a_call_still_to_ring_does_not_ring_for_a_wait_snoozed_meanwhile(w):
    """The call step fired, but the first try failed and the call waits for its retry; the
    agent then snoozes the wait for an hour ("no escalation before now + minutes"). A card
    still to go leaves out a wait snoozed after its step fired; the call rang anyway.
    (王五's customer: the stack's tenant is shared, and a call to 张三 another test left to
    ring would cover this one.)"""
    with w.session() as s:
        service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    # every call fails until the snooze (a call another test left to ring may take a try too)
    httpx.post(f"{w.gateway}/_emulator/voice/faults", json={"fail": 1000, "status": 503})
    w.say("在吗？想改一下收货地址", at=0, ext="wmcustomer2", staff="wangwu")
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1

    def wangwus_call() -> OutboxMessage | None:
        with w.session() as s:
            for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sla_call")):
                if m.payload.get("callee") == "wangwu":
                    return m
        return None

    wait_for(lambda: (m := wangwus_call()) is not None and m.last_error, timeout=30)  # failed once
    conversation = w.conversation("wmcustomer2", "wangwu")
    with w.session() as s:
        service.snooze(s, conversation.id, w.rt.now() + timedelta(hours=1), w.rt.now())
    with w.session() as s:
        assert service.snoozed_until(s, conversation.id, w.rt.now()) is not None
    # the retry came and went, the gateway refusing still: a try under way as the test snoozed
    # (its thread held back) had read the wait unsnoozed, and would ring had the gateway
    # answered by then; a try begun since finds the snooze and gives the call up
    wait_for(lambda: wangwus_call().status != "pending", timeout=30)
    httpx.post(f"{w.gateway}/_emulator/voice/faults", json={"fail": 0})
    assert wangwus_call().status == "skipped"
    assert [c for c in calls(w) if c["called_number"] == "+8613800000003"] == []  # and did not ring


def test_a_call_held_by_quiet_hours_does_not_ring_for_a_wait_snoozed_while_it_was_held(w):
    """03:19 the call step fires in quiet hours ending 05:00 and the call waits for them; at
    03:20 the agent snoozes the wait for 15 minutes. The snooze is long over at 05:00, and the
    call rang then anyway: the reminder had been seen and held back."""
    call_fired_in_quiet_hours(w, ext="wmcustomer2", staff="wangwu")
    held = wait_for(lambda: held_call(w, "wangwu"))
    assert held.due_at == w.at(102 * 60)  # 05:00
    conversation = w.conversation("wmcustomer2", "wangwu")
    w.clock(120)  # 03:20
    with w.session() as s:
        service.snooze(s, conversation.id, w.rt.now() + timedelta(minutes=15), w.rt.now(), by="王五")
    w.clock(102 * 60 + 30)  # 05:00:30, the snooze long over
    with w.session() as s:  # the outbox's clock is the wall's: its row comes due now, as at 05:00
        s.get(OutboxMessage, held.id).due_at = utcnow()

    def status() -> str:
        with w.session() as s:
            return s.get(OutboxMessage, held.id).status

    wait_for(lambda: status() != "pending", timeout=30)
    with w.session() as s:
        call = s.get(SlaCall, held.payload["call"])
        assert (call.status, call.error) == ("skipped", queries.CALL_NOT_NEEDED)
    assert [c for c in calls(w) if c["called_number"] == "+8613800000003"] == []  # and did not ring


@pytest.mark.parametrize(
    "code",
    ["UnauthorizedOperation.VoiceSdkAppidVerifyFail", "UnauthorizedOperation.SdkAppidIsDisabled"],
)
def test_a_tencent_voice_app_that_is_wrong_or_disabled_is_given_up_at_once(code):
    """voice.py: "`Permanent` for what retrying cannot fix (a bad number, an unapproved
    template, bad credentials)". A VoiceSdkAppid that does not exist is Permanent
    (InvalidParameterValue.SdkAppidNotExist), but one that fails verification or is disabled
    (VMS's UnauthorizedOperation.*) is retried for an hour as if Tencent were busy, each
    escalation call then failing twelve times before anyone is told the app is wrong."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from siyu.notify.outbox import Permanent
    from siyu.sla.voice import TencentVoice, VoiceCall
    from tests.support.servers import serve

    app = FastAPI()

    @app.post("/")
    async def vms() -> JSONResponse:  # Tencent Cloud API 3.0's error answer
        return JSONResponse(
            {"Response": {"Error": {"Code": code, "Message": "voice sdk app"}, "RequestId": "r1"}}
        )

    with serve(app) as url:
        settings = tencent_settings(url)
        with pytest.raises(Permanent, match=code):
            asyncio.run(
                TencentVoice(settings).call(VoiceCall("13800000002", ["1", "10"], "", "siyu:1:call:1"))
            )


def test_a_call_rings_the_number_set_in_siyu_before_wecoms(w):
    """WeCom gives apps made since mid-2022 no member mobile, so the number a call rings is
    set in Siyu (the 成员 page, or the API); WeCom's number is rung only where none is."""
    from siyu.tenancy import service as tenancy

    with w.session() as s:
        assert tenancy.set_call_phone(s, "boss", "+86 139-0000-0009") == "13900000009"
        service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    try:
        w.say("人在吗？急", at=0, ext="wmcustomer9", staff="boss")
        w.pulled(3600)
        w.clock(60)
        assert w.fire() == 1
        rang = wait_for(lambda: [c for c in calls(w) if c["called_number"] == "+8613900000009"], timeout=30)
        assert rang and not [c for c in calls(w) if c["called_number"] == "+8613800000000"]
    finally:
        with w.session() as s:
            tenancy.set_call_phone(s, "boss", "")


def test_a_number_typed_in_full_width_is_stored_as_the_digits_a_provider_rings(w):
    """An input method left in full width: 138０００００００２ was stored as typed (\\d took the
    full-width digits) and every call handed Tencent a number it refuses. Other scripts' digits
    are refused; the emulator's gateway refuses such a number, as Tencent does."""
    from siyu.tenancy import service as tenancy

    with w.session() as s:
        assert tenancy.set_call_phone(s, "boss", "＋８６ 138０００００００２") == "13800000002"
        with pytest.raises(ValueError, match="不是中国大陆手机号"):
            tenancy.set_call_phone(s, "boss", "١٣٨٠٠٠٠٠٠٠٢")  # Arabic-Indic
        tenancy.set_call_phone(s, "boss", "")
    call = {"called_number": "+86138０００００００２", "template_params": ["1", "10"], "text": "x"}
    assert httpx.post(f"{w.gateway}/_emulator/voice/calls", json=call).status_code == 400


def test_a_call_to_a_member_with_no_number_anywhere_says_where_to_set_one(w):
    """WeCom gives apps made since mid-2022 no member mobile: with none set in Siyu either, the
    call is given up at once, and the board says whose number is missing and where to set it."""
    from siyu.sla.models import SlaCall
    from siyu.tenancy.tasks import sync_staff

    member = {"userid": "xiaoliu", "name": "小刘", "department": [2]}  # no mobile
    w.stack.control("POST", w.stack.corp_path("/staff"), json=member)
    try:
        asyncio.run(sync_staff(w.rt, w.tenant_id))
        with w.session() as s:
            service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
        w.say("电话打不通吗", at=0, ext="wmcustomer8", staff="xiaoliu")
        w.pulled(3600)
        w.clock(60)
        assert w.fire() == 1

        def given_up() -> SlaCall | None:
            with w.session() as s:
                call = s.scalar(select(SlaCall).where(SlaCall.callee_userid == "xiaoliu"))
                return call if call is not None and call.status in ("failed", "skipped") else None

        call = wait_for(given_up, timeout=30)
        assert call.error.startswith("小刘 没有手机号：请在私域「成员」页填写"), call.error
    finally:
        w.stack.control("DELETE", w.stack.corp_path("/staff/xiaoliu"))
        asyncio.run(sync_staff(w.rt, w.tenant_id))


def test_a_call_to_a_member_wecom_no_longer_knows_is_given_up_at_once_saying_so(w):
    """No number in Siyu, so WeCom is asked for the member's mobile; WeCom answers the member
    is not found (60111: left since the last staff sync). Asking again cannot change that:
    the call had been retried for an hour, shown as "retrying" with a bare errcode. It is
    given up at once, and the board says the member is unknown to WeCom and where to set a
    number."""
    from siyu.sla.models import SlaCall
    from siyu.tenancy.tasks import sync_staff

    member = {"userid": "xiaozhou", "name": "小周", "department": [2]}  # no mobile
    w.stack.control("POST", w.stack.corp_path("/staff"), json=member)
    try:
        asyncio.run(sync_staff(w.rt, w.tenant_id))
        w.stack.control("DELETE", w.stack.corp_path("/staff/xiaozhou"))  # left; Siyu not synced since
        with w.session() as s:
            service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
        w.say("有人吗", at=0, ext="wmcustomer9", staff="xiaozhou")
        w.pulled(3600)
        w.clock(60)
        assert w.fire() == 1

        def given_up() -> SlaCall | None:
            with w.session() as s:
                call = s.scalar(select(SlaCall).where(SlaCall.callee_userid == "xiaozhou"))
                return call if call is not None and call.status in ("failed", "skipped") else None

        call = wait_for(given_up, timeout=15)
        assert call.error.startswith("企业微信查不到 小周"), call.error
        assert "「成员」页" in call.error and "60111" in call.error
    finally:
        asyncio.run(sync_staff(w.rt, w.tenant_id))


def test_a_call_whose_number_the_app_may_not_read_is_given_up_at_once_saying_so(w):
    """WeCom refuses the app user/get (48002: no permission for this API): the member's mobile
    can never come from WeCom, so the call is given up at once with where to set a number,
    not retried for an hour."""
    from siyu.sla.models import SlaCall
    from siyu.tenancy.tasks import sync_staff

    member = {"userid": "xiaowu", "name": "小吴", "department": [2]}  # no mobile
    w.stack.control("POST", w.stack.corp_path("/staff"), json=member)
    fault = {"corp_id": w.stack.corp_id, "path": "/cgi-bin/user/get", "errcode": 48002, "times": 50}
    try:
        asyncio.run(sync_staff(w.rt, w.tenant_id))
        w.stack.control("POST", "/faults", json=fault)
        with w.session() as s:
            service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
        w.say("在吗在吗", at=0, ext="wmcustomer10", staff="xiaowu")
        w.pulled(3600)
        w.clock(60)
        assert w.fire() == 1

        def given_up() -> SlaCall | None:
            with w.session() as s:
                call = s.scalar(select(SlaCall).where(SlaCall.callee_userid == "xiaowu"))
                return call if call is not None and call.status in ("failed", "skipped") else None

        call = wait_for(given_up, timeout=15)
        assert call.error.startswith("应用无权读取 小吴 的手机号"), call.error
        assert "「成员」页" in call.error and "48002" in call.error
    finally:
        w.stack.control("DELETE", "/faults")
        w.stack.control("DELETE", w.stack.corp_path("/staff/xiaowu"))
        asyncio.run(sync_staff(w.rt, w.tenant_id))


def test_a_step_snoozed_before_the_call_it_joined_rang_reads_not_placed(local):
    """A's step queues a call to 张三 (held, say, by quiet hours); B's step joins it. 张三
    snoozes B, then the call rings, about A alone. B's step read 已拨打 all the same, though
    the call did not speak of B; one that answered meanwhile did not ring for its customer either."""
    from siyu.sla.models import SlaEscalation
    from siyu.sla.tasks import _call_plan

    w = local
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}], call_cooldown_s=900)
    w.say("问题A？", at=0, ext="wmA")
    w.say("问题B？", at=1, ext="wmB")
    w.say("问题C？", at=2, ext="wmC")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 3  # A's step queues the call; B's and C's join it
    w.clock(80)
    with w.session() as s:
        service.snooze(s, w.conversation("wmB").id, w.rt.now() + timedelta(minutes=15), w.rt.now(), by="张三")
    w.reply("您好", at=85, ext="wmC")
    w.clock(90)
    [message] = w.outbox("sla_call")
    plan = _call_plan(w.rt, w.tenant_id, message)
    assert plan is not None and plan["params"][0] == "1"  # it rings about A alone
    with w.session() as s:  # and rang (as the sender records it)
        call = s.get(SlaCall, plan["call"])
        call.status, call.placed_at = "placed", w.rt.now()
    w.clock(120)
    with w.session() as s:
        fired = list(s.scalars(select(SlaEscalation).where(SlaEscalation.status == "fired")))
        reached = queries.deliveries(s, fired)
        said = {e.conversation_id: reached[e.id] for e in fired}
    assert said[w.conversation("wmA").id] == ("placed", "")
    assert said[w.conversation("wmB").id] == ("snoozed", queries.CALL_SNOOZED_OFF)
    assert said[w.conversation("wmC").id] == ("ended", "")


def _card_went(w, ext_ids: list[str], snoozed: str, answered: str) -> dict[str, tuple[str, str]]:
    """Three customers' steps on one card to 张三; one is snoozed and one answered before it is
    built; the card then goes (or finds nothing to say) as the sender records it."""
    from siyu.sla.models import SlaEscalation
    from siyu.sla.tasks import _notices

    w.policy(steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}], merge_window_s=60)
    for i, ext in enumerate(ext_ids):
        w.say(f"问题{i}？", at=i, ext=ext)
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == len(ext_ids)
    [message] = w.outbox()  # one card to 张三 for them all
    w.clock(80)
    with w.session() as s:
        until = w.rt.now() + timedelta(minutes=15)
        service.snooze(s, w.conversation(snoozed).id, until, w.rt.now(), by="张三")
    w.reply("您好", at=85, ext=answered)
    w.clock(90)
    body = _notices(w.rt, w.tenant_id, [message])[message.id]
    with w.session() as s:  # as the sender records it
        s.get(OutboxMessage, message.id).status = "skipped" if body is None else "sent"
    w.clock(120)
    ext_of = {w.conversation(ext).id: ext for ext in ext_ids}
    with w.session() as s:
        fired = list(s.scalars(select(SlaEscalation).where(SlaEscalation.status == "fired")))
        reached = queries.deliveries(s, fired)
        return {ext_of[e.conversation_id]: reached[e.id] for e in fired}


def test_a_step_snoozed_before_its_card_was_sent_reads_not_sent(local):
    """A card to 张三 for A, B and C; 张三 snoozes B and answers C before it goes, so it speaks
    of A alone. B's and C's steps read 已送达 all the same, though the card did not mention them."""
    said = _card_went(local, ["wmA", "wmB", "wmC"], snoozed="wmB", answered="wmC")
    assert said["wmA"] == ("sent", "")
    assert said["wmB"] == ("snoozed", queries.CARD_SNOOZED_OFF)
    assert said["wmC"] == ("ended", "")


def test_a_card_every_wait_of_which_was_snoozed_or_answered_reads_so_not_as_unsent(local):
    """Every wait on the card snoozed or answered before it went: the card is not sent, and
    its steps read 未发 (skipped), in red on the board, as a card that failed."""
    said = _card_went(local, ["wmA", "wmB"], snoozed="wmA", answered="wmB")
    assert said == {"wmA": ("snoozed", queries.CARD_SNOOZED_OFF), "wmB": ("ended", "")}


def _queued_call(w) -> OutboxMessage:
    [message] = [m for m in w.outbox("sla_call") if m.status == "pending"]
    return message


def _refused_till_ten_past_seven(w, gateway: str, db, settings) -> OutboxMessage:
    """The call just fired, refused by the voice provider (HTTP 503) and being retried: the
    outbox's backoff has it next at 10:07, refused since on every try. Its outbox message."""
    from tests.sla.test_never_ring import _send_calls

    httpx.post(f"{gateway}/_emulator/voice/faults", json={"fail": 1, "status": 503})
    [call] = _send_calls(w, db, settings)
    message = _queued_call(w)
    assert call.status == "queued" and "503" in message.last_error
    with w.session() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id == message.id).values(due_at=w.at(420)))
    return message


def test_the_board_says_a_call_step_joins_the_call_being_retried_and_when_that_rings(
    local, gateway, db, settings, monkeypatch
):
    """张三's call about a customer fired at 10:01 and the voice provider refused it, again and again:
    the outbox tries it next at 10:07. The board read 下一步 10:04 语音电话打给负责成员 张三 for
    a second customer, and at 10:04 firing placed no call: the step joined the call being
    retried, which rang at 10:07 about both (and a third, whose step at 10:08 the cooldown then
    covered). It says so ahead, page and API."""

    from tests.sla.test_board_metrics import _get
    from tests.sla.test_delivery import _at_ten
    from tests.sla.test_never_ring import _row, _send_calls

    w = local
    w.gateway = gateway  # (whose calls `calls` reads)
    voice = {"voice_provider": "emulator", "voice_emulator_url": gateway}
    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update=voice))
    _at_ten(w)
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    w.say("问题A？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(60)
    assert w.fire() == 1
    message = _refused_till_ten_past_seven(w, gateway, db, settings)
    w.say("问题B？", at=180, ext="wmB")  # its call step due 10:04
    w.say("问题C？", at=400, ext="wmC")  # due 10:07:40: the call will have rung
    w.clock(200)
    page = _get(w, "/sla").text
    step = '<span class="next-step">语音电话打给负责成员 张三</span>'
    row = _row(page, w.conversation("wmB").id)
    assert f"下一步 10:04 {step}，已有一通电话排队（拨打失败，10:07 重试），届时一并提醒" in row, row
    row = _row(page, w.conversation("wmC").id)  # rung at 10:07, within the cooldown: not again
    assert f"下一步 10:08 {step}，已有一通电话排队（拨打失败，10:07 重试），届时不再拨打" in row, row
    board = {r["conversation_id"]: r for r in _get(w, "/api/v1/sla/board").json()["waiting"]}
    b, c = board[w.conversation("wmB").id], board[w.conversation("wmC").id]
    assert datetime.fromisoformat(b["next_step_queued_call_at"]) == w.at(420)
    assert b["next_step_queued_call_why"] == "retrying"
    assert datetime.fromisoformat(c["next_step_queued_call_at"]) == w.at(420)

    w.clock(245)
    assert w.fire() == 1  # B's step joins the call being retried: no second call
    assert len(w.outbox("sla_call")) == 1 and len(_queued_call(w).payload["escalations"]) == 2
    with w.session() as s:  # (the outbox's clock is the wall's: the retry is due now)
        s.execute(update(OutboxMessage).where(OutboxMessage.id == message.id).values(due_at=utcnow()))
    w.clock(420)
    [call] = _send_calls(w, db, settings)
    assert call.status == "placed"
    [rang] = calls(w)
    assert rang["template_params"][0] == "3"  # about all three: B's step joined it, C waited
    w.clock(465)
    assert w.fire() == 1 and len(calls(w)) == 1  # C's step: the cooldown covers it, as said


@pytest.mark.parametrize("sender_took_it", [False, True], ids=["queued", "put_off_by_the_sender"])
def test_the_board_says_a_call_step_in_quiet_hours_joins_the_call_they_hold(
    local, db, settings, sender_took_it
):
    """At 23:01 a call to 张三 fired in quiet hours 22:00-08:00: it waits till 08:00. 赵先生's call
    step, due 23:31, read 到期：语音电话打给负责成员 张三，免打扰时段过后 08:00 拨打, as if a call of
    its own would ring then; it joins the one queued, which rings at 08:00 about both. Once the
    sender has taken the call (within seconds) and put it off till 08:00, when the quiet hours end
    (the outbox has it due then), it read 已有一通电话排队（08:00 拨打） and
    `next_step_queued_call_why` null, as if nothing held it: quiet hours still do."""
    from tests.sla.test_board_metrics import SHANGHAI, _get
    from tests.sla.test_never_ring import _pending_calls, _row, _send_calls

    w = local
    w.t0 = w.rt.now().replace(hour=15, minute=0, second=0, microsecond=0) + timedelta(days=1)  # 23:00
    w.clock(0)
    with w.session() as s:
        steps = [{"delay_s": 60, "action": "voice_call", "target": "agent"}]
        service.save_policy(s, now=w.rt.now(), steps=steps, quiet_hours=["22:00", "08:00"])
    w.say("问题A？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(60)
    assert w.fire() == 1
    eight = w.at(9 * 3600)
    if sender_took_it:
        [call] = _send_calls(w, db, settings)
        [message] = _pending_calls(w)
        assert call.status == "queued" and message.due_at == eight and message.last_error == ""  # put off
    w.say("问题B？", at=1800, ext="wmB")
    w.clock(1810)
    row = _row(_get(w, "/sla").text, w.conversation("wmB").id)
    said = (
        '下一步 23:31 <span class="next-step">语音电话打给负责成员 张三</span>，已有一通电话排队'
        f"（免打扰时段结束 {eight.astimezone(SHANGHAI):%m-%d} 08:00 拨打），届时一并提醒"
    )
    assert said in row, row
    [b] = [r for r in _get(w, "/api/v1/sla/board").json()["waiting"] if r["next_step_queued_call_at"]]
    assert datetime.fromisoformat(b["next_step_queued_call_at"]) == eight
    assert b["next_step_queued_call_why"] == "quiet_hours"
    w.clock(1870)
    assert w.fire() == 1
    [message] = w.outbox("sla_call")  # joined, as said
    assert len(message.payload["escalations"]) == 2


def test_an_agents_card_tells_when_the_call_being_retried_will_ring(
    local, gateway, db, settings, monkeypatch
):
    """张三's call about 问题A fired at 10:01 and the provider refused it: the outbox tries again
    at 10:07. His card about 问题B at 10:03:40 said 10:04 仍未回复将给你打电话, but no call of its own
    comes at 10:04: its step joins the call being retried, which rings at 10:07 (the board says
    so too). The card now tells the time it rings."""
    from siyu.sla.tasks import _notice
    from tests.sla.test_delivery import _at_ten

    w = local
    voice = {"voice_provider": "emulator", "voice_emulator_url": gateway}
    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update=voice))
    _at_ten(w)
    w.policy(
        steps=[
            {"delay_s": 30, "action": "app_message", "target": "agent"},
            {"delay_s": 60, "action": "voice_call", "target": "agent"},
        ]
    )
    w.say("问题A？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(60)
    assert w.fire() == 2  # A's card and call
    _refused_till_ten_past_seven(w, gateway, db, settings)
    w.say("问题B？", at=190, ext="wmB")  # its card at 10:03:40, its call step due 10:04:10
    w.clock(220)
    assert w.fire() == 1
    said = _notice(w.rt, w.tenant_id, w.outbox("sla_notice")[-1])["textcard"]["description"]
    assert "问题B" in said, said
    assert '<div class="gray">10:07:00 仍未回复将给你打电话</div>' in said, said


def test_a_call_step_fired_while_a_call_had_no_answer_still_rings(local, gateway, db, settings, monkeypatch):
    """A's call reached the gateway and got no answer: it may have rung, and is not placed again.
    B's call step, firing while it waited for its retry, had been joined to it, and never rang."""
    w = local
    w.gateway = gateway
    voice = {"voice_provider": "emulator", "voice_emulator_url": gateway, "voice_timeout_s": 0.5}
    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update=voice))
    _at_ten(w)
    w.customer("wmA", "甲")
    w.customer("wmB", "乙")
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    w.say("问题A？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(60)
    assert w.fire() == 1
    # the gateway places A's call but answers after Siyu stopped waiting
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"slow": 1, "delay_s": 2.0})
    [call] = _send_calls(w, db, settings)
    assert call.status == "failed" and call.provider == "emulator"  # handed, no answer: not again
    assert len(calls(w)) == 1
    # B asks; his call step fires while A's call waits for its retry
    w.say("问题B？", at=100, ext="wmB")
    w.clock(160)
    assert w.fire() == 1
    with w.session() as s:
        s.execute(update(OutboxMessage).where(*PENDING_CALLS).values(due_at=utcnow()))
    rows = _send_calls(w, db, settings)
    for _ in range(3):  # whatever further tries are due
        with w.session() as s:
            s.execute(update(OutboxMessage).where(*PENDING_CALLS).values(due_at=utcnow()))
        rows = _send_calls(w, db, settings)
    assert rows[0].error == tasks.CALL_OUTCOME_UNKNOWN  # A's: not rung again (as 81a9f26 wants)
    # B's step was folded into a call that will never ring again: 张三's phone must still ring
    # about B (before 81a9f26 the retry rang about both)
    with w.session() as s:
        placed = list(s.scalars(select(SlaCall).where(SlaCall.status == "placed")))
    assert len(calls(w)) == 2 and placed, [(c.status, c.error[:20]) for c in rows]


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens: the connection is refused, nothing sent


def test_tencent_not_reachable_is_retried_as_the_emulator_gateway_is():
    """The SDK's ClientNetworkError is any error of its HTTP layer: a connection refused (nothing
    sent) is retried, as the emulator gateway's is; only a call that may have rung is not."""
    provider = TencentVoice(tencent_settings(_closed_port_url()))
    with pytest.raises(Retry):
        asyncio.run(provider.call(VoiceCall("13800000002", ["1", "1"], "", "siyu:1:call:1")))


def test_a_call_whose_tencent_endpoint_refused_the_connection_still_rings_later(
    local, db, settings, monkeypatch
):
    w = local
    voice = tencent_settings(_closed_port_url()).model_dump(
        include={
            "voice_provider",
            "voice_tencent_secret_id",
            "voice_tencent_secret_key",
            "voice_tencent_sdk_app_id",
            "voice_tencent_template_id",
            "voice_tencent_endpoint",
            "voice_tencent_scheme",
        }
    )
    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update=voice))
    w.customer("wmcustomer1", "王女士")
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    w.say("在吗？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    _send_calls(w, db, settings)
    with w.session() as s:  # its retry comes due (the outbox's clock is the wall's)
        s.execute(update(OutboxMessage).where(*PENDING_CALLS).values(due_at=utcnow()))
    [call] = _send_calls(w, db, settings)
    # nothing reached Tencent: the call is to be tried again, not failed as 结果未知 (may have rung)
    assert call.status == "queued", (call.status, call.error)


ONE_CALL = [{"delay_s": 60, "action": "voice_call", "target": "agent"}]


def test_a_second_customers_call_step_firing_while_the_call_rings_does_not_ring_the_agent_again(
    local, gateway, db, settings, monkeypatch
):
    """README: "one call covers all of an agent's waits ... with a cooldown counted from when
    the call rang". 张三's call about 客户A is being placed (the provider has it, its answer
    a few seconds away); 客户B's call step fires a second later. It is neither covered by the
    call still to ring (still_to_ring leaves out a call whose provider is set) nor by the
    cooldown (placed_since wants status placed): a second call is queued, and 张三's phone rings
    twice within seconds, both calls speaking of the same two customers."""
    w = local
    _voice(w, gateway, monkeypatch)
    w.customer("wmA", "客户A")
    w.customer("wmB", "客户B")
    w.policy(steps=ONE_CALL)
    w.say("在吗？", at=0, ext="wmA")
    w.say("在吗？", at=1, ext="wmB")
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1  # 客户A's call step: a call queued
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"slow": 1, "delay_s": 3.0})
    sending = threading.Thread(target=_send_calls, args=(w, db, settings))
    sending.start()
    try:
        wait_for(lambda: calls(w))  # the gateway has it: the phone is ringing
        w.clock(61)
        assert w.fire() == 1  # 客户B's call step, a second later
    finally:
        sending.join()
    _send_calls(w, db, settings)
    with w.session() as s:
        rows = [(c.status, c.waits) for c in s.scalars(select(SlaCall).order_by(SlaCall.id))]
    rang = [c["template_params"] for c in calls(w)]
    assert len(rang) == 1, f"张三 was rung {len(rang)} times within seconds: {rang}; calls {rows}"
    with w.session() as s:
        second = s.scalars(select(SlaCall).order_by(SlaCall.id.desc())).first()
    assert (second.status, second.error) == ("skipped", queries.CALL_JUST_RUNG)
    assert _problems(w) == [], "a call the cooldown covered is listed as not delivered"


def _due_now(w) -> None:
    """The call's retry comes due now (the outbox's clock is the wall's)."""
    with w.session() as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind == "sla_call", OutboxMessage.status == "pending")
            .values(due_at=utcnow())
        )


def test_a_call_the_provider_got_but_never_answered_is_not_shown_as_being_retried(
    local, gateway, db, settings, monkeypatch
):
    """README: a call "whose provider got it but answered nothing (a timeout,
    SIYU_VOICE_TIMEOUT_S ...) may have rung, and is shown failed as 呼叫结果未知 rather than
    placed again". The gateway refused 张三's call four times (HTTP 503, retried), and the fifth
    try timed out after the gateway had it. The sender lets NoAnswer fall to the outbox as any
    error: the call is left queued, its row backing off 16 s, and the board and the list of
    escalations not delivered say it is being retried (next try at …) with 可能已经呼叫 in the
    error, though no retry will ever ring it: the next try only records it failed."""
    w = local
    _voice(w, gateway, monkeypatch)
    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update={"voice_timeout_s": 0.5}))
    w.customer("wmA", "客户A")
    w.policy(steps=ONE_CALL)
    w.say("在吗？", at=0, ext="wmA")
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"fail": 4, "status": 503})
    for _ in range(4):
        _due_now(w)
        _send_calls(w, db, settings)
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"slow": 1, "delay_s": 2.0})
    _due_now(w)
    [call] = _send_calls(w, db, settings)
    assert len(calls(w)) == 1  # the gateway had it: it may well have rung
    with w.session() as s:
        [step] = s.scalars(select(SlaEscalation).where(SlaEscalation.status == "fired")).all()
        state, error = queries.deliveries(s, [step])[step.id]
        problems = queries.delivery_problems(s, utcnow() - timedelta(days=1), utcnow() + timedelta(days=1))[0]
    shown = [(p["status"], p.get("next_try_at")) for p in problems]
    assert state != "retrying" and [status for status, _ in shown] != ["retrying"], (
        f"the call the provider got and never answered reads {state!r} ({error}); the escalations not "
        f"delivered list it as {shown}; SlaCall status {call.status!r}"
    )
