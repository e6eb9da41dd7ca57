"""A night shift entered as the form asked, quiet hours on the night clocks go back, and why a
step reached nobody."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from siyu.sla import queries, service
from siyu.sla.api import board_for
from siyu.sla.models import SlaEscalation, SlaPolicy
from siyu.web.auth import Viewer
from tests.sla.test_engine import AGENT_CALL, AGENT_CARD, LEADER_CARD, _fired, _recall

SH = ZoneInfo("Asia/Shanghai")


def _tenant_timezone(w, name: str) -> None:
    from siyu.tenancy.models import Tenant

    with w.rt.db.system_session() as s:
        s.get(Tenant, w.tenant_id).timezone = name


def _berlin_call_held(w, asked):
    """A tenant in Europe/Berlin whose policy calls the agent a minute after a question, quiet
    hours 22:00-02:30: a customer asks at `asked`, the call step fires; its board row."""

    _tenant_timezone(w, "Europe/Berlin")
    with w.session() as s:
        service.save_policy(
            s,
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
            quiet_hours=["22:00", "02:30"],
        )
    w.t0 = asked
    w.clock(0)
    w.say("还有人吗？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1
    with w.session() as s:
        [row] = board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now())["waiting"]
    return row


def test_a_call_held_by_quiet_hours_in_the_hour_repeated_when_clocks_go_back_waits_for_their_end(local):
    """A tenant in Europe/Berlin with quiet hours 22:00-02:30. On 26 October 2025 the clocks go
    back at 03:00 CEST to 02:00 CET, and 02:00-03:00 comes twice. A call due at 02:11 CET (the
    second time round, 01:11 UTC) is in quiet hours until 02:30 CET (01:30 UTC). It was held
    "until" 02:30 CEST, 00:30 UTC, 41 minutes in the past: due again at once, and held again
    on every pass, the worker spinning until 01:30 UTC."""
    from datetime import UTC, datetime

    from siyu.sla.calendar import quiet_until

    w = local
    row = _berlin_call_held(w, datetime(2025, 10, 26, 1, 10, tzinfo=UTC))  # 02:10 CET, the second that night
    assert row["fired"][0]["held_until"] == datetime(2025, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET
    window = ["22:00", "02:30"]  # and the first time round, 02:10 CEST: 02:30 CEST
    first = datetime(2025, 10, 26, 0, 10, tzinfo=UTC)
    assert quiet_until(first, window, "Europe/Berlin") == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)


def test_a_leader_step_for_the_escalation_contacts_own_customer_does_not_say_no_contact_was_set(local):
    """王总 (boss) leads 总部, has no leader above him, and is the policy's escalation contact.
    His own customer's leader step finds nobody (he is not told about his own wait as his
    own "leader"): fine, but the board's list of undelivered escalations says the policy has
    no escalation contact ("策略里也没有设升级联系人"), sending the admin to set one that is
    already set. It should say the contact is the member himself, not that none is set."""
    w = local
    w.policy(escalation_contact="boss")
    w.say("有人吗？", at=0, ext="wmboss", staff="boss")
    w.pulled(3600)
    w.clock(300)
    w.fire()
    assert w.steps("wmboss", "boss")[1][:2] == (1, "skipped")
    with w.session() as s:
        [problem], _ = queries.delivery_problems(s, w.at(0) - timedelta(days=1), w.at(0) + timedelta(days=1))
    assert problem["status"] == "nobody" and problem["target"] == "leader"
    assert "没有设升级联系人" not in problem["error"], problem["error"]
    assert "策略的升级联系人就是该成员本人" in problem["error"]


def _pending_due(w):
    conversation = w.conversation()
    with w.session() as s:
        return s.scalar(
            select(SlaEscalation.due_at).where(
                SlaEscalation.conversation_id == conversation.id, SlaEscalation.status == "pending"
            )
        )


def test_a_night_shift_split_at_midnight_as_the_form_asks_keeps_running_into_saturday(local):
    """22:00-06:00 is refused with "跨夜的班次请在 24:00 分成两段" (split a night shift at 24:00),
    so the admin enters 22:00-24:00 and 00:00-06:00. Friday night's shift runs until Saturday
    06:00: a question at Friday 23:00 under a 2-hour step is due at Saturday 01:00 (1 hour
    before midnight, 1 after). The calendar hangs 00:00-06:00 on the Saturday, a day off, and
    lets the clock run on from Monday 00:00 (a night nobody works), due Monday 01:00."""
    from datetime import datetime

    w = local
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=[["22:00", "24:00"], ["00:00", "06:00"]],
            quiet_hours=[],
            steps=[{"delay_s": 7200, "action": "app_message", "target": "agent"}],
        )
    w.t0 = datetime(2025, 9, 19, 23, 0, tzinfo=SH).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("夜班有人吗？", at=0)
    assert _pending_due(w).astimezone(SH) == datetime(2025, 9, 20, 1, 0, tzinfo=SH)


def test_only_a_policy_whose_every_shift_lies_in_quiet_hours_is_refused_for_its_call_step(local):
    """A night shift 22:00-06:00 under quiet hours 21:00-08:00 never lets a call ring; one that
    runs to 09:00 rings at 08:00, and a policy timed by the wall clock rings when quiet hours end."""
    w = local
    steps = [{"delay_s": 60, "action": "voice_call", "target": "agent"}]
    night = {"steps": steps, "business_hours_only": True, "quiet_hours": ["21:00", "08:00"]}
    never = "第 1 步（语音电话打给负责成员）永远不会拨打"
    with w.session() as s, pytest.raises(service.PolicyError, match=never):
        service.save_policy(s, shifts=[["22:00", "06:00"]], **night)
    with w.session() as s:
        service.save_policy(s, shifts=[["22:00", "09:00"]], **night)
        service.save_policy(s, shifts=[["22:00", "06:00"]], **{**night, "business_hours_only": False})


def test_quiet_hours_ending_in_the_hour_skipped_when_clocks_go_forward_end_when_the_clocks_jump(local):
    """Europe/Berlin, quiet hours 22:00-02:30. On 30 March 2025 the clocks jump from 02:00 CET
    to 03:00 CEST: 02:30 never shows, and from 03:00 the clock reads past it. A call due at
    01:50 CET (00:50 UTC) was held "until 02:30" read as 03:30 CEST (01:30 UTC), half an hour
    after quiet hours had ended: a call due at 03:10 CEST rang at once, the earlier one later."""
    from datetime import UTC, datetime

    from siyu.sla.calendar import quiet_until

    w = local
    row = _berlin_call_held(w, datetime(2025, 3, 30, 0, 49, tzinfo=UTC))  # 01:49 CET
    assert row["fired"][0]["held_until"] == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert quiet_until(datetime(2025, 3, 30, 1, 10, tzinfo=UTC), ["22:00", "02:30"], "Europe/Berlin") is None


def test_a_shift_starting_in_the_hour_skipped_when_clocks_go_forward_starts_when_the_clocks_jump(local):
    """A night team in Europe/Berlin works 02:30-06:00, and 30 March 2025 (a Sunday) is set as a
    workday. The clocks jump from 02:00 CET to 03:00 CEST, so the team is at work from 03:00
    CEST. A question at 03:05 CEST under a 2-minute business-time step is due at 03:07 CEST;
    the shift was taken to begin at 03:30 CEST and the card came due at 03:32."""
    from datetime import UTC, date, datetime

    w = local
    _tenant_timezone(w, "Europe/Berlin")
    with w.session() as s:
        service.set_calendar_day(s, date(2025, 3, 30), "workday")
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=[["02:30", "06:00"]],
            quiet_hours=[],
            steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}],
        )
    w.t0 = datetime(2025, 3, 30, 1, 5, tzinfo=UTC)  # 03:05 CEST
    w.clock(0)
    w.say("夜班有人吗？", at=0)
    assert _pending_due(w) == datetime(2025, 3, 30, 1, 7, tzinfo=UTC)  # 03:07 CEST


CARD_AGENT = {"action": "app_message", "target": "agent"}


def test_a_wait_reopened_after_its_department_policy_was_deleted_follows_the_tenants_policy(local):
    """A wait closed by a reply; the department's policy is removed; the agent recalls the reply,
    so the customer waits again. The wait must now run under the policy that applies (the
    tenant's one card), not the built-in default's 2/5/10 minutes with a call."""
    w = local
    with w.session() as s:
        service.save_policy(s, 0, quiet_hours=[], steps=[{"delay_s": 60, **CARD_AGENT}])
        service.save_policy(s, 2, quiet_hours=[], steps=[{"delay_s": 30, **CARD_AGENT}])
    w.say("请问这个多少钱？", at=0)
    answer = w.reply("100元", at=10)
    with w.session() as s:
        assert service.delete_policy(s, 2, now=w.at(15))
        tenant_policy_id = s.scalar(select(SlaPolicy.id).where(SlaPolicy.department_wecom_id == 0))
    w.ingest(_recall(w, answer, 20, by="zhangsan"))
    [wait] = w.waits()
    assert wait.closed_at is None  # waiting again
    w.pulled(3600)
    for t in (30, 60, 120, 300, 600, 700):
        w.clock(t)
        w.fire()
    with w.session() as s:
        rows = s.execute(
            select(
                SlaEscalation.step, SlaEscalation.delay_s, SlaEscalation.action, SlaEscalation.status
            ).order_by(SlaEscalation.step)
        ).all()
    # under the tenant's policy: nothing beyond its single card, and certainly no call
    assert [r.action for r in rows if r.status == "fired"].count("voice_call") == 0, rows
    assert w.waits()[0].policy_id == tenant_policy_id


CALL_AT_5 = {"delay_s": 300, "action": "voice_call", "target": "agent"}


def test_taking_out_the_leaders_card_that_shares_its_delay_with_the_call_still_calls_the_agent(local):
    """Policy: agent's card at 2 min, then the leader's card and a call to the agent both at
    5 min. The agent's card went; with the leader's card pending, the admin takes the leader's
    card out (agent's card at 2, call at 5). The leader's card, already scheduled, goes at 5;
    the call, which the policy still has at 5 minutes, must still ring (README: a step taken
    out does not "leave the call out")."""
    w = local
    w.policy(steps=[AGENT_CARD, LEADER_CARD, CALL_AT_5])
    w.say("在吗？", at=0)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    w.clock(130)
    w.policy(steps=[AGENT_CARD, CALL_AT_5])
    for t in (300, 301, 600, 1200):
        w.clock(t)
        w.fire()
    assert _fired(w) == [("app_message", "zhangsan"), ("app_message", "lisi"), ("voice_call", "zhangsan")]


def _edited_after_the_agents_card(w, steps: list, edited: list, times: tuple) -> list:
    """A customer asks; the agent's card fires at 2 minutes; the admin saves `edited` in place of
    `steps` while the next step is pending; firing at each of `times`: what fired, in order."""
    w.policy(steps=steps)
    w.say("在吗？", at=0)
    w.pulled(7200)
    w.clock(120)
    assert w.fire() == 1
    w.clock(130)
    w.policy(steps=edited)
    for t in times:
        w.clock(t)
        w.fire()
    return _fired(w)


def test_the_leaders_card_moved_later_while_pending_goes_once_then_the_call(local):
    """Default ladder; after the agent's card the admin moves the leader's card from 5 to 7
    minutes. The pending card goes at 5 as scheduled, and the wait goes on to the call: the step
    after it had been the moved card itself, and the leader was carded again at 7 minutes."""
    edited = [AGENT_CARD, {**LEADER_CARD, "delay_s": 420}, AGENT_CALL]
    fired = _edited_after_the_agents_card(
        local, [AGENT_CARD, LEADER_CARD, AGENT_CALL], edited, (300, 420, 600, 900)
    )
    assert fired == [("app_message", "zhangsan"), ("app_message", "lisi"), ("voice_call", "zhangsan")]


def test_a_leaders_second_card_still_goes_when_the_first_is_taken_out_while_pending(local):
    """Two cards to the leader (5 and 8 minutes); the first is taken out while pending. It goes
    as scheduled, and the second is not mistaken for it moved: it goes too, then the call."""
    second = {**LEADER_CARD, "delay_s": 480}
    steps = [AGENT_CARD, LEADER_CARD, second, AGENT_CALL]
    fired = _edited_after_the_agents_card(
        local, steps, [AGENT_CARD, second, AGENT_CALL], (300, 480, 600, 900)
    )
    assert fired == [
        ("app_message", "zhangsan"),
        ("app_message", "lisi"),
        ("app_message", "lisi"),
        ("voice_call", "zhangsan"),
    ]


def test_reminders_switched_back_on_remind_about_a_customer_who_asked_while_they_were_off(local):
    """Reminders off, a customer asks, the admin switches them back on a minute later. The wait
    had been stored with no step, and the save scheduled none: nobody was ever told."""
    w = local
    w.policy(steps=[{"delay_s": 300, "action": "app_message", "target": "agent"}])
    with w.session() as s:
        service.save_policy(s, enabled=False)
    w.say("在吗", at=0)
    w.clock(60)
    with w.session() as s:
        service.save_policy(s, enabled=True)
    w.pulled(7200)
    w.clock(299)
    assert w.fire() == 0
    w.clock(300)
    assert w.fire() == 1
    assert _fired(w) == [("app_message", "zhangsan")]


def test_reminders_switched_back_on_go_on_from_the_step_that_came_while_they_were_off(local):
    """Switched off after the agent's card: the leader's card already set still goes, and none is
    set after it. Switched on again after the call's time, the call is due at once, not never."""
    w = local
    w.policy(steps=[AGENT_CARD, LEADER_CARD, AGENT_CALL])
    w.say("在吗？", at=0)
    w.pulled(7200)
    w.clock(120)
    assert w.fire() == 1
    w.clock(130)
    with w.session() as s:
        service.save_policy(s, enabled=False)
    w.clock(300)
    assert w.fire() == 1
    w.clock(700)
    assert w.fire() == 0
    with w.session() as s:
        service.save_policy(s, enabled=True, now=w.rt.now())
    assert w.fire() == 1
    assert _fired(w) == [("app_message", "zhangsan"), ("app_message", "lisi"), ("voice_call", "zhangsan")]


def test_reminders_switched_back_on_after_days_do_not_card_about_days_old_waits(local):
    """Reminders off for two days; a customer asked just after they went off. Switched back on,
    the wait's first step is due when its schedule says, two days ago: firing's 过期不发 limit
    (6 h) skips it, as any step that late. Due 'now', every wait of the days off had been carded
    (and called) at once."""
    w = local
    w.policy(steps=[AGENT_CARD])
    with w.session() as s:
        service.save_policy(s, enabled=False)
    w.say("在吗", at=0)
    w.pulled(3 * 86400)
    w.clock(2 * 86400)
    with w.session() as s:
        service.save_policy(s, enabled=True, now=w.rt.now())
    w.fire()
    assert _fired(w) == []  # skipped as stale, as a step due two days ago is
