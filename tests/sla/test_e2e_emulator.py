"""Escalation end to end over the WeCom emulator: a question typed in WeCom, pulled from the
archive, escalated agent -> leader -> phone call as Siyu's clock moves on."""

from __future__ import annotations

import time
from types import SimpleNamespace

from sqlalchemy import select

from siyu.conversations.models import Conversation
from siyu.sla.service import save_policy
from siyu.tenancy.tasks import sync_staff
from tests.customers.test_acquisition import follow_of, make_channel, run
from tests.support.stack import wait_for


def cards_to(stack, userid: str) -> list[dict]:
    return [m for m in stack.app_messages() if m["msgtype"] == "textcard" and userid in m["recipients"]]


def test_an_unanswered_question_escalates_agent_leader_call(stack, monkeypatch):
    monkeypatch.setattr(
        stack.rt, "settings", stack.rt.settings.model_copy(update={"voice_provider": "emulator"})
    )
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:  # the default steps; no quiet hours, so the test runs at any hour
        save_policy(s, quiet_hours=[])
    stack.enable_archive()
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "冯女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.chat(ext, "zhangsan", "请问这个型号多少钱？有现货吗")

    def waiting():
        with stack.session() as s:
            return s.scalar(select(Conversation).where(Conversation.awaiting_since.is_not(None)))

    conversation = wait_for(waiting, timeout=15)

    stack.rt.clock.advance(60)  # one minute: nothing is due yet
    assert not cards_to(stack, "zhangsan")
    stack.rt.clock.advance(65)  # past 2 minutes: the agent is pushed
    card = wait_for(lambda: cards_to(stack, "zhangsan"), timeout=20)[0]
    assert "冯女士" in str(card["payload"]) and f"/conversations/{conversation.id}" in str(card["payload"])
    assert not cards_to(stack, "lisi")

    stack.rt.clock.advance(180)  # past 5 minutes: the agent's leader (direct_leader lisi)
    wait_for(lambda: cards_to(stack, "lisi"), timeout=20)

    stack.rt.clock.advance(300)  # past 10 minutes: the agent's phone rings

    # this tenant's calls: the stack's worker also fires the steps other tests' tenants left
    # pending that its clock, moved on, finds due, and their calls ring the same emulator
    # (a call of theirs to 张三's number had passed this test without its own)
    def ours() -> list[dict]:
        calls = stack.control("GET", "/voice/calls")
        return [c for c in calls if c["session_context"].startswith(f"siyu:{stack.tenant_id}:")]

    [call] = wait_for(ours, timeout=20)
    assert call["called_number"] == "+8613800000002"  # zhangsan's mobile


def test_a_reply_at_minute_three_stops_the_leader_push(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    stack.enable_archive()
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "褚先生")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.chat(ext, "zhangsan", "发票什么时候能开？")

    def waiting():
        with stack.session() as s:
            return s.scalar(select(Conversation).where(Conversation.awaiting_since.is_not(None)))

    conversation = wait_for(waiting, timeout=15)
    for seconds in (125, 55):  # both clocks: WeCom's (the reply's msgtime) and Siyu's
        stack.rt.clock.advance(seconds)
        stack.control("POST", "/clock", json={"advance_s": seconds})
    wait_for(lambda: cards_to(stack, "zhangsan"), timeout=20)  # the 2-minute push went out
    stack.chat("zhangsan", ext, "今天下午就给您开好")  # answered at minute 3

    def answered():
        with stack.session() as s:
            return s.get(Conversation, conversation.id).awaiting_since is None

    wait_for(answered, timeout=15)
    stack.rt.clock.advance(300)  # well past the 5-minute step
    stack.control("POST", "/clock", json={"advance_s": 300})
    time.sleep(3)  # a few worker rounds
    assert cards_to(stack, "lisi") == []


def _customer_waiting(stack, name: str, question: str) -> tuple[str, Conversation]:
    """A customer of 张三's by a channel whose question, archived and pulled, waits."""
    run(sync_staff(stack.rt, stack.tenant_id))
    stack.enable_archive()
    ext = stack.scan(make_channel(stack).config_id, name)["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.chat(ext, "zhangsan", question)

    def waiting():
        with stack.session() as s:
            query = select(Conversation).where(Conversation.external_userid == ext)
            return s.scalar(query.where(Conversation.awaiting_since.is_not(None)))

    return ext, wait_for(waiting, timeout=15)


def test_a_member_taken_off_the_archive_is_not_escalated_for_replies_the_archive_no_longer_shows(stack):
    """The admin takes 张三 off 会话存档's permit list while a customer waits on him: his reply
    is not archived, and without a word from WeCom the wait would go on to his leader and a
    call. Siyu reads the permit list and ends the wait owing nothing, saying why."""
    from siyu.conversations import queries as conversation_queries
    from siyu.conversations import tasks as conversation_tasks
    from siyu.customers import queries as customer_queries
    from siyu.sla.models import SlaEscalation, SlaWait
    from siyu.tenancy.models import Staff

    ext, conversation = _customer_waiting(stack, "卫女士", "快递到哪了？")
    permit = stack.corp_path("/archive/permit")
    stack.control("PUT", permit, json={"userids": ["lisi", "wangwu"]})
    try:
        stack.chat("zhangsan", ext, "已经到您楼下了")  # not archived: he is off the list
        run(conversation_tasks.read_permit_lists(stack.rt))
    finally:
        stack.control("PUT", permit, json={"userids": None})
    with stack.session() as s:
        wait = s.scalar(select(SlaWait).where(SlaWait.conversation_id == conversation.id))
        assert (wait.close_reason, s.get(Conversation, conversation.id).awaiting_since) == (
            "unarchived",
            None,
        )
        steps = s.scalars(select(SlaEscalation.status).where(SlaEscalation.wait_id == wait.id)).all()
        assert set(steps) <= {"cancelled"}
    stack.rt.clock.advance(700)  # past every step
    time.sleep(3)  # a few worker rounds
    assert not [
        c for c in cards_to(stack, "zhangsan") + cards_to(stack, "lisi") if "卫女士" in str(c["payload"])
    ]
    admin = SimpleNamespace(tenant_id=stack.tenant_id, visible_staff=None, timezone="Asia/Shanghai")
    with stack.session() as s:
        timeline = customer_queries.timeline(s, admin, conversation.customer_id, now=stack.rt.now())
    [entry] = [e for e in timeline if e["kind"] == "wait"]
    assert entry["data"]["state"] == "unarchived"
    assert (
        entry["text"]
        == "客户发来消息等待回复：「快递到哪了？」；成员已不在会话存档范围内，回复无法看到，不再计时"
    )
    # the chat says so, in the page and the API
    with stack.session() as s:
        shown = conversation_queries.conversation(s, admin, conversation.id)
    assert shown["member_unarchived_since"] is not None
    # back on the list: timed again from his next question
    run(conversation_tasks.read_permit_lists(stack.rt))
    with stack.session() as s:
        assert s.scalar(select(Staff.unarchived_since).where(Staff.userid == "zhangsan")) is None


def test_a_member_who_left_is_not_taken_for_one_taken_off_the_archive(stack):
    """张三 leaves the company while a customer waits on him: WeCom's permit list names him no
    more, and the staff sync has not run since. His customer still waits on the board for
    someone to take them over (README), not settled as if he were taken off the archive."""
    from siyu.conversations import tasks as conversation_tasks
    from siyu.sla.models import SlaWait
    from siyu.tenancy.models import Staff

    _, conversation = _customer_waiting(stack, "蒋先生", "保修多久？")
    stack.control("DELETE", stack.corp_path("/staff/zhangsan"))
    run(conversation_tasks.read_permit_lists(stack.rt))
    with stack.session() as s:
        member = s.scalar(select(Staff).where(Staff.userid == "zhangsan"))
        assert (member.active, member.unarchived_since) == (False, None)
        wait = s.scalar(select(SlaWait).where(SlaWait.conversation_id == conversation.id))
        assert (wait.closed_at, s.get(Conversation, conversation.id).awaiting_since) == (
            None,
            wait.started_at,
        )


def test_a_member_taken_off_the_archive_is_settled_though_the_staff_sync_fails(stack):
    """Before ddea5cb a tenant whose directory sync WeCom refuses (60011: the app may not read
    the directory) still had a member taken off the archive settled at the next permit read.
    Now the read first syncs the staff, and its failure drops the whole read: the customer goes
    on escalating to the leader and a call, though answered."""
    from siyu.conversations import tasks as conversation_tasks
    from siyu.sla.models import SlaWait

    _, conversation = _customer_waiting(stack, "卫女士", "快递到哪了？")
    permit = stack.corp_path("/archive/permit")
    stack.control("PUT", permit, json={"userids": ["lisi", "wangwu"]})
    fault = {"corp_id": stack.corp_id, "path": "/cgi-bin/department/list", "errcode": 60011, "times": 5}
    stack.control("POST", "/faults", json=fault)
    try:
        run(conversation_tasks.read_permit_lists(stack.rt))
    finally:
        stack.control("PUT", permit, json={"userids": None})
        stack.control("DELETE", "/faults")
    with stack.session() as s:
        wait = s.scalar(select(SlaWait).where(SlaWait.conversation_id == conversation.id))
        assert (wait.close_reason, s.get(Conversation, conversation.id).awaiting_since) == (
            "unarchived",
            None,
        )
