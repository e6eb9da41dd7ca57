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

import dataclasses
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from siyu.conversations import search
from siyu.conversations.models import ArchiveKey, Conversation, EarlyRecall, GroupChat, GroupMember, Message
from siyu.conversations.render import EVENT_TYPES, WORDLESS_TYPES, render
from siyu.customers.models import Customer, Follow
from siyu.db import bulk, locks
from siyu.db.database import after_commit
from siyu.db.renames import rename_in
from siyu.insights.needs_reply import normalize
from siyu.notify.models import OutboxMessage
from siyu.notify.outbox import AS_SENT
from siyu.tenancy.models import Staff
from siyu.tenancy.service import Renames, renames
from siyu.wecom.archive import key_fingerprint, load_private_keys

# A WeCom external user id starts with wm/wo (customers) or wb (robots); staff ids do not. A
# group robot's post (a report, a reminder) is nobody asking: never classified, never owed a reply
ROBOT_PREFIX = "wb"
EXTERNAL_PREFIXES = ("wm", "wo", ROBOT_PREFIX)
SIYU_ECHO_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class WaitChange:
    """A conversation started or stopped owing the customer a reply."""

    conversation_id: int
    kind: str  # single | group
    staff_userid: str
    customer_id: int | None
    opened: bool  # True: a wait began at `at`; False: it ended at `at`
    at: datetime
    msgid: str
    # customer_message | EARLIER | LATER | replied | recalled | MERGED | dismissed | declined | a follow's end
    # | ANSWERED_BEFORE | ANSWERED_LATER | REPLY_TAKEN_BACK
    reason: str
    by: str = ""  # who marked it "no reply needed" (their name as shown then); "" for Siyu
    # ANSWERED_BEFORE: when the reply it had came; LATER: when the customer recalled the message
    answered_at: datetime | None = None


# An opened change, `answered_at` set: a question pulled after the staff's reply to it (a
# re-pull, an import, clocks apart). It waited from its own time until that reply: a wait
# recorded as begun later and closed by the same reply began with it instead.
ANSWERED_BEFORE = "answered_before_pulled"


# An opened change while a wait runs: an older message, pulled after the one the wait began
# with (a re-pull, an import, clocks apart), and no reply between them; the wait began with it.
EARLIER = "earlier_message"
# An opened change while a wait runs: the customer recalled the message the wait began with,
# and a later one of theirs still waits: the same wait (its fired steps stand, the customer
# kept waiting), begun with that one.
LATER = "later_message"
# A closed change: the staff member recalled the reply that had answered an earlier question
# while the customer's next one waited; that wait ends, folded into the earlier question's,
# which waits again from its own time.
MERGED = "merged"

# A closed change, `answered_at` set: the staff member recalled the reply (sent at
# `answered_at`) that had closed a wait, while a later reply of theirs (`at`, `msgid`) stands:
# that wait went on until the later one answered it, or ended as the first wait begun between
# the two did (the same wait, folded into it).
ANSWERED_LATER = "answered_later"
# A closed change, `answered_at` set: the staff member recalled the reply (sent at
# `answered_at`) that had closed a wait, and no later reply of theirs stands (`at`: the
# recall's time). That wait went on: it ended as the first wait begun after the reply did, if
# that one was ended otherwise ("no reply needed", a follow's end; the same wait, folded into
# it); else it waits again, as the changes that follow this one say.
REPLY_TAKEN_BACK = "reply_taken_back"
# A closed change: a reply by hand (`at`, `msgid`) pulled after something settled the chat
# later than it was sent ("no reply needed", the customer's decline of archiving, the end of
# the follow: the callback comes at once, the archive lags). The wait open when it was sent,
# closed so since, was answered by it, as it would have been pulled in order.
REPLIED_BEFORE_SETTLED = "replied_before_settled"
# A closed change: the customer recalled (`at`) a question (`msgid`) that is not waiting now: a
# reply pulled before the recall may have closed its wait (an import beside the pull), which
# then ended at the recall, unanswered, as it would have pulled in order.
TAKEN_BACK_BEFORE_ANSWERED = "taken_back_before_answered"

# Listeners get every change of one transaction at once, in the order they happened, so
# they can write their own rows set-wise (one statement per kind of change, not per message).
WaitListener = Callable[[Session, list[WaitChange]], None]
WAIT_LISTENERS: list[WaitListener] = []


def on_wait(listener: WaitListener) -> WaitListener:
    WAIT_LISTENERS.append(listener)
    return listener


def _announce(session: Session, changes: list[WaitChange]) -> None:
    if changes:
        for listener in WAIT_LISTENERS:
            listener(session, changes)


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
    text: str


def _is_external(user: str, staff: set[str]) -> bool:
    return user not in staff and user.startswith(EXTERNAL_PREFIXES)


def _sender_and_to(message: dict, renames: Renames | None = None) -> tuple[str, list[str]]:
    """Who sent a message and to whom, as its conversation sees them: a member renamed since
    by the userid they have now."""
    sender = message.get("from", "") or message.get("user", "")
    tolist = message.get("tolist") or []
    roomid = message.get("roomid", "") or ""
    if message.get("msgtype") in EVENT_TYPES and not roomid and (not tolist or tolist[0] == sender):
        # a consent event addressed to the customer themselves: its payload's userid, when that
        # is someone else, is the staff member of the chat (WeCom's own example sends it to them)
        staff_of = (message.get(message["msgtype"]) or {}).get("userid")
        tolist = [staff_of] if staff_of and staff_of != sender else tolist
    if renames:
        then = ms_to_datetime(message.get("msgtime") or message.get("time"))
        sender, tolist = renames.now(sender, then), [renames.now(u, then) for u in tolist[:1]] + tolist[1:]
    return sender, tolist


def _parse(seq: int, msgid: str, message: dict, staff: set[str], renames: Renames | None = None) -> _Parsed:
    action = message.get("action", "send")
    sender, tolist = _sender_and_to(message, renames)
    sent_at = ms_to_datetime(message.get("msgtime") or message.get("time"))
    roomid = message.get("roomid", "") or ""
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
    text = render(message)
    return _Parsed(
        seq, msgid, message, action, sender, sent_at, key, kind, ext, userid, roomid, direction, text
    )


def _chat_of(message: dict, renames: Renames | None = None) -> str | None:
    """What a message's conversation is made from: its room, or the pair who chat (the pair,
    unordered, makes a 1:1 conversation's key whichever of them is staff); None if neither."""
    if roomid := message.get("roomid"):
        return roomid
    sender, tolist = _sender_and_to(message, renames)
    other = (tolist or [""])[0]
    return f"{min(sender, other)}|{max(sender, other)}" if sender and other else None


def partition(items: Sequence, parts: int, renames: Renames | None = None) -> list[list]:
    """A batch split into `parts` by conversation, for storing the parts at once in
    transactions of their own (siyu.conversations.tasks.store_batch): every message of a
    conversation in the same part, a recall in the part of its original when that is in
    the batch, and messages of no conversation in the first part. Two parts then never
    touch the same conversation, wait or escalation row. One part only when a recall of no
    conversation names a message stored before: it looks up and locks the original's
    conversation, which another part may hold."""
    out: list[list] = [[] for _ in range(parts)]
    part_of_msgid: dict[str, int] = {}

    def part_of(message: dict) -> int:
        chat = _chat_of(message, renames)
        return zlib.crc32(chat.encode()) % parts if chat else 0

    recalls = []
    for item in items:
        if item.message.get("action") == "recall":
            recalls.append(item)
        else:
            part_of_msgid[item.msgid] = index = part_of(item.message)
            out[index].append(item)
    for item in recalls:
        original = ((item.message.get("revoke") or {}).get("pre_msgid")) or ""
        if original in part_of_msgid:
            out[part_of_msgid[original]].append(item)
        elif _chat_of(item.message, renames) is None:
            return [list(items)]
        else:
            out[part_of(item.message)].append(item)
    return out


def _staff_among(session: Session, items: Sequence) -> set[str]:
    """Which of the users that look like customers (wm/wo/wb...) are in fact staff: the only
    ones `_is_external` must know about. Such staff are few, so they are read by prefix
    rather than by the batch's users (an IN list of every customer in it)."""
    users: set[str] = set()
    for i in items:
        m = i.message
        users.add(m.get("from", "") or m.get("user", ""))
        users.update((m.get("tolist") or [])[:1])
    lookalikes = {u for u in users if u and u.startswith(EXTERNAL_PREFIXES)}
    if not lookalikes:
        return set()
    prefixed = or_(*(Staff.userid.startswith(prefix) for prefix in EXTERNAL_PREFIXES))
    # & lookalikes: SQLite's LIKE ignores case
    return set(session.scalars(select(Staff.userid).where(prefixed))) & lookalikes


_STATE = (
    "id",
    "key",
    "kind",
    "staff_userid",
    "customer_id",
    "last_message_at",
    "last_inbound_at",
    "last_outbound_at",
    "awaiting_since",
    "awaiting_msgid",
    "message_count",
    "last_outbound_text",
    "settled_until",
)
_CHANGING = _STATE[5:]


@dataclass
class _State:
    """A conversation's row as ingest changes it (written back in one statement a batch)."""

    id: int
    key: str
    kind: str
    staff_userid: str
    customer_id: int | None
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    awaiting_since: datetime | None
    awaiting_msgid: str
    message_count: int
    last_outbound_text: str | None
    settled_until: datetime | None
    dirty: bool = False

    def change(self, opened: bool, at: datetime, msgid: str, reason: str) -> WaitChange:
        return WaitChange(self.id, self.kind, self.staff_userid, self.customer_id, opened, at, msgid, reason)


def _state_columns():
    return [getattr(Conversation, name) for name in _STATE]


def _hold_write_lock(session: Session) -> None:
    """Ingest decides from the conversations' state as it reads it, so nobody may change
    that state meanwhile (an agent's "no reply needed" in between would be undone). SQLite:
    take its single write lock before the first read (a write that changes nothing does);
    PostgreSQL: the conversation rows are read FOR UPDATE (`_locked`)."""
    locks.sqlite_writer(session, "conversations")


def _locked(session: Session, query):
    # FOR NO KEY UPDATE: a step firing meanwhile inserts the wait's next step, whose foreign key
    # takes a key share of the conversation; FOR UPDATE held that off while ingest waited for
    # the step firing had locked, a deadlock that killed the pull
    return query.with_for_update(key_share=True) if session.get_bind().dialect.name == "postgresql" else query


def _conversations(session: Session, parsed: list[_Parsed]) -> dict[str, _State]:
    """Each conversation of the batch, created when new (one INSERT for all new ones)."""
    keys = list({p.key for p in parsed if p.key})
    if not keys:
        return {}
    found = {
        row.key: _State(*row)
        for row in session.execute(
            _locked(
                session,
                select(*_state_columns())
                .where(bulk.among(session, Conversation.key, keys))
                .order_by(Conversation.key),
            )
        )
    }
    missing: dict[str, _Parsed] = {}
    for p in parsed:
        if p.key and p.key not in found and p.key not in missing:
            missing[p.key] = p
    if missing:
        externals = {p.external_userid for p in missing.values() if p.kind == "single"}
        customers = (
            dict(
                session.execute(
                    select(Customer.external_userid, Customer.id).where(
                        bulk.among(session, Customer.external_userid, externals)
                    )
                ).all()
            )
            if externals
            else {}
        )
        ended = _follows_ended(session, externals)
        unarchived = _unarchived_since(
            session, {p.staff_userid for p in missing.values() if p.kind == "single"}
        )
        now = datetime.now(UTC)
        rows = [
            {
                "key": key,
                "kind": p.kind,
                "roomid": p.roomid,
                "external_userid": p.external_userid if p.kind == "single" else "",
                "staff_userid": p.staff_userid if p.kind == "single" else "",
                "customer_id": customers.get(p.external_userid) if p.kind == "single" else None,
                # the two stopped being contacts before its first message was pulled, or the
                # member was taken off the archive: what was said until then owes nothing, as
                # once the chat was there (follow_ended, settle_unarchived)
                "settled_until": max(
                    filter(
                        None, [ended.get((p.external_userid, p.staff_userid)), unarchived.get(p.staff_userid)]
                    ),
                    default=None,
                )
                if p.kind == "single"
                else None,
                "message_count": 0,
                "awaiting_msgid": "",
                "created_at": now,
            }
            # in one order whoever inserts: two stores making the same new chats in opposite
            # orders (an import beside the pull) each held a row the other waited for
            for key, p in sorted(missing.items())
        ]
        for row in bulk.insert_rows(session, Conversation, rows, conflict=["key"], returning=_STATE):
            state = _State(*row)
            found[state.key] = state
        link_once_committed(
            session, (r["external_userid"] for r in rows if r["kind"] == "single" and not r["customer_id"])
        )
        raced = [key for key in missing if key not in found]
        if raced:  # another transaction made them since they were looked for (PostgreSQL: an
            # import beside the pull): theirs, locked as the rest
            query = (
                select(*_state_columns())
                .where(bulk.among(session, Conversation.key, raced))
                .order_by(Conversation.key)
            )
            found |= {row.key: _State(*row) for row in session.execute(_locked(session, query))}
    return found


ENDED_FOLLOWS = ("lost", "deleted", "transferred")  # a follow's statuses once it ended (siyu.customers)


def _follows_ended(session: Session, externals: set[str]) -> dict[tuple[str, str], datetime]:
    """When each of these customers and a member stopped being contacts, where they have."""
    if not externals:
        return {}
    rows = session.execute(
        select(Customer.external_userid, Follow.staff_userid, Follow.ended_at)
        .join(Follow, Follow.customer_id == Customer.id)
        .where(
            bulk.among(session, Customer.external_userid, externals),
            Follow.status.in_(ENDED_FOLLOWS),
            Follow.ended_at.is_not(None),
        )
    )
    return {(ext, userid): at for ext, userid, at in rows}


# A welcome attachment's type as the archive records the message (REFERENCE 11.3).
ARCHIVED_AS = {"miniprogram": "weapp"}


def _siyu_sent(
    session: Session, parsed: list[_Parsed], conversations: dict[str, _State], renamed: Renames
) -> Counter[tuple[str, str, str]]:
    """What Siyu itself sent around these messages and the archive has not yet shown: counts of
    (userid, external_userid, text) for a welcome's words and (userid, external_userid,
    msgtype) for its attachments. Each stands for one archived message: a second link the
    staff member sends is their own (it had been taken for the welcome's, and the wait went
    on), and so is any message of the customer's. A welcome sent for a member renamed since is
    theirs under the new userid, as its archived copy is (_parse): it had been taken for their
    own reply, and closed the customer's wait."""
    outbound = [p for p in parsed if p.direction == "out" and p.kind == "single"]
    if not outbound:
        return Counter()
    start = min(p.sent_at for p in outbound) - SIYU_ECHO_WINDOW
    end = max(p.sent_at for p in outbound) + SIYU_ECHO_WINDOW
    sent = and_(OutboxMessage.status == "sent", OutboxMessage.sent_at.between(start, end))
    # given up with its outcome unknown (no answer came: it may have gone, its words kept)
    unknown = and_(OutboxMessage.status == "dead", OutboxMessage.created_at.between(start, end))
    rows = session.execute(
        select(OutboxMessage.payload, func.coalesce(OutboxMessage.sent_at, OutboxMessage.created_at)).where(
            OutboxMessage.kind == "welcome", or_(sent, unknown)
        )
    )
    echoes: Counter[tuple[str, str, str]] = Counter()
    for p, sent_at in rows:
        if "sent_text" not in p and isinstance(p.get(AS_SENT), dict):
            p = {
                **p,
                "sent_text": p[AS_SENT].get("text", ""),
                "sent_attachments": p[AS_SENT].get("attachments"),
            }
        elif "sent_text" not in p and "sent_kinds" not in p:
            continue  # (given up before anything went)
        userid = renamed.now(p["userid"], sent_at) if renamed else p["userid"]
        echoes[(userid, p["external_userid"], p.get("sent_text", ""))] += 1
        # the welcome's image, link, mini program (welcomes sent before titles were kept: by type)
        for attachment in p.get("sent_attachments") or [{"msgtype": k} for k in p.get("sent_kinds", ())]:
            echoes[(userid, p["external_userid"], _echo_of(attachment))] += 1
    keys = {f"single:{e}:{u}" for u, e, _ in echoes}  # the conversations' keys (_parse)
    ids = [c.id for key, c in conversations.items() if key in keys]
    if ids:  # those an earlier batch already matched (through the conversations' own index)
        shown = session.execute(
            select(
                Conversation.staff_userid,
                Conversation.external_userid,
                Message.msgtype,
                Message.text,
                Message.msgid,
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                bulk.among(session, Message.conversation_id, ids),
                Message.by_siyu.is_(True),
                Message.sent_at >= start - SIYU_ECHO_WINDOW,
                Message.sent_at <= end + SIYU_ECHO_WINDOW,
            )
        )
        again = {p.msgid for p in outbound}  # a copy pulled again takes the send it took before
        for userid, external_userid, msgtype, text, msgid in shown:
            if msgid not in again:
                _take_echo(echoes, userid, external_userid, msgtype, text)
    return echoes


def _echo_of(attachment: dict) -> str:
    """What the archive's copy of a welcome attachment is known by: a link or a mini program by
    its rendering ([链接] 展会资料), an image by its type."""
    sent_as = attachment.get("msgtype", "")
    kind = ARCHIVED_AS.get(sent_as, sent_as)
    title = (attachment.get(sent_as) or {}).get("title")
    return render({"msgtype": kind, kind: {"title": title}}) if kind in ("link", "weapp") and title else kind


def _by_siyu(p: _Parsed, echoes: Counter[tuple[str, str, str]]) -> bool:
    """Whether this message is the archive's copy of one Siyu sent (taking it off `echoes`)."""
    if p.direction != "out" or p.kind != "single" or p.action != "send":
        return False
    return _take_echo(echoes, p.staff_userid, p.external_userid, p.message.get("msgtype", "text"), p.text)


def _take_echo(
    echoes: Counter[tuple[str, str, str]], userid: str, external_userid: str, msgtype: str, text: str
) -> bool:
    """Take one of Siyu's sends off `echoes` for this archived staff message, if it is one: by its
    text, or (an attachment known by its type only) by its type."""
    keys = [(userid, external_userid, text)]
    if msgtype not in ("", "text"):
        keys.append((userid, external_userid, msgtype))
    for key in keys:
        if echoes[key] > 0:
            echoes[key] -= 1
            return True
    return False


def _last_outbound_texts(session: Session, conversation_ids: Iterable[int]) -> dict[int, str | None]:
    """The last staff message of each conversation, as stored before this batch (one query:
    each conversation's newest outbound message, found through its (conversation, sent_at)
    index). For conversations that do not know it (`Conversation.last_outbound_text`)."""
    ids = list(conversation_ids)
    if not ids:
        return {}
    last = (
        select(Message.text)
        .where(
            Message.conversation_id == Conversation.id,
            Message.direction == "out",
            Message.action == "send",
            Message.recalled.is_(False),
            Message.msgtype.not_in(sorted(WORDLESS_TYPES)),
        )
        .order_by(Message.sent_at.desc())
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )
    return dict(
        session.execute(select(Conversation.id, last).where(bulk.among(session, Conversation.id, ids))).all()
    )


def _wordless(p) -> bool:
    """A staff message that asks nothing in words, so the customer answering just after it answers
    the one before: a sticker, picture, voice or video, or a text of emoji alone ([微笑], 🙂: how
    WeChat sends its emoji; one that asks, [疑问], is words). Looked up in the stored messages by
    type only (_last_outbound_texts, _staff_messages_before)."""
    kind = p.message.get("msgtype")
    if kind in WORDLESS_TYPES:
        return True
    if kind != "text" or len(p.text) > _EMOJI_TEXT_CHARS:
        return False
    said = normalize(p.text)
    return not (said.text or said.question or said.negative)


_EMOJI_TEXT_CHARS = 40  # (longer texts are words: not read again here)


def _staff_messages_before(session: Session, wanted: dict[str, tuple[int, datetime]]) -> dict[str, tuple]:
    """For customer messages pulled after a later staff message (msgid: their conversation,
    their time), the last staff message stored up to then: (text, sent_at). A statement per
    few hundred of them (an import of old history into chats the archive filled has many)."""
    found: dict[str, tuple] = {}
    items = list(wanted.items())
    for start in range(0, len(items), 200):
        chunk = items[start : start + 200]
        last = [
            select(Message.id)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == "out",
                Message.action == "send",
                Message.recalled.is_(False),
                Message.msgtype.not_in(sorted(WORDLESS_TYPES)),
                Message.sent_at <= at,
            )
            .order_by(Message.sent_at.desc())
            .limit(1)
            .scalar_subquery()
            for _, (conversation_id, at) in chunk
        ]
        ids = session.execute(select(*last)).one()
        said = dict.fromkeys(filter(None, ids))
        for row in session.execute(
            select(Message.id, Message.text, Message.sent_at).where(Message.id.in_(said))
        ):
            said[row.id] = (row.text, row.sent_at)
        found.update({msgid: said[i] for (msgid, _), i in zip(chunk, ids, strict=True) if i is not None})
    return found


def ingest(session: Session, items: Sequence, classify) -> dict:
    """Store archived messages (objects with seq, msgid, message) and update conversations.

    `classify(batch of (text, preceding staff text)) -> verdicts with .label and .score` is
    the needs-reply classifier. Returns counts: stored, and duplicates (stored before, or
    repeated within `items`).

    Set-wise: a batch costs a fixed number of statements (lookups, one INSERT of the
    messages, one of their search tokens or of one row queueing them, one UPDATE of the
    conversations, and what the wait listeners write), whatever its size."""
    _hold_write_lock(session)
    fresh: dict = {}
    for i in items:  # a repeat within the batch is dropped, as one in a later batch is: the first stays
        if not str(i.msgid or "").strip():  # (the pull and the import refuse these before)
            raise ValueError(f"seq {i.seq}: a message without a msgid cannot be stored once by its msgid")
        fresh.setdefault(i.msgid, i)
    if not fresh:
        return {"stored": 0, "duplicates": 0}
    staff, renamed = _staff_among(session, fresh.values()), renames(session)
    parsed = [_parse(i.seq, i.msgid, i.message, staff, renamed) for i in fresh.values()]
    parsed.sort(key=lambda p: (p.sent_at, p.item_seq))
    conversations = _conversations(session, parsed)
    echoes = _siyu_sent(session, parsed, conversations, renamed)

    # Context for the classifier: the staff message each customer message answers.
    answering = {
        conversations[p.key].id for p in parsed if p.key and p.direction == "in" and p.action == "send"
    }
    unknown = [
        c.id
        for c in conversations.values()
        if c.id in answering and c.last_outbound_text is None and c.last_outbound_at is not None
    ]
    stored_last = _last_outbound_texts(session, unknown)
    last_out = {
        c.key: c.last_outbound_text if c.last_outbound_text is not None else stored_last.get(c.id)
        for c in conversations.values()
    }
    # pulled after a later staff message (a re-pull, an import): a customer message answers the
    # one before it, "确定要取消吗？", not the newest, "订单已取消"
    late = {
        p.msgid: (conversations[p.key].id, p.sent_at)
        for p in parsed
        if p.key
        and p.direction == "in"
        and p.action == "send"
        and (last := conversations[p.key].last_outbound_at) is not None
        and last > p.sent_at
    }
    stored_before = _staff_messages_before(session, late) if late else {}
    inbound: list[tuple[_Parsed, str | None]] = []
    out_at: dict[str, datetime] = {}  # the batch's last staff message so far, by conversation
    for p in parsed:
        if p.key is None or p.action != "send" or p.message.get("msgtype") in EVENT_TYPES:
            continue
        if p.direction == "out":
            if not _wordless(p):
                last_out[p.key], out_at[p.key] = p.text, p.sent_at
        elif p.direction == "in" and not p.sender.startswith(ROBOT_PREFIX):
            context = last_out[p.key]
            if p.msgid in late:
                before = stored_before.get(p.msgid)
                if before is not None and (p.key not in out_at or before[1] > out_at[p.key]):
                    context = before[0]
                elif before is None and p.key not in out_at:
                    context = None
            inbound.append((p, context))
    verdicts = classify([(p.text, context) for p, context in inbound]) if inbound else []
    verdict_of = {p.msgid: v for (p, _), v in zip(inbound, verdicts, strict=True)}

    rows = []
    for p in parsed:
        verdict = verdict_of.get(p.msgid)
        rows.append(
            {
                "msgid": p.msgid,
                "seq": p.item_seq,
                "conversation_id": conversations[p.key].id if p.key else None,
                "action": p.action,
                "sender": p.sender,
                "direction": p.direction,
                "sent_at": p.sent_at,
                "msgtype": p.message.get("msgtype", ""),
                "text": p.text,
                "body": bulk.JsonText(raw) if (raw := getattr(fresh[p.msgid], "raw", "")) else p.message,
                "recalled": False,
                "needs_reply": (verdict.label == "needs_reply") if verdict else None,
                "reply_score": verdict.score if verdict else None,
                "by_siyu": _by_siyu(p, echoes),
            }
        )
    # PostgreSQL inserts the messages in its own process: tokenize for search meanwhile
    postgres = session.get_bind().dialect.name == "postgresql"
    tokens = search.tokens_later(rows) if postgres else None
    # A message is stored once (unique on tenant + msgid): the INSERT skips those stored
    # before (a re-pull; rare, as callers skip what is behind the archive cursor), and only
    # what it stored moves the conversations (a repeat still gave the classifier context, as
    # the archive ordered it). Looking them up first cost more (a probe per message, 14 ms
    # a batch at 100,000 messages) than classifying a rare repeat.
    stored = dict(bulk.insert_rows(session, Message, rows, conflict=["msgid"], returning=["msgid", "id"]))
    search.queue(session, rows, stored, tokens)  # the search tokens of what was just stored
    if len(stored) < len(rows):
        kept = [(p, row) for p, row in zip(parsed, rows, strict=True) if p.msgid in stored]
        parsed, rows = [p for p, _ in kept], [row for _, row in kept]

    recalls = _Recalls.of(session, parsed)
    changes: list[WaitChange] = []
    for p, row in zip(parsed, rows, strict=True):
        if p.key:
            _apply(session, conversations, recalls, conversations[p.key], p, row, changes)
        elif p.action == "recall":
            _recall(session, conversations, recalls, p, changes)
    recalls.store(session)
    _write_back(session, conversations.values())
    _announce(session, changes)
    return {"stored": len(stored), "duplicates": len(items) - len(stored)}


def _first_reply_after(
    session: Session, conversation_id: int, at: datetime, recalled: set[str]
) -> datetime | None:
    """When the staff member first answered by hand after `at`, by a reply not recalled: as
    stored, or by `recalled` (_Recalls.done: a reply this batch stores whose recall came
    before it, flagged only at the batch's end). A question pulled after a later staff
    message: rare, so one query each."""
    query = (
        select(Message.msgid, Message.sent_at)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == "out",
            Message.action == "send",
            Message.msgtype.not_in(sorted(EVENT_TYPES)),
            Message.by_siyu.is_(False),
            Message.recalled.is_(False),
            Message.sent_at >= at,
        )
        .order_by(Message.sent_at)
        .limit(len(recalled) + 1)
    )
    return next((sent_at for msgid, sent_at in session.execute(query) if msgid not in recalled), None)


def _write_back(session: Session, states: Iterable[_State]) -> None:
    dirty = [{"id": c.id, **{name: getattr(c, name) for name in _CHANGING}} for c in states if c.dirty]
    bulk.update_by_id(session, Conversation, dirty, _CHANGING)


def _apply(
    session: Session,
    states: dict,
    recalls: _Recalls,
    c: _State,
    p: _Parsed,
    row: dict,
    changes: list[WaitChange],
) -> None:
    c.dirty = True
    if p.action == "send" and p.message.get("msgtype") not in EVENT_TYPES:
        c.message_count += 1  # what the chat shows as messages: not recalls, switches or events
    if c.last_message_at is None or p.sent_at > c.last_message_at:
        c.last_message_at = p.sent_at
    if p.action == "recall":
        _recall(session, states, recalls, p, changes, c)
        return
    if p.action != "send":
        return
    if p.msgid in recalls.done:  # taken back by a recall stored before it: still when they wrote
        if p.direction in ("in", "out") and p.message.get("msgtype") not in EVENT_TYPES:
            last = "last_inbound_at" if p.direction == "in" else "last_outbound_at"
            setattr(c, last, max(filter(None, [getattr(c, last), p.sent_at])))
        return
    if p.message.get("msgtype") in EVENT_TYPES:  # a consent event: nobody wrote it, nobody owes it a reply
        # Declined: WeCom archives nothing more of the chat, so no reply could be seen to close
        # a wait; it closes here rather than escalate to the last step.
        declined = p.message["msgtype"] == "disagree"
        if declined:
            c.settled_until = max(filter(None, [c.settled_until, p.sent_at]))
        if declined and c.awaiting_since is not None and p.sent_at >= c.awaiting_since:
            c.awaiting_since, c.awaiting_msgid = None, ""
            changes.append(c.change(False, p.sent_at, p.msgid, "declined"))
            _waits_on_after(session, recalls, c, p.sent_at, changes)
        return
    if p.direction == "in":
        c.last_inbound_at = max(filter(None, [c.last_inbound_at, p.sent_at]))
        # (older than a staff message stored before it: a migration or a late re-pull; answered
        # if one of those is a reply by hand that stands, not Siyu's welcome nor one taken back)
        answered = c.last_outbound_at is not None and c.last_outbound_at >= p.sent_at
        settled = c.settled_until is not None and p.sent_at <= c.settled_until
        if row["needs_reply"] and c.kind == "single" and answered and not settled:
            # (of the batch's recalls, this chat's: the query's limit grows with them)
            recalled = {
                m for m in recalls.done if getattr(recalls.originals.get(m), "conversation_id", None) == c.id
            }
            reply = _first_reply_after(session, c.id, p.sent_at, recalled)
            answered = reply is not None
            if answered:
                answered_late = c.change(True, p.sent_at, p.msgid, ANSWERED_BEFORE)
                changes.append(dataclasses.replace(answered_late, answered_at=reply))
        answered = answered or settled
        if row["needs_reply"] and c.kind == "single" and not answered:
            if c.awaiting_since is None:
                c.awaiting_since, c.awaiting_msgid = p.sent_at, p.msgid
                changes.append(c.change(True, p.sent_at, p.msgid, "customer_message"))
            elif p.sent_at < c.awaiting_since:  # (not answered: no reply after it, so none between)
                c.awaiting_since, c.awaiting_msgid = p.sent_at, p.msgid
                changes.append(c.change(True, p.sent_at, p.msgid, EARLIER))
    elif p.direction == "out":
        if not _wordless(p):  # (after a sticker: the words before it)
            newest = c.last_outbound_at is None or p.sent_at >= c.last_outbound_at
            # an older one pulled late may still be the newest in words: looked up when needed
            c.last_outbound_text = p.text if newest else None
        c.last_outbound_at = max(filter(None, [c.last_outbound_at, p.sent_at]))
        waiting = c.awaiting_since
        if not row["by_siyu"] and waiting is not None and p.sent_at >= waiting:
            c.awaiting_since, c.awaiting_msgid = None, ""
            changes.append(c.change(False, p.sent_at, p.msgid, "replied"))
            _waits_on_after(session, recalls, c, p.sent_at, changes)
        elif (
            not row["by_siyu"]
            and c.kind == "single"
            and c.settled_until is not None
            and p.sent_at < c.settled_until
        ):
            changes.append(c.change(False, p.sent_at, p.msgid, REPLIED_BEFORE_SETTLED))


def _waits_on_after(session: Session, recalls: _Recalls, c: _State, at: datetime, changes: list) -> None:
    """A wait just closed at `at` by a message pulled after what the customer wrote later (a
    re-pull, an import): the first question still owed a reply after it waits, as it would
    have pulled in order."""
    if c.last_inbound_at is None or c.last_inbound_at <= at:  # (nearly always: nothing later)
        return
    later = recalls.next_waiting(session, c, at)
    if later is not None and later.sent_at > at:
        c.awaiting_since, c.awaiting_msgid = later.sent_at, later.msgid
        changes.append(c.change(True, later.sent_at, later.msgid, "customer_message"))


def _recalled_msgid(p: _Parsed) -> str:
    return ((p.message.get("revoke") or {}).get("pre_msgid")) or ""


@dataclass
class _Recalls:
    """The originals the batch's recalls name, and those recalled so far as the batch is
    replayed in order (the stored flag is set for all of them at the end, in one UPDATE: a
    recall must not see one that comes later in the batch). For the conversations those
    originals belong to, the messages that can open or close a wait (customer messages that
    need a reply, staff replies by hand; not recalled before this batch) are read once, so
    that moving a wait past a recalled message costs no query of its own."""

    originals: dict[str, Row]
    done: set[str]
    candidates: dict[int, list[Row]]
    early: list[dict] = field(default_factory=list)  # recalls of messages not stored yet
    batch: set[str] = field(default_factory=set)  # the msgids this batch stores

    @classmethod
    def of(cls, session: Session, parsed: list[_Parsed]) -> _Recalls:
        wanted = {_recalled_msgid(p) for p in parsed if p.action == "recall"} - {""}
        recalled_before = _recalled_before(session, {p.msgid for p in parsed if p.action == "send"})
        wanted |= recalled_before
        found = (
            session.execute(
                select(
                    Message.msgid, Message.id, Message.conversation_id, Message.direction, Message.sent_at
                ).where(bulk.among(session, Message.msgid, wanted))
            ).all()
            if wanted
            else []
        )
        # (every batch's: a reply pulled late asks what waits after it, next_waiting)
        batch = {p.msgid for p in parsed}
        recalls = cls({row.msgid: row for row in found}, set(recalled_before), {}, batch=batch)
        recalls.load(session, {row.conversation_id for row in found if row.conversation_id})
        return recalls

    def load(self, session: Session, conversation_ids: set[int]) -> None:
        ids = conversation_ids - self.candidates.keys()
        if not ids:
            return
        for conversation_id in ids:
            self.candidates[conversation_id] = []
        rows = session.execute(
            select(Message.conversation_id, Message.msgid, Message.sent_at, Message.direction)
            .where(
                bulk.among(session, Message.conversation_id, ids),
                Message.action == "send",
                Message.recalled.is_(False),
                or_(
                    (Message.direction == "in") & Message.needs_reply.is_(True),
                    (Message.direction == "out") & Message.by_siyu.is_(False),
                ),
            )
            .order_by(Message.sent_at, Message.id)
        )
        for row in rows:
            self.candidates[row.conversation_id].append(row)

    def _standing(self, session: Session, c: _State, at: datetime) -> list[Row]:
        """The conversation's messages that can open or close a wait, not recalled so far,
        that have moved it by the time the batch is replayed to `at` (a recall's time): all
        those stored before the batch, whatever their time (an import, a re-pull: a recall
        stored after the reply that came after it), and the batch's own up to `at` (its later
        ones are replayed after the recall, as when pulled one by one)."""
        self.load(session, {c.id})
        return [
            m
            for m in self.candidates[c.id]
            if m.msgid not in self.done and (m.sent_at <= at or m.msgid not in self.batch)
        ]

    def next_waiting(self, session: Session, c: _State, at: datetime) -> Row | None:
        """The conversation's first customer message still owed a reply at `at` (a recall's
        time): after its last staff reply standing (`_standing`) and after what a closed
        wait settled, leaving out what this batch has recalled so far."""
        messages = self._standing(session, c, at)
        replies = [m.sent_at for m in messages if m.direction == "out"]
        floor = max(filter(None, [*replies, c.settled_until]), default=None)
        return next(
            (m for m in messages if m.direction == "in" and (floor is None or m.sent_at > floor)),
            None,
        )

    def reply_after(self, session: Session, c: _State, after: datetime, at: datetime) -> Row | None:
        """The first staff reply by hand still standing (`_standing`) sent from `after` on."""
        messages = self._standing(session, c, at)
        return next((m for m in messages if m.direction == "out" and m.sent_at >= after), None)

    def store(self, session: Session) -> None:
        bulk.insert_rows(session, EarlyRecall, self.early, conflict=["msgid"])
        # By id, one row at a time on SQLite: as `id IN (...) AND tenant_id = ?` its planner took
        # the tenant condition for the selective one (analysis_limit's statistics say a few
        # hundred rows a tenant) and read every message of the tenant: 30 ms a batch at
        # 100,000 messages, growing with the archive.
        rows = [{"id": self.originals[m].id, "recalled": True} for m in self.done]
        bulk.update_by_id(session, Message, rows, ["recalled"])


def _recalled_before(session: Session, msgids: set[str]) -> set[str]:
    """Those of `msgids` a recall stored before them takes back (an import out of order); the
    record of it is done with once they are stored."""
    if not msgids or session.scalar(select(EarlyRecall.id).limit(1)) is None:  # (nearly always)
        return set()
    found = session.execute(
        select(EarlyRecall.id, EarlyRecall.msgid).where(bulk.among(session, EarlyRecall.msgid, msgids))
    ).all()
    if found:
        session.execute(
            delete(EarlyRecall)
            .where(EarlyRecall.id.in_([row.id for row in found]))
            .execution_options(synchronize_session=False)
        )
    return {row.msgid for row in found}


def _recall(
    session: Session,
    states: dict,
    recalls: _Recalls,
    p: _Parsed,
    changes: list[WaitChange],
    c: _State | None = None,
) -> None:
    """A recall marks the original. The waiting message recalled: the wait moves to the next
    unanswered customer message, or closes. A staff reply recalled: what it had answered waits
    again, from its own time, unless a later reply of theirs stands: that one answered it."""
    original_id = _recalled_msgid(p)
    original = recalls.originals.get(original_id)
    if original is None:
        if original_id:
            recalls.early.append({"msgid": original_id, "recall_msgid": p.msgid, "recalled_at": p.sent_at})
        return
    recalls.done.add(original_id)
    if c is None and original.conversation_id:
        c = next((s for s in states.values() if s.id == original.conversation_id), None)
        if c is None:
            row = session.execute(
                _locked(session, select(*_state_columns()).where(Conversation.id == original.conversation_id))
            ).first()
            if row is not None:
                c = states[row.key] = _State(*row)
    if c is not None and original.direction == "out":
        c.last_outbound_text, c.dirty = None, True  # which staff message is now the last: looked up
        if c.kind != "single":
            return
        # a wait the recalled reply had closed was answered by the first reply still standing
        # ("." and then the real answer, the "." recalled: not answered in a second)
        later = recalls.reply_after(session, c, original.sent_at, p.sent_at)
        if later is not None:
            answered_later = c.change(False, later.sent_at, later.msgid, ANSWERED_LATER)
            changes.append(dataclasses.replace(answered_later, answered_at=original.sent_at))
        else:  # (the wait may have been marked "no reply needed" since: it ended then)
            taken_back = c.change(False, p.sent_at, original_id, REPLY_TAKEN_BACK)
            changes.append(dataclasses.replace(taken_back, answered_at=original.sent_at))
        unanswered = recalls.next_waiting(session, c, p.sent_at)
        if unanswered is None or (c.awaiting_since is not None and unanswered.sent_at >= c.awaiting_since):
            return
        if c.awaiting_since is not None:  # the customer wrote again after the recalled reply
            changes.append(c.change(False, p.sent_at, c.awaiting_msgid, MERGED))
        c.awaiting_since, c.awaiting_msgid = unanswered.sent_at, unanswered.msgid
        changes.append(c.change(True, unanswered.sent_at, unanswered.msgid, "customer_message"))
        return
    if c is not None and c.kind == "single" and c.awaiting_msgid != original_id:
        # (only where a reply sent after the recall is stored already: pulled in order, none is)
        if c.last_outbound_at is not None and c.last_outbound_at > p.sent_at:
            changes.append(c.change(False, p.sent_at, original_id, TAKEN_BACK_BEFORE_ANSWERED))
        return
    if c is None or c.awaiting_msgid != original_id:
        return
    c.dirty = True
    following = recalls.next_waiting(session, c, p.sent_at)
    if following is None:
        changes.append(c.change(False, p.sent_at, original_id, "recalled"))
        c.awaiting_since, c.awaiting_msgid = None, ""
    else:
        c.awaiting_since, c.awaiting_msgid = following.sent_at, following.msgid
        moved = c.change(True, following.sent_at, following.msgid, LATER)
        changes.append(dataclasses.replace(moved, answered_at=p.sent_at))


class KeyVersionTaken(ValueError):
    """A key pair is kept for this version already (another admin's, a double click)."""


def add_archive_key(
    session: Session, box, version: int, private_pem: str, public_pem: str = ""
) -> ArchiveKey:
    """A key pair by version (generated in Siyu or uploaded); the private key sealed at rest.
    KeyVersionTaken where one is kept for the version: never overwritten (its private half may
    be the only copy, its public half pasted into WeCom), two at once storing one."""
    load_private_keys({version: private_pem})  # refuses what is not an RSA private key
    row = {"version": version, "public_pem": public_pem, "private_sealed": box.seal(private_pem)}
    if not bulk.insert_rows(session, ArchiveKey, [row], conflict=["version"], returning=["id"]):
        raise KeyVersionTaken(version)
    return session.scalar(select(ArchiveKey).where(ArchiveKey.version == version))


def keys_used(session: Session, used: set[tuple[int, str]], at: datetime) -> None:
    """These key pairs, (version, fingerprint), decrypted pulled messages: kept from now on.
    By fingerprint too: one put under the version during the pull decrypted nothing."""
    if not used:
        return
    versions = sorted({version for version, _ in used})
    for key in session.scalars(
        select(ArchiveKey).where(ArchiveKey.version.in_(versions), ArchiveKey.used_at.is_(None))
    ):
        if (key.version, key_fingerprint(key.public_pem)) in used:
            key.used_at = at


class KeyInUse(ValueError):
    """The key pair asked to be removed decrypted the archive, or is no longer the one shown."""


def remove_archive_key(session: Session, version: int, fingerprint: str | None = None) -> bool:
    """A key pair taken away (a wrong private key uploaded for the version): messages of that
    version pulled from now on stop the pull, naming the version, until a key is added for it.
    Messages stored before stay as they were decrypted. KeyInUse for one that has decrypted
    messages (its private half the only copy), or, with `fingerprint` (of the public key the
    page showed), for another key put under the version since. False when there is none."""
    key = session.scalar(select(ArchiveKey).where(ArchiveKey.version == version))
    if key is None:
        return False
    if key.used_at is not None:
        raise KeyInUse(
            f"版本 {version} 的密钥已解密过消息，删除后私钥无法找回，该版本之后的消息都无法拉取：不能删除"
            f" / the key of version {version} has decrypted messages: it is the only copy, and is kept"
        )
    if fingerprint is not None and fingerprint != key_fingerprint(key.public_pem):
        raise KeyInUse(
            f"版本 {version} 的密钥在页面打开后已换过：请刷新页面再看 / the key of version {version} was"
            " replaced since the page was opened: reload it"
        )
    session.delete(key)
    session.flush()
    return True


class WroteAgain(Exception):
    """The customer wrote again after the message the person saw: nothing was marked."""

    def __init__(self, newest: str):
        super().__init__(newest)
        self.newest = newest  # the newest message of the wait that needs a reply


class NotItsMessage(Exception):
    """The message named is none of the conversation's (unknown, or another chat's): the
    client is mistaken, not behind, and nothing was marked."""


def dismiss(
    session: Session,
    conversation_id: int,
    at: datetime | None = None,
    reason: str = "dismissed",
    by: str = "",
    msgid: str | None = None,
    settles: bool = False,
) -> bool:
    """Someone (`by`, the name they were signed in as) marks a conversation "no reply
    needed" at `at`, Siyu's clock; without `by`, Siyu closed the wait itself. False when
    nothing waits. With `msgid` (the customer message of the wait the person saw stored
    last), WroteAgain when the wait holds a question they did not see: one stored after it
    (whatever its time), or a new wait begun after a reply; a page left open must not silence
    it; NotItsMessage when `msgid` is no message of this conversation at all. Without it,
    whatever waits is closed (Siyu's own closes, and API clients that do not say what they
    showed). The conversation is read locked, as ingest reads it: a reply and
    a new question stored meanwhile are seen, not overwritten (the new question silenced)."""
    _hold_write_lock(session)
    c = session.scalar(
        _locked(session, select(Conversation).where(Conversation.id == conversation_id)).execution_options(
            populate_existing=True
        )
    )
    if c is None:
        return False
    if msgid is not None and not _has_message(session, c.id, msgid):
        raise NotItsMessage(msgid)
    if c.awaiting_since is None:
        if settles:  # (nothing waits now: a question pulled later, sent before, owes nothing)
            c.settled_until = max(filter(None, [c.settled_until, at or datetime.now(UTC)]))
        return False
    if msgid is not None and (unseen := _unseen(session, c, msgid)) is not None:
        raise WroteAgain(unseen)
    msgid, at = c.awaiting_msgid, at or datetime.now(UTC)
    c.awaiting_since, c.awaiting_msgid = None, ""
    c.settled_until = max(filter(None, [c.settled_until, at]))
    change = WaitChange(c.id, c.kind, c.staff_userid, c.customer_id, False, at, msgid, reason, by[:200])
    _announce(session, [change])
    return True


def seen_as_waiting(session: Session, conversation_id: int, msgid: str) -> None:
    """For another action taken from a page that showed `msgid` as the wait's newest customer
    message (a snooze): NotItsMessage and WroteAgain as `dismiss` refuses. A snooze from a chat
    left open had held back the reminders of a question the member never saw."""
    c = session.scalar(_locked(session, select(Conversation).where(Conversation.id == conversation_id)))
    if c is None:
        return
    if not _has_message(session, c.id, msgid):
        raise NotItsMessage(msgid)
    if c.awaiting_since is not None and (unseen := _unseen(session, c, msgid)) is not None:
        raise WroteAgain(unseen)


def _has_message(session: Session, conversation_id: int, msgid: str) -> bool:
    found = select(Message.id).where(Message.conversation_id == conversation_id, Message.msgid == msgid)
    return session.scalar(found.limit(1)) is not None


def _unseen(session: Session, c: Conversation, seen: str) -> str | None:
    """The message of `c`'s wait that needs a reply stored last, unless the person who saw
    `seen` (a customer message of this wait) could have seen it: it is `seen` or was stored
    before it. Stored, not sent: a question imported or re-pulled after the page was drawn
    may carry an older time than what the page showed, and the person never saw it. A
    closing remark (好的谢谢) after `seen` owes nothing, so it is no reason to refuse."""
    newest = session.execute(
        select(Message.msgid, Message.id)
        .where(
            Message.conversation_id == c.id,
            Message.action == "send",
            Message.direction == "in",
            Message.recalled.is_(False),
            Message.needs_reply.is_(True),
            Message.sent_at >= c.awaiting_since,
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    shown = session.scalar(
        select(Message.id).where(
            Message.conversation_id == c.id,
            Message.msgid == seen,
            Message.direction == "in",
            Message.sent_at >= c.awaiting_since,
        )
    )
    if shown is None:  # not of this wait: of one closed since, or of no wait at all
        return newest.msgid if newest is not None else c.awaiting_msgid
    # (a conversation's messages are stored one ingest at a time, under its row's lock, so
    # their ids rise in the order they were stored)
    return newest.msgid if newest is not None and newest.id > shown else None


def follow_ended(session: Session, external_userid: str, userid: str, at: datetime, reason: str) -> bool:
    """The customer and the staff member are no longer contacts (the customer deleted them,
    they deleted the customer, or the customer was handed over): nobody can answer in their
    1:1 chat any more, so a wait there closes (`reason`) instead of escalating on."""
    found = session.scalar(
        select(Conversation.id).where(Conversation.key == f"single:{external_userid}:{userid}")
    )
    return found is not None and dismiss(session, found, at, reason, settles=True)


# How a wait ends whose member WeCom's archive no longer covers (siyu.conversations.tasks
# read_permit_lists).
UNARCHIVED = "unarchived"


def settle_unarchived(session: Session, permitted: set[str], at: datetime) -> int:
    """会话存档's permit list read at `at`: a member with the corp who is not among `permitted`
    has their replies archived no more, and a customer waiting on them would escalate on to a
    call though answered. From when Siyu first finds them off it (Staff.unarchived_since) their
    1:1 chats owe nothing, as a chat whose contact ended: what waits ends, a question sent
    before and pulled later (in a chat stored or not yet) owes nothing, a reply sent before and
    pulled later still answers. A member back on the list is timed again from their next
    question. Members who left are not touched: their customers' waits are the board's to show
    till someone takes the customers over. Returns how many waits ended."""
    archived = {u.lower() for u in permitted}
    newly = []
    for member in session.scalars(select(Staff).where(Staff.active.is_(True))):
        off = member.userid.lower() not in archived
        if off and member.unarchived_since is None:
            member.unarchived_since = at
            newly.append(member.userid)
        elif not off and member.unarchived_since is not None:
            member.unarchived_since = None
    if newly:
        session.execute(
            update(Conversation)
            .where(
                Conversation.kind == "single",
                bulk.among(session, Conversation.staff_userid, newly),
                or_(Conversation.settled_until.is_(None), Conversation.settled_until < at),
            )
            .values(settled_until=at)
            .execution_options(synchronize_session=False)
        )
    off = select(Staff.userid).where(Staff.active.is_(True), Staff.unarchived_since.is_not(None))
    owing = session.scalars(
        select(Conversation.id).where(
            Conversation.kind == "single",
            Conversation.awaiting_since.is_not(None),
            Conversation.staff_userid.in_(off),
        )
    )
    return sum(dismiss(session, c, at, UNARCHIVED, settles=True) for c in list(owing))


def newly_unarchived(session: Session, permitted: set[str]) -> list[str]:
    """The members with the corp, as Siyu last synced it, off the permit list since it was last
    read (settle_unarchived would find them so now)."""
    archived = {u.lower() for u in permitted}
    members = select(Staff.userid).where(Staff.active.is_(True), Staff.unarchived_since.is_(None))
    return [u for u in session.scalars(members) if u.lower() not in archived]


def _unarchived_since(session: Session, userids: set[str]) -> dict[str, datetime]:
    """Since when each of these members is off the archive's permit list, where they are."""
    if not userids:
        return {}
    query = select(Staff.userid, Staff.unarchived_since).where(
        bulk.among(session, Staff.userid, userids), Staff.unarchived_since.is_not(None)
    )
    return dict(session.execute(query).all())


def rename_member(session: Session, old: str, new: str) -> None:
    """A member's userid changed in WeCom (siyu.tenancy.service.rename_member): their 1:1 chats,
    the messages they sent and the groups they own are theirs under the new one, so the archive's
    messages under it go on in the same chats. A chat the archive already began under the new
    userid (pulled before the event was handled) is left as it is, and so is the old one of that
    customer."""
    single = Conversation.kind == "single"
    taken = set(session.scalars(select(Conversation.key).where(single, Conversation.staff_userid == new)))
    for chat in session.scalars(select(Conversation).where(single, Conversation.staff_userid == old)):
        key = f"single:{chat.external_userid}:{new}"
        if key not in taken:
            chat.staff_userid, chat.key = new, key
        elif chat.awaiting_since is not None:
            _answered_beside(session, chat, key)
    for column in (Message.sender, GroupChat.owner_userid, GroupMember.invitor):
        rename_in(session, column, old, new)
    session.flush()


def _answered_beside(session: Session, chat: Conversation, key: str) -> None:
    """The chat the archive began under the new userid before the rename was handled (their
    reply pulled first): a reply there after the old chat's question answers it, which had
    gone on escalating to them about it. (The two chats stay apart.)"""
    beside = session.scalar(select(Conversation.id).where(Conversation.key == key))
    replied = _first_reply_after(session, beside, chat.awaiting_since, set()) if beside else None
    if replied is None:
        return
    change = WaitChange(
        chat.id,
        chat.kind,
        chat.staff_userid,
        chat.customer_id,
        False,
        replied,
        chat.awaiting_msgid,
        "replied",
    )
    chat.awaiting_since, chat.awaiting_msgid = None, ""
    _announce(session, [change])


def link_once_committed(session: Session, external_userids: Iterable[str]) -> None:
    """PostgreSQL: link these customers' unlinked 1:1 chats again once this transaction has
    committed. A pull storing a customer's first chat while the add event (or the sync) stores
    the customer: each looks for the other before the other has committed, so the chat was
    stored as nobody's and link_customer found no chat, and it stayed nobody's for good. Of the
    two looks after the commits, the later sees both. (SQLite: one writer at a time.)"""
    wanted = sorted(set(external_userids))
    if wanted and session.get_bind().dialect.name == "postgresql":
        after_commit(session, lambda later: _link_known(later, wanted))


def _link_known(session: Session, external_userids: list[str]) -> None:
    known = session.execute(
        select(Customer.external_userid, Customer.id).where(
            bulk.among(session, Customer.external_userid, external_userids)
        )
    )
    for external_userid, customer_id in known.all():
        link_customer(session, external_userid, customer_id)


def link_customer(session: Session, external_userid: str, customer_id: int) -> int:
    """A customer just become known: the 1:1 chats the archive brought before (their first
    你好 is often pulled before the add event is handled) are theirs, named and listed on their
    profile. Returns how many."""
    return session.execute(
        update(Conversation)
        .where(
            Conversation.external_userid == external_userid,
            Conversation.kind == "single",
            Conversation.customer_id.is_(None),
        )
        .values(customer_id=customer_id)
        .execution_options(synchronize_session=False)
    ).rowcount
