"""SQLite ignores FOR UPDATE: the snooze's locks (d90af89, a5bc3d1) hold nothing there, and
pysqlite begins the transaction only at its first write."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from siyu.sla import service
from tests.sla.test_card_edges import before_statement


def test_two_people_snoozing_at_once_on_sqlite_each_keep_their_snooze(local, db):
    """张三 (person 1) snoozes for an hour; at that moment 李四 (person 2) snoozes for 30
    minutes. Each person's latest snooze is kept (sla_waits.snoozes), so that 张三 shortening
    his own later leaves 李四's standing. On SQLite the second read the wait before the first
    wrote it, and writes the snoozes it read: 张三's is gone."""
    if db.is_postgres:
        pytest.skip("SQLite's case")
    w = local
    w.policy()
    w.say("在吗？我的订单还没发货", at=0)
    w.pulled(3600)
    w.clock(60)
    cid = w.conversation().id
    now = w.rt.now()
    errors = []

    def zhangsan() -> None:
        try:
            with w.session() as s:
                service.snooze(s, cid, until=now + timedelta(hours=1), now=now, by="张三", by_id=1)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    def run_zhangsan() -> None:
        t = threading.Thread(target=zhangsan)
        t.start()
        t.join(40)

    first_write = lambda sql: sql.lstrip().startswith("UPDATE sla_waits")  # noqa: E731
    with before_statement(db, first_write, run_zhangsan) as done, w.session() as s:
        service.snooze(s, cid, until=now + timedelta(minutes=30), now=now, by="李四", by_id=2)
    assert done
    assert not errors, errors
    [wait] = w.waits()
    assert set(wait.snoozes) == {"id:1", "id:2"}, f"kept: {wait.snoozes}"
    assert wait.snoozed_until == now + timedelta(hours=1), wait.snoozed_until
