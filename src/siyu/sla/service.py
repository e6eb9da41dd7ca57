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

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from siyu.conversations import service as conversations
from siyu.conversations.models import Conversation, Message
from siyu.customers.models import Follow
from siyu.customers.service import FOLLOW_ENDED_AS, leader_of, leaders_of
from siyu.db import bulk, locks
from siyu.db.renames import rename_in
from siyu.notify.models import UNSENT, OutboxMessage
from siyu.sla.calendar import (
    BusinessCalendar,
    check_day,
    parse_hhmm,
    parse_shifts,
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
from siyu.sla.told import CARD_TOLD
from siyu.tenancy import timezones
from siyu.tenancy.models import Department, Staff, Tenant
from siyu.tenancy.queries import members_left, still_with_the_corp
from siyu.tenancy.service import renames_as_read

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
    tenant_id = session.info.get("siyu_tenant_id")
    locks.hold(session, f"siyu.sla_policy:{tenant_id}:{department_wecom_id}", "sla_policies")
    # a save times open waits by the special dates: none changed meanwhile (hold_calendar);
    # shared, so that two departments' policies are still saved at the same time, unless it
    # changes the dates too (`dates`: the API's PUT with calendar_days), taken after the
    # policy's lock as everywhere, so that no two saves wait on each other in a cycle
    locks.hold(session, _calendar_lock(session), "sla_calendar_days", shared=not dates)


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
    was = {name: getattr(policy, name) for name in fields} if policy is not None else None
    if policy is None:
        policy = SlaPolicy(department_wecom_id=department_wecom_id)
        session.add(policy)
    for name, value in fields.items():
        setattr(policy, name, value)
    _check_workable(policy)
    # A save that changes nothing (a PUT of what GET gave, a form saved as it was drawn) leaves
    # who saved it last and when, as a setting saved unchanged does (setting_changes.record):
    # the 412 and a stale form name whoever changed something, the page's 上次保存 says when.
    if was is None or any(getattr(policy, name) != value for name, value in was.items()):
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
    if was is not None and was.get("enabled") is False and policy.enabled:
        _resume(session, policy, now)
    retime_held_calls(session, now)
    return policy


def _resume(session: Session, policy: SlaPolicy, now: datetime) -> None:
    """Reminders switched back on: each open wait of the policy with no pending step (begun while
    they were off, or whose step fired then and scheduled none after it) gets its next step, due
    on the policy's schedule from the wait's start: overdue, it goes at once, unless older than
    the policy's stale limit (过期不发: days of waits carded at once). Those customers had waited
    for ever, nobody told."""
    book = PolicyBook(session)
    _give_next_steps(session, book, book.by_id(policy.id), SlaWait.policy_id == policy.id, now)


def _give_next_steps(session: Session, book: PolicyBook, view: PolicyView, which, now: datetime) -> None:
    """Each open wait `which` selects that has no pending step gets its next step under `view`
    (see _resume)."""
    w, e = SlaWait, SlaEscalation
    waits = session.execute(
        select(w.id, w.conversation_id, w.staff_userid, w.started_at, w.snoozed_until).where(
            which,
            w.closed_at.is_(None),
            ~select(e.id).where(e.wait_id == w.id, e.status == "pending").exists(),
        )
    ).all()
    if not waits or not view.steps:
        return
    last = {}  # each wait's last step that came due
    rows = session.execute(
        select(e.wait_id, e.step, e.delay_s, e.action, e.target, e.due_at)
        .where(bulk.among(session, e.wait_id, [wait.id for wait in waits]))
        .order_by(e.wait_id, e.step)
    )
    had: dict[int, set[Step]] = {}
    for r in rows:
        last[r.wait_id] = r
        if r.delay_s is not None:
            had.setdefault(r.wait_id, set()).add(Step(r.delay_s, r.action, r.target))
    steps = []
    for wait in waits:
        r = last.get(wait.id)
        if r is None:
            found = (view.steps[0], book.due_times(view, wait.started_at)[0])
        elif (before_s := delay_of(r.delay_s, r.step, view)) is None:
            continue  # nothing kept tells where it stood
        else:
            before = Step(before_s, r.action, r.target)
            found = next_due(book, view, wait.started_at, before, r.due_at, had.get(wait.id, ()))
        if found is None:
            continue  # its last step has come
        step, due = found
        if wait.snoozed_until is not None:
            due = max(due, snooze_ends(book, view, wait.snoozed_until))
        index = 0 if r is None else r.step + 1
        # (overdue: firing sends it at once, or skips it as stale after stale_after_s, as ever)
        steps.append(step_row(wait.id, wait.conversation_id, wait.staff_userid, index, step, due, now))
    bulk.insert_rows(session, SlaEscalation, steps, conflict=["wait_id", "step"])


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
    locks.hold(session, _calendar_lock(session), "sla_calendar_days")


def _calendar_lock(session: Session) -> str:
    return f"siyu.sla_calendar:{session.info.get('siyu_tenant_id')}"


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
    after: dict[int, datetime] | None = None,
) -> int:
    """The pending step of open waits (these, or all), due by its own delay from the wait's
    start under its policy's clock as the calendar now stands; in a snoozed wait no sooner than
    the snooze's end nor than its spacing after the step before it (`next_due`). Its own delay,
    not that of the policy's step of the same number since saved: the step keeps its action and
    target (已排好的下一步不变), and a call saved in place of a card had gone out as the card at
    the call's time. `changed_at`: when the admin
    changed the clock; a step not due by then that the new clock puts before it is due then:
    at its time by the new clock it was hours overdue, and firing skipped it as stale (过期未发),
    so nobody was reminded at all. `after`: by pending row, when the step before it was due
    where that step is another wait's (`_carry_steps`)."""
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
            before.delay_s.label("was_delay_s"),
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
            was_due = r.was_due or (after or {}).get(r.id)
            before_s = delay_of(r.was_delay_s if r.was_due else None, r.step - 1, policy)
            spaced = None
            if was_due and before_s is not None:
                spaced = spaced_due(book, policy, r.started_at, before_s, was_due, own.delay_s)
            due = max(due, spaced or due, snooze_ends(book, policy, r.snoozed_until))
        if changed_at is not None and due < changed_at:
            # (a step an earlier pass of the same save moved to then stays then; put back in the
            # past by the second, new shifts and calendar_days in one PUT, it was skipped as
            # stale) One overdue already, held back by the archive, is not put further back:
            # moved to the day before, it was skipped as stale once the archive caught up.
            due = max(due, min(r.due_at, changed_at))
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


# How far back an open wait's business time is worked out for the board's waiting rows, the
# cards and the calls (the board's figures of answered waits count it however long they took).
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

    def answered_business_s(
        self, policy_id: int | None, started_at: datetime, ended: datetime
    ) -> float | None:
        """An answered wait's response by its policy's clock, as it and the special dates stood
        when it was answered, however long it took (the walk is as long as the answer was; a
        Friday 17:59 question answered Monday 09:01 took 2 minutes); None where that policy
        counts the wall clock. The board's first responses and the customer's timeline alike."""
        policy = self.measured_by(policy_id, ended)
        return self.calendar(policy, ended).between(started_at, ended) if policy.business_hours_only else None

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


def recipient_for(
    session: Session, target: str, agent_userid: str, policy: PolicyView, left: set[str] | None = None
) -> str | None:
    """Who a step reaches: the agent; their leader (first direct leader, else their main
    department's leader, else the policy's escalation contact); or the contact. `left`: the
    agents known to have left (members_left), where the caller read them for many steps."""
    if target == "agent":
        # a card (or a call) to a member who left reaches nobody (WeCom: 消息接收人全部无效)
        gone = left if left is not None else members_left(session, [agent_userid])
        return agent_userid if agent_userid and agent_userid not in gone else None
    contact = policy.escalation_contact if policy.escalation_contact != agent_userid else ""
    if contact and not still_with_the_corp(session, contact):
        contact = ""  # a card to one who left reaches nobody: the step says so (the policy page warns)
    if target == "leader":
        return leader_of(session, agent_userid) or contact or None
    return contact or None


def next_step_people(session: Session, rows: list[dict]) -> dict[int, str]:
    """Who each wait's next step will reach, resolved as firing resolves it (recipient_for:
    the agent; their leader, else the escalation contact; the contact, not the agent
    themselves, only while with the corp), for all the rows at once: the board stays a few
    queries, and a batch of cards too. A row whose step reaches nobody is left out."""
    due = [r for r in rows if r["next_step_at"]]
    told = {r["staff_userid"] for r in due if r["next_step_target"] == "agent"}
    gone = members_left(session, told) if told else set()  # reached by nobody, as by firing
    agents = [r["staff_userid"] for r in due if r["next_step_target"] == "leader"]
    leaders = leaders_of(session, agents) if agents else {}
    contacts = sorted({r["escalation_contact"] for r in due if r["next_step_target"] != "agent"} - {""})
    active = set()
    if contacts:
        active = set(session.scalars(select(Staff.userid).where(Staff.userid.in_(contacts), Staff.active)))
    out: dict[int, str] = {}
    for r in due:
        agent, target = r["staff_userid"], r["next_step_target"]
        contact = r["escalation_contact"] if r["escalation_contact"] in active - {agent} else ""
        who = (agent if agent not in gone else "") if target == "agent" else contact
        if target == "leader":
            who = leaders.get(agent) or contact
        if who:
            out[r["conversation_id"]] = who
    return out


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
    followed = list(
        session.scalars(select(SlaWait.id).where(SlaWait.policy_id == policy_id, SlaWait.closed_at.is_(None)))
    )
    session.delete(policy)
    session.flush()
    now = now or datetime.now(UTC)
    _follow_new_clock(session, _reassign_open_waits(session, SlaWait.policy_id == policy_id, was), now)
    if not was.enabled and followed:
        # its reminders were off: under a policy that reminds, each wait gets its next step, as
        # when they are switched back on (its waiting customers had never been reminded of)
        book = PolicyBook(session)
        moved = session.execute(
            select(SlaWait.id, SlaWait.policy_id).where(bulk.among(session, SlaWait.id, followed))
        )
        by_policy: dict[int | None, list[int]] = {}
        for wait_id, now_policy in moved:
            by_policy.setdefault(now_policy, []).append(wait_id)
        for now_policy, ids in by_policy.items():
            if (view := book.by_id(now_policy)).enabled:
                _give_next_steps(session, book, view, bulk.among(session, SlaWait.id, ids), now)
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
    snoozes: dict = field(default_factory=dict)  # each person's latest (SlaWait.snoozes)

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
        .add_columns(SlaWait.snoozes)
        .where(bulk.among(session, SlaWait.conversation_id, ids), SlaWait.closed_at.is_(None))
    ).all()
    open_now: dict[int, list[_Wait]] = {}
    for wait_id, conversation_id, msgid, started_at, until, by, by_id, at, snoozes in stored:
        wait = _Wait(conversation_id, msgid, "", None, None, started_at, id=wait_id)
        wait.snoozed_until, wait.snoozed_by, wait.snoozed_by_id, wait.snoozed_at = until, by, by_id, at
        wait.snoozes = snoozes or {}
        open_now.setdefault(conversation_id, []).append(wait)
    # a snooze outlives a recall: the wait moved on to the customer's next question, for the
    # same customer the agent asked quiet about (the wait it was asked on, who and when); only
    # to the wait it moved to (the change right after), not to a question asked after it ended
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
    recalled: dict[int, list[_Wait]] = {}  # the waits a recall just closed, by conversation
    goes_on: dict[tuple[int, str], list[_Wait]] = {}  # a reopened wait: those it goes on from
    # (nearly always none: one query only for a recall moving a wait)
    moving = {(c.conversation_id, c.msgid) for c in changes if c.reason == conversations.LATER}
    # a recalled reply reopens the stored wait of the question it had answered (`_reopen`): one
    # closed again by these changes (the question recalled in the same pull) is that row
    taking_back = {c.conversation_id for c in changes if c.reason in _LOOK_BACK[1:]}
    moving |= {(c.conversation_id, c.msgid) for c in changes if c.opened and c.conversation_id in taking_back}
    stored_closed = {(r.conversation_id, r.msgid): r.id for r in _waits_on(session, moving, closed=True)}
    taken = set(stored_closed)
    for change in _as_recorded(changes, closed_here, taken):
        if change.reason in _LOOK_BACK or change.reason in _STORED_ANSWERED:
            later.append(change)
            continue
        held = snoozes.pop(change.conversation_id, None)  # (a recall's to its LATER, a merge's to its open)
        if (
            held is not None
            and change.reason != conversations.LATER
            and held.close_reason != conversations.MERGED
        ):
            held = None
        if (
            change.opened
            and change.reason == conversations.LATER
            and not open_now.get(change.conversation_id)
        ):
            goes_on[(change.conversation_id, change.msgid)] = recalled.pop(change.conversation_id, [])
        again = closed_here.pop((change.conversation_id, change.msgid), None) if change.opened else None
        if again is not None:
            # closed by a reply these changes stored, recalled in them too (one pull brought
            # both): the wait goes on as if it had never closed
            again.close(None, "")
            if again.id is not None:
                closed.remove(again)
                if new.get((change.conversation_id, change.msgid)) is again:
                    again.id = None  # (reopened as when first opened here: `_store_new_waits`)
            open_now.setdefault(change.conversation_id, []).append(again)
            continue
        moves = change.reason == conversations.EARLIER
        moves = moves or (change.reason == conversations.LATER and bool(open_now.get(change.conversation_id)))
        if change.opened and moves:
            # the wait began with an older message pulled after it, or the customer recalled
            # the one it began with and a later one waits: the same wait (its fired steps
            # stand, its pending one is re-timed from the new start), started then (a LATER
            # with no wait running opens one, as the later message would have)
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
            if (snoozed := held) is not None:
                wait.snoozed_until, wait.snoozed_by = snoozed.snoozed_until, snoozed.snoozed_by
                wait.snoozed_by_id, wait.snoozed_at = snoozed.snoozed_by_id, snoozed.snoozed_at
                wait.snoozes = snoozed.snoozes  # (each person's, not the one in force alone)
            new[(change.conversation_id, change.msgid)] = wait
            open_now.setdefault(change.conversation_id, []).append(wait)
        else:
            ended = open_now.pop(change.conversation_id, [])
            recalled[change.conversation_id] = ended if change.reason == "recalled" else []
            for wait in ended:
                wait.close(change.at, change.reason, change.by)
                if wait.id is None:
                    wait.id = stored_closed.get((wait.conversation_id, wait.msgid))
                closed_here[(wait.conversation_id, wait.msgid)] = wait
                if change.reason in ("recalled", conversations.MERGED) and wait.snoozed_until is not None:
                    snoozes[change.conversation_id] = wait
                if wait.id is not None:
                    closed.append(wait)
    # moved first: a wait moved back to an earlier question frees its message for a new wait
    # (files imported newest first: the newer question's wait, moved to the older, answered
    # one, then the newer opening its own found its row still there, and never waited). Before
    # any wait is written, all their pending steps locked at once, in id order, as firing locks
    # steps before their waits (two passes, moved then closed, could cross a firing batch's)
    _lock_pending(session, [w.id for w in [*moved.values(), *closed] if w.id is not None])
    _store_moved_waits(session, book, list(moved.values()))
    # (the batch's latest time stands for now: the moment a wait opened again by it reopened)
    _store_new_waits(session, book, list(new.values()), max(c.at for c in changes) if changes else None)
    _store_closed_waits(session, closed)
    _carry_steps(session, book, goes_on)
    settled = _settled_waits(
        session, {c.conversation_id for c in later if c.reason == REPLIED_BEFORE_SETTLED}
    )
    for change in later:
        if change.reason == REPLIED_BEFORE_SETTLED:
            _store_replied_before_settled(session, change, settled.get(change.conversation_id, []))
        elif change.reason == conversations.TAKEN_BACK_BEFORE_ANSWERED:
            _store_taken_back_before_answered(session, change)
        elif change.reason != conversations.ANSWERED_BEFORE:
            _store_answered_later(session, change)
        else:
            _store_answered_before(session, book, change, policies[change.staff_userid])


# How a wait was settled by something other than a reply, which a reply sent before it answered.
_SETTLED = ("dismissed", "declined", "lost", "removed", "transferred", conversations.UNARCHIVED)


REPLIED_BEFORE_SETTLED = conversations.REPLIED_BEFORE_SETTLED
# Changes that correct a wait stored closed by a reply, pulled before what came first.
_STORED_ANSWERED = (REPLIED_BEFORE_SETTLED, conversations.TAKEN_BACK_BEFORE_ANSWERED)


def _store_taken_back_before_answered(session: Session, change: conversations.WaitChange) -> None:
    """A question recalled (TAKEN_BACK_BEFORE_ANSWERED) whose wait a reply sent after the recall
    had closed, that reply pulled first: the wait ended at the recall, unanswered, where the
    reply answered nothing else of it. Counted answered, it had made the response times look
    slower for a question nobody was owed. Where another question of the wait was answered by
    the reply, the wait stands as stored."""
    wait = session.execute(
        select(SlaWait.id, SlaWait.started_at, SlaWait.closed_at).where(
            SlaWait.conversation_id == change.conversation_id,
            SlaWait.msgid == change.msgid,
            SlaWait.close_reason == "replied",
            SlaWait.closed_at > change.at,
        )
    ).first()
    if wait is None:
        return
    other = select(Message.id).where(
        Message.conversation_id == change.conversation_id,
        Message.direction == "in",
        Message.action == "send",
        Message.needs_reply.is_(True),
        Message.recalled.is_(False),
        Message.msgid != change.msgid,
        Message.sent_at > wait.started_at,
        Message.sent_at <= wait.closed_at,
    )
    if session.scalar(other.limit(1)) is not None:
        return
    row = {"id": wait.id, "closed_at": change.at, "close_reason": "recalled", "response_s": None}
    bulk.update_by_id(session, SlaWait, [row], ["closed_at", "close_reason", "response_s"])


def _settled_waits(session: Session, conversation_ids: set[int]) -> dict[int, list]:
    """These conversations' waits ended otherwise than by a reply (_SETTLED), by conversation,
    oldest first: one read for a batch's replies pulled late (an import of a settled chat's
    history brings many)."""
    if not conversation_ids:
        return {}
    out: dict[int, list] = {}
    for r in session.execute(
        select(SlaWait.id, SlaWait.conversation_id, SlaWait.started_at, SlaWait.closed_at)
        .add_columns(SlaWait.close_reason, SlaWait.closed_by)
        .where(
            bulk.among(session, SlaWait.conversation_id, conversation_ids), SlaWait.close_reason.in_(_SETTLED)
        )
        .order_by(SlaWait.started_at, SlaWait.id)
    ):
        out.setdefault(r.conversation_id, []).append(r)
    return out


def _store_replied_before_settled(session: Session, change: conversations.WaitChange, settled: list) -> None:
    """A reply pulled after what settled its chat later (REPLIED_BEFORE_SETTLED): the wait open
    when it was sent, ended so since (of `settled`, its chat's: _settled_waits), was answered by
    it then. Its steps cancelled stay so, and those that fired meanwhile stand: the on-time
    shares read it answered in time."""
    answered = next((r for r in settled if r.started_at <= change.at < r.closed_at), None)
    if answered is None:
        return  # (none open then: the reply answered nothing)
    settled.remove(answered)  # (answered now: a later reply of the batch answers it no more)
    row = {
        "id": answered.id,
        "closed_at": change.at,
        "close_reason": "replied",
        "response_s": max(0.0, (change.at - answered.started_at).total_seconds()),
        "closed_by": "",
        # (a recall of the reply, pulled with it or after, puts this back: _store_answered_later)
        "settled": {
            "at": answered.closed_at.isoformat(),
            "reason": answered.close_reason,
            "by": answered.closed_by,
        },
    }
    bulk.update_by_id(
        session, SlaWait, [row], ["closed_at", "close_reason", "response_s", "closed_by", "settled"]
    )


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
        .add_columns(SlaWait.msgid, SlaWait.settled)
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
    if then is None and answered.settled:
        _unsettle(session, answered, change)
        return
    if then is None and change.reason != conversations.ANSWERED_LATER:
        if not _taken_back(session, change.conversation_id, answered.msgid):
            return  # (it waits again: reopened)
        # the customer had recalled the question before: the wait went on, and ends so, unanswered
        closed_at, reason, by = change.at, "recalled", ""
    else:
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


def _unsettle(session: Session, answered, change: conversations.WaitChange) -> None:
    """The reply pulled late that had answered a settled wait (REPLIED_BEFORE_SETTLED) was
    taken back: a later reply sent before the chat was settled answered it then, else it ended
    as it had (the chat settled meanwhile: it waits no more)."""
    settled = answered.settled
    ended = datetime.fromisoformat(settled["at"])
    if change.reason == conversations.ANSWERED_LATER and change.at < ended:
        row = {"id": answered.id, "closed_at": change.at, "close_reason": "replied", "closed_by": ""}
        row["response_s"] = max(0.0, (change.at - answered.started_at).total_seconds())
    else:
        row = {
            "id": answered.id,
            "closed_at": ended,
            "close_reason": settled["reason"],
            "closed_by": settled["by"],
        }
        row.update(response_s=None, settled=None)
    bulk.update_by_id(session, SlaWait, [row], list(row.keys() - {"id"}))


def _taken_back(session: Session, conversation_id: int, msgid: str) -> bool:
    """Whether the customer recalled this message of the conversation."""
    return bool(
        session.scalar(
            select(Message.recalled).where(Message.conversation_id == conversation_id, Message.msgid == msgid)
        )
    )


def _waits_on(session: Session, messages: set[tuple[int, str]], closed: bool) -> list:
    """The waits stored on these messages, (conversation, msgid), closed or still open: their
    (id, conversation_id, msgid, policy_id)."""
    if not messages:
        return []
    ended = SlaWait.closed_at.is_not(None) if closed else SlaWait.closed_at.is_(None)
    rows = session.execute(
        select(SlaWait.id, SlaWait.conversation_id, SlaWait.msgid, SlaWait.policy_id).where(
            bulk.among(session, SlaWait.conversation_id, {c for c, _ in messages}),
            bulk.among(session, SlaWait.msgid, {m for _, m in messages}),
            ended,
        )
    )
    return [r for r in rows if (r.conversation_id, r.msgid) in messages]


def _as_recorded(
    changes: Sequence[conversations.WaitChange],
    closed_here: dict[tuple[int, str], _Wait],
    taken: set[tuple[int, str]],
) -> Iterator[conversations.WaitChange]:
    """The changes, a LATER whose message had a wait of its own closed (folded into the one
    running when a reply was recalled: MERGED) as the recall's close and that message's open:
    that wait opens again, its row being the message's (one wait a message)."""
    for change in changes:
        key = (change.conversation_id, change.msgid)
        if change.reason != conversations.LATER or (key not in closed_here and key not in taken):
            yield change
            continue
        yield replace(change, opened=False, at=change.answered_at, reason="recalled")
        # (still LATER: no wait runs now, so it opens that message's, and takes the steps of
        # the one just closed: `_carry_steps`)
        yield replace(change, answered_at=None)


def _carry_steps(session: Session, book: PolicyBook, goes_on: dict[tuple[int, str], list[_Wait]]) -> None:
    """A wait reopened on the customer's next message when they recalled the one the running
    wait began with (`_as_recorded`): the customer kept waiting, so its next step is the one the
    closed wait had next (a step that wait reached is not taken again: a second card to the
    agent and the leader, a second call), due from the reopened wait's start as a moved wait's
    is. The closed wait keeps its fired steps and breaches."""
    before = {w.id: key for key, waits in goes_on.items() for w in waits if w.id is not None}
    if not before:  # (nearly always)
        return
    reopened = {(r.conversation_id, r.msgid): r.id for r in _waits_on(session, set(goes_on), closed=False)}
    rows = session.execute(
        select(
            SlaEscalation.id,
            SlaEscalation.wait_id,
            SlaEscalation.step,
            SlaEscalation.status,
            SlaEscalation.action,
            SlaEscalation.target,
            SlaEscalation.delay_s,
            SlaEscalation.created_at,
            SlaEscalation.due_at,
        ).where(bulk.among(session, SlaEscalation.wait_id, [*before, *reopened.values()]))
    ).all()
    last: dict[tuple[int, str], tuple] = {}  # the closed waits' furthest step, by message kept
    due: dict[tuple[tuple[int, str], int], datetime] = {}  # their steps' times, by message kept and step
    pending: dict[int, tuple] = {}
    for row in rows:
        key = before.get(row.wait_id)
        if key is not None:
            due[(key, row.step)] = row.due_at
        if key is not None and (key not in last or row.step > last[key].step):
            last[key] = row
        elif key is None and row.status == "pending":
            pending[row.wait_id] = row
    taken, dropped, moved = [], [], []
    after: dict[int, datetime] = {}  # (a snooze held the step before: this one keeps its spacing)
    for key, wait_id in reopened.items():
        own, theirs = pending.get(wait_id), last.get(key)
        if own is None or theirs is None:
            continue
        # the step it had next: cancelled by the recall, else it had taken its last one
        reached = theirs.step - 1 if theirs.status == "cancelled" else theirs.step
        if reached < own.step:
            continue  # (it had got no further than this wait)
        if theirs.status == "cancelled":
            step = {k: getattr(theirs, k) for k in ("step", "action", "target", "delay_s", "created_at")}
            taken.append({"id": own.id, **step, "note": ""})
            moved.append(wait_id)
            if (was_due := due.get((key, reached))) is not None:
                after[own.id] = was_due
        else:
            dropped.append({"id": own.id, "status": "cancelled", "note": "recalled"})
    bulk.update_by_id(
        session, SlaEscalation, taken, ["step", "action", "target", "delay_s", "created_at", "note"]
    )
    bulk.update_by_id(session, SlaEscalation, dropped, ["status", "note"])
    _reschedule_pending(session, book, moved, after=after)


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


def _lock_pending(session: Session, wait_ids: list[int]) -> None:
    """On PostgreSQL, these waits' pending steps locked (in id order) before the waits are written,
    as firing locks them: a step firing meanwhile is waited for rather than deadlocked with."""
    if not wait_ids or session.get_bind().dialect.name != "postgresql":
        return
    e = SlaEscalation
    session.execute(
        select(e.id)
        .where(bulk.among(session, e.wait_id, wait_ids), e.status == "pending")
        .order_by(e.id)
        .with_for_update()
    )


def _store_new_waits(
    session: Session, book: PolicyBook, waits: list[_Wait], reopened_at: datetime | None = None
) -> None:
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
            "snoozes": w.snoozes,
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
    if reopened:  # timed by the clock as it is now: a zone or calendar change while it was closed
        # passed it by; one the new clock puts before `reopened_at` is due then, not skipped as stale
        _reschedule_pending(session, book, [wait_id for wait_id, _, _ in reopened], changed_at=reopened_at)
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
                    snoozes=snoozed.snoozes,
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


def next_due(
    book: PolicyBook,
    policy: PolicyView,
    started_at: datetime,
    before: Step,
    was_due: datetime,
    had: Iterable[Step] = (),
) -> tuple[Step, datetime] | None:
    """A wait's step after `before` (the one that fired, as its row kept it), due at `was_due`,
    and when it comes due (spaced_due). The step after the same step of the policy (two may
    share a delay: a card to the leader and a call at 5 minutes), else, where the policy no
    longer has it, its first step of that delay the wait has not `had` (the leader's card taken
    out while pending, the call beside it still rings), else of a longer delay. Not by number:
    with a step added before it or taken out since the wait began, the policy's next number was
    the leader's card again (carded twice) or nothing (the call never rang). None when the
    policy has no later step, or has since been switched off (the steps after the one scheduled
    follow the policy as saved)."""
    if not policy.enabled:
        return None
    steps = policy.steps
    same = next((i for i, s in enumerate(steps) if s == before), None)
    if same is not None:
        step = steps[same + 1] if same + 1 < len(steps) else None
    else:
        had, moved = set(had), _moved(book, policy, before)
        step = next(
            (
                s
                for s in steps
                if s != moved
                and (s.delay_s > before.delay_s or (s.delay_s == before.delay_s and s not in had))
            ),
            None,
        )
    if step is None:
        return None
    return step, spaced_due(book, policy, started_at, before.delay_s, was_due, step.delay_s)


def _moved(book: PolicyBook, policy: PolicyView, before: Step) -> Step | None:
    """The policy's step that is `before` given another delay since (the leader's card moved from
    5 to 7 minutes while it was pending): the policy as last kept with `before` is the policy now
    but for that one delay. It has been had: the leader had been carded again at 7 minutes."""
    if policy.id is None:
        return None
    kept = next((v for _, v in reversed(book._kept_versions().get(policy.id, [])) if before in v.steps), None)
    if kept is None or len(kept.steps) != len(policy.steps):
        return None
    others = list(kept.steps)
    others.remove(before)
    moved = [
        s
        for s in policy.steps
        if (s.action, s.target) == (before.action, before.target) and s not in kept.steps
    ]
    if len(moved) == 1 and Counter(others + moved) == Counter(policy.steps):
        return moved[0]
    return None


def spaced_due(
    book: PolicyBook, policy: PolicyView, started_at: datetime, before_s: int, was_due: datetime, delay_s: int
) -> datetime:
    """When a step of `delay_s` comes due, the step before it (of `before_s`) having been due at
    `was_due`: on the policy's schedule from the wait's start, or as long after `was_due` as
    the schedule spaces the two steps, by the policy's clock, whichever is later (a snooze
    moved the wait's steps later, keeping their spacing)."""
    if not policy.business_hours_only:
        return max(started_at + timedelta(seconds=delay_s), was_due + timedelta(seconds=delay_s - before_s))
    cal = book.calendar(policy)
    due, before = cal.add(started_at, delay_s), cal.add(started_at, before_s)
    if due == before:
        return max(due, was_due)
    # the spacing by the policy's clock: in wall time it counted the night or weekend between
    # the two steps again after a snooze ended, a call due minutes later ringing days later
    return max(due, cal.add(was_due, cal.between(before, due)))


def delay_of(step_delay_s: int | None, index: int, policy: PolicyView) -> int | None:
    """A scheduled step's delay: as its row keeps it, else (a row made before it was kept) the
    policy's step of its number; None when neither tells."""
    if step_delay_s is not None:
        return step_delay_s
    return policy.steps[index].delay_s if 0 <= index < len(policy.steps) else None


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
    found = _waits_on(session, {(w.conversation_id, w.msgid) for w in waits}, closed=True)
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
    # one whose department's policy was deleted while it was closed (delete_policy moved only
    # the open ones) takes the policy that applies now: firing had read the gone policy as the
    # built-in default and rung a call the tenant's policy has not, the board measuring it by
    # the tenant's all the while
    kept = set(session.scalars(select(SlaPolicy.id)))
    if gone := [r.id for r in found if r.policy_id is not None and r.policy_id not in kept]:
        _reassign_open_waits(session, SlaWait.id.in_(gone))
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
    # (their pending steps locked already, record_waits: a reply pulled as its step fired had
    # deadlocked on PostgreSQL; cancelled after the waits are written, by a statement that sees
    # the next step firing put in its place meanwhile)
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
    if until <= now:
        return 0
    # Locked: the conversation first, as ingest and 无需回复 lock it (a reply or a recall stored
    # meanwhile would move or close the wait under the snooze, or kill the pull as a deadlock's
    # victim); not against the key share a step firing takes on it (FOR NO KEY UPDATE). Then
    # its pending steps, then the wait, as firing locks those (the other way round deadlocked
    # with a step firing, and the snooze was a 500). Two people snoozing at once each keep
    # their own. SQLite: this transaction is the writer from the start.
    locks.sqlite_writer(session, "sla_waits")
    session.execute(
        select(Conversation.id).where(Conversation.id == conversation_id).with_for_update(key_share=True)
    )
    open_wait = select(SlaWait.id).where(
        SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None)
    )
    wait_id = session.scalar(open_wait)
    if wait_id is None:
        return 0
    _pending_steps(session, wait_id)  # (read again once the wait is locked: a step firing
    # meanwhile has put the next in its place)
    wait = session.scalar(select(SlaWait).where(SlaWait.id == wait_id).with_for_update())
    if wait is None or wait.closed_at is not None:
        return 0
    pending = _pending_steps(session, wait_id)
    running = _running_snoozes(wait, now)
    # this person's latest (a snooze kept before its person was, by the name it shows)
    running.pop(f"name:{by[:200]}", None)
    mine = f"id:{by_id}" if by_id is not None else f"name:{by[:200]}"
    running[mine] = {"until": until.isoformat(), "by": by[:200], "by_id": by_id, "at": now.isoformat()}
    wait.snoozes = running
    top = max(running.values(), key=lambda e: datetime.fromisoformat(e["until"]))
    until = datetime.fromisoformat(top["until"])
    if top is not running[mine] and until == wait.snoozed_until:
        # another's longer snooze stands (李四's 15 minutes had cut the admin's hour), and
        # goes on standing once its own person shortens it below this one
        return 0
    shorter = wait.snoozed_until is not None and until < wait.snoozed_until
    wait.snoozed_until, wait.snoozed_by, wait.snoozed_by_id = until, top["by"], top["by_id"]
    wait.snoozed_at = datetime.fromisoformat(top["at"])
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


def _pending_steps(session: Session, wait_id: int) -> list[SlaEscalation]:
    """The wait's pending steps, soonest first, locked (PostgreSQL)."""
    query = select(SlaEscalation).where(SlaEscalation.wait_id == wait_id, SlaEscalation.status == "pending")
    return list(session.scalars(query.order_by(SlaEscalation.due_at).with_for_update()))


def _running_snoozes(wait: SlaWait, now: datetime) -> dict[str, dict]:
    """Each person's latest snooze of this wait still running, by person (`id:…`; a snooze kept
    before its person was, or made by no person, by the name it shows: `name:…`). The one in
    force is among them, from before they were kept too (or carried to this wait by a recall)."""
    running = {k: e for k, e in (wait.snoozes or {}).items() if datetime.fromisoformat(e["until"]) > now}
    if wait.snoozed_until is not None and wait.snoozed_until > now:
        key = (
            f"id:{wait.snoozed_by_id}" if wait.snoozed_by_id is not None else f"name:{wait.snoozed_by or ''}"
        )
        at = wait.snoozed_at or now
        held = {
            "until": wait.snoozed_until.isoformat(),
            "by": wait.snoozed_by or "",
            "by_id": wait.snoozed_by_id,
        }
        running.setdefault(key, {**held, "at": at.isoformat()})
    return running


def _move_pending(session: Session, due: dict[int, datetime]) -> int:
    """Move these steps to their new due times, those still pending: a worker may have fired
    one since it was read (it keeps the time it was due; the step it scheduled after it waits
    for the snooze when it comes due, see siyu.sla.firing)."""
    rows = [{"id": step_id, "due_at": at, "claimed_until": None} for step_id, at in due.items()]
    return bulk.update_by_id(
        session, SlaEscalation, rows, ["due_at", "claimed_until"], unless_changed=("status", "pending")
    )


def rename_member(session: Session, old: str, new: str) -> None:
    """A member's userid changed in WeCom (siyu.tenancy.service.rename_member): their waits,
    steps and calls, the policies naming them as escalation contact, and the cards and calls
    still to go to them are theirs under the new one (a step to them had reached nobody)."""
    columns = (
        SlaWait.staff_userid,
        SlaEscalation.agent_userid,
        SlaEscalation.recipient,
        SlaCall.callee_userid,
        SlaPolicy.escalation_contact,
    )
    for column in columns:
        rename_in(session, column, old, new)
    for message in session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == old, OutboxMessage.status == "pending")
    ):
        named = {k: new for k in ("touser", "callee") if message.payload.get(k) == old}
        message.recipient, message.payload = new, {**message.payload, **named}
    session.flush()


def ended_follows(
    session: Session, customer_ids: set[int]
) -> dict[tuple[int, str], tuple[str, datetime | None]]:
    """(customer id, staff userid) -> (close reason, when it ended), for these customers'
    ended follows."""
    if not customer_ids:
        return {}
    rows = session.execute(
        select(Follow.customer_id, Follow.staff_userid, Follow.status, Follow.ended_at).where(
            bulk.among(session, Follow.customer_id, customer_ids), Follow.status.in_(list(FOLLOW_ENDED_AS))
        )
    )
    return {(c, u): (FOLLOW_ENDED_AS[status], at) for c, u, status, at in rows}


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
        select(OutboxMessage.recipient, OutboxMessage.payload, OutboxMessage.created_at).where(
            OutboxMessage.id == card_id, OutboxMessage.kind == "sla_notice"
        )
    ).first()
    if found is None:
        return None
    recipient, payload, made_at = found
    recipient = recipient or payload.get("touser") or ""
    # a card sent before its recipient's userid changed is the renamed member's (its row keeps
    # the old userid, which WeCom may give a new member): it had opened for nobody
    if recipient and (renamed := renames_as_read(session)):
        recipient = renamed.now(recipient, made_at)
    steps = payload.get("escalations") or []
    waits = payload.get(CARD_TOLD)
    if not steps or waits == []:
        return Card(recipient, frozenset())
    if isinstance(waits, list):  # the waits it spoke of: not those snoozed or answered before it went
        told = select(SlaWait.conversation_id).where(bulk.among(session, SlaWait.id, waits))
    else:  # (a card built before it kept them)
        told = select(SlaEscalation.conversation_id).where(bulk.among(session, SlaEscalation.id, steps))
    return Card(recipient, frozenset(session.scalars(told)))


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
    as it was due); None when neither its row nor its policy tells its delay."""
    book = PolicyBook(session)
    policy = book.by_id(wait.policy_id)
    own = delay_of(step.delay_s, step.step, policy)
    if own is None:
        return None
    alone = book.due_times(replace(policy, steps=(Step(own, step.action, step.target),)), wait.started_at)[0]
    before = session.execute(
        select(SlaEscalation.due_at, SlaEscalation.delay_s).where(
            SlaEscalation.wait_id == wait.id, SlaEscalation.step == step.step - 1
        )
    ).first()
    before_s = delay_of(before.delay_s, step.step - 1, policy) if before is not None else None
    if before_s is None:
        return alone
    return spaced_due(book, policy, wait.started_at, before_s, before.due_at, own)


# ------------------------------------------------ calls still to ring (a clock changed)


def retime_held_calls(session: Session, now: datetime) -> int:
    """After quiet hours or a policy's clock changed: each call still to ring (never tried yet:
    one being retried keeps its backoff, and is checked when it comes due) due when quiet hours
    now let it ring, later or sooner, and at once if they no longer hold it. The sender holds a
    call only when it finds it due: shortened quiet hours left a call due at the old 08:00 while
    the board, reading the new ones, said it had gone. Returns how many moved."""
    from siyu.sla.queries import call_held_until  # (the reads build on this module)

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
        # (one due later was put off: on Saturday it still waits for Monday's shift)
        held = call_held_until(book.by_id(policy_of.get(step)), now, timezone, book.calendar, r.due_at > now)
        due = held if held is not None else min(r.due_at, at_once)
        if due != r.due_at:
            moved.append({"id": r.id, "due_at": due})
    # a worker may have claimed one since: it keeps what the worker records
    bulk.update_by_id(session, o, moved, ["due_at"], unless_changed=("status", "pending"))
    return len(moved)
