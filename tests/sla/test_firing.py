"""Firing claimed steps in batches: a person's cards kept to the merge window and WeCom's
pace (the first at once), answered waits left out, each step fired once however many
workers hold the same rows, and a step fired when it is due rather than at the next poll."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from siyu.conversations import tasks as conversation_tasks
from siyu.conversations.models import Conversation
from siyu.db import utcnow
from siyu.jobs.worker import Worker
from siyu.notify.models import OutboxMessage
from siyu.sla import firing, service, tasks
from siyu.sla.firing import fire_batch
from siyu.sla.models import SlaEscalation

# Cards are spaced in real time (the senders' clock), which runs on between a test's steps.
# A spacing counted from a card that went at a known time is checked to within SLACK (the
# time between two reads of the clock in one call); one counted from "now", when the card
# before is due but has not gone yet, is checked against the time around the firing call
# (`fire_timed`), so a slow machine cannot fail it.
SLACK = timedelta(seconds=0.5)


def fire_timed(w, rows) -> tuple[dict, datetime, datetime]:
    """fire_batch, and the real time just before and after it."""
    before = utcnow()
    outcomes = fire_batch(w.rt, rows)
    return outcomes, before, utcnow()


def claimed(w, limit: int = 500) -> list:
    """This tenant's due steps (oldest first) that its archive is pulled past, as a worker sees
    them before firing (the database is shared: other tests' rows are left alone)."""
    e = SlaEscalation
    due = (
        select(e.id, e.tenant_id)
        .where(e.tenant_id == w.tenant_id, e.status == "pending", e.due_at <= w.rt.now())
        .where(firing.archive_pulled_past(e))
        .order_by(e.due_at)
        .limit(limit)
    )
    with w.rt.db.system_session() as s:
        return [SimpleNamespace(id=row.id, tenant_id=row.tenant_id) for row in s.execute(due)]


def step_ids(w, ext: str, staff: str = "zhangsan") -> list[int]:
    conversation = w.conversation(ext, staff)
    with w.session() as s:
        return list(
            s.scalars(
                select(SlaEscalation.id)
                .where(SlaEscalation.conversation_id == conversation.id)
                .order_by(SlaEscalation.step)
            )
        )


def test_steps_for_one_person_inside_the_merge_window_become_one_card(local, monkeypatch):
    w = local
    monkeypatch.setattr(firing, "JOIN_OVERDUE_S", 60.0)  # however slow this machine, the due card stays due
    w.policy(merge_window_s=5)
    for i in range(3):
        w.say(f"问题{i}？", at=i, ext=f"wmm{i}")
    w.say("我也有问题", at=1, ext="wmm9", staff="wangwu")
    w.pulled(3600)
    w.clock(125)
    rows = claimed(w)
    assert len(rows) == 4
    outcomes = fire_batch(w.rt, rows)
    assert sorted(outcomes.values()) == ["fired"] * 4
    by_person = {c.payload["touser"]: c for c in w.outbox()}
    assert sorted(by_person) == ["wangwu", "zhangsan"] and len(w.outbox()) == 2
    zhangsan, wangwu = by_person["zhangsan"], by_person["wangwu"]
    assert zhangsan.payload == {
        "touser": "zhangsan",
        "escalations": [step_ids(w, f"wmm{i}")[0] for i in range(3)],
    }
    assert wangwu.payload["escalations"] == [step_ids(w, "wmm9", "wangwu")[0]]
    assert zhangsan.due_at == zhangsan.created_at  # nobody was told lately: it goes at once

    # a step firing once that card is due goes to his next card, due a window after it
    # (a due card is the senders': firing no longer locks it to add steps)
    w.say("还有一个问题？", at=10, ext="wmm3")
    w.clock(135)
    outcomes, before, after = fire_timed(w, claimed(w))
    assert list(outcomes.values()) == ["fired"]
    [card] = [c for c in w.outbox() if c.payload["touser"] == "zhangsan" and c.id != zhangsan.id]
    assert card.payload["escalations"] == [step_ids(w, "wmm3")[0]]
    # his first card is due but has not gone: it goes now, and this one a window after it
    window = timedelta(seconds=5)
    assert zhangsan.due_at + window <= before + window <= card.due_at <= after + window

    # a later batch joins that card while it still waits to go out (no sender has it yet)
    w.say("再问一下？", at=12, ext="wmm4")
    w.clock(137)
    assert list(fire_batch(w.rt, claimed(w)).values()) == ["fired"]
    cards = [c for c in w.outbox() if c.payload["touser"] == "zhangsan"]
    assert [c.id for c in cards] == sorted([zhangsan.id, card.id])
    [joined] = [c for c in cards if c.id == card.id]
    assert joined.payload["escalations"] == [step_ids(w, "wmm3")[0], step_ids(w, "wmm4")[0]]
    with w.session() as s:
        notes = {e.note for e in s.scalars(select(SlaEscalation).where(SlaEscalation.status == "fired"))}
    assert f"merged into outbox {card.id}" in notes


def _first_of_two_fired(w, prefix: str) -> None:
    """Two of zhangsan's customers wait a second apart; the first one's step has fired."""
    w.policy(merge_window_s=5)
    w.say("问题？", at=0, ext=f"{prefix}0")
    w.say("还有问题？", at=1, ext=f"{prefix}1")
    w.pulled(3600)
    w.clock(120)
    assert list(fire_batch(w.rt, claimed(w)).values()) == ["fired"]


def test_when_the_senders_are_behind_steps_join_the_overdue_card(local):
    w = local
    _first_of_two_fired(w, "wmo")
    time.sleep(firing.JOIN_OVERDUE_S + 0.2)  # no sender has taken the card, due a while ago
    w.clock(121)
    assert list(fire_batch(w.rt, claimed(w)).values()) == ["fired"]
    # one card waiting for him, not a pile that would reach WeCom at once
    [card] = w.outbox()
    assert card.payload["escalations"] == [step_ids(w, "wmo0")[0], step_ids(w, "wmo1")[0]]


def test_a_card_that_went_late_counts_from_when_it_went(local):
    w = local
    _first_of_two_fired(w, "wml")
    [card] = w.outbox()
    # it was due five seconds ago but the senders were behind: WeCom got it a second ago
    went = card.due_at - timedelta(seconds=1)
    with w.session() as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == card.id)
            .values(status="sent", due_at=card.due_at - timedelta(seconds=5), sent_at=went)
        )
    w.clock(121)
    assert list(fire_batch(w.rt, claimed(w)).values()) == ["fired"]
    [later] = [c for c in w.outbox() if c.id != card.id]
    assert abs(later.due_at - (went + timedelta(seconds=5))) < SLACK


def test_without_a_merge_window_a_person_still_gets_no_more_cards_than_wecom_delivers(local):
    w = local
    w.policy(merge_window_s=0)
    burst = firing.CARD_BURST
    for i in range(burst + 2):
        w.say(f"问题{i}？", at=i, ext=f"wmn{i}")
    w.say("我也有问题", at=1, ext="wmn9", staff="wangwu")
    w.pulled(3600)
    w.clock(121)
    assert sorted(fire_batch(w.rt, claimed(w)).values()) == ["fired"] * 3
    [first] = [c for c in w.outbox() if c.payload["touser"] == "zhangsan"]
    assert first.payload["escalations"] == [step_ids(w, f"wmn{i}")[0] for i in range(2)]
    assert first.due_at == first.created_at  # nobody was told lately: it goes at once
    [wangwu] = [c for c in w.outbox() if c.payload["touser"] == "wangwu"]
    assert wangwu.due_at == wangwu.created_at

    # steps a second apart: each goes at once, up to WeCom's burst
    for i in range(2, burst + 1):
        with w.session() as s:
            s.execute(update(OutboxMessage).where(OutboxMessage.status == "pending").values(status="sent"))
        w.clock(120 + i)
        assert list(fire_batch(w.rt, claimed(w)).values()) == ["fired"]
        [card] = [c for c in w.outbox() if c.payload["escalations"] == [step_ids(w, f"wmn{i}")[0]]]
        assert card.due_at == card.created_at
    # the burst is spent: the next one waits for the bucket to refill a card's worth
    with w.session() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.status == "pending").values(status="sent"))
    w.clock(120 + burst + 1)
    outcomes, before, after = fire_timed(w, claimed(w))
    assert list(outcomes.values()) == ["fired"]
    [later] = [c for c in w.outbox() if c.payload["escalations"] == [step_ids(w, f"wmn{burst + 1}")[0]]]
    # marked sent without a sending time: they count as gone now, and this one waits the spacing
    spacing = timedelta(seconds=firing.CARD_SPACING_S)
    assert before + spacing <= later.due_at <= after + spacing
    cards = [c for c in w.outbox() if c.payload["touser"] == "zhangsan"]
    assert len(cards) == burst + 1


def test_the_pace_is_a_token_bucket_of_cards():
    t = datetime(2026, 12, 4, 9, 0, 0)
    s = firing.CARD_SPACING_S
    burst = firing.CARD_BURST
    assert firing.next_card_at([], 0) is None
    # a lone card: the next may go at once (or after the merge window)
    assert firing.next_card_at([t], 0) == t
    assert firing.next_card_at([t], 5) == t + timedelta(seconds=5)
    # a full burst at once: the next waits one spacing
    assert firing.next_card_at([t] * burst, 0) == t + timedelta(seconds=s)
    # cards one spacing apart never use the burst up
    steady = [t + timedelta(seconds=s * k) for k in range(20)]
    assert firing.next_card_at(steady, 0) == steady[-1]
    # a card a second: the bucket runs dry after more than a burst, then one per spacing
    quick = [t + timedelta(seconds=k) for k in range(burst + 1)]
    allowed = firing.next_card_at(quick, 0)
    assert allowed == t + timedelta(seconds=s * (burst + 1) - s * (burst - 1))
    # whatever arrives, no more than WeCom's 30 in any minute go: count what the rule admits
    sent: list[datetime] = []
    for k in range(600):  # one step every 0.1 s for a minute
        now = t + timedelta(seconds=k / 10)
        at = firing.next_card_at(sent[-30:], 0)
        if at is None or at <= now:
            sent.append(now)
    assert sent[burst - 1] - t < timedelta(seconds=1) and sent[burst] == t + timedelta(seconds=s)
    assert len(sent) == burst + 60 // s - 1 <= 30  # the burst, then one at 4, 8 ... 56 s


def test_a_batch_fires_only_the_waits_still_unanswered(local):
    w = local
    w.policy(merge_window_s=5)
    for i in range(3):
        w.say(f"请问{i}？", at=0, ext=f"wma{i}")
    w.pulled(3600)
    w.clock(125)
    rows = claimed(w)
    assert len(rows) == 3
    # meanwhile: wma1 is answered; wma2's conversation stops waiting where no SLA listener ran
    w.reply("您好，在的", at=124, ext="wma1")
    wma2 = w.conversation("wma2")
    with w.session() as s:
        s.execute(update(Conversation).where(Conversation.id == wma2.id).values(awaiting_msgid=""))
    outcomes = fire_batch(w.rt, rows)
    first = {f"wma{i}": step_ids(w, f"wma{i}")[0] for i in range(3)}
    assert outcomes == {first["wma0"]: "fired", first["wma1"]: "lost", first["wma2"]: "cancelled"}
    [card] = w.outbox()
    assert card.payload == {"touser": "zhangsan", "escalations": [first["wma0"]]}
    assert [s[:2] for s in w.steps("wma1")] == [(0, "cancelled")]
    assert [s[:2] for s in w.steps("wma2")][0] == (0, "cancelled")
    assert [x.close_reason for x in w.waits("wma2")] == ["closed"]
    assert [x.breached_step for x in w.waits("wma0")] == [0]


def test_batches_racing_over_the_same_rows_fire_each_step_once(local):
    w = local
    w.policy(merge_window_s=5)
    agents = ["zhangsan", "wangwu", "lisi"]
    for i in range(30):
        w.say(f"第{i}个问题？", at=i % 5, ext=f"wmr{i}", staff=agents[i % 3])
    w.pulled(7200)
    w.clock(3600)  # all three steps of every wait are due: one at a time, each fired makes the next
    for step in range(3):
        rows = claimed(w)
        assert len(rows) == 30
        results: list[dict[int, str]] = []
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def worker(part, start=start, results=results, errors=errors):
            start.wait()
            try:
                results.append(fire_batch(w.rt, part))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        # every worker was told to fire all the rows, in different orders
        orders = [rows, rows[::-1], rows[1::2] + rows[::2], rows[::2] + rows[1::2]]
        threads = [threading.Thread(target=worker, args=(o,)) for o in orders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for row in rows:
            won = [r[row.id] for r in results if r[row.id] != "lost"]
            assert won in (["fired"], ["covered"]), (step, row.id, [r[row.id] for r in results])
    with w.session() as s:
        assert sorted(s.scalars(select(SlaEscalation.status))) == ["fired"] * 90
    notices = [i for c in w.outbox() for i in c.payload["escalations"]]
    calls = [i for c in w.outbox("sla_call") for i in c.payload["escalations"]]
    assert len(notices) == len(set(notices)) == 60  # each agent and leader step in one card
    assert sorted(c.payload["callee"] for c in w.outbox("sla_call")) == sorted(agents)  # one call each
    assert len(calls) == len(set(calls)) == 30  # each call step in its agent's one call, covered or not


def test_the_worker_fires_a_step_when_it_is_due_not_at_the_next_poll(local, monkeypatch):
    """Its poll made a minute long: a step it knows of fires when due, not a minute later.
    (With the 0.5 s poll the step had to fire within 0.4 s of its due time, which a loaded
    machine holding the worker's thread back half a second failed.)"""
    w = local
    monkeypatch.setattr(tasks, "POLL_S", 60.0)
    w.policy(merge_window_s=0, steps=[{"delay_s": 2, "action": "app_message", "target": "agent"}])
    w.pulled(3600)
    worker = Worker(w.rt, concurrency=4)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        deadline = time.monotonic() + 30  # the worker is up ...
        while not w.rt._sla_wakes and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # ... and past its first look: nothing of ours to fire, it sleeps its poll
        w.say("在吗？", at=(w.rt.now() - w.t0).total_seconds() - 0.5)  # due in 1.5 s
        w.rt.archive_moved()  # it looks again (as a pull makes it) and finds the step not yet due
        deadline = time.monotonic() + 30
        while w.fired() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        with w.session() as s:
            esc = s.scalar(select(SlaEscalation).where(SlaEscalation.status == "fired"))
        assert esc is not None
        # at its due time, give or take a loaded machine's stalls; at the next poll it would
        # have been a minute late
        assert timedelta(0) <= esc.fired_at - esc.due_at < timedelta(seconds=10)
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(15)
        loop.close()


def test_a_pull_that_moves_the_archive_on_fires_what_waited_for_it_at_once(local, monkeypatch):
    """The archive is never pulled past now, so a step due meanwhile waits for the next pull:
    it fires on that pull, not at the worker's next poll (made a minute long here)."""
    w = local
    monkeypatch.setattr(tasks, "POLL_S", 60.0)
    w.policy(merge_window_s=0, steps=[{"delay_s": 2, "action": "app_message", "target": "agent"}])
    lag = w.rt.settings.archive_lag_s
    w.pulled(-60 - lag)  # pulled as far as a minute before the question
    w.say("在吗？", at=-10 - lag)  # its step was due 8 s before the archive can hold
    worker = Worker(w.rt, concurrency=4)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:
        deadline = time.monotonic() + 30  # the worker is up (its SLA loop listens for pulls) ...
        while not w.rt._sla_wakes and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # ... and past its first look: nothing may fire yet, so it sleeps its poll
        assert w.rt._sla_wakes and w.fired() == 0
        asyncio.run(conversation_tasks.store_batch(w.rt, w.tenant_id, [], w.rt.now(), drained=True))
        deadline = time.monotonic() + 20  # a third of the poll: only the pull can have woken it
        while w.fired() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.fired() == 1
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(15)
        loop.close()


def test_the_worker_knows_how_long_until_the_next_step_may_fire(local):
    """(Other tests' steps share the database: ours comes due first, theirs minutes later.)"""
    w = local
    w.policy(steps=[{"delay_s": 2, "action": "app_message", "target": "agent"}])
    w.say("在吗？", at=0)
    assert tasks.next_due_in(w.rt, cap=300) > 2  # the archive is not pulled past it yet
    w.pulled(3600)
    assert 1 < tasks.next_due_in(w.rt, cap=300) <= 2
    assert tasks.next_due_in(w.rt, cap=0.5) == 0.5
    w.clock(3)  # due, not yet fired: the firing's business, nothing to wait for
    assert tasks.next_due_in(w.rt, cap=300) > 2


@pytest.mark.parametrize("business_s", [None, 125.0])  # under a business-hours policy, both clocks
def test_a_card_of_many_waits_stays_within_what_wecom_shows_whole(local, business_s):
    from siyu.sla.tasks import DESCRIPTION_BYTES, build_card

    started = local.rt.now() - timedelta(hours=63, minutes=3)
    entries = [
        {
            "conversation_id": i,
            "customer": f"很长名字的客户第{i}位",
            "agent": "lisi",
            "agent_name": "李四",
            "asks": ["您好", "我想问一下这款产品的售后服务政策具体是怎样的，谢谢"],
            "started_at": started,
            "business_s": business_s,
        }
        for i in range(8)
    ]
    card = build_card(local.rt, "demo", "Asia/Shanghai", "zhangsan", entries)["textcard"]
    assert len(card["description"].encode()) <= DESCRIPTION_BYTES
    assert card["description"].endswith('<div class="highlight">请提醒同事尽快回复</div>')
    shown = card["description"].count('class="normal"')
    assert 1 <= shown < 8 and f"还有 {8 - shown} 位" in card["description"]
    if business_s:
        assert "2 分钟（工作时间；实际 63 小时 3 分钟）" in card["description"]


def test_a_wait_a_queued_call_covers_is_still_called_about_when_the_calls_own_is_answered(local):
    from siyu.sla.tasks import _call_plan

    w = local
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}], call_cooldown_s=900)
    w.say("问题A？", at=0, ext="wmA")
    w.say("问题B？", at=1, ext="wmB")
    w.pulled(7200)
    w.clock(70)
    assert w.fire() == 2  # A's step queues the call; B's is covered by it
    [call] = w.outbox("sla_call")
    assert len(call.payload["escalations"]) == 2  # the call speaks of both
    w.reply("您好", at=71, ext="wmA")  # A answered before the call rings; B still waits
    plan = _call_plan(w.rt, w.tenant_id, call)
    assert plan is not None and plan["params"][0] == "1"  # it rings, about B


def test_a_call_placed_late_counts_its_cooldown_from_when_it_rang(local):
    from siyu.sla.models import SlaCall

    w = local
    w.policy(steps=[{"delay_s": 60, "action": "voice_call", "target": "agent"}], call_cooldown_s=900)
    with w.session() as s:  # queued at 70 s, through only at 840 s (the provider was down)
        s.add(SlaCall(callee_userid="zhangsan", status="placed", created_at=w.at(70), placed_at=w.at(840)))
    w.say("问题B？", at=920, ext="wmB")
    w.pulled(7200)
    w.clock(980)
    assert w.fire() == 1
    assert w.outbox("sla_call") == []  # not rung again 140 s later
    assert w.steps("wmB")[0][1:] == ("fired", "zhangsan")


def test_the_board_says_a_call_step_the_cooldown_covers_will_not_ring(local, db):
    """张三 was rung at 07:35 (the 15-minute cooldown runs to 07:50). The board read 下一步 07:40
    语音电话打给负责成员 张三 for a customer of his, and at 07:40 the step was recorded as
    刚打过电话，未再拨打: it says so ahead, page and API, as firing decides it; a step due after
    the cooldown reads as before, and rings."""
    from sqlalchemy import event

    from siyu.sla.models import SlaCall
    from tests.sla.test_board_metrics import SHANGHAI, _get
    from tests.sla.test_never_ring import _row

    w = local
    w.t0 = datetime(2025, 9, 10, 7, 30, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy(steps=[{"delay_s": 120, "action": "voice_call", "target": "agent"}], call_cooldown_s=900)
    with w.session() as s:  # rang at 07:35 about another customer
        s.add(SlaCall(callee_userid="zhangsan", status="placed", created_at=w.at(300), placed_at=w.at(300)))
    w.say("能便宜点吗？", at=480, ext="wmB")  # 07:38: its call is due 07:40
    w.say("发货了吗？", at=490, ext="wmB2")
    w.pulled(7200)
    w.clock(540)
    reads: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        if "max(sla_calls.created_at)" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        page = _get(w, "/sla").text
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    for ext, due in (("wmB", "07:40"), ("wmB2", "07:41")):  # (07:40:10 shown as the minute it fires by)
        row = _row(page, w.conversation(ext).id)
        said = f'下一步 {due} <span class="next-step">语音电话打给负责成员 张三</span>，07:35 刚打过电话'
        assert f"{said}，届时不再拨打" in row, row
    assert len(reads) == 1, reads  # one read for the board, not one a row
    board = _get(w, "/api/v1/sla/board").json()["waiting"]
    [b] = [r for r in board if r["conversation_id"] == w.conversation("wmB").id]
    assert datetime.fromisoformat(b["next_step_called_at"]) == w.at(300)
    w.clock(610)
    assert w.fire() == 2
    assert w.outbox("sla_call") == []  # covered, as said

    w.say("还在吗？", at=1140, ext="wmC")  # 07:49: due 07:51, past the cooldown
    w.clock(1170)
    row = _row(_get(w, "/sla").text, w.conversation("wmC").id)
    assert '下一步 07:51 <span class="next-step">语音电话打给负责成员 张三</span>' in row, row
    assert "刚打过电话" not in row, row
    board = _get(w, "/api/v1/sla/board").json()["waiting"]
    [c] = [r for r in board if r["conversation_id"] == w.conversation("wmC").id]
    assert c["next_step_called_at"] is None
    w.clock(1260)
    assert w.fire() == 1
    [call] = w.outbox("sla_call")  # rings, as the board said
    assert call.payload["callee"] == "zhangsan"


def test_a_new_step_does_not_join_a_card_backing_off_after_failures(local):
    w = local
    w.policy(merge_window_s=5, steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}])
    w.say("问题一？", at=0, ext="wmr0")
    w.pulled(7200)
    w.clock(120)
    assert list(fire_batch(w.rt, claimed(w)).values()) == ["fired"]
    [first] = w.outbox()
    with w.session() as s:  # WeCom refused it again and again: its next try in 10 minutes
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == first.id)
            .values(attempts=10, last_error="WeCom is busy", due_at=utcnow() + timedelta(seconds=600))
        )
    w.say("问题二？", at=600, ext="wmr1")
    w.clock(720)
    assert list(fire_batch(w.rt, claimed(w)).values()) == ["fired"]
    [card] = [c for c in w.outbox() if c.id != first.id]  # a card of its own, not a ride on that one
    assert card.due_at <= utcnow() + timedelta(seconds=10)


def test_a_queued_card_leaves_out_a_wait_snoozed_after_its_step_fired(local):
    from siyu.sla.tasks import _notice

    w = local
    w.policy(merge_window_s=60, steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}])
    w.say("在吗？", at=0)
    w.say("请问能开发票吗？", at=10, ext="wmcustomer2")
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1
    w.clock(130)
    assert w.fire() == 1  # 赵先生's step: its card waits for the window after 王女士's
    queued = [c for c in w.outbox() if c.status == "pending"]

    def told() -> str:
        return json.dumps([_notice(w.rt, w.tenant_id, card) for card in queued], ensure_ascii=False)

    assert "请问能开发票吗" in told()
    with w.session() as s:  # the agent snoozes him meanwhile
        service.snooze(s, w.conversation("wmcustomer2").id, until=w.at(1930), now=w.at(135))
    assert "请问能开发票吗" not in told() and "在吗" in told()  # the other customer still told of


def test_a_tenant_whose_steps_cannot_fire_does_not_hold_up_the_others(db, settings, caplog):
    from tests.sla.conftest import Wait, local_tenant, now_ms

    rt, broken_id = local_tenant(db, settings)
    broken = Wait(rt, broken_id, now_ms(rt))
    broken.policy()
    # more customers waiting, and longer, than one firing batch takes
    broken.ingest(
        *(broken._message(f"wmbroken{i}", "zhangsan", f"问题{i}？", 0, None) for i in range(tasks.BATCH + 1))
    )
    broken.pulled(3600)
    rt, fine_id = local_tenant(db, settings)
    fine = Wait(rt, fine_id, now_ms(rt))
    fine.policy()
    fine.say("还在吗？", at=0, ext="wmfine1")
    fine.pulled(3600)
    fine.clock(120)
    try:
        with broken.session() as s:  # a row firing cannot read (written by hand, or by an old version)
            s.execute(update(service.SlaPolicy).values(steps=[{"delay_s": 60}]))
        assert fine.fire() == 1  # the other tenant's agent is told all the same
        assert "firing" in caplog.text and f"tenant {broken_id}" in caplog.text  # and the log says whose
        assert broken.fired() == 0
    finally:
        with broken.session() as s:
            s.execute(update(SlaEscalation).where(SlaEscalation.status == "pending").values(status="skipped"))


def test_a_customer_whose_wechat_name_shows_nothing_is_a_customer_on_the_card_not_a_blank(local):
    """WeChat users often take the Braille blank (U+2800) as their nickname. Stored as WeCom
    gave it, the card's title read "⠀ 已等待 2 分钟 未回复" and the board's row was blank."""
    from siyu.customers.service import upsert_customer
    from siyu.sla import queries
    from siyu.sla.tasks import _notice

    w = local
    with w.session() as s:
        upsert_customer(s, {"external_userid": "wmcustomer1", "name": "\u2800\u3164"}, w.rt.now())
    w.policy(steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}])
    w.say("在吗？这款还有货吗", at=0)
    w.pulled(130)
    w.clock(121)
    assert w.fire() == 1
    card = _notice(w.rt, w.tenant_id, w.outbox()[-1])["textcard"]
    assert card["title"].startswith("客户 已等待 2 分钟"), card["title"]
    with w.session() as s:
        (waiting,) = queries.waiting_now(s, w.rt.now())
    assert waiting["customer"] == "（未命名）"  # (as the customer's page names them)
