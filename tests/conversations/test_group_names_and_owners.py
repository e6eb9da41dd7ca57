"""Group chats: how a customer whose name shows nothing is named, and whose the entries of a
group first known by its events are once its owner is."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from siyu.conversations import groups
from siyu.customers.models import Customer, Follow
from siyu.runtime import Runtime
from siyu.tenancy.models import Staff
from tests.conversations.test_group_waits_members import T0, Room, chat, conv_id, ingest
from tests.support.signed_in import SignedIn


@pytest.fixture
def tenant(db, fresh_tenant) -> int:
    with db.tenant_session(fresh_tenant) as s:
        s.add(Staff(userid="lisi", name="李四"))
        s.add(Staff(userid="zhangsan", name="张三"))
        s.add(Staff(userid="wangwu", name="王五"))
    return fresh_tenant


@pytest.fixture
def rt(settings, db):
    return Runtime.create(settings, db)


def _customer(db, tenant, name: str, staff: str = "lisi") -> tuple[int, str]:
    ext = "wm" + secrets.token_hex(10)
    with db.tenant_session(tenant) as s:
        c = Customer(external_userid=ext, name=name)
        s.add(c)
        s.flush()
        s.add(Follow(customer_id=c.id, staff_userid=staff))
        return c.id, ext


def _members(*exts, owner="lisi", staff=("zhangsan",)):
    t = int(T0.timestamp())
    out = [{"userid": owner, "type": 1, "join_time": t}]
    out += [{"userid": u, "type": 1, "join_time": t} for u in staff]
    out += [{"userid": e, "type": 2, "join_time": t, "join_scene": 1} for e in exts]
    return out


def test_a_blank_nicknamed_customer_asking_in_a_group_is_named_unnamed(db, tenant, rt):
    """A customer whose nickname shows nothing (WeChat's blank ⠀) reads （未命名） in a group chat
    too: their messages and the list's group wait had named them by what groupchat/get told,
    the blank itself."""
    cid, ext = _customer(db, tenant, "")  # stored tidied: ""
    room = Room()
    members = _members(ext)
    members[-1]["name"] = "\u2800"
    with db.tenant_session(tenant) as s:
        groups.record(s, chat(room, members, name="新品群"), T0)
    ingest(db, tenant, [room.say(ext, "请问团购价什么时候开始？", 1)])
    admin = SignedIn(rt, tenant, "admin")
    conv = conv_id(db, tenant, room.roomid)
    listed = admin("GET", "/api/v1/conversations", params={"group_waiting": "true"}).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    [row] = [c for c in items if c["id"] == conv]
    msgs = admin("GET", f"/api/v1/conversations/{conv}/messages").json()
    msgs = msgs["items"] if isinstance(msgs, dict) else msgs
    names = {m["sender_name"] for m in msgs if m["sender"] == ext}
    assert (row["group_wait"]["sender_name"], names) == ("（未命名）", {"（未命名）"})


def _viewer(tenant, visible=None):
    from types import SimpleNamespace

    return SimpleNamespace(tenant_id=tenant, visible_staff=visible, timezone="Asia/Shanghai")


def test_entries_of_a_group_first_known_by_its_events_follow_its_owner_once_known(db, tenant):
    """groupchat/get refused at first (the event alone tells the join: no owner known), then
    answered (the owner is lisi). An agent sees the groups, and their entries, owned by the
    members they see: zhangsan, who follows the customer too, sees neither lisi's group on the
    customer's page nor its join on the timeline (filed under nobody, it had shown to all)."""
    from siyu.customers import queries as cq

    cid, ext = _customer(db, tenant, "钱女士", staff="zhangsan")
    room = Room()
    at = T0 + timedelta(minutes=1)
    change = {"UpdateDetail": "add_member", "JoinScene": "0", "MemChangeList": ext,
              "CreateTime": str(int(at.timestamp()))}  # fmt: skip
    with db.tenant_session(tenant) as s:
        groups.record_event_only(s, room.roomid, change, "60011 no privilege", at)
    with db.tenant_session(tenant) as s:  # WeCom answers at the next change: lisi's group
        groups.record(s, chat(room, _members(ext, staff=()), name="李四VIP群"), T0 + timedelta(hours=1))
    with db.tenant_session(tenant) as s:
        agent = _viewer(tenant, {"zhangsan"})
        listed = [g["name"] for g in cq.customer_groups(s, agent, cid)]
        seen = [e["text"] for e in cq.timeline(s, agent, cid) if e["kind"].startswith("group_")]
    assert listed == []
    assert seen == [], seen


def test_a_blank_nicknamed_customer_in_a_one_to_one_chat_is_not_an_unknown_contact(db, tenant, rt):
    """In a 1:1 chat the messages of a customer Siyu knows whose name shows nothing read
    （未命名）, not 未知联系人…XXXX."""
    from tests.conversations.test_group_waits_members import Item

    cid, ext = _customer(db, tenant, "", staff="zhangsan")
    body = {"msgid": "s1-" + secrets.token_hex(4), "action": "send", "from": ext, "tolist": ["zhangsan"],
            "roomid": "", "msgtime": int(T0.timestamp() * 1000), "msgtype": "text",
            "text": {"content": "请问还有货吗"}}  # fmt: skip
    ingest(db, tenant, [Item(1, body["msgid"], body)])
    admin = SignedIn(rt, tenant, "admin")
    from siyu.conversations.models import Conversation

    with db.tenant_session(tenant) as s:
        conv = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    msgs = admin("GET", f"/api/v1/conversations/{conv}/messages").json()
    msgs = msgs["items"] if isinstance(msgs, dict) else msgs
    assert [m["sender_name"] for m in msgs] == ["（未命名）"]
