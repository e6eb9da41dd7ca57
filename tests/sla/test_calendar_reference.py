"""Business time against an independent reference: a plain walk minute by minute through the
calendar (a minute is open when a shift of a workday covers it, the shift belonging to the
day it starts; a workday is the admin's date, else the official calendar, else Monday to
Friday), compared with BusinessCalendar.add / between over seeded random cases: 2025-2027,
National Day and Spring Festival with their 调休 Saturdays and Sundays, lunch breaks, night
shifts, messages on a shift's edge, time zones other than Shanghai, and the admin's dates."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
from sqlalchemy import select

from siyu.notify.models import OutboxMessage
from siyu.sla import queries, service
from siyu.sla.calendar import BusinessCalendar
from siyu.sla.models import SlaEscalation

MINUTE = timedelta(minutes=1)
SHIFT_SETS = [
    [["09:00", "18:00"]],
    [["09:00", "12:00"], ["13:30", "18:00"]],
    [["08:30", "11:45"], ["13:00", "17:15"], ["19:00", "21:30"]],
    [["22:00", "06:00"]],  # a night shift: Friday's runs into Saturday morning
    [["09:00", "12:00"], ["20:00", "02:00"]],
    [["00:00", "24:00"]],
    [["09:00", "09:07"], ["15:00", "15:04"]],  # shifts shorter than a step: it ends mid-step
]
ZONES = ["Asia/Shanghai", "Asia/Shanghai", "Asia/Tokyo", "America/Los_Angeles", "Asia/Kolkata"]
DELAYS = [0, 1, 59, 120, 300, 600, 3600]
# days the official calendar turns around: holidays and the weekend days worked for them
EDGES = [
    date(2025, 9, 28), date(2025, 10, 1), date(2025, 10, 8), date(2025, 10, 11),
    date(2026, 2, 14), date(2026, 2, 15), date(2026, 2, 23), date(2026, 2, 28),
    date(2026, 9, 20), date(2026, 10, 1), date(2026, 10, 7), date(2026, 10, 10),
    date(2026, 12, 31), date(2027, 1, 1), date(2027, 2, 6), date(2027, 2, 13),
]  # fmt: skip


def minutes(hhmm: str) -> int:
    hours, mins = hhmm.split(":")
    return int(hours) * 60 + int(mins)


class Reference:
    """Whether a given minute is business time, worked out from the rules alone."""

    def __init__(self, zone, shifts, holidays=(), workdays=(), public_holidays=True):
        self.tz = ZoneInfo(zone)
        self.spans = []
        for a, b in shifts:
            start, end = minutes(a), minutes(b)
            self.spans.append((start, end if end > start else end + 24 * 60))
        self.holidays, self.workdays, self.public = set(holidays), set(workdays), public_holidays
        self.known: dict[date, bool] = {}  # the package is slow to ask; the walk asks each minute

    def workday(self, day: date) -> bool:
        if day not in self.known:
            self.known[day] = self._workday(day)
        return self.known[day]

    def _workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        if self.public:
            try:
                return chinese_calendar.is_workday(day)
            except NotImplementedError:  # a year not published yet
                pass
        return day.weekday() < 5

    def open(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        of_day = local.hour * 60 + local.minute
        for back in (0, 1):  # today's shifts, and yesterday's running past midnight
            day = local.date() - timedelta(days=back)
            if self.workday(day) and any(a <= of_day + back * 1440 < b for a, b in self.spans):
                return True
        return False

    def add(self, start: datetime, seconds: int) -> datetime:
        """Walk from `start` minute by minute (the first one partly) until `seconds` of open
        time have passed; a delay of 0 is the first open moment."""
        at = start
        left = seconds
        while True:
            minute_end = at.replace(second=0, microsecond=0) + MINUTE
            if self.open(at):
                piece = (minute_end - at).total_seconds()
                if left <= piece:
                    return at + timedelta(seconds=left)
                left -= piece
            at = minute_end

    def between(self, start: datetime, end: datetime) -> float:
        total, at = 0.0, start
        while at < end:
            minute_end = min(at.replace(second=0, microsecond=0) + MINUTE, end)
            if self.open(at):
                total += (minute_end - at).total_seconds()
            at = minute_end
        return total


def random_case(rng: random.Random) -> dict:
    shifts = given = rng.choice(SHIFT_SETS)
    if shifts == [["22:00", "06:00"]] and rng.random() < 0.5:
        given = [["00:00", "06:00"], ["22:00", "24:00"]]  # as the form once asked: the same shift
    zone = rng.choice(ZONES)
    tz = ZoneInfo(zone)
    day = rng.choice(EDGES) + timedelta(days=rng.randint(-3, 3))
    if rng.random() < 0.3:
        day = date(2025, 6, 1) + timedelta(days=rng.randint(0, 2 * 365 + 180))
    # a third of the messages on a shift's edge, give or take a second
    if rng.random() < 0.35:
        edge = minutes(rng.choice(rng.choice(shifts)))
        local = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(
            minutes=edge, seconds=rng.choice([-1, 0, 0, 1])
        )
    else:
        local = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(seconds=rng.randint(0, 86399))
    nearby = [day + timedelta(days=d) for d in range(-2, 6)]
    holidays = rng.sample(nearby, rng.choice([0, 0, 1, 2]))
    workdays = [d for d in rng.sample(nearby, rng.choice([0, 0, 1, 2])) if d not in holidays]
    return {
        "zone": zone,
        "shifts": shifts,
        "given": given,
        "holidays": holidays,
        "workdays": workdays,
        "public_holidays": rng.random() < 0.85,
        "start": local.astimezone(UTC),
        "delay": rng.choice(DELAYS),
    }


def test_due_times_and_waits_agree_with_a_minute_by_minute_walk():
    rng = random.Random(20261006)
    disagreements = []
    for _ in range(200):
        case = random_case(rng)
        kw = {k: case[k] for k in ("holidays", "workdays", "public_holidays")}
        engine = BusinessCalendar.build(case["zone"], case["given"], **kw)
        ref = Reference(case["zone"], case["shifts"], **kw)
        start, delay = case["start"], case["delay"]
        due, expected = engine.add(start, delay), ref.add(start, delay)
        if due != expected:
            disagreements.append(("add", case, due, expected))
            continue
        # the board's and the card's wait, minutes to days after the message
        now = start + timedelta(seconds=rng.choice([30, 119, 121, 3600, 86400 + 17]))
        waited, expected_waited = engine.between(start, now), ref.between(start, now)
        if waited != expected_waited:
            disagreements.append(("between", case, now, waited, expected_waited))
        if delay and engine.between(start, due) != delay:
            disagreements.append(("between(start, due)", case, due, engine.between(start, due)))
    assert disagreements == []


def test_steps_the_board_and_cards_keep_to_the_same_business_time(local):
    """The engine as a customer meets it: a question ingested under a business-hours policy
    (the tenant's time zone, its shifts, the admin's dates), its three steps fired one by one
    at the reference's times (some after the agent snoozed the wait), and the board's wait and
    the cards by the same clock while it runs."""
    from siyu.sla.tasks import _notice, waited
    from siyu.tenancy.models import Tenant

    w = local
    rng = random.Random(2027)
    cases = sorted((random_case(rng) for _ in range(10)), key=lambda c: c["start"])
    w.t0 = cases[0]["start"] - timedelta(days=1)
    for n, case in enumerate(cases):
        with w.rt.db.system_session() as s:
            s.get(Tenant, w.tenant_id).timezone = case["zone"]
        with w.session() as s:
            service.save_policy(
                s,
                business_hours_only=True,
                shifts=case["given"],
                public_holidays=case["public_holidays"],
                quiet_hours=[],
                now=w.rt.now(),
            )
            for day in case["holidays"]:
                service.set_calendar_day(s, day, "holiday", now=w.rt.now())
            for day in case["workdays"]:
                service.set_calendar_day(s, day, "workday", now=w.rt.now())
        ref = Reference(
            case["zone"], case["shifts"], case["holidays"], case["workdays"], case["public_holidays"]
        )
        start, ext = case["start"], f"wmcustomer{n}"
        w.clock((start - w.t0).total_seconds())
        w.say("在吗？什么时候发货？", at=(start - w.t0).total_seconds(), ext=ext)
        # the reference's schedule: each step by its delay; after a snooze (a third of the
        # questions, once the agent's card is out) the leader's card no sooner than the first
        # business moment after it ends, and the call as many business seconds after that card
        # as the policy puts between them
        scheduled = [ref.add(start, delay) for delay in (120, 300, 600)]
        snooze = rng.choice([None, None, 15, 60, 24 * 60])
        expected = scheduled[0]
        for step in range(3):
            with w.session() as s:
                step_id, due = s.execute(
                    select(SlaEscalation.id, SlaEscalation.due_at).where(
                        SlaEscalation.conversation_id == w.conversation(ext).id,
                        SlaEscalation.status == "pending",
                    )
                ).one()
                conversation = w.conversation(ext).id
                board = {r["conversation_id"]: r for r in queries.waiting_now(s, w.rt.now())}
            assert due == expected, (n, step, snooze, case)
            assert board[conversation]["next_step_at"] == expected
            # the board's wait by the policy's clock, a second before the step: as the card will say
            second_before = expected - timedelta(seconds=1)
            with w.session() as s:
                board = {r["conversation_id"]: r for r in queries.waiting_now(s, second_before)}
            on_board = board[conversation]["waited_business_s"]
            assert on_board == ref.between(start, second_before), (n, step, snooze, case)
            before = (second_before - w.t0).total_seconds()
            w.clock(before)
            w.pulled(before + 1)
            assert w.fire() == 0
            w.clock(before + 1)
            assert w.fire() == 1
            if step < 2:  # the agent's card and the leader's tell the wait by the same clock
                (queued,) = [o for o in w.outbox() if step_id in o.payload["escalations"]]
                card = _notice(w.rt, w.tenant_id, queued)["textcard"]
                with w.session() as s:  # it went: the next step's card is a card of its own
                    s.get(OutboxMessage, queued.id).status = "sent"
                told = waited(ref.between(start, expected))  # (the card's way of writing it)
                assert f"已等待 {told}（工作时间" in card["title"], (n, step, snooze, case)
            if step == 0 and snooze:
                now = expected + timedelta(seconds=30)
                until = now + timedelta(minutes=snooze)
                w.clock((now - w.t0).total_seconds())
                with w.session() as s:
                    service.snooze(s, conversation, until=until, now=now)
                leader = max(scheduled[1], ref.add(until, 0))
                call = max(scheduled[2], ref.add(leader, ref.between(scheduled[1], scheduled[2])))
                scheduled = [scheduled[0], leader, call]
            if step < 2:
                expected = scheduled[step + 1]
        w.reply("好的，今天发", at=(w.rt.now() - w.t0).total_seconds(), ext=ext)
        with w.session() as s:
            for day in case["holidays"] + case["workdays"]:
                service.remove_calendar_day(s, day, now=w.rt.now())
