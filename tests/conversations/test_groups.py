"""Group chats' names as WeCom tells them (siyu.conversations.groups): what is stored, and
what a lookup answered late cannot undo. The lookups themselves run over the emulator in
test_archive_e2e.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from siyu.conversations import groups
from siyu.conversations.models import Conversation, GroupChat
from tests.conversations.test_ingest import tenant_id  # noqa: F401 - fixture

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def chat(chat_id: str, name: str = "VIP客户群", **extra) -> dict:
    members = [{"userid": "lisi", "type": 1}, {"userid": "wmGuest1", "type": 2}]
    return {"chat_id": chat_id, "name": name, "owner": "lisi", "member_list": members, **extra}


def row(db, tenant_id: int, chat_id: str) -> GroupChat:  # noqa: F811
    with db.tenant_session(tenant_id) as s:
        return s.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id))


def test_a_dismissal_recorded_while_wecom_was_asked_stands(db, tenant_id):  # noqa: F811
    """The dismiss callback is handled between groupchat/get's answer and its being stored:
    the group stays dismissed (WeCom never brings one back), and is not asked about again."""
    with db.tenant_session(tenant_id) as s:
        s.add(Conversation(key="group:wrGone", kind="group", roomid="wrGone"))
        groups.record_dismissed(s, "wrGone", NOW)
    with db.tenant_session(tenant_id) as s:
        groups.record(s, chat("wrGone"), NOW + timedelta(seconds=1))  # the lookup's late answer
    gone = row(db, tenant_id, "wrGone")
    assert (gone.status, gone.name, gone.member_count, gone.customer_count) == (
        "dismissed",
        "VIP客户群",
        2,
        1,
    )
    with db.tenant_session(tenant_id) as s:
        assert groups.to_look_up(s, NOW + timedelta(days=1), 20) == []


def test_what_the_database_cannot_hold_is_cleaned_not_a_stuck_lookup(db, tenant_id):  # noqa: F811
    """PostgreSQL refuses NUL: a name with one failed its lookup on every pull, and the rooms
    after it were never named."""
    with db.tenant_session(tenant_id) as s:
        groups.record(s, chat("wrNul", name="群\x00名" + "长" * 300, owner="li\x00si"), NOW)
        groups.record_internal(
            s, "wrStaff", {"roomname": "内部\x00群", "creator": "wangwu", "members": []}, NOW
        )
        groups.record_unknown(s, "wrNobody", "errmsg with \x00 in it", NOW)
    named = row(db, tenant_id, "wrNul")
    assert named.name == "群名" + "长" * 254 and named.owner_userid == "lisi"
    assert row(db, tenant_id, "wrStaff").name == "内部群"
    assert row(db, tenant_id, "wrNobody").problem == "errmsg with  in it"


def test_unknown_rooms_are_asked_about_again_after_a_while(db, tenant_id):  # noqa: F811
    with db.tenant_session(tenant_id) as s:
        for room in ("wrNew", "wrUnknown", "wrNamed"):
            s.add(Conversation(key=f"group:{room}", kind="group", roomid=room))
        groups.record_unknown(s, "wrUnknown", "40050", NOW)
        groups.record(s, chat("wrNamed"), NOW)
    with db.tenant_session(tenant_id) as s:
        assert groups.to_look_up(s, NOW + timedelta(hours=1), 20) == ["wrNew"]
        later = NOW + groups.RECHECK_AFTER + timedelta(seconds=1)
        assert groups.to_look_up(s, later, 20) == ["wrNew", "wrUnknown"]
