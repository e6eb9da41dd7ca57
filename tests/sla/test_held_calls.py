# ruff: noqa: F811 - the fixtures imported are test parameters
"""Calls the sender holds (quiet hours, a retry) and calls that cannot ring: a call refused
once and then held follows the quiet hours as edited, one held overnight does not ring a
member who left meanwhile, and a member whose WeCom number no call can ring is flagged.
Under business hours a held call waits for a moment outside quiet hours while the business
clock runs, whichever holds it first, and the board says so all the while."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from siyu.db import utcnow
from siyu.notify.models import OutboxMessage
from siyu.sla import queries, service, tasks
from siyu.sla.api import board_for
from siyu.sla.models import SlaEscalation
from siyu.web.auth import Viewer
from tests.sla.test_board_metrics import _get
from tests.sla.test_delivery import calls, gateway  # noqa: F401 - the fixture
from tests.sla.test_never_ring import _pending_calls, _send_calls
from tests.support.signed_in import SignedIn

CALL = [{"delay_s": 60, "action": "voice_call", "target": "agent"}]


def _voice(w, gateway, monkeypatch) -> None:
    w.gateway = gateway
    voice = {"voice_provider": "emulator", "voice_emulator_url": gateway}
    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update=voice))


def _at_beijing(w, hour: int, minute: int) -> None:
    """The test's second 0 at hour:minute tomorrow in Beijing."""
    w.t0 = w.rt.now().replace(hour=(hour - 8) % 24, minute=minute, second=0, microsecond=0) + timedelta(
        days=1
    )
    w.clock(0)


def _call_step_fires_at_2059(w) -> None:
    """A customer asks at 20:58 Beijing; the call step fires at 20:59, a minute before the quiet
    hours 21:00-08:00."""
    _at_beijing(w, 20, 58)
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), steps=CALL, quiet_hours=["21:00", "08:00"])
    w.say("人呢？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(60)  # 20:59
    assert w.fire() == 1


def test_a_call_refused_once_then_held_by_quiet_hours_rings_once_the_admin_lifts_them(
    local, gateway, db, settings, monkeypatch
):
    """20:59 张三's call step fires; the voice gateway refuses the call once (HTTP 503). Its
    retry comes at 21:00, in the quiet hours 21:00-08:00: the sender puts it off till 08:00.
    At 21:05 the admin clears the quiet hours. README: "editing the quiet hours ... moves the
    calls they hold to when they now end, in the same save: sooner (at once if they are
    over)". A call that had never been refused rings at once; this one, refused once before
    the quiet hours held it, stays due at 08:00 (retime_held_calls passes over any call with
    a last_error) and rings eleven hours late."""
    w = local
    _voice(w, gateway, monkeypatch)
    _call_step_fires_at_2059(w)
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"fail": 1, "status": 503})
    [call] = _send_calls(w, db, settings)
    [message] = _pending_calls(w)
    assert call.status == "queued" and "503" in message.last_error  # refused once, to be retried
    w.clock(135)  # 21:00:15, in the quiet hours: the retry comes due (on the outbox's wall clock)
    with w.session() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id == message.id).values(due_at=utcnow()))
    _send_calls(w, db, settings)
    [message] = _pending_calls(w)
    assert message.due_at == w.at(11 * 3600 + 120)  # put off till 08:00, as quiet hours say
    assert calls(w) == []

    w.clock(7 * 60)  # 21:05 the admin lifts the quiet hours
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), steps=CALL, quiet_hours=[])
    [message] = _pending_calls(w)
    assert message.due_at <= utcnow(), (
        f"the call is still due at {message.due_at} (08:00), though no quiet hours hold it any more"
    )
    _send_calls(w, db, settings)
    assert [c["called_number"] for c in calls(w)] == ["+8613800000002"]


def test_a_call_held_overnight_does_not_ring_a_member_who_left_the_company_meanwhile(
    local, gateway, db, settings, monkeypatch
):
    """23:01 张三's call step fires in the quiet hours 22:00-08:00: the call waits till 08:00.
    At 23:30 张三 leaves the company (the directory sync no longer finds him). A step that came
    due after that would reach nobody (firing: "a card (or a call) to a member who left
    reaches nobody"), and an app message queued before is not sent to one who left
    (notify.tasks._app_message); the held call rang his phone all the same at 08:00, a former
    employee rung about customers no longer his."""
    from sqlalchemy import select

    from siyu.tenancy.models import Department, Staff
    from siyu.tenancy.service import save_directory

    w = local
    _voice(w, gateway, monkeypatch)
    _at_beijing(w, 23, 0)
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), steps=CALL, quiet_hours=["22:00", "08:00"])
    w.say("明天能发货吗？", at=0, ext="wmA")
    w.pulled(12 * 3600)
    w.clock(60)  # 23:01
    assert w.fire() == 1
    _send_calls(w, db, settings)  # the sender puts it off till 08:00
    [message] = _pending_calls(w)
    assert message.due_at == w.at(9 * 3600)

    w.clock(1800)  # 23:30 张三 has left: the directory no longer lists him
    with w.session() as s:
        departments = [
            {"id": d.wecom_id, "name": d.name, "parentid": d.parent_wecom_id, "department_leader": d.leaders}
            for d in s.scalars(select(Department))
        ]
        users = [
            {
                "userid": m.userid,
                "name": m.name,
                "department": m.departments,
                "main_department": m.main_department,
                "direct_leader": m.direct_leaders,
                "mobile": m.mobile,
                "status": 1,
            }
            for m in s.scalars(select(Staff))
            if m.userid != "zhangsan"
        ]
        save_directory(s, departments, users)
    with w.session() as s:
        assert not s.scalar(select(Staff).where(Staff.userid == "zhangsan")).active

    w.clock(9 * 3600 + 30)  # 08:00:30
    with w.session() as s:  # (the outbox's clock is the wall's: due now, as at 08:00)
        s.execute(update(OutboxMessage).where(OutboxMessage.id == message.id).values(due_at=utcnow()))
    _send_calls(w, db, settings)
    rang = [c["called_number"] for c in calls(w)]
    assert "+8613800000002" not in rang, f"the call rang 张三 ({rang}), who left the company at 23:30"


def test_a_member_whose_wecom_number_no_call_can_ring_is_flagged_not_said_to_have_one(
    local, gateway, db, settings, monkeypatch
):
    """王五 works from Hong Kong: WeCom's directory has his mobile as +852 6123 4567, and no
    number is set for him in Siyu. Escalation calls ring mainland mobiles only (the voice
    provider is given +86 and 11 digits), so every call to him is given up at once. The 成员
    page read 用企业微信里的 +85****4567 with no flag, and the API's `has_call_phone` ("a call to
    them has a number to ring") said true: the admin was told nothing was missing. README: "the
    page flags members with neither (a call to them is given up with why ...)"."""
    from sqlalchemy import select

    from siyu.tenancy.models import Staff
    from tests.sla.test_board_metrics import _get

    w = local
    _voice(w, gateway, monkeypatch)
    with w.session() as s:  # as the staff sync stores WeCom's number
        s.scalar(select(Staff).where(Staff.userid == "wangwu")).mobile = "+852 61234567"
    w.policy(steps=CALL)
    w.say("在吗？", at=0, ext="wmH", staff="wangwu")
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    [call] = _send_calls(w, db, settings)
    assert call.status == "failed" and "不是中国大陆手机号" in call.error  # no call can ring him
    assert calls(w) == []

    [wangwu] = [m for m in _get(w, "/api/v1/staff").json() if m["userid"] == "wangwu"]
    assert wangwu["has_call_phone"] is False, (
        "has_call_phone is true for 王五, though every call to him is given up: " + call.error
    )
    assert "请在「成员」页填写该成员接电话提醒的手机号" in call.error
    page = _get(w, "/staff").text
    assert "企业微信里的 +85****4567 不是大陆手机号：电话提醒打不出" in page


# ---------------------------------------------------------------- held under business hours

SH = ZoneInfo("Asia/Shanghai")


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SH)


def admin_board(w):
    with w.session() as s:
        return board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now())


def test_a_held_call_whose_next_shift_opens_inside_quiet_hours_is_promised_when_it_really_rings(local):
    """Shifts 07:00-22:00 Monday to Friday, quiet hours 21:00-07:30 (nobody is phoned before
    half past seven). A call due Friday 21:30 is held by quiet hours, which end Saturday 07:30,
    a day off: the call waits for Monday. Monday's shift opens at 07:00, still inside quiet
    hours, so the sender holds it again until 07:30. The board promises 07:00 (免打扰时段过后
    07:00 拨打) for a call that cannot ring until 07:30."""
    w = local
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=[["07:00", "22:00"]],
            quiet_hours=["21:00", "07:30"],
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
        )
    w.t0 = bj(2025, 11, 21, 21, 29).astimezone(UTC)  # a Friday; Monday 2025-11-24 is a workday
    w.clock(0)
    w.say("还在吗？", at=0)
    [before] = admin_board(w)["waiting"]
    assert before["next_step_after_quiet_hours"] is True
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1  # the step fires; its call waits in the outbox
    board = admin_board(w)
    [row] = board["waiting"]

    # what the sender does with the call when Monday's shift opens: held again until 07:30
    w.clock((bj(2025, 11, 24, 7, 0) - w.t0).total_seconds())
    with w.session() as s:
        [call] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sla_call")).all()
        s.expunge(call)
    rings = tasks._call_hold(w.rt, w.tenant_id, call)
    assert rings is not None and rings.astimezone(SH) == bj(2025, 11, 24, 7, 30)

    # and so the board should say: before the step fired, and once it had
    assert before["next_step_at"].astimezone(SH) == bj(2025, 11, 24, 7, 30), before["next_step_at"]
    assert row["fired"][0]["held_until"].astimezone(SH) == bj(2025, 11, 24, 7, 30)
    assert [at.astimezone(SH) for at in board["calls_held"]] == [bj(2025, 11, 24, 7, 30)]


def _send_due_calls(w) -> int:
    """The outbox's pass over the tenant's calls due by Siyu's clock, as the worker makes it."""
    from siyu.db import utcnow
    from siyu.jobs.claim import claim
    from siyu.notify.tasks import send_batch

    with w.session() as s:  # due by the database's clock too (Siyu's is moved on)
        s.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.kind == "sla_call",
                OutboxMessage.status == "pending",
                OutboxMessage.due_at <= w.rt.now(),
            )
            .values(due_at=utcnow() - timedelta(seconds=1))
        )
    rows = claim(
        w.rt.db,
        OutboxMessage,
        10,
        where=(OutboxMessage.kind == "sla_call", OutboxMessage.tenant_id == w.tenant_id),
    )

    async def go():
        try:
            await send_batch(w.rt, rows)
        finally:
            await w.rt.clients.aclose()

    asyncio.run(go())
    return len(rows)


def _friday_night_call_held(w):
    """Shifts 09:00-22:00 Monday to Friday, quiet hours 21:00-08:00, a call to the agent a
    minute after a question. Friday 21:05 a customer asks; the step fires at 21:06 and the
    sender holds the call for Monday's shift."""
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=[["09:00", "22:00"]],
            quiet_hours=["21:00", "08:00"],
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
        )
    w.t0 = bj(2025, 11, 21, 21, 5).astimezone(UTC)  # a Friday
    w.clock(0)
    w.say("还在吗？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    assert _send_due_calls(w) == 1  # the sender holds it: due Monday 09:00
    with w.session() as s:
        [call] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sla_call")).all()
        assert call.due_at.astimezone(SH) == bj(2025, 11, 24, 9, 0)
    [row] = admin_board(w)["waiting"]
    assert row["fired"][0]["held_until"].astimezone(SH) == bj(2025, 11, 24, 9, 0)  # (so far, so good)


def test_on_saturday_the_board_still_says_a_held_call_rings_on_monday(local):
    """Saturday 10:00 the call is still held for Monday 09:00 (its outbox row is due then), but
    the board no longer says so: the fired step reads merely queued, held_until null, and the
    board's list of calls quiet hours hold (calls_held) is empty, as if it had rung or were
    ringing now. The hold is worked out at the board's `now`, which quiet hours no longer cover,
    and business hours, closed all weekend, are only asked once quiet hours hold a call."""
    w = local
    _friday_night_call_held(w)
    w.clock((bj(2025, 11, 22, 10, 0) - w.t0).total_seconds())  # Saturday 10:00
    board = admin_board(w)
    [row] = board["waiting"]
    assert row["fired"][0]["delivery"] == "queued"
    held = row["fired"][0]["held_until"]
    assert held is not None and held.astimezone(SH) == bj(2025, 11, 24, 9, 0), held
    assert [at.astimezone(SH) for at in board["calls_held"]] == [bj(2025, 11, 24, 9, 0)]


def test_a_special_date_added_on_saturday_does_not_ring_a_call_held_for_mondays_shift(local):
    """README: a call quiet hours hold back under a business-hours policy "waits for the policy's
    next open moment too: Monday's shift, not Saturday 08:00". On Saturday at 10:00 the admin
    adds next month's team-building day (放假) on the policy page: every held call is retimed
    (retime_held_calls), and this one, no longer in quiet hours, was made due at once: 张三 was
    phoned on his day off instead of Monday at 09:00."""
    w = local
    _friday_night_call_held(w)
    w.clock((bj(2025, 11, 22, 10, 0) - w.t0).total_seconds())  # Saturday 10:00
    admin = SignedIn(w.rt, w.tenant_id, "admin", name="王五")
    r = admin("POST", "/sla/policy/days", form={"day": "2025-12-18", "kind": "holiday", "note": "团建"})
    assert r.status_code == 303, r.text
    with w.session() as s:
        [message] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sla_call")).all()
    assert message.due_at.astimezone(SH) == bj(2025, 11, 24, 9, 0), message.due_at.astimezone(SH)


@pytest.mark.parametrize(
    "asked_s, fired_s",
    [
        (59, 62),  # asked 17:58:59, due 17:59:59, the worker's tick at 18:00:01
        (0, 60),  # asked 17:59:00, due 18:00:00 exactly (BusinessCalendar.add ends at the close)
    ],
)
def test_a_call_step_fired_as_the_shift_closes_rings_then_not_on_monday(
    local, gateway, monkeypatch, asked_s, fired_s
):
    """Only quiet hours hold a call: one whose step fired a second after the 18:00 close on a
    Friday, quiet hours from 21:00, was put off till Monday 09:00, 63 hours on (a review found
    the loop asking the business calendar of every call)."""
    w = local
    _voice(w, gateway, monkeypatch)
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=[["09:00", "18:00"]],
            quiet_hours=["21:00", "08:00"],
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
        )
    w.t0 = bj(2025, 11, 21, 17, 58 + (asked_s == 0), asked_s).astimezone(UTC)  # a Friday
    w.clock(0)
    w.say("还在吗？今天能发货吗", at=0)
    w.pulled(3600)
    w.clock(fired_s)
    assert w.fire() == 1
    with w.session() as s:
        [call] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sla_call")).all()
        s.expunge(call)
    hold = tasks._call_hold(w.rt, w.tenant_id, call)
    assert hold is None, f"no quiet hours hold it at 18:00, yet it is put off till {hold.astimezone(SH)}"
    _send_due_calls(w)
    assert [c["called_number"] for c in calls(w)] == ["+8613800000002"]


def test_a_call_that_may_have_rung_is_not_promised_again_for_the_end_of_quiet_hours(
    local, gateway, db, settings, monkeypatch
):
    """20:59 张三's call step fires (quiet hours 21:00-08:00); the gateway places the call but
    answers after the timeout: NoAnswer, the call may have rung. Its retry comes at 21:00:30,
    in the quiet hours. Outside them that retry records the call failed, 呼叫结果未知, and never
    rings again; here the sender had checked quiet hours first and put the call off till 08:00,
    clearing its error: all night the board said 免打扰 08:00 拨打 (calls_held, held_until) for
    a call that already went to the provider and will not ring again."""
    w = local
    _voice(w, gateway, monkeypatch)
    monkeypatch.setattr(w.rt, "settings", w.rt.settings.model_copy(update={"voice_timeout_s": 0.5}))
    _call_step_fires_at_2059(w)
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"slow": 1, "delay_s": 1.5})
    [call] = _send_calls(w, db, settings)
    assert len(calls(w)) == 1  # the gateway placed it
    # handed over, no answer: failed at once, 呼叫结果未知, with no retry to put off till 08:00
    assert (call.provider, call.status, call.error) == ("emulator", "failed", tasks.CALL_OUTCOME_UNKNOWN)
    w.clock(150)  # 21:00:30, in the quiet hours
    assert _pending_calls(w) == []
    board = _get(w, "/api/v1/sla/board").json()
    [row] = board["waiting"]
    [step] = row["fired"]
    assert (step["held_until"], board["calls_held"]) == (None, []), (step["delivery"], board["calls_held"])


def _reached_by_wait(w) -> dict[str, tuple[str, str]]:
    with w.session() as s:
        fired = list(s.scalars(select(SlaEscalation).where(SlaEscalation.status == "fired")))
        out = queries.deliveries(s, fired)
        return {e.conversation_id: out[e.id] for e in fired}


def test_a_step_joined_to_a_call_being_retried_reads_retrying_with_why(
    local, gateway, db, settings, monkeypatch
):
    """Two of 张三's customers wait; the first one's call step fires and the voice gateway
    refuses the call (503): it is being retried, and the board says 重试中 with why. The second
    customer's call step fires meanwhile and joins that call (it will speak of both): its row
    says the same, the call it waits on being retried (it had read 排队中, no reason given)."""
    w = local
    _voice(w, gateway, monkeypatch)
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), steps=CALL, quiet_hours=[])
    w.say("人呢？", at=0, ext="wmA")
    w.say("在吗？", at=30, ext="wmB")
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    httpx.post(f"{gateway}/_emulator/voice/faults", json={"fail": 1, "status": 503})
    [call] = _send_calls(w, db, settings)
    [message] = _pending_calls(w)
    assert call.status == "queued" and "503" in message.last_error
    w.clock(95)
    assert w.fire() == 1  # the second customer's call step: joined to the call being retried
    a, b = w.conversation("wmA").id, w.conversation("wmB").id
    reached = _reached_by_wait(w)
    assert reached[a][0] == "retrying", reached
    assert reached[b][0] == "retrying", reached
