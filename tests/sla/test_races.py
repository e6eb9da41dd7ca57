"""Races between what people do (snooze, no reply needed, a policy saved) and what the
workers do, on PostgreSQL: another transaction runs just before a given statement of the
one under test (tests/sla/test_card_edges.py's before_statement)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from siyu.conversations import tasks as conversation_tasks
from siyu.sla import service
from siyu.sla.firing import fire_batch
from siyu.sla.models import SlaEscalation
from siyu.tenancy.queries import members_left
from siyu.tenancy.tasks import sync_staff
from tests.notify.test_recording import claimed, run_as_worker
from tests.sla.conftest import items
from tests.sla.test_board_metrics import _ask, _get
from tests.sla.test_card_edges import before_statement, waiting
from tests.sla.test_firing import claimed as due_steps


def concurrently(db, run, settle_s: float = 10.0) -> threading.Thread:
    """`run()` in a thread of its own; returns once it is done or waits on a lock another
    transaction holds (the one under test, fixed to lock what it reads), so the test does not
    hang on a fix that makes the two queue. Join the thread after the transaction under test."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's join
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.errors = errors
    thread.start()
    deadline = time.monotonic() + settle_s
    while thread.is_alive() and time.monotonic() < deadline:
        with db.engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        if waiting:
            break
        time.sleep(0.02)
    return thread


def joined(thread: threading.Thread) -> None:
    thread.join(30)
    assert not thread.is_alive(), "the other transaction never finished"
    if thread.errors:
        raise thread.errors[0]


def while_a_step_fires(w, db, run) -> None:
    """The 2-minute step fires, and `run()` goes in another transaction just as firing takes
    its recipient's lock; back once both are done (what `run` raised, raised)."""
    other = []
    start = lambda: other.append(concurrently(db, run))  # noqa: E731
    with before_statement(db, "pg_advisory_xact_lock", start):
        assert list(fire_batch(w.rt, due_steps(w)).values()) == ["fired"]
    assert other, "firing no longer locks its recipients"
    joined(other[0])


def zhangsan_posts_as_a_step_fires(w, db, path: str, **kw):
    """张三's POST to the API, made as the step fires (while_a_step_fires): its answer, which
    must not be the 500 of a deadlock's victim."""
    answers = []

    def post() -> None:
        try:
            answers.append(_ask(w, "POST", path, "agent", "zhangsan", **kw))
        except Exception as exc:  # noqa: BLE001 - what the server answers with a 500
            answers.append(exc)

    while_a_step_fires(w, db, post)
    [answer] = answers
    failed = answer if isinstance(answer, Exception) else None
    assert failed is None, f"张三's POST {path} failed (a 500): {str(failed).splitlines()[0]}"
    return answer


def postgres_only(db):
    if not db.is_postgres:
        pytest.skip("SQLite serialises every writer: the race needs PostgreSQL's row locks")


SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_business_hours_turned_on_while_a_step_fires_hold_the_next_step_too(local, db):
    """Wednesday 17:57 a customer asks 张三. At 17:59 his 2-minute card fires, and at that
    moment the admin switches the policy to business hours only (09:00-12:00, 13:30-18:00).
    The leader's card, 5 minutes in, is then due at 09:02 on Thursday: 3 business minutes
    until 18:00, 2 more on the next shift. A save moves every open wait's pending step to the
    new clock (service._follow_new_clock), but the step that firing scheduled while the save
    ran was still on the wall clock: 李四 got a card at 18:02, after hours, as if business
    hours had never been turned on."""
    postgres_only(db)
    w = local
    w.t0 = datetime(2025, 9, 10, 17, 57, tzinfo=SHANGHAI)  # a Wednesday, a workday
    w.clock(0)
    w.policy()  # wall clock: 2 min agent card, 5 min leader card, 10 min call
    w.say("你好，我想退货，怎么操作？", at=0)
    w.pulled(3600)
    w.clock(120)

    def admin_turns_business_hours_on() -> None:
        with w.session() as s:
            service.hold_policy(s, 0)  # as the policy page and the API save it
            service.save_policy(s, business_hours_only=True, now=w.rt.now(), by="admin")

    while_a_step_fires(w, db, admin_turns_business_hours_on)

    with w.session() as s:
        [(step, due)] = s.execute(
            select(SlaEscalation.step, SlaEscalation.due_at).where(
                SlaEscalation.conversation_id == w.conversation().id, SlaEscalation.status == "pending"
            )
        ).all()
    assert (step, due.astimezone(SHANGHAI)) == (1, datetime(2025, 9, 11, 9, 2, tzinfo=SHANGHAI)), (
        f"the leader's card is due {due.astimezone(SHANGHAI):%m-%d %H:%M}, by the wall clock turned off"
    )


def test_a_card_to_an_agent_the_directory_sync_found_gone_while_it_fired_is_not_sent(settings, db):
    """张三's 2-minute card fires just as WeCom's directory callback has the sync mark him gone
    (deleted in WeCom): firing had read him as still with the corp. A step to a member who has
    left reaches nobody (firing skips it, and the call sender and the plain app-message sender
    drop a member who left since their row was queued). The card's sender checks nothing: it
    sent the card, WeCom refused it (81013, every recipient invalid), and the board lists a
    card given up with WeCom's "check the member is in the app's visible range" advice, about
    a member Siyu knew had left."""
    postgres_only(db)
    with waiting(settings, db) as w:
        st = w.stack
        w.say("你好，这个套餐多少钱？", at=0)
        w.pulled(3600)
        w.clock(120)

        def zhangsan_leaves() -> None:
            st.control("DELETE", f"/corps/{st.corp_id}/staff/zhangsan")
            asyncio.run(sync_staff(st.rt, st.tenant_id))

        while_a_step_fires(w, db, zhangsan_leaves)
        with w.session() as s:
            assert members_left(s, ["zhangsan"]) == {"zhangsan"}  # the sync's verdict, committed

        [card] = w.outbox()
        run_as_worker(st.rt, claimed(db, [card.id], settings.work_lease))
        [card] = w.outbox()
        assert (card.status, card.last_error) == ("skipped", ""), (
            f"the card to 张三, who had left, was {card.status}: {card.last_error[:120]}"
        )


def test_a_snooze_at_the_moment_a_step_fires_is_taken_and_holds_the_next_step(local, db):
    """At 2 minutes 张三's card fires; in that same moment 张三 snoozes the chat for an hour
    (POST /api/v1/conversations/{id}/snooze). Firing holds the step's row and then writes the
    wait's breached step; the snooze writes the wait and then moves the step: each waits for
    the other, PostgreSQL aborts the snooze as a deadlock after a second, and 张三 gets a 500,
    his snooze lost. (Were it taken, the step it moves was the one firing: the step firing
    schedules next, the leader's card at 5 minutes, would be left inside the hour.)"""
    postgres_only(db)
    w = local
    w.policy()  # 2 min agent card, 5 min leader card, 10 min call
    w.say("在吗？我的订单还没发货", at=0)
    w.pulled(3600)
    w.clock(120)
    cid = w.conversation().id
    now = w.rt.now()
    answer = zhangsan_posts_as_a_step_fires(
        w, db, f"/api/v1/conversations/{cid}/snooze", json={"minutes": 60}
    )
    assert answer.status_code == 200, f"张三's snooze answered {answer.status_code}: {answer.text[:200]}"

    [row] = [r for r in _get(w, "/api/v1/sla/board").json()["waiting"] if r["conversation_id"] == cid]
    snoozed_until = datetime.fromisoformat(row["snoozed_until"])
    next_step_at = datetime.fromisoformat(row["next_step_at"])
    assert snoozed_until >= now + timedelta(hours=1)
    assert next_step_at >= snoozed_until, (
        f"the board says the {row['next_step_target']}'s {row['next_step_action']} comes at"
        f" {next_step_at:%H:%M:%S}, {(snoozed_until - next_step_at) // timedelta(minutes=1)} minutes"
        f" before 张三's snooze ends ({snoozed_until:%H:%M:%S})"
    )


def test_no_reply_needed_at_the_moment_a_step_fires_is_taken(local, db):
    """At 2 minutes 张三's card fires; in that same moment 张三 marks the chat 无需回复
    (POST /api/v1/conversations/{id}/dismiss). Firing holds the step's row and then writes the
    wait's breached step; "no reply needed" closes the wait and then cancels its steps: each
    waits for the other, PostgreSQL aborts the mark as a deadlock after a second, and 张三 gets
    a 500. The customer still waits, and the leader is carded at 5 minutes about a chat 张三
    had said needs no reply."""
    postgres_only(db)
    w = local
    w.policy()  # 2 min agent card, 5 min leader card, 10 min call
    w.say("在吗？我的订单还没发货", at=0)
    w.pulled(3600)
    w.clock(120)
    cid = w.conversation().id
    answer = zhangsan_posts_as_a_step_fires(w, db, f"/api/v1/conversations/{cid}/dismiss")
    assert answer.status_code == 200 and answer.json()["dismissed"], answer.text[:200]
    [wait] = w.waits()
    assert wait.close_reason == "dismissed"
    w.clock(300)  # the leader's card is due: the chat needs no reply, nobody is carded
    assert w.fire() == 0, w.steps()


def test_a_reply_pulled_as_a_step_fires_is_stored_not_a_deadlock(local, db):
    """At 2 minutes 张三's card fires; in that same moment the archive pull brings 张三's reply
    (sent at 1:59). Firing holds the step's row, then writes the wait's breached step; the pull
    had locked the conversation FOR UPDATE (held off the key share the next step's insert takes)
    and closed the wait before cancelling its pending steps: each waited for the other, and
    PostgreSQL killed the pull as the deadlock's victim. The archive page showed the pull failed
    with "deadlock detected", and the reply was not stored until the next pull."""
    postgres_only(db)
    w = local
    w.policy()  # 2 min agent card, 5 min leader card, 10 min call
    w.say("在吗？我的订单还没发货", at=0)
    w.pulled(120)
    w.clock(120)
    reply = w._message("zhangsan", "wmcustomer1", "您好，马上帮您查", 119, None)
    errors = []

    def the_pull_stores_the_reply() -> None:
        try:
            asyncio.run(
                conversation_tasks.store_batch(w.rt, w.tenant_id, items(reply), w.rt.now(), drained=True)
            )
        except Exception as exc:  # noqa: BLE001 - the pull's failure, asserted below
            errors.append(exc)

    while_a_step_fires(w, db, the_pull_stores_the_reply)
    assert not errors, f"the pull storing 张三's reply failed: {str(errors[0]).splitlines()[0]}"
    [wait] = w.waits()
    assert wait.close_reason == "replied"
    with w.session() as s:
        pending = s.scalars(select(SlaEscalation).where(SlaEscalation.status == "pending")).all()
    assert pending == [], "the leader's card is still to come for a chat 张三 answered"
