"""Group chats' names and owners (the rules and the writes; `tasks.look_up_groups` asks WeCom).

The archive gives a group chat's messages with its roomid only. WeCom's groupchat/get tells
a customer group's (客户群) name, owner and members by that id (its chat_id); a group of staff
only is not a customer group, and WeCom does not know it there. Each group is looked up once
when a pull first stores it, again when WeCom says it changed (change_external_chat), and an
unknown one again after RECHECK_AFTER (a group made moments before its first message may not
be known yet).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from siyu.conversations.models import Conversation, GroupChat
from siyu.db import bulk

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
    row.name = str(chat.get("name") or "")[:NAME_LENGTH]
    row.owner_userid = str(chat.get("owner") or "")[:64]
    row.member_count = len(members)  # by userid: a member listed twice is one person
    row.customer_count = sum(1 for kind in members.values() if kind == 2)
    row.status, row.checked_at, row.problem = "active", now, ""
    return row


def record_internal(session: Session, chat_id: str, room: dict, now: datetime) -> GroupChat:
    """What msgaudit/groupchat/get answered for a group of staff only."""
    members = {m.get("memid") for m in room.get("members") or [] if isinstance(m, dict)}
    row = _row(session, chat_id, now)
    row.name = str(room.get("roomname") or "")[:NAME_LENGTH]
    row.owner_userid = str(room.get("creator") or "")[:64]
    row.member_count, row.customer_count = len(members), 0
    row.status, row.checked_at, row.problem = "internal", now, ""
    return row


def record_unknown(session: Session, chat_id: str, problem: str, now: datetime) -> None:
    """WeCom does not know the room as a customer group (a group of staff only, or one
    dismissed before it was looked up): its room id stays its title."""
    row = _row(session, chat_id, now)
    if row.status != "dismissed":
        row.status = "unknown"
    row.checked_at, row.problem = now, problem[:300]


def is_dismissed(session: Session, chat_id: str) -> bool:
    return session.scalar(select(GroupChat.status).where(GroupChat.chat_id == chat_id)) == "dismissed"


def record_dismissed(session: Session, chat_id: str, now: datetime) -> None:
    row = _row(session, chat_id, now)
    row.status, row.checked_at = "dismissed", now
