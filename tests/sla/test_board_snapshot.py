"""The board's figures are read in several statements, all from one snapshot: a reply stored
while the board is being read had dropped its wait out of every figure of the day (each
statement had seen the database as it was then)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import event as db_events

from tests.sla.test_board_metrics import _get

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_reply_stored_while_the_board_is_read_does_not_drop_its_wait_from_the_figures(local):
    """10:00 a customer asks 张三; the 2-minute step fires at 10:02; 张三 answers at 10:02:20.
    The board is read at 10:02:30, and the reply is stored (by the archive pull, on its own
    connection) while the board is being read. Whichever it saw, the wait is the day's: either
    still open and past its first step (仍未回复) or answered late (超时回复). It must not vanish
    from both: the board read the answered waits before the reply was stored and the
    unanswered ones after it."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()  # 2 / 5 / 10 minutes
    w.say("我的订单怎么还没发货？", at=0)
    w.pulled(3600)
    w.clock(125)
    assert w.fire() == 1
    w.clock(150)

    replied = []

    def reply_meanwhile(conn, cursor, statement, parameters, context, executemany):
        # the board's read of the day's unanswered waits: the reply is stored just before it
        if not replied and "close_reason NOT IN" in statement and "started_at >=" in statement:
            replied.append(True)
            w.reply("今天发", at=140)

    db_events.listen(w.rt.db.engine, "before_cursor_execute", reply_meanwhile)
    try:
        board = _get(w, "/api/v1/sla/board?day=2025-09-10").json()
    finally:
        db_events.remove(w.rt.db.engine, "before_cursor_execute", reply_meanwhile)
    assert replied, "the board read no unanswered waits"
    first = board["within_steps"][0]
    counted = first["answered"] + first["answered_late"] + first["outlived"]
    assert counted == 1, first


def test_the_boards_heading_counts_the_customers_it_lists_while_a_reply_is_stored(local):
    """The same race on the page: the waiting rows are read, then (a reply stored meanwhile)
    the count for the heading: 0 位客户等待回复 above the one customer listed as waiting."""
    w = local
    w.t0 = datetime(2025, 9, 10, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    w.customer("wmcustomer1", "郭哥")
    w.say("我的订单怎么还没发货？", at=0)
    w.pulled(3600)
    w.clock(150)
    replied = []

    def reply_meanwhile(conn, cursor, statement, parameters, context, executemany):
        # the count of who waits now, per member, read after the rows
        if (
            not replied
            and "GROUP BY sla_waits.staff_userid" in statement
            and "closed_at IS NULL" in statement
        ):
            replied.append(True)
            w.reply("今天发", at=140)

    db_events.listen(w.rt.db.engine, "before_cursor_execute", reply_meanwhile)
    try:
        page = _get(w, "/sla").text
    finally:
        db_events.remove(w.rt.db.engine, "before_cursor_execute", reply_meanwhile)
    assert replied, "the board counted nobody waiting"
    assert "郭哥" in page  # listed as waiting
    assert "0 位客户等待回复" not in page
