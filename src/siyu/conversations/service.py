"""Conversation rules: the only writer of messages and conversations.

`ingest` stores archived messages once (unique on tenant + msgid) and moves each
conversation's state: when the customer last wrote, when staff last answered, and which
customer message still waits for a reply since when. The clock starts at the customer
message's msgtime; a closing remark (好的谢谢) owes nothing; a new customer message while
waiting does not restart the clock; a message the staff member sends by hand closes the
wait, while what Siyu sent on their behalf (the welcome message) does not; recalling the
only waiting message closes the wait.

Other domains follow these changes through listeners called in the same transaction
(`on_wait`), so escalation state can never disagree with the messages it is about;
conversations never read them back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.conversations import search
from siyu.conversations.models import ArchiveKey, Conversation, Message
from siyu.conversations.render import render
from siyu.customers.models import Customer
from siyu.notify.models import OutboxMessage
from siyu.tenancy.models import Staff

# A WeCom external user id starts with wm/wo (customers) or wb (robots); staff ids do not.
EXTERNAL_PREFIXES = ("wm", "wo", "wb")
SIYU_ECHO_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class WaitChange:
    """A conversation started or stopped owing the customer a reply."""

    conversation: Conversation
    opened: bool  # True: a wait began at `at`; False: it ended at `at`
    at: datetime
    msgid: str
    reason: str  # customer_message | replied | recalled | dismissed


WAIT_LISTENERS: list[Callable[[Session, WaitChange], None]] = []


def on_wait(listener: Callable[[Session, WaitChange], None]) -> Callable[[Session, WaitChange], None]:
    WAIT_LISTENERS.append(listener)
    return listener


def _announce(session: Session, change: WaitChange) -> None:
    for listener in WAIT_LISTENERS:
        listener(session, change)


def ms_to_datetime(ms: int | str | None) -> datetime:
    return datetime.fromtimestamp(int(ms or 0) / 1000, UTC)


@dataclass
class _Parsed:
    item_seq: int
    msgid: str
    message: dict
    action: str
    sender: str
    sent_at: datetime
    key: str | None
    kind: str
    external_userid: str
    staff_userid: str
    roomid: str
    direction: str


def _is_external(user: str, staff: set[str]) -> bool:
    return user not in staff and user.startswith(EXTERNAL_PREFIXES)


def _parse(seq: int, msgid: str, message: dict, staff: set[str]) -> _Parsed:
    action = message.get("action", "send")
    sender = message.get("from", "") or message.get("user", "")
    sent_at = ms_to_datetime(message.get("msgtime") or message.get("time"))
    roomid = message.get("roomid", "") or ""
    tolist = message.get("tolist") or []
    key, kind, ext, userid, direction = None, "", "", "", "internal"
    if roomid:
        key, kind = f"group:{roomid}", "group"
        direction = "in" if _is_external(sender, staff) else "out"
        userid = "" if direction == "in" else sender
        ext = sender if direction == "in" else ""
    elif tolist:
        other = tolist[0]
        if _is_external(sender, staff) and not _is_external(other, staff):
            ext, userid, direction = sender, other, "in"
        elif _is_external(other, staff) and not _is_external(sender, staff):
            ext, userid, direction = other, sender, "out"
        if ext:
            key, kind = f"single:{ext}:{userid}", "single"
    return _Parsed(seq, msgid, message, action, sender, sent_at, key, kind, ext, userid, roomid, direction)


def _conversations(session: Session, parsed: list[_Parsed]) -> dict[str, Conversation]:
    keys = {p.key for p in parsed if p.key}
    found = (
        {c.key: c for c in session.scalars(select(Conversation).where(Conversation.key.in_(keys)))}
        if keys
        else {}
    )
    missing = [p for p in parsed if p.key and p.key not in found]
    if missing:
        externals = {p.external_userid for p in missing if p.external_userid}
        q = select(Customer.external_userid, Customer.id).where(Customer.external_userid.in_(externals))
        customers = {ext: cid for ext, cid in session.execute(q)} if externals else {}
        for p in missing:
            if p.key in found:
                continue
            conversation = Conversation(
                key=p.key,
                kind=p.kind,
                roomid=p.roomid,
                external_userid=p.external_userid if p.kind == "single" else "",
                staff_userid=p.staff_userid if p.kind == "single" else "",
                customer_id=customers.get(p.external_userid) if p.kind == "single" else None,
            )
            session.add(conversation)
            found[p.key] = conversation
        session.flush()
    return found


def _siyu_sent(session: Session, parsed: list[_Parsed]) -> set[tuple[str, str, str]]:
    """(userid, external_userid, text) of what Siyu itself sent around these messages."""
    outbound = [p for p in parsed if p.direction == "out" and p.kind == "single"]
    if not outbound:
        return set()
    start = min(p.sent_at for p in outbound) - SIYU_ECHO_WINDOW
    end = max(p.sent_at for p in outbound) + SIYU_ECHO_WINDOW
    rows = session.scalars(
        select(OutboxMessage.payload).where(
            OutboxMessage.kind == "welcome",
            OutboxMessage.status == "sent",
            OutboxMessage.sent_at >= start,
            OutboxMessage.sent_at <= end,
        )
    )
    return {(p["userid"], p["external_userid"], p.get("sent_text", "")) for p in rows}


def _last_outbound_text(session: Session, conversation_id: int) -> str | None:
    return session.scalar(
        select(Message.text)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == "out",
            Message.recalled.is_(False),
        )
        .order_by(Message.sent_at.desc())
        .limit(1)
    )


def ingest(session: Session, items: Sequence, classify) -> dict:
    """Store archived messages (objects with seq, msgid, message) and update conversations.

    `classify(batch of (text, preceding staff text)) -> verdicts with .label and .score` is
    the needs-reply classifier. Returns counts."""
    # Already stored ones are skipped before any work (a re-pull, a retried batch). Callers
    # hold the tenant's archive cursor while ingesting, so nobody stores these meanwhile.
    ids = {i.msgid for i in items}
    known = set(session.scalars(select(Message.msgid).where(Message.msgid.in_(ids)))) if ids else set()
    fresh = {i.msgid: i for i in items if i.msgid not in known}  # also drops repeats within the batch
    staff = set(session.scalars(select(Staff.userid)))
    parsed = [_parse(i.seq, i.msgid, i.message, staff) for i in fresh.values()]
    parsed.sort(key=lambda p: (p.sent_at, p.item_seq))
    conversations = _conversations(session, parsed)
    echoes = _siyu_sent(session, parsed)

    # Context for the classifier: the staff message each customer message answers.
    last_out: dict[str, str | None] = {}
    inbound: list[tuple[_Parsed, str | None]] = []
    for p in parsed:
        if p.key is None or p.action != "send":
            continue
        if p.key not in last_out:
            last_out[p.key] = _last_outbound_text(session, conversations[p.key].id)
        text = render(p.message)
        if p.direction == "out":
            last_out[p.key] = text
        elif p.direction == "in":
            inbound.append((p, last_out[p.key]))
    verdicts = classify([(render(p.message), context) for p, context in inbound]) if inbound else []
    verdict_of = {p.msgid: v for (p, _), v in zip(inbound, verdicts, strict=True)}

    rows = []
    for p in parsed:
        text = render(p.message)
        verdict = verdict_of.get(p.msgid)
        rows.append(
            {
                "tenant_id": session.info["siyu_tenant_id"],
                "msgid": p.msgid,
                "seq": p.item_seq,
                "conversation_id": conversations[p.key].id if p.key else None,
                "action": p.action,
                "sender": p.sender,
                "direction": p.direction,
                "sent_at": p.sent_at,
                "msgtype": p.message.get("msgtype", ""),
                "text": text,
                "body": p.message,
                "recalled": False,
                "needs_reply": (verdict.label == "needs_reply") if verdict else None,
                "reply_score": verdict.score if verdict else None,
                "by_siyu": (p.staff_userid, p.external_userid, text) in echoes,
            }
        )
    duplicates = len(items) - len(rows)
    if not rows:
        return {"stored": 0, "duplicates": duplicates}
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(Message).on_conflict_do_nothing(index_elements=["tenant_id", "msgid"])
    session.connection().execute(stmt, rows)
    search.index(session, rows)  # the search tokens of what was just stored
    for p, row in zip(parsed, rows, strict=True):
        if p.key:
            _apply(session, conversations[p.key], p, row)
        elif p.action == "recall":
            _recall(session, p)
    return {"stored": len(rows), "duplicates": duplicates}


def _apply(session: Session, conversation: Conversation, p: _Parsed, row: dict) -> None:
    conversation.message_count += 1
    if conversation.last_message_at is None or p.sent_at > conversation.last_message_at:
        conversation.last_message_at = p.sent_at
    if p.action == "recall":
        _recall(session, p, conversation)
        return
    if p.action != "send":
        return
    if p.direction == "in":
        conversation.last_inbound_at = max(filter(None, [conversation.last_inbound_at, p.sent_at]))
        if row["needs_reply"] and conversation.awaiting_since is None and conversation.kind == "single":
            conversation.awaiting_since, conversation.awaiting_msgid = p.sent_at, p.msgid
            _announce(session, WaitChange(conversation, True, p.sent_at, p.msgid, "customer_message"))
    elif p.direction == "out":
        conversation.last_outbound_at = max(filter(None, [conversation.last_outbound_at, p.sent_at]))
        waiting = conversation.awaiting_since
        if not row["by_siyu"] and waiting is not None and p.sent_at >= waiting:
            conversation.awaiting_since, conversation.awaiting_msgid = None, ""
            _announce(session, WaitChange(conversation, False, p.sent_at, p.msgid, "replied"))


def _recall(session: Session, p: _Parsed, conversation: Conversation | None = None) -> None:
    """A recall marks the original; if it was the waiting message, the wait moves to the
    next unanswered customer message, or closes."""
    original_id = ((p.message.get("revoke") or {}).get("pre_msgid")) or ""
    original = session.scalar(select(Message).where(Message.msgid == original_id))
    if original is None:
        return
    original.recalled = True
    conversation = conversation or (
        session.get(Conversation, original.conversation_id) if original.conversation_id else None
    )
    if conversation is None or conversation.awaiting_msgid != original_id:
        return
    session.flush()
    last_reply = session.scalar(
        select(func.max(Message.sent_at)).where(
            Message.conversation_id == conversation.id,
            Message.direction == "out",
            Message.by_siyu.is_(False),
            Message.recalled.is_(False),
            Message.action == "send",
        )
    )
    q = select(Message).where(
        Message.conversation_id == conversation.id,
        Message.direction == "in",
        Message.action == "send",
        Message.needs_reply.is_(True),
        Message.recalled.is_(False),
    )
    if last_reply is not None:
        q = q.where(Message.sent_at > last_reply)
    following = session.scalar(q.order_by(Message.sent_at).limit(1))
    _announce(session, WaitChange(conversation, False, p.sent_at, original_id, "recalled"))
    if following is None:
        conversation.awaiting_since, conversation.awaiting_msgid = None, ""
    else:
        conversation.awaiting_since, conversation.awaiting_msgid = following.sent_at, following.msgid
        _announce(
            session, WaitChange(conversation, True, following.sent_at, following.msgid, "customer_message")
        )


def add_archive_key(
    session: Session, box, version: int, private_pem: str, public_pem: str = ""
) -> ArchiveKey:
    """A key pair by version (generated in Siyu or uploaded); the private key sealed at rest."""
    from siyu.wecom.archive import load_private_keys

    load_private_keys({version: private_pem})  # refuses what is not an RSA private key
    key = session.scalar(select(ArchiveKey).where(ArchiveKey.version == version))
    if key is None:
        key = ArchiveKey(version=version)
        session.add(key)
    key.public_pem, key.private_sealed = public_pem, box.seal(private_pem)
    session.flush()
    return key


def dismiss(
    session: Session, conversation_id: int, at: datetime | None = None, reason: str = "dismissed"
) -> bool:
    """The agent marks a conversation "no reply needed" (at `at`, Siyu's clock)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.awaiting_since is None:
        return False
    msgid = conversation.awaiting_msgid
    conversation.awaiting_since, conversation.awaiting_msgid = None, ""
    _announce(session, WaitChange(conversation, False, at or datetime.now(UTC), msgid, reason))
    return True


def link_customers(session: Session) -> int:
    """Conversations that began before their customer was known get linked afterwards."""
    rows = session.execute(
        select(Conversation.id, Customer.id)
        .join(Customer, Customer.external_userid == Conversation.external_userid)
        .where(Conversation.customer_id.is_(None), Conversation.kind == "single")
    ).all()
    for conversation_id, customer_id in rows:
        session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(customer_id=customer_id)
        )
    return len(rows)
