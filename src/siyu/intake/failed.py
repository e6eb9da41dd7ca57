"""The read side of callback events given up (status failed), for the admin's page
(/setup/events) and GET /api/v1/events/failed: what each was about, in words an admin
knows, and whom it concerned. Run in a tenant session, which scopes every query."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.conversations.models import GroupChat
from siyu.customers.models import Customer
from siyu.customers.queries import staff_names
from siyu.db import paging
from siyu.db.paging import Page, SortKey
from siyu.intake.models import CallbackEvent
from siyu.wecom.events import MalformedXML, parse_event

MAX_PER_PAGE = 100

# by the stored kind (`Event/ChangeType`, as siyu.wecom.events words it)
KIND_NAMES = {
    "change_external_contact/add_external_contact": "客户添加",
    "change_external_contact/add_half_external_contact": "客户添加（待成员通过）",
    "change_external_contact/edit_external_contact": "客户资料修改",
    "change_external_contact/del_external_contact": "成员删除客户",
    "change_external_contact/del_follow_user": "客户删除成员",
    "change_external_contact/transfer_fail": "客户转接失败",
    "change_external_chat/create": "客户群创建",
    "change_external_chat/update": "客户群变更",
    "change_external_chat/dismiss": "客户群解散",
    "msgaudit_notify": "会话存档通知",
}
TAG_CHANGE = "change_external_tag/"


def kind_name(kind: str) -> str:
    """The event's kind in words; one Siyu has no words for, as WeCom named it."""
    if kind in KIND_NAMES:
        return KIND_NAMES[kind]
    if kind.startswith(TAG_CHANGE):
        return "企业客户标签变更"
    return kind


_ORDER = (SortKey(CallbackEvent.received_at, desc=True), SortKey(CallbackEvent.id, desc=True))
_CURSOR = (datetime, int)


def _cursor(e: CallbackEvent) -> str:
    return paging.encode((e.received_at, e.id))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).where(CallbackEvent.status == "failed")) or 0


def listed(
    session: Session, page: int = 1, per_page: int = 50, after: str | None = None, before: str | None = None
) -> Page:
    """Newest first, by page number or cursor (BadCursor for one this list did not hand out)."""
    page, per_page = max(1, page), min(max(1, per_page), MAX_PER_PAGE)
    stmt = select(CallbackEvent).where(CallbackEvent.status == "failed")
    total = count(session)
    got = paging.take(session, stmt, _ORDER, _CURSOR, page, per_page, after, before, scalars=True)
    rows = got.rows
    about = [_fields(e.xml) for e in rows]
    externals = {f.get("ExternalUserID") for f in about} - {None, ""}
    chats = {f.get("ChatId") for f in about} - {None, ""}
    customers = {
        ext: (cid, name)
        for ext, cid, name in session.execute(
            select(Customer.external_userid, Customer.id, Customer.name).where(
                Customer.external_userid.in_(sorted(externals))
            )
        )
    }
    groups = dict(
        session.execute(
            select(GroupChat.chat_id, GroupChat.name).where(GroupChat.chat_id.in_(sorted(chats)))
        ).all()
    )
    names = staff_names(session)
    items = []
    for e, fields in zip(rows, about, strict=True):
        ext, userid = fields.get("ExternalUserID", ""), fields.get("UserID", "")
        chat = fields.get("ChatId", "")
        customer_id, customer_name = customers.get(ext, (None, ""))
        items.append(
            {
                "id": e.id,
                "received_at": e.received_at,
                "kind": e.kind,
                "kind_name": kind_name(e.kind),
                "attempts": e.attempts,
                "last_error": e.last_error,
                "external_userid": ext or None,
                "customer_id": customer_id,
                "customer_name": customer_name or None,
                "staff_userid": userid or None,
                "staff_name": names.get(userid) if userid else None,
                "chat_id": chat or None,
                "group_name": groups.get(chat) or None if chat else None,
            }
        )
    return Page(
        items,
        total,
        got.page,
        per_page,
        next=_cursor(rows[-1]) if rows and got.has_next else None,
        prev=got.prev(_cursor),
    )


def _fields(xml: str) -> dict[str, str]:
    """The stored event's elements; none for one that cannot be read (given up for that)."""
    try:
        return parse_event(xml).fields
    except MalformedXML:
        return {}
