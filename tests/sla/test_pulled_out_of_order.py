"""Staff messages as the archive brings them late or oddly: a welcome pulled after its member
was renamed, a question pulled after a reply of its own millisecond, the copy of a welcome
whose outcome is unknown."""

from __future__ import annotations

from sqlalchemy import select

from siyu.conversations.models import Message
from siyu.intake.tasks import _renamed
from siyu.notify.models import OutboxMessage


def _welcome_sent(w, text: str, at: float, userid: str = "zhangsan") -> None:
    payload = {"userid": userid, "external_userid": "wmcustomer1", "sent_text": text}
    with w.session() as s:
        s.add(
            OutboxMessage(
                kind="welcome",
                dedupe_key=f"welcome:{w.t0.timestamp()}:{at}",
                payload=payload,
                status="sent",
                sent_at=w.at(at),
            )
        )


def test_siyus_welcome_pulled_after_the_member_was_renamed_is_no_reply(local):
    """The customer asks at 1 s, Siyu's welcome goes out for 张三 at 2 s; 张三's userid is
    changed in WeCom before the archive is pulled. The welcome's copy (from the old userid) is
    no reply by hand: the question still waits."""
    w = local
    w.policy()
    text = "王女士您好，我是您的专属顾问"
    _welcome_sent(w, text, 2)
    with w.session() as s:
        _renamed(s, "zhangsan", "zhangsan2", w.at(100))
    question = w._message("wmcustomer1", "zhangsan", "你好，想了解一下你们的课程", 1, None)
    welcome = w._message("zhangsan", "wmcustomer1", text, 2, None)
    w.ingest(question, welcome)
    with w.session() as s:
        by_siyu = s.scalar(select(Message.by_siyu).where(Message.msgid == welcome["msgid"]))
    c = w.conversation("wmcustomer1", "zhangsan2")
    assert (c.awaiting_msgid, by_siyu) == (question["msgid"], True), (
        f"welcome copy taken for 张三's own reply (by_siyu={by_siyu}): the question's wait closed"
    )


def _same_time_scene(local, ext: str, sticker_after: bool):
    w = local
    w.reply("您好，请问想了解哪一门？", at=10, ext=ext)
    if sticker_after:
        w.reply("[微笑]", at=50, ext=ext)
    question = w.say("你好，想了解一下你们的课程", at=10, ext=ext)
    return w.conversation(ext).awaiting_msgid == question


def test_a_question_pulled_after_a_reply_of_its_own_msgtime_is_read_one_way(local):
    """A question pulled after a staff reply of the very same msgtime: waiting or answered, it
    should not depend on whether the agent sent a [微笑] afterwards."""
    alone = _same_time_scene(local, "wmcustomer1", sticker_after=False)
    with_sticker = _same_time_scene(local, "wmcustomer2", sticker_after=True)
    # stored in order, the reply of the question's own millisecond answers it: so here too
    assert (alone, with_sticker) == (False, False), (
        f"same question, same reply: waiting={alone} without a later staff message, "
        f"waiting={with_sticker} with one"
    )


def test_the_copy_of_a_welcome_whose_outcome_is_unknown_is_no_reply(local):
    """The welcome went to WeCom, no answer came, and past its 20 s it was given up (欢迎语发送
    结果未知): it may have reached the customer, and its archived copy is Siyu's, not 张三's reply
    closing the customer's question."""
    w = local
    w.policy()
    text = "王女士您好，我是您的专属顾问"
    with w.session() as s:
        s.add(
            OutboxMessage(
                kind="welcome",
                dedupe_key=f"welcome:{w.t0.timestamp()}:unknown",
                payload={
                    "userid": "zhangsan",
                    "external_userid": "wmcustomer1",
                    "welcome_code": "c",
                    "as_sent": {"text": text, "attachments": []},
                },
                status="dead",
                created_at=w.at(2),
            )
        )
    question = w._message("wmcustomer1", "zhangsan", "你好，想了解一下你们的课程", 1, None)
    copy = w._message("zhangsan", "wmcustomer1", text, 2, None)
    w.ingest(question, copy)
    assert w.conversation("wmcustomer1").awaiting_msgid == question["msgid"]


def test_a_recall_pulled_after_the_reply_that_followed_it_still_ends_the_wait_recalled(local):
    """在吗 at 0, recalled by the customer at 20, the agent writes at 30. In order the wait ends
    recalled at 20 and no response time is counted; with the recall stored after the reply (an
    import beside the pull) the wait is counted answered in 30 s."""
    w = local
    question = w.say("你好，想了解一下你们的课程", at=0)
    w.reply("您好，请问想了解哪一门？", at=30)
    w.recall(question, at=20)
    [wait] = w.waits()
    assert (wait.close_reason, wait.response_s) == ("recalled", None), (
        f"question recalled before the reply still counted as answered: {wait.close_reason} {wait.response_s}"
    )


def test_a_recall_pulled_after_the_reply_leaves_the_wait_answered_where_a_later_question_was(local):
    """The same, but 王女士 asked again at 10: the reply at 30 answered that one, and the wait
    stays answered (in order, it would have moved to the question at 10)."""
    w = local
    question = w.say("你好，想了解一下你们的课程", at=0)
    w.say("有周末班吗？", at=10)
    w.reply("您好，有的，周六上午", at=30)
    w.recall(question, at=20)
    [wait] = w.waits()
    assert wait.close_reason == "replied"
