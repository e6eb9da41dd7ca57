"""Customer questions in customer groups that no staff member has answered yet.

Groups never escalate (1:1 first: no SLA wait, step or card), so nothing here is kept on
the conversation row, and ingest is unchanged. What a group owes is read from its stored
messages when it is shown: its first customer message that needs a reply (the needs-reply
classifier's verdict, stored at ingest, so 好的谢谢 owes nothing), not recalled, sent after
the last message of any staff member that stands (not recalled). A dismissed group owes
nothing, nor does a customer who left the group since: nobody can answer there any more, and
a group's wait has no 无需回复 to clear it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import Session, aliased

from siyu.conversations.models import Conversation, GroupChat, GroupMember, Message
from siyu.conversations.render import EVENT_TYPES
from siyu.db import bulk
from siyu.db.base import UTCDateTime

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # what a group where no staff member ever wrote was answered at


@dataclass(frozen=True)
class GroupWait:
    since: datetime  # the unanswered customer message's msgtime
    msgid: str
    text: str
    sender: str  # the customer's external userid


def _last_staff_message(conversation_id) -> ColumnElement:
    """When a staff member last wrote in the group (None: never), their recalled messages left
    out: the newest, found backwards through the messages' (conversation, sent_at) index."""
    out = aliased(Message)
    return (
        select(out.sent_at)
        .where(
            out.conversation_id == conversation_id,
            out.direction == "out",
            out.action == "send",
            out.recalled.is_(False),
            out.msgtype.not_in(sorted(EVENT_TYPES)),
        )
        .order_by(out.sent_at.desc())
        .limit(1)
        .correlate_except(out)  # to the group of the query around it, however deep (an EXISTS's)
        .scalar_subquery()
    )


def _open() -> ColumnElement[bool]:
    """The query's Conversation is not a group WeCom said was dismissed."""
    return (
        ~select(GroupChat.id)
        .where(GroupChat.chat_id == Conversation.roomid, GroupChat.status == "dismissed")
        .exists()
    )


def _owed(m, answered, roomid) -> list[ColumnElement[bool]]:
    """`m` (an alias of Message) is a customer message still owed a reply, staff having last
    written in its group (`roomid`) at `answered` (looked up once a group, not once a message)."""
    return [
        m.direction == "in",
        m.action == "send",
        m.recalled.is_(False),
        m.needs_reply.is_(True),
        # one comparison the (conversation, sent_at) index answers: "never" as the epoch
        m.sent_at > func.coalesce(answered, literal(_NEVER, UTCDateTime())),
        ~_out_of_the_group(m, roomid),
    ]


def _out_of_the_group(m, roomid) -> ColumnElement[bool]:
    """The customer who wrote `m` has been out of the group since (quit, or removed): nobody can
    answer them there any more, as in a dismissed group. Back in, their left_at is cleared, and
    their join is after `m`: a question from before they left is not owed again (it had come
    back, days old, with their rejoin)."""
    return (
        select(GroupMember.id)
        .where(
            GroupMember.chat_id == roomid,
            GroupMember.external_userid == m.sender,
            GroupMember.left_at.is_not(None) | (GroupMember.joined_at > m.sent_at),
        )
        .exists()
    )


def waiting() -> ColumnElement[bool]:
    """A group conversation (of the query's Conversation) with a customer message owed a reply."""
    m = aliased(Message)
    owed = _owed(m, _last_staff_message(Conversation.id), Conversation.roomid)
    return (
        (Conversation.kind == "group")
        & _open()
        & select(m.id).where(m.conversation_id == Conversation.id, *owed).exists()
    )


def group_waits(session: Session, conversation_ids: list[int]) -> dict[int, GroupWait]:
    """The first unanswered customer message of each of these groups that has one (one query)."""
    if not conversation_ids:
        return {}
    groups = (
        select(Conversation.id, Conversation.roomid, _last_staff_message(Conversation.id).label("answered"))
        .where(bulk.among(session, Conversation.id, conversation_ids), _open())
        .subquery()
    )
    m = aliased(Message)
    ranked = (
        select(
            m.conversation_id,
            m.sent_at,
            m.msgid,
            m.text,
            m.sender,
            func.row_number().over(partition_by=m.conversation_id, order_by=(m.sent_at, m.id)).label("rn"),
        )
        .join(groups, groups.c.id == m.conversation_id)
        .where(*_owed(m, groups.c.answered, groups.c.roomid))
        .subquery()
    )
    rows = session.execute(select(ranked).where(ranked.c.rn == 1))
    return {r.conversation_id: GroupWait(r.sent_at, r.msgid, r.text, r.sender) for r in rows}
