"""The conversation archive end to end: messages typed in WeCom (the emulator's archive),
WeCom's msgaudit_notify, Siyu pulling, RSA-decrypting and storing them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from siyu.conversations import queries, tasks
from siyu.conversations.models import ArchiveCursor, Conversation, GroupChat, Message
from siyu.intake.models import CallbackEvent
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.events import event_xml
from tests.customers.test_acquisition import follow_of, make_channel
from tests.support.stack import wait_for


def test_a_question_in_wecom_becomes_a_waiting_conversation_and_a_reply_clears_it(stack):
    stack.enable_archive()
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "王女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))

    stack.chat(ext, "zhangsan", "你好，这款还有现货吗？")  # the notify wakes Siyu's pull

    def waiting():
        with stack.session() as s:
            return s.scalar(select(Conversation).where(Conversation.awaiting_since.is_not(None)))

    conversation = wait_for(waiting, timeout=15)
    assert conversation.external_userid == ext and conversation.staff_userid == "zhangsan"
    assert conversation.customer_id is not None

    stack.chat("zhangsan", ext, "有的，今天下单明天到")  # within the notify's 15 s: the timer finds it

    def answered():
        with stack.session() as s:
            return s.get(Conversation, conversation.id).awaiting_since is None

    wait_for(answered, timeout=15)
    with stack.session() as s:
        texts = s.scalars(select(Message.text).order_by(Message.sent_at)).all()
        cursor = s.scalar(select(ArchiveCursor))
    assert texts == ["你好，这款还有现货吗？", "有的，今天下单明天到"]
    assert cursor.seq >= 2 and cursor.last_error == ""


@pytest.fixture
def quiet_stack(settings, db):
    """The stack with the archive timer effectively off: only msgaudit_notify wakes a pull."""
    from tests.support.stack import stack as make_stack

    with make_stack(settings.model_copy(update={"archive_poll_s": 3600}), db) as running:
        yield running


def test_msgaudit_notify_arrives_at_the_archive_url_signed_with_its_pair_and_wakes_a_pull(quiet_stack):
    stack = quiet_stack
    pair = stack.enable_archive()  # WeCom's URL check of the archive URL passed (inside)
    assert pair["url"].endswith(f"/wecom/callback/{stack.slug}/archive")
    assert (pair["token"], pair["encoding_aes_key"]) != (stack.corp["token"], stack.corp["encoding_aes_key"])

    stack.chat("wmCustomer1", "zhangsan", "请问明天能发货吗？")

    def stored():
        with stack.session() as s:
            return s.scalars(select(Message.text)).all()

    assert wait_for(stored, timeout=10) == ["请问明天能发货吗？"]
    (notify,) = [
        d for d in stack.control("GET", stack.corp_path("/deliveries")) if d["kind"] == "msgaudit_notify"
    ]
    assert notify["url"] == pair["url"] and notify["status"] == "delivered"
    assert [a["status_code"] for a in notify["attempts"]] == [200]

    def events():
        with stack.session() as s:
            return [tuple(e) for e in s.execute(select(CallbackEvent.kind, CallbackEvent.status))]

    # The event is marked done once the pull has also indexed the batch for search, a
    # moment after the message is visible (on a slow machine, more than a moment).
    wait_for(lambda: all(status != "pending" for _, status in events()), timeout=10)
    assert events() == [("msgaudit_notify", "done")]


def test_a_notify_signed_with_the_main_pair_on_the_archive_url_stores_nothing(quiet_stack):
    stack = quiet_stack
    pair = stack.enable_archive()
    stack.chat("wmCustomer2", "zhangsan", "在吗")
    wait_for(
        lambda: [
            d
            for d in stack.control("GET", stack.corp_path("/deliveries"))
            if d["kind"] == "msgaudit_notify" and d["status"] == "delivered"
        ]
    )
    main = WeComCrypto(stack.corp["token"], stack.corp["encoding_aes_key"], stack.corp_id)
    body, params = main.encrypt_callback(
        event_xml(
            {
                "ToUserName": stack.corp_id,
                "FromUserName": "sys",
                "CreateTime": 1732500001,
                "MsgType": "event",
                "AgentID": 2000004,
                "Event": "msgaudit_notify",
            }
        )
    )
    with stack.session() as s:
        before = s.scalar(select(func.count()).select_from(CallbackEvent))
    assert httpx.post(pair["url"], params=params, content=body).status_code == 403
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(CallbackEvent)) == before


@dataclass
class Agent:
    """Who reads (siyu.customers.queries.Reader): a staff member who sees only their own."""

    tenant_id: int
    visible_staff: frozenset[str]
    timezone: str = "Asia/Shanghai"


def test_a_customer_group_is_named_and_shown_to_its_owner_as_wecom_tells_it(stack):
    """The archive gives a group chat's messages with its roomid only: Siyu asks WeCom
    (groupchat/get) for the name and owner when the group is created (change_external_chat)
    and when a pull stores a group it does not know, follows a rename and a dismissal, and
    shows the group to its owner before the owner has written in it. A group of staff only
    is not a customer group: WeCom does not know it, and its room id stays its title."""
    stack.enable_archive()
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "赵先生")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    made = stack.control(
        "POST",
        stack.corp_path("/group_chats"),
        json={"owner": "lisi", "name": "VIP客户群", "members": ["zhangsan", ext], "wait": True},
    )
    room = made["group_chat"]["chat_id"]
    stack.chat(ext, "", "群里问一下，团购价多少？", roomid=room)
    stack.chat("zhangsan", "", "稍等我问问", roomid=room)
    stack.chat("wangwu", "", "内部群：明天开会", roomid="wrStaffOnly0001")
    staff_only = stack.control(
        "POST",
        stack.corp_path("/group_chats"),
        json={"owner": "wangwu", "name": "销售内部群", "members": ["zhangsan"], "internal": True},
    )
    assert staff_only["delivery"] is None  # WeCom calls back about customer groups only
    internal_room = staff_only["group_chat"]["chat_id"]
    stack.chat("zhangsan", "", "报价单已更新", roomid=internal_room)

    def titles():
        with stack.session() as s:
            page = queries.list_conversations(s, Agent(stack.tenant_id, frozenset({"lisi"})), None)
            return {c["roomid"]: c for c in page.items}

    shown = wait_for(lambda: (t := titles()).get(room, {}).get("title") == "VIP客户群" and t, timeout=15)
    group = shown[room]["group"]
    assert (group["owner_userid"], group["member_count"], group["customer_count"]) == ("lisi", 3, 1)
    assert "wrStaffOnly0001" not in shown  # lisi neither owns it nor wrote in it

    def staff_group():
        with stack.session() as s:
            return s.scalar(select(GroupChat).where(GroupChat.chat_id == "wrStaffOnly0001"))

    unknown = wait_for(staff_group, timeout=15)
    assert unknown.status == "unknown" and "40050" not in unknown.problem and "客户群" in unknown.problem

    def everyone():
        with stack.session() as s:
            return {c["roomid"]: c for c in queries.list_conversations(s, Everyone(stack.tenant_id)).items}

    assert everyone()["wrStaffOnly0001"]["title"] == "群聊 wrStaffOnly0001"  # WeCom knows nothing of it
    # a group of staff only, told by the archive's msgaudit/groupchat/get
    internal = wait_for(lambda: (c := everyone().get(internal_room)) and c["group"] and c, timeout=15)
    told = internal["group"]
    assert internal["title"] == "销售内部群"
    assert (told["status"], told["owner_userid"], told["member_count"]) == ("internal", "wangwu", 2)

    stack.control(
        "PATCH", stack.corp_path(f"/group_chats/{room}"), json={"name": "VIP客户群（二期）", "wait": True}
    )
    wait_for(lambda: titles()[room]["title"] == "VIP客户群（二期）", timeout=15)
    stack.control("DELETE", stack.corp_path(f"/group_chats/{room}"), params={"wait": "true"})
    wait_for(lambda: titles()[room]["group"]["status"] == "dismissed", timeout=15)
    assert titles()[room]["title"] == "VIP客户群（二期）"  # a dismissed group keeps its last name

    def done() -> set[str]:  # (an event is marked done a moment after its changes are stored)
        with stack.session() as s:
            return {k for (k,) in s.execute(select(CallbackEvent.kind).where(CallbackEvent.status == "done"))}

    wanted = {"change_external_chat/create", "change_external_chat/update", "change_external_chat/dismiss"}
    wait_for(lambda: wanted <= done())


@dataclass
class Everyone:
    tenant_id: int
    visible_staff: None = None
    timezone: str = "Asia/Shanghai"


def test_a_group_dismissed_before_siyu_looked_it_up_leaves_no_event_retrying(stack):
    """WeCom forgets a dismissed group at once: the create event's lookup then answers 40050.
    That is not a lag to wait out once the group is known to be dismissed; an unnamed group
    is titled by its owner, and a member listed twice is counted once."""
    stack.enable_archive()
    made = stack.control(
        "POST", stack.corp_path("/group_chats"), json={"owner": "lisi", "members": ["zhangsan", "zhangsan"]}
    )
    room = made["group_chat"]["chat_id"]
    stack.chat("zhangsan", "", "大家好", roomid=room)

    def group():
        with stack.session() as s:
            return s.scalar(select(GroupChat).where(GroupChat.chat_id == room))

    named = wait_for(group, timeout=15)
    assert (named.status, named.member_count) == ("active", 2)

    def listed():
        with stack.session() as s:
            return queries.list_conversations(s, Everyone(stack.tenant_id)).items

    (shown,) = wait_for(listed, timeout=15)
    assert shown["title"] == "lisi的群聊"  # no name: whose group it is (lisi has no Siyu profile here)

    later = stack.control("POST", stack.corp_path("/group_chats"), json={"owner": "wangwu", "name": "快闪群"})
    stack.control("DELETE", stack.corp_path(f"/group_chats/{later['group_chat']['chat_id']}"))

    def settled():
        with stack.session() as s:
            rows = s.execute(
                select(CallbackEvent.kind, CallbackEvent.status).where(
                    CallbackEvent.kind.like("change_external_chat/%")
                )
            ).all()
        return len(rows) == 3 and all(status == "done" for _, status in rows) and rows

    assert wait_for(settled, timeout=20)


def test_a_rate_limited_group_lookup_leaves_the_group_to_the_next_pull_at_once(quiet_stack):
    """WeCom answers 45009 to groupchat/get: the lookup after the timer's pull is left to the
    next pull at once. It had waited the limit out, asking three times more over seconds (a
    minute and more once the limit persisted), while every tenant's next pull, and the
    escalations waiting for it, waited for this round of the timer to end."""
    stack = quiet_stack
    stack.enable_archive()
    stack.control("PATCH", stack.corp_path(""), json={"archive_callback_url": ""})  # the timer pulls
    path = "/cgi-bin/externalcontact/groupchat/get"
    stack.control("POST", "/faults", json={"path": path, "errcode": 45009, "times": 10})
    stack.chat("zhangsan", "", "大家好，新品到了", roomid="wrLimited000001")

    asyncio.run(tasks.pull_all(stack.rt))

    (fault,) = [f for f in stack.control("GET", "/faults") if f["path"] == path]
    assert fault["times"] == 9  # asked once
    with stack.session() as s:
        assert s.scalars(select(Message.text)).all() == ["大家好，新品到了"]
        assert s.scalar(select(GroupChat)) is None  # nothing recorded: the next pull asks again
