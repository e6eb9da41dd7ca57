"""SLA rules: the only writer of policies, calendar days, waits and escalation steps.

Flow 3 (DESIGN.md). When conversations opens a wait (a customer message that needs a
reply; the clock starts at its msgtime) the listener below writes the wait and one
escalation row per policy step, due at msgtime + delay (business time when the policy
says so), in the same transaction as the message. When the wait closes (a reply by hand,
a recall, "no reply needed") the pending steps are cancelled in that transaction too.
Steps are fired by siyu.sla.tasks. Escalation reads conversations; never the other way.

Policies: one per tenant (department 0), optionally one per department; a staff member's
policy is their main department's, else the nearest ancestor department's, else the
tenant's, else the built-in default (2 min app message to the agent, 5 min to the
leader, 10 min voice call to the agent).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.conversations import service as conversations
from siyu.conversations.models import Conversation
from siyu.customers.models import Customer
from siyu.customers.service import leader_of
from siyu.sla.calendar import BusinessCalendar, parse_hhmm, parse_shifts
from siyu.sla.models import (
    DEFAULT_QUIET_HOURS,
    DEFAULT_SHIFTS,
    DEFAULT_STEPS,
    SlaCalendarDay,
    SlaEscalation,
    SlaPolicy,
    SlaWait,
)
from siyu.tenancy.models import Department, Staff, Tenant

ACTIONS = ("app_message", "voice_call")
TARGETS = ("agent", "leader", "contact")
MAX_STEPS = 10


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
    stale_after_s: int = 6 * 3600

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
        raise PolicyError(f"at most {MAX_STEPS} steps")
    clean = []
    for step in steps:
        try:
            delay = int(step["delay_s"])
            action, target = str(step["action"]), str(step.get("target", "agent"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError("a step needs delay_s, action and target") from exc
        if delay < 0 or delay > 30 * 86400:
            raise PolicyError("a step's delay must be between 0 and 30 days")
        if action not in ACTIONS:
            raise PolicyError(f"action must be one of {', '.join(ACTIONS)}")
        if target not in TARGETS:
            raise PolicyError(f"target must be one of {', '.join(TARGETS)}")
        clean.append({"delay_s": delay, "action": action, "target": target})
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


def save_policy(session: Session, department_wecom_id: int = 0, **fields) -> SlaPolicy:
    """Create or change the tenant's policy (department 0) or a department's."""
    unknown = set(fields) - EDITABLE
    if unknown:
        raise PolicyError(f"unknown policy fields: {', '.join(sorted(unknown))}")
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
            raise PolicyError("quiet_hours is [start, end]")
    for name in ("merge_window_s", "call_cooldown_s", "stale_after_s"):
        if name in fields and fields[name] < 0:
            raise PolicyError(f"{name} must not be negative")
    policy = session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == department_wecom_id))
    if policy is None:
        policy = SlaPolicy(department_wecom_id=department_wecom_id)
        session.add(policy)
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.updated_at = datetime.now(UTC)
    session.flush()
    return policy


def set_calendar_day(session: Session, day: date, kind: str, note: str = "") -> SlaCalendarDay:
    """Mark a date as a holiday or a (make-up) workday for this tenant."""
    if kind not in ("holiday", "workday"):
        raise PolicyError("kind is holiday or workday")
    row = session.scalar(select(SlaCalendarDay).where(SlaCalendarDay.day == day))
    if row is None:
        row = SlaCalendarDay(day=day, kind=kind, note=note)
        session.add(row)
    row.kind, row.note = kind, note
    session.flush()
    return row


def remove_calendar_day(session: Session, day: date) -> bool:
    row = session.scalar(select(SlaCalendarDay).where(SlaCalendarDay.day == day))
    if row is not None:
        session.delete(row)
    return row is not None


def tenant_timezone(session: Session) -> str:
    tenant = session.get(Tenant, session.info["siyu_tenant_id"])
    return (tenant.timezone if tenant else "") or "Asia/Shanghai"


def calendar_for(session: Session, policy: PolicyView) -> BusinessCalendar:
    days = session.execute(select(SlaCalendarDay.day, SlaCalendarDay.kind)).all()
    return BusinessCalendar.build(
        tenant_timezone(session),
        policy.shifts,
        holidays=[d for d, kind in days if kind == "holiday"],
        workdays=[d for d, kind in days if kind == "workday"],
        public_holidays=policy.public_holidays,
    )


def policy_for(session: Session, staff_userid: str) -> PolicyView:
    """The policy that applies to a staff member's waits."""
    policies = {p.department_wecom_id: p for p in session.scalars(select(SlaPolicy))}
    if not policies:
        return PolicyView()
    staff = session.scalar(select(Staff).where(Staff.userid == staff_userid)) if staff_userid else None
    dept = None
    if staff is not None:
        dept = staff.main_department or (staff.departments[0] if staff.departments else None)
    if dept is not None and len(policies) > (0 in policies):
        parents = dict(session.execute(select(Department.wecom_id, Department.parent_wecom_id)).all())
        seen = set()
        while dept and dept not in seen:
            if dept in policies:
                return PolicyView.of(policies[dept])
            seen.add(dept)
            dept = parents.get(dept)
    return PolicyView.of(policies[0]) if 0 in policies else PolicyView()


def policy_by_id(session: Session, policy_id: int | None) -> PolicyView:
    policy = session.get(SlaPolicy, policy_id) if policy_id else None
    return PolicyView.of(policy) if policy is not None else PolicyView()


def due_times(session: Session, policy: PolicyView, started_at: datetime) -> list[datetime]:
    if not policy.business_hours_only:
        return [started_at + timedelta(seconds=s.delay_s) for s in policy.steps]
    cal = calendar_for(session, policy)
    return [cal.add(started_at, s.delay_s) for s in policy.steps]


def recipient_for(session: Session, target: str, agent_userid: str, policy: PolicyView) -> str | None:
    """Who a step reaches: the agent; their leader (first direct leader, else their main
    department's leader, else the policy's escalation contact); or the contact."""
    if target == "agent":
        return agent_userid or None
    contact = policy.escalation_contact if policy.escalation_contact != agent_userid else ""
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


def save_department_policy(session: Session, department_wecom_id: int, **fields) -> SlaPolicy:
    """Create or change a department's own policy. A new one starts as a copy of the policy
    its members follow now (an ancestor's, the tenant's or the default), named after the
    department, and then takes `fields`. UnknownDepartment when there is no such synced
    department (a policy left by a department that was removed can still be changed)."""
    if department_wecom_id <= 0:
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
    return save_policy(session, department_wecom_id, **fields)


def delete_policy(session: Session, department_wecom_id: int) -> bool:
    """Remove a department's own policy: its members follow the nearest ancestor's policy,
    else the tenant's, from their next wait on. Open waits that followed it keep their
    scheduled steps and take the quiet hours, cooldown etc. of the policy that now applies.
    The tenant's policy (department 0) cannot be removed. False when there was none."""
    if department_wecom_id == 0:
        raise PolicyError("the tenant's policy cannot be deleted")
    policy = session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == department_wecom_id))
    if policy is None:
        return False
    policy_id = policy.id
    session.delete(policy)
    session.flush()
    for wait in session.scalars(
        select(SlaWait).where(SlaWait.policy_id == policy_id, SlaWait.closed_at.is_(None))
    ).all():
        wait.policy_id = policy_for(session, wait.staff_userid).id
    session.flush()
    return True


# ------------------------------------------------------------------- waits (listener)


def _insert(session: Session, model, values: dict, conflict: list[str]):
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    stmt = (
        dialect.insert(model)
        .values(tenant_id=session.info["siyu_tenant_id"], **values)
        .on_conflict_do_nothing(index_elements=["tenant_id", *conflict])
        .returning(model.id)
    )
    return session.execute(stmt).scalar()


def open_wait(session: Session, conversation: Conversation, msgid: str, at: datetime) -> int | None:
    """Record a wait and schedule its steps; None if it was recorded before."""
    if conversation.kind != "single" or not conversation.staff_userid:
        return None
    policy = policy_for(session, conversation.staff_userid)
    wait_id = _insert(
        session,
        SlaWait,
        {
            "conversation_id": conversation.id,
            "msgid": msgid,
            "staff_userid": conversation.staff_userid,
            "customer_id": conversation.customer_id,
            "policy_id": policy.id,
            "started_at": at,
            "breached_step": -1,
        },
        ["conversation_id", "msgid"],
    )
    if wait_id is None or not policy.enabled:
        return wait_id
    for index, (step, due) in enumerate(zip(policy.steps, due_times(session, policy, at), strict=True)):
        _insert(
            session,
            SlaEscalation,
            {
                "wait_id": wait_id,
                "conversation_id": conversation.id,
                "step": index,
                "action": step.action,
                "target": step.target,
                "agent_userid": conversation.staff_userid,
                "recipient": "",
                "due_at": due,
                "status": "pending",
                "attempts": 0,
                "note": "",
                "created_at": datetime.now(UTC),
            },
            ["wait_id", "step"],
        )
    return wait_id


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
        session.execute(
            update(SlaEscalation)
            .where(SlaEscalation.wait_id.in_([w.id for w in waits]), SlaEscalation.status == "pending")
            .values(status="cancelled", note=reason, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
    return len(waits)


@conversations.on_wait
def _on_wait(session: Session, change: conversations.WaitChange) -> None:
    if change.opened:
        open_wait(session, change.conversation, change.msgid, change.at)
    else:
        close_waits(session, change.conversation.id, change.at, change.reason)


def snooze(session: Session, conversation_id: int, until: datetime, now: datetime) -> int:
    """The agent asks for quiet until `until`: the wait's pending steps move later so that
    none fires before then, keeping their spacing. Returns how many steps moved."""
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
    wait.snoozed_until = until
    if not pending or pending[0].due_at >= until:
        return 0
    shift = until - pending[0].due_at
    for row in pending:
        row.due_at, row.claimed_until = row.due_at + shift, None
    return len(pending)


# ------------------------------------------------------------------------ the SLA board


def day_bounds(session: Session, now: datetime, day: date | None = None) -> tuple[datetime, datetime]:
    """[start, end) of a local day (default: today) in the tenant's time zone, in UTC."""
    tz = ZoneInfo(tenant_timezone(session))
    day = day or now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def waiting_now(session: Session, now: datetime, staff_userids: Sequence[str] | None = None) -> list[dict]:
    """Who is waiting right now, longest first: for the supervisor's board."""
    next_due = (
        select(func.min(SlaEscalation.due_at))
        .where(SlaEscalation.wait_id == SlaWait.id, SlaEscalation.status == "pending")
        .scalar_subquery()
    )
    q = (
        select(SlaWait, Customer.name, next_due)
        .outerjoin(Customer, Customer.id == SlaWait.customer_id)
        .where(SlaWait.closed_at.is_(None))
        .order_by(SlaWait.started_at)
    )
    if staff_userids is not None:
        q = q.where(SlaWait.staff_userid.in_(list(staff_userids)))
    return [
        {
            "conversation_id": w.conversation_id,
            "customer": name or "",
            "staff_userid": w.staff_userid,
            "since": w.started_at,
            "waited_s": max(0.0, (now - w.started_at).total_seconds()),
            "breached_step": w.breached_step,
            "next_step_at": due,
            "snoozed_until": w.snoozed_until,
        }
        for w, name, due in session.execute(q)
    ]


def breaches(session: Session, start: datetime, end: datetime) -> dict:
    """Steps fired in [start, end): totals per step and action, and per agent."""
    rows = session.execute(
        select(SlaEscalation.step, SlaEscalation.action, SlaEscalation.agent_userid, func.count())
        .where(
            SlaEscalation.status == "fired",
            SlaEscalation.fired_at >= start,
            SlaEscalation.fired_at < end,
        )
        .group_by(SlaEscalation.step, SlaEscalation.action, SlaEscalation.agent_userid)
    ).all()
    by_step: dict[int, dict] = {}
    by_agent: dict[str, int] = {}
    for step, action, agent, n in rows:
        entry = by_step.setdefault(step, {"step": step, "action": action, "count": 0})
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
        "p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
    }


def board(session: Session, now: datetime) -> dict:
    """The SLA board: who waits now (longest first), today's breaches and response times."""
    start, end = day_bounds(session, now)
    return {
        "waiting": waiting_now(session, now),
        "breaches_today": breaches(session, start, end),
        "first_response_today": first_response(session, start, end),
    }
