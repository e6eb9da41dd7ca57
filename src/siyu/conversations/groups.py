"""Group chats' names and owners (the rules and the writes; `tasks.look_up_groups` asks WeCom).

The archive gives a group chat's messages with its roomid only. WeCom's groupchat/get tells
a customer group's (客户群) name, owner and members by that id (its chat_id); a group of staff
only is not a customer group, and the archive's own msgaudit/groupchat/get tells its name
and creator instead (with the 会话存档 secret). Each group is looked up after
the pull that first stores it, again when WeCom says it changed (change_external_chat), and
an unknown one again at the first pull that stores messages at least RECHECK_AFTER later (a
group made moments before its first message may not be known yet).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from siyu.conversations.models import Conversation, GroupChat
from siyu.db import bulk
from siyu.wecom.archive import storable_text

RECHECK_AFTER = timedelta(hours=6)
NAME_LENGTH = 256


def to_look_up(session: Session, now: datetime, limit: int) -> list[str]:
    """Rooms of stored group conversations that have no name yet: never looked up, or
    unknown to WeCom when last asked over RECHECK_AFTER ago. Oldest conversations first."""
    stale = and_(GroupChat.status == "unknown", GroupChat.checked_at < now - RECHECK_AFTER)
    rows = session.execute(
        select(Conversation.roomid)
        .outerjoin(
            GroupChat,
            and_(GroupChat.tenant_id == Conversation.tenant_id, GroupChat.chat_id == Conversation.roomid),
        )
        .where(Conversation.kind == "group", Conversation.roomid != "", or_(GroupChat.id.is_(None), stale))
        .order_by(Conversation.id)
        .limit(limit)
    )
    return [roomid for (roomid,) in rows]


def _row(session: Session, chat_id: str, now: datetime) -> GroupChat:
    # two workers may meet the same new group at once: insert if missing, then update
    bulk.insert_rows(session, GroupChat, [{"chat_id": chat_id, "checked_at": now}], conflict=["chat_id"])
    return session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id))


def record(session: Session, chat: dict, now: datetime) -> GroupChat:
    """What groupchat/get answered (its `group_chat` object)."""
    members = {m.get("userid"): m.get("type") for m in chat.get("member_list") or [] if isinstance(m, dict)}
    row = _row(session, str(chat["chat_id"]), now)
    row.name = _text(chat.get("name"), NAME_LENGTH)
    row.owner_userid = _text(chat.get("owner"), 64)
    row.member_count = len(members)  # by userid: a member listed twice is one person
    row.customer_count = sum(1 for kind in members.values() if kind == 2)
    if row.status != "dismissed":  # a dismissal recorded while WeCom was being asked stands
        row.status = "active"
    row.checked_at, row.problem = now, ""
    return row


def _text(value, longest: int) -> str:
    """A name or id as WeCom gave it, as the database can hold it (PostgreSQL refuses NUL)."""
    return storable_text(str(value or ""))[:longest]


def record_internal(session: Session, chat_id: str, room: dict, now: datetime) -> GroupChat:
    """What msgaudit/groupchat/get answered for a group of staff only."""
    members = {m.get("memid") for m in room.get("members") or [] if isinstance(m, dict)}
    row = _row(session, chat_id, now)
    row.name = _text(room.get("roomname"), NAME_LENGTH)
    row.owner_userid = _text(room.get("creator"), 64)
    row.member_count, row.customer_count = len(members), 0
    row.status, row.checked_at, row.problem = "internal", now, ""
    return row


def record_unknown(session: Session, chat_id: str, problem: str, now: datetime) -> None:
    """WeCom does not know the room as a customer group (a group of staff only, or one
    dismissed before it was looked up): its room id stays its title."""
    row = _row(session, chat_id, now)
    if row.status != "dismissed":
        row.status = "unknown"
    row.checked_at, row.problem = now, _text(problem, 300)


def is_dismissed(session: Session, chat_id: str) -> bool:
    return session.scalar(select(GroupChat.status).where(GroupChat.chat_id == chat_id)) == "dismissed"


def record_dismissed(session: Session, chat_id: str, now: datetime) -> None:
    row = _row(session, chat_id, now)
    row.status, row.checked_at = "dismissed", now
