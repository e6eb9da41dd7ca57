"""The escalation engine on a real database: when steps come due, what stops them, and
that several workers fire each step exactly once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from siyu.conversations import service as conversations
from siyu.conversations.models import EarlyRecall, Message
from siyu.insights.needs_reply import default_classifier
from siyu.sla import firing, queries, service, tasks
from siyu.sla.models import SlaCall, SlaEscalation, SlaWait
from tests.sla.conftest import Wait, items, local_tenant
from tests.sla.test_firing import claimed
from tests.support.stack import forget_pending


def test_an_unanswered_question_escalates_to_agent_then_leader_then_a_call(local):
    w = local
    w.policy()
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    assert w.steps() == [(0, "pending", "")]  # one pending step at a time

    w.clock(119)
    assert w.fire() == 0
    w.clock(120)
    assert w.fire() == 1
    assert w.steps() == [(0, "fired", "zhangsan"), (1, "pending", "")]
    [notice] = w.outbox()
    assert notice.payload == {"touser": "zhangsan", "escalations": [notice.payload["escalations"][0]]}
    assert notice.dedupe_key.startswith("sla-notice:zhangsan:")

    w.clock(300)
    assert w.fire() == 1
    assert w.steps()[1] == (1, "fired", "lisi")  # zhangsan's direct leader

    w.clock(600)
    assert w.fire() == 1
    assert w.steps()[2] == (2, "fired", "zhangsan")
    [call] = w.outbox("sla_call")
    assert call.payload["callee"] == "zhangsan"
    assert w.fire() == 0  # each step once


def test_a_reply_at_minute_three_stops_the_leader_push(local):
    w = local
    w.policy()
    w.say("在吗？我想退货", at=0)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    w.reply("您好，可以的，我帮您处理", at=180)
    w.clock(1200)
    assert w.fire() == 0
    assert w.steps() == [(0, "fired", "zhangsan"), (1, "cancelled", "")]
    [wait] = w.waits()
    assert wait.close_reason == "replied" and wait.response_s == 180 and wait.breached_step == 0


def test_a_closing_remark_after_an_answer_never_escalates(local):
    w = local
    w.say("请问几点关门？", at=0)
    w.reply("晚上九点关门", at=30)
    w.say("好的谢谢", at=60)
    w.pulled(7200)
    w.clock(7200)
    assert w.fire() == 0
    assert [s for s in w.steps() if s[1] != "cancelled"] == []
    assert len(w.waits()) == 1  # only the question was a wait


def test_a_new_customer_message_does_not_restart_the_clock(local):
    w = local
    w.policy()
    w.say("你好", at=0)
    w.say("请问有货吗？", at=100)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1  # due 2 min after the first message, not the second


def test_a_step_waits_until_the_archive_is_pulled_past_its_due_time(local):
    w = local
    w.say("能便宜点吗？", at=0)
    w.clock(200)
    assert w.fire() == 0  # no cursor yet: nothing is known about replies
    w.pulled(119)
    assert w.fire() == 0
    w.pulled(120)
    assert w.fire() == 1


def test_a_reply_found_late_in_the_archive_still_stops_the_step(local):
    w = local
    w.say("能便宜点吗？", at=0)
    w.pulled(60)
    w.clock(400)  # the archive lags: minutes pass with nothing pulled past minute 1
    assert w.fire() == 0
    w.reply("可以给您九五折", at=90)  # arrives with the next pull
    w.pulled(400)
    assert w.fire() == 0
    assert {s[1] for s in w.steps()} == {"cancelled"}


def test_a_recalled_message_stops_its_escalation(local):
    w = local
    msgid = w.say("我要投诉", at=0)
    w.recall(msgid, at=30)
    w.pulled(3600)
    w.clock(3600)
    assert w.fire() == 0
    assert {s[1] for s in w.steps()} == {"cancelled"}
    assert w.waits()[0].close_reason == "recalled"


def test_recalling_one_of_two_waiting_messages_keeps_the_later_one_waiting(local):
    w = local
    first = w.say("发错了", at=0)
    w.say("请问发货了吗？", at=60)
    w.recall(first, at=90)
    w.pulled(3600)
    w.clock(170)
    assert w.fire() == 0  # the clock now runs from minute 1
    w.clock(180)
    assert w.fire() == 1
    # one wait, the customer's: begun with the question they kept
    assert [(x.started_at, x.close_reason) for x in w.waits()] == [(w.at(60), "")]


def test_a_conversation_pulled_in_one_batch_ends_as_if_pulled_message_by_message(local):
    w = local
    w.policy()
    question = w._message("wmcustomer1", "zhangsan", "你好，这个套餐多少钱？", 0, None)
    answer = w._message("zhangsan", "wmcustomer1", "199 元一个月", 180, None)
    again = w._message("wmcustomer1", "zhangsan", "能开发票吗？", 300, None)
    w.ingest(again, answer, question)  # one archive batch, in any order
    waits = w.waits()
    assert [(x.msgid, x.close_reason, x.response_s) for x in waits] == [
        (question["msgid"], "replied", 180.0),
        (again["msgid"], "", None),
    ]
    assert w.steps() == [(0, "pending", "")]  # the answered one never had a step due
    assert w.conversation().awaiting_msgid == again["msgid"]
    w.pulled(3600)
    w.clock(419)
    assert w.fire() == 0
    w.clock(420)
    assert w.fire() == 1  # 2 minutes after the second question


def test_a_recall_in_the_same_batch_moves_the_wait_to_the_next_question(local):
    w = local
    first = w._message("wmcustomer1", "zhangsan", "发错了", 0, None)
    second = w._message("wmcustomer1", "zhangsan", "请问发货了吗？", 60, None)
    recall = {**w._message("wmcustomer1", "zhangsan", "", 90, None), "action": "recall", "msgtype": "revoke"}
    recall["revoke"] = {"pre_msgid": first["msgid"]}
    w.ingest(first, second, recall)
    assert [(x.msgid, x.started_at, x.close_reason) for x in w.waits()] == [(second["msgid"], w.at(60), "")]
    assert w.conversation().awaiting_since == w.at(60)


def _recall(w, msgid: str, at: float, by: str = "wmcustomer1") -> dict:
    other = "zhangsan" if by.startswith("wm") else "wmcustomer1"
    message = {**w._message(by, other, "", at, "r" + msgid), "action": "recall", "msgtype": "revoke"}
    message["revoke"] = {"pre_msgid": msgid}
    message.pop("text")
    return message


def test_a_recall_moves_the_wait_to_a_question_whose_own_wait_was_folded_into_it(local):
    """The agent's answer recalled while a second question waited folded that wait into the
    first's; the customer then recalls the first: the second waits from its own time, on the
    row that is its own (one wait a message), once."""
    w = local
    first = w.say("在吗", at=0)
    answer = w.reply("在", at=5)
    second = w.say("这款有货吗", at=10)
    w.ingest(_recall(w, answer, 20, by="zhangsan"))
    w.recall(first, at=30)
    waits = [(x.msgid, x.started_at, x.close_reason) for x in w.waits() if not x.close_reason]
    assert waits == [(second, w.at(10), "")]
    assert w.conversation().awaiting_msgid == second


def test_a_recall_in_a_batch_does_not_see_recalls_that_come_later_in_it(local):
    w = local
    first = w.say("请问这个多少钱？", at=0)
    second = w._message("wmcustomer1", "zhangsan", "什么时候发货？", 10, None)
    w.ingest(second, _recall(w, first, 20), _recall(w, second["msgid"], 100))
    assert [(x.msgid, x.started_at, x.closed_at, x.close_reason) for x in w.waits()] == [
        (second["msgid"], w.at(10), w.at(100), "recalled"),  # waited from 10 s until its own recall
    ]
    assert w.conversation().awaiting_since is None


def test_a_recall_alone_in_its_batch_moves_the_wait_of_its_conversation(local):
    w = local
    first = w.say("请问这个多少钱？", at=0)
    second = w.say("什么时候发货？", at=10)
    recall = _recall(w, first, 20)
    recall["tolist"] = []  # no conversation key of its own
    w.ingest(recall)
    assert (w.conversation().awaiting_msgid, w.conversation().awaiting_since) == (second, w.at(10))
    assert [(x.msgid, x.started_at, x.close_reason) for x in w.waits()] == [(second, w.at(10), "")]
    assert [s[1] for s in w.steps()] == ["pending"]


def test_a_wait_answered_by_a_reply_that_is_recalled_waits_again_and_escalates(local):
    w = local
    w.policy()
    question = w._message("wmcustomer1", "zhangsan", "请问这个多少钱？", 0, None)
    answer = w._message("zhangsan", "wmcustomer1", "100元", 10, None)
    then = w._message("wmcustomer1", "zhangsan", "好的，什么时候发货？", 20, None)
    w.say("在吗", at=-600)  # an earlier, answered exchange does not matter
    w.reply("在的", at=-590)
    w.ingest(question, answer, then)
    w.ingest(_recall(w, answer["msgid"], 30, by="zhangsan"), _recall(w, then["msgid"], 40))
    c = w.conversation()
    assert (c.awaiting_msgid, c.awaiting_since) == (question["msgid"], w.at(0))
    [reopened] = [x for x in w.waits() if x.msgid == question["msgid"]]
    assert reopened.closed_at is None and reopened.response_s is None
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1  # 2 minutes after the question, as if the recalled answer never was


def test_a_reply_recalled_alone_leaves_the_question_waiting_from_its_own_time(local):
    w = local
    w.policy()
    question = w.say("请问这个多少钱？", at=0)
    answer = w._message("zhangsan", "wmcustomer1", "100元", 10, None)
    w.ingest(answer)
    assert w.conversation().awaiting_msgid == ""
    w.ingest(_recall(w, answer["msgid"], 30, by="zhangsan"))  # the customer has no answer now
    c = w.conversation()
    assert (c.awaiting_msgid, c.awaiting_since) == (question, w.at(0))
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1  # the agent is pushed 2 minutes after the question


def test_a_recall_stored_a_batch_before_its_original_leaves_nothing_waiting(local):
    """An import listing a recall ahead of the message it takes back (or two files imported
    newest first): the question is stored recalled and never escalates."""
    w = local
    w.policy()
    question = w._message("wmcustomer1", "zhangsan", "我要投诉", 0, None)
    w.ingest(_recall(w, question["msgid"], 30))  # e.g. two import files, the later one first
    w.ingest(question)
    assert w.conversation().awaiting_since is None
    w.pulled(3600)
    w.clock(3600)
    assert w.fire() == 0
    with w.session() as s:
        assert s.scalar(select(Message.recalled).where(Message.msgid == question["msgid"])) is True
        assert s.scalar(select(func.count()).select_from(EarlyRecall)) == 0  # nothing left to match


def test_a_reply_recalled_before_it_is_stored_answers_nothing(local):
    w = local
    w.policy()
    question = w.say("请问这个多少钱？", at=0)
    answer = w._message("zhangsan", "wmcustomer1", "100元", 10, None)
    w.ingest(_recall(w, answer["msgid"], 30, by="zhangsan"))
    w.ingest(answer)
    assert (w.conversation().awaiting_msgid, w.conversation().awaiting_since) == (question, w.at(0))
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1  # the agent is pushed: the customer never kept an answer


def test_a_question_marked_no_reply_needed_never_comes_back(local):
    w = local
    w.policy()
    w.say("请问这个多少钱？", at=0)
    w.pulled(7200)
    w.clock(150)
    assert w.fire() == 1
    with w.session() as s:  # the agent: no reply needed
        assert conversations.dismiss(s, w.conversation().id, w.at(200), by="张三")
    later = w.say("那什么时候发货？", at=300)
    assert w.conversation().awaiting_msgid == later
    w.recall(later, at=320)  # the customer takes the new question back
    assert w.conversation().awaiting_since is None  # the first stays settled
    # nor when the agent's reply after it is recalled
    reply = w.reply("明天发", at=400)
    w.ingest(_recall(w, reply, 410, by="zhangsan"))
    assert w.conversation().awaiting_since is None
    w.clock(3600)
    assert w.fire() == 0  # no leader card, no call about a question marked 无需回复
    assert [(x.close_reason, x.closed_by) for x in w.waits()] == [("dismissed", "张三"), ("recalled", "")]


def test_a_question_from_before_no_reply_needed_pulled_late_does_not_wait(local):
    w = local
    w.say("请问这个多少钱？", at=0)
    with w.session() as s:
        assert conversations.dismiss(s, w.conversation().id, w.at(60), by="张三")
    w.say("还有优惠吗？", at=50)  # sent before the agent's click, pulled after it
    assert w.conversation().awaiting_since is None
    w.say("那我下单了，今天能发吗？", at=90)  # after it: a new wait
    assert w.conversation().awaiting_since == w.at(90)


def test_a_recall_moves_the_wait_by_the_replies_before_it_not_after_it(local):
    """Stored in one batch as when pulled message by message: the recall at 15 s moves the wait
    to the question of 10 s, which the reply at 20 s then answers (first response 10 s)."""
    w = local
    first = w.say("请问这个多少钱？", at=0)
    second = w.say("什么时候发货？", at=10)
    answer = w._message("zhangsan", "wmcustomer1", "明天发货", 20, None)
    w.ingest(_recall(w, first, 15), answer)
    assert [(x.msgid, x.close_reason, x.response_s) for x in w.waits()] == [(second, "replied", 10.0)]


def test_an_older_question_pulled_late_starts_the_clock_earlier_without_firing_a_step_twice(local):
    w = local
    w.policy()
    first = w._message("wmcustomer1", "zhangsan", "请问有货吗？", 0, None)
    w.say("什么时候发货？", at=100)  # pulled first (a re-pull, an import, clocks apart)
    w.pulled(7200)
    w.clock(225)
    assert w.fire() == 1  # the agent is pushed 2 minutes after the question seen so far
    w.ingest(first)
    c = w.conversation()
    assert (c.awaiting_msgid, c.awaiting_since) == (first["msgid"], w.at(0))
    [wait] = w.waits()
    assert (wait.msgid, wait.started_at, wait.closed_at) == (first["msgid"], w.at(0), None)  # the same wait
    with w.session() as s:
        due = s.scalar(select(SlaEscalation.due_at).where(SlaEscalation.status == "pending"))
    assert due == w.at(300)  # the leader 5 minutes after the first question, not after the second
    w.clock(300)
    assert w.fire() == 1 and [st[:2] for st in w.steps()] == [(0, "fired"), (1, "fired"), (2, "pending")]
    # in one batch too
    third = w._message("wmcustomer2", "zhangsan", "在吗？", 1000, None)
    earlier = w._message("wmcustomer2", "zhangsan", "这款有优惠吗？", 990, None)
    w.ingest(third, earlier)
    assert [(x.msgid, x.started_at) for x in w.waits("wmcustomer2")] == [(earlier["msgid"], w.at(990))]


def test_a_question_pulled_after_siyus_welcome_waits_and_escalates(local):
    """Pulled in order, the welcome Siyu sent for the agent is no reply. Pulled after the
    welcome's copy (a re-pull, an import, the archive out of order), the question was taken for
    answered by it: no wait, no card, nobody told."""
    from siyu.notify.models import OutboxMessage

    w = local
    w.policy()
    welcome = "王女士您好，我是您的专属顾问"
    with w.session() as s:
        payload = {"userid": "zhangsan", "external_userid": "wmcustomer1", "sent_text": welcome}
        key = f"welcome:{w.t0.timestamp()}"
        s.add(OutboxMessage(kind="welcome", dedupe_key=key, payload=payload, status="sent", sent_at=w.at(1)))
    w.ingest(w._message("zhangsan", "wmcustomer1", welcome, 1, None))
    question = w.say("你好，想了解一下你们的课程", at=0)
    assert w.conversation().awaiting_msgid == question
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1 and [n.payload["touser"] for n in w.outbox()] == ["zhangsan"]


def test_a_question_pulled_after_a_reply_the_agent_recalled_waits_and_escalates(local):
    """Pulled in order (question, reply, the reply recalled), the question waits again from its
    own time. Pulled after the reply and its recall, it was taken for answered by a reply
    nobody can see any more."""
    w = local
    w.policy()
    answer = w._message("zhangsan", "wmcustomer1", "在的", 5, None)
    recall = {**w._message("zhangsan", "wmcustomer1", "", 6, None), "action": "recall", "msgtype": "revoke"}
    recall.pop("text")
    recall["revoke"] = {"pre_msgid": answer["msgid"]}
    question = w._message("wmcustomer1", "zhangsan", "这款有货吗？", 3, None)
    w.ingest(answer)
    w.ingest(recall)
    w.ingest(question)  # (in one batch, the three are applied in time order)
    assert w.conversation().awaiting_msgid == question["msgid"]
    w.pulled(3600)
    w.clock(123)
    assert w.fire() == 1


# ---- the same messages pulled out of order (a re-pull, an import newest first) end as in order


def _waiting(w) -> tuple[str, object]:
    c = w.conversation()
    return c.awaiting_msgid, c.awaiting_since


def _welcome_sent(w, text: str, at: float, key: str) -> None:
    from siyu.notify.models import OutboxMessage

    payload = {"userid": "zhangsan", "external_userid": "wmcustomer1", "sent_text": text}
    with w.session() as s:
        dedupe = f"welcome:{key}:{w.t0.timestamp()}"
        sent = {"status": "sent", "sent_at": w.at(at)}
        s.add(OutboxMessage(kind="welcome", dedupe_key=dedupe, payload=payload, **sent))


def _recall_of(w, msgid: str, at: float, by: str = "zhangsan") -> dict:
    other = "wmcustomer1" if by == "zhangsan" else "zhangsan"
    message = {**w._message(by, other, "", at, "r" + msgid), "action": "recall", "msgtype": "revoke"}
    message.pop("text")
    message["revoke"] = {"pre_msgid": msgid}
    return message


def test_a_reply_pulled_after_a_later_question_leaves_that_question_waiting(local):
    """In order: question at 0, reply at 10, a new question at 20, which waits. The reply pulled
    after both questions closed the whole wait: the new question was never escalated."""
    w = local
    w.policy()
    w.say("请问这个多少钱？", at=0)
    second = w.say("那什么时候发货？", at=20)
    w.ingest(w._message("zhangsan", "wmcustomer1", "100元", 10, None))
    assert _waiting(w) == (second, w.at(20))
    w.pulled(3600)
    w.clock(140)
    assert w.fire() == 1


def test_a_decline_pulled_after_the_customer_agreed_again_and_asked_leaves_that_question_waiting(local):
    """In order: a question at 0, archiving declined at 10 (the wait closes), agreed again at 50
    and a question at 60, which waits. The decline pulled last closed that question's wait too."""

    def consent(kind: str, at: float) -> dict:
        event = w._message("wmcustomer1", "zhangsan", "", at, None)
        event.pop("text")
        event.update({"msgtype": kind, kind: {"userid": "wmcustomer1", f"{kind}_time": 1}})
        return event

    w = local
    w.say("退款什么时候到账", at=0)
    w.ingest(consent("agree", 50))
    later = w.say("那我重新下单可以吗？", at=60)
    w.ingest(consent("disagree", 10))
    assert _waiting(w) == (later, w.at(60))


def test_a_reply_pulled_after_a_later_decline_still_answered_the_question(local):
    """In order: a question at 0, the agent's answer at 60, the customer declines archiving at
    200: answered in a minute. Pulled with the answer last (a re-pull, an import of the older
    file after the newer one), the decline had closed the wait as 客户未同意会话存档 at 200, the
    answer counted for nothing, and the board counted a first step it never ran past."""

    def consent(kind: str, at: float) -> dict:
        event = w._message("wmcustomer1", "zhangsan", "", at, None)
        event.pop("text")
        event.update({"msgtype": kind, kind: {"userid": "wmcustomer1", f"{kind}_time": 1}})
        return event

    w = local
    w.policy()
    w.ingest(w._message("wmcustomer1", "zhangsan", "退款什么时候到账？", 0, None), consent("disagree", 200))
    w.ingest(w._message("zhangsan", "wmcustomer1", "今天就到账了", 60, None))
    assert [(x.close_reason, x.closed_at, x.response_s) for x in w.waits()] == [("replied", w.at(60), 60.0)]


def test_a_reply_pulled_after_the_customer_deleted_the_agent_still_answered_the_question(local):
    """The agent answers at 30 and the customer deletes them at 40: WeCom's callback comes at
    once, the archive lags, so the answer is pulled after the follow ended. The wait had ended
    as 客户删除了成员 with no response time, a question never answered on the agent's figures."""
    w = local
    w.policy()
    w.say("发票开好了吗？", at=0)
    with w.session() as s:
        conversations.follow_ended(s, "wmcustomer1", "zhangsan", w.at(40), "lost")
    w.reply("开好了，已发到您邮箱", at=30)
    assert [(x.close_reason, x.closed_at, x.response_s) for x in w.waits()] == [("replied", w.at(30), 30.0)]


def test_a_member_taken_off_the_archive_owes_nothing_yet_a_reply_pulled_late_still_answered(local):
    """张三 is taken off 会话存档's permit list; Siyu reads the list at 40. His customer's
    question waits no more (his replies are not archived from then on), another customer's
    question sent before and pulled after owes nothing, and a reply sent before, pulled after,
    still answered its question. 李四, still archived, keeps his customer waiting."""
    w = local
    w.policy()
    w.say("发票开好了吗？", at=0)
    w.say("在吗？", at=5, ext="wmcustomer3", staff="lisi")
    with w.session() as s:
        assert conversations.settle_unarchived(s, {"LiSi", "wangwu"}, w.at(40)) == 1
    assert [(x.close_reason, x.closed_at) for x in w.waits()] == [("unarchived", w.at(40))]
    w.say("多少钱？", at=20, ext="wmcustomer2")  # sent before, pulled after
    assert w.waits(ext="wmcustomer2") == []
    w.reply("开好了，已发到您邮箱", at=30)
    assert [(x.close_reason, x.closed_at, x.response_s) for x in w.waits()] == [("replied", w.at(30), 30.0)]
    assert [x.closed_at for x in w.waits(ext="wmcustomer3", staff="lisi")] == [None]


def test_a_reply_recalled_before_it_was_stored_answers_nothing_stored_with_it(local):
    """Two import files, the newer first: Siyu's welcome and the agent's recall of a reply. The
    older then brings the question and that reply: taken for answered by the reply taken back
    (flagged recalled only at the batch's end), the question never waited."""
    w = local
    w.policy()
    welcome = "王女士您好，我是您的专属顾问"
    _welcome_sent(w, welcome, 20, "a")
    question = w._message("wmcustomer1", "zhangsan", "这款有货吗？", 0, None)
    answer = w._message("zhangsan", "wmcustomer1", "有的", 10, None)
    w.ingest(w._message("zhangsan", "wmcustomer1", welcome, 20, None), _recall_of(w, answer["msgid"], 30))
    w.ingest(question, answer)
    assert _waiting(w) == (question["msgid"], w.at(0))
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1


def test_a_welcome_copy_pulled_again_does_not_use_up_the_next_welcome(local):
    """Siyu sends the same welcome twice, two minutes apart (the customer added the agent again).
    A re-pull brings the first copy again with the second: the repeat took the second welcome
    as well, so its copy counted as the agent's reply and closed the question between them."""
    w = local
    text = "王女士您好，我是您的专属顾问"
    _welcome_sent(w, text, 0, "a")
    _welcome_sent(w, text, 120, "b")
    first = w._message("zhangsan", "wmcustomer1", text, 1, None)
    w.ingest(first)
    question = w.say("你好，想了解一下你们的课程", at=60)
    w.ingest(first, w._message("zhangsan", "wmcustomer1", text, 121, None))
    assert _waiting(w) == (question, w.at(60))


def test_a_customer_message_pulled_late_is_read_against_the_staff_message_before_it(local):
    """确定要取消订单吗？ at 0, 好的 at 10 (the agent must act: it needs a reply), 您的订单已取消 at 20.
    In order 好的 is a wait answered in 10 s; pulled last, it was read as answering 订单已取消, a
    closing remark, and the board never counted it."""
    w = local
    w.reply("确定要取消订单吗？", at=0)
    w.reply("您的订单已取消", at=20)
    ok = w.say("好的", at=10)
    with w.session() as s:
        assert s.scalar(select(Message.needs_reply).where(Message.msgid == ok)) is True
    assert [(x.msgid, x.close_reason, x.response_s) for x in w.waits()] == [(ok, "replied", 10.0)]


def test_a_message_recalled_before_it_was_stored_still_tells_when_the_customer_last_wrote(local):
    """In order, 在吗 at 0 and its recall at 15 leave last_inbound_at at 0; the recall stored
    first, the conversation said the customer never wrote."""
    w = local
    question = w._message("wmcustomer1", "zhangsan", "在吗", 0, None)
    w.ingest(_recall_of(w, question["msgid"], 15, by="wmcustomer1"))
    w.ingest(question)
    c = w.conversation()
    assert (c.message_count, c.last_inbound_at) == (1, w.at(0))


# ---- the policy's steps edited while a wait escalates: the next step follows by delay

AGENT_CARD = {"delay_s": 120, "action": "app_message", "target": "agent"}
LEADER_CARD = {"delay_s": 300, "action": "app_message", "target": "leader"}
AGENT_CALL = {"delay_s": 600, "action": "voice_call", "target": "agent"}


def _fired(w) -> list[tuple[str, str]]:
    with w.session() as s:
        rows = s.scalars(select(SlaEscalation).order_by(SlaEscalation.step))
        return [(e.action, e.recipient) for e in rows if e.status == "fired"]


def _agent_carded_then_edited(w, steps: list[dict]) -> None:
    """The default ladder: a question, the agent's card at 2 minutes; at 2:10 the steps saved
    as `steps`."""
    w.policy(steps=[AGENT_CARD, LEADER_CARD, AGENT_CALL])
    w.say("在吗？", at=0)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    w.clock(130)
    w.policy(steps=steps)


EVERY_STEP_ONCE = [("app_message", "zhangsan"), ("app_message", "lisi"), ("voice_call", "zhangsan")]


def test_taking_the_first_step_out_mid_wait_still_calls_the_agent(local):
    """The agent's card went at 2 minutes, the leader's step is pending, and the admin takes the
    agent's card out (leader at 5, call at 10). The leader's card went, and then the wait was
    taken for done by the new policy's step numbers: the call, which it still has, never rang."""
    w = local
    _agent_carded_then_edited(w, [LEADER_CARD, AGENT_CALL])
    w.clock(300)
    assert w.fire() == 1
    w.clock(600)
    assert w.fire() == 1
    assert _fired(w) == EVERY_STEP_ONCE


def test_a_call_at_the_same_delay_as_the_leaders_card_rings_after_it(local):
    """Steps may share a delay (the leader's card and a call at 5 minutes): after the card fired,
    the first step of a longer delay was looked for, and the call never rang."""
    w = local
    w.policy(steps=[{**AGENT_CARD, "delay_s": 60}, LEADER_CARD, {**AGENT_CALL, "delay_s": 300}])
    w.say("在吗？", at=0)
    w.pulled(3600)
    for t in (60, 300, 301):
        w.clock(t)
        w.fire()
    assert _fired(w) == EVERY_STEP_ONCE


def test_adding_a_step_before_mid_wait_cards_the_leader_once(local):
    """The agent's card went at 2 minutes and the admin adds a 1-minute card in front: by the new
    policy's numbers the step after the leader's was the leader's again, carded at 5 and 8 minutes."""
    w = local
    _agent_carded_then_edited(w, [{**AGENT_CARD, "delay_s": 60}, AGENT_CARD, LEADER_CARD, AGENT_CALL])
    for t in (300, 480, 600, 780, 1200):
        w.clock(t)
        w.fire()
    assert _fired(w) == EVERY_STEP_ONCE


def test_switching_escalation_off_stops_the_later_steps_of_running_waits(local):
    w = local
    w.policy()
    w.say("请问这个多少钱？", at=0)
    w.pulled(7200)
    with w.session() as s:  # the admin switches escalation off
        service.save_policy(s, enabled=False)
    w.clock(120)
    assert w.fire() == 1  # "已排好的下一步不变": the step already scheduled still goes
    w.clock(3600)
    assert w.fire() == 0  # "之后各步按新策略": no leader card, no call
    assert w.outbox("sla_call") == []
    assert [st[1] for st in w.steps()] == ["fired"]


def test_no_reply_needed_said_while_a_pull_is_stored_is_not_undone(local):
    w = local
    w.say("请问这个多少钱？", at=0)
    conversation_id = w.conversation().id
    real, started = conversations._siyu_sent, threading.Event()

    def dismiss():
        with w.session() as other:  # the agent's request, waiting for the pull to commit
            started.set()
            conversations.dismiss(other, conversation_id, w.at(5))

    agent = threading.Thread(target=dismiss)

    def meanwhile(session, parsed, states, renamed):
        if not agent.is_alive() and not started.is_set():
            agent.start()
            started.wait(5)
            time.sleep(0.3)  # the agent's transaction is under way
        return real(session, parsed, states, renamed)

    conversations._siyu_sent = meanwhile
    try:
        w.say("好的谢谢", at=10)  # a closing remark in the pull: it changes no wait
    finally:
        conversations._siyu_sent = real
    agent.join(30)
    c = w.conversation()
    assert (c.awaiting_since, c.awaiting_msgid, c.message_count) == (None, "", 2)
    assert [x.close_reason for x in w.waits()] == ["dismissed"]


def test_no_reply_needed_on_a_question_answered_meanwhile_leaves_the_next_question_waiting(local):
    w = local
    w.policy()
    first = w.say("请问这个多少钱？", at=0)
    conversation_id = w.conversation().id
    reply = w._message("zhangsan", "wmcustomer1", "199 元", 30, None)
    second = w._message("wmcustomer1", "zhangsan", "那什么时候发货？", 60, None)
    locking, result = threading.Event(), []

    def agent():  # 无需回复 on the question the page showed
        with w.session() as s:
            event.listen(s.connection(), "before_cursor_execute", at_first_lock(locking.set))
            try:
                result.append(conversations.dismiss(s, conversation_id, w.at(90), by="张三", msgid=first))
            except conversations.WroteAgain as refused:
                result.append(refused.newest)

    with w.session() as pull:  # a pull stores the agent's reply and the customer's next question ...
        conversations.ingest(pull, items(reply, second), default_classifier().classify)
        thread = threading.Thread(target=agent)
        thread.start()
        assert locking.wait(30)  # ... and commits as the agent's request first writes or locks
    thread.join(30)
    assert result == [second["msgid"]]  # the question it was about is answered: nothing is marked
    c = w.conversation()
    assert (c.awaiting_msgid, c.awaiting_since) == (second["msgid"], w.at(60))  # the next one waits
    assert [(x.msgid, x.close_reason) for x in w.waits()] == [(first, "replied"), (second["msgid"], "")]
    w.pulled(3600)
    w.clock(180)
    assert w.fire() == 1  # and escalates as it should


def at_first_lock(then):
    """A before_cursor_execute listener that calls `then` once, just before its connection
    first writes or locks a row."""
    called = []

    def listener(conn, cursor, statement, *args):
        locks = (
            statement.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))
            or "FOR UPDATE" in statement
            or "FOR NO KEY UPDATE" in statement
        )
        if locks and not called:
            called.append(then())

    return listener


def test_snooze_pushes_the_pending_steps_later_keeping_their_spacing(local):
    w = local
    w.policy()
    w.say("明天能送到吗？", at=0)
    w.pulled(7200)
    conversation = w.conversation()
    with w.session() as s:
        assert service.snooze(s, conversation.id, until=w.at(1800), now=w.at(10)) == 1
    assert pending_due(w) == w.at(1800)
    w.clock(1799)
    assert w.fire() == 0
    w.clock(1800)
    assert w.fire() == 1
    assert w.steps()[0] == (0, "fired", "zhangsan")
    assert w.waits()[0].snoozed_until == w.at(1800)
    assert pending_due(w) == w.at(1980)  # the later steps keep their spacing (2 -> 5 min)
    w.clock(1980)
    assert w.fire() == 1
    assert pending_due(w) == w.at(2280)


def test_a_snooze_ends_with_the_wait_the_customer_recalled_however_the_archive_brings_it(local):
    """张三 holds 在吗's reminders back until 1000 s; the customer recalls it at 20 s, 张三 says
    您好 at 100 s and the customer asks 这款有货吗 at 300 s, all brought by one pull: a new
    question, so 张三 is carded 2 minutes after it, as when pulled one by one. The snooze had
    held it until 1000 s."""
    w = local
    w.policy()
    first = w.say("在吗", at=0)
    with w.session() as s:
        service.snooze(s, w.conversation().id, until=w.at(1000), now=w.at(10), by="张三")
    hello = w._message("zhangsan", "wmcustomer1", "您好", 100, None)
    question = w._message("wmcustomer1", "zhangsan", "这款有货吗", 300, None)
    w.ingest(_recall(w, first, 20), hello, question)
    w.pulled(7200)
    w.clock(420)
    assert w.fire() == 1
    assert [c.payload["touser"] for c in w.outbox()] == ["zhangsan"]


def test_a_shorter_snooze_brings_the_step_back_but_not_before_its_schedule(local):
    w = local
    w.policy()
    w.say("明天能送到吗？", at=0)
    w.pulled(7200)
    conversation = w.conversation()
    with w.session() as s:
        assert service.snooze(s, conversation.id, until=w.at(1800), now=w.at(10)) == 1
    with w.session() as s:  # changed their mind: 10 minutes, not 30
        assert service.snooze(s, conversation.id, until=w.at(600), now=w.at(20)) == 1
    assert pending_due(w) == w.at(600) and w.waits()[0].snoozed_until == w.at(600)
    with w.session() as s:  # shorter still, before the step's own time: back to its schedule
        assert service.snooze(s, conversation.id, until=w.at(60), now=w.at(30)) == 1
    assert pending_due(w) == w.at(120)
    with w.session() as s:  # longer again: later, as any snooze
        assert service.snooze(s, conversation.id, until=w.at(900), now=w.at(40)) == 1
    assert pending_due(w) == w.at(900)


def test_a_snooze_while_a_worker_fires_the_step_holds_back_the_steps_after_it(local):
    w = local
    w.policy(merge_window_s=0)
    w.say("明天能送到吗？", at=0)
    w.pulled(7200)
    w.clock(125)  # the agent's card (step 0) is due
    conversation_id, fired = w.conversation().id, []
    with w.session() as s:  # the agent snoozes 30 minutes from the board ...
        # ... as a worker fires that card: it commits once the snooze has read the wait's steps
        event.listen(s.connection(), "before_cursor_execute", at_first_lock(lambda: fired.append(w.fire())))
        service.snooze(s, conversation_id, until=w.at(1925), now=w.at(125))
    assert fired == [1]
    assert w.waits()[0].snoozed_until == w.at(1925)
    w.clock(310)
    assert w.fire() == 0  # no card to the leader while snoozed
    assert w.steps() == [(0, "fired", "zhangsan"), (1, "pending", "")]
    assert pending_due(w) == w.at(1925)
    w.clock(1925)
    assert w.fire() == 1  # the leader hears of it once the snooze is over
    assert w.steps()[1] == (1, "fired", "lisi")
    assert pending_due(w) == w.at(2225)  # and the call keeps its spacing after it
    assert [c.payload["touser"] for c in w.outbox()] == ["zhangsan", "lisi"]
    with w.session() as s:  # the card that fired before the snooze keeps the time it was due
        assert s.scalar(select(SlaEscalation.due_at).where(SlaEscalation.step == 0)) == w.at(120)


def pending_due(w):
    with w.session() as s:
        return s.scalar(
            select(SlaEscalation.due_at).where(
                SlaEscalation.conversation_id == w.conversation().id, SlaEscalation.status == "pending"
            )
        )


@pytest.mark.parametrize(
    ("status", "reason"), [("lost", "lost"), ("deleted", "removed"), ("transferred", "transferred")]
)
def test_a_wait_closes_when_the_customer_and_the_agent_stop_being_contacts(local, status, reason):
    from siyu.customers.service import record_follow_ended

    w = local
    w.policy()
    w.say("你好，问个问题", at=0)
    w.pulled(7200)
    w.clock(150)
    assert w.fire() == 1
    with w.session() as s:  # the customer deletes 张三 (or 张三 the customer, or hands them over)
        fields = {
            "UserID": "zhangsan",
            "ExternalUserID": "wmcustomer1",
            "CreateTime": int(w.at(200).timestamp()),
        }
        record_follow_ended(s, fields, status)
    w.clock(3600)
    assert w.fire() == 0  # no leader card, no call: nobody can answer there any more
    assert w.steps() == [(0, "fired", "zhangsan"), (1, "cancelled", "")]
    at = w.at(200).replace(microsecond=0)  # CreateTime is in whole seconds
    assert [(x.close_reason, x.closed_at) for x in w.waits()] == [(reason, at)]
    assert w.conversation().awaiting_since is None


def test_a_question_the_archive_brings_after_they_stopped_being_contacts_never_escalates(local):
    from siyu.customers.service import record_follow_ended

    w = local
    w.policy()
    with w.session() as s:  # the customer deletes 张三 at once; the archive lags behind
        fields = {
            "UserID": "zhangsan",
            "ExternalUserID": "wmcustomer1",
            "CreateTime": int(w.at(5).timestamp()),
        }
        record_follow_ended(s, fields, "lost")
    w.say("在吗", at=0)  # pulled from the archive afterwards: sent before, it owes nothing
    w.pulled(7200)
    w.clock(3600)
    assert w.fire() == 0  # no card, no call
    assert w.steps() == [] and w.waits() == []
    assert w.conversation().awaiting_since is None


def test_a_customer_declining_archiving_closes_the_wait_no_reply_could_be_seen_to_close(local):
    w = local
    w.policy()
    w.say("退款什么时候到账", at=0)
    w.pulled(7200)
    w.clock(150)
    assert w.fire() == 1
    declined = w._message("wmcustomer1", "zhangsan", "", 200, None)
    declined.pop("text")
    declined.update({"msgtype": "disagree", "disagree": {"userid": "wmcustomer1", "disagree_time": 1}})
    w.ingest(declined)  # WeCom archives nothing more of this chat: a reply would never be seen
    w.clock(3600)
    assert w.fire() == 0  # no leader card, no call
    assert w.steps() == [(0, "fired", "zhangsan"), (1, "cancelled", "")]
    assert [(x.close_reason, x.closed_at) for x in w.waits()] == [("declined", w.at(200))]
    assert w.conversation().awaiting_since is None


def test_no_reply_needed_cancels_the_pending_steps(local):
    w = local
    w.policy()
    w.say("你好，问个问题", at=0)
    w.pulled(7200)
    w.clock(150)
    assert w.fire() == 1
    with w.session() as s:
        assert conversations.dismiss(s, w.conversation().id)
    w.clock(3600)
    assert w.fire() == 0
    assert w.steps() == [(0, "fired", "zhangsan"), (1, "cancelled", "")]
    assert w.waits()[0].close_reason == "dismissed"


def test_one_voice_call_covers_all_of_an_agents_waits(local):
    w = local
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}], call_cooldown_s=600)
    for i in range(3):
        w.say(f"问题{i}？", at=i, ext=f"wmc{i}")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 3
    assert len(w.outbox("sla_call")) == 1
    w.say("还有一个问题？", at=100, ext="wmc9")
    w.clock(500)
    w.fire()
    assert len(w.outbox("sla_call")) == 1  # within the cooldown
    with w.session() as s:  # that call placed at 80 s: the step of 560 s rang nobody about wmc9
        s.execute(update(SlaCall).values(status="placed", placed_at=w.at(80)))
        fired = list(s.scalars(select(SlaEscalation).where(SlaEscalation.status == "fired")))
        reached = sorted((e.fired_at, queries.deliveries(s, [e])[e.id][0]) for e in fired)
        assert [state for _, state in reached] == ["placed", "placed", "placed", "covered"]
    w.say("再问一下？", at=700, ext="wmc10")
    w.clock(800)
    w.fire()
    assert len(w.outbox("sla_call")) == 2
    with w.session() as s:
        assert s.scalar(select(func.count()).select_from(SlaCall)) == 2


def test_no_call_in_quiet_hours_it_waits_for_the_morning(local):
    from siyu.sla.api import board_for
    from siyu.web.auth import Viewer

    w = local
    with w.session() as s:
        service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
        tz = service.tenant_timezone(s)
    assert tz == "Asia/Shanghai"
    # a message at 23:00 Beijing time (15:00 UTC)
    w.t0 = w.t0.replace(hour=15, minute=0, second=0, microsecond=0) + timedelta(days=1)
    w.say("急！明天的订单能改地址吗？", at=0)
    w.pulled(86400)
    with w.session() as s:  # before the call comes due, the board already gives 08:00, and why
        [row] = queries.waiting_now(s, w.rt.now())
        assert row["next_step_at"] == w.at(9 * 3600) and row["next_step_after_quiet_hours"] is True
        assert row["next_step_due_at"] == w.at(60)  # the step itself comes due at 23:01, on time
    w.clock(120)
    assert w.fire() == 1  # the step fires on time; its call waits in the outbox for 08:00
    [call] = w.outbox("sla_call")
    assert call.payload["callee"] == "zhangsan"
    with w.session() as s:
        [row] = board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now())["waiting"]
    [step] = row["fired"]
    assert (step["delivery"], step["held_until"]) == ("queued", w.at(9 * 3600))  # 08:00 Beijing


def test_a_call_held_by_quiet_hours_holds_back_no_card_after_it(local):
    """Quiet hours are for calls: 1 min card to the agent, 2 min call, 5 min card to the leader,
    quiet 21:00-08:00. For a question at 23:00 the call waits for 08:00, and the leader's card
    goes at 23:05, not behind the call the next morning."""
    w = local
    with w.session() as s:
        service.save_policy(
            s,
            steps=[
                {"delay_s": 60, "action": "app_message", "target": "agent"},
                {"delay_s": 120, "action": "voice_call", "target": "agent"},
                {"delay_s": 300, "action": "app_message", "target": "leader"},
            ],
            quiet_hours=["21:00", "08:00"],
        )
    w.t0 = w.t0.replace(hour=15, minute=0, second=0, microsecond=0) + timedelta(days=1)  # 23:00
    w.clock(0)
    w.say("急！明天的订单能改地址吗？", at=0)
    w.pulled(86400)
    for at in (60, 120, 300):
        w.clock(at)
        assert w.fire() == 1
    assert w.steps() == [(0, "fired", "zhangsan"), (1, "fired", "zhangsan"), (2, "fired", "lisi")]
    assert len(w.outbox("sla_call")) == 1


def test_calls_held_through_the_night_ring_once_in_the_morning(local):
    """Two customers of one agent wait at 23:00 and 23:40, past the 15-minute cooldown of each
    other: the first call, held till 08:00, covers the second (both ring as one call)."""
    w = local
    with w.session() as s:
        service.save_policy(s, steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}])
    w.t0 = w.t0.replace(hour=15, minute=0, second=0, microsecond=0) + timedelta(days=1)
    w.say("在吗？", at=0)
    w.say("有人吗？", at=40 * 60, ext="wmcustomer2")
    w.pulled(86400)
    w.clock(60)
    assert w.fire() == 1
    w.clock(41 * 60)
    assert w.fire() == 1
    [call] = w.outbox("sla_call")
    assert len(call.payload["escalations"]) == 2  # it speaks of both customers


def test_the_leader_falls_back_to_the_department_leader_then_the_escalation_contact(local):
    w = local
    w.policy(escalation_contact="wangwu")
    w.say("有人吗？", at=0, staff="wangwu")  # no direct leader: 销售一部's leader lisi
    w.say("有人吗？", at=0, ext="wmboss", staff="boss")  # leads 总部 himself: the contact
    w.pulled(3600)
    w.clock(300)
    w.fire()
    assert w.steps(staff="wangwu")[1] == (1, "fired", "lisi")
    assert w.steps("wmboss", "boss")[1] == (1, "fired", "wangwu")


def test_the_leader_is_someone_still_with_the_corp_and_a_department_head_has_one_above(local):
    from siyu.tenancy.models import Department, Staff

    w = local
    w.policy()
    with w.session() as s:  # 李四 leaves; 王五 heads a department of his own under 总部
        s.execute(update(Staff).where(Staff.userid == "lisi").values(active=False))
        s.add(Department(wecom_id=3, name="销售二部", parent_wecom_id=1, leaders=["wangwu"]))
        s.execute(update(Staff).where(Staff.userid == "wangwu").values(departments=[3], main_department=3))
    w.say("有人吗？", at=0)  # 张三: direct leader 李四 has left, and leads 销售一部: up to 总部's 王总
    w.say("有人吗？", at=0, ext="wmwang", staff="wangwu")  # heads 销售二部: its parent's leader
    w.pulled(3600)
    w.clock(300)
    w.fire()
    assert w.steps()[1] == (1, "fired", "boss")
    assert w.steps("wmwang", "wangwu")[1] == (1, "fired", "boss")


def test_leaders_are_read_by_the_departments_above_the_agents_however_many_the_corp_has(local):
    """The board and a batch of cards name each agent's leader in a few queries: one a level of
    the departments above the agents, not every department of the corp (5,000 in a big one:
    130-220 ms a read)."""
    from siyu.customers.service import leaders_of
    from siyu.tenancy.models import Department, Staff
    from tests.support.statements import statements_matching

    w = local
    with w.session() as s:  # 王五 in 销售一组, a team of 销售一部 with no leader of its own
        s.add(Department(wecom_id=3, name="销售一组", parent_wecom_id=2, leaders=[]))
        s.execute(update(Staff).where(Staff.userid == "wangwu").values(departments=[3], main_department=3))

    def leaders() -> tuple[dict, int]:
        with w.session() as s, statements_matching(w.rt.db.engine, r"^SELECT") as reads:
            return leaders_of(s, ["zhangsan", "wangwu", "lisi"]), len(reads)

    few = leaders()
    with w.session() as s:  # 300 more teams under 销售一部, each with a leader
        s.add_all(
            Department(wecom_id=100 + i, name=f"销售{i}组", parent_wecom_id=2, leaders=[f"team{i}"])
            for i in range(300)
        )
    assert leaders() == few == ({"zhangsan": "lisi", "wangwu": "lisi", "lisi": "boss"}, 4)


def test_a_step_that_finds_nobody_to_tell_is_listed_as_not_delivered(local):
    from datetime import timedelta

    w = local
    w.policy()  # no escalation contact
    w.say("有人吗？", at=0, ext="wmboss", staff="boss")  # 王总 leads 总部: no leader above him
    w.pulled(3600)
    w.clock(300)
    w.fire()
    assert w.steps("wmboss", "boss")[1][:2] == (1, "skipped")
    with w.session() as s:
        [problem], _ = queries.delivery_problems(s, w.at(0) - timedelta(days=1), w.at(0) + timedelta(days=1))
    assert (problem["kind"], problem["recipient"], problem["status"]) == ("step", "boss", "nobody")
    assert problem["target"] == "leader"
    assert "第 2 步没有可通知的人：该成员没有直属上级" in problem["error"]


def test_an_escalation_contact_who_left_is_reached_no_more_and_the_step_says_why(local):
    from datetime import timedelta

    from siyu.tenancy.models import Staff

    w = local
    w.policy(escalation_contact="wangwu")
    with w.session() as s:  # 王五 leaves the corp after he was named
        s.execute(update(Staff).where(Staff.userid == "wangwu").values(active=False))
    w.say("有人吗？", at=0, ext="wmboss", staff="boss")  # 王总 leads 总部: the contact was his fallback
    w.pulled(3600)
    w.clock(300)
    w.fire()
    assert w.steps("wmboss", "boss")[1][:2] == (1, "skipped")  # no card retried against WeCom
    with w.session() as s:
        [problem], _ = queries.delivery_problems(s, w.at(0) - timedelta(days=1), w.at(0) + timedelta(days=1))
    assert problem["status"] == "nobody" and "策略的升级联系人 wangwu 已不在职" in problem["error"]


def test_a_member_who_left_gets_no_card_and_the_step_says_why(local):
    """A wait of a member who left since (the staff sync's verdict) sent them a card all the
    same, which WeCom refused (消息接收人全部无效) and retried; their leader is still told."""
    from datetime import timedelta

    from siyu.tenancy.models import Staff

    w = local
    w.policy()
    w.say("有人吗？", at=0)  # 张三's customer
    with w.session() as s:  # then 张三 leaves the corp
        s.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=False, wecom_status=5))
    w.pulled(3600)
    w.clock(300)
    w.fire()
    assert w.steps()[0][:2] == (0, "skipped") and w.steps()[1] == (1, "fired", "lisi")
    with w.session() as s:
        [problem], _ = queries.delivery_problems(s, w.at(0) - timedelta(days=1), w.at(0) + timedelta(days=1))
    assert problem["status"] == "nobody" and "第 1 步没有可通知的人：该成员已离职或停用" in problem["error"]


def test_a_department_policy_applies_to_its_members(local):
    w = local
    with w.session() as s:
        service.save_policy(s, 0, quiet_hours=[])
        service.save_policy(s, 2, steps=[{"delay_s": 30, "action": "app_message", "target": "leader"}])
    w.say("你好？", at=0)  # zhangsan is in department 2
    w.say("你好？", at=0, ext="wmboss", staff="boss")  # boss in 1: the tenant policy
    w.pulled(3600)
    w.clock(30)
    assert w.fire() == 1
    assert w.steps() == [(0, "fired", "lisi")]
    assert w.steps("wmboss", "boss") == [(0, "pending", "")]


def test_two_workers_never_fire_a_step_twice(local):
    w = local
    w.policy(merge_window_s=0)
    agents = ["zhangsan", "wangwu", "lisi"]
    for i in range(40):
        w.say(f"第{i}个问题？", at=i % 7, ext=f"wmx{i}", staff=agents[i % 3])
    w.pulled(7200)
    w.clock(3600)
    taken: list[tuple[int, str]] = []
    lock = threading.Lock()

    def worker():
        while True:
            outcomes = tasks.fire_next(w.rt, 7)
            if not outcomes:
                return
            with lock:
                taken.extend(outcomes.items())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with w.session() as s:  # the database is shared with other tests
        ours = set(s.scalars(select(SlaEscalation.id)))
    results = [outcome for i, outcome in taken if i in ours]
    assert results.count("fired") + results.count("covered") == 120
    assert "lost" not in results  # workers take disjoint steps
    with w.session() as s:
        statuses = set(s.scalars(select(SlaEscalation.status)))
    assert statuses == {"fired"}
    notices = [i for c in w.outbox() for i in c.payload["escalations"]]
    assert len(notices) == len(set(notices)) == 80  # each agent and leader step in one card
    calls = w.outbox("sla_call")
    assert sorted(c.payload["callee"] for c in calls) == sorted(agents)  # one call each


def test_one_companys_burst_of_due_steps_does_not_hold_back_another_companys(local, db, settings):
    """A company whose customers all came due at once (more than a batch) has its turn, and
    another company's one waiting customer is told of in the same pass, not once the burst
    is through: the oldest steps of all companies together had filled every batch."""
    busy = local
    busy.policy(merge_window_s=0)
    busy.ingest(
        *(busy._message(f"wmb{i}", "zhangsan", f"问题{i}？", 0, None) for i in range(tasks.BATCH + 50))
    )
    busy.pulled(3600)
    _, tenant_id = local_tenant(db, settings)
    try:
        quiet = Wait(busy.rt, tenant_id, busy.t0)
        quiet.say("在吗？能帮我查下订单吗？", at=10)
        quiet.pulled(3600)
        busy.clock(200)
        outcomes = tasks.fire_next(busy.rt)
        assert quiet.steps()[0] == (0, "fired", "zhangsan")
        assert busy.fired() == tasks.BATCH  # a batch each: the rest in the next pass
        assert len(outcomes) >= tasks.BATCH + 1
    finally:
        forget_pending(db, tenant_id)


def test_a_worker_killed_mid_escalation_loses_and_doubles_nothing(local, monkeypatch):
    w = local
    w.policy()
    for i in range(5):
        w.say(f"问题{i}？", at=0, ext=f"wmk{i}")
    w.pulled(3600)
    w.clock(120)
    dead = claimed(w)
    assert len(dead) == 5

    # worker A dies mid-transaction, after queueing the card and before commit (a death, not
    # an error: firing sets a tenant whose errors it catches aside for a while)
    class Killed(BaseException):
        pass

    def die(*args):
        raise Killed

    monkeypatch.setattr(firing, "_record", die)
    with pytest.raises(Killed):
        tasks.fire_next(w.rt)
    monkeypatch.undo()
    assert w.outbox() == [] and w.fired() == 0  # nothing of A's is left behind
    assert w.fire() == 5  # worker B fires them at once: no lease to wait out
    assert [tasks.fire_one(w.rt, r.tenant_id, r.id) for r in dead] == ["lost"] * 5  # A comes back
    [card] = w.outbox()  # the five steps to zhangsan, merged into one card
    assert sorted(card.payload["escalations"]) == sorted(r.id for r in dead)


def test_a_wait_begun_before_any_policy_takes_the_first_one_saved(local):
    w = local
    w.say("有人在吗？", at=0)  # no policy yet: the built-in default times it
    with w.session() as s:
        [wait] = s.scalars(select(SlaWait)).all()
        assert wait.policy_id is None
    w.policy(business_hours_only=True, shifts=[["09:00", "18:00"]])
    with w.session() as s:
        [wait] = s.scalars(select(SlaWait)).all()
        assert wait.policy_id == service.policy_for(s, "zhangsan").id
        [row] = queries.waiting_now(s, w.rt.now())
        assert row["waited_business_s"] is not None  # measured by the clock the admin chose


@pytest.mark.parametrize("question_pulled", ["with them", "before them"])
def test_a_reply_pulled_with_its_recall_leaves_the_question_waiting(local, question_pulled):
    """The agent answers at 10 s and recalls the answer at 30 s, both brought by one pull (a
    backlog after the archive was down, a pull every few minutes). The customer has no answer:
    the question waits from its own time and the agent is pushed at 2 minutes, as when the
    recall comes in a pull of its own. The conversation was left waiting while the question's
    wait stayed "answered in 10 s", so no step ever fired and the board counted the answer."""
    w = local
    w.policy()
    question = w._message("wmcustomer1", "zhangsan", "请问这个多少钱？", 0, None)
    answer = w._message("zhangsan", "wmcustomer1", "100元", 10, None)
    recall = _recall(w, answer["msgid"], 30, by="zhangsan")
    if question_pulled == "before them":
        w.ingest(question)
        w.ingest(answer, recall)
    else:
        w.ingest(question, answer, recall)
    assert w.conversation().awaiting_msgid == question["msgid"]
    [wait] = w.waits()
    assert (wait.closed_at, wait.close_reason, wait.response_s) == (None, "", None)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1  # the agent is pushed 2 minutes after the question


def test_a_reply_recalled_in_the_pull_that_brings_the_real_answer_is_no_quick_answer(local):
    """The agent sends "." at 5 s (pulled), recalls it at 20 s and answers at 100 s, the two
    brought by one pull: the question was answered in 100 s, as when pulled one by one. The
    board had kept it answered in 5 s by the "." taken back."""
    w = local
    w.policy()
    w.say("请问这个多少钱？", at=0)
    dot = w.reply(".", at=5)
    answer = w._message("zhangsan", "wmcustomer1", "100元", 100, None)
    w.ingest(_recall(w, dot, 20, by="zhangsan"), answer)
    assert [(x.close_reason, x.closed_at, x.response_s) for x in w.waits()] == [("replied", w.at(100), 100.0)]
    assert w.conversation().awaiting_since is None


def _settle(w, how: str) -> None:
    with w.session() as s:
        if how == "lost":  # the customer deletes the agent at 40 (WeCom's callback, at once)
            conversations.follow_ended(s, "wmcustomer1", "zhangsan", w.at(40), "lost")
        else:  # the agent marks the chat 无需回复 at 40
            cid = w.conversation().id
            assert conversations.dismiss(s, cid, w.at(40), by="张三")


@pytest.mark.parametrize("how", ["lost", "dismissed"])
@pytest.mark.parametrize("one_pull", [True, False], ids=["reply_and_recall_in_one_pull", "in_two_pulls"])
def test_a_reply_the_agent_took_back_before_the_chat_was_settled_answered_nothing(local, how, one_pull):
    """The reply pulled after the chat was settled had been recalled before it: it answered
    nothing, and the wait ends as it did (a review found it read "replied in 30 s", the
    agent's 无需回复 gone)."""
    w = local
    w.policy()
    w.say("发票开好了吗？", at=0)
    _settle(w, how)
    # the archive lags: the agent's reply at 30, and its recall at 35, come after
    reply = w._message("zhangsan", "wmcustomer1", "开好了", 30, None)
    recall = _recall(w, reply["msgid"], 35, by="zhangsan")
    if one_pull:
        w.ingest(reply, recall)
    else:
        w.ingest(reply)
        w.ingest(recall)
    assert w.conversation().awaiting_since is None  # (nothing waits: the chat was settled)
    assert [(x.close_reason, x.closed_at, x.response_s) for x in w.waits()] == [(how, w.at(40), None)]
    assert all(status != "pending" for _, status, _ in w.steps()), w.steps()  # its steps stay cancelled
    w.pulled(7200)
    w.clock(3600)
    assert w.fire() == 0
