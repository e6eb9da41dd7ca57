"""Business time: split shifts, lunch breaks, weekends, public holidays and 调休 make-up
workdays (Asia/Shanghai), dates the admin sets, and quiet hours for calls."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from siyu.sla import queries, service
from siyu.sla.api import board_for
from siyu.sla.calendar import (
    BusinessCalendar,
    official_calendar_gap,
    official_calendar_through,
    parse_shifts,
    quiet_until,
)
from siyu.sla.models import SlaEscalation, SlaWait
from siyu.web.auth import Viewer
from tests.sla.test_engine import pending_due
from tests.support.signed_in import SignedIn

SH = ZoneInfo("Asia/Shanghai")
SHIFTS = [["09:00", "12:00"], ["13:30", "18:00"]]


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=SH)


def cal(**kw) -> BusinessCalendar:
    return BusinessCalendar.build("Asia/Shanghai", SHIFTS, **kw)


def test_split_shifts_skip_the_lunch_break_and_the_night():
    c = cal()
    # Tuesday 2025-09-23
    assert c.add(bj(2025, 9, 23, 10, 0), 120) == bj(2025, 9, 23, 10, 2)
    assert c.add(bj(2025, 9, 23, 11, 59), 120) == bj(2025, 9, 23, 13, 31)
    assert c.add(bj(2025, 9, 23, 12, 30), 120) == bj(2025, 9, 23, 13, 32)
    assert c.add(bj(2025, 9, 23, 17, 59), 120) == bj(2025, 9, 24, 9, 1)
    assert c.add(bj(2025, 9, 23, 23, 0), 0) == bj(2025, 9, 24, 9, 0)
    assert c.between(bj(2025, 9, 23, 11, 0), bj(2025, 9, 23, 14, 0)) == 90 * 60
    assert c.is_open(bj(2025, 9, 23, 10, 0)) and not c.is_open(bj(2025, 9, 23, 12, 30))


def test_a_longer_delay_never_comes_due_sooner_however_little_the_shifts_hold():
    c = BusinessCalendar.build("Asia/Shanghai", [["09:00", "09:01"]])  # a minute a workday
    start = bj(2025, 9, 23, 10, 0)
    dues = [c.add(start, s) for s in (30_000, 34_000, 36_000, 60_000)]
    assert dues == sorted(dues) and dues[0] > start + timedelta(days=365)
    # past what the calendar walks (MAX_DAYS), the rest counts in wall time after its last shift
    assert dues[3] - dues[2] == timedelta(seconds=24_000)


def test_holidays_wait_and_make_up_workdays_run():
    c = cal()
    # Friday evening: Saturday 27th is a rest day, Sunday 28th a 调休 workday (National Day 2025)
    assert c.add(bj(2025, 9, 26, 17, 59), 120) == bj(2025, 9, 28, 9, 1)
    assert c.is_workday(date(2025, 9, 28)) and not c.is_workday(date(2025, 9, 27))
    # National Day: 1-8 October off, back on Thursday the 9th
    assert c.add(bj(2025, 10, 1, 10, 0), 120) == bj(2025, 10, 9, 9, 2)
    # Saturday 11 October is the second make-up day
    assert c.add(bj(2025, 10, 10, 17, 59), 120) == bj(2025, 10, 11, 9, 1)


def test_dates_the_admin_sets_win_over_the_package():
    c = cal(holidays=[date(2025, 9, 29)], workdays=[date(2025, 9, 27)])
    assert c.add(bj(2025, 9, 26, 17, 59), 120) == bj(2025, 9, 27, 9, 1)
    assert c.add(bj(2025, 9, 28, 17, 59), 120) == bj(2025, 9, 30, 9, 1)
    plain = BusinessCalendar.build("Asia/Shanghai", SHIFTS, public_holidays=False)
    assert plain.add(bj(2025, 10, 1, 10, 0), 120) == bj(2025, 10, 1, 10, 2)


def test_after_the_last_published_year_weekdays_work_and_the_admin_is_warned_in_time():
    through = official_calendar_through()
    assert through is not None and through >= 2026
    # mid-year nothing is missing soon; within two months of the new year it is
    assert official_calendar_gap(date(through, 6, 1)) is None
    assert official_calendar_gap(date(through, 12, 3)) == through + 1
    assert official_calendar_gap(date(through + 1, 3, 1)) == through + 1
    # late in a year it does not know either: the coming one, not the one nearly over
    assert official_calendar_gap(date(through + 1, 11, 16)) == through + 2
    # an unpublished year: New Year's Day on a weekday counts as a workday until the admin says
    cal = BusinessCalendar.build("Asia/Shanghai", [["09:00", "18:00"]])
    first_weekday = next(
        date(through + 1, 1, d) for d in range(1, 8) if date(through + 1, 1, d).weekday() < 5
    )
    assert cal.is_workday(first_weekday)
    cal = BusinessCalendar.build("Asia/Shanghai", [["09:00", "18:00"]], holidays=[first_weekday])
    assert not cal.is_workday(first_weekday)


def test_bad_shifts_are_refused():
    for bad in (
        [["09:00", "09:00"]],  # ends when it starts
        [["24:00", "06:00"]],
        [["09:00", "12:00"], ["11:00", "13:00"]],
        [["22:00", "07:00"], ["06:00", "12:00"]],  # the night runs into the next morning's shift
    ):
        with pytest.raises(ValueError):
            parse_shifts(bad)
    assert parse_shifts([["00:00", "24:00"]]) == ((0, 1440),)
    assert parse_shifts([["00:00", "12:00"], ["12:00", "24:00"]]) == ((0, 720), (720, 1440))  # a whole day


def test_shifts_round_the_clock_are_the_days_own_not_a_night_shift():
    """Three shifts round the clock on workdays (00:00-08:00, 08:00-16:00, 16:00-24:00): the
    first and the last had been taken for a night shift typed in two parts, so Monday
    00:00-08:00 was Sunday's (a day off) and a question at Monday 00:30 under a 2-minute step was
    due at 08:02, while Saturday 03:00 was Friday's."""
    shifts = [["00:00", "08:00"], ["08:00", "16:00"], ["16:00", "24:00"]]
    calendar = BusinessCalendar.build("Asia/Shanghai", shifts)
    assert calendar.add(bj(2025, 9, 22, 0, 30), 120).astimezone(SH) == bj(2025, 9, 22, 0, 32)
    assert not calendar.is_open(bj(2025, 9, 27, 3, 0))
    # nights typed in two parts stay one shift, however long, beside a day shift too
    assert parse_shifts([["20:00", "24:00"], ["00:00", "08:00"]]) == ((1200, 1920),)
    assert parse_shifts([["18:00", "24:00"], ["00:00", "09:00"]]) == ((1080, 1980),)
    day_and_night = [["00:00", "06:00"], ["09:00", "17:00"], ["22:00", "24:00"]]
    assert parse_shifts(day_and_night) == ((540, 1020), (1320, 1800))


def test_a_night_shift_belongs_to_the_day_it_starts():
    """22:00-06:00, or the same entered in two parts at midnight (as the form once asked): a
    question at Friday 23:00 under a 2-hour step is due Saturday 01:00 (1 hour before midnight,
    1 after), not Monday 01:00; Sunday night is nobody's shift."""
    night = parse_shifts([["22:00", "06:00"]])
    assert night == ((1320, 1800),) == parse_shifts([["00:00", "06:00"], ["22:00", "24:00"]])
    calendar = BusinessCalendar.build("Asia/Shanghai", [["22:00", "06:00"]])
    assert calendar.add(bj(2025, 9, 19, 23, 0), 7200).astimezone(SH) == bj(2025, 9, 20, 1, 0)
    assert calendar.add(bj(2025, 9, 21, 23, 0), 3600).astimezone(SH) == bj(2025, 9, 22, 23, 0)  # Sunday
    assert calendar.is_open(bj(2025, 9, 20, 5, 59)) and not calendar.is_open(bj(2025, 9, 22, 1, 0))


def test_quiet_hours_span_midnight():
    window = ["21:00", "08:00"]
    assert quiet_until(bj(2025, 9, 23, 23, 0), window, "Asia/Shanghai") == bj(2025, 9, 24, 8, 0)
    assert quiet_until(bj(2025, 9, 24, 7, 0), window, "Asia/Shanghai") == bj(2025, 9, 24, 8, 0)
    assert quiet_until(bj(2025, 9, 24, 8, 0), window, "Asia/Shanghai") is None
    assert quiet_until(bj(2025, 9, 24, 12, 0), ["12:00", "13:00"], "Asia/Shanghai") == bj(2025, 9, 24, 13)
    assert quiet_until(bj(2025, 9, 24, 12, 0), [], "Asia/Shanghai") is None


def business_policy(w, **kw) -> None:
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=SHIFTS, quiet_hours=[], **kw)


def due_times(w, ext="wmcustomer1", steps: int = 1) -> list[datetime]:
    """When the wait's next `steps` steps come due, each fired when it does (a wait has one
    pending step at a time; firing it schedules the next)."""
    conversation = w.conversation(ext)
    found = []
    while len(found) < steps:
        with w.session() as s:
            due = s.scalar(
                select(SlaEscalation.due_at).where(
                    SlaEscalation.conversation_id == conversation.id, SlaEscalation.status == "pending"
                )
            )
        if due is None:
            break
        found.append(due.astimezone(SH))
        if len(found) < steps:
            seconds = (due - w.t0).total_seconds()
            w.pulled(seconds)
            w.clock(seconds)
            assert w.fire() == 1
    return found


def test_outside_business_hours_and_on_a_holiday_the_clock_waits(local):
    w = local
    business_policy(w)
    w.t0 = bj(2025, 9, 30, 17, 58)  # the eve of National Day
    w.say("国庆能发货吗？", at=0)
    assert due_times(w, steps=3) == [bj(2025, 9, 30, 18, 0), bj(2025, 10, 9, 9, 3), bj(2025, 10, 9, 9, 8)]
    with w.session() as s:
        service.set_calendar_day(s, date(2025, 10, 9), "holiday", "公司团建")
    w.say("你好？", at=0, ext="wmcustomer2")
    assert due_times(w, "wmcustomer2", steps=2)[1] == bj(2025, 10, 10, 9, 3)


def test_on_a_make_up_workday_the_clock_runs_and_steps_fire(local):
    w = local
    business_policy(w)
    w.t0 = bj(2025, 9, 28, 10, 0).astimezone(ZoneInfo("UTC"))  # Sunday, a 调休 workday
    w.clock(0)  # Siyu's clock back to that Sunday
    w.say("周日也上班吗？", at=0)
    w.pulled(3600)
    assert due_times(w)[0] == bj(2025, 9, 28, 10, 2)
    w.clock(119)
    assert w.fire() == 0
    w.clock(120)
    assert w.fire() == 1
    w.t0 += timedelta(days=-1)  # Saturday 27th: a rest day; the first step waits for Sunday 09:02
    w.say("周六在吗？", at=0, ext="wmcustomer3")
    assert due_times(w, "wmcustomer3")[0] == bj(2025, 9, 28, 9, 2)


def test_a_date_made_a_workday_or_taken_back_moves_the_steps_of_waits_already_running(local):
    w = local
    business_policy(w)
    w.t0 = bj(2025, 12, 6, 10, 0).astimezone(ZoneInfo("UTC"))  # a Saturday
    w.clock(0)
    w.say("周六有人吗？", at=0)
    assert due_times(w)[0] == bj(2025, 12, 8, 9, 2)  # Monday
    with w.session() as s:  # the admin makes the Saturday a workday after the customer wrote
        service.set_calendar_day(s, date(2025, 12, 6), "workday", "调休")
        assert service.follow_the_calendar(s, w.rt.now()) == 1
    assert due_times(w)[0] == bj(2025, 12, 6, 10, 2)
    with w.session() as s:  # and takes it back
        service.remove_calendar_day(s, date(2025, 12, 6))
        assert service.follow_the_calendar(s, w.rt.now()) == 1
    assert due_times(w)[0] == bj(2025, 12, 8, 9, 2)
    w.pulled(3600)
    w.clock(300)
    assert w.fire() == 0  # no card on the day off telling 0 business seconds waited
    with w.session() as s:  # a snooze still holds the step back
        wait_id = s.scalar(select(SlaEscalation.wait_id).where(SlaEscalation.status == "pending"))
        s.get(SlaWait, wait_id).snoozed_until = bj(2025, 12, 8, 10, 0)
        service.set_calendar_day(s, date(2025, 12, 6), "workday", "调休")
        service.follow_the_calendar(s, w.rt.now())
    assert due_times(w)[0] == bj(2025, 12, 8, 10, 0)


def test_cards_and_calls_of_a_business_hours_wait_tell_business_time(local):
    """A question at Friday 17:59 comes due 2 business minutes later, on Monday at 09:01:
    its card says it waited 2 minutes of business time (and 63 hours in all), not 63 hours
    alone; the call at its third step says 10 minutes."""
    from siyu.sla.tasks import _call_plan, _notice

    w = local
    business_policy(w)
    w.customer("wmcustomer1", "王女士")
    w.t0 = bj(2025, 9, 19, 17, 59).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("周一能发货吗？", at=0)

    def fire_at(when: datetime) -> None:
        seconds = (when - w.t0).total_seconds()
        w.pulled(seconds)
        w.clock(seconds)
        assert w.fire() == 1

    first_monday = bj(2025, 9, 22, 9, 1)
    fire_at(first_monday)  # Monday: 1 minute on Friday, 1 on Monday
    with w.session() as s:
        (waiting,) = queries.waiting_now(s, w.rt.now())
    # the board's row
    assert (int(waiting["waited_business_s"]), int(waiting["waited_s"])) == (120, 63 * 3600 + 120)
    w.clock((first_monday - w.t0).total_seconds() + 15 * 86400)  # forgotten for two weeks more
    with w.session() as s:
        (waiting,) = queries.waiting_now(s, w.rt.now())
    assert waiting["waited_business_s"] is None  # its wall time says enough; no calendar walk
    w.clock((first_monday - w.t0).total_seconds())
    card = _notice(w.rt, w.tenant_id, w.outbox()[-1])["textcard"]
    assert card["title"] == "王女士 已等待 2 分钟（工作时间） 未回复"
    assert "已等待 2 分钟（工作时间；实际 63 小时 2 分钟）" in card["description"]
    assert "09-19 17:59 发来" in card["description"]
    fire_at(bj(2025, 9, 22, 9, 4))  # the leader's card, 5 business minutes
    fire_at(bj(2025, 9, 22, 9, 9))  # the call, 10
    (call,) = w.outbox("sla_call")
    plan = _call_plan(w.rt, w.tenant_id, call)
    assert plan["params"] == ["1", "10"] and "最长已等10分钟" in plan["text"]


def test_a_card_for_waits_under_different_clocks_puts_the_longest_first(local):
    """王女士's question to 赵六 (whose department counts business hours) at Friday 17:59 and
    李先生's to 张三 (wall clock) at Monday 08:30 both reach their leader 李四 at 09:04: 李先生
    has waited 34 minutes, 王女士 5 minutes of business time. He is first, and the longest."""
    from siyu.sla.tasks import _notice
    from siyu.tenancy.models import Department, Staff

    w = local
    with w.session() as s:
        s.add(Department(wecom_id=3, name="销售二部", parent_wecom_id=1, leaders=["lisi"]))
        s.add(
            Staff(userid="zhaoliu", name="赵六", departments=[3], main_department=3, direct_leaders=["lisi"])
        )
    w.policy(steps=[{"delay_s": 2040, "action": "app_message", "target": "leader"}])
    with w.session() as s:
        service.save_department_policy(
            s,
            3,
            business_hours_only=True,
            shifts=SHIFTS,
            steps=[{"delay_s": 300, "action": "app_message", "target": "leader"}],
        )
    w.customer("wmcustomer1", "王女士")
    w.customer("wmcustomer2", "李先生")
    w.t0 = bj(2025, 9, 19, 17, 59).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)

    def monday(hour: int, minute: int) -> float:
        return (bj(2025, 9, 22, hour, minute) - bj(2025, 9, 19, 17, 59)).total_seconds()

    w.say("周一能发货吗？", at=0, staff="zhaoliu")
    w.say("在吗？报价呢", at=monday(8, 30), ext="wmcustomer2")
    w.pulled(monday(9, 4))
    w.clock(monday(9, 4))
    assert w.fire() == 2
    (merged,) = [m for m in w.outbox() if m.payload["touser"] == "lisi"]
    card = _notice(w.rt, w.tenant_id, merged)["textcard"]
    assert card["title"] == "2 位客户等待回复，最长 34 分钟"
    assert card["description"].index("李先生") < card["description"].index("王女士")
    assert "5 分钟（工作时间；实际 63 小时 5 分钟）" in card["description"]


def test_a_call_held_back_by_quiet_hours_waits_for_the_policy_to_be_open_again(local):
    """Shifts until 23:30 and quiet hours from 21:00 to 08:00: a call due Friday at 21:05 is
    held back. Quiet hours end Saturday 08:00, but the policy's week is Monday to Friday: the
    call goes on Monday when the shift opens, not on Saturday morning."""
    w = local
    business_policy(w)
    with w.session() as s:
        service.save_policy(
            s,
            shifts=[["09:00", "23:30"]],
            quiet_hours=["21:00", "08:00"],
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
        )
    w.t0 = bj(2025, 9, 19, 21, 4).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("还在吗？", at=0)
    w.pulled(3600)
    w.clock(60)
    assert w.fire() == 1  # the step fires; its call waits in the outbox
    with w.session() as s:
        [row] = board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now())["waiting"]
    assert row["fired"][0]["held_until"].astimezone(SH) == bj(2025, 9, 22, 9, 0)


def test_a_calendar_edit_keeps_the_spacing_a_snooze_gave_the_next_step(local):
    from tests.sla.test_engine import pending_due

    w = local
    business_policy(w)
    w.t0 = bj(2025, 9, 23, 10, 0).astimezone(ZoneInfo("UTC"))  # a Tuesday
    w.clock(0)
    w.say("明天能送到吗？", at=0)
    w.pulled(7200)
    with w.session() as s:  # the agent snoozes it for half an hour
        assert service.snooze(s, w.conversation().id, until=w.at(1800), now=w.at(10)) == 1
    w.clock(1800)
    assert w.fire() == 1  # 10:30 the agent's card
    assert pending_due(w) == w.at(1980)  # the leader's 3 minutes later: the spacing kept
    with w.session() as s:  # the admin adds a holiday next year: nothing to do with today
        service.set_calendar_day(s, date(2026, 12, 24), "holiday", "公司年会")
        service.follow_the_calendar(s)
    assert pending_due(w) == w.at(1980)  # not back to 10:30, to go with the agent's card


def snoozed_past_friday_evening(w):
    """Business hours only (09:00-12:00, 13:30-18:00). A customer asks on Friday at 17:53: the
    agent's card at 17:55, the leader's at 17:58, the call on Monday at 09:03. At 17:56 the
    agent snoozes for a day, the most there is, until Saturday 17:56."""
    business_policy(w)
    w.customer("wmcustomer1", "王女士")
    w.t0 = bj(2025, 9, 19, 17, 53).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("周一能发货吗？", at=0)
    w.pulled(5 * 86400)
    w.clock(120)
    assert w.fire() == 1  # 17:55 the agent's card
    with w.session() as s:
        assert service.snooze(s, w.conversation().id, until=w.at(180 + 86400), now=w.at(180)) == 1


def test_a_snooze_ending_on_a_day_off_holds_the_step_for_the_next_shift(local):
    """The snooze ends on Saturday, a day off for the policy: the leader's card waits for
    Monday 09:00, as the board says, and tells the 7 business minutes waited. It had gone out
    on Saturday evening, when the policy's clock stands still."""
    from siyu.sla.tasks import _notice
    from tests.sla.test_engine import pending_due

    w = local
    snoozed_past_friday_evening(w)
    monday = bj(2025, 9, 22, 9, 0)
    assert pending_due(w).astimezone(SH) == monday
    with w.session() as s:
        (row,) = queries.waiting_now(s, w.rt.now())
    assert row["next_step_at"] == monday and row["snoozed_until"] == w.at(180 + 86400)
    w.clock(180 + 86400)
    assert w.fire() == 0  # Saturday 17:56: the snooze is over, the clock is not running
    w.clock((monday - w.t0).total_seconds())
    assert w.fire() == 1
    card = _notice(w.rt, w.tenant_id, w.outbox()[-1])["textcard"]
    assert card["title"] == "张三的客户 王女士 已等待 7 分钟（工作时间） 未回复"


def test_the_chat_says_when_reminders_resume_after_a_snooze_ending_on_a_day_off(local):
    """The chat said only 提醒已暂缓至 09-20 17:56 (a Saturday), while the board said the next
    step comes Monday 09:00: it says both now."""
    from tests.tenancy.test_timezone import _call

    w = local
    snoozed_past_friday_evening(w)
    page = _call(w, "GET", f"/conversations/{w.conversation().id}").text
    assert "提醒已暂缓至 09-20 17:56" in page
    resumes = re.search(r'<span id="reminder-resumes">(.*?)</span>', page)
    assert resumes and resumes[1] == "，其时不在工作时间，下一条提醒 09-22 09:00"


def test_a_snooze_ending_in_a_shift_before_the_next_step_says_nothing_of_business_hours(local):
    """Friday 17:56 the agent snoozes for a minute, until 17:57, inside the shift; the leader's
    card was due at 17:58 anyway. The chat said 其时不在工作时间，下一条提醒 09-19 17:58, as if
    the snooze ended outside the shift: only a snooze that does may say so."""
    from tests.tenancy.test_timezone import _call

    w = local
    business_policy(w)
    w.customer("wmcustomer1", "王女士")
    w.t0 = bj(2025, 9, 19, 17, 53).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("周一能发货吗？", at=0)
    w.pulled(5 * 86400)
    w.clock(120)
    assert w.fire() == 1  # 17:55 the agent's card
    with w.session() as s:
        assert service.snooze(s, w.conversation().id, until=w.at(240), now=w.at(180)) == 0
    page = _call(w, "GET", f"/conversations/{w.conversation().id}").text
    assert "提醒已暂缓至 17:57" in page  # (today: no date, as on the board)
    assert "不在工作时间" not in page and 'id="reminder-resumes"' not in page


def test_a_question_waiting_again_under_a_snooze_ending_on_a_day_off_waits_for_the_next_shift(local):
    """Friday 17:53 a question, answered at 17:54; 17:55 a second question, which the agent
    snoozes at 17:56 for a day (until Saturday 17:56, when the policy's clock stands still); at
    17:57 the agent takes the answer back. The first question waits again under that snooze:
    its card waits for Monday's shift. It had been due on Saturday evening."""
    from tests.sla.test_engine import _recall, pending_due

    w = local
    business_policy(w)
    w.customer("wmcustomer1", "王女士")
    w.t0 = bj(2025, 9, 19, 17, 53).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("周一能发货吗？", at=0)
    answer = w.reply("可以", at=60)
    w.say("发什么快递？", at=120)
    w.pulled(5 * 86400)
    w.clock(180)
    with w.session() as s:
        assert service.snooze(s, w.conversation().id, until=w.at(180 + 86400), now=w.at(180)) == 1
    w.ingest(_recall(w, answer, 240, by="zhangsan"))
    w.pulled(5 * 86400)
    assert pending_due(w).astimezone(SH) == bj(2025, 9, 22, 9, 0)


def test_after_a_snooze_past_the_shift_the_next_step_keeps_its_business_minutes(local):
    """After the day's snooze from Friday 17:56 the leader's card goes on Monday at 09:00, and
    the call 5 business minutes after it, at 09:05, as the policy spaces them. Spaced by the
    wall clock (the 63 hours from Friday 17:58 to Monday 09:03, the weekend counted again) the
    call rang on Thursday at 00:05."""
    from tests.sla.test_engine import pending_due

    w = local
    snoozed_past_friday_evening(w)
    w.clock((bj(2025, 9, 22, 9, 0) - w.t0).total_seconds())
    assert w.fire() == 1  # the leader's card
    assert pending_due(w).astimezone(SH) == bj(2025, 9, 22, 9, 5)
    with w.session() as s:  # an edit of the calendar keeps it there
        service.set_calendar_day(s, date(2026, 12, 24), "holiday", "公司年会")
        service.follow_the_calendar(s)
    assert pending_due(w).astimezone(SH) == bj(2025, 9, 22, 9, 5)


def test_customers_one_held_call_speaks_of_are_one_call_held_on_the_board(local):
    """Two customers of 张三 wait at night: both waits' call steps fire, and one call, held till
    quiet hours end, will speak of both (the second step is covered by it). The board says one
    call waits to ring, not two: a supervisor read 2 通语音电话 and one phone rang."""
    w = local
    business_policy(w)
    with w.session() as s:
        service.save_policy(
            s,
            shifts=[["09:00", "23:30"]],
            quiet_hours=["21:00", "08:00"],
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
        )
    w.t0 = bj(2025, 9, 19, 21, 4).astimezone(ZoneInfo("UTC"))  # a Friday
    w.clock(0)
    w.say("还在吗？", at=0)
    w.say("能开发票吗？", at=1, ext="wmcustomer2")
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 2  # both steps fire; one call waits in the outbox for both
    with w.session() as s:
        board = board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now())
    assert [at.astimezone(SH) for at in board["calls_held"]] == [bj(2025, 9, 22, 9, 0)]


def _shift_not_on_now() -> list[list[str]]:
    """One shift a day, under an hour long, five or six hours from now (Beijing): none is on now,
    nor was in the last eighteen hours."""
    hour = (datetime.now(SH) + timedelta(hours=6)).hour
    hour = 22 if hour == 23 else hour  # (a shift ends by midnight)
    return [[f"{hour:02d}:00", f"{hour:02d}:59"]]


def test_business_hours_turned_off_long_after_the_question_still_remind(local):
    """A customer asked seven hours ago, under business hours with no shift since. The admin
    turns business hours off: the wait's first step, two minutes after the question by the wall
    clock, is long past, and goes out now. Due where the wall clock put it, it was skipped as due
    too long ago (过期未发) like a step of an imported chat, and nobody was ever reminded."""
    w = local  # Siyu's clock as the wall's: the admin changes the policy now
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=_shift_not_on_now(), quiet_hours=[])
    w.say("请问发货了吗？", at=-7 * 3600)
    w.pulled(3600)
    assert w.fire() == 0  # no shift since: nothing due
    with w.session() as s:
        service.save_policy(s, business_hours_only=False)
    assert w.fire() == 1
    assert [status for _, status, _ in w.steps()][:1] == ["fired"]


def test_a_day_made_a_workday_after_its_question_went_unanswered_still_reminds(local):
    """A customer asked seven hours ago, in the shift of a day the admin had set as a holiday.
    The admin makes it a workday after all: the wait's first step, two minutes into that shift,
    is long past, and goes out now, not skipped as due too long ago (过期未发)."""
    w = local  # Siyu's clock as the wall's: the admin edits the calendar now
    ago = 7 * 3600
    if (datetime.now(SH) - timedelta(seconds=ago)).strftime("%H:%M") >= "23:50":
        ago += 1200  # (its first step, two minutes later, within that day's shift)
    asked = datetime.now(SH) - timedelta(seconds=ago)
    with w.session() as s:
        shifts = [[f"{asked.hour:02d}:00", "24:00"]]
        service.save_policy(s, business_hours_only=True, shifts=shifts, quiet_hours=[])
        service.set_calendar_day(s, asked.date(), "holiday")
    w.say("请问发货了吗？", at=-ago)
    w.pulled(3600)
    assert w.fire() == 0  # asked on a holiday: nothing due
    with w.session() as s:
        service.set_calendar_day(s, asked.date(), "workday")
        service.follow_the_calendar(s)
    assert w.fire() == 1
    assert [status for _, status, _ in w.steps()][:1] == ["fired"]


def test_a_policy_saved_with_another_clock_keeps_each_waits_next_step_and_its_own_time(local):
    """Business hours only, and a customer asks on Sunday: the agent's card (2 minutes) waits
    for Monday. The admin turns business hours off and makes the ladder one call to the agent
    after a minute. The card already scheduled went out at the call's minute, still a card, and
    nothing came after it. As the save says (已排好的下一步不变，之后各步按新策略), the card keeps
    its own two minutes, now by the wall clock; the steps after it are the new policy's."""
    w = local
    w.t0 = bj(2025, 9, 21, 10, 0).astimezone(ZoneInfo("UTC"))  # a Sunday
    w.clock(0)
    w.policy(
        business_hours_only=True,
        shifts=SHIFTS,
        steps=[
            {"delay_s": 120, "action": "app_message", "target": "agent"},
            {"delay_s": 300, "action": "app_message", "target": "leader"},
            {"delay_s": 600, "action": "voice_call", "target": "agent"},
        ],
    )
    w.say("周日有人吗？", at=0)
    w.pulled(3600)
    w.clock(10)
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=False,
            steps=[
                {"delay_s": 60, "action": "voice_call", "target": "agent"},
                {"delay_s": 300, "action": "voice_call", "target": "leader"},
            ],
            now=w.rt.now(),
        )
    with w.session() as s:
        [pending] = s.scalars(select(SlaEscalation).where(SlaEscalation.status == "pending"))
        assert (pending.action, pending.target) == ("app_message", "agent")
        assert pending.due_at == w.at(120)  # its own two minutes, not the new step's one
    w.clock(119)
    assert w.fire() == 0
    w.clock(120)
    assert w.fire() == 1
    assert len(w.outbox()) == 1  # the card, as it was scheduled
    with w.session() as s:
        [pending] = s.scalars(select(SlaEscalation).where(SlaEscalation.status == "pending"))
        assert (pending.step, pending.action, pending.target) == (1, "voice_call", "leader")


def pending_step(w) -> tuple:
    with w.session() as s:
        [pending] = s.scalars(select(SlaEscalation).where(SlaEscalation.status == "pending"))
        return pending.action, pending.target, pending.due_at.astimezone(SH)


def test_removing_a_business_hours_department_policy_reminds_by_the_wall_clock_on_sunday(local):
    """Department 2 (张三's) counts business hours only; the tenant's policy counts every hour,
    its first step a call. A customer asks on Sunday 10:00: 张三's card (2 minutes) waits for
    Monday 09:02. The admin removes department 2's policy: the wait now runs on the tenant's
    clock, and the card goes out on Sunday at 10:02, still a card. Its step was looked for only
    among the tenant's policy's steps, whose first is a call: it stayed on Monday 09:02, and
    nobody was reminded all Sunday."""
    w = local
    w.t0 = bj(2025, 9, 21, 10, 0).astimezone(ZoneInfo("UTC"))  # a Sunday
    w.clock(0)
    with w.session() as s:
        service.save_policy(
            s, quiet_hours=[], steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}]
        )
        service.save_department_policy(
            s,
            2,
            business_hours_only=True,
            shifts=SHIFTS,
            steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}],
        )
    w.say("周日有人吗？", at=0)
    w.pulled(3600)
    assert pending_step(w) == ("app_message", "agent", bj(2025, 9, 22, 9, 2))  # Monday
    w.clock(10)
    with w.session() as s:
        assert service.delete_policy(s, 2, now=w.rt.now()) is True
    assert pending_step(w) == ("app_message", "agent", bj(2025, 9, 21, 10, 2))
    w.clock(119)
    assert w.fire() == 0
    w.clock(120)
    assert w.fire() == 1
    assert len(w.outbox()) == 1
    assert w.steps() == [(0, "fired", "zhangsan")]


def test_a_sunday_made_a_workday_reminds_a_wait_moved_to_another_policy(local):
    """Department 2's policy (a card after 2 minutes) and the tenant's (a call after 1) both
    count business hours. A customer asks on Sunday 10:00, and department 2's policy is
    removed: the card still waits for Monday. The admin then makes the Sunday a workday: the
    card goes out at 10:02. It was looked for among the tenant's policy's steps only, and
    stayed on Monday."""
    w = local
    w.t0 = bj(2025, 9, 21, 10, 0).astimezone(ZoneInfo("UTC"))  # a Sunday
    w.clock(0)
    business_policy(w, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    with w.session() as s:
        service.save_department_policy(
            s, 2, steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}]
        )
    w.say("周日有人吗？", at=0)
    w.pulled(3600)
    w.clock(10)
    with w.session() as s:
        assert service.delete_policy(s, 2, now=w.rt.now()) is True
    assert pending_step(w) == ("app_message", "agent", bj(2025, 9, 22, 9, 2))  # the same clock
    w.clock(20)
    with w.session() as s:
        service.set_calendar_day(s, date(2025, 9, 21), "workday", "调休", now=w.rt.now())
        assert service.follow_the_calendar(s, w.rt.now()) == 1
    assert pending_step(w) == ("app_message", "agent", bj(2025, 9, 21, 10, 2))
    w.clock(120)
    assert w.fire() == 1
    assert len(w.outbox()) == 1


def test_the_tenants_first_policy_counting_business_hours_holds_a_sunday_card_for_monday(local):
    """No policy saved yet (the built-in one: a card after 2 minutes, every hour counts). A
    customer asks on Sunday 10:00; the admin then saves the tenant's first policy, business
    hours only, its first step a call. The card already scheduled waits for Monday 09:02, its
    own 2 minutes of business time, and stays a card. It was looked for among the new policy's
    steps only, and went out on the Sunday telling the agent 0 business seconds waited."""
    w = local
    w.t0 = bj(2025, 9, 21, 10, 0).astimezone(ZoneInfo("UTC"))  # a Sunday
    w.clock(0)
    w.say("周日有人吗？", at=0)
    w.pulled(3600)
    assert pending_step(w) == ("app_message", "agent", bj(2025, 9, 21, 10, 2))
    w.clock(10)
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=SHIFTS,
            quiet_hours=[],
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
            now=w.rt.now(),
        )
    assert pending_step(w) == ("app_message", "agent", bj(2025, 9, 22, 9, 2))  # Monday
    w.clock(120)
    assert w.fire() == 0
    assert w.outbox() == []


def test_a_step_scheduled_before_its_delay_was_kept_still_follows_a_new_clock(local):
    """A pending step from before migration 0019 has no delay of its own (NULL): turning
    business hours on still moves it by the delay of the policy's version it was scheduled
    under, a card on Sunday held for Monday 09:02."""
    w = local
    w.t0 = bj(2025, 9, 21, 10, 0).astimezone(ZoneInfo("UTC"))  # a Sunday
    w.clock(0)
    w.policy(steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}])
    w.say("周日有人吗？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    with w.session() as s:
        s.execute(
            update(SlaEscalation).where(SlaEscalation.conversation_id == conversation.id).values(delay_s=None)
        )
    w.clock(10)
    with w.session() as s:
        service.save_policy(
            s,
            business_hours_only=True,
            shifts=SHIFTS,
            steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}],
            now=w.rt.now(),
        )
    assert pending_step(w) == ("app_message", "agent", bj(2025, 9, 22, 9, 2))


def _statuses(w):
    with w.session() as s:
        return [
            (e.step, e.status)
            for e in s.scalars(
                select(SlaEscalation)
                .where(SlaEscalation.conversation_id == w.conversation().id)
                .order_by(SlaEscalation.step)
            )
        ]


def test_put_changing_shifts_with_calendar_days_does_not_leave_the_step_overdue_and_stale(local):
    """Shifts 09:00-10:00; a customer writes on Tuesday at 10:00 (closed): the agent's card is
    due Wednesday 09:02. At Tuesday 17:00 the admin PUTs shifts 09:00-18:00 together with the
    calendar_days as GET gave them (the ordinary GET-edit-PUT). By the new shifts the card was due
    at 10:02, seven hours ago: it is due now (as a PUT without calendar_days made it); the dates'
    pass had put it back at 10:02, where firing skipped it as stale (过期未发), nobody told."""
    w = local
    with w.session() as s:
        service.save_policy(s, business_hours_only=True, shifts=[["09:00", "10:00"]], quiet_hours=[])
    w.t0 = bj(2025, 9, 23, 10, 0).astimezone(ZoneInfo("UTC"))  # a Tuesday
    w.clock(0)
    w.say("明天能到吗？", at=0)
    w.pulled(86400)
    assert pending_due(w).astimezone(SH) == bj(2025, 9, 24, 9, 2)
    w.clock(7 * 3600)  # 17:00
    admin = SignedIn(w.rt, w.tenant_id, "admin")
    got = admin("GET", "/api/v1/sla/policy")
    body = {"shifts": [["09:00", "18:00"]], "calendar_days": got.json()["calendar_days"]}
    r = admin("PUT", "/api/v1/sla/policy", json=body, headers={"If-Match": got.headers["etag"]})
    assert r.status_code == 200, r.text
    w.fire()
    assert _statuses(w)[0] == (0, "fired")  # not (0, "skipped"): stale, nobody told
    with w.session() as s:
        due = s.scalar(select(SlaEscalation.due_at).where(SlaEscalation.step == 0))
    assert abs((due - w.at(7 * 3600)).total_seconds()) < 60  # now (17:00), not 10:02
