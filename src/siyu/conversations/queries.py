"""The read side of conversations: every list, get and search starts from what the viewer may read.

Built on the tenant session's scoping (another tenant's rows are simply not there) plus
the role scoping of `siyu.web.auth.Viewer.visible_staff`: an admin (None) reads every
conversation of the tenant; anyone else reads a 1:1 conversation whose staff member is in
`visible_staff`, and a group chat one of them owns (`GroupChat.owner_userid`) or has written
in. A conversation the viewer may not read is not found, exactly like a missing one.

Who waits how long is computed from `awaiting_since` (the waiting customer message's
msgtime) and `now`, which callers may pass for a fixed clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, true
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from siyu.conversations import group_waits
from siyu.conversations import search as search_index
from siyu.conversations.models import Conversation, GroupChat, Message
from siyu.conversations.render import EVENT_TYPES, address
from siyu.conversations.service import ROBOT_PREFIX
from siyu.customers.models import Customer, Follow
from siyu.customers.queries import Reader, remarks_on, staff_names
from siyu.db import bulk, paging
from siyu.db.paging import Page, SortKey
from siyu.tenancy import timezones
from siyu.tenancy.models import STAFF_STATUS, Staff
from siyu.tenancy.queries import staff_gone
from siyu.visible_names import UNNAMED, tidy_name

MAX_PER_PAGE = 100
MESSAGES_PER_PAGE = 50
KINDS = ("single", "group")
KIND_NAMES = {"single": "单聊", "group": "群聊"}
SENDABLE = "send"


@dataclass
class ConversationFilter:
    waiting: bool = False  # only conversations owing the customer a reply now
    staff_userid: str | None = None
    customer_id: int | None = None
    kind: str | None = None  # single | group
    told: bool = False  # only those an escalation card went to the viewer about (theirs or not)
    among: frozenset[int] | None = None  # only these (the customers of one card)
    # only customer groups where a customer's question has no staff reply yet (group_waits)
    group_waiting: bool = False


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def wait_text(seconds: int | float | None) -> str:
    """3 分 12 秒 / 1 小时 5 分 / 2 天 3 小时; "" when not waiting."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days} 天 {hours} 小时" if hours else f"{days} 天"
    if hours:
        return f"{hours} 小时 {minutes} 分" if minutes else f"{hours} 小时"
    if minutes:
        return f"{minutes} 分 {s} 秒"
    return f"{s} 秒"


# ---------------------------------------------------------------- what the viewer may read


def _in_a_group_chat() -> ColumnElement[bool]:
    """A message of a group chat. Messages have no index by sender, and the 1:1 chats hold
    most of them: who wrote in which group is looked for among the groups' messages only (by
    their conversation index)."""
    group = aliased(Conversation)
    return Message.conversation_id.in_(select(group.id).where(group.kind == "group"))


def _involves(staff: list[str]) -> ColumnElement[bool]:
    """A 1:1 conversation with one of `staff`, or a group chat one of them owns or wrote in."""
    # Uncorrelated IN (each subquery run once, hashed), not EXISTS per conversation: with the
    # correlated form PostgreSQL costed the list at ~700,000 for a tenant of 50,000 chats, so a
    # 35 ms scan of a supervisor's or an agent's list paid ~600 ms of JIT compilation.
    wrote = select(Message.conversation_id).where(
        _in_a_group_chat(), Message.sender.in_(staff), Message.direction == "out"
    )
    owns = select(GroupChat.chat_id).where(GroupChat.owner_userid.in_(staff))
    return or_(
        and_(Conversation.kind == "single", Conversation.staff_userid.in_(staff)),
        and_(Conversation.kind == "group", or_(Conversation.roomid.in_(owns), Conversation.id.in_(wrote))),
    )


def _with_customer(customer_id: int) -> ColumnElement[bool]:
    """The customer's 1:1 chats, and the group chats they wrote in (a customer asks in the
    group as well as 1:1: both are their chats)."""
    external = select(Customer.external_userid).where(Customer.id == customer_id).scalar_subquery()
    wrote = select(Message.conversation_id).where(
        _in_a_group_chat(), Message.sender == external, Message.direction == "in"
    )
    return or_(
        Conversation.customer_id == customer_id,
        and_(Conversation.kind == "group", Conversation.id.in_(wrote)),
    )


def visible_conversation(viewer: Reader) -> ColumnElement[bool]:
    if viewer.visible_staff is None:
        return true()
    return _involves(sorted(viewer.visible_staff))


def readable(viewer: Reader, f: ConversationFilter | None = None) -> Select:
    """SELECT Conversation ... that the viewer may read and that match the filters."""
    return select(Conversation).where(_readable_condition(viewer, f), *_matching(f))


def _readable_condition(viewer: Reader, f: ConversationFilter | None) -> ColumnElement[bool]:
    if f is not None and f.told:  # readable by the card, as get_conversation() opens them
        return Conversation.id.in_(_told_about(viewer))
    if f is not None and f.among is not None:  # one card's: a colleague's told of too
        return or_(visible_conversation(viewer), Conversation.id.in_(_told_about(viewer)))
    return visible_conversation(viewer)


def _matching(f: ConversationFilter | None) -> list[ColumnElement[bool]]:
    """The filters' conditions on Conversation."""
    if f is None:
        return []
    conditions = []
    if f.waiting and f.group_waiting:  # both ticked: either kind of wait (groups never have awaiting_since)
        conditions.append(or_(Conversation.awaiting_since.is_not(None), group_waits.waiting()))
    elif f.waiting:
        conditions.append(Conversation.awaiting_since.is_not(None))
    if f.staff_userid:
        conditions.append(_involves([f.staff_userid]))
    if f.customer_id is not None:
        conditions.append(_with_customer(f.customer_id))
    if f.kind:
        conditions.append(Conversation.kind == f.kind)
    if f.among is not None:
        conditions.append(Conversation.id.in_(sorted(f.among)))
    if f.group_waiting and not f.waiting:
        conditions.append(group_waits.waiting())
    return conditions


def get_conversation(session: Session, viewer: Reader, conversation_id: int) -> Conversation | None:
    """The conversation, if the viewer may read it: within their scope, or one an escalation
    card was sent to them about (an escalation contact, a leader made one after signing in:
    the card's link must open what it tells of)."""
    found = session.scalar(readable(viewer).where(Conversation.id == conversation_id))
    if found is None and _was_told(session, viewer, conversation_id):
        found = session.scalar(select(Conversation).where(Conversation.id == conversation_id))
    return found


def _was_told(session: Session, viewer: Reader, conversation_id: int) -> bool:
    from siyu.sla.models import SlaEscalation

    told = _told_about(viewer).where(SlaEscalation.conversation_id == conversation_id)
    return session.scalar(told.limit(1)) is not None


def _told_about(viewer: Reader) -> Select:
    """SELECT the ids of the conversations an escalation card went to the viewer about."""
    from siyu.sla.models import SlaEscalation  # (the SLA domain builds on this one)

    me = getattr(viewer, "staff_userid", None)
    return select(SlaEscalation.conversation_id).where(SlaEscalation.recipient == me if me else false())


# ---------------------------------------------------------------- shaping rows


def _customers(session: Session, ids: set[int]) -> dict[int, Customer]:
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ids)))}


def _external_names(
    session: Session, external_userids: set[str], rooms: set[str] = frozenset()
) -> dict[str, str]:
    """Customers' names; a group member who is nobody's customer here, or a customer whose name
    shows nothing, by what WeCom names them in one of `rooms` (the groups they wrote in:
    GroupChat.member_names); a customer named nowhere （未命名）, as everywhere (their messages
    had read 未知联系人, or the blank itself in a group)."""
    if not external_userids:
        return {}
    customers = dict(
        session.execute(
            select(Customer.external_userid, Customer.name).where(
                Customer.external_userid.in_(external_userids)
            )
        ).all()
    )
    names = {e: name for e, name in customers.items() if name}
    unnamed = external_userids - names.keys()
    if unnamed and rooms:
        for told in session.scalars(
            select(GroupChat.member_names).where(GroupChat.chat_id.in_(sorted(rooms)))
        ):
            for e in unnamed & set(told or {}):
                if e not in names and (shown := tidy_name(told[e] or "")):
                    names[e] = shown
    return {**dict.fromkeys(customers, UNNAMED), **names}


def _remarks(session: Session, conversations: list[Conversation]) -> dict[tuple[int, str], str]:
    """The remark each 1:1 chat's member gave its customer (customers.queries.remarks_on), by
    (customer, member). One read for the page."""
    pairs = {(c.customer_id, c.staff_userid) for c in conversations if c.kind == "single" and c.customer_id}
    remarks = remarks_on(session, {customer for customer, _ in pairs})
    return {pair: remark for pair, remark in remarks.items() if pair in pairs}


def customer_title(customer: Customer | None, external_userid: str) -> str:
    """How a chat names its customer: by name, （未命名） where the name shows nothing (the Braille
    blank of a WeChat nickname; WeCom's external userid is no name anyone finds in WeCom), by that
    userid only where Siyu knows no customer."""
    if customer is not None:
        return customer.name or UNNAMED
    return external_userid or "（未知客户）"


def _customer_ref(c: Customer | None) -> dict | None:
    return {"id": c.id, "name": c.name, "avatar": c.avatar} if c else None


def conversation_dict(
    c: Conversation,
    customer: Customer | None,
    names: dict[str, str],
    now: datetime,
    last_text: str = "",
    waiting_message: dict | None = None,
    group: GroupChat | None = None,
    gone: dict[str, str] | None = None,
    remark: str = "",
) -> dict:
    """`gone`: the members no longer with the corp (tenancy.queries.staff_gone); `remark`: the
    chat's member's remark on its customer (`_remarks`)."""
    waited = (now - c.awaiting_since).total_seconds() if c.awaiting_since else None
    if c.kind == "group":
        title = group_title(c.roomid, group, names)
    else:
        title = customer_title(customer, c.external_userid)
    return {
        "id": c.id,
        "kind": c.kind,
        "kind_name": KIND_NAMES.get(c.kind, c.kind),
        "title": title,
        "remark": remark or None,
        "customer": _customer_ref(customer),
        "external_userid": c.external_userid,
        "staff_userid": c.staff_userid,
        "staff_name": names.get(c.staff_userid, c.staff_userid),
        **_staff_gone(c.staff_userid, gone or {}),
        "roomid": c.roomid,
        "group": _group_ref(group, names, gone or {}) if c.kind == "group" else None,
        "message_count": c.message_count,
        "last_message_at": c.last_message_at,
        "last_inbound_at": c.last_inbound_at,
        "last_outbound_at": c.last_outbound_at,
        "last_message": last_text,
        "awaiting_since": c.awaiting_since,
        "awaiting_msgid": c.awaiting_msgid,
        "waiting": c.awaiting_since is not None,
        "waiting_seconds": int(max(0, waited)) if waited is not None else None,
        "waiting_text": wait_text(waited),
        "waiting_message": waiting_message,
        # what an open chat compares to know it changed: a recall or a consent event adds no
        # message and may close no wait, but each moves the last message's time
        "version": f"{c.message_count}|{c.awaiting_msgid}|{_ms(c.last_message_at)}",
    }


def _staff_gone(userid: str, gone: dict[str, str]) -> dict:
    """Whether the chat's member left (已离职, 已禁用): nobody answers the customer there."""
    word = gone.get(userid, "")
    return {"staff_gone": word, "staff_status": STAFF_STATUS[word]}


def _ms(at: datetime | None) -> int:
    return int(at.timestamp() * 1000) if at is not None else 0


def group_title(roomid: str, group: GroupChat | None, names: dict[str, str]) -> str:
    """A group chat's name as WeCom tells it; unnamed, whose group it is (WeCom lists it by
    its members); its room id until WeCom has told anything."""
    if group is not None and group.name:
        return group.name
    if group is not None and group.owner_userid:
        return f"{names.get(group.owner_userid, group.owner_userid)}的群聊"
    return f"群聊 {roomid}"


def _group_ref(group: GroupChat | None, names: dict[str, str], gone: dict[str, str]) -> dict | None:
    if group is None:
        return None
    return {
        "name": group.name,
        "owner_userid": group.owner_userid,
        "owner_name": names.get(group.owner_userid, group.owner_userid),
        "owner_gone": gone.get(group.owner_userid, ""),  # (the pages' mark: 群主 赵六（已离职）)
        "owner_status": STAFF_STATUS[gone.get(group.owner_userid, "")] if group.owner_userid else None,
        "member_count": group.member_count,
        "customer_count": group.customer_count,
        "status": group.status,
        "problem": group.problem if group.status == "unknown" else "",
        "checked_at": group.checked_at,
    }


def _group_chats(session: Session, roomids: set[str]) -> dict[str, GroupChat]:
    roomids.discard("")
    if not roomids:
        return {}
    return {g.chat_id: g for g in session.scalars(select(GroupChat).where(GroupChat.chat_id.in_(roomids)))}


def message_labels(m: Message) -> list[str]:
    labels = []
    if m.recalled:
        labels.append("已撤回")
    if m.by_siyu:
        labels.append("自动发送")
    if m.direction == "in" and m.needs_reply is False:
        labels.append("结束语")  # Siyu read it as a closing remark (the button 标记无需回复 is the agent's)
    return labels


def message_dict(m: Message, sender_name: str, awaiting_msgid: str, gone: dict[str, str]) -> dict:
    """`gone` (staff_gone, of the members who wrote at least): marks a member's message whose
    sender left since (赵六（已离职）); a customer's has no member to mark."""
    word = gone.get(m.sender, "") if m.direction != "in" else ""
    return {
        "id": m.id,
        "msgid": m.msgid,
        "conversation_id": m.conversation_id,
        "direction": m.direction,
        "sender": m.sender,
        "sender_name": sender_name,
        "sent_at": m.sent_at,
        "msgtype": m.msgtype,
        "text": m.text,
        "url": address(m.body or {}),
        "recalled": m.recalled,
        "needs_reply": m.needs_reply,
        "reply_score": m.reply_score,
        "by_siyu": m.by_siyu,
        "labels": message_labels(m),
        "waiting": bool(awaiting_msgid) and m.msgid == awaiting_msgid,
        "event": m.msgtype in EVENT_TYPES,
        "sender_gone": word,
        "sender_status": STAFF_STATUS[word] if m.direction != "in" else None,
    }


def _sender_names(session: Session, messages: list[Message], staff: dict[str, str]) -> dict[str, str]:
    """Names of the senders; one Siyu does not know (a group member who is nobody's customer
    here) by the end of their id, as 未知联系人…4F2X, not its 32 characters. A staff member
    the staff sync has not brought yet is named by their userid (the caller's default)."""
    externals = {m.sender for m in messages if m.sender and m.sender not in staff and m.direction == "in"}
    rooms = {str(m.body.get("roomid") or "") for m in messages if m.sender in externals and m.body} - {""}
    known = _external_names(session, externals, rooms)
    return {**{e: known.get(e) or unknown_sender(e) for e in externals}, **staff}


def unknown_sender(external_userid: str) -> str:
    """A sender Siyu has no name for: a group robot (its posts, a report or a reminder, ask
    nothing), or a group member who is nobody's customer here, by the end of their id."""
    if external_userid.startswith(ROBOT_PREFIX):
        return "群机器人"
    return f"未知联系人…{external_userid[-4:]}"


def _messages_by_msgid(session: Session, msgids: set[str]) -> dict[str, Message]:
    if not msgids:
        return {}
    return {m.msgid: m for m in session.scalars(select(Message).where(Message.msgid.in_(msgids)))}


@dataclass(frozen=True)
class Asks:
    texts: list[str]  # the first and at most the `last` newest, oldest first
    total: int
    # the one stored last (an import may store an older one after it): what a dismiss names
    # once it was shown (service.dismiss)
    newest_msgid: str


def waiting_asks(
    session: Session, waits: dict[int, datetime], last: int = 5
) -> dict[int, tuple[list[str], int]]:
    """What each waiting customer has written since the wait began (`waiting_asked`), as
    texts and how many there are in all."""
    return {cid: (a.texts, a.total) for cid, a in waiting_asked(session, waits, last).items() if a.texts}


def waiting_asked(session: Session, waits: dict[int, datetime], last: int = 5) -> dict[int, Asks]:
    """What each waiting customer has written since the wait began (`waits`: conversation id
    to when its clock started): the messages that need a reply, not recalled, oldest first:
    the first and at most the `last` newest, and how many there are in all. The first is
    what was asked (a question, then five 在吗: the quote had been the 在吗s alone), or a
    greeting the question follows."""
    if not waits:
        return {}
    m = Message
    newest_first = (m.sent_at.desc(), m.id.desc())
    ranked = (
        select(
            m.conversation_id,
            m.sent_at,
            m.text,
            m.msgid,
            func.row_number().over(partition_by=m.conversation_id, order_by=newest_first).label("rn"),
            func.row_number().over(partition_by=m.conversation_id, order_by=m.id.desc()).label("stored"),
            func.count().over(partition_by=m.conversation_id).label("total"),
        )
        .join(Conversation, Conversation.id == m.conversation_id)
        .where(
            bulk.among(session, m.conversation_id, list(waits)),
            m.sent_at >= Conversation.awaiting_since,  # each bounded by its own wait
            m.action == SENDABLE,
            m.direction == "in",
            m.recalled.is_(False),
            m.needs_reply.is_(True),
        )
        .subquery()
    )
    rows = session.execute(
        select(
            ranked.c.conversation_id,
            ranked.c.sent_at,
            ranked.c.text,
            ranked.c.msgid,
            ranked.c.rn,
            ranked.c.total,
            ranked.c.stored,
        )
        .where(or_(ranked.c.rn <= last, ranked.c.rn == ranked.c.total, ranked.c.stored == 1))
        .order_by(ranked.c.conversation_id, ranked.c.sent_at, ranked.c.rn.desc())
    )
    texts: dict[int, list[str]] = {}
    newest: dict[int, tuple[str, int]] = {}
    stored_last: dict[int, str] = {}
    for cid, sent_at, text, msgid, rn, total, stored in rows:
        if sent_at < waits[cid]:
            continue
        if stored == 1:
            stored_last[cid] = msgid
        if rn > last and rn != total:
            continue
        if rn == 1:
            newest[cid] = (msgid, total)
        if text.strip():
            texts.setdefault(cid, []).append(text)
    return {
        cid: Asks(texts.get(cid, []), total, stored_last.get(cid, msgid))
        for cid, (msgid, total) in newest.items()
    }


def message_said(session: Session, conversation_id: int, msgid: str) -> tuple[str, datetime] | None:
    """What a message of the conversation reads (its readable rendering) and when it was sent."""
    found = session.execute(
        select(Message.text, Message.sent_at)
        .where(Message.conversation_id == conversation_id, Message.msgid == msgid)
        .limit(1)
    ).first()
    return (found.text, found.sent_at) if found is not None else None


QUOTE_CHARS = 30


def said_quote(said: tuple[str, datetime], tz: str, now: datetime) -> tuple[str, str]:
    """A message as a refused 无需回复 quotes it (message_said's): its text, shortened, and
    when it was sent, the day too when it was not today."""
    text, sent_at = said
    text = " ".join(text.split()) or "（非文字消息）"
    quote = text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"
    today = sent_at.astimezone(ZoneInfo(tz)).date() == timezones.today(tz, now)
    return quote, timezones.wall_clock(sent_at, tz, "%H:%M" if today else "%Y-%m-%d %H:%M")


def quote_asks(texts: list[str], limit: int, total: int | None = None, each: int = 40) -> str:
    """The waiting messages on one line of at most `limit` characters, the start of each kept:
    a long first question then 在吗 is 这款有没有 256G 的黑色，今天下单能… / 在吗, not … / 在吗 (a
    supervisor read the nudge, not the question). Each is cut to `each` characters, then
    shorter, down to a few; only then are those between the first and the newest left out
    (首个问题… / … / 在吗), and at last all but the first. Those not even given (`total` -
    len(texts) of them) are taken to be between the first and the rest, as waiting_asked gives
    the first and the newest."""
    parts = [" ".join(t.split()) for t in texts if t.strip()]
    if not parts:
        return ""
    missing = (total or len(parts)) > len(parts)
    for kept in range(len(parts), 0, -1):
        # the first and the newest: what was asked, and where the customer is now
        whole = kept == len(parts) and not missing
        shown = parts if whole else [parts[0], "…", *parts[len(parts) - kept + 1 :]]
        for cap in range(each, _FEWEST - 1, -1):
            line = " / ".join(p if p == "…" else _cut(p, cap) for p in shown)
            if len(line) <= limit:
                return line
    return _cut(parts[0], limit)


_FEWEST = 6  # characters a cut message keeps at the least, … included


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(n - 1, 0)] + "…"


def _last_texts(session: Session, conversation_ids: list[int]) -> dict[int, str]:
    """The text of each conversation's newest message (one row per conversation)."""
    if not conversation_ids:
        return {}
    ranked = (
        select(
            Message.conversation_id,
            Message.text,
            Message.recalled,
            func.row_number()
            .over(partition_by=Message.conversation_id, order_by=(Message.sent_at.desc(), Message.id.desc()))
            .label("rn"),
        )
        .where(Message.conversation_id.in_(conversation_ids), Message.action == SENDABLE)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.conversation_id, ranked.c.text, ranked.c.recalled).where(ranked.c.rn == 1)
    )
    return {cid: ("[已撤回]" if recalled else text) for cid, text, recalled in rows}


def _shape(
    session: Session, conversations: list[Conversation], now: datetime, gone: dict[str, str] | None = None
) -> list[dict]:
    names = staff_names(session)
    group_chats = _group_chats(session, {c.roomid for c in conversations if c.kind == "group"})
    if gone is None:  # the chats' members and their groups' owners
        members = {c.staff_userid for c in conversations} | {g.owner_userid for g in group_chats.values()}
        gone = staff_gone(session, members - {""})
    customers = _customers(session, {c.customer_id for c in conversations if c.customer_id})
    last = _last_texts(session, [c.id for c in conversations])
    waiting = _messages_by_msgid(session, {c.awaiting_msgid for c in conversations if c.awaiting_msgid})
    asks = waiting_asked(session, {c.id: c.awaiting_since for c in conversations if c.awaiting_since})
    senders = _sender_names(session, list(waiting.values()), names)
    in_groups = group_waits.group_waits(session, [c.id for c in conversations if c.kind == "group"])
    rooms = {c.roomid for c in conversations if c.id in in_groups}
    askers = _external_names(session, {w.sender for w in in_groups.values()}, rooms)
    remarks = _remarks(session, conversations)
    out = []
    for c in conversations:
        w = waiting.get(c.awaiting_msgid) if c.awaiting_msgid else None
        # (a customer's message: no member to mark)
        wd = message_dict(w, senders.get(w.sender, w.sender), c.awaiting_msgid, gone) if w else None
        customer, group = customers.get(c.customer_id), group_chats.get(c.roomid)
        remark = remarks.get((c.customer_id, c.staff_userid), "")
        shaped = conversation_dict(c, customer, names, now, last.get(c.id, ""), wd, group, gone, remark)
        asked = asks.get(c.id)
        shaped["waiting_quote"] = quote_asks(asked.texts, 80, asked.total) if asked and asked.texts else ""
        shaped["waiting_newest_msgid"] = asked.newest_msgid if asked else ""
        shaped["group_wait"] = _group_wait_dict(in_groups.get(c.id), askers, now)
        out.append(shaped)
    return out


def _group_wait_dict(w: group_waits.GroupWait | None, askers: dict[str, str], now: datetime) -> dict | None:
    """A customer group's unanswered customer message: shown, never escalated."""
    if w is None:
        return None
    waited = (now - w.since).total_seconds()
    return {
        "since": w.since,
        "waiting_seconds": int(max(0, waited)),
        "waiting_text": wait_text(waited),
        "msgid": w.msgid,
        "text": w.text,
        "sender_name": askers.get(w.sender) or unknown_sender(w.sender),
    }


# ---------------------------------------------------------------- lists and gets


_NOT_WAITING = case((Conversation.awaiting_since.is_(None), 1), else_=0)
# Waiting longest first, then the most recent conversation first.
_LIST_ORDER = (
    SortKey(_NOT_WAITING),
    SortKey(Conversation.awaiting_since),
    SortKey(Conversation.last_message_at, desc=True),
    SortKey(Conversation.id, desc=True),
)
_LIST_CURSOR = (int, datetime, datetime, int)


def _waiting_or_not(cursor: tuple) -> bool:
    """A list cursor's first value says whether its chat waits, its second since when."""
    return (cursor[0] == 1) == (cursor[1] is None)


def _list_cursor(c: Conversation) -> str:
    return paging.encode((int(c.awaiting_since is None), c.awaiting_since, c.last_message_at, c.id))


def list_conversations(
    session: Session,
    viewer: Reader,
    f: ConversationFilter | None = None,
    page: int = 1,
    per_page: int = 20,
    now: datetime | None = None,
    *,
    after: str | None = None,
    before: str | None = None,
    gone: dict[str, str] | None = None,
) -> Page:
    """Waiting longest first, then the most recent conversation first. Pages by number, or by
    the cursor of the page before (`after`) or after (`before`) the one wanted: BadCursor when
    it is not a cursor this list handed out. Going back to the top gives the first page whole.
    `gone`: staff_gone, where the caller read it for the rest of its page too."""
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    stmt = readable(viewer, f)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    got = paging.take(
        session,
        stmt,
        _LIST_ORDER,
        _LIST_CURSOR,
        page,
        per_page,
        after,
        before,
        scalars=True,
        holds=_waiting_or_not,
    )
    rows = got.rows
    return Page(
        _shape(session, rows, _now(now), gone),
        total,
        got.page,
        per_page,
        next=_list_cursor(rows[-1]) if rows and got.has_next else None,
        prev=got.prev(_list_cursor),
    )


def conversation(
    session: Session,
    viewer: Reader,
    conversation_id: int,
    now: datetime | None = None,
    gone: dict[str, str] | None = None,
) -> dict | None:
    """One conversation (with its waiting message), or None when the viewer may not read it.
    `gone`: staff_gone, where the caller read it for the rest of its page too."""
    found = get_conversation(session, viewer, conversation_id)
    if found is None:
        return None
    shaped = _shape(session, [found], _now(now), gone)[0]
    # the customer's last word on archiving, as WeCom recorded it in the chat
    consent = session.scalar(
        select(Message.msgtype)
        .where(Message.conversation_id == found.id, Message.msgtype.in_(EVENT_TYPES))
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )
    # the pair no longer contacts (the customer deleted the staff member, or the other way round,
    # or was handed over): its wait closed without a reply, and nothing more will escalate
    ended = None
    if found.kind == "single" and found.customer_id:
        row = session.execute(
            select(Follow.status, Follow.ended_at).where(
                Follow.customer_id == found.customer_id, Follow.staff_userid == found.staff_userid
            )
        ).first()
        if row is not None and row.status in ("lost", "deleted", "transferred"):
            ended = {"status": row.status, "at": row.ended_at}
    unarchived = (
        session.scalar(
            select(Staff.unarchived_since).where(Staff.userid == found.staff_userid, Staff.active.is_(True))
        )
        if found.kind == "single"
        else None
    )
    snooze = _snooze(session, found.id, _now(now))
    shown = {
        **shaped,
        "archiving": {"agree": "agreed", "disagree": "declined"}.get(consent or ""),
        "member_unarchived_since": unarchived,
        "contact_ended": ended,
        "snooze": snooze,
    }
    return {**shown, "version": _version(session, shown)}


def _version(session: Session, c: dict) -> str:
    """What an open chat compares to know it changed: besides the row's (shaped's), what else
    its page shows: the rows stored, recalls among them (one pulled after newer messages moves
    neither the message count nor the last time; counted on the chat's own index, where the
    newest id had PostgreSQL walk the corp's newer messages), the steps gone out, a
    colleague's snooze, the contact's end, the member off the archive, the title and remark,
    a group's unanswered customer and state."""
    from siyu.sla.models import SlaEscalation  # (the SLA domain builds on this one)

    stored, steps = session.execute(
        select(
            select(func.count()).where(Message.conversation_id == c["id"]).scalar_subquery(),
            select(func.count())
            .where(SlaEscalation.conversation_id == c["id"], SlaEscalation.status != "pending")
            .scalar_subquery(),
        )
    ).one()
    snooze, ended, group, group_wait = c["snooze"], c["contact_ended"], c["group"], c.get("group_wait")
    shown = [
        stored,
        steps,
        snooze and f"{_ms(snooze['until'])}:{snooze['by']}",
        ended and ended["status"],
        c["member_unarchived_since"] and _ms(c["member_unarchived_since"]),
        c["title"],
        c["remark"],
        group and group["status"],
        group_wait and group_wait["msgid"],
    ]
    digest = hashlib.sha256("|".join("" if v is None else str(v) for v in shown).encode()).hexdigest()[:12]
    return f"{c['version']}|{digest}"


def _snooze(session: Session, conversation_id: int, now: datetime) -> dict | None:
    """The snooze in force on the conversation's open wait: until when, who asked and when."""
    return snoozes(session, [conversation_id], now).get(conversation_id)


def snoozes(session: Session, conversation_ids: list[int], now: datetime) -> dict[int, dict]:
    """The snooze in force on each of these conversations' open waits (`_snooze`'s), by id."""
    from siyu.sla.models import SlaWait  # (the SLA domain builds on this one)

    if not conversation_ids:
        return {}
    rows = session.execute(
        select(SlaWait.conversation_id, SlaWait.snoozed_until, SlaWait.snoozed_by, SlaWait.snoozed_at).where(
            SlaWait.conversation_id.in_(sorted(set(conversation_ids))),
            SlaWait.closed_at.is_(None),
            SlaWait.snoozed_until > now,
        )
    )
    return {
        r.conversation_id: {"until": r.snoozed_until, "by": r.snoozed_by, "at": r.snoozed_at} for r in rows
    }


@dataclass
class MessagePage:
    items: list[dict]  # chronological
    has_more: bool  # there are older messages
    before: int | None  # pass as `before` to get the page of older messages


class UnknownMessage(LookupError):
    """A page asked for messages before one that is not in the conversation."""


# A page opened at a message (a search result) shows this many messages after it too.
AFTER_FOUND = 5


def _anchor(session: Session, conversation_id: int, message_id: int, name: str):
    """(sent_at, id) of a message a page is placed by; UnknownMessage when it is not one of
    the conversation's."""
    anchor = session.execute(
        select(Message.sent_at, Message.id).where(
            Message.id == message_id, Message.conversation_id == conversation_id
        )
    ).first()
    if anchor is None:
        raise UnknownMessage(
            f"该会话里没有消息 {message_id} / {name}: no message {message_id} in this conversation"
        )
    return anchor


def page_at(session: Session, viewer: Reader, conversation_id: int, message_id: int) -> int | None:
    """The `before` that opens a page of `messages` on message `message_id` (with a few after
    it); None when that is the newest page. UnknownMessage when it is not in the conversation."""
    found = get_conversation(session, viewer, conversation_id)
    if found is None:
        return None
    return _nth_after(session, found.id, _anchor(session, found.id, message_id, "at"), AFTER_FOUND)


def page_after(session: Session, viewer: Reader, conversation_id: int, message_id: int) -> int | None:
    """The `before` of the page of `messages` right after message `message_id` (the newer
    page of one opened with `before`); None when that is the newest page."""
    found = get_conversation(session, viewer, conversation_id)
    if found is None:
        return None
    anchor = _anchor(session, found.id, message_id, "before")
    return _nth_after(session, found.id, anchor, MESSAGES_PER_PAGE)


def _nth_after(session: Session, conversation_id: int, anchor: Message, n: int) -> int | None:
    """The id of the message n places after `anchor` (0: the next one), if there is one."""
    return session.scalars(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            Message.action == SENDABLE,
            or_(
                Message.sent_at > anchor.sent_at,
                and_(Message.sent_at == anchor.sent_at, Message.id > anchor.id),
            ),
        )
        .order_by(Message.sent_at, Message.id)
        .offset(n)
        .limit(1)
    ).first()


def messages(
    session: Session,
    viewer: Reader,
    conversation_id: int,
    before: int | None = None,
    limit: int = MESSAGES_PER_PAGE,
    gone: dict[str, str] | None = None,
) -> MessagePage | None:
    """The newest `limit` messages (older than message `before`), oldest first; None when
    the viewer may not read the conversation; UnknownMessage when `before` is not one of its
    messages. `gone` (staff_gone; the chat page's): each message's sender_gone and
    sender_status, for a member who has left since (赵六（已离职）); without it, read for the
    members who wrote these messages alone (the API's)."""
    found = get_conversation(session, viewer, conversation_id)
    if found is None:
        return None
    limit = min(max(1, limit), MAX_PER_PAGE)
    stmt = select(Message).where(Message.conversation_id == found.id, Message.action == SENDABLE)
    if before is not None:
        anchor = _anchor(session, found.id, before, "before")
        stmt = stmt.where(
            or_(
                Message.sent_at < anchor.sent_at,
                and_(Message.sent_at == anchor.sent_at, Message.id < anchor.id),
            )
        )
    rows = list(session.scalars(stmt.order_by(Message.sent_at.desc(), Message.id.desc()).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = list(reversed(rows[:limit]))
    senders = _sender_names(session, rows, staff_names(session))
    if gone is None:
        gone = staff_gone(session, {m.sender for m in rows if m.direction != "in"})
    items = [message_dict(m, senders.get(m.sender, m.sender), found.awaiting_msgid, gone) for m in rows]
    _mark_dismissed(session, list(zip(rows, items, strict=True)))
    return MessagePage(items, has_more, rows[0].id if has_more and rows else None)


def _mark_dismissed(session: Session, shown: list[tuple[Message, dict]]) -> None:
    """The customer messages among these (each with its message_dict) whose waits were marked
    "no reply needed" say when, and by whom, with the label: the chat's page and a search hit alike."""
    from siyu.sla.models import SlaWait  # (the SLA domain builds on this one)

    asked = {(m.conversation_id, m.msgid) for m, _ in shown if m.direction == "in"}
    if not asked:
        return
    rows = session.execute(
        select(SlaWait.conversation_id, SlaWait.msgid, SlaWait.closed_at, SlaWait.closed_by).where(
            bulk.among(session, SlaWait.conversation_id, {c for c, _ in asked}),
            bulk.among(session, SlaWait.msgid, {msgid for _, msgid in asked}),
            SlaWait.close_reason == "dismissed",
        )
    )
    dismissed = {(c, msgid): (at, by) for c, msgid, at, by in rows if (c, msgid) in asked}
    for m, item in shown:
        if (found := dismissed.get((m.conversation_id, m.msgid))) is not None:
            item["labels"].append("已标记无需回复")
            item["dismissed_at"], item["dismissed_by"] = found


def waiting_count(session: Session, viewer: Reader, within: ConversationFilter | None = None) -> int:
    """How many of the viewer's 1:1 conversations wait for a reply (of those `within` selects; a
    group's customer is counted by groups_waiting_count)."""
    within = within or ConversationFilter()
    if within.group_waiting and not within.waiting:
        return 0  # only groups are listed
    stmt = readable(viewer, replace(within, waiting=True, group_waiting=False))
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def groups_waiting_count(session: Session, viewer: Reader, within: ConversationFilter | None = None) -> int:
    """How many of the viewer's customer groups owe a customer a reply (of those `within`
    selects): each group is read for it, so it is asked only where a group's row says so."""
    stmt = readable(viewer, replace(within or ConversationFilter(), waiting=False, group_waiting=True))
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def waiting_among(session: Session, conversation_ids: frozenset[int]) -> int:
    """How many of these conversations wait for a reply, whoever may read them (a card's
    customers: those the viewer cannot see are counted, not shown)."""
    if not conversation_ids:
        return 0
    found = select(func.count()).where(
        Conversation.id.in_(sorted(conversation_ids)), Conversation.awaiting_since.is_not(None)
    )
    return session.scalar(found) or 0


# ---------------------------------------------------------------- search


@dataclass
class SearchPage:
    items: list[dict]
    q: str
    page: int | None  # None when the page was found by cursor
    per_page: int
    has_more: bool  # there are results after this page
    # the cursors of the pages after and before this one (None at either end)
    next: str | None = None
    prev: str | None = None


# Newest first. Paged by cursor: the archive brings newer messages all the time, and a page
# number counted from the newest had shown the last results of one page again on the next.
_SEARCH_ORDER = (SortKey(Message.sent_at, desc=True), SortKey(Message.id, desc=True))
_SEARCH_CURSOR = (datetime, int)


def _search_cursor(m: Message) -> str:
    return paging.encode((m.sent_at, m.id))


def search_messages(
    session: Session,
    viewer: Reader,
    q: str,
    page: int = 1,
    per_page: int = 20,
    f: ConversationFilter | None = None,
    *,
    after: str | None = None,
    before: str | None = None,
) -> SearchPage:
    """Messages matching `q` (see siyu.conversations.search), newest first, with a snippet;
    only in conversations that match the filters `f`, if given. Pages by number, or by the
    cursor of the page before (`after`) or after (`before`) the one wanted: BadCursor when it
    is not one a search handed out."""
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    query = search_index.parse_query(q or "")
    if query.empty:
        cursor = paging.read_cursor(after, before, _SEARCH_CURSOR)  # (a bad one is still refused)
        return SearchPage([], q, None if cursor is not None else page, per_page, False)
    stmt = select(Message, Conversation).join(Conversation, Conversation.id == Message.conversation_id)
    readable_here = (_readable_condition(viewer, f), *_matching(f), Message.action == SENDABLE)
    if query.indexed:
        stmt = stmt.where(*readable_here)
        hits = search_index.matching_ids(session, query)
        stmt = stmt.join(hits, hits.c.message_id == Message.id)
        if query.checked:
            stmt = stmt.where(search_index.singles_condition(Message.text, query))
    else:
        # One character: no bigram to look up, so LIKE over the newest messages only: the newest
        # the viewer may read (within the filters), not the tenant's, which may hold none of theirs.
        recent = (
            select(Message.id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(*readable_here)
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(search_index.LIKE_SCAN)
        )
        # (only those: asking again who may read each one had the database work out the
        # viewer's chats a second time: a quarter of an agent's search of a 50,000-chat tenant)
        stmt = stmt.where(Message.id.in_(recent), search_index.singles_condition(Message.text, query))
    got = paging.take(session, stmt, _SEARCH_ORDER, _SEARCH_CURSOR, page, per_page, after, before)
    rows = got.rows
    names = staff_names(session)
    # the chats' members and the members who wrote the messages found
    members = {c.staff_userid for _, c in rows} | {m.sender for m, _ in rows if m.direction != "in"}
    gone = staff_gone(session, members - {""})
    customers = _customers(session, {c.customer_id for _, c in rows if c.customer_id})
    group_chats = _group_chats(session, {c.roomid for _, c in rows if c.kind == "group"})
    senders = _sender_names(session, [m for m, _ in rows], names)
    remarks = _remarks(session, [c for _, c in rows])
    items, shown = [], []
    for m, c in rows:
        text, spans = search_index.snippet(m.text, query)
        customer = customers.get(c.customer_id) if c.customer_id else None
        message = message_dict(m, senders.get(m.sender, m.sender), c.awaiting_msgid, gone)
        shown.append((m, message))
        items.append(
            {
                "message": message,
                "conversation": {
                    "id": c.id,
                    "kind": c.kind,
                    "title": group_title(c.roomid, group_chats.get(c.roomid), names)
                    if c.kind == "group"
                    else customer_title(customer, c.external_userid),
                    "remark": remarks.get((c.customer_id, c.staff_userid)),
                    "customer": _customer_ref(customer),
                    "staff_userid": c.staff_userid,
                    "staff_name": names.get(c.staff_userid, c.staff_userid),
                    **_staff_gone(c.staff_userid, gone),
                },
                "snippet": text,
                "highlights": [list(s) for s in spans],
                "parts": search_index.snippet_parts(text, spans),
            }
        )
    _mark_dismissed(session, shown)
    return SearchPage(
        items,
        q,
        got.page,
        per_page,
        got.has_next,
        next=_search_cursor(rows[-1][0]) if rows and got.has_next else None,
        prev=got.prev(lambda row: _search_cursor(row[0])),
    )
