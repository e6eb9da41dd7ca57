"""JSON API for SLA under /api/v1: the board, snoozing a wait, the tenant's policy.

  GET  /api/v1/sla/board                       who waits now (longest first, `limit` a page,
                                               `next` / `prev` cursors), today's breaches,
                                               first-response figures of all; scoped like
                                               conversations (agent: own, supervisor:
                                               team, admin: everyone)
  POST /api/v1/conversations/{id}/snooze       {minutes}: no escalation before now + minutes
  GET  /api/v1/sla/policy                      the tenant's policy (admin), or the default
  PUT  /api/v1/sla/policy                      change it (admin); 422 with the reason
  GET  /api/v1/sla/policies                    the tenant's and every department's policy,
                                               and which one each department follows (admin)
  GET  /api/v1/sla/policies/{department}       one department's own policy (0: the tenant's)
  PUT  /api/v1/sla/policies/{department}       create (201) or change (200) it; a new one
                                               starts from what the department follows now
  DELETE /api/v1/sla/policies/{department}     remove it (204): its members follow the parent
                                               department's policy, else the tenant's; the
                                               tenant's (0) cannot be removed (409)

Auth is the web session cookie; POST/PUT/DELETE also need the `X-CSRF-Token` header. The board
helpers here (`board_for`, `policy_out`, `apply_policy`, `snooze_for`, `policies_out`,
`department_policy_out`, `apply_department_policy`) also serve the pages.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from siyu.conversations import queries as conversation_queries
from siyu.conversations import service as conversation_service
from siyu.conversations.models import Conversation, Message
from siyu.conversations.schemas import WroteAgainOut
from siyu.customers.queries import staff_names
from siyu.db import bulk
from siyu.db.database import retry_deadlocks
from siyu.db.paging import BadCursor
from siyu.db.versions import version_of
from siyu.sla import queries, service
from siyu.sla.calendar import official_calendar_through
from siyu.sla.models import SlaCalendarChange, SlaCalendarDay, SlaEscalation, SlaPolicy, SlaWait
from siyu.sla.schemas import (
    BoardOut,
    CalendarDay,
    DepartmentPolicyIn,
    DepartmentPolicyOut,
    PoliciesOut,
    PolicyFieldsIn,
    PolicyIn,
    PolicyOut,
    SnoozeIn,
    SnoozeOut,
)
from siyu.tenancy import timezones
from siyu.tenancy.models import Department, Staff
from siyu.tenancy.queries import member_userid, still_with_the_corp
from siyu.web.api_errors import (
    ADMIN,
    ADMIN_WRITE,
    API_RESPONSES,
    NOT_FOUND,
    WRITE,
    ClearNotFound,
    error,
    invalid,
    not_found,
)
from siyu.web.api_etag import etag, if_match, if_match_header, not_an_etag
from siyu.web.api_paging import After, Before
from siyu.web.auth import ApiViewer, Viewer, require_admin

router = APIRouter(prefix="/api/v1", tags=["sla"], responses=API_RESPONSES)


# ---------------------------------------------------------------- the board


# A wait of the day as the on-time shares count it: its policy's steps, how long it took (or has
# run so far) by that policy's clock, and whether it was answered.
Measured = tuple[list, list[datetime], datetime, bool]  # steps, when each came due, end, answered


def _measure(
    answered: list[tuple[datetime, float, int | None]],
    unanswered: list[tuple[datetime, datetime | None, int | None]],
    now: datetime,
    book: service.PolicyBook,
) -> list[Measured]:
    """Each wait of the day measured, answered ones first, in the order given: by the policy it
    ran under (a department's may differ from the tenant's; none is the built-in default), as
    that policy and the special dates stood when the wait ended (or stand now, for one still
    open: editing a policy or the calendar leaves past days as they were), and by its clock
    (business time where it counts only that). Each step is judged by the moment it came due,
    as firing judges it: by business seconds, a wait that reached a step's delay at the shift's
    end stayed at it all night, and a reply the next morning, after the step had fired, read
    as in time."""

    def dues(policy: service.PolicyView, started: datetime, end: datetime, ended: bool) -> list[datetime]:
        wall = [started + timedelta(seconds=s.delay_s) for s in policy.steps]
        # business time is never longer than wall time: within every step already, or no calendar
        if not policy.business_hours_only or end <= min(wall, default=started):
            return wall
        calendar = book.calendar(policy, end if ended else None)
        return [calendar.add(started, s.delay_s) for s in policy.steps]

    measured = []
    for started, response_s, policy_id in answered:
        ended = started + timedelta(seconds=response_s)
        policy = book.measured_by(policy_id, ended)
        measured.append((policy.steps, dues(policy, started, ended, True), ended, True))
    for started, closed, policy_id in unanswered:
        policy = book.measured_by(policy_id, closed or now)
        end = closed or now
        measured.append((policy.steps, dues(policy, started, end, closed is not None), end, False))
    return measured


def _count_within(measured: list[Measured], tenant: service.PolicyView) -> list[dict]:
    """Per step, the waits measured by _measure answered within its delay, those answered later,
    and those that ran past it unanswered (still open, or closed without a reply only after
    it); `delay_s` is the tenant's delay for the step where it has one, `delays_s` those the
    waits were held to. The steps are those of the waits' policies (the tenant's, with none):
    a team under a department's one-step policy has one row, not the tenant's three, and its
    1 minute is not listed beside the tenant's 2 that none of its waits had."""
    out = []
    for i in range(max((len(steps) for steps, *_ in measured), default=len(tenant.steps))):
        inside = late = outlived = 0
        delays = set() if measured else {tenant.steps[i].delay_s}
        for steps, due, end, done in measured:
            if i >= len(steps):
                continue
            delays.add(steps[i].delay_s)
            if done and end <= due[i]:
                inside += 1
            elif done:
                late += 1
            elif end > due[i]:
                outlived += 1
        decided = inside + late + outlived
        out.append(
            {
                "step": i,
                "delay_s": tenant.steps[i].delay_s if i < len(tenant.steps) else min(delays),
                "delays_s": sorted(delays),
                "answered": inside,
                "answered_late": late,
                "outlived": outlived,
                "share": inside / decided if decided else None,
            }
        )
    return out


def _business_responses(book: service.PolicyBook, answered: list) -> list[float] | None:
    """Each answered wait's first response by its policy's clock, as it and the special dates
    stood when the wait was answered: business time where the policy counts only that (a
    Friday 17:59 question answered Monday 09:01 took 2 minutes), else wall time; None when no
    wait of them ran under such a policy."""
    out, counted = [], False
    for response_s, _, policy_id, started in answered:
        business_s = book.answered_business_s(
            policy_id, started, started + timedelta(seconds=float(response_s))
        )
        counted = counted or business_s is not None
        out.append(float(response_s) if business_s is None else business_s)
    return out if counted else None


class FutureDay(ValueError):
    """The board was asked for a day that has not come yet (in the tenant's time zone)."""


# Waits that closed owing nothing: answered; recalled by the customer; folded into an earlier
# question's wait when the reply that had answered it was recalled (that wait counts instead).
_NOT_OWED = ("replied", "recalled", conversation_service.MERGED)


# The board's API lists this many waiting customers by default, and at most MAX_WAITING_LISTED
# a page (each listed one costs its steps, message and business-time wait; the page lists 200).
WAITING_LISTED = 50
MAX_WAITING_LISTED = 200
# and the newest of the day's deliveries that failed (an import of months of chats skips
# thousands of steps at once); all of them are counted by status
PROBLEMS_LISTED = 100


def board_for(
    session: Session,
    viewer: Viewer,
    now: datetime,
    day: date | None = None,
    limit: int | None = None,
    after: str | None = None,
    before: str | None = None,
    problems: int | None = None,
) -> dict:
    """queries.board, limited to the staff the viewer may see, with names, the waiting
    message, the steps that fired on each wait and how far each got; breaches, first
    responses and deliveries that failed on `day` (the tenant's today by default). `limit`:
    only that many of the waits are listed, the longest, or those after (before) a cursor
    of the list (BadCursor for one it did not hand out); every figure counts all of them.
    `problems`: only the newest deliveries that failed that many (counted all the same, by
    status)."""
    scope = viewer.visible_staff  # None: the whole tenant
    today = timezones.today(service.tenant_timezone(session), now)
    if day is not None and day > today:
        # (its figures would all read 0, as if nobody had waited that day)
        raise FutureDay(f"还没到 {day} 这一天，看板只有今天和以前的 / {day} has not come yet")
    names = staff_names(session)
    staff = sorted(scope) if scope is not None else None
    if limit is None:
        waiting = queries.WaitingPage(queries.waiting_now(session, now, staff), None, None)
    else:
        waiting = queries.waiting_page(session, now, staff, limit, after, before)
    waiting_by_staff = queries.waiting_by_staff(session, staff)
    conv_ids = [w["conversation_id"] for w in waiting.rows]
    fired: dict[int, list[dict]] = {}
    skipped: dict[int, list[dict]] = {}
    texts: dict[int, str] = {}
    titles: dict[int, str] = {}
    shown: dict[int, str] = {}
    if conv_ids:
        esc = SlaEscalation
        rows = list(
            session.execute(
                # columns, not objects: what deliveries and held_calls read of each step
                select(esc.id, esc.wait_id, esc.conversation_id, esc.step, esc.action, esc.target)
                .add_columns(esc.status, esc.recipient, esc.fired_at, esc.note)
                .join(SlaWait, SlaWait.id == SlaEscalation.wait_id)
                .where(
                    bulk.among(session, SlaEscalation.conversation_id, conv_ids),
                    SlaWait.closed_at.is_(None),
                    SlaEscalation.status.in_(("fired", "skipped")),
                )
                .order_by(SlaEscalation.step)
            )
        )
        for e in rows:  # not sent: due long ago when their turn came, or nobody to tell
            reason = queries.skip_reason(e.note) if e.status == "skipped" else None
            if reason is not None:
                skipped.setdefault(e.conversation_id, []).append(
                    {
                        "step": e.step,
                        "action": e.action,
                        "target": e.target,
                        "skipped_at": e.fired_at,
                        "reason": reason,
                    }
                )
        rows = [e for e in rows if e.status == "fired"]
        reached = queries.deliveries(session, rows)
        queued = [e for e in rows if reached.get(e.id, ("",))[0] == "queued"]
        book = service.PolicyBook(session) if queued else None  # read once for both questions
        held = queries.held_calls(session, queued, now, book=book)
        never = queries.calls_never_placed(session, queued, book)
        for e in rows:
            delivery, error = reached.get(e.id, ("", ""))
            if e.id in never:  # "queued" read as a call still to ring
                delivery, error = "never", queries.CALL_NEVER
            fired.setdefault(e.conversation_id, []).append(
                {
                    "step": e.step,
                    "action": e.action,
                    "target": e.target,
                    "fired_at": e.fired_at,
                    "delivery": delivery,
                    "delivery_error": error,
                    "held_until": held.get(e.id),
                }
            )
        began: dict[int, datetime] = {}
        for cid, text, ext, started_at, awaiting in session.execute(
            select(Conversation.id, Message.text, Conversation.external_userid, SlaWait.started_at)
            .add_columns(Conversation.awaiting_msgid)
            .join(SlaWait, SlaWait.conversation_id == Conversation.id)
            .outerjoin(Message, Message.msgid == SlaWait.msgid)
            .where(bulk.among(session, Conversation.id, conv_ids), SlaWait.closed_at.is_(None))
        ):
            texts[cid] = text or texts.get(cid, "")
            titles[cid] = ext
            began[cid] = started_at
            shown[cid] = awaiting or ""
        for cid, asked in conversation_queries.waiting_asked(session, began).items():
            if asked.texts:
                texts[cid] = conversation_queries.quote_asks(asked.texts, 60, asked.total)
            # the board's 无需回复 names it, as the chat's does: one written after it stays waiting
            shown[cid] = asked.newest_msgid or shown.get(cid, "")
    rows_out = [
        {
            **w,
            "customer": w["customer"] or titles.get(w["conversation_id"], ""),
            "staff_name": names.get(w["staff_userid"], w["staff_userid"]),
            "message": texts.get(w["conversation_id"], ""),
            "waited_s": int(w["waited_s"]),
            "waited_text": conversation_queries.wait_text(w["waited_s"]),
            "waited_business_s": None if w["waited_business_s"] is None else int(w["waited_business_s"]),
            "fired": fired.get(w["conversation_id"], []),
            "skipped": skipped.get(w["conversation_id"], []),
            "newest_msgid": shown.get(w["conversation_id"], ""),
        }
        for w in waiting.rows
    ]
    reached = service.next_step_people(session, rows_out)
    for row in rows_out:
        userid = reached.get(row["conversation_id"])
        row["next_step_to"] = {"userid": userid, "name": names.get(userid, userid)} if userid else None
    queries.next_calls_covered(session, rows_out, reached, now)

    start, end = queries.day_bounds(session, now, day)
    breaches = queries.breaches(session, start, end, sorted(scope) if scope is not None else None)

    rq = select(SlaWait.response_s).where(
        SlaWait.started_at >= start,
        SlaWait.started_at < end,
        SlaWait.close_reason == "replied",
        SlaWait.response_s.is_not(None),
    )
    if scope is not None:
        rq = rq.where(SlaWait.staff_userid.in_(sorted(scope)))
    rq = rq.add_columns(SlaWait.staff_userid, SlaWait.policy_id, SlaWait.started_at)
    answered = list(session.execute(rq))
    responses = [float(v) for v, _, _, _ in answered]
    per_agent: dict[str, list[float]] = {}
    for v, userid, _, _ in answered:
        per_agent.setdefault(userid, []).append(float(v))
    # Waits of the day left unanswered count against each step they outlived: still open, or
    # closed without a reply only after it: marked "no reply needed", the contact ended,
    # archiving declined (a share of the answered ones alone read 100 % while the breaches
    # piled up, and dismissing a late wait, or deleting its customer, took it out of the
    # figures). A recalled question was never owed a reply.
    oq = select(SlaWait.started_at, SlaWait.closed_at, SlaWait.policy_id).where(
        SlaWait.started_at >= start,
        SlaWait.started_at < end,
        or_(SlaWait.closed_at.is_(None), SlaWait.close_reason.not_in(_NOT_OWED)),
    )
    if scope is not None:
        oq = oq.where(SlaWait.staff_userid.in_(sorted(scope)))
    oq = oq.add_columns(SlaWait.staff_userid)
    unanswered = [tuple(row) for row in session.execute(oq)]
    for row in unanswered:  # one who answered none of their customers of the day: a row of 0, not none
        per_agent.setdefault(row[3], [])
    book = service.PolicyBook(session)
    # each wait of the day measured once, for the shares of all and of each team
    measured = _measure(
        [(s, float(v), p) for v, _, p, s in answered], [row[:3] for row in unanswered], now, book
    )
    within = _count_within(measured, book.fallback)
    business = _business_responses(book, answered)
    business_per_agent: dict[str, list[float]] = {}
    for (_, userid, _, _), v in zip(answered, business or [], strict=False):
        business_per_agent.setdefault(userid, []).append(v)
    problems, problem_counts = queries.delivery_problems(
        session,
        start,
        end,
        sorted(scope) if scope is not None else None,
        newest=problems,
        me=viewer.staff_userid,
    )
    return {
        "now": now,
        "waiting": rows_out,
        "waiting_total": sum(waiting_by_staff.values()),
        "next": waiting.next,
        "prev": waiting.prev,
        "breaches_by_step": breaches["by_step"],
        "breaches_by_agent": [
            {"staff_userid": u, "staff_name": names.get(u, u), "count": n}
            for u, n in sorted(breaches["by_agent"].items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "breaches_total": breaches["total"],
        "first_response": queries.response_summary(responses),
        "first_response_business": queries.response_summary(business) if business is not None else None,
        "first_response_by_agent": [
            {
                "staff_userid": u,
                "staff_name": names.get(u, u),
                **queries.response_summary(v),
                "business": queries.response_summary(business_per_agent.get(u, []))
                if business is not None
                else None,
            }
            for u, v in sorted(per_agent.items(), key=lambda kv: names.get(kv[0], kv[0]))
        ],
        "within_steps": within,
        "by_team": _by_team(
            session,
            # who waits now is today's: a past day lists the teams busy that day
            waiting_by_staff if day in (None, today) else None,
            breaches["by_agent"],
            answered,
            unanswered,
            measured,
            book.fallback,
            business,
        ),
        "day": start.astimezone(ZoneInfo(service.tenant_timezone(session))).date(),
        "delivery_problems": [
            {**p, "recipient_name": names.get(p["recipient"], p["recipient"])} for p in problems
        ],
        "delivery_problems_by_status": problem_counts,
        "calls_held": queries.calls_held(session, now, sorted(scope) if scope is not None else None),
    }


NO_TEAM = "未分部门"


def _by_team(
    session: Session,
    waiting: dict[str, int] | None,
    breaches_by_agent: dict[str, int],
    answered: list,
    unanswered: list,
    measured: list[Measured],
    tenant: service.PolicyView,
    business: list[float] | None = None,
) -> list[dict]:
    """The board's figures per team: each agent counted in their main department in WeCom
    (else their first), as they are now. Waiting now, the day's breaches, first responses (by
    each wait's policy's clock too, `business`: one per answered wait, as _business_responses
    gives them) and the share answered within the first step, busiest team first. `waiting`:
    how many wait now per agent, on today's board (None on a past day's: its teams are those
    whose waits began or whose steps fired that day, each with `waiting` None); `measured`:
    the answered and then the unanswered waits as _measure measured them."""
    staff = {
        userid: main or (departments[0] if departments else None)
        for userid, main, departments in session.execute(
            select(Staff.userid, Staff.main_department, Staff.departments)
        )
    }
    names = dict(session.execute(select(Department.wecom_id, Department.name)).all())
    teams: dict[int | None, dict] = {}

    def team(userid: str) -> dict:
        dept = staff.get(userid)
        return teams.setdefault(
            dept,
            {
                "department": dept,
                "department_name": names.get(dept, NO_TEAM) if dept is not None else NO_TEAM,
                "waiting": 0 if waiting is not None else None,
                "breaches": 0,
                "responses": [],
                "business": [],
                "measured": [],
            },
        )

    for userid, n in (waiting or {}).items():
        team(userid)["waiting"] += n
    for userid, n in breaches_by_agent.items():
        team(userid)["breaches"] += n
    for i, ((response_s, userid, _, _), m) in enumerate(zip(answered, measured, strict=False)):
        t = team(userid)
        t["responses"].append(float(response_s))
        t["measured"].append(m)
        if business is not None:
            t["business"].append(business[i])
    for (_, _, _, userid), m in zip(unanswered, measured[len(answered) :], strict=True):
        team(userid)["measured"].append(m)
    out = []
    for t in teams.values():
        within = _count_within(t.pop("measured"), tenant)
        t["first_response"] = queries.response_summary(t.pop("responses"))
        # (a team's median in wall time alone read 2 days beside its 100 % on time by business time)
        times = t.pop("business")
        t["first_response_business"] = queries.response_summary(times) if business is not None else None
        t["first_step_share"] = within[0]["share"] if within else None
        out.append(t)
    return sorted(out, key=lambda t: (-(t["waiting"] or 0), -t["breaches"], t["department_name"]))


@router.get("/sla/board", response_model=BoardOut, summary="The SLA board")
def get_board(
    request: Request,
    viewer: ApiViewer,
    day: Annotated[
        CalendarDay | None,
        Query(
            description="a day (YYYY-MM-DD, 2000 to 2099, today at the latest) in the tenant's time zone;"
            " default today"
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_WAITING_LISTED, description="how many waiting customers to list")
    ] = WAITING_LISTED,
    after: After = None,
    before: Before = None,
):
    """Who waits now (longest first, with the steps that fired and how far each got), the
    day's breaches per step and per agent, first-response mean/median/p90 (all and per
    agent), the share answered within each step, and escalations that did not reach their
    person (cards WeCom refused, calls not placed), each with the customers it was about. An
    agent sees their own, a supervisor their team's, an admin everyone's (an escalation not
    delivered: sent to them or their team, or about their customers). `waiting` lists
    `limit` customers: page on with
    `next` / `prev` (as `after` / `before`), which skip nobody who still waits and show nobody
    twice however many waits close or begin meanwhile; `waiting_total` and every figure count
    all who wait. `delivery_problems` lists the newest 100, `delivery_problems_by_status`
    counts them all."""
    rt = request.app.state.rt
    with rt.db.tenant_snapshot(viewer.tenant_id) as s:
        try:
            return board_for(s, viewer, rt.now(), day, limit, after, before, problems=PROBLEMS_LISTED)
        except FutureDay as exc:
            # answered as a day that does not exist is (FastAPI's list): one shape for a bad `day`
            typed = request.query_params.get("day")
            problem = {"type": "value_error", "loc": ("query", "day"), "msg": f"Value error, {exc}"}
            raise RequestValidationError([{**problem, "input": typed}]) from None
        except BadCursor as exc:
            raise HTTPException(422, str(exc)) from None


# ---------------------------------------------------------------- snooze


def snooze_for(
    session: Session,
    viewer: Viewer,
    conversation_id: int,
    minutes: int,
    now: datetime,
    shown: str | None = None,
) -> dict | None:
    """Snooze the conversation's open wait; None when the viewer may not read it. `shown`: the
    newest customer message the page showed (conversations.service.seen_as_waiting)."""
    if conversation_queries.get_conversation(session, viewer, conversation_id) is None:
        return None
    if shown is not None:
        conversation_service.seen_as_waiting(session, conversation_id, shown)
    until = now + timedelta(minutes=minutes)
    moved = service.snooze(session, conversation_id, until, now, by=viewer.signature, by_id=viewer.person_id)
    held = session.execute(
        select(SlaWait.snoozed_until, SlaWait.snoozed_by).where(
            SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None)
        )
    ).first()
    if held is None:
        return {"snoozed": False, "until": None, "by": "", "moved_steps": moved, "kept_until": None}
    if held.snoozed_until is not None and held.snoozed_until > until:
        # another's longer snooze stands: theirs, not the caller's, is what holds the reminders
        # (`moved`: the caller's own longer one it replaced gave way to it, and the step came back)
        kept = held.snoozed_until
        return {
            "snoozed": True,
            "until": kept,
            "by": held.snoozed_by,
            "moved_steps": moved,
            "kept_until": kept,
        }
    by = viewer.signature
    return {"snoozed": True, "until": until, "by": by, "moved_steps": moved, "kept_until": None}


@router.post(
    "/conversations/{conversation_id}/snooze",
    response_model=SnoozeOut,
    responses={
        **NOT_FOUND,
        **WRITE,
        409: {"model": WroteAgainOut, "description": "the customer wrote again (`newest_msgid` names it)"},
    },
)
def snooze(request: Request, viewer: ApiViewer, conversation_id: int, body: SnoozeIn):
    """Quiet for `minutes`: the wait's pending escalation step moves so that it fires no
    earlier than now + minutes; the later steps keep their spacing from it. The board and the
    chat show who snoozed it (`by`, the caller's name) and when. A snooze never cuts someone
    else's longer one: then nothing changes, and `kept_until` says until when it stands (`by`:
    whose). The caller's own shorter snooze replaces theirs."""
    rt = request.app.state.rt

    def run() -> dict | None:
        with rt.db.tenant_session(viewer.tenant_id) as s:
            return snooze_for(s, viewer, conversation_id, body.minutes, rt.now(), body.msgid)

    try:
        found = retry_deadlocks(run)
    except conversation_service.WroteAgain as refused:
        detail = "客户又发了消息，没有暂缓 / the customer wrote again: nothing was snoozed"
        return JSONResponse({"detail": detail, "newest_msgid": refused.newest}, 409)
    except conversation_service.NotItsMessage:
        raise HTTPException(
            422, f"不是这个会话的消息：{body.msgid} / not a message of this conversation"
        ) from None
    if found is None:
        raise not_found()
    return found


# ---------------------------------------------------------------- policy


def policy_out(session: Session) -> dict:
    """The tenant's policy (department 0) as the API shows it, or the default."""
    stored = session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == 0))
    view = service.PolicyView.of(stored) if stored is not None else service.PolicyView()
    days = session.scalars(select(SlaCalendarDay).order_by(SlaCalendarDay.day))
    return {
        "is_default": stored is None,
        **_view_fields(view),
        "calendar_days": [
            {"day": d.day, "kind": d.kind, "note": d.note, "added_by": d.added_by, "added_at": d.added_at}
            for d in days
        ],
        "official_calendar_through": official_calendar_through(),
        "updated_at": stored.updated_at if stored is not None else None,
        "updated_by": stored.updated_by if stored is not None else "",  # (the pages': not in PolicyOut)
    }


def _policy_fields(session: Session, body: PolicyFieldsIn) -> dict:
    """The fields `body` sets, for service.save_policy; the escalation contact must be an
    active member, named in any case (service.PolicyError otherwise)."""
    fields = body.model_dump(exclude_none=True, exclude={"calendar_days"})
    if "steps" in fields:
        fields["steps"] = [dict(s) for s in fields["steps"]]
    if fields.get("escalation_contact", "").strip():
        typed = fields["escalation_contact"].strip()
        # WangWu is wangwu (WeCom's userids ignore case): saved as the sync keeps it, which the
        # steps look the contact up by
        contact = fields["escalation_contact"] = member_userid(session, typed) or typed
        if not still_with_the_corp(session, contact):
            raise service.PolicyError(
                f"升级联系人 {contact} 不是在职成员 / the escalation contact is not an active member"
            )
    return fields


def apply_policy(session: Session, body: PolicyIn, now: datetime | None = None, by: str = "") -> None:
    """Save what `body` sets, in force from `now` (Siyu's clock), by `by` (who is signed in);
    raises service.PolicyError (a 422) for what the rules refuse."""
    fields = _policy_fields(session, body)
    service.save_policy(session, 0, now=now, by=by, **fields)
    if body.calendar_days is not None:
        wanted = {d.day: d for d in body.calendar_days}
        for day in session.scalars(select(SlaCalendarDay.day)).all():
            if day not in wanted:
                service.remove_calendar_day(session, day, now, by)
        for d in wanted.values():
            service.set_calendar_day(session, d.day, d.kind, d.note, now, by)
        service.follow_the_calendar(session, now)
    session.flush()


# What a policy's PUT changes: its GET's ETag is their version (db.versions), calendar_days too
# for the tenant's (PUT /sla/policy replaces them). The policy forms' version is of the same
# stored values, of the fields they have an input for (web/sla_pages.py: all but
# merge_window_s): a save on either side makes the other's version stale where it changed what
# that side edits, and only there.
EDITED = (
    "enabled",
    "steps",
    "business_hours_only",
    "shifts",
    "public_holidays",
    "escalation_contact",
    "quiet_hours",
    "call_cooldown_s",
    "merge_window_s",
    "stale_after_s",
)


def policy_version(out: dict) -> str:
    """The version of a policy as policy_out or department_policy_out gives it."""
    edited = {name: out[name] for name in EDITED}
    if "calendar_days" in out:  # what PUT sets of them (who added one comes with a change of these)
        edited["calendar_days"] = [{k: d[k] for k in ("day", "kind", "note")} for d in out["calendar_days"]]
    return version_of(edited)


def policy_changed(by: str) -> str:
    """The 412's detail for a department's policy, naming who saved it last where that is known."""
    if not by:
        return "策略已被修改，请重新读取后再改 / the policy changed since the ETag you sent; read it again"
    return (
        f"策略已被「{by}」修改，请重新读取后再改 / {by} changed the policy since the ETag you sent;"
        " read it again"
    )


def last_tenant_change(session: Session) -> tuple[str, str, datetime | None]:
    """The newest change of what the tenant policy's ETag has, as (what, by, at): a save of the
    policy ("策略") or a special date added, changed or taken back ("特殊日期"); ("", "", None)
    when none is known. A date moves the version as a save does: naming who saved the policy
    last sent the caller to ask someone who had changed nothing since."""
    found = [
        ("策略", *row)
        for row in session.execute(
            select(SlaPolicy.updated_by, SlaPolicy.updated_at).where(SlaPolicy.department_wecom_id == 0)
        )
    ]
    for latest in (
        select(SlaCalendarDay.added_by, SlaCalendarDay.added_at)  # (a note changed: no change row)
        .where(SlaCalendarDay.added_at.is_not(None))
        .order_by(SlaCalendarDay.added_at.desc()),
        select(SlaCalendarChange.changed_by, SlaCalendarChange.changed_at).order_by(
            SlaCalendarChange.changed_at.desc(), SlaCalendarChange.id.desc()
        ),
    ):
        found += [("特殊日期", *row) for row in session.execute(latest.limit(1))]
    return max(found, key=lambda change: change[2]) if found else ("", "", None)


def tenant_policy_changed(session: Session) -> str:
    """The tenant policy's 412 detail: who made its newest change (last_tenant_change), and when
    in the tenant's time zone."""
    what, by, at = last_tenant_change(session)
    tz = service.tenant_timezone(session)
    when = timezones.wall_clock(at, tz, "%Y-%m-%d %H:%M") if at is not None else ""
    what_en = {"策略": "the policy", "特殊日期": "the special dates"}.get(
        what, "the policy or its special dates"
    )
    at_when = f"于 {when} " if when else ""
    # 策略已被「乙」于 … 修改; with nobody recorded, not 已被于 but 已于 … 被修改
    done = f"已被「{by}」{at_when}修改" if by else f"已{at_when}被修改"
    return (
        f"{what or '策略或特殊日期'}{done}，请重新读取后再改 /"
        f" {by or 'someone'} changed {what_en}{f' at {when} ({tz})' if when else ''} since the ETag you"
        " sent; read it again"
    )


TenantIfMatch = if_match_header("/sla/policy")
TENANT_NOT_AN_ETAG = not_an_etag("该策略", "/api/v1/sla/policy")
IF_MATCH_REFUSED = {
    400: error("If-Match names no version Siyu gave (use the ETag of GET)"),
    412: error("If-Match names a version the policy is no longer at: someone changed it since"),
}


@router.get("/sla/policy", response_model=PolicyOut, summary="The tenant's SLA policy", responses=ADMIN)
def get_policy(request: Request, response: Response, viewer: ApiViewer):
    """Admins only. `is_default` is true while no policy was saved (the built-in one applies).
    Its `ETag` header is the version of what PUT changes, for PUT's `If-Match`."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        out = policy_out(s)
    response.headers["ETag"] = etag(policy_version(out))
    return out


@router.put(
    "/sla/policy",
    response_model=PolicyOut,
    summary="Change the tenant's SLA policy",
    responses={**ADMIN_WRITE, **IF_MATCH_REFUSED, 422: invalid("the policy was refused; `detail` says why")},
)
def put_policy(
    request: Request,
    response: Response,
    viewer: ApiViewer,
    body: PolicyIn,
    typed_if_match: TenantIfMatch = None,
):
    """Admins only. Steps `{delay_s, action: app_message|voice_call, target:
    agent|leader|contact}` (at most 10; sorted by delay); shifts `[["09:00","12:00"], ...]`
    (split shifts and lunch breaks; "24:00" ends at midnight); quiet_hours `[start, end]` or
    `[]`; calendar_days replaces the extra dates. Applies to waits that begin from now on.
    With `If-Match: "<ETag of GET>"`, refused (412, nothing changed) when someone changed the
    policy or the special dates since; without it, the last save wins."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        service.hold_policy(s, 0, dates=body.calendar_days is not None)
        was = policy_out(s)
        if_match(typed_if_match, policy_version(was), lambda: tenant_policy_changed(s), TENANT_NOT_AN_ETAG)
        try:
            apply_policy(s, body, request.app.state.rt.now(), viewer.signature)
        except service.PolicyError as exc:  # raising rolls the session back
            raise HTTPException(422, str(exc)) from None
        out = policy_out(s)
    response.headers["ETag"] = etag(policy_version(out))
    return out


# ---------------------------------------------------------------- department policies


def department_label(wecom_id: int, name: str | None) -> str:
    """A department as people read it; one that is no longer synced says so."""
    if wecom_id == 0:
        return "全公司"
    return name or f"部门 {wecom_id}（已不在通讯录中）"


def unknown_department(department_wecom_id: int) -> HTTPException:
    return ClearNotFound(
        f"没有这个部门：{department_wecom_id}（请先同步通讯录） / "
        f"no department {department_wecom_id} in the synced directory",
    )


def no_own_policy(department_wecom_id: int, name: str) -> HTTPException:
    return ClearNotFound(
        f"部门「{name}」没有自己的策略，沿用上级部门或全公司的策略 / "
        f"department {department_wecom_id} has no policy of its own",
    )


def _view_fields(view: service.PolicyView) -> dict:
    return {
        "enabled": view.enabled,
        "steps": [{"delay_s": s.delay_s, "action": s.action, "target": s.target} for s in view.steps],
        "business_hours_only": view.business_hours_only,
        "shifts": [list(s) for s in view.shifts],
        "public_holidays": view.public_holidays,
        "escalation_contact": view.escalation_contact,
        "quiet_hours": list(view.quiet_hours),
        "call_cooldown_s": view.call_cooldown_s,
        "merge_window_s": view.merge_window_s,
        "stale_after_s": view.stale_after_s,
    }


def _department_out(stored: SlaPolicy | None, department_wecom_id: int, name: str | None) -> dict:
    view = service.PolicyView.of(stored) if stored is not None else service.PolicyView()
    return {
        "department_wecom_id": department_wecom_id,
        "department_name": "" if department_wecom_id == 0 else department_label(department_wecom_id, name),
        "is_default": stored is None,
        **_view_fields(view),
        "updated_at": stored.updated_at if stored is not None else None,
        "updated_by": stored.updated_by if stored is not None else "",  # (the pages': not in the API's)
    }


def department_policy_out(session: Session, department_wecom_id: int) -> dict:
    """A department's own policy (0: the tenant's, or the default) as the API shows it;
    HTTPException 404 for an unknown department or one without a policy of its own."""
    stored = session.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == department_wecom_id))
    if department_wecom_id == 0:
        return _department_out(stored, 0, None)
    name = session.scalar(select(Department.name).where(Department.wecom_id == department_wecom_id))
    if stored is None:
        if name is None:
            raise unknown_department(department_wecom_id)
        raise no_own_policy(department_wecom_id, name)
    return _department_out(stored, department_wecom_id, name)


def policies_out(session: Session) -> dict:
    """The tenant's policy first, then each department's (by WeCom id), and every synced
    department with the policy its members follow."""
    names = dict(session.execute(select(Department.wecom_id, Department.name)).all())
    stored = {p.department_wecom_id: p for p in session.scalars(select(SlaPolicy))}
    policies = [_department_out(stored.get(0), 0, None)]
    policies += [_department_out(stored[d], d, names.get(d)) for d in sorted(stored) if d != 0]
    departments = []
    for d in service.department_policies(session):
        source = d.policy_from
        kind = "own" if d.own else "default" if source is None else "tenant" if source == 0 else "inherited"
        departments.append(
            {
                "wecom_id": d.wecom_id,
                "name": d.name,
                "parent_wecom_id": d.parent_wecom_id,
                "depth": d.depth,
                "policy": kind,
                "policy_department_wecom_id": source,
                "policy_department_name": department_label(source, names.get(source))
                if source is not None
                else "",
            }
        )
    return {"policies": policies, "departments": departments}


def apply_department_policy(
    session: Session,
    department_wecom_id: int,
    body: PolicyFieldsIn,
    now: datetime | None = None,
    by: str = "",
) -> bool:
    """Create or change a department's own policy (0: the tenant's), by `by` (who is signed
    in); True when it was created. service.PolicyError for what the rules refuse;
    HTTPException 404 for an unknown department."""
    fields = _policy_fields(session, body)
    if department_wecom_id == 0:
        service.save_policy(session, 0, now=now, by=by, **fields)
        return False
    existed = session.scalar(select(SlaPolicy.id).where(SlaPolicy.department_wecom_id == department_wecom_id))
    try:
        service.save_department_policy(session, department_wecom_id, now=now, by=by, **fields)
    except service.UnknownDepartment:
        raise unknown_department(department_wecom_id) from None
    return existed is None


@router.get(
    "/sla/policies",
    response_model=PoliciesOut,
    summary="SLA policies: the tenant's and departments'",
    responses=ADMIN,
)
def list_policies(request: Request, viewer: ApiViewer):
    """Admins only. `policies`: the tenant's (department 0; `is_default` while none was
    saved) and each department's own. `departments`: every synced department in tree order
    with the policy its members follow: `own`, `inherited` (an ancestor department's),
    `tenant`, or the built-in `default`."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        return policies_out(s)


@router.get(
    "/sla/policies/{department_wecom_id}",
    response_model=DepartmentPolicyOut,
    summary="A department's SLA policy",
    responses={
        **ADMIN,
        404: error("no such department, or it has no policy of its own (`detail` says which)"),
    },
)
def get_department_policy(request: Request, response: Response, viewer: ApiViewer, department_wecom_id: int):
    """Admins only. The department's own policy; department 0 is the tenant's. Its `ETag`
    header is the version of what PUT changes, for PUT's `If-Match`."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        out = department_policy_out(s, department_wecom_id)
    response.headers["ETag"] = etag(policy_version(out))
    return out


DepartmentIfMatch = if_match_header("/sla/policies/{department}")
DEPARTMENT_NOT_AN_ETAG = not_an_etag("该策略", "/api/v1/sla/policies/{department}")


def match_department_policy(
    session: Session, department_wecom_id: int, typed: str | None, deleting: bool = False
) -> None:
    """HTTPException 412 (400) when If-Match `typed` is not (cannot be) the version of the
    department's own policy, and for any If-Match while it has none (RFC 9110: a PUT that
    would create it with If-Match is refused; a DELETE, `deleting`, is told it is gone); 404
    for an unknown department."""
    stored = session.scalar(select(SlaPolicy.id).where(SlaPolicy.department_wecom_id == department_wecom_id))
    if stored is not None or department_wecom_id == 0:
        out = department_policy_out(session, department_wecom_id)
        if_match(typed, policy_version(out), policy_changed(out["updated_by"]), DEPARTMENT_NOT_AN_ETAG)
        return
    name = session.scalar(select(Department.name).where(Department.wecom_id == department_wecom_id))
    if name is None:
        raise unknown_department(department_wecom_id)
    none_to_match = (
        f"部门「{name}」没有自己的策略（可能已被删除）：要新建请不带 If-Match / department"
        f" {department_wecom_id} has no policy of its own (it may have been removed): send no If-Match"
        " to create one"
        if not deleting
        else f"部门「{name}」的策略已被删除或从未设置，没有可删除的 / department {department_wecom_id}"
        " has no policy of its own to delete (it was removed since, or never set)"
    )
    if_match(typed, None, none_to_match, DEPARTMENT_NOT_AN_ETAG)


@router.put(
    "/sla/policies/{department_wecom_id}",
    response_model=DepartmentPolicyOut,
    summary="Create or change a department's SLA policy",
    responses={
        201: {"description": "created", "model": DepartmentPolicyOut},
        **ADMIN_WRITE,
        404: error("no such department"),
        400: IF_MATCH_REFUSED[400],
        412: error(
            "If-Match names a version the policy is no longer at (someone changed it since), or the"
            " department has no policy of its own to match"
        ),
        422: invalid("the policy was refused; `detail` says why"),
    },
)
def put_department_policy(
    request: Request,
    response: Response,
    viewer: ApiViewer,
    department_wecom_id: int,
    body: DepartmentPolicyIn,
    typed_if_match: DepartmentIfMatch = None,
):
    """Admins only. Same fields and rules as PUT /api/v1/sla/policy, without calendar_days
    (the tenant's dates apply to every department). A new policy starts as a copy of the
    one the department follows now; fields left out keep that value. Applies to its members
    (and sub-departments without their own) for waits that begin from now on. With
    `If-Match: "<ETag of GET>"`, refused (412, nothing changed) when someone changed the policy
    since, or when there is none to change (to create one, send no If-Match); without it, the
    last save wins."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        service.hold_policy(s, department_wecom_id)
        match_department_policy(s, department_wecom_id, typed_if_match)
        try:
            now = request.app.state.rt.now()
            created = apply_department_policy(s, department_wecom_id, body, now, viewer.signature)
        except service.PolicyError as exc:  # raising rolls the session back
            raise HTTPException(422, str(exc)) from None
        out = department_policy_out(s, department_wecom_id)
    if created:
        response.status_code = 201
    response.headers["ETag"] = etag(policy_version(out))
    return out


@router.delete(
    "/sla/policies/{department_wecom_id}",
    status_code=204,
    summary="Remove a department's SLA policy",
    responses={
        **ADMIN_WRITE,
        404: error("no such department, or it has no policy of its own (`detail` says which)"),
        409: error("the tenant's policy (department 0) cannot be removed"),
        400: IF_MATCH_REFUSED[400],
        412: error(
            "If-Match names a version the policy is no longer at (someone changed it since), or the"
            " department has no policy of its own to match"
        ),
    },
)
def delete_department_policy(
    request: Request, viewer: ApiViewer, department_wecom_id: int, typed_if_match: DepartmentIfMatch = None
):
    """Admins only. Its members then follow the parent department's policy, else the
    tenant's. The tenant's policy (department 0) cannot be removed. With `If-Match: "<ETag of
    GET>"`, refused (412, nothing removed) when someone changed the policy since, or removed it."""
    require_admin(viewer)
    if department_wecom_id == 0:
        raise HTTPException(409, "全公司策略不能删除 / the tenant's policy cannot be deleted")
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        if typed_if_match is not None:
            # what is removed must be what the ETag's reader saw: a change saved since would go unseen
            service.hold_policy(s, department_wecom_id)
            match_department_policy(s, department_wecom_id, typed_if_match, deleting=True)
        if not service.delete_policy(s, department_wecom_id, request.app.state.rt.now()):
            name = s.scalar(select(Department.name).where(Department.wecom_id == department_wecom_id))
            if name is None:
                raise unknown_department(department_wecom_id)
            raise no_own_policy(department_wecom_id, name)
    return Response(status_code=204)
