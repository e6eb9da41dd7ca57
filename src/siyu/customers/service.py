"""Customer acquisition rules: the only writer of customers, follows, tags and the timeline.

Functions take a tenant-scoped session and plain data that the tasks layer fetched from
WeCom; they never call WeCom themselves. Side effects (mark_tag, alerts) are queued in
the outbox in the same transaction. Welcome messages are queued by the callback intake
itself (see siyu.customers.welcome).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from urllib.parse import quote

from sqlalchemy import Row, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from siyu.conversations import service as conversations
from siyu.conversations.models import GroupChat, GroupMember
from siyu.customers import tag_sync, welcome
from siyu.customers.models import Channel, Customer, Follow, FollowTag, Tag, TimelineEvent
from siyu.customers.queries import JOINED_HOW, LEFT_HOW
from siyu.db import bulk, utcnow
from siyu.db.renames import rename_in, renamed
from siyu.notify import outbox
from siyu.notify.models import UNSENT, OutboxMessage
from siyu.tenancy import timezones
from siyu.tenancy.models import Department, Staff, Tenant
from siyu.tenancy.queries import staff_gone
from siyu.tenancy.service import renames
from siyu.visible_names import tidy_name


def from_unix(ts: int | str | None) -> datetime:
    """An event's CreateTime; now where it is not a time (not a number, or past the year 9999)."""
    try:
        value = int(ts or 0)
        return datetime.fromtimestamp(value, UTC) if value > 0 else utcnow()
    except (ValueError, OverflowError, OSError):
        return utcnow()


def timeline(session: Session, customer: Customer, kind: str, at: datetime, staff: str = "", **data) -> None:
    session.add(TimelineEvent(customer_id=customer.id, kind=kind, at=at, staff_userid=staff, data=data))


# ---------------------------------------------------------------- tags


def upsert_tags(session: Session, groups: list[dict]) -> dict[str, Tag]:
    """Mirror `get_corp_tag_list` groups; returns tags by WeCom id."""
    existing = {t.wecom_id: t for t in session.scalars(select(Tag))}
    for group in groups:
        for item in group.get("tag", []):
            tag = existing.get(item["id"])
            if tag is None:
                tag = Tag(wecom_id=item["id"], name=item.get("name", ""))
                session.add(tag)
                existing[tag.wecom_id] = tag
            tag.name = item.get("name", tag.name)
            tag.group_id = group.get("group_id", "")
            tag.group_name = group.get("group_name", "")
            tag.deleted = bool(item.get("deleted") or group.get("deleted"))
    session.flush()
    return existing


def _tag(session: Session, wecom_id: str, name: str = "", group_name: str = "") -> Tag:
    tag = session.scalar(select(Tag).where(Tag.wecom_id == wecom_id))
    if tag is None:
        # (another transaction may make it meanwhile: a sync beside an edit event, both first to
        # meet a new tag, had one fail on the unique key)
        row = {"wecom_id": wecom_id, "name": name or wecom_id, "group_id": "", "group_name": group_name}
        bulk.insert_rows(session, Tag, [row], conflict=["wecom_id"])
        tag = session.scalar(select(Tag).where(Tag.wecom_id == wecom_id))
    elif name and tag.name != name:
        tag.name = name
    return tag


def live_tag_ids(groups: list[dict]) -> set[str]:
    """The ids of the tags and tag groups in a `get_corp_tag_list` answer."""
    return {t["id"] for g in groups for t in g.get("tag", [])} | {g.get("group_id") for g in groups}


def mirror_tags(session: Session, groups: list[dict]) -> None:
    """WeCom's whole tag list (`get_corp_tag_list`, every group): stored, and a tag it no longer
    lists marked deleted (deleted while Siyu heard nothing: channels had gone on applying it,
    and WeCom refused their whole mark_tag)."""
    upsert_tags(session, groups)
    mark_tags_deleted(session, tags_not_in(session, live_tag_ids(groups)))


def tags_not_in(session: Session, live_ids: set[str]) -> list[str]:
    """The tags the corp's tag list had, not among `live_ids`. One only seen on a customer (a
    rule-group tag, 规则组标签, which get_corp_tag_list never lists) has no group here: not
    counted, else every sync would have it deleted."""
    return [
        t.wecom_id
        for t in session.scalars(select(Tag).where(Tag.deleted.is_(False), Tag.group_id != ""))
        if t.wecom_id not in live_ids
    ]


def mark_tags_deleted(session: Session, wecom_ids: list[str]) -> list[Channel]:
    """A tag deleted in WeCom's console: keep history, stop using it, tell the channels."""
    tags = list(session.scalars(select(Tag).where(Tag.wecom_id.in_(wecom_ids))))
    for tag in tags:
        tag.deleted = True
    names = {t.wecom_id: t.name for t in tags}
    affected = []
    for channel in session.scalars(select(Channel)):
        gone = [names.get(i, i) for i in channel.tag_ids if i in wecom_ids]
        if gone:
            channel.tag_ids = [i for i in channel.tag_ids if i not in wecom_ids]
            channel.notice = f"标签 {'、'.join(gone)} 已在企业微信中删除，本渠道不再打该标签"
            affected.append(channel)
    return affected


def _set_follow_tags(
    session: Session, customer: Customer, follow: Follow, tags: list[dict], at, any_pending: bool = True
) -> None:
    """Make the follow's tags equal WeCom's list, and the channel's still on their way there
    (mark_tag being retried: a remark edited meanwhile had taken them off for good), recording
    what changed on the timeline. `any_pending` False: no mark_tag is (a sync's page, asked once)."""
    on_their_way = _tags_on_their_way(session, follow) if any_pending else {}
    _apply_tag_set(session, customer, follow, {**_wecom_tags(session, tags), **on_their_way}, at)


def tags_pending(session: Session) -> bool:
    """Whether any channel's mark_tag is still to reach WeCom (the unsent rows' own index)."""
    pending = select(OutboxMessage.id).where(
        OutboxMessage.kind == tag_sync.KIND, sql_text(UNSENT), OutboxMessage.status == "pending"
    )
    return session.scalar(pending.limit(1)) is not None


def _apply_tag_set(session: Session, customer: Customer, follow: Follow, wanted: dict[str, Tag], at) -> None:
    current = {
        tag.wecom_id: (link, tag)
        for link, tag in session.execute(
            select(FollowTag, Tag)
            .join(Tag, Tag.id == FollowTag.tag_id)
            .where(FollowTag.follow_id == follow.id)
        )
    }
    added = [tag for wid, tag in wanted.items() if wid not in current]
    # a tag deleted in WeCom's console stays, struck through, as the event left it: WeCom lists
    # it no more, and its going had been told as the member's 移除标签
    removed = [(link, tag) for wid, (link, tag) in current.items() if wid not in wanted and not tag.deleted]
    for tag in added:
        session.add(FollowTag(follow_id=follow.id, tag_id=tag.id))
    for link, _tag_row in removed:
        session.delete(link)
    if added:
        timeline(session, customer, "tagged", at, follow.staff_userid, tags=[t.name for t in added])
    if removed:
        timeline(session, customer, "untagged", at, follow.staff_userid, tags=[t.name for _, t in removed])


# ---------------------------------------------------------------- customers and follows


def upsert_customer(session: Session, contact: dict, at: datetime) -> tuple[Customer, bool]:
    customer = session.scalar(select(Customer).where(Customer.external_userid == contact["external_userid"]))
    created = customer is None
    if created:
        customer = Customer(external_userid=contact["external_userid"], first_added_at=at)
        session.add(customer)
    elif customer.first_added_at is None or at < customer.first_added_at:
        # an earlier add handled after a later one (a retried add; the sync paging members in its
        # own order): 首次添加, and the list's order by it, keep the earliest
        customer.first_added_at = at
    # as it shows: a nickname of the Braille blank WeChat users favour is no name on a card
    customer.name = tidy_name(contact.get("name", customer.name or ""))
    customer.type = int(contact.get("type", customer.type or 1))
    customer.gender = int(contact.get("gender", customer.gender or 0))
    customer.avatar = contact.get("avatar", customer.avatar or "")
    customer.unionid = contact.get("unionid", customer.unionid or "")
    customer.corp_name = contact.get("corp_name", customer.corp_name or "")
    customer.position = contact.get("position", customer.position or "")
    session.flush()
    if created:  # their chat may have come first (the archive pulled before the add event)
        conversations.link_customer(session, customer.external_userid, customer.id)
        conversations.link_once_committed(session, [customer.external_userid])  # or meanwhile
        _groups_joined_before(session, customer)
    return customer, created


def _groups_joined_before(session: Session, customer: Customer) -> None:
    """The customer groups they joined (and left) before they were a customer of ours: the
    usual order in a 私域 group is its QR code first, its owner added after. Theirs now, on
    their page and timeline as they happened (their page had listed no group till it changed)."""
    before = session.execute(
        select(GroupMember, GroupChat)
        .join(GroupChat, GroupChat.chat_id == GroupMember.chat_id)
        .where(GroupMember.external_userid == customer.external_userid, GroupMember.customer_id.is_(None))
        .order_by(GroupMember.id)
    )
    for member, group in before.all():
        member.customer_id = customer.id
        told = {"group": group.name, "chat_id": group.chat_id}
        if member.joined_at is not None:
            how = JOINED_HOW.get(member.join_scene, "")
            data = {**told, "join_scene": member.join_scene, "how": how}
            timeline(session, customer, "group_joined", member.joined_at, group.owner_userid, **data)
        if member.left_at is not None:
            kind = "group_dismissed" if member.left_how == "dismissed" else "group_left"
            unknown = {"join_unknown": True} if member.joined_at is None else {}
            how = LEFT_HOW.get(member.left_how, "")
            timeline(session, customer, kind, member.left_at, group.owner_userid, **told, how=how, **unknown)


def _remark_mobiles(info: dict) -> list[str]:
    # Older answers carry numbers, newer ones strings (REFERENCE.md section 13.10).
    return [str(m) for m in info.get("remark_mobiles", []) or []]


def upsert_follow(
    session: Session,
    customer: Customer,
    info: dict,
    at: datetime,
    status: str | None = None,
    changed_at: datetime | None = None,
):
    """Create or refresh a follow from a `follow_user` / `follow_info` entry. `changed_at`: when
    a change of remark was seen, where `at` is not that (a sync's: the relation's createtime)."""
    userid = info["userid"]
    follow = session.scalar(
        select(Follow).where(Follow.customer_id == customer.id, Follow.staff_userid == userid)
    )
    created = follow is None
    changes = {}
    if created:
        # (WeCom's answer no longer listing the relation: the event's own time, not now)
        added_at = from_unix(info["createtime"]) if info.get("createtime") else at
        follow = Follow(customer_id=customer.id, staff_userid=userid, added_at=added_at)
        session.add(follow)
    else:
        for field in ("remark", "description"):
            if field in info and (info[field] or "") != getattr(follow, field):
                changes[field] = info[field] or ""
    follow.remark = info.get("remark", follow.remark or "") or ""
    follow.description = info.get("description", follow.description or "") or ""
    if "remark_mobiles" in info:  # (cleared in WeCom: cleared here; not in the answer: kept)
        follow.remark_mobiles = _remark_mobiles(info)
    follow.remark_corp_name = info.get(
        "remark_corp_name", info.get("remark_company", follow.remark_corp_name or "")
    )
    follow.add_way = int(info.get("add_way", follow.add_way or 0))
    follow.oper_userid = info.get("oper_userid", follow.oper_userid or "")
    if info.get("state"):
        follow.state = info["state"]
    if follow.ended_at is not None and follow.ended_at > at:
        pass  # the relation ended after this add (events can be processed out of order)
    elif status == "half" and follow.status == "active":
        pass  # accepted already: an add_half retried after the add is older news (it had gone back to 待通过)
    elif status or follow.status not in ("active", "half"):
        follow.status, follow.ended_at = status or "active", None  # added (again)
    session.flush()
    if changes:
        timeline(session, customer, "remark", changed_at or at, userid, **changes)
    return follow, created


def attribute_channel(
    session: Session, customer: Customer, follow: Follow, state: str, at: datetime, again: bool = False
):
    """The channel this follow came through: attributed from `state` the first time, and again
    when the customer comes back (`again`: they had removed the member, or been removed)
    through another channel, which then counts the add (the first channel's add and loss
    both leave its figures: one relation, one channel), or through none of Siyu's (the member's
    own code: the first channel had counted the comeback, and its tags, which WeCom dropped with
    the relation, were shown on the customer and never sent again)."""
    if follow.channel_id and not again:
        return session.get(Channel, follow.channel_id)
    channel = session.scalar(select(Channel).where(Channel.state == state)) if state else None
    if channel is None:
        follow.channel_id = None
        return None
    if channel.id == follow.channel_id:
        return channel
    follow.channel_id = channel.id
    timeline(
        session, customer, "channel", at, follow.staff_userid, channel=channel.name, channel_id=channel.id
    )
    return channel


def _channel_tags(session: Session, channel: Channel | None) -> dict[str, Tag]:
    """The tags a channel applies, less those deleted in WeCom since."""
    if channel is None or not channel.tag_ids:
        return {}
    live = {t.wecom_id: t for t in session.scalars(select(Tag).where(Tag.wecom_id.in_(channel.tag_ids)))}
    return {
        wid: live.get(wid) or _tag(session, wid)
        for wid in channel.tag_ids
        if not getattr(live.get(wid), "deleted", False)
    }


def _wecom_tags(session: Session, tags: list[dict]) -> dict[str, Tag]:
    """Enterprise tags from a `follow_user` entry (personal tags have no id and stay out)."""
    return {
        item["tag_id"]: _tag(session, item["tag_id"], item.get("tag_name", ""), item.get("group_name", ""))
        for item in tags
        if item.get("tag_id") and item.get("type", 1) != 2
    }


def record_added(session: Session, fields: dict, contact: dict, half: bool = False) -> Customer:
    """add_external_contact / add_half_external_contact, with externalcontact/get's answer.

    A retried event runs this again: every step here is safe to repeat."""
    userid, ext_id = fields.get("UserID", ""), fields.get("ExternalUserID", "")
    at = from_unix(fields.get("CreateTime"))
    state = fields.get("State", "")
    follow_users = contact.get("follow_user") or []
    # the first add is the earliest of those WeCom lists, whichever is handled first
    first_add = min([at, *(from_unix(i["createtime"]) for i in follow_users if i.get("createtime"))])
    external = contact.get("external_contact") or {"external_userid": ext_id}
    customer, _ = upsert_customer(session, external, first_add)
    _refresh_others(session, customer, follow_users, userid, at)
    # WeCom's answer may not list this member yet; then the event alone says who added whom.
    info = next((i for i in follow_users if i.get("userid") == userid), {"userid": userid})
    _, before = _follow(session, ext_id, userid)
    if before is not None and before.ended_at is not None and before.added_at == before.ended_at > at:
        _add_came_first(session, customer, before, at)
    # a customer who removed the member (or was removed) and adds them again: a new add
    again = _ended_by(before, at)
    follow, is_new = upsert_follow(
        session,
        customer,
        {**info, "state": info.get("state") or state},
        at,
        status="half" if half else "active",
    )
    # (a follow an edit event made before its add was processed has no add recorded yet)
    first = is_new or (not again and not _add_recorded(session, customer, userid))
    if first or again:
        extra = {"again": True} if again else {}
        timeline(session, customer, "added", at, userid, add_way=follow.add_way, half=half, **extra)
    if again:
        follow.added_at = at  # the relation as it stands began now (first_added_at keeps the first)
    channel = attribute_channel(session, customer, follow, state, at, again)
    channel_tags = _channel_tags(session, channel)
    # WeCom's tags plus the channel's, which mark_tag may not have reached WeCom with yet
    wanted = {**_wecom_tags(session, info.get("tags", [])), **channel_tags}
    _apply_tag_set(session, customer, follow, wanted, at)
    if channel_tags:
        key = tag_sync.key(follow.id, channel.id)
        payload = {"userid": userid, "external_userid": ext_id, "add_tag": list(channel_tags)}
        came_back_by_it = again and bool(state) and channel.state == state
        if not outbox.enqueue(session, tag_sync.KIND, key, payload) and came_back_by_it:
            # back through the same channel: WeCom dropped the tags with the relation, and the
            # channel's mark_tag, done long ago, is sent again
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.dedupe_key == key, OutboxMessage.status != "pending")
                .values(
                    status="pending",
                    payload=payload,
                    attempts=0,
                    last_error="",
                    due_at=utcnow(),
                    claimed_until=None,
                    deadline_at=None,
                    sent_at=None,
                )  # fmt: skip
            )
    # whether or not this add is the first recorded: another member's add handled first may
    # have made this follow from WeCom's answer while this member's welcome went out
    if code := fields.get("WelcomeCode", ""):
        welcome.record_outcome_for_new_customer(session, customer, code)
    return customer


def _add_recorded(session: Session, customer: Customer, userid: str) -> bool:
    return (
        session.scalar(
            select(TimelineEvent.id)
            .where(
                TimelineEvent.customer_id == customer.id,
                TimelineEvent.staff_userid == userid,
                TimelineEvent.kind == "added",
            )
            .limit(1)
        )
        is not None
    )


def record_edited(session: Session, fields: dict, contact: dict) -> Customer:
    at = from_unix(fields.get("CreateTime"))
    customer, _ = upsert_customer(session, contact["external_contact"], at)
    for info in contact.get("follow_user", []):
        follow, made = upsert_follow(session, customer, info, at)
        if made:  # (an edit of a customer had since before Siyu, before its first sync)
            _had_before_siyu(session, customer, follow, info)
        _set_follow_tags(session, customer, follow, info.get("tags", []), at)
    return customer


def _had_before_siyu(session: Session, customer: Customer, follow: Follow, info: dict) -> None:
    """A follow first heard of from WeCom's answer to another event: added as the customer
    sync puts one, and through the channel its state names. The sync does that only for a
    follow new to it, and the customer had stayed with no channel and no add for good."""
    timeline(
        session,
        customer,
        "added",
        follow.added_at,
        follow.staff_userid,
        add_way=follow.add_way,
        imported=True,
    )
    attribute_channel(session, customer, follow, info.get("state") or "", follow.added_at)


def _tags_on_their_way(session: Session, follow: Follow) -> dict[str, Tag]:
    if not follow.channel_id:
        return {}
    pending = session.scalar(
        select(OutboxMessage.payload).where(
            OutboxMessage.dedupe_key == tag_sync.key(follow.id, follow.channel_id),
            OutboxMessage.status == "pending",
        )
    )
    if pending is None:
        return {}
    channel = session.get(Channel, follow.channel_id)
    return {wid: tag for wid, tag in _channel_tags(session, channel).items() if wid in pending["add_tag"]}


def _follow(session: Session, ext_id: str, userid: str) -> tuple[Customer | None, Follow | None]:
    row = session.execute(
        select(Customer, Follow)
        .join(Follow, Follow.customer_id == Customer.id)
        .where(Customer.external_userid == ext_id, Follow.staff_userid == userid)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def leader_of(session: Session, userid: str) -> str | None:
    """The agent's first direct leader in WeCom, else the leader of their main department
    (the parent department's when the agent leads it themselves, and so on up); only members
    still with the corp: a card to one who left would reach nobody."""
    return leaders_of(session, [userid]).get(userid)


def leaders_of(session: Session, userids: list[str]) -> dict[str, str]:
    """leader_of for many agents (the SLA board names who a leader step will reach on each
    row, a batch of cards whom the next step tells): two queries and one a level of the
    departments above them, however many agents; agents with no leader are left out."""
    if not userids:
        return {}
    staff = list(session.scalars(select(Staff).where(Staff.userid.in_(sorted(set(userids))))))
    departments = _departments_above(session, {_main_department(m) for m in staff} - {None})
    orders = {m.userid: _leader_order(m, departments.get) for m in staff}
    every = sorted({leader for order in orders.values() for leader in order})
    active = set(session.scalars(select(Staff.userid).where(Staff.userid.in_(every), Staff.active.is_(True))))
    found = {u: next((leader for leader in order if leader in active), None) for u, order in orders.items()}
    return {u: leader for u, leader in found.items() if leader}


def leaders_named(session: Session, userid: str) -> list[str]:
    """Whom leader_of would try for the agent, whether still with the corp or not."""
    staff = session.scalar(select(Staff).where(Staff.userid == userid))
    if staff is None:
        return []
    return _leader_order(staff, _departments_above(session, {_main_department(staff)} - {None}).get)


def _departments_above(session: Session, wecom_ids: set[int]) -> dict[int, Row]:
    """These departments and those above them up to the top, by WeCom id, read a level of the
    tree at a time: reading every department of the corp instead cost 130-220 ms a call at
    5,000 departments, on the SLA board and every batch of cards."""
    d = Department
    found: dict[int, Row] = {}
    asked: set[int] = set()
    while wecom_ids:
        asked |= wecom_ids
        rows = session.execute(
            select(d.wecom_id, d.parent_wecom_id, d.leaders).where(bulk.among(session, d.wecom_id, wecom_ids))
        ).all()
        found.update((row.wecom_id, row) for row in rows)
        wecom_ids = {row.parent_wecom_id for row in rows if row.parent_wecom_id} - asked
    return found


def _main_department(staff: Staff) -> int | None:
    return staff.main_department or (staff.departments[0] if staff.departments else None)


def _leader_order(staff: Staff, department) -> list[str]:
    """Whom leader_of tries, in turn: direct leaders, then each department's leaders up the tree."""
    userid = staff.userid
    order = [leader for leader in staff.direct_leaders or [] if leader and leader != userid]
    dept_id = _main_department(staff)
    seen: set[int] = set()
    while dept_id and dept_id not in seen:
        seen.add(dept_id)
        dept = department(dept_id)
        if dept is None:
            break
        # a head is told by the leader above, not by a fellow head of their own department
        if userid not in (dept.leaders or []):
            order += [leader for leader in dept.leaders or [] if leader]
        dept_id = dept.parent_wecom_id
    return order


# How a follow ended (its status) as the customer's timeline and a closed wait name it.
FOLLOW_ENDED_AS = {"lost": "lost", "deleted": "removed", "transferred": "transferred"}


def _ended_by(follow: Follow | None, at: datetime) -> bool:
    """The follow ended (lost, deleted, handed over) no later than `at`."""
    return follow is not None and follow.status in FOLLOW_ENDED_AS and (follow.ended_at or at) <= at


def _refresh_others(session: Session, customer: Customer, follow_users: list[dict], userid: str, at) -> None:
    """The other staff who have this customer, as externalcontact/get lists them: refreshed.
    One had since before Siyu is added as the customer sync puts them; one whose follow had
    ended has them again (a customer handed back to a member, which WeCom sends no add for)."""
    for info in follow_users:
        if info.get("userid") == userid:
            continue
        _, before = _follow(session, customer.external_userid, info["userid"])
        # (only a handover: a customer who deleted a member, or was deleted, and adds them again
        # comes with an add event of that member's, 再次添加)
        handed_back = _ended_by(before, at) and before.status == "transferred"
        other, made = upsert_follow(session, customer, info, at)
        if made:  # (had since before Siyu)
            _had_before_siyu(session, customer, other, info)
        elif handed_back and other.status == "active":
            timeline(
                session, customer, "added", at, other.staff_userid, add_way=other.add_way, handed_back=True
            )
            other.added_at = at
        _set_follow_tags(session, customer, other, info.get("tags", []), at)


def record_handed_over(
    session: Session, fields: dict, contact: dict, public_url: str = ""
) -> Customer | None:
    """del_external_contact with Source=DELETE_BY_TRANSFER, with externalcontact/get's answer:
    the member's follow ends as handed over, and the members WeCom now lists have the customer
    (handed back to one who had them before, WeCom sends that one no add event)."""
    customer = record_follow_ended(session, fields, "transferred", public_url)
    if customer is not None:
        at = from_unix(fields.get("CreateTime"))
        _refresh_others(session, customer, contact.get("follow_user") or [], fields.get("UserID", ""), at)
    return customer


def _add_came_first(session: Session, customer: Customer, follow: Follow, at: datetime) -> None:
    """The add at `at`, handled after the end that followed it (a retried externalcontact/get):
    that end recorded the add at its own moment, not knowing it (record_follow_ended: added_at
    = ended_at), and the add's entry and the follow's 添加时间 move back to when it was."""
    session.execute(
        update(TimelineEvent)
        .where(
            TimelineEvent.customer_id == customer.id,
            TimelineEvent.kind == "added",
            TimelineEvent.staff_userid == follow.staff_userid,
            TimelineEvent.at == follow.added_at,
        )
        .values(at=at)
        .execution_options(synchronize_session=False)
    )
    follow.added_at = at


def record_follow_ended(session: Session, fields: dict, status: str, public_url: str = "") -> Customer | None:
    """del_follow_user (customer removed the member: lost, and alerts that link the customer's
    page at `public_url`, the worker's Siyu; none without it), del_external_contact (member
    removed the customer: deleted, or transferred when Source=DELETE_BY_TRANSFER)."""
    userid, ext_id = fields.get("UserID", ""), fields.get("ExternalUserID", "")
    at = from_unix(fields.get("CreateTime"))
    customer, follow = _follow(session, ext_id, userid)
    if follow is None:  # the add is not processed yet (or was before Siyu): record both
        customer, _ = upsert_customer(session, {"external_userid": ext_id}, at)
        follow, _ = upsert_follow(session, customer, {"userid": userid}, at)
        timeline(session, customer, "added", at, userid)
    if follow.status == status:
        return customer
    follow.status, follow.ended_at = status, at
    kind = FOLLOW_ENDED_AS[status]
    # a member who left is sent no loss alert (WeCom refuses it: 消息接收人全部无效); the
    # customer's timeline says so, where one would look for it
    gone = staff_gone(session, [userid]).get(userid, "") if status == "lost" else ""
    timeline(session, customer, kind, at, userid, **({"not_alerted": gone} if gone else {}))
    conversations.follow_ended(session, ext_id, userid, at, kind)
    if status == "lost":
        _alert_lost(session, customer, follow, at, public_url, gone)
    return customer


def _alert_lost(
    session: Session, customer: Customer, follow: Follow, at: datetime, public_url: str, gone: str = ""
) -> None:
    """Tell the member (not one `gone`: left or disabled), and their leader, that the customer
    deleted the member. Every app
    message asks for WeCom's duplicate check (siyu.notify.tasks.DUPLICATE_CHECK), which drops
    a text equal to one sent in the last 4 hours: each alert names the second it happened
    and links the customer's own page (the follow in it), so two customers of one name who
    leave in the same minute are two alerts, while one alert sent again is still one."""
    userid = follow.staff_userid
    staff = session.scalar(select(Staff).where(Staff.userid == userid))
    # WeCom shows <a href> in an app message's text as a link: names and remarks go in as
    # text (a customer named <a href=…> had put a link of theirs into the company's alert)
    staff_name = html.escape(staff.name if staff else userid)
    # a customer not yet looked up (the add still queued): not by a 32-character id
    ext_id = customer.external_userid
    who = html.escape(customer.name) if customer.name else f"一位客户（…{ext_id[-4:]}）"
    label = f"{who}（备注：{html.escape(follow.remark)}）" if follow.remark else who
    tenant = session.get(Tenant, session.info["siyu_tenant_id"])
    channel = session.get(Channel, follow.channel_id) if follow.channel_id else None
    when = timezones.wall_clock(at, tenant.timezone, "%m-%d %H:%M:%S")
    when += f"，渠道「{html.escape(channel.name)}」" if channel else ""
    see = ""
    if public_url:
        page = quote(f"/customers/{customer.id}", safe="/")
        link = f"{public_url.rstrip('/')}/auth/wecom/{quote(tenant.slug)}?next={page}&lost={follow.id}"
        see = f'<a href="{link}">查看客户</a>'
    told = {} if gone else {userid: f"客户流失提醒：{label} 已将你从联系人中删除（{when}）。{see}"}
    leader = leader_of(session, userid)
    if leader:
        member = f"{staff_name}（{gone}）" if gone else staff_name
        told[leader] = f"客户流失提醒：{label} 已将你团队的 {member} 从联系人中删除（{when}）。{see}"
    for touser, text in told.items():
        role = "agent" if touser == userid else "leader"
        now = utcnow()
        outbox.enqueue(
            session,
            "app_message",
            f"lost:{follow.id}:{int(at.timestamp())}:{role}",
            {"touser": touser, "msgtype": "text", "text": {"content": text}},
            recipient=touser,
            delay=outbox.next_notice_at(session, touser, now) - now,
        )


def record_tag_mark_failed(session: Session, message, error: str) -> None:
    """A channel's mark_tag given up on: the customer has the tags in Siyu only, and their
    timeline says so (the profile's notice by the tags reads the outbox row itself)."""
    p = message.payload
    customer, follow = _follow(session, p.get("external_userid", ""), p.get("userid", ""))
    if customer is None:
        return
    names = dict(
        session.execute(select(Tag.wecom_id, Tag.name).where(Tag.wecom_id.in_(p.get("add_tag", [])))).all()
    )
    tags = [names.get(t, t) for t in p.get("add_tag", [])]
    timeline(session, customer, "tag_failed", utcnow(), follow.staff_userid, tags=tags, error=error)


def record_transfer_failed(session: Session, fields: dict) -> Customer | None:
    userid, ext_id = fields.get("UserID", ""), fields.get("ExternalUserID", "")
    customer = session.scalar(select(Customer).where(Customer.external_userid == ext_id))
    if customer is None:
        return None
    reason = {"customer_refused": "客户拒绝", "customer_limit_exceed": "接替成员客户数已达上限"}.get(
        fields.get("FailReason", ""), fields.get("FailReason", "")
    )
    timeline(session, customer, "transfer_failed", from_unix(fields.get("CreateTime")), userid, reason=reason)
    return customer


def named_now(session: Session, fields: dict) -> dict:
    """A callback event's fields with its UserID as the member is named now: one WeCom sent
    before their rename and Siyu handled after it names the old userid, which is nobody's."""
    userid = fields.get("UserID") or ""
    if not userid or not fields.get("CreateTime"):
        return fields
    now = renames(session).now(userid, from_unix(fields["CreateTime"]))
    return fields if now == userid else {**fields, "UserID": now}


def rename_member(session: Session, old: str, new: str) -> None:
    """A member's userid changed in WeCom (siyu.tenancy.service.rename_member): their customers,
    their timeline entries, the channels they receive on and the channels' tags still to go to
    WeCom are theirs under the new one. A follow an event under the new userid made meanwhile is
    kept, the old one beside it left."""
    rename_in(session, Follow.staff_userid, old, new, Follow.customer_id.not_in(_customers_of(new)))
    rename_in(session, Follow.oper_userid, old, new)
    rename_in(session, TimelineEvent.staff_userid, old, new)
    for channel in session.scalars(select(Channel)):
        if old in (channel.staff_userids or []):
            channel.staff_userids = renamed(channel.staff_userids, old, new)
    pending = select(OutboxMessage).where(
        OutboxMessage.kind == tag_sync.KIND, OutboxMessage.status == "pending"
    )
    for message in session.scalars(pending):
        if message.payload.get("userid") == old:
            message.payload = {**message.payload, "userid": new}
    session.flush()


def _customers_of(userid: str):
    return select(Follow.customer_id).where(Follow.staff_userid == userid)


def import_customer(session: Session, contact: dict, follow_info: dict, any_pending: bool = True) -> bool:
    """One `batch/get_by_user` row (sync). Returns True when something changed. `any_pending`:
    see _set_follow_tags."""
    at = from_unix(follow_info.get("createtime"))
    customer, created = upsert_customer(session, contact, at)
    _, before = _follow(session, customer.external_userid, follow_info.get("userid", ""))
    # removed, and back while Siyu heard nothing (it was down): added again, as the add event says
    # (the follow had turned active with the timeline still ending in 删除了客户)
    again = _ended_by(before, at)
    # a change of remark or tags it finds is dated when it was seen: by the relation's
    # createtime, one made while Siyu heard nothing sat a month back on the timeline
    seen = utcnow()
    follow, new_follow = upsert_follow(session, customer, follow_info, at, changed_at=seen)
    if new_follow or again:
        extra = {"again": True} if again else {}
        timeline(
            session,
            customer,
            "added",
            at,
            follow.staff_userid,
            add_way=follow.add_way,
            imported=True,
            **extra,
        )
        if again:
            follow.added_at = at
        # (the relation's own state: none when back through the member's own code, which kept
        # the first channel's on the follow)
        attribute_channel(session, customer, follow, follow_info.get("state") or "", at, again)
    tags = [{"tag_id": t} for t in follow_info.get("tag_id", []) or []]
    _set_follow_tags(session, customer, follow, tags, at if new_follow or again else seen, any_pending)
    return created or new_follow or again
