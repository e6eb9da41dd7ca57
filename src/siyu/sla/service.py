"""SLA rules: the only writer of policies, calendar days, waits and escalation steps.

Flow 3 (DESIGN.md). When conversations opens a wait (a customer message that needs a
reply; the clock starts at its msgtime) the listener below writes the wait and an
escalation row for its first policy step, due at msgtime + delay (business time when the
policy says so), in the same transaction as the message. A wait has one pending step at a
time: firing a step writes the next one (siyu.sla.firing), due on the policy's schedule.
When the wait closes (a reply by hand, a recall, "no reply needed") its pending step is
cancelled in that transaction too. Escalation reads conversations; never the other way.

Policies: one per tenant (department 0), optionally one per department; a staff member's
policy is their main department's, else the nearest ancestor department's, else the
tenant's, else the built-in default (2 min app message to the agent, 5 min to the
leader, 10 min voice call to the agent).
"""

from __future__ import annotations

import re
import statistics
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from siyu.conversations import service as conversations
from siyu.conversations.models import Conversation
from siyu.conversations.queries import wait_text
from siyu.customers.models import Customer, Follow
from siyu.customers.service import FOLLOW_ENDED_AS, leader_of
from siyu.db import bulk, paging
from siyu.db.paging import SortKey
from siyu.notify.models import UNSENT, OutboxMessage
from siyu.sla.calendar import (
    BusinessCalendar,
    check_day,
    parse_hhmm,
    parse_shifts,
    quiet_until,
    shifts_all_quiet,
)
from siyu.sla.models import (
    DEFAULT_QUIET_HOURS,
    DEFAULT_SHIFTS,
    DEFAULT_STEPS,
    SlaCalendarChange,
    SlaCalendarDay,
    SlaCall,
    SlaEscalation,
    SlaPolicy,
    SlaPolicyVersion,
    SlaWait,
)
from siyu.sla.names import step_phrase
from siyu.sla.told import told_by_text
from siyu.tenancy import timezones
from siyu.tenancy.models import Department, Staff, Tenant

ACTIONS = ("app_message", "voice_call")
TARGETS = ("agent", "leader", "contact")
MAX_STEPS = 10
DEFAULT_STALE_AFTER_S = 6 * 3600  # a step whose turn comes later than this after its due time is not sent


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    delay_s: int
    action: str
    target: str


@dataclass(frozen=True)
class PolicyView:
    """A policy as the rules use it: a stored SlaPolicy or the built-in default."""

    id: int | None = None
    department_wecom_id: int = 0
    enabled: bool = True
    steps: tuple[Step, ...] = tuple(Step(**s) for s in DEFAULT_STEPS)
    business_hours_only: bool = False
    shifts: tuple[tuple[str, str], ...] = tuple(tuple(s) for s in DEFAULT_SHIFTS)
    public_holidays: bool = True
    escalation_contact: str = ""
    merge_window_s: float = 5.0
    call_cooldown_s: int = 900
    quiet_hours: tuple[str, ...] = tuple(DEFAULT_QUIET_HOURS)
    stale_after_s: int = DEFAULT_STALE_AFTER_S

    @classmethod
    def of(cls, p: SlaPolicy) -> PolicyView:
        return cls(
            id=p.id,
            department_wecom_id=p.department_wecom_id,
            enabled=p.enabled,
            steps=tuple(Step(int(s["delay_s"]), s["action"], s["target"]) for s in p.steps or []),
            business_hours_only=p.business_hours_only,
            shifts=tuple(tuple(s) for s in p.shifts or []),
            public_holidays=p.public_holidays,
            escalation_contact=p.escalation_contact or "",
            merge_window_s=p.merge_window_s,
            call_cooldown_s=p.call_cooldown_s,
            quiet_hours=tuple(p.quiet_hours or []),
            stale_after_s=p.stale_after_s,
        )


# ---------------------------------------------------------------- policies and calendar


def validate_steps(steps: Sequence[dict]) -> list[dict]:
    if len(steps) > MAX_STEPS:
        raise PolicyError(f"最多 {MAX_STEPS} 个步骤 / at most {MAX_STEPS} steps")
    clean = []
    for step in steps:
        try:
            delay = int(step["delay_s"])
            action, target = str(step["action"]), str(step.get("target", "agent"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(
                "每个步骤要有 delay_s、action 和 target / a step needs delay_s, action and target"
            ) from exc
        if delay < 0 or delay > 30 * 86400:
            raise PolicyError("步骤的延迟应在 0 到 30 天之间 / a step's delay must be between 0 and 30 days")
        if action not in ACTIONS:
            raise PolicyError(
                f"action 应为 {'、'.join(ACTIONS)} 之一 / action must be one of {', '.join(ACTIONS)}"
            )
        if target not in TARGETS:
            raise PolicyError(
                f"target 应为 {'、'.join(TARGETS)} 之一 / target must be one of {', '.join(TARGETS)}"
            )
        clean.append({"delay_s": delay, "action": action, "target": target})
    if len({tuple(step.values()) for step in clean}) < len(clean):
        raise PolicyError("同一步骤出现了两次 / the same step is given twice")
    return sorted(clean, key=lambda s: s["delay_s"])


EDITABLE = {
    "name",
    "enabled",
    "steps",
    "business_hours_only",
    "shifts",
    "public_holidays",
    "escalation_contact",
    "merge_window_s",
    "call_cooldown_s",
    "quiet_hours",
    "stale_after_s",
}


def hold_policy(session: Session, department_wecom_id: int, dates: bool = False) -> None:
    """No other save of this policy between the check of the version it was drawn from (a
    form's, an If-Match) and the save: the second of two admins' saves at the same moment sees
    the first's (and is refused). SQLite: its single write lock, taken by a write that changes
    nothing; PostgreSQL: a lock of this policy for the transaction (its row may not exist yet)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("UPDATE sla_policies SET id = id WHERE 0")
    else:
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"siyu.sla_policy:{session.info.get('siyu_tenant_id')}:{department_wecom_id}"},
        )
        # a save times open waits by the special dates: none changed meanwhile (hold_calendar);
        # shared, so that two departments' policies are still saved at the same time, unless it
        # changes the dates too (`dates`: the API's PUT with calendar_days), taken after the
        # policy's lock as everywhere, so that no two saves wait on each other in a cycle
        lock = "pg_advisory_xact_lock" if dates else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {lock}(hashtextextended(:key, 0))"), _calendar_key(session))


def save_policy(
    session: Session, department_wecom_id: int = 0, *, now: datetime | None = None, by: str = "", **fields
) -> SlaPolicy:
    """Create or change the tenant's policy (department 0) or a department's, in force from
    `now` (Siyu's clock; the wall clock by default), saved by `by` (the name they are signed
    in as; "" for Siyu itself)."""
    now = now or datetime.now(UTC)
    unknown = set(fields) - EDITABLE
    if unknown:
        raise PolicyError(f"未知的策略字段 / unknown policy fields: {', '.join(sorted(unknown))}")
    if "steps" in fields:
        fields["steps"] = validate_steps(fields["steps"])
    if "shifts" in fields:
        try:
            parse_shifts(fields["shifts"])
        except ValueError as exc:
            raise PolicyError(str(exc)) from exc
        fields["shifts"] = [[str(a), str(b)] for a, b in fields["shifts"]]
    if fields.get("quiet_hours"):
        try:
            [parse_hhmm(v) for v in fields["quiet_hours"]]
        except ValueError as exc:
            raise PolicyError(str(exc)) from exc
        if len(fields["quiet_hours"]) != 2:
            raise PolicyError("免打扰时段是 [开始, 结束] / quiet_hours is [start, end]")
        start, end = (parse_hhmm(v) for v in fields["quiet_hours"])
        if start % 1440 == end % 1440:  # 00:00-24:00 too: calls never placed, or never quiet
            raise PolicyError(
                "免打扰时段的开始和结束不能相同 / quiet hours must start and end at different times"
            )
    if "escalation_contact" in fields:
        fields["escalation_contact"] = (fields["escalation_contact"] or "").strip()
    for name in ("merge_window_s", "call_cooldown_s", "stale_after_s"):
        if name in fields and fields[name] < 0:
            raise PolicyError(f"{name} must not be negative")
    policy = session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == department_wecom_id))
    clock_was = _clock(policy) if policy is not None else None
    if policy is None:
        policy = SlaPolicy(department_wecom_id=department_wecom_id)
        session.add(policy)
    for name, value in fields.items():
        setattr(policy, name, value)
    _check_workable(policy)
    policy.updated_at, policy.updated_by = now, by[:200]
    session.flush()
    _keep_version(session, policy, now)
    # Open waits begun before the tenant had any policy (none recorded: the built-in default)
    # take it: the board measured them by a clock no one had chosen.
    moved = _reassign_open_waits(session, SlaWait.policy_id.is_(None))
    if clock_was is not None and _clock(policy) != clock_was:
        moved += session.scalars(
            select(SlaWait.id).where(SlaWait.policy_id == policy.id, SlaWait.closed_at.is_(None))
        )
    _follow_new_clock(session, moved, now)
    retime_held_calls(session, now)
    return policy


def _keep_version(session: Session, policy: SlaPolicy, now: datetime) -> None:
    """Record the policy's steps and clock as in force from `now` when they changed
    (SlaPolicyVersion): the board measures past waits by what was in force then."""
    v = SlaPolicyVersion
    last = session.scalars(
        select(v).where(v.policy_id == policy.id).order_by(v.valid_from.desc(), v.id.desc()).limit(1)
    ).first()
    kept = (policy.steps, policy.business_hours_only, policy.shifts, policy.public_holidays)
    if last is not None and (last.steps, last.business_hours_only, last.shifts, last.public_holidays) == kept:
        return
    session.add(
        v(
            policy_id=policy.id,
            # never before the last one: a clock set back would otherwise put this one first
            valid_from=max(now, last.valid_from) if last is not None else now,
            steps=[dict(step) for step in policy.steps],
            business_hours_only=bool(policy.business_hours_only),
            shifts=[list(shift) for shift in policy.shifts],
            public_holidays=bool(policy.public_holidays),
        )
    )
    session.flush()


def _clock(policy: SlaPolicy | PolicyView) -> tuple:
    """What a policy's waits are timed by: the wall clock, or its shifts and holidays."""
    if not policy.business_hours_only:
        return ()
    return tuple(tuple(s) for s in policy.shifts or []), policy.public_holidays


def _follow_new_clock(session: Session, wait_ids: list[int], now: datetime) -> None:
    """Open waits whose clock changed (business hours turned on or off, shifts or holidays
    changed, or another policy's clock now applies): the pending step is due when the new
    clock says, as a calendar edit moves it. Left where the wall clock had put it, it fired on
    a day off with a card telling the leader 0 business seconds waited; left on the next shift
    when the wall clock came back, nobody heard of the customer until Monday."""
    if wait_ids:
        _reschedule_pending(session, PolicyBook(session), list(wait_ids), changed_at=now)


def _reassign_open_waits(session: Session, which, was: PolicyView | None = None) -> list[int]:
    """Open waits (`which` selects among them) take the policy that now applies to their
    staff member (`was`: the policy they had, when it is gone). Returns the waits whose
    clock that changed."""
    waits = list(session.scalars(select(SlaWait).where(which, SlaWait.closed_at.is_(None))))
    changed = []
    if waits:
        book = PolicyBook(session)
        applies = book.for_staff(w.staff_userid for w in waits)
        for wait in waits:
            now_applies = applies.get(wait.staff_userid, book.fallback)
            if _clock(now_applies) != _clock(was or book.by_id(wait.policy_id)):
                changed.append(wait.id)
            wait.policy_id = now_applies.id
        session.flush()
    return changed


def _check_workable(policy: SlaPolicy) -> None:
    """What the fields allow one by one but not together (with the values a save leaves as
    they were): a step that could reach nobody, a clock that could never run. All of them at
    once, so that a form is not sent again for each."""
    problems = []
    if any(step.get("target") == "contact" for step in policy.steps or []) and not policy.escalation_contact:
        problems.append(
            "有步骤发给升级联系人，请先设置升级联系人 / a step goes to the escalation contact: name one first"
        )
    if policy.business_hours_only and policy.shifts is not None and not policy.shifts:  # None: the default
        problems.append(
            "只计算工作时间需要至少一个班次 / counting business hours only needs at least one shift"
        )
    if policy.business_hours_only and (calls := _calls_never_placed(policy)):
        problems.append(
            f"{calls}永远不会拨打：每个班次都在免打扰时段内，电话只在班次里、免打扰时段外拨打，"
            "请调整班次或免打扰时段 / a call step can never ring: every shift lies in the quiet hours"
        )
    enabled = policy.enabled is not False  # None on a policy's first save: on, the column default
    if enabled and policy.steps is not None and not policy.steps:  # None: the default steps
        problems.append(
            "启用超时提醒需要至少一个步骤（不想提醒请关闭） / an enabled policy needs a step (or disable it)"
        )
    if problems:
        raise PolicyError("；".join(problems))


def _calls_never_placed(policy: SlaPolicy) -> str:
    """The call steps of a business-hours policy whose shifts all lie in its quiet hours, named
    (第 3 步（语音电话打给负责成员）), or "": such a call waits for a shift that quiet hours
    hold, for ever."""
    steps = policy.steps if policy.steps is not None else DEFAULT_STEPS
    shifts = policy.shifts if policy.shifts is not None else DEFAULT_SHIFTS
    quiet = policy.quiet_hours if policy.quiet_hours is not None else DEFAULT_QUIET_HOURS
    calls = [i for i, step in enumerate(steps) if step.get("action") == "voice_call"]
    if not calls or not shifts or not shifts_all_quiet(shifts, quiet):
        return ""
    return "、".join(
        f"第 {i + 1} 步（{step_phrase('voice_call', steps[i].get('target', ''))}）" for i in calls
    )


def calls_never_placed_in(fields: dict) -> str:
    """The call steps of a stored policy, as its page reads it (policy_out), that can never ring,
    named, or "": one saved before such policies were refused says so on its page, not only on
    the board once a call is due."""
    if not fields.get("business_hours_only"):
        return ""
    return _calls_never_placed(
        SimpleNamespace(steps=fields["steps"], shifts=fields["shifts"], quiet_hours=fields["quiet_hours"])
    )


MAX_DAY_NOTE = 200  # a special date's note (the page's field allows as many)


def set_calendar_day(
    session: Session, day: date, kind: str, note: str = "", now: datetime | None = None, by: str = ""
) -> SlaCalendarDay:
    """Mark a date as a holiday or a (make-up) workday for this tenant, from `now` (Siyu's
    clock; the wall clock by default), by `by` (the name they are signed in as; "" for Siyu
    itself), kept with the date where it is new or its kind or note changes: a date set again
    as it is (a PUT sending all the dates) keeps who added it."""
    if kind not in ("holiday", "workday"):
        raise PolicyError("kind is holiday or workday")
    if len(note) > MAX_DAY_NOTE:
        raise PolicyError(f"备注最多 {MAX_DAY_NOTE} 字 / the note is at most {MAX_DAY_NOTE} characters")
    try:
        check_day(day)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    row = session.scalar(select(SlaCalendarDay).where(SlaCalendarDay.day == day))
    if row is None:
        row = SlaCalendarDay(day=day, kind=kind, note=note)
        session.add(row)
    if row.kind != kind or row in session.new:  # (a note alone changes no figure)
        _keep_calendar_change(session, day, kind, now, by)
    if row in session.new or (row.kind, row.note) != (kind, note):
        row.added_by, row.added_at = by[:200], now or datetime.now(UTC)
    row.kind, row.note = kind, note
    session.flush()
    return row


def remove_calendar_day(session: Session, day: date, now: datetime | None = None, by: str = "") -> bool:
    row = session.scalar(select(SlaCalendarDay).where(SlaCalendarDay.day == day))
    if row is not None:
        session.delete(row)
        _keep_calendar_change(session, day, "", now, by)
    return row is not None


def _keep_calendar_change(session: Session, day: date, kind: str, now: datetime | None, by: str) -> None:
    """Record that `day` became `kind` ("": no special date) at `now` (SlaCalendarChange), by
    `by`: the board measures past waits by the dates in force when they ended, and the policy
    page names who removed a date."""
    session.add(
        SlaCalendarChange(day=day, kind=kind, changed_at=now or datetime.now(UTC), changed_by=by[:200])
    )


def hold_calendar(session: Session) -> None:
    """No policy saved (nor other edit of the dates) between reading the special dates and
    moving the open waits' next steps by them, nor the other way round: each would time those
    steps by what the other had not committed yet, and the later commit undo the earlier's
    (a date added while a policy was saved ended with the steps due as if it were not there).
    SQLite: its single write lock; PostgreSQL: the tenant's calendar lock, which hold_policy
    shares."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("UPDATE sla_calendar_days SET id = id WHERE 0")
    else:
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), _calendar_key(session)
        )


def _calendar_key(session: Session) -> dict:
    return {"key": f"siyu.sla_calendar:{session.info.get('siyu_tenant_id')}"}


def follow_the_calendar(session: Session, now: datetime | None = None) -> int:
    """After the special dates changed: the pending step of each open wait whose policy counts
    business time only, due when the calendar now says (a Saturday made a workday brings
    Monday's steps to today; one taken back keeps them from firing on a day off, their card
    saying the customer had waited 0 business seconds). Returns how many steps moved."""
    session.flush()
    now = now or datetime.now(UTC)
    moved = _reschedule_pending(session, PolicyBook(session), None, business_time_only=True, changed_at=now)
    retime_held_calls(session, now)  # under business hours a held call waits for the next open moment
    return moved


def change_timezone(session: Session, zone: str, now: datetime, by: str) -> int:
    """The tenant's time zone (ValueError: not an IANA one), changed by `by` at `now` (kept with
    the zone before: timezones.set_timezone). Shifts, quiet hours and special
    dates are local times, so a policy counting business hours only has them at other
    instants now: each open wait's pending step is due when they say, as after a calendar
    edit. Steps timed by the wall clock stay due when they were (a duration in any zone).
    Returns how many steps moved."""
    hold_calendar(session)  # (retimes the open waits by the dates, as a date edit does)
    if not timezones.set_timezone(session, session.info["siyu_tenant_id"], zone, by, now):
        return 0
    return follow_the_calendar(session, now)


def _reschedule_pending(
    session: Session,
    book: PolicyBook,
    wait_ids: list[int] | None,
    business_time_only: bool = False,
    changed_at: datetime | None = None,
) -> int:
    """The pending step of open waits (these, or all), due by its own delay from the wait's
    start under its policy's clock as the calendar now stands; in a snoozed wait no sooner than
    the snooze's end nor than its spacing after the step before it (`next_due`). Its own delay,
    not that of the policy's step of the same number since saved: the step keeps its action and
    target (已排好的下一步不变), and a call saved in place of a card had gone out as the card at
    the call's time. `changed_at`: when the admin
    changed the clock; a step not due by then that the new clock puts before it is due then:
    at its time by the new clock it was hours overdue, and firing skipped it as stale (过期未发),
    so nobody was reminded at all."""
    before = aliased(SlaEscalation)
    query = (
        select(
            SlaEscalation.id,
            SlaEscalation.step,
            SlaEscalation.due_at,
            SlaEscalation.action,
            SlaEscalation.target,
            SlaEscalation.delay_s,
            SlaEscalation.created_at,
            SlaWait.policy_id,
            SlaWait.started_at,
            SlaWait.snoozed_until,
            before.due_at.label("was_due"),
        )
        .join(SlaWait, SlaWait.id == SlaEscalation.wait_id)
        .outerjoin(
            before, and_(before.wait_id == SlaEscalation.wait_id, before.step == SlaEscalation.step - 1)
        )
        .where(SlaEscalation.status == "pending", SlaWait.closed_at.is_(None))
    )
    if wait_ids is not None:
        query = query.where(bulk.among(session, SlaWait.id, wait_ids))
    moved = []
    for r in session.execute(query).all():
        policy = book.by_id(r.policy_id)
        if business_time_only and not policy.business_hours_only:
            continue
        own = _own_step(book, r, policy)
        if own is None:
            continue
        due = book.due_times(replace(policy, steps=(own,)), r.started_at)[0]
        if r.snoozed_until is not None:
            # a snooze moved the steps later keeping their spacing: so does this one stay after
            # the step before it (the snooze's end alone had it fire with that step)
            spaced = next_due(book, policy, r.started_at, r.step - 1, r.was_due) if r.was_due else None
            due = max(due, spaced or due, snooze_ends(book, policy, r.snoozed_until))
        if changed_at is not None and due < changed_at < r.due_at:
            due = changed_at
        if due != r.due_at:
            moved.append({"id": r.id, "due_at": due})
    # a worker may have fired one since it was read: it keeps the time it was due
    bulk.update_by_id(session, SlaEscalation, moved, ["due_at"], unless_changed=("status", "pending"))
    return len(moved)


def _own_step(book: PolicyBook, r, policy: PolicyView) -> Step | None:
    """The step a pending row was scheduled as: its action, target and delay as the row keeps
    them. Not looked up in the policy the wait follows now: a wait moved to another policy (a
    department's deleted, the tenant's first saved) kept its step from the old one, which no
    version of the new one has, and it stayed on the old clock. A row scheduled before the
    delay was kept: the policy's version in force when the row was made, else the first kept
    version (newest first) with that step, else the policy as it stands if its step agrees;
    None when nothing kept tells its delay (it stays where it is)."""
    if r.delay_s is not None:
        return Step(r.delay_s, r.action, r.target)
    views = [book.measured_by(r.policy_id, r.created_at), policy]
    views += [view for _, view in reversed(book._kept_versions().get(r.policy_id, []))]
    for view in views:
        if r.step < len(view.steps):
            step = view.steps[r.step]
            if (step.action, step.target) == (r.action, r.target):
                return step
    return None


def tenant_timezone(session: Session) -> str:
    tenant = session.get(Tenant, session.info["siyu_tenant_id"])
    return (tenant.timezone if tenant else "") or timezones.DEFAULT


def calendar_for(
    session: Session, policy: PolicyView, days: Sequence[tuple[date, str]] | None = None
) -> BusinessCalendar:
    """The policy's business calendar with the special dates `days` (as they stand: read)."""
    if days is None:
        days = session.execute(select(SlaCalendarDay.day, SlaCalendarDay.kind)).all()
    return BusinessCalendar.build(
        tenant_timezone(session),
        policy.shifts,
        holidays=[d for d, kind in days if kind == "holiday"],
        workdays=[d for d, kind in days if kind == "workday"],
        public_holidays=policy.public_holidays,
    )


# How far back a wait's business time is worked out for the board, the cards and the calls.
BUSINESS_TIME_DAYS = 14


class PolicyBook:
    """The tenant's policies, read once, answering "which policy applies to this staff
    member" for many staff at a time (ingest asks for a whole batch's waits at once)."""

    def __init__(self, session: Session):
        self.session = session
        self.policies = {p.department_wecom_id: p for p in session.scalars(select(SlaPolicy))}
        self._ids = {p.id for p in self.policies.values()}
        self._parents: dict[int, int | None] | None = None
        self._calendars: dict[tuple, BusinessCalendar] = {}
        self._by_id: dict[int | None, PolicyView] = {}
        self._versions: dict[int, list[tuple[datetime, PolicyView]]] | None = None
        self._calendar_changes: list[SlaCalendarChange] | None = None

    @property
    def fallback(self) -> PolicyView:
        """The tenant's policy, else the built-in default."""
        return PolicyView.of(self.policies[0]) if 0 in self.policies else PolicyView()

    def for_staff(self, userids: Iterable[str]) -> dict[str, PolicyView]:
        wanted = {u for u in userids if u}
        found = dict.fromkeys(wanted, self.fallback)
        if len(self.policies) <= (0 in self.policies) or not wanted:
            return found  # no department has its own policy
        if self._parents is None:
            self._parents = dict(
                self.session.execute(select(Department.wecom_id, Department.parent_wecom_id)).all()
            )
        rows = self.session.execute(
            select(Staff.userid, Staff.main_department, Staff.departments).where(
                bulk.among(self.session, Staff.userid, wanted)
            )
        )
        for userid, main, departments in rows:
            dept, seen = main or (departments[0] if departments else None), set()
            while dept and dept not in seen:
                if dept in self.policies:
                    found[userid] = PolicyView.of(self.policies[dept])
                    break
                seen.add(dept)
                dept = self._parents.get(dept)
        return found

    def by_id(self, policy_id: int | None) -> PolicyView:
        """The policy a wait ran under (its policy_id), from the rows read once: the built-in
        default for none or one deleted since."""
        view = self._by_id.get(policy_id)
        if view is None:
            row = next((p for p in self.policies.values() if p.id == policy_id), None) if policy_id else None
            view = self._by_id[policy_id] = PolicyView.of(row) if row is not None else PolicyView()
        return view

    def measured_by(self, policy_id: int | None, ended: datetime | None = None) -> PolicyView:
        """The policy a wait is measured by on the board: the one it ran under, with the steps
        and clock it had when the wait ended (`ended`: now for one still open), so that a past
        day's figures stay as they were when the policy is edited or deleted later. Without
        `ended`, or with no version kept of it: as it stands now, the tenant's for a
        department's deleted since (it has no steps any more)."""
        if policy_id is not None and ended is not None:
            versions = self._kept_versions().get(policy_id)
            if versions:
                # the last in force by then; a wait that ended before the first: the first
                return next((view for since, view in reversed(versions) if since <= ended), versions[0][1])
        return self.by_id(policy_id) if policy_id is None or policy_id in self._ids else self.fallback

    def _kept_versions(self) -> dict[int, list[tuple[datetime, PolicyView]]]:
        """Every policy's kept versions, oldest first, read once: the rest of each from the
        policy as it stands (a deleted one's from the built-in default)."""
        if self._versions is None:
            self._versions = {}
            v = SlaPolicyVersion
            for row in self.session.scalars(select(v).order_by(v.policy_id, v.valid_from, v.id)):
                kept = row.policy_id in self._ids
                view = replace(
                    self.by_id(row.policy_id) if kept else PolicyView(id=row.policy_id),
                    steps=tuple(Step(int(s["delay_s"]), s["action"], s["target"]) for s in row.steps),
                    business_hours_only=row.business_hours_only,
                    shifts=tuple(tuple(s) for s in row.shifts),
                    public_holidays=row.public_holidays,
                )
                self._versions.setdefault(row.policy_id, []).append((row.valid_from, view))
        return self._versions

    def calendar(self, policy: PolicyView, as_of: datetime | None = None) -> BusinessCalendar:
        """The policy's business calendar with the special dates as they stand, or (`as_of`)
        as they stood then: a wait that ended is measured by the dates in force when it did."""
        made = self._changes_made_by(as_of)
        # one policy's versions may keep different hours: the clock is part of the key
        key = (policy.id, policy.shifts, policy.public_holidays, made)
        cal = self._calendars.get(key)
        if cal is None:
            days = None
            if made is not None:
                then: dict[date, str] = {}
                for change in self._calendar_changes[:made]:
                    then[change.day] = change.kind
                days = [(day, kind) for day, kind in then.items() if kind]
            cal = self._calendars[key] = calendar_for(self.session, policy, days)
        return cal

    def _changes_made_by(self, as_of: datetime | None) -> int | None:
        """How many of the special dates' changes (oldest first) had been made by `as_of`; None
        for all of them (or no `as_of`): the dates as they stand."""
        if as_of is None:
            return None
        if self._calendar_changes is None:
            c = SlaCalendarChange
            self._calendar_changes = list(self.session.scalars(select(c).order_by(c.changed_at, c.id)))
        made = bisect_right([c.changed_at for c in self._calendar_changes], as_of)
        return None if made == len(self._calendar_changes) else made

    def due_times(self, policy: PolicyView, started_at: datetime) -> list[datetime]:
        if not policy.business_hours_only:
            return [started_at + timedelta(seconds=s.delay_s) for s in policy.steps]
        cal = self.calendar(policy)
        return [cal.add(started_at, s.delay_s) for s in policy.steps]

    def waited_business_s(
        self, policy: PolicyView, started_at: datetime, now: datetime, ended: bool = False
    ) -> float | None:
        """The wait in business time, under a policy that counts it, for a wait of the last
        BUSINESS_TIME_DAYS (the calendar is walked day by day: a wait forgotten for months
        would cost a walk of months, and its wall time says enough). `ended`: the wait ended at
        `now`, and is measured by the special dates in force then, not as they stand."""
        if not policy.business_hours_only or now - started_at > timedelta(days=BUSINESS_TIME_DAYS):
            return None
        return self.calendar(policy, now if ended else None).between(started_at, now)

    def waited_s(self, policy: PolicyView, started_at: datetime, now: datetime, ended: bool = False) -> float:
        """How long a wait has run by its policy's clock (`ended`: see waited_business_s)."""
        return by_its_clock(self.waited_business_s(policy, started_at, now, ended), started_at, now)


def by_its_clock(business_s: float | None, started_at: datetime, now: datetime) -> float:
    """A wait's length by its policy's clock: business time where that was worked out
    (PolicyBook.waited_business_s), else wall time."""
    return business_s if business_s is not None else (now - started_at).total_seconds()


def policy_for(session: Session, staff_userid: str) -> PolicyView:
    """The policy that applies to a staff member's waits."""
    book = PolicyBook(session)
    return book.for_staff([staff_userid])[staff_userid] if staff_userid else book.fallback


def still_with_the_corp(session: Session, userid: str) -> bool:
    return session.scalar(select(Staff.id).where(Staff.userid == userid, Staff.active.is_(True))) is not None


def _has_left(session: Session, userid: str) -> bool:
    """Synced, and no longer with the corp (a member not synced yet is still tried)."""
    return session.scalar(select(Staff.active).where(Staff.userid == userid)) is False


def members_left(session: Session, userids: Iterable[str]) -> set[str]:
    """Those of `userids` synced and no longer with the corp, in one read (a firing batch's
    agents: read one by one, they doubled firing's cost a step)."""
    wanted = set(userids) - {""}
    if not wanted:
        return set()
    return set(
        session.scalars(select(Staff.userid).where(bulk.among(session, Staff.userid, wanted), ~Staff.active))
    )


def recipient_for(
    session: Session, target: str, agent_userid: str, policy: PolicyView, left: set[str] | None = None
) -> str | None:
    """Who a step reaches: the agent; their leader (first direct leader, else their main
    department's leader, else the policy's escalation contact); or the contact. `left`: the
    agents known to have left (members_left), where the caller read them for many steps."""
    if target == "agent":
        # a card (or a call) to a member who left reaches nobody (WeCom: 消息接收人全部无效)
        gone = agent_userid in left if left is not None else agent_userid and _has_left(session, agent_userid)
        return agent_userid if agent_userid and not gone else None
    contact = policy.escalation_contact if policy.escalation_contact != agent_userid else ""
    if contact and not still_with_the_corp(session, contact):
        contact = ""  # a card to one who left reaches nobody: the step says so (the policy page warns)
    if target == "leader":
        return leader_of(session, agent_userid) or contact or None
    return contact or None


# ------------------------------------------------------- department policies (admin)
# Editing a department's own policy, removing it, and which policy each department follows.


class UnknownDepartment(LookupError):
    pass


@dataclass(frozen=True)
class DepartmentPolicy:
    """A synced department and the policy its members follow (as policy_for resolves it)."""

    wecom_id: int
    name: str
    parent_wecom_id: int
    depth: int  # 0 for a top department, in tree order
    own: bool  # it has a policy of its own
    policy_from: int | None  # whose policy applies: a department, 0 (the tenant's), None (built-in)


def department_policies(session: Session) -> list[DepartmentPolicy]:
    """Every synced department, parents before children (siblings by WeCom id), with the
    policy its members follow: its own, the nearest ancestor's, the tenant's or the default."""
    stored = set(session.scalars(select(SlaPolicy.department_wecom_id)))
    departments = session.execute(
        select(Department.wecom_id, Department.name, Department.parent_wecom_id).order_by(Department.wecom_id)
    ).all()
    parents = {d.wecom_id: d.parent_wecom_id for d in departments}

    def source(dept: int) -> int | None:
        seen = set()
        while dept and dept not in seen:
            if dept in stored:
                return dept
            seen.add(dept)
            dept = parents.get(dept)
        return 0 if 0 in stored else None

    children: dict[int, list] = {}
    for d in departments:
        parent = d.parent_wecom_id if d.parent_wecom_id in parents and d.parent_wecom_id != d.wecom_id else 0
        children.setdefault(parent, []).append(d)
    out: list[DepartmentPolicy] = []
    placed: set[int] = set()

    def walk(parent: int, depth: int) -> None:
        for d in children.get(parent, []):
            if d.wecom_id in placed:
                continue
            placed.add(d.wecom_id)
            out.append(
                DepartmentPolicy(
                    d.wecom_id, d.name, d.parent_wecom_id, depth, d.wecom_id in stored, source(d.wecom_id)
                )
            )
            walk(d.wecom_id, depth + 1)

    walk(0, 0)
    for d in departments:  # in a parent loop: listed at the top
        if d.wecom_id not in placed:
            placed.add(d.wecom_id)
            out.append(
                DepartmentPolicy(
                    d.wecom_id, d.name, d.parent_wecom_id, 0, d.wecom_id in stored, source(d.wecom_id)
                )
            )
            walk(d.wecom_id, 1)
    return out


def save_department_policy(
    session: Session, department_wecom_id: int, *, now: datetime | None = None, by: str = "", **fields
) -> SlaPolicy:
    """Create or change a department's own policy. A new one starts as a copy of the policy
    its members follow now (an ancestor's, the tenant's or the default), named after the
    department, and then takes `fields`. UnknownDepartment when there is no such synced
    department (a policy left by a department that was removed can still be changed)."""
    if department_wecom_id < 0:
        raise UnknownDepartment(department_wecom_id)
    if department_wecom_id == 0:
        raise PolicyError("department 0 is the tenant's policy; use save_policy")
    own = session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == department_wecom_id))
    if own is None:
        name = session.scalar(select(Department.name).where(Department.wecom_id == department_wecom_id))
        if name is None:
            raise UnknownDepartment(department_wecom_id)
        source = next(
            (d.policy_from for d in department_policies(session) if d.wecom_id == department_wecom_id), None
        )
        stored = (
            session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == source))
            if source is not None
            else None
        )
        base = PolicyView.of(stored) if stored is not None else PolicyView()
        fields = {
            "name": name[:200],
            "enabled": base.enabled,
            "steps": [{"delay_s": s.delay_s, "action": s.action, "target": s.target} for s in base.steps],
            "business_hours_only": base.business_hours_only,
            "shifts": [list(s) for s in base.shifts],
            "public_holidays": base.public_holidays,
            "escalation_contact": base.escalation_contact,
            "merge_window_s": base.merge_window_s,
            "call_cooldown_s": base.call_cooldown_s,
            "quiet_hours": list(base.quiet_hours),
            "stale_after_s": base.stale_after_s,
            **fields,
        }
    return save_policy(session, department_wecom_id, now=now, by=by, **fields)


def delete_policy(session: Session, department_wecom_id: int, now: datetime | None = None) -> bool:
    """Remove a department's own policy: its members follow the nearest ancestor's policy,
    else the tenant's, from their next wait on. Open waits that followed it keep their
    scheduled steps (unless the policy that now applies counts business hours by another
    clock: `_follow_new_clock`) and take the quiet hours, cooldown etc. of that policy.
    The tenant's policy (department 0) cannot be removed. False when there was none."""
    if department_wecom_id == 0:
        raise PolicyError("the tenant's policy cannot be deleted")
    policy = session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == department_wecom_id))
    if policy is None:
        return False
    policy_id, was = policy.id, PolicyView.of(policy)
    session.delete(policy)
    session.flush()
    now = now or datetime.now(UTC)
    _follow_new_clock(session, _reassign_open_waits(session, SlaWait.policy_id == policy_id, was), now)
    retime_held_calls(session, now)  # their quiet hours are the policy's that now applies
    return True


# ------------------------------------------------------------------- waits (listener)


def close_waits(session: Session, conversation_id: int, at: datetime, reason: str) -> int:
    """Close the conversation's open wait(s) and cancel their pending steps."""
    waits = list(
        session.scalars(
            select(SlaWait).where(SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None))
        )
    )
    for wait in waits:
        wait.closed_at, wait.close_reason = at, reason
        if reason == "replied":
            wait.response_s = max(0.0, (at - wait.started_at).total_seconds())
    if waits:
        _cancel_pending(session, [w.id for w in waits], reason)
    return len(waits)


def _cancel_pending(session: Session, wait_ids: list[int], reason: str) -> None:
    session.execute(
        update(SlaEscalation)
        .where(bulk.among(session, SlaEscalation.wait_id, wait_ids), SlaEscalation.status == "pending")
        .values(status="cancelled", note=reason, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


@dataclass
class _Wait:
    conversation_id: int
    msgid: str
    staff_userid: str
    customer_id: int | None
    policy: PolicyView | None
    started_at: datetime
    id: int | None = None  # set for waits stored before this batch
    closed_at: datetime | None = None
    close_reason: str = ""
    closed_by: str = ""
    snoozed_until: datetime | None = None
    snoozed_by: str = ""
    snoozed_by_id: int | None = None
    snoozed_at: datetime | None = None

    def close(self, at: datetime | None, reason: str, by: str = "") -> None:
        self.closed_at, self.close_reason, self.closed_by = at, reason, by

    @property
    def response_s(self) -> float | None:
        if self.close_reason != "replied" or self.closed_at is None:
            return None
        return max(0.0, (self.closed_at - self.started_at).total_seconds())


def record_waits(session: Session, changes: Sequence[conversations.WaitChange]) -> None:
    """Follow a transaction's wait changes, in order, with a fixed number of statements:
    open waits (one row each, plus the escalation row of the policy's first step, due at
    msgtime + delay), close them (a reply, a recall, "no reply needed") and cancel their
    pending step. A wait opened and closed within the same changes is stored closed, without
    steps."""
    ids = {c.conversation_id for c in changes}
    stored = session.execute(
        select(SlaWait.id, SlaWait.conversation_id, SlaWait.msgid, SlaWait.started_at)
        .add_columns(SlaWait.snoozed_until, SlaWait.snoozed_by, SlaWait.snoozed_by_id, SlaWait.snoozed_at)
        .where(bulk.among(session, SlaWait.conversation_id, ids), SlaWait.closed_at.is_(None))
    ).all()
    open_now: dict[int, list[_Wait]] = {}
    for wait_id, conversation_id, msgid, started_at, until, by, by_id, at in stored:
        wait = _Wait(conversation_id, msgid, "", None, None, started_at, id=wait_id)
        wait.snoozed_until, wait.snoozed_by, wait.snoozed_by_id, wait.snoozed_at = until, by, by_id, at
        open_now.setdefault(conversation_id, []).append(wait)
    # a snooze outlives a recall: the wait moved on to the customer's next question, for the
    # same customer the agent asked quiet about (the wait it was asked on, who and when)
    snoozes: dict[int, _Wait] = {}
    opening = [c for c in changes if c.opened and c.kind == "single" and c.staff_userid]
    if opening and session.get_bind().dialect.name == "postgresql":
        # the policies new waits take stay until they are stored: a department's removed
        # meanwhile would leave its new waits on a policy no longer there (the built-in
        # default's steps), unseen by the removal, which moves the open waits it finds
        session.execute(select(SlaPolicy.id).with_for_update(read=True, key_share=True))
    book = PolicyBook(session)
    policies = book.for_staff(c.staff_userid for c in opening)
    new: dict[tuple[int, str], _Wait] = {}
    closed: list[_Wait] = []
    closed_here: dict[tuple[int, str], _Wait] = {}  # closed by these changes, by message
    moved: dict[int, _Wait] = {}
    later: list[conversations.WaitChange] = []  # (those that look for stored waits)
    for change in changes:
        if change.reason in _LOOK_BACK:
            later.append(change)
            continue
        again = closed_here.pop((change.conversation_id, change.msgid), None) if change.opened else None
        if again is not None:
            # closed by a reply these changes stored, recalled in them too (one pull brought
            # both): the wait goes on as if it had never closed
            again.close(None, "")
            if again.id is not None:
                closed.remove(again)
            open_now.setdefault(change.conversation_id, []).append(again)
            continue
        if change.opened and change.reason == conversations.EARLIER:
            # the wait began with an older message pulled after it: the same wait (its fired
            # steps stand), started earlier
            for wait in open_now.get(change.conversation_id, []):
                if wait.id is None:
                    new.pop((wait.conversation_id, wait.msgid), None)
                    new[(wait.conversation_id, change.msgid)] = wait
                else:
                    moved[wait.id] = wait
                wait.msgid, wait.started_at = change.msgid, change.at
            continue
        if change.opened:
            if change.kind != "single" or not change.staff_userid:
                continue
            if (change.conversation_id, change.msgid) in new:
                continue
            wait = _Wait(
                change.conversation_id,
                change.msgid,
                change.staff_userid,
                change.customer_id,
                policies[change.staff_userid],
                change.at,
            )
            if (snoozed := snoozes.get(change.conversation_id)) is not None:
                wait.snoozed_until, wait.snoozed_by = snoozed.snoozed_until, snoozed.snoozed_by
                wait.snoozed_by_id, wait.snoozed_at = snoozed.snoozed_by_id, snoozed.snoozed_at
            new[(change.conversation_id, change.msgid)] = wait
            open_now.setdefault(change.conversation_id, []).append(wait)
        else:
            for wait in open_now.pop(change.conversation_id, []):
                wait.close(change.at, change.reason, change.by)
                closed_here[(wait.conversation_id, wait.msgid)] = wait
                if change.reason in ("recalled", conversations.MERGED) and wait.snoozed_until is not None:
                    snoozes[change.conversation_id] = wait
                if wait.id is not None:
                    closed.append(wait)
    _store_new_waits(session, book, list(new.values()))
    _store_moved_waits(session, book, list(moved.values()))
    _store_closed_waits(session, closed)
    for change in later:
        if change.reason != conversations.ANSWERED_BEFORE:
            _store_answered_later(session, change)
        else:
            _store_answered_before(session, book, change, policies[change.staff_userid])


def _store_answered_later(session: Session, change: conversations.WaitChange) -> None:
    """A reply recalled: the wait it had closed (by its time) went on. The first wait begun
    between it and the later reply (ANSWERED_LATER) or the recall (REPLY_TAKEN_BACK) was the
    same wait, folded into it (as when the customer wrote again while waiting): the wait ended
    as that one did (the later reply, or "no reply needed" before it); with none, the later
    reply answered it, and it took that long. Waits begun after that one ended are their own.
    With no later reply and none ended, the wait waits again: the changes before this one
    reopened it, so it is no longer found closed by the recalled reply. Steps the recalled
    reply cancelled stay cancelled: nobody was reminded, so they are no breaches; the on-time
    shares count the wait answered late (or not at all) for those it ran past."""
    recalled_at = change.answered_at
    rows = session.execute(
        select(SlaWait.id, SlaWait.started_at, SlaWait.closed_at, SlaWait.close_reason, SlaWait.closed_by)
        .where(
            SlaWait.conversation_id == change.conversation_id,
            or_(
                and_(SlaWait.close_reason == "replied", SlaWait.closed_at == recalled_at),
                and_(SlaWait.started_at > recalled_at, SlaWait.started_at < change.at),
            ),
        )
        .order_by(SlaWait.started_at, SlaWait.id)
    ).all()
    answered = next((r for r in rows if r.close_reason == "replied" and r.closed_at == recalled_at), None)
    if answered is None:
        return  # the recalled reply had answered nothing (another had, before it)
    # (a question the customer took back while the wait ran was part of it, and owed nothing)
    folded = [r for r in rows if r.started_at > recalled_at and r.close_reason not in _WAS_PART]
    then = folded[0] if folded and folded[0].closed_at is not None else None
    if then is None and change.reason != conversations.ANSWERED_LATER:
        return  # (it waits again: reopened)
    closed_at, reason, by = (
        (then.closed_at, then.close_reason, then.closed_by) if then else (change.at, "replied", "")
    )
    response_s = max(0.0, (closed_at - answered.started_at).total_seconds()) if reason == "replied" else None
    out = [
        {
            "id": answered.id,
            "closed_at": closed_at,
            "close_reason": reason,
            "response_s": response_s,
            "closed_by": by,
        }
    ]
    if then is not None:
        out.append(
            {
                "id": then.id,
                "closed_at": then.closed_at,
                "close_reason": conversations.MERGED,
                "response_s": None,
                "closed_by": then.closed_by,
            }
        )
    bulk.update_by_id(session, SlaWait, out, ["closed_at", "close_reason", "response_s", "closed_by"])


# Changes that correct waits stored before (read after this batch's own are stored).
_LOOK_BACK = (conversations.ANSWERED_BEFORE, conversations.ANSWERED_LATER, conversations.REPLY_TAKEN_BACK)


# Waits that, begun while an earlier one ran, would have been none of their own: the question
# taken back (it never waited alone), or one already folded into another.
_WAS_PART = ("recalled", conversations.MERGED)


def _store_answered_before(
    session: Session, book: PolicyBook, change: conversations.WaitChange, policy: PolicyView
) -> None:
    """A question pulled after the reply it had: the wait that reply closed, if it began
    after the question, began with it; else the question's own wait, answered, is recorded."""
    answered_at = change.answered_at
    stored = session.execute(
        select(SlaWait.id, SlaWait.started_at).where(
            SlaWait.conversation_id == change.conversation_id,
            SlaWait.close_reason == "replied",
            SlaWait.closed_at == answered_at,
        )
    ).first()
    response_s = max(0.0, (answered_at - change.at).total_seconds())
    if stored is not None:
        if stored.started_at > change.at:
            row = {"id": stored.id, "msgid": change.msgid, "started_at": change.at, "response_s": response_s}
            bulk.update_by_id(session, SlaWait, [row], ["msgid", "started_at", "response_s"])
        return
    c = change
    wait = _Wait(c.conversation_id, c.msgid, c.staff_userid, c.customer_id, policy, c.at)
    wait.close(answered_at, "replied")
    _store_new_waits(session, book, [wait])


def _store_moved_waits(session: Session, book: PolicyBook, waits: list[_Wait]) -> None:
    if not waits:
        return
    rows = [{"id": w.id, "msgid": w.msgid, "started_at": w.started_at} for w in waits]
    bulk.update_by_id(session, SlaWait, rows, ["msgid", "started_at"])
    _reschedule_pending(session, book, [w.id for w in waits])


def _store_new_waits(session: Session, book: PolicyBook, waits: list[_Wait]) -> None:
    rows = [
        {
            "conversation_id": w.conversation_id,
            "msgid": w.msgid,
            "staff_userid": w.staff_userid,
            "customer_id": w.customer_id,
            "policy_id": w.policy.id,
            "started_at": w.started_at,
            "closed_at": w.closed_at,
            "close_reason": w.close_reason,
            "response_s": w.response_s,
            "breached_step": -1,
            "snoozed_until": w.snoozed_until,
            "snoozed_by": w.snoozed_by,
            "snoozed_by_id": w.snoozed_by_id,
            "snoozed_at": w.snoozed_at,
        }
        for w in waits
    ]
    inserted = bulk.insert_rows(
        session,
        SlaWait,
        rows,
        conflict=["conversation_id", "msgid"],
        returning=["id", "conversation_id", "msgid"],
    )
    by_key = {(w.conversation_id, w.msgid): w for w in waits}
    done = {(c, m) for _, c, m in inserted}
    reopened = _reopen(session, [w for k, w in by_key.items() if k not in done and w.closed_at is None])
    for wait_id, conversation_id, msgid in reopened:  # (rare: a recalled reply, a snooze on the wait it ends)
        snoozed = by_key[(conversation_id, msgid)]
        if (until := snoozed.snoozed_until) is not None:
            ends = snooze_ends(book, snoozed.policy, until) if snoozed.policy is not None else until
            session.execute(
                update(SlaWait)
                .where(SlaWait.id == wait_id)
                .values(
                    snoozed_until=until,
                    snoozed_by=snoozed.snoozed_by,
                    snoozed_by_id=snoozed.snoozed_by_id,
                    snoozed_at=snoozed.snoozed_at,
                )
            )
            session.execute(
                update(SlaEscalation)
                .where(
                    SlaEscalation.wait_id == wait_id,
                    SlaEscalation.status == "pending",
                    SlaEscalation.due_at < ends,
                )
                .values(due_at=ends, claimed_until=None)
                .execution_options(synchronize_session=False)
            )
    now = datetime.now(UTC)
    steps = []
    for wait_id, conversation_id, msgid in [*inserted, *reopened]:  # a reopened one may have none yet
        wait = by_key[(conversation_id, msgid)]
        if not wait.policy.enabled or wait.closed_at is not None or not wait.policy.steps:
            continue  # answered in the same pull: none of its steps could ever come due
        due = book.due_times(wait.policy, wait.started_at)[0]
        if wait.snoozed_until is not None:
            due = max(due, snooze_ends(book, wait.policy, wait.snoozed_until))
        steps.append(step_row(wait_id, conversation_id, wait.staff_userid, 0, wait.policy.steps[0], due, now))
    bulk.insert_rows(session, SlaEscalation, steps, conflict=["wait_id", "step"])


def step_row(
    wait_id: int,
    conversation_id: int,
    agent_userid: str,
    index: int,
    step: Step,
    due: datetime,
    now: datetime,
) -> dict:
    """A pending escalation row: a wait has one at a time, its next step."""
    return {
        "wait_id": wait_id,
        "conversation_id": conversation_id,
        "step": index,
        "action": step.action,
        "target": step.target,
        "delay_s": step.delay_s,
        "agent_userid": agent_userid,
        "recipient": "",
        "due_at": due,
        "status": "pending",
        "claimed_until": None,
        "attempts": 0,
        "fired_at": None,
        "note": "",
        "created_at": now,
    }


def next_due(book: PolicyBook, policy: PolicyView, started_at: datetime, index: int, was_due: datetime):
    """When step `index` + 1 of a wait comes due, step `index` having been due at `was_due`:
    on the policy's schedule from the wait's start, or as long after `was_due` as the
    schedule spaces the two steps, by the policy's clock, whichever is later (a snooze moved
    the wait's steps later, keeping their spacing). None when `index` was the last step, or when the policy
    has since been switched off (the steps after the one scheduled follow the policy as saved)."""
    if index + 1 >= len(policy.steps) or not policy.enabled:
        return None
    dues = book.due_times(policy, started_at)
    if not policy.business_hours_only or dues[index + 1] == dues[index]:
        return max(dues[index + 1], was_due + (dues[index + 1] - dues[index]))
    # the spacing by the policy's clock: in wall time it counted the night or weekend between
    # the two steps again after a snooze ended, a call due minutes later ringing days later
    cal = book.calendar(policy)
    return max(dues[index + 1], cal.add(was_due, cal.between(dues[index], dues[index + 1])))


def snooze_ends(book: PolicyBook, policy: PolicyView, until: datetime) -> datetime:
    """When a step held by a snooze until `until` may go: then, or under a policy that counts
    business hours only, at the next business moment (a day's snooze from Friday evening ends
    on Saturday, when the policy's clock stands still: the card waits for Monday's shift)."""
    return book.calendar(policy).add(until, 0) if policy.business_hours_only else until


def _reopen(session: Session, waits: list[_Wait]) -> list[tuple[int, int, str]]:
    """Waits recorded and closed before that wait again: the reply that closed one was
    recalled, and then the question after it. The wait opens again from its message's
    time; its cancelled step is pending again (due now if its time has passed)."""
    if not waits:
        return []
    wanted = {(w.conversation_id, w.msgid) for w in waits}
    found = [
        row
        for row in session.execute(
            select(SlaWait.id, SlaWait.conversation_id, SlaWait.msgid).where(
                SlaWait.conversation_id.in_({c for c, _ in wanted}),
                SlaWait.msgid.in_({m for _, m in wanted}),
                SlaWait.closed_at.is_not(None),
            )
        )
        if (row.conversation_id, row.msgid) in wanted
    ]
    if not found:
        return []
    rows = [
        {"id": r.id, "closed_at": None, "close_reason": "", "response_s": None, "closed_by": ""}
        for r in found
    ]
    bulk.update_by_id(session, SlaWait, rows, ["closed_at", "close_reason", "response_s", "closed_by"])
    session.execute(
        update(SlaEscalation)
        .where(SlaEscalation.wait_id.in_([r.id for r in found]), SlaEscalation.status == "cancelled")
        .values(status="pending", note="reopened", claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return [(r.id, r.conversation_id, r.msgid) for r in found]


def _store_closed_waits(session: Session, waits: list[_Wait]) -> None:
    if not waits:
        return
    rows = [
        {
            "id": w.id,
            "closed_at": w.closed_at,
            "close_reason": w.close_reason,
            "response_s": w.response_s,
            "closed_by": w.closed_by,
        }
        for w in waits
    ]
    # (only someone's "no reply needed" names a person: ingest's replies leave the column be)
    by = ["closed_by"] if any(w.closed_by for w in waits) else []
    bulk.update_by_id(session, SlaWait, rows, ["closed_at", "close_reason", "response_s", *by])
    by_reason: dict[str, list[int]] = {}
    for w in waits:
        by_reason.setdefault(w.close_reason, []).append(w.id)
    for reason, wait_ids in by_reason.items():
        _cancel_pending(session, wait_ids, reason)


conversations.on_wait(record_waits)


def snooze(
    session: Session,
    conversation_id: int,
    until: datetime,
    now: datetime,
    by: str = "",
    by_id: int | None = None,
) -> int:
    """Someone (`by`, the name they were signed in as: the agent, a colleague, an admin;
    `by_id`, their person) asks for quiet until `until`: the wait's pending step moves later
    so that it fires no earlier; the steps after it keep their spacing from it (see
    `next_due`). Who and when are kept, for a supervisor who sees an agent's reminders held
    back. A shorter snooze than one in force replaces it only when the same person asks (they
    changed their mind); another's longer one stands, and nothing changes: 李四's 15 minutes
    had cut the admin's hour, the reminders coming back 45 minutes early. Returns how many
    steps moved (0 or 1)."""
    wait = session.scalar(
        select(SlaWait).where(SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None))
    )
    if wait is None or until <= now:
        return 0
    pending = list(
        session.scalars(
            select(SlaEscalation)
            .where(SlaEscalation.wait_id == wait.id, SlaEscalation.status == "pending")
            .order_by(SlaEscalation.due_at)
        )
    )
    shorter = wait.snoozed_until is not None and until < wait.snoozed_until
    if shorter and wait.snoozed_until > now and not _same_snoozer(wait, by, by_id):
        return 0
    wait.snoozed_until, wait.snoozed_by, wait.snoozed_by_id, wait.snoozed_at = until, by[:200], by_id, now
    if not pending:
        return 0
    book = PolicyBook(session)
    ends = snooze_ends(book, book.by_id(wait.policy_id), until)
    if pending[0].due_at >= ends:
        # a shorter snooze than the one before: the step comes back towards its schedule
        scheduled = _scheduled_due(session, wait, pending[0]) if shorter else None
        if scheduled is None or max(ends, scheduled) >= pending[0].due_at:
            return 0
        return _move_pending(session, {pending[0].id: max(ends, scheduled)})
    shift = ends - pending[0].due_at
    return _move_pending(session, {row.id: row.due_at + shift for row in pending})


def _same_snoozer(wait: SlaWait, by: str, by_id: int | None) -> bool:
    """Whether the snooze in force is this person's: by their person where both are known (two
    staff may share a name, and a renamed person's own snooze keeps their old one); a snooze
    kept before its person was (snoozed_by_id NULL) by the name it shows."""
    if wait.snoozed_by_id is not None and by_id is not None:
        return wait.snoozed_by_id == by_id
    return (wait.snoozed_by or "") == by[:200]


def _move_pending(session: Session, due: dict[int, datetime]) -> int:
    """Move these steps to their new due times, those still pending: a worker may have fired
    one since it was read (it keeps the time it was due; the step it scheduled after it waits
    for the snooze when it comes due, see siyu.sla.firing)."""
    rows = [{"id": step_id, "due_at": at, "claimed_until": None} for step_id, at in due.items()]
    return bulk.update_by_id(
        session, SlaEscalation, rows, ["due_at", "claimed_until"], unless_changed=("status", "pending")
    )


def ended_follows(session: Session, customer_ids: set[int]) -> dict[tuple[int, str], str]:
    """(customer id, staff userid) -> close reason, for these customers' ended follows."""
    if not customer_ids:
        return {}
    rows = session.execute(
        select(Follow.customer_id, Follow.staff_userid, Follow.status).where(
            bulk.among(session, Follow.customer_id, customer_ids), Follow.status.in_(list(FOLLOW_ENDED_AS))
        )
    )
    return {(c, u): FOLLOW_ENDED_AS[status] for c, u, status in rows}


@dataclass(frozen=True)
class Card:
    """An escalation card (its outbox row, which its link names): whom it went to, and the
    conversations it told of."""

    recipient: str
    conversations: frozenset[int]

    def sent_to(self, viewer) -> bool:
        return bool(self.recipient) and self.recipient == getattr(viewer, "staff_userid", None)

    def readable_by(self, viewer) -> bool:
        """Sent to the viewer, or to someone whose customers they may see (an admin: anyone; a
        supervisor: their team): another's card is not found, as another's conversation is."""
        return self.sent_to(viewer) or viewer.visible_staff is None or self.recipient in viewer.visible_staff


def find_card(session: Session, card_id: int) -> Card | None:
    """The escalation card `card_id`; None where there is no such card (an id no row can have
    included)."""
    if not 0 < card_id < 2**63:
        return None
    found = session.execute(
        select(OutboxMessage.recipient, OutboxMessage.payload).where(
            OutboxMessage.id == card_id, OutboxMessage.kind == "sla_notice"
        )
    ).first()
    if found is None:
        return None
    recipient, payload = found
    steps = payload.get("escalations") or []
    if not steps:
        return Card(recipient or payload.get("touser") or "", frozenset())
    told = select(SlaEscalation.conversation_id).where(bulk.among(session, SlaEscalation.id, steps))
    return Card(recipient or payload.get("touser") or "", frozenset(session.scalars(told)))


def card_wait_closed(session: Session, card_id: int, conversation_id: int) -> SlaWait | None:
    """The wait of this conversation that card `card_id` told of, once it has closed (the
    latest, where it told of several): a card opened after the customer was answered says so.
    None while one it told of is still open, or when it told of none here."""
    if not 0 < card_id < 2**63:
        return None
    payload = session.scalar(
        select(OutboxMessage.payload).where(OutboxMessage.id == card_id, OutboxMessage.kind == "sla_notice")
    )
    steps = (payload or {}).get("escalations") or []
    if not steps:
        return None
    told = session.scalars(
        select(SlaWait)
        .join(SlaEscalation, SlaEscalation.wait_id == SlaWait.id)
        .where(bulk.among(session, SlaEscalation.id, steps), SlaWait.conversation_id == conversation_id)
    ).all()
    if not told or any(w.closed_at is None for w in told):
        return None
    return max(told, key=lambda w: w.closed_at)


def waited_business_s(session: Session, conversation_id: int, now: datetime) -> float | None:
    """How long the conversation's open wait has waited in business time, where its policy
    counts that (as its cards tell it); None otherwise, or when no wait is open."""
    wait = session.execute(
        select(SlaWait.policy_id, SlaWait.started_at).where(
            SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None)
        )
    ).first()
    if wait is None:
        return None
    book = PolicyBook(session)
    return book.waited_business_s(book.by_id(wait.policy_id), wait.started_at, now)


def snoozed_until(session: Session, conversation_id: int, now: datetime) -> datetime | None:
    """Until when the conversation's open wait is snoozed (None: it is not, or no longer)."""
    until = session.scalar(
        select(SlaWait.snoozed_until).where(
            SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None)
        )
    )
    return until if until is not None and until > now else None


def reminders(session: Session, conversation_id: int) -> str | None:
    """How the reminders of the conversation's open wait stand: "to_come" (a step still to
    fire, which a snooze would hold), "all_sent" (every step fired), "not_sent" (none fired,
    none to come, and steps were skipped: due long ago, or nobody to tell), "off" (no step at
    all: the policy had reminders off when the wait began); None when no wait is open."""
    found = session.scalars(
        select(SlaEscalation.status)
        .select_from(SlaWait)
        .outerjoin(SlaEscalation, SlaEscalation.wait_id == SlaWait.id)
        .where(SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None))
    ).all()
    if not found:
        return None
    steps = set(found)  # (None alone: a wait with no step)
    if "pending" in steps:
        return "to_come"
    if "fired" in steps:
        return "all_sent"
    return "not_sent" if "skipped" in steps else "off"


def next_reminder_at(session: Session, conversation_id: int) -> datetime | None:
    """When the open wait's next step is due, where its snooze ends while its business-hours
    policy's clock stands still (a day off, a night), holding the step for the next shift;
    None otherwise. A step due after the snooze's end anyway (its own time had not come) is
    not held by business hours, and the chat must not say it is."""
    wait = session.execute(
        select(SlaWait.id, SlaWait.policy_id, SlaWait.snoozed_until).where(
            SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None)
        )
    ).first()
    if wait is None or wait.snoozed_until is None:
        return None
    book = PolicyBook(session)
    policy = book.by_id(wait.policy_id)
    if snooze_ends(book, policy, wait.snoozed_until) <= wait.snoozed_until:
        return None
    return session.scalar(
        select(func.min(SlaEscalation.due_at)).where(
            SlaEscalation.wait_id == wait.id, SlaEscalation.status == "pending"
        )
    )


def _scheduled_due(session: Session, wait: SlaWait, step: SlaEscalation) -> datetime | None:
    """When a pending step would be due had it never been snoozed (after the step before it,
    as it was due); None when the policy no longer has that step."""
    book = PolicyBook(session)
    policy = book.by_id(wait.policy_id)
    if step.step >= len(policy.steps):
        return None
    if step.step == 0:
        return book.due_times(policy, wait.started_at)[0]
    before = session.scalar(
        select(SlaEscalation.due_at).where(
            SlaEscalation.wait_id == wait.id, SlaEscalation.step == step.step - 1
        )
    )
    if before is None:
        return book.due_times(policy, wait.started_at)[step.step]
    return next_due(book, policy, wait.started_at, step.step - 1, before)


# ------------------------------------------------------------------------ the SLA board


def day_bounds(session: Session, now: datetime, day: date | None = None) -> tuple[datetime, datetime]:
    """[start, end) of a local day (default: today) in the tenant's time zone, in UTC."""
    tz = ZoneInfo(tenant_timezone(session))
    day = day or now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


# Longest wait first; the wait's id orders those begun at the same moment, so that a cursor
# names one place in the list: waits that close or begin while a client pages move no other.
WAITING_ORDER = (SortKey(SlaWait.started_at), SortKey(SlaWait.id))
WAITING_CURSOR = (datetime, int)


@dataclass
class WaitingPage:
    rows: list[dict]
    next: str | None  # the cursors of the pages after and before it (None at either end)
    prev: str | None


def _open_waits(staff_userids: Sequence[str] | None):
    w = SlaWait
    q = (
        # columns, not SlaWait objects: a tenant with thousands waiting built one each per refresh
        select(w.id, w.conversation_id, w.staff_userid, w.policy_id, w.started_at, w.breached_step)
        .add_columns(w.snoozed_until, w.snoozed_by, w.snoozed_at, Customer.name)
        # named by the chat's customer: one who became known after the wait began is linked there
        .outerjoin(Conversation, Conversation.id == SlaWait.conversation_id)
        .outerjoin(Customer, Customer.id == func.coalesce(Conversation.customer_id, SlaWait.customer_id))
        .where(SlaWait.closed_at.is_(None))
    )
    return q if staff_userids is None else q.where(SlaWait.staff_userid.in_(list(staff_userids)))


def waiting_now(session: Session, now: datetime, staff_userids: Sequence[str] | None = None) -> list[dict]:
    """Who is waiting right now, longest first: all of them (waiting_page lists some)."""
    rows = session.execute(_open_waits(staff_userids).order_by(*paging.order_by(WAITING_ORDER))).all()
    return _shape_waiting(session, rows, now)


def waiting_page(
    session: Session,
    now: datetime,
    staff_userids: Sequence[str] | None,
    limit: int,
    after: str | None = None,
    before: str | None = None,
) -> WaitingPage:
    """`limit` of who is waiting right now, longest first: the first ones, or those after
    (before) a cursor of this list; BadCursor for one it did not hand out."""
    got = paging.take(
        session, _open_waits(staff_userids), WAITING_ORDER, WAITING_CURSOR, 1, limit, after, before
    )
    rows = got.rows

    def cursor(w) -> str:
        return paging.encode((w.started_at, w.id))

    return WaitingPage(
        _shape_waiting(session, rows, now),
        next=cursor(rows[-1]) if rows and got.has_next else None,
        prev=cursor(rows[0]) if rows and got.has_prev else None,
    )


def waiting_by_staff(session: Session, staff_userids: Sequence[str] | None = None) -> dict[str, int]:
    """How many customers wait now per staff member: all of them, counted by the database."""
    q = select(SlaWait.staff_userid, func.count()).where(SlaWait.closed_at.is_(None))
    if staff_userids is not None:
        q = q.where(SlaWait.staff_userid.in_(list(staff_userids)))
    return dict(session.execute(q.group_by(SlaWait.staff_userid)).all())


def _shape_waiting(session: Session, rows: Sequence, now: datetime) -> list[dict]:
    """Open waits (_open_waits' rows) as the board lists them, each with its next step and,
    under a policy that counts business hours only, its wait by that clock."""
    # each wait's next step (a wait has one pending at a time)
    pending = {
        wait_id: (due, action, target, note)
        for wait_id, due, action, target, note in session.execute(
            select(SlaEscalation.wait_id, SlaEscalation.due_at, SlaEscalation.action, SlaEscalation.target)
            .add_columns(SlaEscalation.note)
            .where(bulk.among(session, SlaEscalation.wait_id, [w.id for w in rows]))
            .where(SlaEscalation.status == "pending")
        )
    }
    book = PolicyBook(session)
    timezone = tenant_timezone(session)
    out = []
    for w in rows:
        policy = book.by_id(w.policy_id)
        due, action, target, note = pending.get(w.id, (None, None, None, None))
        # a call held back by the policy's quiet hours (firing notes it so), or one that will be
        # when it comes due: the board gives the time it will be placed, and says why
        quiet = note == QUIET_HOURS and not calls_never_ring(policy)
        if not quiet and action == "voice_call" and due is not None and not calls_never_ring(policy):
            # (a call overdue but not yet fired is held by the moment firing gets to it)
            ends = call_held_until(policy, max(due, now), timezone, book.calendar)
            if ends is not None:
                due, quiet = ends, True
        out.append(
            {
                "conversation_id": w.conversation_id,
                "customer": w.name or "",
                "staff_userid": w.staff_userid,
                "since": w.started_at,
                "waited_s": max(0.0, (now - w.started_at).total_seconds()),
                # by the policy's own clock, where it counts business hours only
                "waited_business_s": book.waited_business_s(policy, w.started_at, now),
                "breached_step": w.breached_step,
                "next_step_at": due,
                "next_step_action": action,
                "next_step_target": target,
                # who a leader or contact step would reach, by the policy (the board names them)
                "escalation_contact": policy.escalation_contact,
                "next_step_after_quiet_hours": quiet,
                "snoozed_until": w.snoozed_until,
                "snoozed_by": w.snoozed_by,
                "snoozed_at": w.snoozed_at,
            }
        )
    return out


def call_held_until(
    policy: PolicyView, at: datetime, timezone: str, calendar_of: Callable[[PolicyView], BusinessCalendar]
) -> datetime | None:
    """When a call that would go at `at` may be placed, if the policy's quiet hours hold it
    back (under business hours, once the business clock runs again: not on a Saturday morning
    when the clock runs Monday to Friday); None when it may go at `at`. Firing holds calls by
    it, and the board shows when a held call will go."""
    ends = quiet_until(at, policy.quiet_hours, timezone)
    if ends is not None and policy.business_hours_only:
        ends = calendar_of(policy).add(ends, 0)
    return ends


def breaches(session: Session, start: datetime, end: datetime, agents: list[str] | None = None) -> dict:
    """Steps fired in [start, end) (on the waits of `agents`, if given): totals per step and
    action (a department's policy may do another thing at a step), and per agent."""
    q = (
        select(SlaEscalation.step, SlaEscalation.action, SlaEscalation.agent_userid, func.count())
        .where(
            SlaEscalation.status == "fired",
            SlaEscalation.fired_at >= start,
            SlaEscalation.fired_at < end,
        )
        .group_by(SlaEscalation.step, SlaEscalation.action, SlaEscalation.agent_userid)
    )
    if agents is not None:
        q = q.where(SlaEscalation.agent_userid.in_(agents))
    by_step: dict[tuple[int, str], dict] = {}
    by_agent: dict[str, int] = {}
    for step, action, agent, n in session.execute(q):
        entry = by_step.setdefault((step, action), {"step": step, "action": action, "count": 0})
        entry["count"] += n
        by_agent[agent] = by_agent.get(agent, 0) + n
    return {
        "by_step": [by_step[k] for k in sorted(by_step)],
        "by_agent": by_agent,
        "total": sum(by_agent.values()),
    }


def first_response(session: Session, start: datetime, end: datetime) -> dict:
    """First-response times of waits that began in [start, end) and were answered."""
    rows = session.execute(
        select(SlaWait.staff_userid, SlaWait.response_s).where(
            SlaWait.started_at >= start,
            SlaWait.started_at < end,
            SlaWait.close_reason == "replied",
            SlaWait.response_s.is_not(None),
        )
    ).all()

    per: dict[str, list[float]] = {}
    for userid, value in rows:
        per.setdefault(userid, []).append(value)
    return {
        "all": response_summary([v for _, v in rows]),
        "by_agent": {u: response_summary(v) for u, v in per.items()},
    }


def response_summary(values: list[float]) -> dict:
    """Count, mean, median and p90 of response times in seconds."""
    if not values:
        return {"count": 0, "mean_s": None, "median_s": None, "p90_s": None}
    ordered = sorted(values)
    return {
        "count": len(values),
        "mean_s": statistics.fmean(values),
        "median_s": statistics.median(values),
        # nearest rank: the least value that 90 % of them do not exceed (of 10, the 9th)
        "p90_s": ordered[(9 * len(ordered) + 9) // 10 - 1],
    }


# How firing notes a step it could tell nobody about, one it skipped as due too long ago (more
# than the policy's stale_after_s), and a call it holds back (siyu.sla.firing).
NOBODY_TO_REACH = "nobody to reach"
STALE = "stale: due long ago"
QUIET_HOURS = "quiet hours"
# Why a call was not placed that is no trouble: nobody waited any more (and how calls said so
# before this was written in Chinese).
CALL_NOT_NEEDED = "拨打前客户都已得到回复或暂缓提醒"
CALLS_NOT_NEEDED = (CALL_NOT_NEEDED, "拨打前客户都已得到回复", "answered before the call")
# Why the board says a call still to ring will not: its wait was snoozed since the step fired.
CALL_SNOOZED_OFF = "已暂缓提醒，电话不会再为这位客户打"
# Why the board says a card did not go for a step: its wait was snoozed before the card was built.
CARD_SNOOZED_OFF = "已暂缓提醒，卡片没有提这位客户"
# A card's payload key: the waits it spoke of when it was built (siyu.sla.tasks._notices).
CARD_TOLD = "told_waits"
# Why a call did not ring and never will: its policy lets no call ring (the call is recorded
# so when it comes due, siyu.sla.tasks._call_hold; one still queued reads so till then).
CALL_NEVER = "策略的班次都在免打扰时段内，电话永远不会拨打：请调整班次或免打扰时段"


def delivery_problems(
    session: Session,
    start: datetime,
    end: datetime,
    recipients: Sequence[str] | None = None,
    newest: int | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Escalation cards and calls of [start, end) that have not reached their person: cards
    WeCom refused so far (being retried, with the error) or gave up on, calls that failed or
    were skipped (voice calls off, no number) or will never ring (the policy's shifts all lie
    in its quiet hours), steps that reached nobody. Newest first;
    `recipients` limits them, `newest` lists only that many; with how many there are of each
    status (all of them: an import of months of chats skips thousands of steps at once)."""
    o, c, e = OutboxMessage, SlaCall, SlaEscalation
    cards = select(o.recipient, o.payload, o.created_at, o.status, o.last_error, o.attempts, o.due_at).where(
        o.kind == "sla_notice",
        o.created_at >= start,
        o.created_at < end,
        # the unsent rows' own index (ix_outbox_unsent): the sent ones are nearly all of them
        text(UNSENT),  # as the index says it, literally (SQLite matches a partial index so)
        # refused at least once (a claim counts an attempt before the answer comes)
        or_(o.status != "pending", o.last_error != ""),
    )
    calls = select(c.callee_userid, c.created_at, c.status, c.error).where(
        c.created_at >= start,
        c.created_at < end,
        # never: its policy lets no call ring, which only the admin can change
        c.status.in_(("skipped", "failed", "never")),
        c.error.not_in(CALLS_NOT_NEEDED),
    )
    # calls the voice provider refused so far, being retried by the outbox (with its answer)
    retried = select(o.recipient, o.payload, o.created_at, o.last_error, o.attempts, o.due_at).where(
        o.kind == "sla_call",
        o.created_at >= start,
        o.created_at < end,
        text(UNSENT),
        o.status == "pending",
        o.last_error != "",
    )
    # steps that found nobody to tell (a leader step for an agent with no leader and no
    # escalation contact in the policy), and steps skipped as due too long ago (the archive or
    # the worker was down, the messages were imported: the customer waited past them all the
    # same): not sent at all
    stale = e.note.startswith(STALE)
    unreached = select(e.agent_userid, e.fired_at, e.due_at, e.step, e.target, e.note).where(
        e.fired_at >= start,
        e.fired_at < end,
        e.status == "skipped",
        or_(e.note.startswith(NOBODY_TO_REACH), stale),
    )
    if recipients is not None:
        cards = cards.where(o.recipient.in_(list(recipients)))
        calls = calls.where(c.callee_userid.in_(list(recipients)))
        retried = retried.where(o.recipient.in_(list(recipients)))
        unreached = unreached.where(e.agent_userid.in_(list(recipients)))

    def rows(q, at):
        return session.execute(q if newest is None else q.order_by(at.desc()).limit(newest))

    counts: dict[str, int] = {}

    def count(q, by, name=lambda key: key) -> None:
        for key, n in session.execute(q.with_only_columns(by, func.count()).group_by(by)):
            counts[name(key)] = counts.get(name(key), 0) + n

    out = [
        _problem(
            "card",
            m.recipient or m.payload.get("touser", ""),
            m.created_at,
            "retrying" if m.status == "pending" else "given_up",
            m.last_error,
            attempts=m.attempts,
            next_try_at=m.due_at if m.status == "pending" else None,
        )
        for m in rows(cards, o.created_at)
    ]
    count(cards, o.status, lambda status: "retrying" if status == "pending" else "given_up")
    out += [
        _problem("call", r.callee_userid, r.created_at, r.status, r.error) for r in rows(calls, c.created_at)
    ]
    count(calls, c.status)
    out += [
        _problem(
            "call",
            m.recipient or m.payload.get("callee", ""),
            m.created_at,
            "retrying",
            m.last_error,
            attempts=m.attempts,
            next_try_at=m.due_at,
        )
        for m in rows(retried, o.created_at)
    ]
    count(retried, o.kind, lambda _: "retrying")
    timezone = ZoneInfo(tenant_timezone(session))
    for r in rows(unreached, e.fired_at):
        is_stale = r.note.startswith(STALE)
        why = _stale_reason(r, timezone) if is_stale else _nobody_reason(r)
        out.append(
            _problem(
                "step", r.agent_userid, r.fired_at, "stale" if is_stale else "nobody", why, target=r.target
            )
        )
    count(unreached.where(stale), e.status, lambda _: "stale")
    count(unreached.where(~stale), e.status, lambda _: "nobody")
    out.sort(key=lambda d: d["at"], reverse=True)
    return (out if newest is None else out[:newest]), counts


def _stale_reason(e, timezone: ZoneInfo) -> str:
    late = wait_text((e.fired_at - e.due_at).total_seconds()) if e.fired_at else ""
    due = e.due_at.astimezone(timezone).strftime("%m-%d %H:%M")
    return (
        f"第 {e.step + 1} 步 {due} 到期，{late}后才轮到（超过策略的过期时限），跳过未发："
        "那段时间归档没有拉取或后台任务停了，或消息是后来导入的 / skipped: due long ago"
    )


_CONTACT_IS_AGENT = "; escalation contact is the agent"  # (not told of their own customer as a leader)
_AGENT_LEFT = "; the agent left"


def nobody_note(session: Session, target: str, policy: PolicyView, agent_userid: str = "") -> str:
    """Why a step reached nobody, as its row keeps it (the board's list of steps not delivered)."""
    note = f"{NOBODY_TO_REACH} for target {target}"
    contact = policy.escalation_contact
    if target == "agent" and agent_userid and _has_left(session, agent_userid):
        note += _AGENT_LEFT
    elif contact and contact == agent_userid:
        note += _CONTACT_IS_AGENT
    elif contact and not still_with_the_corp(session, contact):
        note += f"; escalation contact {contact} left"
    return note[:500]


_CONTACT_LEFT = re.compile(r"; escalation contact (.+) left$")


def _nobody_reason(e) -> str:
    left = _CONTACT_LEFT.search(e.note or "")
    gone = f"策略的升级联系人 {left[1]} 已不在职" if left else ""
    if (e.note or "").endswith(_CONTACT_IS_AGENT):
        gone = "策略的升级联系人就是该成员本人"
    if (e.note or "").endswith(_AGENT_LEFT):
        gone = "该成员已离职或停用"
    if e.target == "leader":
        why = f"该成员没有直属上级，主部门也没有负责人，{gone or '策略里也没有设升级联系人'}"
    else:
        why = gone or "策略里没有设升级联系人"
    return f"第 {e.step + 1} 步没有可通知的人：{why} / nobody to tell ({e.target})"


def _problem(
    kind: str,
    recipient: str,
    at: datetime,
    status: str,
    error: str,
    attempts: int | None = None,
    next_try_at: datetime | None = None,
    target: str = "",
) -> dict:
    """One row of delivery_problems (the SLA board's "did not reach them"). For a step that
    found nobody to tell (kind "step"), `recipient` is the agent whose customer waited and
    `target` whom the step was for."""
    return {
        "kind": kind,
        "recipient": recipient,
        "target": target,
        "at": at,
        "status": status,
        "attempts": attempts,
        "next_try_at": next_try_at,
        "error": error,
    }


def deliveries(session: Session, fired: Sequence) -> dict[int, tuple[str, str]]:
    """How far each fired step got: (sent | queued | retrying | given_up | skipped | placed |
    failed | never | covered | snoozed | ended, the error) by escalation id, from the card or
    call that carried it (a
    step merged into another's card, or covered by a call still queued when it fired, follows
    that one; one that fired after the covering call was placed, within the cooldown, is
    "covered": that call did not speak of its customer). `fired`: SlaEscalation rows, or result
    rows of their id, wait_id, action, recipient, fired_at and note."""
    card_of: dict[int, int | str] = {}
    call_of: dict[int, int] = {}
    for e in fired:
        if e.note.startswith("merged into outbox "):
            card_of[e.id] = int(e.note.rsplit(" ", 1)[1])
        elif e.note.startswith("covered by call "):
            call_of[e.id] = int(e.note.rsplit(" ", 1)[1])
        elif e.action == "app_message":
            card_of[e.id] = f"sla-notice:{e.recipient}:{e.id}"
    ids = [v for v in card_of.values() if isinstance(v, int)]
    keys = [v for v in card_of.values() if isinstance(v, str)]
    cards = {}
    # the waits each card spoke of, by its id and dedupe key (None: not built yet), and each call,
    # by ("call", its key as call_of and placed_at have it) (None: not planned, or before calls kept them)
    told: dict = {}
    unknown: dict[int, str] = {}  # sent cards that kept no waits: their dedupe keys by id
    if card_of:
        for row in session.execute(
            select(OutboxMessage.id, OutboxMessage.dedupe_key, OutboxMessage.status, OutboxMessage.attempts)
            .add_columns(OutboxMessage.last_error, OutboxMessage.payload[CARD_TOLD].label("told"))
            .where(
                or_(
                    bulk.among(session, OutboxMessage.id, ids),
                    bulk.among(session, OutboxMessage.dedupe_key, keys),
                )
            )
        ):
            state = row.status
            if state == "pending":
                state = "retrying" if row.last_error else "queued"
            elif state in ("dead", "failed"):
                state = "given_up"
            cards[row.id] = cards[row.dedupe_key] = (state, row.last_error)
            told[row.id] = told[row.dedupe_key] = row.told
            if row.told is None and state == "sent":
                unknown[row.id] = row.dedupe_key
    if unknown:  # sent before cards kept their waits: from what they said, where that tells
        for card_id, waits in told_by_text(session, unknown).items():
            told[card_id] = told[unknown[card_id]] = waits
    calls = {}
    placed_at: dict = {}  # by call id, and by ("step", its own step's id)
    wanted_calls = [e.id for e in fired if e.action == "voice_call" and e.id not in call_of]
    if wanted_calls or call_of:
        for call in session.scalars(
            select(SlaCall).where(
                or_(
                    bulk.among(session, SlaCall.escalation_id, wanted_calls),
                    bulk.among(session, SlaCall.id, call_of.values()),
                )
            )
        ):
            calls[call.id] = (call.status, call.error)
            placed_at[call.id] = call.placed_at
            told[("call", call.id)] = call.told_waits
            if call.escalation_id is not None:
                calls[("step", call.escalation_id)] = (call.status, call.error)
                placed_at[("step", call.escalation_id)] = call.placed_at
                told[("call", ("step", call.escalation_id))] = call.told_waits
    # a call still queued that the voice provider refused so far: being retried, and why
    queued = [
        e.id for e in fired if e.action == "voice_call" and calls.get(("step", e.id), ("",))[0] == "queued"
    ]
    if queued:
        for key, last_error in session.execute(
            select(OutboxMessage.dedupe_key, OutboxMessage.last_error).where(
                bulk.among(session, OutboxMessage.dedupe_key, [f"sla-call:{i}" for i in queued]),
                OutboxMessage.status == "pending",
                OutboxMessage.last_error != "",
            )
        ):
            calls[("step", int(key.rsplit(":", 1)[1]))] = ("retrying", last_error)
    out = {}
    for e in fired:
        if e.id in card_of:
            out[e.id] = cards.get(card_of[e.id], ("queued", ""))
        elif e.id in call_of:
            status, error = calls.get(call_of[e.id], ("queued", ""))
            rang = placed_at.get(call_of[e.id])
            # a call placed before this step fired (within the cooldown) did not speak of its
            # customer, and nobody rang again; one still queued then counted it when placed
            later = rang is not None and e.fired_at is not None and e.fired_at > rang
            out[e.id] = ("covered", "") if status == "placed" and later else (status, error)
        elif e.action == "voice_call":
            out[e.id] = calls.get(("step", e.id), ("queued", ""))
    _not_told(session, fired, out, call_of, placed_at, card_of, told)
    return out


def _not_told(
    session: Session, fired: Sequence, out: dict, call_of: dict, placed_at: dict, card_of: dict, told: dict
) -> None:
    """A card or call speaks only of the waits still open and not snoozed since their latest
    step on it fired when it is built or rings (left_out; siyu.sla.tasks._open_entries_many,
    _call_plan): a step whose wait it left out reads so (snoozed | ended), not as the card's
    sent / skipped / queued or the call's placed / queued / skipped. Each keeps the waits it
    spoke of (CARD_TOLD in a card's payload, SlaCall.told_waits; one that found none to speak of
    was skipped), so that a snooze made after it went changes nothing; one still to go is read
    ahead by the same rule, as soon as it is known (a snooze ending before it goes does not bring
    the wait back). Calls placed before they kept theirs are read from the dates. `told` holds
    the cards' by their id and dedupe key, the calls' by ("call", their key in call_of's terms)."""
    steps = [e for e in fired if e.action == "voice_call" and out.get(e.id, ("",))[0] != "covered"]
    cards = [e for e in fired if e.id in card_of]
    if not steps and not cards:
        return
    waits = {
        w.id: w
        for w in session.execute(
            select(SlaWait.id, SlaWait.snoozed_at, SlaWait.closed_at).where(
                bulk.among(session, SlaWait.id, {e.wait_id for e in steps + cards})
            )
        )
    }
    carrier = {e.id: card_of[e.id] for e in cards}
    carrier.update({e.id: ("call", call_of.get(e.id, ("step", e.id))) for e in steps})
    # a wait's latest step on each card or call: one that fired after a snooze is a reminder anew
    latest: dict = {}
    for e in steps + cards:
        key = (carrier[e.id], e.wait_id)
        if e.fired_at is not None and (key not in latest or e.fired_at > latest[key]):
            latest[key] = e.fired_at
    for e in cards:
        w, (status, _), said = waits.get(e.wait_id), out[e.id], told.get(carrier[e.id])
        if w is None:  # (left off or not, for a reason its wait no longer tells)
            continue
        snoozed = snoozed_since_fired(w.snoozed_at, latest.get((carrier[e.id], e.wait_id)))
        if status == "skipped" or (said is not None and e.wait_id not in said):
            out[e.id] = ("snoozed", CARD_SNOOZED_OFF) if snoozed else ("ended", "")
        elif status == "queued" and said is None and (snoozed or w.closed_at is not None):
            out[e.id] = ("snoozed", CARD_SNOOZED_OFF) if snoozed else ("ended", "")  # not built yet
    for e in steps:
        w = waits.get(e.wait_id)
        status, error = out[e.id]
        # rang, still to ring, or not placed as nobody waited: not a call that failed
        if w is None or not (status in ("placed", "queued", "retrying") or error in CALLS_NOT_NEEDED):
            continue
        snoozed = snoozed_since_fired(w.snoozed_at, latest.get((carrier[e.id], e.wait_id)))
        said = told.get(carrier[e.id])
        if status == "placed" and said is not None:  # it kept whom it spoke of
            if e.wait_id in said:
                continue
            rang = None  # (any snooze since the step fired was before it rang)
        else:
            rang = placed_at.get(call_of.get(e.id, ("step", e.id)))
        if snoozed and (rang is None or w.snoozed_at <= rang):
            out[e.id] = ("snoozed", CALL_SNOOZED_OFF)
        elif w.closed_at is not None and (rang is None or w.closed_at <= rang):
            out[e.id] = ("ended", "")


def retime_held_calls(session: Session, now: datetime) -> int:
    """After quiet hours or a policy's clock changed: each call still to ring (never tried yet:
    one being retried keeps its backoff, and is checked when it comes due) due when quiet hours
    now let it ring, later or sooner, and at once if they no longer hold it. The sender holds a
    call only when it finds it due: shortened quiet hours left a call due at the old 08:00 while
    the board, reading the new ones, said it had gone. Returns how many moved."""
    o = OutboxMessage
    rows = list(
        session.execute(
            select(o.id, o.due_at, o.payload).where(
                o.kind == "sla_call", text(UNSENT), o.status == "pending", o.last_error == ""
            )
        )
    )
    if not rows:
        return 0
    steps = {r.payload["escalations"][0] for r in rows if r.payload.get("escalations")}
    policy_of = dict(
        session.execute(
            select(SlaEscalation.id, SlaWait.policy_id)
            .join(SlaWait, SlaWait.id == SlaEscalation.wait_id)
            .where(bulk.among(session, SlaEscalation.id, steps))
        ).all()
    )
    book, timezone = PolicyBook(session), tenant_timezone(session)
    # "at once" on the outbox's clock (the wall's, which Siyu's follows but for a demo's or a
    # test's): the sooner of the two, so neither leaves it waiting
    at_once = min(now, datetime.now(UTC))
    moved = []
    for r in rows:
        step = (r.payload.get("escalations") or [None])[0]
        held = call_held_until(book.by_id(policy_of.get(step)), now, timezone, book.calendar)
        due = held if held is not None else min(r.due_at, at_once)
        if due != r.due_at:
            moved.append({"id": r.id, "due_at": due})
    # a worker may have claimed one since: it keeps what the worker records
    bulk.update_by_id(session, o, moved, ["due_at"], unless_changed=("status", "pending"))
    return len(moved)


def held_calls(session: Session, queued: Sequence, now: datetime) -> dict[int, datetime]:
    """When the calls still to ring of these fired steps will ring, for those quiet hours hold
    back now (the outbox places each when they end)."""
    calls = [e for e in queued if e.action == "voice_call"]
    if not calls:
        return {}
    policy_of, snoozed_at = {}, {}
    for wait_id, policy_id, snoozed in session.execute(
        select(SlaWait.id, SlaWait.policy_id, SlaWait.snoozed_at).where(
            bulk.among(session, SlaWait.id, {e.wait_id for e in calls})
        )
    ):
        policy_of[wait_id], snoozed_at[wait_id] = policy_id, snoozed
    # snoozed while its call waited: that call will not ring (siyu.sla.tasks._call_plan)
    calls = [e for e in calls if not snoozed_since_fired(snoozed_at.get(e.wait_id), e.fired_at)]
    book, timezone = PolicyBook(session), tenant_timezone(session)
    # nor one whose policy lets no call ring (saved before that was refused): no time to promise
    calls = [e for e in calls if not calls_never_ring(book.by_id(policy_of.get(e.wait_id)))]
    until = {  # the same for every call under one policy: worked out once a policy
        policy_id: call_held_until(book.by_id(policy_id), now, timezone, book.calendar)
        for policy_id in {policy_of.get(e.wait_id) for e in calls}
    }
    held = {e.id: until[policy_of.get(e.wait_id)] for e in calls}
    return {k: v for k, v in held.items() if v is not None}


def calls_never_ring(policy: PolicyView) -> bool:
    """Whether the policy's quiet hours hold every moment its business clock runs: a call waits
    for a shift they hold again, for ever (refused on save: _calls_never_placed)."""
    return bool(policy.business_hours_only) and shifts_all_quiet(policy.shifts, policy.quiet_hours)


def calls_never_placed(session: Session, queued: Sequence) -> set[int]:
    """Of these fired steps whose call is still to ring, those whose policy lets no call ring:
    the sender records such a call as never placed when it comes due (one queued before it
    did so may be hours from that)."""
    calls = [e for e in queued if e.action == "voice_call"]
    if not calls:
        return set()
    wait_ids = {e.wait_id for e in calls}
    waits = select(SlaWait.id, SlaWait.policy_id).where(bulk.among(session, SlaWait.id, wait_ids))
    policy_of = dict(session.execute(waits).all())
    book = PolicyBook(session)
    return {e.id for e in calls if calls_never_ring(book.by_id(policy_of.get(e.wait_id)))}


def snoozed_since_fired(snoozed_at: datetime | None, fired_at: datetime | None) -> bool:
    """Whether a wait was snoozed after its step fired: someone saw the reminder and held it
    back, so a card or call of that step still to go (merged, paced, held by quiet hours, or to
    be retried) does not speak of it, even where the snooze ended first (15 minutes at 06:35,
    the call held till 08:00): the reminders come back when the snooze ends as the steps still
    pending, not as this one arriving late. `snoozed_at` is the latest snooze's: a later one is
    later still, so the answer holds however often the wait was snoozed since."""
    return snoozed_at is not None and fired_at is not None and snoozed_at >= fired_at


def left_out(
    snoozed_until: datetime | None, snoozed_at: datetime | None, fired_at: datetime | None, now: datetime
) -> bool:
    """Whether a card or call made at `now` leaves out an open wait whose latest step on it fired
    at `fired_at` (None: the wait is on it as another of the callee's): the wait is snoozed
    now, or was snoozed since that step fired (snoozed_since_fired). One rule for the card
    builder and the call planner (siyu.sla.tasks), which the board reads ahead (deliveries)."""
    return (snoozed_until is not None and snoozed_until > now) or snoozed_since_fired(snoozed_at, fired_at)


def calls_held(session: Session, now: datetime, agents: Sequence[str] | None = None) -> list[datetime]:
    """When each call quiet hours hold back now will ring (of the open waits of `agents`, if
    given), soonest first: their steps fired, and count among the day's breaches, but nobody
    has been rung yet. One call speaks of all its callee's waits: the steps it covers
    (firing._queue_call) are that call, not calls of their own."""
    o, e = OutboxMessage, SlaEscalation
    # read from the calls still to ring (the unsent rows' own index, as it says it): not from
    # the fired steps of every open wait, thousands on a busy evening for a few dozen calls
    waiting = session.scalars(
        select(o.payload).where(o.kind == "sla_call", text(UNSENT), o.status == "pending", o.last_error == "")
    )
    call_of = {step: i for i, payload in enumerate(waiting) for step in payload.get("escalations", [])}
    if not call_of:
        return []
    steps = (
        select(e.id, e.wait_id, e.action, e.fired_at)
        .join(SlaWait, SlaWait.id == e.wait_id)
        .where(bulk.among(session, e.id, list(call_of)), SlaWait.closed_at.is_(None), e.status == "fired")
    )
    if agents is not None:
        steps = steps.where(e.agent_userid.in_(list(agents)))
    when: dict[int, datetime] = {}
    for step, at in held_calls(session, list(session.execute(steps)), now).items():
        when[call_of[step]] = min(at, when.get(call_of[step], at))
    return sorted(when.values())


def _open_wait_calls(session: Session, conversation_id: int) -> tuple[list[SlaEscalation], dict]:
    """The call steps that fired for the conversation's open wait, and how far each got."""
    calls = list(
        session.scalars(
            select(SlaEscalation)
            .join(SlaWait, SlaWait.id == SlaEscalation.wait_id)
            .where(
                SlaEscalation.conversation_id == conversation_id,
                SlaWait.closed_at.is_(None),
                SlaEscalation.status == "fired",
                SlaEscalation.action == "voice_call",
            )
        )
    )
    return calls, deliveries(session, calls) if calls else {}


def held_call(session: Session, conversation_id: int, now: datetime) -> datetime | None:
    """When the call about the conversation's open wait will ring, where its step fired in
    quiet hours and the call waits in the outbox for them to end; None when there is none."""
    calls, reached = _open_wait_calls(session, conversation_id)
    held = held_calls(session, [e for e in calls if reached.get(e.id, ("",))[0] == "queued"], now)
    return max(held.values(), default=None)


def call_never(session: Session, conversation_id: int) -> PolicyView | None:
    """The policy of the conversation's open wait where a call step of it fired whose call
    never rings: the policy's shifts all lie in its quiet hours (the call recorded so, or
    still queued under such a policy); None otherwise. The chat says so, and what to change,
    rather than that every reminder went out."""
    calls, reached = _open_wait_calls(session, conversation_id)
    queued = [e for e in calls if reached.get(e.id, ("",))[0] == "queued"]
    never = {e.id for e in calls if reached.get(e.id, ("",))[0] == "never"}
    never |= calls_never_placed(session, queued)
    if not never:
        return None
    wait_id = next(e.wait_id for e in calls if e.id in never)
    return PolicyBook(session).by_id(session.scalar(select(SlaWait.policy_id).where(SlaWait.id == wait_id)))


def board(session: Session, now: datetime) -> dict:
    """The SLA board: who waits now (longest first), today's breaches and response times."""
    start, end = day_bounds(session, now)
    return {
        "waiting": waiting_now(session, now),
        "breaches_today": breaches(session, start, end),
        "first_response_today": first_response(session, start, end),
    }
