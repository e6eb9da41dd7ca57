"""Group chats' names and owners (the rules and the writes; `tasks.look_up_groups` asks WeCom).

The archive gives a group chat's messages with its roomid only. WeCom's groupchat/get tells
a customer group's (客户群) name, owner and members by that id (its chat_id); a group of staff
only is not a customer group, and the archive's own msgaudit/groupchat/get tells its name
and creator instead (with the 会话存档 secret). Each group is looked up after
the pull that first stores it, again when WeCom says it changed (change_external_chat), and
an unknown one again at the first pull that stores messages at least RECHECK_AFTER later (a
group made moments before its first message may not be known yet). A group whose members were
never read (stored before Siyu kept them) is read again by the worker, a few at a time
(`members_unread`).

Who of a group's external members are in it (GroupMember, by external userid: a customer of
ours, or one nobody here follows yet, linked once they become a customer) follows the same
answers: one groupchat/get lists is in since their join_time; a customer leaves only as WeCom says so (the
del_member update names them in MemChangeList; an older event without it: whoever is no
longer listed) or as the group is dismissed (a leave handled after the dismissal it came
before is told as the leave, not the dismissal). WeCom refusing the lookup for good (no
permission, the group gone), an add_member or del_member event's named joins and leaves land
from the event alone (`record_event_only`). Each change lands once on the customer's
timeline. A listing never undoes a leave it does not postdate: WeCom's answer may lag its
event by seconds, and a lookup may be stored after a later event's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from siyu.conversations.models import Conversation, GroupChat, GroupMember
from siyu.conversations.service import EXTERNAL_PREFIXES
from siyu.customers import service as customers
from siyu.customers.models import Customer, TimelineEvent
from siyu.customers.queries import JOINED_HOW, LEFT_HOW
from siyu.db import bulk
from siyu.tenancy.models import Staff
from siyu.visible_names import tidy_name
from siyu.wecom.archive import storable_text

RECHECK_AFTER = timedelta(hours=6)
NAME_LENGTH = 256


def to_look_up(session: Session, now: datetime, limit: int) -> list[str]:
    """Rooms of stored group conversations that have no name yet: never looked up, or
    unknown to WeCom when last asked over RECHECK_AFTER ago; and staff-only groups written in
    since they were asked about that long ago (WeCom calls back about no change of theirs: a
    new name is learnt only by asking again). Oldest conversations first."""
    due = GroupChat.checked_at < now - RECHECK_AFTER
    renamed_maybe = and_(GroupChat.status == "internal", Conversation.last_message_at > GroupChat.checked_at)
    stale = and_(due, or_(GroupChat.status == "unknown", renamed_maybe))
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


def members_unread(session: Session, limit: int) -> list[str]:
    """Customer groups whose members were never read (stored before they were kept), oldest
    first: their customers are in no group until they are."""
    rows = session.scalars(
        select(GroupChat.chat_id)
        .where(GroupChat.status == "active", GroupChat.members_read_at.is_(None))
        .order_by(GroupChat.id)
        .limit(limit)
    )
    return list(rows)


def _row(session: Session, chat_id: str, now: datetime) -> GroupChat:
    # two workers may meet the same new group at once: insert if missing, then update
    bulk.insert_rows(session, GroupChat, [{"chat_id": chat_id, "checked_at": now}], conflict=["chat_id"])
    # locked (PostgreSQL; SQLite's write lock is held already): two events of one group handled
    # at once would both see a customer not in yet, and both write that they joined
    return session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id).with_for_update())


def record(session: Session, chat: dict, now: datetime, change: dict | None = None) -> GroupChat:
    """What groupchat/get answered (its `group_chat` object); `change`: the fields of the
    change_external_chat event it was asked for, if any (who left, with a del_member)."""
    listed = [m for m in chat.get("member_list") or [] if isinstance(m, dict)]
    members = {m.get("userid"): m.get("type") for m in listed}
    row = _row(session, str(chat["chat_id"]), now)
    row.name = _text(chat.get("name"), NAME_LENGTH)
    before, row.owner_userid = row.owner_userid, _text(chat.get("owner"), 64)
    if row.owner_userid and before != row.owner_userid:
        # (from nobody too: the entries its events made while WeCom would not describe it were
        # filed under no owner, and every agent saw them)
        _handed_over(session, row, before or "")
    row.member_count = len(members)  # by userid: a member listed twice is one person
    row.customer_count = sum(1 for kind in members.values() if kind == 2)
    if row.status != "dismissed":  # a dismissal recorded while WeCom was being asked stands
        row.status = "active"
    row.checked_at, row.problem, row.members_read_at = now, "", now
    # (one who left since keeps the name their messages are read by)
    row.member_names = dict(
        list({**(row.member_names or {}), **_external_names(listed)}.items())[-MOST_NAMES:]
    )
    # the leave first: a del_member handled late (retried) after the customer rejoined, its
    # listing naming the rejoin, had put them out of the group for good
    if change and change.get("UpdateDetail") == "del_member":  # (one before a dismissal, too)
        _left_by_event(session, row, change, {str(m.get("userid")) for m in listed}, now)
    if row.status == "active":  # (a dismissed group's late answer brings nobody back)
        _joined(session, row, [m for m in listed if m.get("type") == 2] + _named_joins(change, members), now)
    return row


def told_by_event(change: dict | None) -> bool:
    """An add_member or del_member event that names who came or left (MemChangeList): it
    tells those joins and leaves without WeCom's answer."""
    return (
        bool(change)
        and change.get("UpdateDetail") in ("add_member", "del_member")
        and any(str(change.get("MemChangeList") or "").split("|"))
    )


def record_event_only(session: Session, chat_id: str, change: dict, problem: str, now: datetime) -> GroupChat:
    """groupchat/get refused for good (no permission, the group gone): those the event names
    joined or left all the same, when and as it says (CreateTime, JoinScene, QuitScene); the
    group's name, owner and members stay as last known. A group never answered for is stored
    as unknown, `problem` saying why."""
    known = session.scalar(select(GroupChat.id).where(GroupChat.chat_id == chat_id)) is not None
    row = _row(session, chat_id, now)
    if not known:
        row.status = "unknown"
    row.checked_at, row.problem = now, _text(problem, 300)
    if change.get("UpdateDetail") == "add_member":
        if row.status != "dismissed":  # (as a dismissed group's late answer brings nobody back)
            _joined(session, row, _named_joins(change, {}), now)
    elif told_by_event(change):  # (never the fallback that reads the answer's member list)
        _left_by_event(session, row, change, set(), now)
    return row


# ---------------------------------------------------------------- customers in groups

# The update event numbers JoinScene otherwise than groupchat/get's join_scene (REFERENCE 2.2).
JOIN_SCENE_OF_EVENT = {"0": 1, "1": 2, "3": 3}
LEFT_HOW_OF_EVENT = {"0": "quit", "1": "removed"}


def _named_joins(change: dict | None, listed: dict) -> list[dict]:
    """Those an add_member event names that WeCom's answer does not list yet (it may lag the
    event by seconds), as groupchat/get would list them."""
    if not change or change.get("UpdateDetail") != "add_member":
        return []
    scene = JOIN_SCENE_OF_EVENT.get(str(change.get("JoinScene", "")), 0)
    named = [n for n in str(change.get("MemChangeList") or "").split("|") if n and n not in listed]
    return [{"userid": n, "join_time": change.get("CreateTime"), "join_scene": scene} for n in named]


def _customers(session: Session, external_userids) -> dict[str, Customer]:
    """Our customers among these ids (the others are kept as members all the same, to be
    linked when they become customers)."""
    ids = sorted({e for e in external_userids if e})
    if not ids:
        return {}
    found = session.scalars(select(Customer).where(Customer.external_userid.in_(ids)))
    return {c.external_userid: c for c in found}


def _externals(session: Session, userids) -> set[str]:
    """Which of the userids an event names are external members: not our staff, who are not
    kept (an event names whoever came or left, members of staff too)."""
    ids = {u for u in userids if u and u.startswith(EXTERNAL_PREFIXES)}
    if not ids:
        return set()
    return ids - set(session.scalars(select(Staff.userid).where(Staff.userid.in_(sorted(ids)))))


def _memberships(session: Session, chat_id: str, external_userids) -> dict[str, GroupMember]:
    ids = sorted(set(external_userids))
    if not ids:
        return {}
    rows = session.scalars(
        select(GroupMember).where(GroupMember.chat_id == chat_id, GroupMember.external_userid.in_(ids))
    )
    return {m.external_userid: m for m in rows}


GROUP_KINDS = ("group_joined", "group_left", "group_dismissed")


def _handed_over(session: Session, group: GroupChat, before: str) -> None:
    """The group's timeline entries follow it to its new owner (WeCom hands a member's groups
    on when they leave): an agent sees the groups of the members they see, with their past."""
    members = select(GroupMember.customer_id).where(GroupMember.chat_id == group.chat_id)
    entries = session.scalars(
        select(TimelineEvent).where(
            TimelineEvent.customer_id.in_(members),
            TimelineEvent.kind.in_(GROUP_KINDS),
            TimelineEvent.staff_userid == before,
        )
    )
    for entry in entries:
        if (entry.data or {}).get("chat_id") == group.chat_id:
            entry.staff_userid = group.owner_userid


def _event(session: Session, customer: Customer, kind: str, at: datetime, group: GroupChat, **data) -> None:
    # on the owner's name: an agent sees what happens in the groups of the members they see
    customers.timeline(
        session, customer, kind, at, group.owner_userid, group=group.name, chat_id=group.chat_id, **data
    )


def _joined(session: Session, group: GroupChat, listed: list[dict], now: datetime) -> None:
    """The external members groupchat/get lists (type 2), and those an event names: in since
    their join_time, unless already in, or listed by an answer no newer than their leave."""
    named = _externals(session, [str(m.get("userid") or "") for m in listed if m.get("type") != 2])
    listed = [m for m in listed if m.get("type") == 2 or str(m.get("userid") or "") in named]
    ids = [str(m.get("userid") or "")[:64] for m in listed]
    found = _customers(session, ids)
    have = _memberships(session, group.chat_id, ids)
    for ext, m in zip(ids, listed, strict=True):
        if not ext:
            continue
        customer = found.get(ext)
        at = customers.from_unix(m.get("join_time")) if m.get("join_time") else now
        member = have.get(ext)
        if member is not None and member.left_at is None:
            continue  # in already
        if member is not None and member.left_at >= at:
            # they left after this join: the answer (or event) is older than the leave, and
            # tells the join only where the leave came alone
            if member.joined_at is None:
                _joined_before_leave(session, group, customer, member, m, at)
            continue
        if member is None:
            member = have[ext] = GroupMember(
                chat_id=group.chat_id, external_userid=ext, customer_id=customer.id if customer else None
            )
            session.add(member)
        member.left_at, member.left_how = None, ""
        _join(session, group, customer, member, m, at)


def _join(
    session: Session, group: GroupChat, customer: Customer | None, member: GroupMember, m: dict, at
) -> None:
    scene = m.get("join_scene") if m.get("join_scene") in JOINED_HOW else 0
    invitor = m.get("invitor") if isinstance(m.get("invitor"), dict) else {}
    member.joined_at, member.join_scene = at, scene
    member.invitor = _text(invitor.get("userid"), 64)
    # (one who is no customer yet is told when they become one: customers.service._groups_joined_before)
    if customer is not None:
        _event(session, customer, "group_joined", at, group, join_scene=scene, how=JOINED_HOW.get(scene, ""))


def _joined_before_leave(
    session: Session, group: GroupChat, customer: Customer | None, member: GroupMember, m: dict, at: datetime
) -> None:
    """A join learnt after the leave that followed it (the add_member event handled after the
    del_member, a lagging answer): on the timeline at its time, and that leave's entry no
    longer says the join is unknown."""
    _join(session, group, customer, member, m, at)
    if customer is None:
        return
    left = session.scalars(
        select(TimelineEvent).where(
            TimelineEvent.customer_id == customer.id,
            TimelineEvent.kind == "group_left",
            TimelineEvent.at == member.left_at,
        )
    )
    for event in left:
        if event.data.get("chat_id") == group.chat_id and event.data.get("join_unknown"):
            event.data = {k: v for k, v in event.data.items() if k != "join_unknown"}


def _left_by_event(session: Session, group: GroupChat, change: dict, listed: set[str], now: datetime) -> None:
    """del_member: those MemChangeList names (an older event without it: our customers in
    the group that groupchat/get no longer lists) left, as QuitScene says."""
    at = customers.from_unix(change.get("CreateTime")) if change.get("CreateTime") else now
    how = LEFT_HOW_OF_EVENT.get(str(change.get("QuitScene", "")), "")
    named = [n for n in str(change.get("MemChangeList") or "").split("|") if n]
    if named:
        leaving = sorted(_externals(session, named))
    else:
        leaving = [e for e in _in_the_group(session, group.chat_id) if e not in listed]
    _leave(session, group, leaving, how, at)


def _in_the_group(session: Session, chat_id: str) -> list[str]:
    rows = session.scalars(
        select(GroupMember.external_userid).where(
            GroupMember.chat_id == chat_id, GroupMember.left_at.is_(None)
        )
    )
    return sorted(rows)


def _leave(session: Session, group: GroupChat, leaving: list[str], how: str, at: datetime) -> None:
    """These external members left (a leave kept for one nobody here follows too: a question
    they asked is owed no more, siyu.conversations.group_waits)."""
    leaving = [e[:64] for e in leaving if e]
    found = _customers(session, leaving)
    have = _memberships(session, group.chat_id, leaving)
    for ext in leaving:
        customer, member = found.get(ext), have.get(ext)
        if member is None:  # the join was never seen: the leave still holds off a late listing
            member = have[ext] = GroupMember(
                chat_id=group.chat_id, external_userid=ext, customer_id=customer.id if customer else None
            )
            session.add(member)
        elif _left_before_dismissal(member, how, at):
            if customer is not None:
                _forget_dismissal(session, group, customer, member)
        elif member.left_at is not None or (member.joined_at is not None and member.joined_at > at):
            continue  # left already (a retried event), or joined again since this leave
        member.left_at, member.left_how = at, how
        if customer is None:
            continue
        kind = "group_dismissed" if how == "dismissed" else "group_left"
        # joined and left before Siyu heard of the group (its answer lists them no more): the
        # leave is all there is to tell (until their add_member event, if it comes late), and
        # it says so rather than suggest a join went unseen
        unknown = {"join_unknown": True} if member.joined_at is None else {}
        _event(session, customer, kind, at, group, how=LEFT_HOW.get(how, ""), **unknown)


def _left_before_dismissal(member: GroupMember, how: str, at: datetime) -> bool:
    """A leave handled after the dismissal that it came before (a dismissed group loses
    nobody, so one in the same second came first), and after the join it ends."""
    return (
        how != "dismissed"
        and member.left_how == "dismissed"
        and member.left_at is not None
        and at <= member.left_at
        and (member.joined_at is None or member.joined_at <= at)
    )


def _forget_dismissal(session: Session, group: GroupChat, customer: Customer, member: GroupMember) -> None:
    """The customer had left before the group was dismissed: its dismissal is not theirs to
    tell (their leave is, in its place)."""
    told = session.scalars(
        select(TimelineEvent).where(
            TimelineEvent.customer_id == customer.id,
            TimelineEvent.kind == "group_dismissed",
            TimelineEvent.at == member.left_at,
        )
    )
    for event in told:
        if event.data.get("chat_id") == group.chat_id:
            session.delete(event)


# A customer group holds at most 2,000 members (WeCom); names beyond these are not kept.
MOST_NAMES = 2000


def _external_names(listed: list[dict]) -> dict[str, str]:
    """groupchat/get's names of the group's external members (asked with need_name=1): the
    nickname they took in the group, else their own name."""
    names = {}
    for m in listed:
        userid = m.get("userid")
        # (a nickname that shows nothing, WeChat's blank ⠀, is no name: their own, else none)
        name = next(filter(None, (_shown(m.get(k)) for k in ("group_nickname", "name"))), "")
        if m.get("type") == 2 and isinstance(userid, str) and userid and name and len(names) < MOST_NAMES:
            names[userid[:64]] = _text(name, 64)
    return names


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
    dismissed before it was looked up): its room id stays its title. A staff group known
    before (asked again for its name, then refused) keeps what was known."""
    row = _row(session, chat_id, now)
    if row.status not in ("dismissed", "internal"):
        row.status = "unknown"
    row.checked_at, row.problem = now, _text(problem, 300)


def is_dismissed(session: Session, chat_id: str) -> bool:
    return session.scalar(select(GroupChat.status).where(GroupChat.chat_id == chat_id)) == "dismissed"


def record_dismissed(session: Session, chat_id: str, now: datetime, at: datetime | None = None) -> None:
    """The group was dismissed (at `at`, the event's time): our customers in it are no longer."""
    row = _row(session, chat_id, now)
    row.status, row.checked_at = "dismissed", now
    _leave(session, row, _in_the_group(session, chat_id), "dismissed", at or now)


def _shown(name) -> str:
    return tidy_name(name) if isinstance(name, str) else ""
