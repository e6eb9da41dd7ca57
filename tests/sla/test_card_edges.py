"""Cards at the edges of the outbox: a card WeCom refused while a step was about to join it
takes no new step (the step would wait out its backoff), and a card sent whose outcome the
database would not record reaches the member once when it goes again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest
from sqlalchemy import event

from siyu.notify.outbox import AS_SENT
from siyu.notify.tasks import RECORD_RETRY_S
from siyu.sla import firing
from siyu.sla.firing import fire_batch
from siyu.tenancy.tasks import sync_staff
from tests.notify.test_recording import claimed, refused_when_sent, run_as_worker
from tests.sla.conftest import Wait, now_ms
from tests.sla.test_firing import claimed as due_steps
from tests.support.stack import stack, wait_for

CARD = [{"delay_s": 120, "action": "app_message", "target": "agent"}]


@contextlib.contextmanager
def waiting(settings, db, **policy):
    """The emulator and a tenant with no worker of its own, its policy one card to the agent."""
    with stack(settings, db, serve_siyu=False) as st:
        asyncio.run(sync_staff(st.rt, st.tenant_id))
        w = Wait(st.rt, st.tenant_id, now_ms(st.rt))
        w.stack = st
        w.customer("wmcustomer1", "王女士")
        w.customer("wmcustomer2", "赵先生")
        w.policy(steps=CARD, **policy)
        yield w


@contextlib.contextmanager
def before_statement(db, marker: str | Callable[[str], bool], run):
    """`run()` once, just before the first statement whose SQL holds `marker` (or that
    `marker(sql)` picks) is executed: what another worker does between two statements of one
    transaction."""
    done = []
    picks = marker if callable(marker) else lambda sql: marker in sql

    def hook(conn, cursor, statement, parameters, context, executemany):
        if not done and picks(statement):
            done.append(statement)
            run()

    event.listen(db.engine, "before_cursor_execute", hook)
    try:
        yield done
    finally:
        event.remove(db.engine, "before_cursor_execute", hook)


def received(w, userid: str = "zhangsan") -> list[dict]:
    """The cards the member got (WeCom's duplicate check drops a send equal to one before)."""
    return [m["payload"]["textcard"] for m in w.stack.app_messages() if userid in m["recipients"]]


def test_a_card_wecom_refuses_while_a_step_is_joining_it_takes_no_new_step(settings, db):
    """Firing reads a person's cards, then locks the one a step will join. A sender that
    claims that card in between and has WeCom refuse it leaves it backing off: the step must
    not join it then (it would wait out the backoff, or die with the card)."""
    if not db.is_postgres:
        pytest.skip("SQLite's write lock, taken before firing reads, keeps senders out until it commits")
    with waiting(settings, db, merge_window_s=5) as w:
        st = w.stack
        w.say("在吗？", at=0)
        w.say("请问能开发票吗？", at=1, ext="wmcustomer2")
        w.pulled(3600)
        w.clock(120)
        assert list(fire_batch(w.rt, due_steps(w)).values()) == ["fired"]
        [card] = w.outbox()
        time.sleep(firing.JOIN_OVERDUE_S + 0.2)  # no sender has taken it: overdue, a step may join it

        def sender_meets_a_refusal() -> None:
            fault = {"corp_id": st.corp_id, "path": "/cgi-bin/message/send", "errcode": -1, "times": 50}
            st.control("POST", "/faults", json=fault)  # (the client retries "busy" itself a few times)
            try:
                run_as_worker(st.rt, claimed(db, [card.id], settings.work_lease))
            finally:
                st.control("DELETE", "/faults")

        w.clock(121)
        locked_read = "outbox.payload, outbox.due_at"  # firing._cards_of, after its plain read
        with before_statement(db, locked_read, sender_meets_a_refusal) as ran:
            assert list(fire_batch(w.rt, due_steps(w)).values()) == ["fired"]
        assert ran, "firing no longer reads the card to join again, under a lock"
        first, *others = w.outbox()
        assert (first.status, first.attempts) == ("pending", 1) and "WeCom is busy" in first.last_error
        assert len(first.payload["escalations"]) == 1  # the refused card tells of its own step only
        assert [len(c.payload["escalations"]) for c in others] == [1]  # the new step: a card of its own


def test_a_card_sent_but_not_recorded_reaches_the_member_once(settings, db, caplog):
    """WeCom got the card; the database refused to record it, twice. Its lease runs out and a
    worker sends it again a minute later: the very card that went (not one built anew, saying
    3 minutes), which WeCom's duplicate check drops, so the member has one card, not two."""
    quick = settings.model_copy(update={"work_lease_s": 1.0})
    with waiting(quick, db) as w:
        st = w.stack
        w.say("你好，这个套餐多少钱？", at=0)
        w.pulled(3600)
        w.clock(120)
        assert w.fire() == 1
        [card] = w.outbox()
        with refused_when_sent(db, st.tenant_id):
            run_as_worker(st.rt, claimed(db, [card.id], quick.work_lease))
        assert [c.status for c in w.outbox()] == ["pending"]  # (tried again RECORD_RETRY_S later)
        w.clock(180)
        again = wait_for(lambda: claimed(db, [card.id], quick.work_lease), timeout=30 + RECORD_RETRY_S)
        run_as_worker(st.rt, again)
        [sent] = w.outbox()
        assert sent.status == "sent" and AS_SENT not in sent.payload  # (kept only while it may go again)
        assert [c["title"] for c in received(w)] == ["王女士 已等待 2 分钟 未回复"]


def test_a_card_wecom_refused_is_built_anew_for_its_retry(settings, db):
    """A refusal reached nobody: the retry tells how long the customer has waited by then."""
    with waiting(settings, db) as w:
        st = w.stack
        w.say("你好，这个套餐多少钱？", at=0)
        w.pulled(3600)
        w.clock(120)
        assert w.fire() == 1
        [card] = w.outbox()
        fault = {"corp_id": st.corp_id, "path": "/cgi-bin/message/send", "errcode": -1, "times": 50}
        st.control("POST", "/faults", json=fault)
        try:
            run_as_worker(st.rt, claimed(db, [card.id], settings.work_lease))
        finally:
            st.control("DELETE", "/faults")
        [refused] = w.outbox()
        assert refused.status == "pending" and AS_SENT not in refused.payload
        w.clock(180)
        run_as_worker(st.rt, wait_for(lambda: claimed(db, [card.id], settings.work_lease), timeout=30))
        assert [c["title"] for c in received(w)] == ["王女士 已等待 3 分钟 未回复"]


def test_a_batch_of_cards_reads_as_many_statements_as_one_card(local):
    """The worker builds a batch's cards at once (the escalation benchmark sends 100,000): the
    remarks they name customers by, whom each agent's card says comes next and when each
    leader's says the agent had theirs are read for the batch, not card by card."""
    from sqlalchemy import event, select

    from siyu.customers.models import Customer, Follow
    from siyu.notify.models import OutboxMessage
    from siyu.sla.tasks import _notices

    w = local
    agents = {"wmA": "zhangsan", "wmB": "wangwu", "wmC": "lisi"}
    for ext, agent in agents.items():
        w.customer(ext, f"客户{ext[-1]}")
        with w.session() as s:
            customer = s.scalar(select(Customer).where(Customer.external_userid == ext))
            s.add(Follow(customer_id=customer.id, staff_userid=agent, remark=f"备注{ext[-1]}"))
    steps = [
        {"delay_s": 60, "action": "app_message", "target": "agent"},
        {"delay_s": 600, "action": "app_message", "target": "leader"},
    ]
    w.policy(steps=steps, merge_window_s=0)

    def built(cards: list) -> tuple[int, list[str]]:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(w.rt.db.engine, "before_cursor_execute", listener)
        try:
            bodies = _notices(w.rt, w.tenant_id, cards)
        finally:
            event.remove(w.rt.db.engine, "before_cursor_execute", listener)
        with w.session() as s:  # as the sender records them
            for card in cards:
                s.get(OutboxMessage, card.id).status = "sent"
        return len(seen), sorted(b["textcard"]["description"] for b in bodies.values())

    def fired_at(seconds: int) -> list:
        w.clock(seconds)
        w.fire()
        return [c for c in w.outbox() if c.status == "pending"]

    w.say("在吗？", at=0, ext="wmA")
    w.say("在吗？", at=100, ext="wmB", staff="wangwu")
    w.say("在吗？", at=100, ext="wmC", staff="lisi")
    w.pulled(7200)
    one, [said] = built(fired_at(70))
    assert "客户A（备注：备注A）" in said and "仍未回复将提醒李四" in said, said
    many, said = built(fired_at(170))
    assert ["将提醒李四" in said[0], "将提醒王总" in said[1]] == [True, True], said
    assert many == one
    one, [said] = built(fired_at(610))
    assert "已于" in said and "提醒张三" in said, said
    many, said = built(fired_at(710))
    assert ["提醒王五</div>" in said[0], "提醒李四</div>" in said[1]] == [True, True], said
    assert many == one
