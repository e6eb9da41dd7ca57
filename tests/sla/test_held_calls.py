# ruff: noqa: F811 - the fixtures imported are test parameters
"""Calls the sender holds (quiet hours, a retry) and calls that cannot ring: a call refused
once and then held follows the quiet hours as edited, one held overnight does not ring a
member who left meanwhile, and a member whose WeCom number no call can ring is flagged."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from siyu.db import utcnow
from siyu.notify.models import OutboxMessage
from siyu.sla import service
from tests.sla.test_delivery import calls, gateway  # noqa: F401 - the fixture
from tests.sla.test_never_ring import _pending_calls, _send_calls

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
    _at_beijing(w, 20, 58)
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), steps=CALL, quiet_hours=["21:00", "08:00"])
    w.say("人呢？", at=0, ext="wmA")
    w.pulled(7200)
    w.clock(60)  # 20:59
    assert w.fire() == 1
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
