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


def test_a_staff_group_written_in_is_asked_about_again_for_its_name(db, tenant_id):  # noqa: F811
    """WeCom calls back about no change of a group of staff only: its new name (销售内部群 →
    销售一部群) had never been learnt. One written in since it was asked about is asked again."""
    room = {"roomname": "销售内部群", "creator": "lisi", "members": [{"memid": "lisi"}]}
    with db.tenant_session(tenant_id) as s:
        for name, last in (("wrTalking", NOW + timedelta(hours=2)), ("wrQuiet", NOW - timedelta(hours=1))):
            s.add(Conversation(key=f"group:{name}", kind="group", roomid=name, last_message_at=last))
            groups.record_internal(s, name, room, NOW)
    with db.tenant_session(tenant_id) as s:
        assert groups.to_look_up(s, NOW + timedelta(hours=3), 20) == []
        later = NOW + groups.RECHECK_AFTER + timedelta(seconds=1)
        assert groups.to_look_up(s, later, 20) == ["wrTalking"]
        groups.record_unknown(s, "wrTalking", "refused", later)  # asked again, refused: still known
    assert (row(db, tenant_id, "wrTalking").status, row(db, tenant_id, "wrTalking").name) == (
        "internal",
        "销售内部群",
    )


def test_an_unanswered_question_in_a_customer_group_is_shown_never_escalated(stack):
    """A customer asks in the group: the list shows the group waiting since that message,
    to its owner (not to another agent), with no SLA wait opened; any staff member's reply
    answers it; a closing remark owes nothing; the only question recalled clears it."""
    from siyu.conversations import queries
    from siyu.sla.models import SlaWait
    from tests.conversations.test_archive_e2e import Agent
    from tests.customers.test_acquisition import follow_of, make_channel
    from tests.customers.test_tag_sync import signed_in
    from tests.support.stack import wait_for

    stack.enable_archive()
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "赵先生")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    made = stack.control(
        "POST",
        stack.corp_path("/group_chats"),
        json={"owner": "lisi", "name": "团购群", "members": ["zhangsan", ext], "wait": True},
    )
    room = made["group_chat"]["chat_id"]

    def group(viewer=None, **filters) -> dict | None:
        viewer = viewer or Agent(stack.tenant_id, frozenset({"lisi"}))
        with stack.session() as s:
            f = queries.ConversationFilter(**filters)
            return next(
                (c for c in queries.list_conversations(s, viewer, f).items if c["roomid"] == room), None
            )

    asked = stack.chat(ext, "", "团购价什么时候开始？", roomid=room)
    shown = wait_for(lambda: (g := group()) and g["group_wait"] and g, timeout=15)
    wait = shown["group_wait"]
    assert (wait["text"], wait["msgid"], wait["sender_name"]) == (
        "团购价什么时候开始？",
        asked["msgid"],
        "赵先生",
    )
    assert wait["since"] is not None and wait["waiting_text"]
    assert not shown["waiting"]  # not a 1:1 wait: nothing escalates
    assert group(group_waiting=True) is not None
    assert group(Agent(stack.tenant_id, frozenset({"zhaoliu"}))) is None  # neither owns it nor wrote in it
    with stack.session() as s:
        assert s.scalar(select(SlaWait)) is None

    stack.chat("zhangsan", "", "明天上午十点开始", roomid=room)  # not the owner: any member answers
    wait_for(lambda: (g := group()) and g["message_count"] == 2 and g["group_wait"] is None, timeout=15)
    assert group(group_waiting=True) is None

    stack.chat(ext, "", "好的谢谢", roomid=room)
    wait_for(lambda: group()["message_count"] == 3, timeout=15)
    assert group()["group_wait"] is None
    # a group robot's post (WeCom names robots wb…) is nobody asking: it had read as owed a reply
    stack.chat(
        "wbjc7bDwAAJVylUKpSA3Z5U11tDO4AAA", "", "今日团购报表已生成，请查看 https://e.example/r", roomid=room
    )
    wait_for(lambda: group()["message_count"] == 4, timeout=15)
    assert group()["group_wait"] is None and group(group_waiting=True) is None
    page = signed_in(stack).get(f"/conversations/{group()['id']}").text
    assert "群机器人" in page and "未知联系人" not in page  # (had read as an unknown customer)

    again = stack.chat(ext, "", "能开发票吗？", roomid=room)
    wait_for(lambda: group()["group_wait"], timeout=15)
    recall = {"action": "recall", "msgtype": "revoke", "revoke": {"pre_msgid": again["msgid"]}}
    stack.control("POST", stack.corp_path("/archive/messages"), json=recall)
    wait_for(lambda: group()["group_wait"] is None, timeout=15)
    assert group(group_waiting=True) is None
    with stack.session() as s:
        assert s.scalar(select(SlaWait)) is None

    # asked, then removed from the group: nobody can answer them there any more
    stack.chat(ext, "", "有优惠券吗？", roomid=room)
    wait_for(lambda: group()["group_wait"], timeout=15)
    gone = {"members": [ext], "removed": True, "wait": True}
    stack.control("POST", stack.corp_path(f"/group_chats/{room}/leave"), json=gone)
    assert wait_for(lambda: group()["group_wait"] is None, timeout=15)
    assert group(group_waiting=True) is None
