"""What a customer group owes when its customers leave and come back, and the list's two wait
filters together."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from siyu.conversations import group_waits, groups, service
from siyu.conversations.models import Conversation
from siyu.customers import queries as customer_queries
from siyu.customers import service as customers
from siyu.customers.models import Customer, TimelineEvent
from siyu.insights.needs_reply import default_classifier
from siyu.tenancy.models import Staff

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@dataclass
class Item:
    seq: int
    msgid: str
    message: dict


class Room:
    def __init__(self):
        self.seq = 0
        self.roomid = "wr" + secrets.token_hex(6)

    def say(self, sender: str, text: str, minute: float, **extra) -> Item:
        self.seq += 1
        body = {
            "msgid": f"g{self.seq}-{secrets.token_hex(4)}",
            "action": "send",
            "from": sender,
            "tolist": [],
            "roomid": self.roomid,
            "msgtime": int((T0 + timedelta(minutes=minute)).timestamp() * 1000),
            "msgtype": "text",
            "text": {"content": text},
            **extra,
        }
        return Item(self.seq, body["msgid"], body)


@pytest.fixture
def tenant(db, fresh_tenant) -> int:
    with db.tenant_session(fresh_tenant) as s:
        s.add(Staff(userid="lisi", name="李四"))
        s.add(Staff(userid="zhangsan", name="张三"))
    return fresh_tenant


def ingest(db, tenant, items):
    with db.tenant_session(tenant) as s:
        return service.ingest(s, items, default_classifier().classify)


def conv_id(db, tenant, roomid) -> int:
    with db.tenant_session(tenant) as s:
        return s.scalar(select(Conversation.id).where(Conversation.roomid == roomid))


def waits(db, tenant, roomid):
    cid = conv_id(db, tenant, roomid)
    with db.tenant_session(tenant) as s:
        return group_waits.group_waits(s, [cid]).get(cid)


def chat(room: Room, members: list[dict], **extra) -> dict:
    return {"chat_id": room.roomid, "name": "团购群", "owner": "lisi", "member_list": members, **extra}


def _asked_then_quit(db, tenant, quit_at: datetime) -> tuple[Room, str, list[dict]]:
    """A customer of ours in the group asks at T0 + 1 min, unanswered, and quits at `quit_at`:
    the room, their external userid, the group's members before they quit."""
    room = Room()
    ext = "wm" + secrets.token_hex(10)
    with db.tenant_session(tenant) as s:
        s.add(Customer(external_userid=ext, name="赵先生"))
    t = int(T0.timestamp())
    members = [{"userid": "lisi", "type": 1, "join_time": t}, {"userid": ext, "type": 2, "join_time": t}]
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, members), T0)
    ingest(db, tenant, [room.say(ext, "请问团购价什么时候开始？", 1)])
    assert waits(db, tenant, room.roomid) is not None
    at = int(quit_at.timestamp())
    change = {"UpdateDetail": "del_member", "QuitScene": "0", "MemChangeList": ext, "CreateTime": at}
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, members[:1]), quit_at, change)
    return room, ext, members


def test_a_customer_who_quit_the_group_is_owed_nothing(db, tenant):
    room, _, _ = _asked_then_quit(db, tenant, T0 + timedelta(minutes=5))
    assert waits(db, tenant, room.roomid) is None


def test_a_customer_who_left_after_asking_and_came_back_is_not_owed_the_old_question(db, tenant):
    """They asked, left the next day, and came back two days later: the question of before they
    left had come back with them, 3 days old, though they had been out of the group since."""
    room, ext, members = _asked_then_quit(db, tenant, T0 + timedelta(days=1))
    assert waits(db, tenant, room.roomid) is None
    back_at = T0 + timedelta(days=3)
    at = int(back_at.timestamp())
    back = {"userid": ext, "type": 2, "join_time": at, "join_scene": 3}
    change = {"UpdateDetail": "add_member", "JoinScene": "3", "MemChangeList": ext, "CreateTime": at}
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, [members[0], back]), back_at, change)
    assert waits(db, tenant, room.roomid) is None


def test_both_wait_filters_checked_do_not_hide_a_waiting_group(db, tenant, settings):
    """The list's form offers 只看等待回复 and 只看群内有客户等待回复的客户群 side by side: checked
    together, a group where a customer waited had been neither listed nor counted, the header
    saying 所选条件内没有客户在等待."""
    from siyu.runtime import Runtime
    from tests.support.signed_in import SignedIn

    rt = Runtime.create(settings, db)
    room = Room()
    ext = "wm" + secrets.token_hex(10)
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, [{"userid": "lisi", "type": 1}], name="周末团购群"), T0)
    ingest(db, tenant, [room.say(ext, "请问团购价什么时候开始？", 1)])
    admin = SignedIn(rt, tenant, "admin")
    only_groups = admin("GET", "/conversations?group_waiting=1").text
    assert "周末团购群" in only_groups and "1 个客户群内有客户等待回复" in only_groups
    both = admin("GET", "/conversations?waiting=1&group_waiting=1").text
    assert "没有客户在等待" not in both


def test_a_member_nobody_follows_who_quit_after_asking_is_owed_nothing(db, tenant):
    """A group member who is nobody's contact here (their question is owed, as the list says)
    asks, then quits the group: nobody can answer them there any more, as for a customer."""
    room = Room()
    stranger = "wm" + secrets.token_hex(10)
    t = int(T0.timestamp())
    members = [{"userid": "lisi", "type": 1, "join_time": t}, {"userid": stranger, "type": 2, "join_time": t}]
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, members), T0)
    ingest(db, tenant, [room.say(stranger, "请问团购价什么时候开始？", 1)])
    assert waits(db, tenant, room.roomid) is not None
    quit_at = T0 + timedelta(minutes=5)
    change = {
        "UpdateDetail": "del_member",
        "QuitScene": "0",
        "MemChangeList": stranger,
        "CreateTime": int(quit_at.timestamp()),
    }
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, members[:1]), quit_at, change)
    w = waits(db, tenant, room.roomid)
    assert w is None, f"the group still owes {w and w.sender} who quit it: {w}"


def test_a_group_member_who_adds_a_member_afterwards_is_listed_in_the_group(db, tenant):
    """The common 私域 path: a WeChat user scans the group's QR code (add_member; nobody here
    follows them yet), then adds the group's owner from the group (add_external_contact). Only
    customers were kept as members: her page listed no group, and her timeline no join, till
    the group changed again."""
    room = Room()
    x = "wm" + secrets.token_hex(10)
    t = int(T0.timestamp())
    members = [
        {"userid": "lisi", "type": 1, "join_time": t},
        {"userid": x, "type": 2, "join_time": t + 60, "join_scene": 3, "name": "钱女士"},
    ]
    join = {"UpdateDetail": "add_member", "JoinScene": "3", "MemChangeList": x, "CreateTime": t + 60}
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, members, name="新品体验群"), T0 + timedelta(minutes=1), join)
    added_at = t + 600
    fields = {
        "UserID": "lisi",
        "ExternalUserID": x,
        "CreateTime": added_at,
        "ChangeType": "add_external_contact",
    }
    contact = {
        "external_contact": {"external_userid": x, "name": "钱女士", "type": 1},
        "follow_user": [{"userid": "lisi", "createtime": added_at}],
    }
    with db.tenant_session(tenant) as s:
        cust = customers.record_added(s, fields, contact)
        cid = cust.id

    class Admin:
        visible_staff = None

    with db.tenant_session(tenant) as s:
        listed = customer_queries.customer_groups(s, Admin(), cid)
    assert [g["name"] for g in listed] == ["新品体验群"], (
        f"钱女士 is in 新品体验群 (joined by its QR code, then added its owner), yet her page lists {listed}"
    )
    with db.tenant_session(tenant) as s:
        told = s.execute(
            select(TimelineEvent.kind, TimelineEvent.at, TimelineEvent.data).where(
                TimelineEvent.customer_id == cid
            )
        ).all()
    joined = [(at, data["how"]) for kind, at, data in told if kind == "group_joined"]
    assert joined == [(T0 + timedelta(minutes=1), "扫描群二维码")], told
