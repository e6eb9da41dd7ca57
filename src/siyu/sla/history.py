"""A customer's service history for their timeline, read from the waits Siyu already keeps.

The timeline's stored events tell the contact's life (added, tagged, lost ...); what was said
and answered lives in the conversations and their waits. Each wait becomes one entry at the
moment the customer wrote: what they wrote, how it ended (answered by whom after how long,
marked 无需回复 by whom, still waiting) and who was told about it. Nothing is written: the
entries are derived when the timeline is read, within the conversations the viewer may read.

An entry's id is its wait's id negated, so that the timeline's `before` pages through both
kinds by one order: (at, id) newest first, a wait after the events of the same moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from siyu.conversations import queries as conversation_queries
from siyu.conversations.models import Conversation, Message
from siyu.customers.models import Customer
from siyu.sla import queries
from siyu.sla.models import SlaEscalation, SlaWait
from siyu.sla.names import ACTION_NAMES, DELIVERY_NAMES, TARGET_NAMES, delivery_name, whole_seconds
from siyu.sla.service import PolicyBook
from siyu.tenancy import timezones

QUOTE_CHARS = 40
WHY_CHARS = 30  # why a step did not reach its person, briefly: the board's problems list has it all
# how a wait ended other than by a reply or a 无需回复, after 「…」
ENDINGS = {
    "recalled": "客户撤回了消息",
    "declined": "客户未同意会话存档，不再计时",
    "lost": "客户删除了成员，不再计时",
    "removed": "成员删除了客户，不再计时",
    "transferred": "客户已转接给其他成员，不再计时",
    "unarchived": "成员已不在会话存档范围内，回复无法看到，不再计时",
    "merged": "与之前的消息合并计时",
    # (firing's, for a wait its chat no longer awaits where no listener had closed it)
    "closed": "会话已不再等待回复，不再计时",
}


def wait_order(at: datetime, entry_id: int) -> ColumnElement[bool]:
    """The waits below (at, entry_id) in the timeline's order (entry_id: an event's id, or a
    wait's id negated)."""
    return or_(SlaWait.started_at < at, and_(SlaWait.started_at == at, -SlaWait.id < entry_id))


def anchor(session: Session, viewer, customer_id: int, entry_id: int) -> datetime | None:
    """When the wait entry `entry_id` (negative) of the customer's timeline begins, if the
    viewer sees it."""
    return session.scalar(
        _waits(viewer, customer_id).with_only_columns(SlaWait.started_at).where(SlaWait.id == -entry_id)
    )


def _waits(viewer, customer_id: int):
    """SELECT the customer's waits in the chats the viewer may read: those of their 1:1 chats
    (a wait begun before the customer was known has no customer_id of its own), and those of
    the group chats that began with a question of theirs."""
    chats = conversation_queries.readable(
        viewer, conversation_queries.ConversationFilter(customer_id=customer_id)
    )
    singles = chats.where(Conversation.kind == "single").with_only_columns(Conversation.id)
    groups = chats.where(Conversation.kind == "group").with_only_columns(Conversation.id)
    external = select(Customer.external_userid).where(Customer.id == customer_id).scalar_subquery()
    asked = select(Message.msgid).where(
        Message.conversation_id.in_(groups), Message.sender == external, Message.direction == "in"
    )
    return select(SlaWait).where(
        or_(
            SlaWait.conversation_id.in_(singles),
            and_(SlaWait.conversation_id.in_(groups), SlaWait.msgid.in_(asked)),
        )
    )


def entries(
    session: Session,
    viewer,
    customer_id: int,
    names: dict[str, str],
    limit: int,
    below: tuple[datetime, int] | None = None,
    now: datetime | None = None,
) -> list[dict]:
    """The customer's newest `limit` waits (below `below` if given), as timeline entries. Each
    step that fired is told as it went (the board's words): sent, failed and why, not placed
    as the wait was snoozed or ended meanwhile, held by quiet hours until when (by `now`,
    Siyu's clock); one that came due and reached nobody, or was skipped as due long ago, says
    so, as the board's row of the wait does."""
    stmt = _waits(viewer, customer_id)
    if below is not None:
        stmt = stmt.where(wait_order(*below))
    waits = list(session.scalars(stmt.order_by(SlaWait.started_at.desc(), SlaWait.id.asc()).limit(limit)))
    if not waits:
        return []
    ids = [w.id for w in waits]
    told: dict[int, list[SlaEscalation]] = {}
    unsent: dict[int, tuple[str, str]] = {}  # skipped: (the board's reason, its words)
    for e in session.scalars(
        select(SlaEscalation)
        .where(SlaEscalation.wait_id.in_(ids), SlaEscalation.status.in_(("fired", "skipped")))
        .order_by(SlaEscalation.step)
    ):
        if e.status == "skipped":
            why = queries.skip_reason(e.note)
            if why is None:
                continue  # (skipped as nobody waited any more: no step came due for it)
            unsent[e.id] = (why, DELIVERY_NAMES[why])
        told.setdefault(e.wait_id, []).append(e)
    fired = [e for steps in told.values() for e in steps if e.id not in unsent]
    reached = queries.deliveries(session, fired) if fired else {}
    queued = [e for e in fired if reached.get(e.id, ("",))[0] == "queued"]
    now = now or datetime.now(UTC)
    answered = [w for w in waits if w.close_reason == "replied" and w.response_s is not None]
    book = PolicyBook(session) if queued or answered else None  # the policies, read once
    held = queries.held_calls(session, queued, now, book=book) if queued else {}
    for step in queries.calls_never_placed(session, queued, book):
        reached[step] = ("never", queries.CALL_NEVER)
    said = _said(session, waits)
    repliers = _repliers(session, waits)
    tz = ZoneInfo(getattr(viewer, "timezone", "") or "Asia/Shanghai")
    went = {e.id: _went(reached.get(e.id, ("", "")), held.get(e.id), tz, e.action) for e in fired} | unsent
    business = {w.id: _business_response(book, w) for w in answered}
    return [
        _entry(
            w,
            said.get((w.conversation_id, w.msgid)),
            repliers,
            told.get(w.id, []),
            names,
            went,
            tz,
            now,
            business.get(w.id),
        )
        for w in waits
    ]


def _business_response(book: PolicyBook, w: SlaWait) -> float | None:
    """An answered wait's response time by its policy's clock, as the board's first responses
    take it; None where that policy counts the wall clock."""
    return book.answered_business_s(w.policy_id, w.started_at, w.started_at + timedelta(seconds=w.response_s))


def _went(
    reached: tuple[str, str], held_until: datetime | None, tz: ZoneInfo, action: str
) -> tuple[str, str]:
    """(status, how a step of `action` went in words) from deliveries' (status, error)."""
    status, error = reached
    if held_until is not None:
        return "held", f"免打扰，{timezones.wall_clock(_minute_by(held_until), tz.key, '%m-%d %H:%M')} 拨打"
    words = delivery_name(status, action)
    # the why where there is trouble; a snoozed step's label says it, "nobody waited" is none
    why = "" if status == "snoozed" or error in queries.CALLS_NOT_NEEDED else _why(error)
    return status, f"{words}：{why}" if why else words


def _why(error: str) -> str:
    """An error as the timeline says it: its Chinese half, briefly."""
    text = " ".join((error or "").split(" / ", 1)[0].split())
    return text if len(text) <= WHY_CHARS else text[: WHY_CHARS - 1] + "…"


def _said(session: Session, waits: list[SlaWait]) -> dict[tuple[int, str], str]:
    rows = session.execute(
        select(Message.conversation_id, Message.msgid, Message.text).where(
            Message.msgid.in_({w.msgid for w in waits}),
            Message.conversation_id.in_({w.conversation_id for w in waits}),
        )
    )
    return {(r.conversation_id, r.msgid): r.text for r in rows}


def _repliers(session: Session, waits: list[SlaWait]) -> dict[tuple[int, datetime], str]:
    """Who sent the reply that closed each answered wait (a group's owner or another member)."""
    answered = [w for w in waits if w.close_reason == "replied" and w.closed_at is not None]
    if not answered:
        return {}
    rows = session.execute(
        select(Message.conversation_id, Message.sent_at, Message.sender).where(
            Message.conversation_id.in_({w.conversation_id for w in answered}),
            Message.sent_at.in_({w.closed_at for w in answered}),
            Message.direction == "out",
        )
    )
    return {(r.conversation_id, _naive(r.sent_at)): r.sender for r in rows}


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def _quote(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def _local(at: datetime, tz: ZoneInfo) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(tz)


def _minute_by(at: datetime) -> datetime:
    """A time to come to the minute as the chat and the board show it: the minute it will have
    come by (a snooze to 09:44:20 read 09:44 here and 09:45 there)."""
    whole = at.replace(second=0, microsecond=0)
    return whole if whole == at else whole + timedelta(minutes=1)


def _entry(
    w: SlaWait,
    text: str | None,
    repliers: dict,
    told: list[SlaEscalation],
    names: dict,
    went: dict,
    tz: ZoneInfo,
    now: datetime,
    business_s: float | None = None,
) -> dict:
    quote = _quote(text)
    data: dict = {
        "conversation_id": w.conversation_id,
        "quote": quote,
        "state": w.close_reason or "waiting",
        # times as datetimes: the API writes them in UTC as …Z, as every other (isoformat
        # wrote +00:00 here alone)
        "closed_at": w.closed_at,
        "response_s": w.response_s,
        # by the wait's policy's clock, where it counts business hours only (as the board's)
        "response_business_s": business_s,
    }
    if w.close_reason == "replied":
        replier = (
            repliers.get((w.conversation_id, _naive(w.closed_at)), w.staff_userid) if w.closed_at else ""
        )
        data["replied_by"] = names.get(replier, replier)
        took = conversation_queries.wait_text(whole_seconds(w.response_s))
        if business_s is not None:  # the board's words for it
            took += f"（工作时间 {conversation_queries.wait_text(whole_seconds(business_s))}）"
        ending = f"{data['replied_by'] or '成员'} 回复，用时 {took}"
    elif w.close_reason == "dismissed":
        data["closed_by"] = w.closed_by
        ending = f"{w.closed_by or 'Siyu'} 标记为无需回复"
    elif w.close_reason:
        ending = ENDINGS.get(w.close_reason, w.close_reason)
    else:
        ending = "仍在等待回复"
        if w.snoozed_until is not None:
            data["snoozed_until"] = w.snoozed_until
            data["snoozed_by"] = w.snoozed_by
        if w.snoozed_until is not None and _local(w.snoozed_until, tz) > now:  # an ended one holds nothing
            until = timezones.wall_clock(_minute_by(w.snoozed_until), tz.key, "%m-%d %H:%M")
            ending += f"（{w.snoozed_by or '成员'} 已暂缓提醒至 {until}）"
    data["escalations"] = [
        {
            "action": e.action,
            "target": e.target,
            "recipient": e.recipient,
            "recipient_name": names.get(e.recipient, e.recipient),
            "fired_at": e.fired_at,
            "delivery": went[e.id][0],
            "delivery_text": went[e.id][1],
        }
        for e in told
    ]
    line = f"客户发来消息等待回复：「{quote}」" if quote else "客户发来消息等待回复"
    line += f"；{ending}"
    if told:
        sent = "、".join(
            f"{ACTION_NAMES.get(e.action, e.action)}给{TARGET_NAMES.get(e.target, e.target)}"
            f" {names.get(e.recipient, e.recipient)}".rstrip()
            + f"（{went[e.id][1]}）"
            for e in told
        )
        line += f"；已升级：{sent}"
    return {
        "id": -w.id,
        "at": w.started_at,
        "kind": "wait",
        "staff_userid": w.staff_userid,
        "staff_name": names.get(w.staff_userid, w.staff_userid),
        "data": data,
        "text": line,
    }
