"""JSON API for SLA under /api/v1: the board, snoozing a wait, the tenant's policy.

  GET  /api/v1/sla/board                       who waits now (longest first), today's
                                               breaches, first-response figures; scoped
                                               like conversations (agent: own, supervisor:
                                               team, admin: everyone)
  POST /api/v1/conversations/{id}/snooze       {minutes}: no escalation before now + minutes
  GET  /api/v1/sla/policy                      the tenant's policy (admin), or the default
  PUT  /api/v1/sla/policy                      change it (admin); 422 with the reason

Auth is the web session cookie; POST/PUT also need the `X-CSRF-Token` header. The board
helpers here (`board_for`, `policy_out`, `apply_policy`, `snooze_for`) also serve the pages.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.conversations import queries as conversation_queries
from siyu.conversations.models import Conversation, Message
from siyu.customers.queries import staff_names
from siyu.sla import service
from siyu.sla.models import SlaCalendarDay, SlaEscalation, SlaPolicy, SlaWait
from siyu.sla.schemas import BoardOut, PolicyIn, PolicyOut, SnoozeIn, SnoozeOut
from siyu.tenancy.models import Staff
from siyu.web.api_errors import NOT_FOUND, not_found
from siyu.web.auth import ApiViewer, Viewer, require_admin

router = APIRouter(prefix="/api/v1", tags=["sla"])


# ---------------------------------------------------------------- the board


def board_for(session: Session, viewer: Viewer, now: datetime) -> dict:
    """service.board, limited to the staff the viewer may see, with names, the waiting
    message and the steps that fired on each wait."""
    scope = viewer.visible_staff  # None: the whole tenant
    names = staff_names(session)
    waiting = service.waiting_now(session, now, sorted(scope) if scope is not None else None)
    conv_ids = [w["conversation_id"] for w in waiting]
    fired: dict[int, list[dict]] = {}
    texts: dict[int, str] = {}
    titles: dict[int, str] = {}
    if conv_ids:
        rows = session.execute(
            select(SlaEscalation)
            .join(SlaWait, SlaWait.id == SlaEscalation.wait_id)
            .where(
                SlaEscalation.conversation_id.in_(conv_ids),
                SlaWait.closed_at.is_(None),
                SlaEscalation.status == "fired",
            )
            .order_by(SlaEscalation.step)
        ).scalars()
        for e in rows:
            fired.setdefault(e.conversation_id, []).append(
                {"step": e.step, "action": e.action, "target": e.target, "fired_at": e.fired_at}
            )
        for cid, text, ext in session.execute(
            select(Conversation.id, Message.text, Conversation.external_userid)
            .join(SlaWait, SlaWait.conversation_id == Conversation.id)
            .outerjoin(Message, Message.msgid == SlaWait.msgid)
            .where(Conversation.id.in_(conv_ids), SlaWait.closed_at.is_(None))
        ):
            texts[cid] = text or texts.get(cid, "")
            titles[cid] = ext
    rows_out = [
        {
            **w,
            "customer": w["customer"] or titles.get(w["conversation_id"], ""),
            "staff_name": names.get(w["staff_userid"], w["staff_userid"]),
            "message": texts.get(w["conversation_id"], ""),
            "waited_s": int(w["waited_s"]),
            "waited_text": conversation_queries.wait_text(w["waited_s"]),
            "fired": fired.get(w["conversation_id"], []),
        }
        for w in waiting
    ]

    start, end = service.day_bounds(session, now)
    q = (
        select(SlaEscalation.step, SlaEscalation.action, SlaEscalation.agent_userid, func.count())
        .where(SlaEscalation.status == "fired", SlaEscalation.fired_at >= start, SlaEscalation.fired_at < end)
        .group_by(SlaEscalation.step, SlaEscalation.action, SlaEscalation.agent_userid)
    )
    if scope is not None:
        q = q.where(SlaEscalation.agent_userid.in_(sorted(scope)))
    by_step: dict[int, dict] = {}
    by_agent: dict[str, int] = {}
    for step, action, agent, n in session.execute(q):
        entry = by_step.setdefault(step, {"step": step, "action": action, "count": 0})
        entry["count"] += n
        by_agent[agent] = by_agent.get(agent, 0) + n

    rq = select(SlaWait.response_s).where(
        SlaWait.started_at >= start,
        SlaWait.started_at < end,
        SlaWait.close_reason == "replied",
        SlaWait.response_s.is_not(None),
    )
    if scope is not None:
        rq = rq.where(SlaWait.staff_userid.in_(sorted(scope)))
    responses = [float(v) for v in session.scalars(rq)]
    policy = service.policy_for(session, "")
    within = [
        {
            "step": i,
            "delay_s": s.delay_s,
            "answered": sum(1 for v in responses if v <= s.delay_s),
            "share": (sum(1 for v in responses if v <= s.delay_s) / len(responses)) if responses else None,
        }
        for i, s in enumerate(policy.steps)
    ]
    return {
        "now": now,
        "waiting": rows_out,
        "breaches_by_step": [by_step[k] for k in sorted(by_step)],
        "breaches_by_agent": [
            {"staff_userid": u, "staff_name": names.get(u, u), "count": n}
            for u, n in sorted(by_agent.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "breaches_total": sum(by_agent.values()),
        "first_response": service.response_summary(responses),
        "within_steps": within,
    }


@router.get("/sla/board", response_model=BoardOut, summary="The SLA board")
def get_board(request: Request, viewer: ApiViewer):
    """Who waits now (longest first, with the steps that fired), today's breaches per step
    and per agent, first-response mean/median/p90 and the share answered within each step.
    An agent sees their own waits, a supervisor their team's, an admin everyone's."""
    rt = request.app.state.rt
    with rt.db.tenant_session(viewer.tenant_id) as s:
        return board_for(s, viewer, rt.now())


# ---------------------------------------------------------------- snooze


def snooze_for(
    session: Session, viewer: Viewer, conversation_id: int, minutes: int, now: datetime
) -> dict | None:
    """Snooze the conversation's open wait; None when the viewer may not read it."""
    if conversation_queries.get_conversation(session, viewer, conversation_id) is None:
        return None
    until = now + timedelta(minutes=minutes)
    moved = service.snooze(session, conversation_id, until, now)
    waiting = session.scalar(
        select(func.count())
        .select_from(SlaWait)
        .where(SlaWait.conversation_id == conversation_id, SlaWait.closed_at.is_(None))
    )
    return {"snoozed": bool(waiting), "until": until if waiting else None, "moved_steps": moved}


@router.post(
    "/conversations/{conversation_id}/snooze", response_model=SnoozeOut, responses=NOT_FOUND, tags=["sla"]
)
def snooze(request: Request, viewer: ApiViewer, conversation_id: int, body: SnoozeIn):
    """Quiet for `minutes`: the wait's pending escalation steps move so that none fires
    before now + minutes (keeping their spacing)."""
    rt = request.app.state.rt
    with rt.db.tenant_session(viewer.tenant_id) as s:
        found = snooze_for(s, viewer, conversation_id, body.minutes, rt.now())
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
        "enabled": view.enabled,
        "steps": [{"delay_s": s.delay_s, "action": s.action, "target": s.target} for s in view.steps],
        "business_hours_only": view.business_hours_only,
        "shifts": [list(s) for s in view.shifts],
        "public_holidays": view.public_holidays,
        "escalation_contact": view.escalation_contact,
        "quiet_hours": list(view.quiet_hours),
        "calendar_days": [{"day": d.day, "kind": d.kind, "note": d.note} for d in days],
        "updated_at": stored.updated_at if stored is not None else None,
    }


def apply_policy(session: Session, body: PolicyIn) -> None:
    """Save what `body` sets; raises service.PolicyError (a 422) for what the rules refuse."""
    fields = body.model_dump(exclude_none=True, exclude={"calendar_days"})
    if "steps" in fields:
        fields["steps"] = [dict(s) for s in fields["steps"]]
    if fields.get("escalation_contact", "").strip():
        contact = fields["escalation_contact"] = fields["escalation_contact"].strip()
        if session.scalar(select(Staff.id).where(Staff.userid == contact, Staff.active.is_(True))) is None:
            raise service.PolicyError(
                f"升级联系人 {contact} 不是在职成员 / the escalation contact is not an active member"
            )
    service.save_policy(session, 0, **fields)
    if body.calendar_days is not None:
        wanted = {d.day: d for d in body.calendar_days}
        for day in session.scalars(select(SlaCalendarDay.day)).all():
            if day not in wanted:
                service.remove_calendar_day(session, day)
        for d in wanted.values():
            service.set_calendar_day(session, d.day, d.kind, d.note)
    session.flush()


@router.get("/sla/policy", response_model=PolicyOut, summary="The tenant's SLA policy")
def get_policy(request: Request, viewer: ApiViewer):
    """Admins only. `is_default` is true while no policy was saved (the built-in one applies)."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        return policy_out(s)


@router.put(
    "/sla/policy",
    response_model=PolicyOut,
    summary="Change the tenant's SLA policy",
    responses={422: {"description": "the policy was refused; `detail` says why"}},
)
def put_policy(request: Request, viewer: ApiViewer, body: PolicyIn):
    """Admins only. Steps `{delay_s, action: app_message|voice_call, target:
    agent|leader|contact}` (at most 10; sorted by delay); shifts `[["09:00","12:00"], ...]`
    (split shifts and lunch breaks; "24:00" ends at midnight); quiet_hours `[start, end]` or
    `[]`; calendar_days replaces the extra dates. Applies to waits that begin from now on."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        try:
            apply_policy(s, body)
        except service.PolicyError as exc:  # raising rolls the session back
            raise HTTPException(422, str(exc)) from None
        return policy_out(s)
