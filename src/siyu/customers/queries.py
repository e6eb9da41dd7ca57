"""The read side of customers: every list and get starts from one readable statement.

`readable(viewer, filters)` is built on top of the tenant session's scoping (a tenant
session never sees another tenant's rows) and adds the role scoping: an admin reads every
customer of the tenant; anyone else reads a customer only through a follow relation held
by a staff member in `viewer.visible_staff`. A customer the viewer may not read is not
found, exactly like a missing one. Follows, tags and timeline entries shown on a profile
are limited the same way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, String, and_, cast, exists, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from siyu.conversations.models import GroupChat, GroupMember
from siyu.customers import tag_sync
from siyu.customers.models import Channel, Customer, Follow, FollowTag, Tag, TimelineEvent
from siyu.db import bulk, paging
from siyu.db.paging import Page, SortKey
from siyu.tenancy.models import GONE_OTHERWISE, STAFF_STATUS, Department, Staff, gone_word
from siyu.tenancy.queries import staff_gone

FOLLOW_STATUSES = ("active", "half", "lost", "deleted", "transferred")
MAX_PER_PAGE = 100


class Reader(Protocol):
    """What the read side needs to know about who is reading (siyu.web.auth.Viewer)."""

    tenant_id: int
    visible_staff: frozenset[str] | set[str] | None
    timezone: str


@dataclass
class CustomerFilter:
    q: str = ""  # name, remark, or a phone number in remark_mobiles
    tag_id: int | None = None  # Tag.id
    channel_id: int | None = None
    staff_userid: str | None = None
    added_from: date | None = None  # follow added on or after (tenant's time zone)
    added_to: date | None = None  # follow added on or before
    status: str | None = None  # follow status

    def follow_level(self) -> bool:
        return any(
            (self.tag_id, self.channel_id, self.staff_userid, self.added_from, self.added_to, self.status)
        )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def visible_follow(viewer: Reader) -> ColumnElement[bool]:
    """The follows the viewer may read (all of them for an admin)."""
    if viewer.visible_staff is None:
        return true()
    return Follow.staff_userid.in_(sorted(viewer.visible_staff))


def _day_start(day: date, tz: str, days_later: int = 0) -> datetime | None:
    """Midnight `days_later` after `day` in the tenant's zone, or None where that lies past the
    calendar's ends in UTC (0001-01-01 in Beijing, the day after 9999-12-31): it bounds nothing."""
    try:
        start = datetime.combine(day + timedelta(days=days_later), time.min, ZoneInfo(tz or "Asia/Shanghai"))
        return start.astimezone(UTC)
    except OverflowError:
        return None


def _follow_conditions(viewer: Reader, f: CustomerFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [visible_follow(viewer)]
    if f.staff_userid:
        conds.append(Follow.staff_userid == f.staff_userid)
    if f.channel_id is not None:
        conds.append(Follow.channel_id == f.channel_id)
    if f.status:
        conds.append(Follow.status == f.status)
    if f.added_from and (start := _day_start(f.added_from, viewer.timezone)):
        conds.append(Follow.added_at >= start)
    if f.added_to and (end := _day_start(f.added_to, viewer.timezone, days_later=1)):
        conds.append(Follow.added_at < end)
    if f.tag_id is not None:
        conds.append(
            exists().where(FollowTag.follow_id == Follow.id, FollowTag.tag_id == f.tag_id).correlate(Follow)
        )
    return conds


def followed(viewer: Reader, f: CustomerFilter, *also: ColumnElement[bool]) -> ColumnElement[bool]:
    """The customers with a follow the viewer sees that matches the filters (and `also`).
    The follows are selected once, not looked up for each customer: as EXISTS correlated on
    the customer, SQLite without statistics (a tenant whose customers came from contact sync,
    never analyzed) scanned all the tenant's follows for each customer (an agent's list: 1.4 s
    at 3,000 customers, minutes at 20,000)."""
    return Customer.id.in_(select(Follow.customer_id).where(*_follow_conditions(viewer, f), *also))


def readable(viewer: Reader, f: CustomerFilter | None = None) -> Select:
    """SELECT Customer ... that the viewer may read and that match the filters."""
    f = f or CustomerFilter()
    stmt = select(Customer)
    if viewer.visible_staff is not None or f.follow_level():
        stmt = stmt.where(followed(viewer, f))
    q = (f.q or "").strip()
    if q:
        pattern = _like(q)
        said = [Follow.remark.ilike(pattern, escape="\\")]
        if digits := phone_digits(q):  # (a number only: the list's JSON text has [ ] " , to match)
            mobiles = cast(Follow.remark_mobiles, String)
            for mark in (" ", "-", "(", ")", "+86"):  # (stored as typed: 139 1234 5678)
                mobiles = func.replace(mobiles, mark, "")
            said.append(mobiles.like(_like(digits), escape="\\"))
        by_follow = followed(viewer, f, or_(*said))
        stmt = stmt.where(or_(Customer.name.ilike(pattern, escape="\\"), by_follow))
    return stmt


def phone_digits(q: str) -> str:
    """The digits of a search that is a phone number, or part of one, however typed (138 0000
    1111, 138-0000-1111, +86 13800001111); "" for any other search."""
    q = unicodedata.normalize("NFKC", q)  # (full-width digits, as a Chinese input method types them)
    if not re.fullmatch(r"[\d\s()+-]*\d[\d\s()+-]*", q, re.ASCII):
        return ""
    digits = re.sub(r"\D", "", q, flags=re.ASCII)
    for country in ("0086", "86"):  # (+86 138…, 86 138…, (+86)138…: a mainland number's 11 digits)
        if digits.startswith(country) and len(digits) == len(country) + 11:
            return digits[len(country) :]
    return digits


# ---------------------------------------------------------------- lookups


def staff_names(session: Session) -> dict[str, str]:
    return dict(session.execute(select(Staff.userid, Staff.name)).all())


def channel_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Channel.id, Channel.name)).all())


def _follows_of(
    session: Session, viewer: Reader, customer_ids: list[int], gone: dict[str, str] | None = None
) -> dict[int, list[dict]]:
    if not customer_ids:
        return {}
    names = staff_names(session)
    gone = staff_gone(session) if gone is None else gone
    chans = channel_names(session)
    follows = list(
        session.scalars(
            select(Follow)
            .where(Follow.customer_id.in_(customer_ids), visible_follow(viewer))
            .order_by(Follow.added_at, Follow.id)
        )
    )
    tags: dict[int, list[dict]] = {}
    if follows:
        rows = session.execute(
            select(FollowTag.follow_id, Tag)
            .join(Tag, Tag.id == FollowTag.tag_id)
            .where(FollowTag.follow_id.in_([fl.id for fl in follows]))
            .order_by(Tag.group_name, Tag.name)
        )
        for follow_id, tag in rows:
            tags.setdefault(follow_id, []).append(tag_dict(tag))
    unsynced = tag_sync.of_follows(session, [(fl.id, fl.channel_id) for fl in follows])
    out: dict[int, list[dict]] = {}
    for fl in follows:
        out.setdefault(fl.customer_id, []).append(
            {
                "id": fl.id,
                "staff_userid": fl.staff_userid,
                "staff_name": names.get(fl.staff_userid, fl.staff_userid),
                "staff_gone": gone.get(fl.staff_userid, ""),  # 已离职: nobody follows it up
                "staff_status": STAFF_STATUS[gone.get(fl.staff_userid, "")],
                "status": fl.status,
                "remark": fl.remark,
                "description": fl.description,
                "remark_mobiles": list(fl.remark_mobiles or []),
                "remark_corp_name": fl.remark_corp_name,
                "add_way": fl.add_way,
                "added_at": fl.added_at,
                "ended_at": fl.ended_at,
                "channel": (
                    {"id": fl.channel_id, "name": chans.get(fl.channel_id, "")} if fl.channel_id else None
                ),
                "tags": tags.get(fl.id, []),
                "tag_sync": unsynced.get(fl.id),
            }
        )
    return out


def tag_dict(tag: Tag) -> dict:
    return {
        "id": tag.id,
        "wecom_id": tag.wecom_id,
        "name": tag.name,
        "group_name": tag.group_name,
        "deleted": tag.deleted,
    }


def _union_tags(follows: list[dict]) -> list[dict]:
    seen: dict[int, dict] = {}
    for fl in follows:
        for t in fl["tags"]:
            seen.setdefault(t["id"], t)
    return list(seen.values())


def customer_dict(c: Customer) -> dict:
    return {
        "id": c.id,
        "external_userid": c.external_userid,
        "name": c.name,
        "type": c.type,
        "gender": c.gender,
        "avatar": c.avatar,
        "corp_name": c.corp_name,
        "position": c.position,
        "first_added_at": c.first_added_at,
    }


# Newest first. By cursor, a page goes on below the last customer shown: customers added
# meanwhile (at the top) no longer push one from page 1 onto page 2 as well.
_LIST_ORDER = (SortKey(Customer.first_added_at, desc=True), SortKey(Customer.id, desc=True))
_LIST_CURSOR = (datetime, int)


def _list_cursor(c: Customer) -> str:
    return paging.encode((c.first_added_at, c.id))


def list_customers(
    session: Session,
    viewer: Reader,
    f: CustomerFilter | None = None,
    page: int = 1,
    per_page: int = 20,
    *,
    after: str | None = None,
    before: str | None = None,
) -> Page:
    """Newest first, by page number or by the cursor of the page before (`after`) or after
    (`before`) the one wanted (BadCursor for one this list did not hand out)."""
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    stmt = readable(viewer, f)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    got = paging.take(session, stmt, _LIST_ORDER, _LIST_CURSOR, page, per_page, after, before, scalars=True)
    rows = got.rows
    follows = _follows_of(session, viewer, [c.id for c in rows])
    items = []
    for c in rows:
        fls = follows.get(c.id, [])
        items.append({**customer_dict(c), "follows": fls, "tags": _union_tags(fls)})
    return Page(
        items,
        total,
        got.page,
        per_page,
        next=_list_cursor(rows[-1]) if rows and got.has_next else None,
        prev=got.prev(_list_cursor),
    )


def get_customer(session: Session, viewer: Reader, customer_id: int) -> Customer | None:
    return session.scalar(readable(viewer).where(Customer.id == customer_id))


def profile(
    session: Session, viewer: Reader, customer_id: int, gone: dict[str, str] | None = None
) -> dict | None:
    """`gone`: staff_gone, where the caller read it for the rest of its page too."""
    customer = get_customer(session, viewer, customer_id)
    if customer is None:
        return None
    gone = staff_gone(session) if gone is None else gone
    fls = _follows_of(session, viewer, [customer.id], gone).get(customer.id, [])
    channels = {fl["channel"]["id"]: fl["channel"] for fl in fls if fl["channel"]}
    return {
        **customer_dict(customer),
        "follows": fls,
        "unattended": unattended(session, customer.id, gone),
        "tags": _union_tags(fls),
        "channels": list(channels.values()),
        "groups": customer_groups(session, viewer, customer.id, gone),
    }


def unattended(session: Session, customer_id: int, gone: dict[str, str] | None = None) -> str:
    """Where every member still following the customer has left (or was disabled), how they
    are gone (已离职, or 已离职或停用 for a mix): nobody answers the customer until WeCom's
    离职继承 hands them over. "" otherwise. All the customer's follows count, whoever views:
    one the viewer does not see may still be answered."""
    following = set(
        session.scalars(
            select(Follow.staff_userid).where(Follow.customer_id == customer_id, Follow.status == "active")
        )
    )
    if not following:
        return ""
    gone = staff_gone(session, following) if gone is None else gone
    if not following <= set(gone):
        return ""
    words = {gone[u] for u in following}
    return words.pop() if len(words) == 1 else GONE_OTHERWISE


# groupchat/get's join_scene in words (siyu.conversations.groups keeps it)
JOINED_HOW = {1: "由成员邀请", 2: "通过成员分享的群链接", 3: "扫描群二维码"}
# and how they left (GroupMember.left_how)
LEFT_HOW = {"quit": "自己退群", "removed": "被群主或群管理员移出", "dismissed": "群已解散"}


def customer_groups(
    session: Session, viewer: Reader, customer_id: int, gone: dict[str, str] | None = None
) -> list[dict]:
    """The customer groups the customer is in now (one WeCom will not tell about included,
    as its events told the join), newest join first: for an agent, those
    owned by a member they see, as the timeline's group entries (told on the owner's name).
    The group chats an agent may open follow a wider rule (siyu.conversations.queries: also
    those a member they see wrote in), so a chat they may open need not be listed here.
    `gone`: staff_gone, for an owner who left (群主 赵六（已离职）: nobody looks after the group);
    without it, read for these groups' owners."""
    stmt = (
        select(GroupMember, GroupChat)
        .join(GroupChat, GroupChat.chat_id == GroupMember.chat_id)
        .where(
            GroupMember.customer_id == customer_id,
            GroupMember.left_at.is_(None),
            # unknown: WeCom refuses groupchat/get for it, and the join came from the event alone
            GroupChat.status.in_(("active", "unknown")),
        )
        .order_by(GroupMember.joined_at.desc(), GroupMember.id.desc())
    )
    if viewer.visible_staff is not None:
        stmt = stmt.where(GroupChat.owner_userid.in_(sorted(viewer.visible_staff)))
    names = staff_names(session)
    rows = session.execute(stmt).all()
    if gone is None:
        gone = staff_gone(session, {group.owner_userid for _, group in rows})
    return [
        {
            "chat_id": group.chat_id,
            # unnamed: the page says whose (李四的群聊); of nobody WeCom told, its id, as its chat
            "name": group.name or ("" if group.owner_userid else f"群聊 {group.chat_id}"),
            "owner_userid": group.owner_userid,
            "owner_name": names.get(group.owner_userid, group.owner_userid),
            "owner_gone": gone.get(group.owner_userid, ""),
            "owner_status": STAFF_STATUS[gone.get(group.owner_userid, "")] if group.owner_userid else None,
            "joined_at": member.joined_at,
            "join_scene": member.join_scene,
            "joined_how": JOINED_HOW.get(member.join_scene, ""),
            "invitor_userid": member.invitor,
            "invitor_name": names.get(member.invitor, member.invitor),
        }
        for member, group in rows
    ]


EVENT_TEXT = {
    "added": "添加了客户",
    "channel": "通过渠道「{channel}」添加",
    "tagged": "打上标签：{tags}",
    "untagged": "移除标签：{tags}",
    "remark": "修改了备注：{remark}",
    "lost": "被客户删除（流失）",
    "removed": "删除了客户",  # after the member's name, as 添加了客户
    "transferred": "不再跟进：客户已转接给其他成员",  # after the member's name
    "transfer_failed": "转接失败：{reason}",
    "welcome_sent": "已发送欢迎语",
    "welcome_failed": "欢迎语发送失败：{error}",
    # handed to WeCom, its answer never recorded (no answer came, or the worker stopped meanwhile)
    "welcome_unknown": "欢迎语发送结果未知：已交给企业微信，没有它的回答，客户可能已收到（{error}）",
    "tag_failed": "渠道标签 {tags} 未能同步到企业微信：{error}",
    # the group's name as it was then (data: group, chat_id, how: the scene in words)
    "group_joined": "加入客户群{group}{how}",
    "group_left": "退出客户群{group}{how}",
    "group_dismissed": "所在的客户群{group}已解散",
    "wait": "客户发来消息等待回复",  # not stored: siyu.sla.history words each wait whole
}


def describe_event(kind: str, data: dict, staff_name: str = "") -> str:
    """`staff_name`: the name of the event's member (a group's: its owner then)."""
    values = {k: ("、".join(map(str, v)) if isinstance(v, list) else v) for k, v in (data or {}).items()}
    template = EVENT_TEXT.get(kind, kind)
    if kind == "remark":  # a change of the remark, of the description, or of both
        # a value cleared reads so, not 修改了备注： and nothing
        fields = [
            (label, values[key])
            for key, label in (("remark", "备注"), ("description", "描述"))
            if key in values
        ]
        said = [f"修改了{label}：{value}" if value else f"清空了{label}" for label, value in fields]
        return "；".join(said) if said else "修改了备注"
    if kind == "added" and values.get("again"):  # (removed before: a customer who came back)
        return "再次添加了客户"
    if kind == "added" and values.get("handed_back"):  # (handed to a colleague before, and back)
        return "重新接手了客户（客户转接回来）"
    if kind == "lost" and values.get("not_alerted"):
        return f"{template}；成员{values['not_alerted']}，流失提醒没有发给本人"
    if kind.startswith("group_"):  # a scene WeCom did not tell: left out
        # an unnamed group is its owner's, as the customer's page and the chat list call it
        # (one WeCom never described, its owner unknown too: by its id, as the page lists it)
        chat_id = values.get("chat_id")
        name = values.get("group") or (
            f"{staff_name}的群聊" if staff_name else f"群聊 {chat_id}" if chat_id else ""
        )
        unknown = "加入时间未知" if values.get("join_unknown") is True else ""
        how = "；".join(filter(None, [values.get("how") or "", unknown]))
        values = {**values, "group": f"「{name}」" if name else "", "how": f"（{how}）" if how else ""}
    try:
        return template.format_map(_Blank(values))
    except (ValueError, IndexError):
        return template


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


class UnknownEvent(LookupError):
    """A page of the timeline asked for events before one that is not on it."""


def timeline(
    session: Session,
    viewer: Reader,
    customer_id: int,
    limit: int = 200,
    before: int | None = None,
    waits: int | None = None,
    now: datetime | None = None,
    gone: dict[str, str] | None = None,
) -> list[dict] | None:
    """Newest first, older than entry `before` if given (UnknownEvent when it is not one of the
    customer's the viewer sees); None when the viewer may not read the customer. The stored
    events come mixed with the customer's service history (siyu.sla.history: one entry per
    wait, of the conversations the viewer may read), at most `waits` of those if given.
    Each entry's staff_gone and staff_status say whether its member left (None: no member).
    `gone` (staff_gone; the page's): the members who left are marked in the wait entries' words
    too (赵六（已离职） 回复); without it (the API's), the words name them plainly and staff_gone
    is read for the entries' members alone."""
    from siyu.sla import history  # (the SLA domain builds on this one)

    if get_customer(session, viewer, customer_id) is None:
        return None
    stmt = select(TimelineEvent).where(TimelineEvent.customer_id == customer_id)
    if viewer.visible_staff is not None:
        stmt = stmt.where(
            or_(
                TimelineEvent.staff_userid == "", TimelineEvent.staff_userid.in_(sorted(viewer.visible_staff))
            )
        )
    below = None
    if before is not None:
        if before < 0:
            at = history.anchor(session, viewer, customer_id, before)
        else:
            at = session.scalar(stmt.with_only_columns(TimelineEvent.at).where(TimelineEvent.id == before))
        if at is None:
            raise UnknownEvent(
                f"该客户的时间线里没有事件 {before} / before: no event {before} in this customer's timeline"
            )
        below = (at, before)
        stmt = stmt.where(or_(TimelineEvent.at < at, and_(TimelineEvent.at == at, TimelineEvent.id < before)))
    names = staff_names(session)
    events = [
        {
            "id": e.id,
            "at": e.at,
            "kind": e.kind,
            "staff_userid": e.staff_userid,
            "staff_name": names.get(e.staff_userid, e.staff_userid),
            "data": dict(e.data or {}),
            "text": describe_event(e.kind, e.data or {}, names.get(e.staff_userid, e.staff_userid)),
        }
        for e in session.scalars(stmt.order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc()).limit(limit))
    ]
    # the waits tell their members (who replied, whom a step went to) by these names alone
    marked = {**names, **{u: f"{names.get(u, u)}（{word}）" for u, word in (gone or {}).items()}}
    served = history.entries(session, viewer, customer_id, marked, min(limit, waits or limit), below, now)
    found = sorted(events + served, key=lambda e: (e["at"], e["id"]), reverse=True)[:limit]
    if gone is None:
        gone = staff_gone(session, {e["staff_userid"] for e in found})
    for e in found:
        e["staff_gone"] = gone.get(e["staff_userid"], "")
        e["staff_status"] = STAFF_STATUS[e["staff_gone"]] if e["staff_userid"] else None
    return found


def today_counts(session: Session, viewer: Reader, today: date) -> dict:
    """The dashboard's figures for `today` (siyu.tenancy.timezones.today: on Siyu's clock, in the
    tenant's time zone), within the viewer's scope."""
    start, end = _day_start(today, viewer.timezone), _day_start(today, viewer.timezone, days_later=1)
    seen = visible_follow(viewer)
    # the day's end too: Siyu's clock may stand before the machine's (a demo's or a test's), and
    # a follow stamped later is not today's
    adds = session.scalar(
        select(func.count()).select_from(Follow).where(seen, Follow.added_at >= start, Follow.added_at < end)
    )
    ended = dict(
        session.execute(
            select(Follow.status, func.count())
            .where(seen, Follow.status.in_(("lost", "deleted")), Follow.ended_at >= start)
            .where(Follow.ended_at < end)
            .group_by(Follow.status)
        ).all()
    )
    # each as the customer list filtered by that status counts it (跟进中 / 待通过): a customer
    # waiting for the member to accept is not followed yet
    following = dict(
        session.execute(
            select(Follow.status, func.count(func.distinct(Follow.customer_id)))
            .where(seen, Follow.status.in_(("active", "half")))
            .group_by(Follow.status)
        ).all()
    )
    return {
        "day": today.isoformat(),
        "adds": adds or 0,
        "losses": ended.get("lost", 0),  # the customer removed the member
        "deleted": ended.get("deleted", 0),  # the member removed the customer
        "active_customers": following.get("active", 0),
        "awaiting_acceptance": following.get("half", 0),
    }


# ---------------------------------------------------------------- channels and tags


def live_tags(session: Session, chosen: int | None = None) -> list[Tag]:
    """The tags not deleted in WeCom, and the one `chosen` in the list's filter even so (a
    bookmark's: the filter had read 全部 while the list was filtered by it)."""
    kept = Tag.deleted.is_(False) if chosen is None else or_(Tag.deleted.is_(False), Tag.id == chosen)
    return list(session.scalars(select(Tag).where(kept).order_by(Tag.group_name, Tag.name)))


def departed_staff(session: Session) -> dict[str, str]:
    """Members who left the corp or were disabled in WeCom (as the last sync saw), by userid."""
    return dict(session.execute(select(Staff.userid, Staff.name).where(Staff.active.is_(False))).all())


def active_staff(session: Session) -> list[Staff]:
    return list(session.scalars(select(Staff).where(Staff.active.is_(True)).order_by(Staff.name)))


def staff_choices(session: Session, viewer: Reader, chosen: str | None) -> list[dict]:
    """The members a list's 成员 filter offers, {userid, name}: those with the corp the viewer
    sees and the one the list is filtered by wherever they are not among them, named as its chip
    names them (one who left 小美（已离职）; one outside a supervisor's team, a link followed; a
    userid no member has, as typed): else the filter read 全部 over a list filtered by them,
    and searching again from the form dropped the filter."""
    seen = viewer.visible_staff
    members = [m for m in active_staff(session) if seen is None or m.userid in seen]
    out = [{"userid": m.userid, "name": m.name} for m in members]
    if chosen and not any(m["userid"] == chosen for m in out):
        member = session.scalar(select(Staff).where(Staff.userid == chosen))
        out.append({"userid": chosen, "name": _marked(member) if member is not None else chosen})
    return out


def _marked(member: Staff) -> str:
    """A member as a 成员 filter names them: 小美, or 小美（已离职） once they left or were disabled."""
    word = gone_word(member.active, member.wecom_status)
    return f"{member.name}（{word}）" if word else member.name


def chosen_name(chosen: str | None, choices: list[dict]) -> str | None:
    """How a list's 成员 chip names the member it is filtered by: as the filter offers them
    (staff_choices offers that one whoever they are)."""
    return next((m["name"] for m in choices if m["userid"] == chosen), None) if chosen else None


def departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.parent_wecom_id, Department.wecom_id)))


def _listed(names: list[str], shown: int = 10) -> str:
    """The first names, and how many more (an answer that names 10,000 ids helps nobody)."""
    head = ", ".join(n[:64] for n in names[:shown])
    return head if len(names) <= shown else f"{head} 等 {len(names)} 个 / and {len(names) - shown} more"


def channel_ref_problems(
    session: Session,
    staff_userids: list[str],
    department_ids: list[int],
    tag_ids: list[str],
    kept: list[str] | None = None,
) -> list[str]:
    """Staff, departments and tags a channel names that this tenant does not have. `kept`: the
    channel's members as they are; when it names the same ones, those who left are let be (the
    members are not sent to WeCom: its other fields can still change)."""
    problems = []
    if staff_userids and staff_userids != kept:
        known = set(
            session.scalars(
                select(Staff.userid).where(Staff.userid.in_(staff_userids), Staff.active.is_(True))
            )
        )
        departed = departed_staff(session)
        gone = [u for u in staff_userids if u not in known and u in departed]
        missing = [u for u in staff_userids if u not in known and u not in departed]
        if gone:
            names = "、".join(f"「{departed[u] or u}」" for u in gone[:10])
            problems.append(
                f"{names}已离职或停用：请在成员中换人或移除后再保存 / {_listed(gone)} left or were"
                " disabled: replace or remove them in the members"
            )
        if missing:
            problems.append(f"成员不存在或已停用 / unknown or inactive staff: {_listed(missing)}")
    if department_ids:
        known_d = set(
            session.scalars(select(Department.wecom_id).where(Department.wecom_id.in_(department_ids)))
        )
        missing_d = [str(d) for d in department_ids if d not in known_d]
        if missing_d:
            problems.append(f"部门不存在 / unknown departments: {_listed(missing_d)}")
    if tag_ids:
        known_t = set(
            session.scalars(select(Tag.wecom_id).where(Tag.wecom_id.in_(tag_ids), Tag.deleted.is_(False)))
        )
        missing_t = [t for t in tag_ids if t not in known_t]
        if missing_t:
            problems.append(f"标签不存在或已删除 / unknown or deleted tags: {_listed(missing_t)}")
    return problems


def remarks_on(session: Session, customers: set[int]) -> dict[tuple[int, str], str]:
    """The remark (备注) each member gave these customers, by (customer, member), its whitespace
    made single spaces: WeCom lists the member's chat with the customer on their phone by it,
    so the chat, the lists, the board and the cards name the customer with it. One read; a
    member with no remark on a customer is left out."""
    if not customers:
        return {}
    found = session.execute(
        select(Follow.customer_id, Follow.staff_userid, Follow.remark).where(
            bulk.among(session, Follow.customer_id, customers), Follow.remark != ""
        )
    )
    return {(customer, staff): " ".join(said.split()) for customer, staff, said in found if said.strip()}
