"""A snooze against ingest, on PostgreSQL: a snooze that locked the wait's pending step, then
the wait, crossed ingest closing a wait (the wait, then its steps), and the archive pull died as
the deadlock's victim; a recall moving the wait meanwhile dropped the snooze, which still
answered as taken. A snooze now locks the conversation first, as ingest does."""

from __future__ import annotations

from datetime import timedelta

from siyu.sla import service
from tests.sla.test_card_edges import before_statement
from tests.sla.test_races import concurrently, joined, postgres_only


def _locks_the_wait(sql: str) -> bool:
    return "FROM sla_waits" in sql and "FOR UPDATE" in sql and "sla_escalations" not in sql


def test_an_agent_reply_pulled_while_someone_snoozes_is_stored(local, db):
    """张三's customer asked at 0; at 60 s 李四 snoozes the chat for an hour, and at that moment
    the archive pull stores 张三's reply. The reply closes the wait and cancels its steps; the
    snooze has locked the step and now wants the wait. PostgreSQL aborts one of them as a
    deadlock: the ingest (which waited first), so the pull of that batch fails."""
    postgres_only(db)
    w = local
    w.policy()
    w.say("在吗？我的订单还没发货", at=0)
    w.pulled(3600)
    w.clock(60)
    cid = w.conversation().id
    now = w.rt.now()

    other = []
    start = lambda: other.append(  # noqa: E731
        concurrently(db, lambda: w.reply("在的，马上帮您查", at=59))
    )
    moved = None
    snooze_error = None
    with before_statement(db, _locks_the_wait, start) as done:
        try:
            with w.session() as s:
                moved = service.snooze(s, cid, now + timedelta(hours=1), now, by="李四")
        except Exception as exc:  # noqa: BLE001
            snooze_error = exc
    assert done and other
    ingest_error = None
    try:
        joined(other[0])
    except Exception as exc:  # noqa: BLE001
        ingest_error = exc
    assert ingest_error is None and snooze_error is None, (
        f"ingest: {str(ingest_error).splitlines()[0] if ingest_error else 'ok'};"
        f" snooze: {str(snooze_error).splitlines()[0] if snooze_error else moved}"
    )


def test_a_snooze_taken_while_a_recall_moves_the_wait_is_carried(local, db):
    """张三 answered 在吗 with 在, the customer asked 这款有货吗 (a wait). The admin snoozes it for
    an hour at the moment the archive pull stores 张三's recall of 在 (the wait moves to 在吗,
    carrying each person's snooze). Ingest read the wait's snoozes before it locked anything;
    the snooze commits in between (answered: moved a step), and the wait the customer now waits
    on carries the snoozes as read before it: the admin's hour is gone, and 张三 is carded at
    2 minutes."""
    postgres_only(db)
    w = local
    w.policy()
    w.say("在吗", at=0)
    answer = w.reply("在", at=5)
    w.say("这款有货吗", at=10)
    cid = w.conversation().id
    w.clock(20)
    until = w.at(20 + 3600)
    answers = []

    def admin_snoozes() -> None:
        with w.session() as s:
            answers.append(service.snooze(s, cid, until=until, now=w.at(20), by="管理员", by_id=2))

    other = []
    start = lambda: other.append(concurrently(db, admin_snoozes))  # noqa: E731
    is_wait_write = lambda sql: sql.lstrip().startswith("UPDATE sla_waits")  # noqa: E731
    with before_statement(db, is_wait_write, start) as done:
        w.recall(answer, at=21, ext="zhangsan", staff="wmcustomer1")
    assert done and other
    joined(other[0])
    [running] = [x for x in w.waits() if x.closed_at is None]
    assert running.snoozed_until == until, (
        f"the snooze answered {answers}; the open wait is snoozed until {running.snoozed_until}"
        f" ({running.snoozes}), not the admin's hour"
    )


def test_a_snooze_answered_as_taken_holds_the_reminders(local, db):
    """The admin snoozes the chat for an hour (POST .../snooze) just as the pull stores 张三's
    recall of 在: the wait the snooze found is closed once it locks it, and the customer waits
    on another. The snooze stores nothing, yet answers {"snoozed": true, "until": +1h}: the
    admin believes the reminders are held, and 张三 is carded at 2 minutes."""
    from tests.sla.test_board_metrics import _ask

    postgres_only(db)
    w = local
    w.policy()
    w.say("在吗", at=0)
    answer = w.reply("在", at=5)
    w.say("这款有货吗", at=10)
    cid = w.conversation().id
    w.clock(20)

    other = []
    start = lambda: other.append(  # noqa: E731
        concurrently(db, lambda: w.recall(answer, at=19, ext="zhangsan", staff="wmcustomer1"))
    )
    steps_locked = lambda sql: "FROM sla_escalations" in sql and "FOR UPDATE" in sql  # noqa: E731
    with before_statement(db, steps_locked, start) as done:
        said = _ask(w, "POST", f"/api/v1/conversations/{cid}/snooze", json={"minutes": 60})
    assert done and other
    joined(other[0])
    assert said.status_code == 200, said.text
    [running] = [x for x in w.waits() if x.closed_at is None]
    if said.json()["snoozed"]:
        assert running.snoozed_until is not None, (
            f"the snooze answered {said.json()}; the wait the customer waits on is not snoozed"
        )
