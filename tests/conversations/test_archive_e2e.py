"""The conversation archive end to end: messages typed in WeCom (the emulator's archive),
WeCom's msgaudit_notify, Siyu pulling, RSA-decrypting and storing them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from siyu.conversations.models import ArchiveCursor, Conversation, Message
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
