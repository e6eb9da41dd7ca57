"""The conversation archive end to end: messages typed in WeCom (the emulator's archive),
WeCom's msgaudit_notify, Siyu pulling, RSA-decrypting and storing them."""

from __future__ import annotations

from sqlalchemy import select

from siyu.conversations.models import ArchiveCursor, Conversation, Message
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
