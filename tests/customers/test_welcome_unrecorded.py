"""A welcome WeCom accepted whose outcome the database would not record (a dropped connection,
the worker killed right after the send): the customer got it once, so it must not come back
recorded as failed (欢迎语发送失败 on the timeline, its words lost)."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from siyu.customers.models import Customer, TimelineEvent
from siyu.db import utcnow
from siyu.notify.models import OutboxMessage
from tests.customers.test_welcome_slow_wecom import _channel
from tests.support.stack import stack as make_stack
from tests.support.stack import wait_for


def _refuse_welcome_sent(db, on: bool) -> None:
    name = "hunt_refuse_welcome_sent"
    with db.engine.begin() as conn:
        if db.is_postgres:
            if on:
                conn.exec_driver_sql(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused by a test trigger'; END $$"
                )
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {name} BEFORE UPDATE ON outbox FOR EACH ROW WHEN "
                    f"(NEW.kind = 'welcome' AND NEW.status = 'sent') EXECUTE FUNCTION {name}()"
                )
            else:
                conn.exec_driver_sql(f"DROP TRIGGER {name} ON outbox")
                conn.exec_driver_sql(f"DROP FUNCTION {name}()")
        elif on:
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON outbox WHEN NEW.kind = 'welcome' AND "
                "NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
            )
        else:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")


def _sent_unrecorded(settings, db, past_deadline: bool):
    """李先生 is added; WeCom accepts his welcome, and the database refuses both of the worker's
    tries to record it. The row, its lease run out (3 s), is taken up again, within its 20 s
    or (`past_deadline`) after them. Returns the row as it ends, and his timeline's kinds."""
    quick = settings.model_copy(update={"work_lease_s": 3.0})
    with make_stack(quick, db) as st:
        channel = _channel(st, "您好，我是您的专属顾问")
        _refuse_welcome_sent(db, True)
        try:
            ext = st.scan(channel.config_id, "李先生")["external_userid"]
            wait_for(lambda: st.welcome_messages(), timeout=15)  # WeCom accepted it
            time.sleep(2.0)  # both of the worker's tries to record it refused
            if past_deadline:
                with st.session() as s:
                    welcome = update(OutboxMessage).where(OutboxMessage.kind == "welcome")
                    s.execute(welcome.values(deadline_at=utcnow()))
        finally:
            _refuse_welcome_sent(db, False)

        def settled():
            with st.session() as s:
                rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "welcome")))
            return [r for r in rows if r.status in ("sent", "dead")]

        [row] = wait_for(settled, timeout=90)
        with st.session() as s:
            customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
            kinds = list(
                s.scalars(select(TimelineEvent.kind).where(TimelineEvent.customer_id == customer_id))
            )
        assert len(st.welcome_messages()) == 1  # the customer got it, once
        return row, kinds


def test_a_welcome_sent_but_not_recorded_is_not_recorded_as_failed_when_taken_up_again(settings, db):
    """Taken up again within its 20 s, the welcome is sent again; WeCom's 41051 (the code used)
    is then this welcome's own doing: recorded sent, not 欢迎语发送失败."""
    row, kinds = _sent_unrecorded(settings, db, past_deadline=False)
    assert (row.status, "welcome_failed" in kinds) == ("sent", False), (
        f"the customer got the welcome, but Siyu recorded it {row.status!r} ({row.last_error!r});"
        f" timeline {kinds}"
    )


def test_a_welcome_sent_but_not_recorded_and_taken_up_past_its_deadline_reads_result_unknown(settings, db):
    """Taken up again past its 20 s (the default lease is 60 s), it is not sent again: the
    timeline says 结果未知, the customer may have it, rather than 发送失败."""
    row, kinds = _sent_unrecorded(settings, db, past_deadline=True)
    assert ("welcome_unknown" in kinds, "welcome_failed" in kinds) == (True, False), (row.status, kinds)
