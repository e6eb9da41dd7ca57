"""Set-wise writes (siyu.db.bulk) keep to the session's tenant like the ORM does."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, StatementError

from siyu.conversations.models import Conversation, Message
from siyu.db import bulk, database
from tests.support import new_tenant as tenant


def test_bulk_writes_stamp_and_stay_within_the_tenant(db):
    a, b = tenant(db), tenant(db)
    rows = [{"key": "single:wmX:zhangsan", "kind": "single", "message_count": 0, "awaiting_msgid": ""}]
    with db.tenant_session(a) as s:
        [(a_id,)] = bulk.insert_rows(s, Conversation, rows, conflict=["key"], returning=["id"])
        assert bulk.insert_rows(s, Conversation, rows, conflict=["key"], returning=["id"]) == []  # once
    with db.tenant_session(b) as s:
        [(b_id,)] = bulk.insert_rows(s, Conversation, rows, conflict=["key"], returning=["id"])
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    change = ["message_count", "awaiting_since", "last_inbound_at"]
    with db.tenant_session(a) as s:  # b's id given from a's session changes nothing
        bulk.update_by_id(
            s,
            Conversation,
            [
                {"id": a_id, "message_count": 3, "awaiting_since": at, "last_inbound_at": None},
                {"id": b_id, "message_count": 9, "awaiting_since": at, "last_inbound_at": None},
            ],
            change,
        )
    with db.system_session() as s:
        found = {c.id: c for c in s.scalars(select(Conversation).where(Conversation.id.in_([a_id, b_id])))}
    assert (found[a_id].tenant_id, found[a_id].message_count, found[a_id].awaiting_since) == (a, 3, at)
    assert found[a_id].last_inbound_at is None
    assert (found[b_id].tenant_id, found[b_id].message_count, found[b_id].awaiting_since) == (b, 0, None)
    with db.tenant_session(a) as s:  # stored as the ORM stores times: comparisons in SQL work
        assert s.scalar(select(Conversation.id).where(Conversation.awaiting_since == at)) == a_id
        assert s.scalar(select(Conversation.id).where(Conversation.awaiting_since > at)) is None


def test_an_update_unless_changed_leaves_the_rows_another_writer_changed_since(db):
    """A calendar edit moves the pending steps it read; one a worker fired meanwhile keeps the
    time it was due (it had been moved, and the day's lateness figures with it)."""
    a = tenant(db)
    rows = [
        {"key": f"single:wm{i}:zhangsan", "kind": "single", "message_count": 0, "awaiting_msgid": m}
        for i, m in enumerate(["waiting", "answered"])
    ]
    with db.tenant_session(a) as s:
        ids = [i for (i,) in bulk.insert_rows(s, Conversation, rows, conflict=["key"], returning=["id"])]
        bulk.update_by_id(
            s,
            Conversation,
            [{"id": i, "message_count": 5} for i in ids],
            ["message_count"],
            unless_changed=("awaiting_msgid", "waiting"),
        )
    with db.tenant_session(a) as s:
        counts = dict(s.execute(select(Conversation.awaiting_msgid, Conversation.message_count)).all())
    assert counts == {"waiting": 5, "answered": 0}


def test_an_overlong_value_is_refused_not_cut(db):
    if not db.is_postgres:
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    t = tenant(db)
    stem = "m" * 128  # msgid is VARCHAR(128): two ids alike in their first 128 characters
    rows = [
        {
            "msgid": stem + end,
            "sent_at": datetime(2026, 11, 25, 2, 0, tzinfo=UTC),
            "text": "",
            "direction": "in",
        }
        for end in ("a", "b")
    ]
    with pytest.raises(DBAPIError), db.tenant_session(t) as s:
        bulk.insert_rows(s, Message, rows, conflict=["msgid"], returning=["msgid", "id"])


def test_a_naive_time_is_refused_on_both_databases(db):
    t = tenant(db)
    row = {"key": "k", "kind": "single", "message_count": 0, "awaiting_msgid": ""}
    with pytest.raises((ValueError, StatementError)), db.tenant_session(t) as s:
        bulk.insert_rows(s, Conversation, [{**row, "last_message_at": datetime(2026, 11, 25, 2, 0)}])


def test_times_come_back_aware_in_utc_whichever_way_they_were_written(db):
    """Read back through the ORM and through bulk's RETURNING: a time written by the ORM,
    by bulk (in another zone: the same instant, the same stored text as its UTC twin, which
    bulk remembers), and on SQLite as text by hand, with and without an offset of its own."""
    t = tenant(db)
    at = datetime(2026, 11, 25, 2, 0, 0, 250000, tzinfo=UTC)
    beijing = at.astimezone(timezone(timedelta(hours=8)))
    row = {"kind": "single", "message_count": 0, "awaiting_msgid": ""}
    with db.tenant_session(t) as s:
        s.add(Conversation(key="orm", last_message_at=at, **row))
        s.flush()
        returned = bulk.insert_rows(
            s,
            Conversation,
            [{**row, "key": "utc", "last_message_at": at}, {**row, "key": "bj", "last_message_at": beijing}],
            returning=["key", "last_message_at"],
        )
    assert dict(returned) == {"utc": at, "bj": at}
    if not db.is_postgres:
        with db.tenant_session(t) as s:
            s.execute(
                text("UPDATE conversations SET last_inbound_at = :v WHERE key = :k"),
                [
                    {"v": "2026-11-25 10:00:00.250000+08:00", "k": "orm"},
                    {"v": "2026-11-25 02:00:00.25", "k": "bj"},
                ],
            )
    with db.tenant_session(t) as s:
        stored = {c.key: c for c in s.scalars(select(Conversation))}
        texts = dict(s.execute(text("SELECT key, CAST(last_message_at AS TEXT) FROM conversations")).all())
    assert {k: c.last_message_at for k, c in stored.items()} == {"orm": at, "utc": at, "bj": at}
    assert all(c.last_message_at.utcoffset() == timedelta(0) for c in stored.values())
    assert texts["bj"] == texts["utc"]
    if not db.is_postgres:
        assert texts["utc"] == texts["orm"] == "2026-11-25 02:00:00.250000"
        assert stored["orm"].last_inbound_at == stored["bj"].last_inbound_at == at
    with pytest.raises((ValueError, StatementError)), db.tenant_session(t) as s:  # remembered or not
        bulk.insert_rows(
            s, Conversation, [{**row, "key": "naive", "last_message_at": at.replace(tzinfo=None)}]
        )


def test_many_rows_with_conflicts_ints_and_floats_and_nulls(db):
    t = tenant(db)
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    rows = [
        {
            "msgid": f"c{i}",
            "sent_at": at + timedelta(seconds=i),
            "body": {"i": i, "s": '中文 "引号"'},
            "text": "x",
            "direction": "in",
            "needs_reply": None if i % 3 else bool(i % 2),
            "reply_score": None if i % 5 == 0 else (1 if i % 2 else 0.5),
        }
        for i in range(7000)  # more than one SQLite statement's worth of parameters
    ]
    with db.tenant_session(t) as s:
        first = bulk.insert_rows(s, Message, rows[:4000], conflict=["msgid"], returning=["msgid", "id"])
        second = bulk.insert_rows(s, Message, rows, conflict=["msgid"], returning=["msgid", "id"])
    assert len(first) == 4000 and {m for m, _ in second} == {f"c{i}" for i in range(4000, 7000)}
    with db.tenant_session(t) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 7000
        m = s.scalar(select(Message).where(Message.msgid == "c3"))
        assert (m.body, m.needs_reply, m.reply_score, m.sent_at) == (
            {"i": 3, "s": '中文 "引号"'},
            True,
            1.0,
            at + timedelta(seconds=3),
        )
        m = s.scalar(select(Message).where(Message.msgid == "c5"))
        assert (m.needs_reply, m.reply_score) == (None, None)


def test_lookups_among_a_batch_of_values_find_exactly_those(db):
    t = tenant(db)
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    rows = [{"msgid": f"wm中{i}", "sent_at": at, "text": "x"} for i in range(600)]
    with db.tenant_session(t) as s:
        ids = dict(bulk.insert_rows(s, Message, rows, returning=["msgid", "id"]))
        wanted = {f"wm中{i}" for i in range(0, 600, 3)} | {"not-stored"}
        found = set(s.scalars(select(Message.msgid).where(bulk.among(s, Message.msgid, wanted))))
        assert found == wanted - {"not-stored"}
        by_id = bulk.among(s, Message.id, [ids["wm中7"], 2**40])  # ids of any size
        assert list(s.scalars(select(Message.msgid).where(by_id))) == ["wm中7"]
        assert list(s.scalars(select(Message.msgid).where(bulk.among(s, Message.msgid, [])))) == []


def test_json_already_serialized_is_stored_as_it_came(db):
    """The archive hands over each message as the JSON text it decrypted: stored verbatim,
    it reads back as the same object; a plain string is still a JSON string."""
    t = tenant(db)
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    raw = '{"msgid": "j1", "text": {"content": "能便宜点吗？"}, "tolist": ["zhangsan"]}'
    rows = [
        {"msgid": "j1", "sent_at": at, "text": "", "direction": "in", "body": bulk.JsonText(raw)},
        {"msgid": "j2", "sent_at": at, "text": "", "direction": "in", "body": "只是一句话"},
    ]
    with db.tenant_session(t) as s:
        bulk.insert_rows(s, Message, rows)
    with db.tenant_session(t) as s:
        bodies = dict(s.execute(select(Message.msgid, Message.body)).all())
        stored = s.execute(text("SELECT CAST(body AS TEXT) FROM messages WHERE msgid = 'j1'")).scalar()
    assert bodies == {"j1": json.loads(raw), "j2": "只是一句话"}
    assert stored == raw


def test_times_written_in_bulk_match_the_orm_in_any_zone(db):
    """Bulk and ORM rows store the same text for the same instant (SQLite compares times as
    text): a time given in Shanghai time, one on a whole second, and one in 1999."""
    from zoneinfo import ZoneInfo

    t = tenant(db)
    times = [
        datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")),  # 02:00 UTC, no microseconds
        datetime(2026, 11, 25, 2, 0, 0, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    with db.tenant_session(t) as s:
        for i, at in enumerate(times):
            s.add(Message(msgid=f"orm{i}", sent_at=at, text="", direction="in"))
        rows = [
            {"msgid": f"bulk{i}", "sent_at": at, "text": "", "direction": "in"} for i, at in enumerate(times)
        ]
        bulk.insert_rows(s, Message, rows)
    with db.tenant_session(t) as s:
        for at in times:
            same = s.scalars(select(Message.msgid).where(Message.sent_at == at).order_by(Message.msgid)).all()
            assert sorted(m.rstrip("0123456789") for m in same) == ["bulk", "orm"]
        ordered = s.scalars(select(Message.msgid).order_by(Message.sent_at, Message.msgid)).all()
    assert ordered == ["bulk2", "orm2", "bulk0", "orm0", "bulk1", "orm1"]


def test_a_bulk_import_leaves_sqlite_with_statistics_so_key_lookups_stay_lookups(db, tmp_path, monkeypatch):
    """Without statistics SQLite takes the tenant condition of a scoped query for a selective
    one and scans the tenant's rows where the primary key would do; `wrote` takes them once
    the first rows are written (not only after STATISTICS_EVERY of them)."""
    if db.is_postgres:
        pytest.skip("PostgreSQL: see the next test")
    fresh = database.Database(f"sqlite:///{tmp_path / 'import.db'}")  # one tenant, as after an import
    fresh.migrate()
    monkeypatch.setattr(database, "FIRST_ANALYSIS", 500)
    t = tenant(fresh)
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    rows = [{"msgid": f"s{i}", "sent_at": at, "text": "", "direction": "in"} for i in range(600)]
    with fresh.tenant_session(t) as s:
        bulk.insert_rows(s, Message, rows)
    recall = f"UPDATE messages SET recalled = 1 WHERE id IN (1, 2) AND tenant_id = {t}"

    def plan() -> str:
        with fresh.engine.connect() as conn:  # a new connection reads the statistics afresh
            return " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {recall}"))

    try:
        fresh.wrote(300)
        assert "PRIMARY KEY" not in plan()  # not yet: the tenant's index, every row of it
        fresh.wrote(300)
        assert "PRIMARY KEY" in plan()
    finally:
        fresh.dispose()


def test_a_worker_vacuums_the_queue_tables_where_postgresql_autovacuum_is_off(db):
    """Sent messages leave an index entry under "pending" behind; with autovacuum off nothing
    but Siyu's own `tidy` removes them (and gives the planner statistics)."""
    from siyu.jobs.worker import QUEUE_TABLES
    from siyu.notify.models import OutboxMessage

    if not db.is_postgres:
        assert db.tidy(QUEUE_TABLES) is False  # SQLite: statistics come from `wrote`
        return
    t = tenant(db)
    with db.tenant_session(t) as s:
        s.add_all(OutboxMessage(kind="app_message", dedupe_key=f"tidy{i}", payload={}) for i in range(50))
        s.flush()
        s.execute(text("UPDATE outbox SET status = 'sent' WHERE dedupe_key LIKE 'tidy%'"))

    def vacuums() -> int:
        with db.engine.connect() as conn:
            return conn.scalar(text("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'"))

    with db.engine.connect() as conn:
        autovacuum = conn.scalar(text("SHOW autovacuum"))
    before = vacuums()
    assert db.tidy(QUEUE_TABLES) is (autovacuum == "off")
    if autovacuum == "off":
        assert vacuums() == before + 1


def test_postgresql_without_autovacuum_analyzes_the_tables_nobody_ever_did(db):
    """Where autovacuum is off nothing else would ever analyze a table, and the planner took
    every tenant condition for a selective one; once ingest has written its first rows,
    `wrote` analyzes the tables never analyzed, once. With autovacuum on it does nothing."""
    if not db.is_postgres:
        pytest.skip("SQLite: see the test above")
    probe = f"wrote_probe_{secrets.token_hex(4)}"
    fresh = database.Database(db.url)  # a process that has written nothing yet
    with fresh.engine.begin() as conn:
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar() == "on"
        conn.exec_driver_sql(f"CREATE TABLE {probe} AS SELECT generate_series(1, 10) AS n")

    def rows_known() -> float:  # -1 until the table is first analyzed
        with fresh.engine.connect() as conn:
            return conn.exec_driver_sql(f"SELECT reltuples FROM pg_class WHERE relname = '{probe}'").scalar()

    try:
        fresh.wrote(database.FIRST_ANALYSIS - 1)
        assert rows_known() == -1
        fresh.wrote(1)
        assert rows_known() == (-1 if autovacuum else 10)
        with fresh.engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO {probe} SELECT generate_series(11, 20)")
        fresh.wrote(database.FIRST_ANALYSIS * 100)  # once only: stale statistics do
        assert rows_known() == (-1 if autovacuum else 10)
    finally:
        with fresh.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {probe}")
        fresh.dispose()
