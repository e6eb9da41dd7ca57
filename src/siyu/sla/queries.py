"""SLA reads: the board (who waits, the day's breaches and response times, what did not reach
its person), how far each fired step got, and when a call still to ring will ring. Writes stay in
siyu.sla.service; the card builder and call planner (siyu.sla.tasks) read by the same rules here
(left_out) as the board reads ahead."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from siyu.conversations.models import Conversation
from siyu.conversations.queries import wait_text
from siyu.customers.models import Customer
from siyu.customers.queries import remarks_on
from siyu.customers.service import leaders_named
from siyu.db import bulk, paging
from siyu.db.paging import SortKey
from siyu.notify.models import UNSENT, OutboxMessage
from siyu.sla.calendar import BusinessCalendar, quiet_until, shifts_all_quiet
from siyu.sla.models import SlaCall, SlaEscalation, SlaWait
from siyu.sla.service import PolicyBook, PolicyView, tenant_timezone
from siyu.sla.told import CARD_TOLD, told_by_text
from siyu.tenancy import timezones
from siyu.tenancy.queries import members_left, still_with_the_corp
from siyu.visible_names import UNNAMED

# ------------------------------------------------------------------------ the SLA board


def day_bounds(session: Session, now: datetime, day: date | None = None) -> tuple[datetime, datetime]:
    """[start, end) of a local day (default: today) in the tenant's time zone, in UTC."""
    zone = tenant_timezone(session)
    tz, day = ZoneInfo(zone), day or timezones.today(zone, now)
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
        .add_columns(Customer.id.label("customer_id"))
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
        prev=got.prev(cursor),
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
    # as the chat names them: the waited-for member's remark on the customer
    remarks = remarks_on(session, {w.customer_id for w in rows if w.customer_id is not None})
    book = PolicyBook(session)
    timezone = tenant_timezone(session)
    out = []
    for w in rows:
        policy = book.by_id(w.policy_id)
        step_due, action, target, note = pending.get(w.id, (None, None, None, None))
        due = step_due
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
                "customer": "" if w.name is None else w.name or UNNAMED,  # (None: no customer known)
                "remark": remarks.get((w.customer_id, w.staff_userid)),
                "staff_userid": w.staff_userid,
                "since": w.started_at,
                "waited_s": max(0.0, (now - w.started_at).total_seconds()),
                # by the policy's own clock, where it counts business hours only
                "waited_business_s": book.waited_business_s(policy, w.started_at, now),
                "breached_step": w.breached_step,
                "next_step_at": due,
                # when the step itself fires, and counts as a breach: before next_step_at where
                # quiet hours hold its call (22:10, ringing at 08:00)
                "next_step_due_at": step_due,
                "next_step_action": action,
                "next_step_target": target,
                # who a leader or contact step would reach, by the policy (the board names them)
                "escalation_contact": policy.escalation_contact,
                # whose policy it is (0: the tenant's): the board links that one's page
                "policy_department_wecom_id": policy.department_wecom_id,
                "next_step_after_quiet_hours": quiet,
                # (not shown: whether a call placed lately covers the step, next_calls_covered)
                "call_cooldown_s": policy.call_cooldown_s,
                # (one run out holds nothing: null, as the conversation's `snooze` is)
                **_snooze_of(w, now),
            }
        )
    return out


def _snooze_of(w, now: datetime) -> dict:
    held = w.snoozed_until is not None and w.snoozed_until > now
    return {
        "snoozed_until": w.snoozed_until if held else None,
        "snoozed_by": w.snoozed_by if held else "",
        "snoozed_at": w.snoozed_at if held else None,
    }


def call_held_until(
    policy: PolicyView,
    at: datetime,
    timezone: str,
    calendar_of: Callable[[PolicyView], BusinessCalendar],
    held: bool = False,
) -> datetime | None:
    """When a call that would go at `at` may be placed, if the policy's quiet hours hold it
    back: once they are over and, under business hours, the business clock runs (not on a
    Saturday morning when it runs Monday to Friday, nor at a shift's 07:00 inside quiet hours
    till 07:30); None when it may go at `at`. `held`: the call was put off by them already (its
    outbox row is due later): on Saturday it still waits for Monday's shift, though quiet hours
    no longer hold it. A shift's end is no hold of its own: a call whose step came due as the
    shift closed rings then. Firing holds calls by it, the sender too, and the board shows
    when a held call will go."""
    if not held and quiet_until(at, policy.quiet_hours, timezone) is None:
        return None
    t = at
    for _ in range(16):  # each round ends quiet hours or opens a shift; a policy whose every
        # shift lies in its quiet hours (refused on save, CALL_NEVER) would go round for ever
        later = quiet_until(t, policy.quiet_hours, timezone) or t
        if policy.business_hours_only:
            later = calendar_of(policy).add(later, 0)
        if later == t:
            break
        t = later
    return t if t != at else None


def placed_since(since: datetime):
    """A call that keeps the cooldown begun at `since` running: placed, and queued or rung after
    it (a call placed late, retried, is as recent as its ring). Firing covers a call step to the
    same person by it (firing._queue_call); the board says so ahead (next_calls_covered). Not
    one whose outcome is unknown (CALL_OUTCOME_UNKNOWN): it may not have rung, and a step it
    covered would ring about nobody."""
    return (SlaCall.status == "placed") & or_(SlaCall.created_at > since, SlaCall.placed_at > since)


def still_to_ring():
    """A call queued and not placed yet: held by quiet hours, or being retried after the voice
    provider refused it. Firing joins a call step to the same person to it rather than place
    another, and it speaks of that step's wait too when it rings (firing._queue_call); the
    board says so ahead (next_calls_covered). Not one handed to the provider by a try that got
    no answer: it may have rung and rings no more (tasks._call_hold), a step joined to it never."""
    return and_(SlaCall.status == "queued", SlaCall.provider == "")


def calls_still_to_ring(
    session: Session, callees: set[str], now: datetime, book: PolicyBook | None = None
) -> dict[str, tuple[datetime, str | None]]:
    """When each of these people's call still to ring (still_to_ring, the latest) will ring, and
    why not at once: "quiet_hours" (its policy's quiet hours hold it: tasks._call_hold),
    "retrying" (the voice provider refused it; the outbox tries again then) or None (due now).
    Not one whose policy lets no call ring (it never does). Two reads, and the policies where
    the caller has no `book`."""
    c, e, o = SlaCall, SlaEscalation, OutboxMessage
    # from the calls' messages still to go (the unsent rows' own index, as calls_held reads
    # them): not from every call the callees ever had
    sending = {
        payload.get("call"): (due_at, last_error)
        for payload, due_at, last_error in session.execute(
            select(o.payload, o.due_at, o.last_error).where(
                o.kind == "sla_call",
                text(UNSENT),
                o.status == "pending",
                bulk.among(session, o.recipient, callees),
            )
        )
    }
    if not sending:
        return {}
    latest: dict[str, tuple[int, int | None]] = {}
    for call, callee, policy_id in session.execute(
        select(c.id, c.callee_userid, SlaWait.policy_id)
        .outerjoin(e, e.id == c.escalation_id)
        .outerjoin(SlaWait, SlaWait.id == e.wait_id)
        .where(bulk.among(session, c.id, [i for i in sending if i is not None]), still_to_ring())
        .order_by(c.created_at)
    ):
        latest[callee] = (call, policy_id)
    book, timezone = book or PolicyBook(session), tenant_timezone(session)
    out = {}
    for callee, (call, policy_id) in latest.items():
        policy = book.by_id(policy_id)
        if calls_never_ring(policy):
            continue
        due_at, last_error = sending[call]
        at = max(due_at, now)
        held = call_held_until(policy, at, timezone, book.calendar, held=due_at > now and not last_error)
        if held is None and due_at > now:
            # put off by the sender till the quiet hours end (due then, which they no longer
            # hold): they still hold it now
            ends = call_held_until(policy, now, timezone, book.calendar)
            held = ends if ends is not None and due_at <= ends else None
        out[callee] = (held, "quiet_hours") if held else (at, "retrying" if last_error else None)
    return out


def next_calls_covered(
    session: Session, rows: list[dict], callees: dict[int, str], now: datetime, book: PolicyBook | None = None
) -> None:
    """Each board row's `next_step_called_at`: where its next step is a call to someone
    (`callees`, by conversation: next_step_people's) rung so lately that the policy's cooldown
    still runs when the step fires (when due, or now if overdue), when they were rung: firing
    will not ring them again for it. None otherwise. And `next_step_queued_call_at` (and
    `_why`, calls_still_to_ring's): where a call to them still to ring will ring when the step
    fires or after (the step joins it, and it speaks of the wait too), or within the cooldown
    before (the cooldown then covers the step), when it rings. One read for all the rows, and
    two more where a call is still to ring."""
    due = {
        r["conversation_id"]: max(r["next_step_due_at"], now) - timedelta(seconds=r["call_cooldown_s"])
        for r in rows
        if r["next_step_action"] == "voice_call" and r["next_step_due_at"] and r["conversation_id"] in callees
    }
    latest: dict[str, datetime] = {}
    if due:
        c = SlaCall
        who = {callees[cid] for cid in due}
        for callee, created, placed in session.execute(
            select(c.callee_userid, func.max(c.created_at), func.max(c.placed_at))
            .where(bulk.among(session, c.callee_userid, who), placed_since(min(due.values())))
            .group_by(c.callee_userid)
        ):
            latest[callee] = max(at for at in (created, placed) if at is not None)
    # a call still to ring then takes the step in; one ringing sooner, within the cooldown, will
    # have rung: placed_since's, as above once it has
    queued = calls_still_to_ring(session, {callees[cid] for cid in due}, now, book) if due else {}
    for r in rows:
        since = due.get(r["conversation_id"])
        called = since and latest.get(callees[r["conversation_id"]])
        r["next_step_called_at"] = called if called and called > since else None
        rings, why = (since and queued.get(callees[r["conversation_id"]])) or (None, None)
        if rings is None or rings <= since:
            rings, why = None, None
        r["next_step_queued_call_at"], r["next_step_queued_call_why"] = rings, why


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
CALL_OUTCOME_UNKNOWN = (
    "呼叫结果未知：上次已交给语音服务商，但没有收到回答（超时或进程中断），可能已经响铃；为免重复响铃不再拨打"
)
CALL_NOT_NEEDED = "拨打前客户都已得到回复或暂缓提醒"
# A call step fired while another call to the same person was being placed: that call rang
# within the cooldown (tasks._call_plan), as firing covers a step by one placed before it.
CALL_JUST_RUNG = "拨打前该成员刚接到另一通超时提醒电话（冷却期内），这次不再拨打"
CALLS_NOT_NEEDED = (CALL_NOT_NEEDED, "拨打前客户都已得到回复", "answered before the call", CALL_JUST_RUNG)
# Why a call held (quiet hours, a retry) did not ring: its callee left the corp meanwhile.
CALLEE_LEFT = "拨打前该成员已离职或停用，电话未拨打"
# Why the board says a call still to ring will not: its wait was snoozed since the step fired.
CALL_SNOOZED_OFF = "已暂缓提醒，电话不会再为这位客户打"
# Why the board says a card did not go for a step: its wait was snoozed before the card was built.
CARD_SNOOZED_OFF = "已暂缓提醒，卡片没有提这位客户"
# Why a call did not ring and never will: its policy lets no call ring (the call is recorded
# so when it comes due, siyu.sla.tasks._call_hold; one still queued reads so till then).
CALL_NEVER = "策略的班次都在免打扰时段内，电话永远不会拨打：请调整班次或免打扰时段"


def skip_reason(note: str | None) -> str | None:
    """Why firing skipped a step, as the board and the timeline name it: "stale" (due long ago)
    or "nobody" (nobody to tell); None for a note firing does not write on a skipped step."""
    if (note or "").startswith(STALE):
        return "stale"
    if (note or "").startswith(NOBODY_TO_REACH):
        return "nobody"
    return None


def delivery_problems(
    session: Session,
    start: datetime,
    end: datetime,
    recipients: Sequence[str] | None = None,
    newest: int | None = None,
    me: str | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Escalation cards and calls of [start, end) that have not reached their person: cards
    WeCom refused so far (being retried, with the error) or gave up on, calls that failed or
    were skipped (voice calls off, no number) or will never ring (the policy's shifts all lie
    in its quiet hours), steps that reached nobody. Newest first, each with the customers it
    was about (_name_customers: named where `recipients`, or being `me`, the one it was for,
    lets the reader see them); `recipients` limits them to those sent to one of them, about a
    wait of one of them (a card to an escalation contact outside a supervisor's team about the
    team's customer too) or sent to `me`, `newest` lists only that many; with how many there are of each
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
    calls = select(
        c.callee_userid, c.created_at, c.status, c.error, c.id, c.escalation_id, c.told_waits
    ).where(
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
    unreached = select(e.agent_userid, e.fired_at, e.due_at, e.step, e.target, e.note, e.wait_id).where(
        e.fired_at >= start,
        e.fired_at < end,
        e.status == "skipped",
        or_(e.note.startswith(NOBODY_TO_REACH), stale),
    )
    # A card or a call belongs to whoever sees the waits it was about, which its payload or
    # plan keeps (JSON): for a reader who sees only some, only those that may concern them are
    # read whole (_theirs: 5,000 failed of a day, most about other teams, each read with its
    # card and sorted out here, cost a supervisor 0.1 to 0.2 s a board) and sorted out below
    # (_concerns); the calls being retried all (a few: one a callee per cooldown). A step's
    # agent is its wait's.
    scoped = recipients is not None
    if scoped:
        staff, readers = set(recipients), {*recipients, *([me] if me else [])}
        unreached = unreached.where(e.agent_userid.in_(sorted(staff)))
        theirs = _theirs(
            session, cards.with_only_columns(o.id, o.recipient, o.payload[CARD_TOLD]), staff, readers
        )
        cards = cards.where(bulk.among(session, o.id, theirs))
        theirs = _theirs(
            session, calls.with_only_columns(c.id, c.callee_userid, c.told_waits), staff, readers
        )
        calls = calls.where(bulk.among(session, c.id, theirs))

    def rows(q, at, every: bool = False):
        return session.execute(q if newest is None or every else q.order_by(at.desc()).limit(newest))

    counts: dict[str, int] = {}

    def count(q, by, name=lambda key: key) -> None:
        for key, n in session.execute(q.with_only_columns(by, func.count()).group_by(by)):
            counts[name(key)] = counts.get(name(key), 0) + n

    sent = [
        _problem(
            "card",
            m.recipient or m.payload.get("touser", ""),
            m.created_at,
            "retrying" if m.status == "pending" else "given_up",
            m.last_error,
            attempts=m.attempts,
            next_try_at=m.due_at if m.status == "pending" else None,
            # the waits it spoke of, once built; else those of its steps
            about=_About(waits=m.payload.get(CARD_TOLD), steps=m.payload.get("escalations") or []),
        )
        for m in rows(cards, o.created_at, scoped)
    ]
    sent += [
        _problem(
            "call",
            r.callee_userid,
            r.created_at,
            r.status,
            r.error,
            # as planned; one never planned (no call rings under its policy): its steps
            about=_About(waits=r.told_waits, call_step=r.escalation_id),
        )
        for r in rows(calls, c.created_at, scoped)
    ]
    sent += [
        _problem(
            "call",
            m.recipient or m.payload.get("callee", ""),
            m.created_at,
            "retrying",
            m.last_error,
            attempts=m.attempts,
            next_try_at=m.due_at,
            about=_About(call=m.payload.get("call"), steps=m.payload.get("escalations") or []),
        )
        for m in rows(retried, o.created_at, scoped)
    ]
    if not scoped:
        count(cards, o.status, lambda status: "retrying" if status == "pending" else "given_up")
        count(calls, c.status)
        count(retried, o.kind, lambda _: "retrying")
    timezone = ZoneInfo(tenant_timezone(session))
    steps = []
    for r in rows(unreached, e.fired_at):
        kind = skip_reason(r.note)
        why = _stale_reason(r, timezone) if kind == "stale" else _nobody_reason(r)
        steps.append(
            _problem(
                "step",
                r.agent_userid,
                r.fired_at,
                kind,
                why,
                target=r.target,
                about=_About(waits=[r.wait_id]),
            )
        )
    count(unreached.where(stale), e.status, lambda _: "stale")
    count(unreached.where(~stale), e.status, lambda _: "nobody")
    if scoped:
        waits = _waits_about(session, [p["about"] for p in sent + steps])
        seen = set(recipients)
        sent = [p for p in sent if _concerns(p, waits, seen, me)]
        for p in sent:
            counts[p["status"]] = counts.get(p["status"], 0) + 1
    out = sorted(sent + steps, key=lambda d: d["at"], reverse=True)
    out = out if newest is None else out[:newest]
    if not scoped:
        waits = _waits_about(session, [p["about"] for p in out])
    _name_customers(out, waits, recipients, me)
    return out, counts


def _theirs(session: Session, q, staff: set[str], readers: set[str]) -> list[int]:
    """Of the cards or calls `q` selects as (id, recipient, the waits it spoke of), those that
    may concern a reader who sees `staff`: sent to one of `readers` (or to nobody named: the
    payload tells), speaking of a wait of theirs, or keeping no waits (told by its steps:
    _concerns). Read as these three columns, not the whole card; the database names which of
    the waits spoken of are theirs, in one statement however many."""
    rows = session.execute(q).all()
    named = {w for _, _, told in rows if isinstance(told, list) for w in told}
    theirs = set()
    if named:
        w = SlaWait
        theirs = set(
            session.scalars(select(w.id).where(bulk.among(session, w.id, named), w.staff_userid.in_(staff)))
        )
    return [
        i
        for i, recipient, told in rows
        if recipient in readers or not recipient or not isinstance(told, list) or not theirs.isdisjoint(told)
    ]


@dataclass
class _About:
    """What a row of delivery_problems was about, as its card, call or step keeps it: the waits
    it spoke of (None: not kept), else its steps; a call being retried by its SlaCall's id
    (the waits it was planned about), a call never planned by its own step (the steps queued
    on it since are in its outbox row)."""

    waits: list[int] | None = None
    steps: list[int] = field(default_factory=list)
    call: int | None = None
    call_step: int | None = None


def _waits_about(session: Session, about: list[_About]) -> dict:
    """Sets each one's `waits` (from its call's plan or its steps where it keeps none) and
    gives those waits by id, with their agent and customer; four reads for all the rows,
    however many."""
    o = OutboxMessage
    planned: dict[int, list | None] = {}
    calls = {a.call for a in about if a.call is not None}
    if calls:
        planned = dict(
            session.execute(
                select(SlaCall.id, SlaCall.told_waits).where(bulk.among(session, SlaCall.id, calls))
            ).all()
        )
    queued: dict[str, list | None] = {}
    keys = {f"sla-call:{a.call_step}" for a in about if a.waits is None and a.call_step is not None}
    if keys:
        queued = dict(
            session.execute(
                select(o.dedupe_key, o.payload["escalations"]).where(
                    o.kind == "sla_call", bulk.among(session, o.dedupe_key, keys)
                )
            ).all()
        )
    for a in about:
        if a.call is not None and planned.get(a.call) is not None:
            a.waits = planned[a.call]
        elif a.waits is None and a.call_step is not None:
            a.steps = [a.call_step, *(queued.get(f"sla-call:{a.call_step}") or [])]
    steps = {step for a in about if a.waits is None for step in a.steps}
    wait_of: dict[int, int] = {}
    if steps:
        wait_of = dict(
            session.execute(
                select(SlaEscalation.id, SlaEscalation.wait_id).where(
                    bulk.among(session, SlaEscalation.id, steps)
                )
            ).all()
        )
    for a in about:
        if a.waits is None:
            a.waits = [wait_of[s] for s in a.steps if s in wait_of]
    ids = {w for a in about for w in a.waits}
    found = {}
    if ids:
        w, c = SlaWait, Conversation
        for row in session.execute(
            select(w.id, w.conversation_id, w.staff_userid, w.started_at, Customer.name, c.external_userid)
            .join(c, c.id == w.conversation_id)
            # named as the board's waiting rows name them
            .outerjoin(Customer, Customer.id == func.coalesce(c.customer_id, w.customer_id))
            .where(bulk.among(session, w.id, ids))
        ):
            found[row.id] = row
    return found


def _concerns(problem: dict, waits: dict, seen: set[str], me: str | None) -> bool:
    """Whether a reader who sees the members and customers of `seen` is told of a card or
    call not delivered: it was for one of those members (a supervisor learns a member of the
    team was not reached, whoever's customer it was about: named only where theirs), about one
    of their waits (a card to an escalation contact outside the team about the team's
    customer), or for the reader (an escalation contact told of another team's customers)."""
    if problem["recipient"] in seen or (me and problem["recipient"] == me):
        return True
    return any(waits[w].staff_userid in seen for w in problem["about"].waits if w in waits)


def _name_customers(
    problems: list[dict], waits: dict, recipients: Sequence[str] | None, me: str | None
) -> None:
    """Each row's `customers` ({conversation_id, name}, longest waiting first) and
    `customers_total`, from its waits (_waits_about): a supervisor reading that a card to
    张三 failed learns whose customer went unreminded. Named only where the reader may open the
    chat (the wait's agent among `recipients`, or the card was for `me`:
    conversations.queries.get_conversation), counted all the same."""
    seen = None if recipients is None else set(recipients)
    for p in problems:
        about: _About = p.pop("about")
        rows = sorted(
            (waits[w] for w in set(about.waits or []) if w in waits), key=lambda r: (r.started_at, r.id)
        )
        named: dict[int, str] = {}
        for r in rows:
            if seen is None or r.staff_userid in seen or (me and p["recipient"] == me):
                # (an outer join: None where the chat has no customer, "" for a name that shows nothing)
                name = r.external_userid if r.name is None else r.name or UNNAMED
                named.setdefault(r.conversation_id, name)
        p["customers"] = [{"conversation_id": cid, "name": name} for cid, name in named.items()]
        p["customers_total"] = len({r.conversation_id for r in rows})


def _stale_reason(e, timezone: ZoneInfo) -> str:
    late = wait_text((e.fired_at - e.due_at).total_seconds()) if e.fired_at else ""
    due = timezones.wall_clock(e.due_at, timezone.key, "%m-%d %H:%M")
    return (
        f"第 {e.step + 1} 步 {due} 到期，{late}后才轮到（超过策略的过期时限），跳过未发："
        "那段时间归档没有拉取或后台任务停了，或消息是后来导入的 / skipped: due long ago"
    )


_LEADERS_LEFT = "; leaders left"
_LEADERS_UNSEEN = "; leaders outside the app's visible range"
_CONTACT_IS_AGENT = "; escalation contact is the agent"  # (not told of their own customer as a leader)
_AGENT_LEFT = "; the agent left"


def nobody_note(session: Session, target: str, policy: PolicyView, agent_userid: str = "") -> str:
    """Why a step reached nobody, as its row keeps it (the board's list of steps not delivered)."""
    note = f"{NOBODY_TO_REACH} for target {target}"
    # (WeCom's console shows leaders all the same: the admin must name ones still here, or let
    # the app see them; the step found none it could reach)
    named = set(leaders_named(session, agent_userid)) if target == "leader" and agent_userid else set()
    if named:
        note += _LEADERS_LEFT if members_left(session, named) == named else _LEADERS_UNSEEN
    contact = policy.escalation_contact
    if target == "agent" and agent_userid in members_left(session, [agent_userid]):
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
        leaders = "该成员没有直属上级，主部门也没有负责人"
        if _LEADERS_LEFT in (e.note or ""):
            leaders = "该成员的直属上级和部门负责人都已离职或停用"
        elif _LEADERS_UNSEEN in (e.note or ""):
            leaders = "该成员的上级不在应用的可见范围内，Siyu 同步不到他们"
        why = f"{leaders}，{gone or '策略里也没有设升级联系人'}"
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
    about: _About | None = None,
) -> dict:
    """One row of delivery_problems (the SLA board's "did not reach them"). For a step that
    found nobody to tell (kind "step"), `recipient` is the agent whose customer waited and
    `target` whom the step was for; `about`: the customers it was about (_name_customers
    names them)."""
    return {
        "about": about or _About(),
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
    # by ("call", its id) (None: not planned, or before calls kept them)
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
    placed_at: dict = {}  # by call id
    wanted_calls = [e.id for e in fired if e.action == "voice_call" and e.id not in call_of]
    own_call: dict[int, int] = {}  # a call step's own call, by the step's id
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
                own_call[call.escalation_id] = call.id
    # a call still queued that the voice provider refused so far: being retried, and why (for
    # the steps that joined it too: they had read 排队中, no reason given)
    queued = [step for step, call_id in own_call.items() if calls[call_id][0] == "queued"]
    if queued:
        for key, last_error in session.execute(
            select(OutboxMessage.dedupe_key, OutboxMessage.last_error).where(
                bulk.among(session, OutboxMessage.dedupe_key, [f"sla-call:{i}" for i in queued]),
                OutboxMessage.status == "pending",
                OutboxMessage.last_error != "",
            )
        ):
            step = int(key.rsplit(":", 1)[1])
            calls[("step", step)] = calls[own_call[step]] = ("retrying", last_error)
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
    # every step on a call by the call itself, the step that queued it as those it covers: the
    # call speaks of a wait by its latest step on it, whichever that is (tasks._call_plan)
    calls_of = [e.id for e in fired if e.action == "voice_call"]
    on_call = {i: call_of.get(i, own_call.get(i, ("step", i))) for i in calls_of}
    _not_told(session, fired, out, on_call, placed_at, card_of, told)
    return out


def _not_told(
    session: Session, fired: Sequence, out: dict, on_call: dict, placed_at: dict, card_of: dict, told: dict
) -> None:
    """A card or call speaks only of the waits still open and not snoozed since their latest
    step on it fired when it is built or rings (left_out; siyu.sla.tasks._open_entries_many,
    _call_plan): a step whose wait it left out reads so (snoozed | ended), not as the card's
    sent / skipped / queued or the call's placed / queued / skipped. Each keeps the waits it
    spoke of (CARD_TOLD in a card's payload, SlaCall.told_waits; one that found none to speak of
    was skipped), so that a snooze made after it went changes nothing; one still to go is read
    ahead by the same rule, as soon as it is known (a snooze ending before it goes does not bring
    the wait back). Calls placed before they kept theirs are read from the dates. `told` holds
    the cards' by their id and dedupe key, the calls' by ("call", their key in on_call's terms):
    on_call, each call step's call (its SlaCall id; ("step", its id) where it has none)."""
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
    carrier.update({e.id: ("call", on_call[e.id]) for e in steps})
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
            rang = placed_at.get(on_call[e.id])
        if snoozed and (rang is None or w.snoozed_at <= rang):
            out[e.id] = ("snoozed", CALL_SNOOZED_OFF)
        elif w.closed_at is not None and (rang is None or w.closed_at <= rang):
            out[e.id] = ("ended", "")


def held_calls(
    session: Session,
    queued: Sequence,
    now: datetime,
    call_of: dict | None = None,
    book: PolicyBook | None = None,
) -> dict[int, datetime]:
    """When the calls still to ring of these fired steps will ring, for those quiet hours hold
    back now (the outbox places each when they end). `call_of`: each step's call, where the
    steps are of several calls; without it they are read as one wait's steps on one call
    (those deliveries reads as queued: each on a call that will speak of its wait). `book`: the
    tenant's policies, where the caller read them already."""
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
    # snoozed since the wait's latest step on the call: that call will not ring for it
    # (siyu.sla.tasks._call_plan), though a step of it that fired after the snooze rings it
    latest: dict = {}
    for e in calls:
        key = ((call_of or {}).get(e.id), e.wait_id)
        latest[key] = max(filter(None, (e.fired_at, latest.get(key))), default=None)
    calls = [
        e
        for e in calls
        if not snoozed_since_fired(snoozed_at.get(e.wait_id), latest[((call_of or {}).get(e.id), e.wait_id)])
    ]
    book, timezone = book or PolicyBook(session), tenant_timezone(session)
    # nor one whose policy lets no call ring (saved before that was refused): no time to promise
    calls = [e for e in calls if not calls_never_ring(book.by_id(policy_of.get(e.wait_id)))]
    until = {  # the same for every call under one policy: worked out once a policy (still to
        # ring, it was put off: one just queued goes within the second)
        policy_id: call_held_until(book.by_id(policy_id), now, timezone, book.calendar, held=True)
        for policy_id in {policy_of.get(e.wait_id) for e in calls}
    }
    held = {e.id: until[policy_of.get(e.wait_id)] for e in calls}
    return {k: v for k, v in held.items() if v is not None}


def calls_never_ring(policy: PolicyView) -> bool:
    """Whether the policy's quiet hours hold every moment its business clock runs: a call waits
    for a shift they hold again, for ever (refused on save: _calls_never_placed)."""
    return bool(policy.business_hours_only) and shifts_all_quiet(policy.shifts, policy.quiet_hours)


def calls_never_placed(session: Session, queued: Sequence, book: PolicyBook | None = None) -> set[int]:
    """Of these fired steps whose call is still to ring, those whose policy lets no call ring:
    the sender records such a call as never placed when it comes due (one queued before it
    did so may be hours from that). `book`: as held_calls'."""
    calls = [e for e in queued if e.action == "voice_call"]
    if not calls:
        return set()
    wait_ids = {e.wait_id for e in calls}
    waits = select(SlaWait.id, SlaWait.policy_id).where(bulk.among(session, SlaWait.id, wait_ids))
    policy_of = dict(session.execute(waits).all())
    book = book or PolicyBook(session)
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
    for step, at in held_calls(session, list(session.execute(steps)), now, call_of).items():
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


@dataclass
class OpenWaitCall:
    """Where the calls of the conversation's open wait stand, read once for the chat page."""

    held_until: datetime | None  # when a call quiet hours hold back will ring
    never: PolicyView | None  # the policy under which a call fired that never rings


def open_wait_call(session: Session, conversation_id: int, now: datetime) -> OpenWaitCall:
    """held_until: when the call about the conversation's open wait will ring, where its step
    fired in quiet hours and the call waits in the outbox for them to end; None when there is
    none. never: the policy of that wait where a call step of it fired whose call never rings:
    the policy's shifts all lie in its quiet hours (the call recorded so, or still queued under
    such a policy); None otherwise. The chat says so, and what to change, rather than that
    every reminder went out."""
    calls, reached = _open_wait_calls(session, conversation_id)
    queued = [e for e in calls if reached.get(e.id, ("",))[0] == "queued"]
    book = PolicyBook(session) if queued else None  # the policies, read once for both questions
    held = held_calls(session, queued, now, book=book)
    never = {e.id for e in calls if reached.get(e.id, ("",))[0] == "never"}
    never |= calls_never_placed(session, queued, book)
    policy = None
    if never:
        wait_id = next(e.wait_id for e in calls if e.id in never)
        policy_id = session.scalar(select(SlaWait.policy_id).where(SlaWait.id == wait_id))
        policy = (book or PolicyBook(session)).by_id(policy_id)
    return OpenWaitCall(max(held.values(), default=None), policy)


def marked_by(session: Session, conversation_id: int, by: str) -> bool:
    """Whether the chat's wait to close last was marked 无需回复 by `by` (the name they signed
    in as): a second tap of the button (a slow network, a form sent again) finds nothing
    waiting because of their own first."""
    last = session.execute(
        select(SlaWait.close_reason, SlaWait.closed_by)
        .where(SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_not(None))
        .order_by(SlaWait.closed_at.desc(), SlaWait.id.desc())
        .limit(1)
    ).first()
    return last is not None and last.close_reason == "dismissed" and last.closed_by == by


def board(session: Session, now: datetime) -> dict:
    """The SLA board: who waits now (longest first), today's breaches and response times."""
    start, end = day_bounds(session, now)
    return {
        "waiting": waiting_now(session, now),
        "breaches_today": breaches(session, start, end),
        "first_response_today": first_response(session, start, end),
    }
