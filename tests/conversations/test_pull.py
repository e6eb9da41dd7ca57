"""Pulling the archive: from the last seq, each message once, nothing lost to a crash."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import delete, func, select

from siyu.config import Settings
from siyu.conversations import search, service, tasks
from siyu.conversations.models import ArchiveCursor, Message
from siyu.conversations.search import MessageSearch, SearchBacklog
from siyu.runtime import Runtime
from siyu.sla.models import SlaEscalation
from siyu.wecom.archive import ChatDataPipeline, JsonLinesArchiveSource, generate_key_pair
from siyu.wecom.finance_sdk import ArchiveError
from tests.conversations.test_ingest import Chat, tenant_id  # noqa: F401 - fixture


class Flaky:
    """The archive as the network delivers it: the n-th fetch fails (a crash mid-pull)."""

    def __init__(self, source, fail_on: set[int]):
        self.source, self.fail_on, self.calls = source, fail_on, 0

    async def fetch(self, after_seq, limit=1000):
        self.calls += 1
        if self.calls in self.fail_on:
            raise ConnectionError("archive unreachable")
        return await self.source.fetch(after_seq, limit)

    async def aclose(self):
        await self.source.aclose()


def chat_items(n: int) -> list:
    """A chat of n archived messages, customer questions and staff answers in turn."""
    chat = Chat()
    return [chat.customer(f"第{i}个问题？", i) if i % 2 else chat.staff(f"回答{i}", i) for i in range(n)]


def lines(n: int) -> list[str]:
    return [json.dumps({"seq": it.seq, "message": it.message}, ensure_ascii=False) for it in chat_items(n)]


@pytest.fixture
def rt(db, settings: Settings) -> Runtime:
    return Runtime.create(settings, db)


def stored(rt, tenant_id) -> tuple[int, int]:  # noqa: F811
    with rt.db.tenant_session(tenant_id) as s:
        count = s.scalar(select(func.count()).select_from(Message))
        distinct = s.scalar(select(func.count(func.distinct(Message.msgid))))
        return count, distinct


def test_pulling_in_batches_from_the_last_seq(rt, tenant_id, monkeypatch):  # noqa: F811
    monkeypatch.setattr(tasks, "BATCH", 7)
    counts = asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(30))))
    assert counts == {"stored": 30, "duplicates": 0}
    with rt.db.tenant_session(tenant_id) as s:
        cursor = s.scalar(select(ArchiveCursor))
    assert cursor.seq == 30 and cursor.pulled_until is not None
    again = asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(30))))
    assert again["stored"] == 0


def test_a_crash_mid_pull_neither_skips_nor_duplicates(rt, tenant_id, monkeypatch):  # noqa: F811
    monkeypatch.setattr(tasks, "BATCH", 5)
    monkeypatch.setattr(tasks, "BATCHES_PER_STORE", 2)
    data = lines(23)
    flaky = Flaky(JsonLinesArchiveSource(data), fail_on={3})
    with pytest.raises(ConnectionError):
        asyncio.run(tasks.pull(rt, tenant_id, flaky))
    assert stored(rt, tenant_id) == (10, 10)  # the first store (two batches) made it, with the cursor
    with rt.db.tenant_session(tenant_id) as s:
        error = s.scalar(select(ArchiveCursor.last_error))
    assert "archive unreachable" in error
    assert error.startswith(f"{rt.now():%Y-%m-%d} ") and " UTC · ConnectionError: " in error  # says when
    asyncio.run(tasks.pull(rt, tenant_id, flaky))
    assert stored(rt, tenant_id) == (23, 23)


def test_a_failure_while_storing_rolls_the_batch_back(rt, tenant_id, monkeypatch):  # noqa: F811
    monkeypatch.setattr(tasks, "BATCH", 5)
    real = tasks.classifier

    class Broken:
        def classify(self, batch):
            raise RuntimeError("classifier crashed")

    monkeypatch.setattr(tasks, "classifier", lambda: Broken())
    with pytest.raises(RuntimeError):
        asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(12))))
    assert stored(rt, tenant_id) == (0, 0)
    monkeypatch.setattr(tasks, "classifier", real)
    asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(12))))
    assert stored(rt, tenant_id) == (12, 12)


def test_a_failed_store_keeps_the_batch_fetched_after_it_out(rt, tenant_id, monkeypatch):  # noqa: F811
    """The next batch is fetched while one is stored; when that store fails, the fetched
    batch is not stored either (it would skip the failed one's seqs), and the next pull
    stores both, each message once."""
    monkeypatch.setattr(tasks, "BATCH", 5)
    monkeypatch.setattr(tasks, "BATCHES_PER_STORE", 1)
    real = tasks.classifier()
    calls = []

    class BreaksOnSecondBatch:
        def classify(self, batch):
            calls.append(len(batch))
            if len(calls) == 2:
                raise RuntimeError("classifier crashed")
            return real.classify(batch)

    source = Flaky(JsonLinesArchiveSource(lines(23)), fail_on=set())
    monkeypatch.setattr(tasks, "classifier", lambda: BreaksOnSecondBatch())
    with pytest.raises(RuntimeError):
        asyncio.run(tasks.pull(rt, tenant_id, source))
    assert source.calls == 3  # the third batch was fetched while the second was stored
    assert stored(rt, tenant_id) == (5, 5)
    with rt.db.tenant_session(tenant_id) as s:
        assert s.scalar(select(ArchiveCursor.seq)) == 5
    asyncio.run(tasks.pull(rt, tenant_id, source))
    assert stored(rt, tenant_id) == (23, 23)


@pytest.mark.parametrize(
    ("per_store", "stores_expected", "steps_expected"), [(3, [7, 4], 0), (1, [2, 3, 2, 3, 1], 2)]
)
def test_a_backlog_is_stored_several_batches_at_a_time(
    rt,
    tenant_id,  # noqa: F811
    monkeypatch,
    per_store,
    stores_expected,
    steps_expected,
):
    """Batches fetched back to back are stored together: 23 messages in fetches of 5, three
    fetches a store, are two stores (15 messages, then 8 after the drained fetch), and the
    cursor ends at the last seq. A question answered within the store that holds it never
    has its escalation step written; stored a batch at a time, the questions at seq 10 and
    20 (answered at 11 and 21, in the next batch) had theirs written and then cancelled."""
    monkeypatch.setattr(tasks, "BATCH", 5)
    monkeypatch.setattr(tasks, "BATCHES_PER_STORE", per_store)
    source = Flaky(JsonLinesArchiveSource(lines(23)), fail_on=set())
    real = tasks.classifier()
    stores = []

    class Counting:
        def classify(self, batch):
            stores.append(len(batch))
            return real.classify(batch)

    monkeypatch.setattr(tasks, "classifier", lambda: Counting())
    counts = asyncio.run(tasks.pull(rt, tenant_id, source))
    assert counts == {"stored": 23, "duplicates": 0}
    assert source.calls == 5  # the fifth fetch (3 messages) drained the archive
    assert stores == stores_expected  # the customer's questions (odd messages) of each store
    with rt.db.tenant_session(tenant_id) as s:
        assert s.scalar(select(ArchiveCursor.seq)) == 23
        steps = s.scalars(select(SlaEscalation.status)).all()
    assert len(steps) == steps_expected and set(steps) <= {"cancelled"}
    assert stored(rt, tenant_id) == (23, 23)


def test_two_pulls_of_a_tenant_at_once_never_move_the_cursor_back(rt, tenant_id, monkeypatch):  # noqa: F811
    """A notify's pull and the timer's, in one process: while one stores seqs 1..10, the
    other, holding only 1..4 and an older fetch time, waits for it and then finds them
    stored. The cursor stays at 10, and how far the archive is pulled stays the first's."""
    items = chat_items(10)
    real = tasks.classifier()
    first_storing, second_started = threading.Event(), threading.Event()

    class HeldUp:
        def classify(self, batch):
            if threading.current_thread().name == "first":
                first_storing.set()
                second_started.wait(10)
                time.sleep(0.5)  # the second pull reaches its cursor meanwhile
            return real.classify(batch)

    monkeypatch.setattr(tasks, "classifier", lambda: HeldUp())
    tasks._store_batch(
        rt, tenant_id, [], datetime.now(UTC) - timedelta(hours=1), False, None
    )  # the cursor row
    now = datetime.now(UTC)

    def second() -> None:
        second_started.set()
        tasks._store_batch(rt, tenant_id, items[:4], now - timedelta(minutes=5), True, None)

    first = threading.Thread(
        name="first", target=tasks._store_batch, args=(rt, tenant_id, items, now, True, None)
    )
    first.start()
    assert first_storing.wait(10)
    other = threading.Thread(name="second", target=second)
    other.start()
    first.join(30)
    other.join(30)
    with rt.db.tenant_session(tenant_id) as s:
        cursor = s.scalar(select(ArchiveCursor))
    lag = timedelta(seconds=rt.settings.archive_lag_s)
    assert cursor.seq == 10 and cursor.pulled_until == now - lag
    assert stored(rt, tenant_id) == (10, 10)


def search_rows(rt, tenant_id) -> tuple[int, int, int]:  # noqa: F811
    """(messages that have search tokens, their search rows, batches still queued)."""
    with rt.db.tenant_session(tenant_id) as s:
        return (
            s.scalar(select(func.count(func.distinct(MessageSearch.message_id)))),
            s.scalar(select(func.count()).select_from(MessageSearch)),
            s.scalar(select(func.count()).select_from(SearchBacklog)),
        )


def test_a_pull_returns_once_what_it_stored_is_searchable(rt, tenant_id, monkeypatch):  # noqa: F811
    """Search is indexed in transactions of its own (on another thread on PostgreSQL), but
    by the time the pull returns every stored message is found, each indexed once."""
    monkeypatch.setattr(tasks, "BATCH", 7)
    asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(30))))
    assert search_rows(rt, tenant_id) == (30, 30, 0)
    with rt.db.tenant_session(tenant_id) as s:
        found = s.scalars(
            select(MessageSearch.message_id).where(search.match(s, search.parse_query("第29个问题")))
        )
        assert len(found.all()) == 1


def test_indexers_running_at_once_index_each_message_once(rt, tenant_id):  # noqa: F811
    """PostgreSQL: ingest queues a batch's search tokens, and several workers may index a
    tenant's backlog at once: each batch is claimed by one of them, and a batch queued twice
    adds nothing. (SQLite indexes in the ingest transaction.)"""
    items = chat_items(40)
    classify = tasks.classifier().classify
    for start in range(0, 40, 5):
        with rt.db.tenant_session(tenant_id) as s:
            service.ingest(s, items[start : start + 5], classify)
    if not rt.db.is_postgres:
        assert search_rows(rt, tenant_id) == (40, 40, 0)
        return
    with rt.db.tenant_session(tenant_id) as s:
        first = s.scalars(select(SearchBacklog).order_by(SearchBacklog.id)).first()
        s.add(SearchBacklog(entries=first.entries))
    assert search_rows(rt, tenant_id) == (0, 0, 9)

    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.append(search.index_backlog(rt.db, tenant_id)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 40
    assert search_rows(rt, tenant_id) == (40, 40, 0)


def test_a_batch_left_queued_is_indexed_by_the_next_pull(rt, tenant_id):  # noqa: F811
    """A worker that crashed after storing a batch and before indexing it (PostgreSQL) left
    it queued: the next pull indexes it, even with nothing new in the archive."""
    items = chat_items(10)
    with rt.db.tenant_session(tenant_id) as s:
        service.ingest(s, items, tasks.classifier().classify)
    nothing_new = asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource([])))
    assert nothing_new == {"stored": 0, "duplicates": 0}
    assert search_rows(rt, tenant_id) == (10, 10, 0)


def test_a_message_gone_before_indexing_does_not_hold_up_the_backlog(rt, tenant_id):  # noqa: F811
    """A batch that failed would be claimed first again and again; a message deleted
    before its batch was indexed is left out instead, and the batches after it go on."""
    if not rt.db.is_postgres:
        pytest.skip("SQLite indexes in the ingest transaction")
    items = chat_items(10)
    classify = tasks.classifier().classify
    for start in (0, 5):
        with rt.db.tenant_session(tenant_id) as s:
            service.ingest(s, items[start : start + 5], classify)
    with rt.db.tenant_session(tenant_id) as s:
        s.execute(delete(Message).where(Message.msgid == items[0].msgid))
    assert search.index_backlog(rt.db, tenant_id) == 9
    assert search_rows(rt, tenant_id) == (9, 9, 0)


def test_a_message_stamped_ahead_of_the_clock_does_not_move_the_archive_past_now(rt, tenant_id):  # noqa: F811
    """Steps fire only once the archive is pulled past their due time: a message dated a
    minute ahead (a sender's clock) had moved that point a minute into the future, and cards
    went out for questions whose replies were still on their way. Part of a backlog, it moves it
    nowhere; once the archive is drained, up to its lag."""
    chat = Chat()
    now = datetime.now(UTC)
    ahead = chat.customer("群里的时间比服务器快", 0)
    ahead.message["msgtime"] = int((now + timedelta(seconds=60)).timestamp() * 1000)
    tasks._store_batch(rt, tenant_id, [ahead], now, False, None)
    with rt.db.tenant_session(tenant_id) as s:
        cursor = s.scalar(select(ArchiveCursor))
    assert cursor.seq == ahead.seq
    assert cursor.pulled_until is None
    tasks._store_batch(rt, tenant_id, [], now, True, None)
    with rt.db.tenant_session(tenant_id) as s:
        cursor = s.scalar(select(ArchiveCursor))
    assert cursor.pulled_until == now - timedelta(seconds=rt.settings.archive_lag_s)


def test_a_seq_past_two_to_the_31st_is_stored_and_the_archive_moves_on(rt, tenant_id, tmp_path):  # noqa: F811
    """WeCom's seq is an unsigned 64-bit number (REFERENCE 11.1: GetChatData takes an
    unsigned long long). On PostgreSQL the columns held 32 bits: once a corp's archive passed
    2,147,483,647 messages every batch failed (integer out of range), naming no seq, and the
    archive stood still for good."""
    chat = Chat()
    items = [chat.customer("还在吗？", 0), chat.staff("在的", 1)]
    for n, item in enumerate(items):
        item.seq = 2**31 + n
    tasks._store_batch(rt, tenant_id, items, datetime.now(UTC), True, None)
    with rt.db.tenant_session(tenant_id) as s:
        seqs = sorted(s.scalars(select(Message.seq)))
        cursor = s.scalar(select(ArchiveCursor))
    assert seqs == [2**31, 2**31 + 1]
    assert cursor.seq == 2**31 + 1 and cursor.last_error == ""
    later = chat.customer("导入的", 2)  # an import of the same archive takes such seqs too
    path = tmp_path / "archive.jsonl"
    path.write_text(
        json.dumps({"seq": 2**40, "message": later.message}, ensure_ascii=False), encoding="utf-8"
    )
    assert asyncio.run(tasks.import_file(rt, tenant_id, path)) == {"stored": 1, "duplicates": 0}


class OneBadMessage:
    """The archive through the SDK's steps (ChatDataPipeline): seq 3 cannot be decrypted
    (DecryptData answers 10006 every time), the others can."""

    def __init__(
        self, n: int = 5, bad: tuple[int, ...] = (3,), bad_time: tuple[int, ...] = (), bad_msgtime=10**17
    ):
        import base64

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        from siyu.wecom.archive import ChatDataPipeline, generate_key_pair

        private, public = generate_key_pair()
        pub = serialization.load_pem_public_key(public.encode())
        self.items = []
        for seq in range(1, n + 1):
            msg = {
                "msgid": f"bad{seq}", "action": "send", "from": "wmCUSTOMER", "tolist": ["zhangsan"],
                "roomid": "", "msgtime": 1764036000000 + seq * 1000, "msgtype": "text",
                "text": {"content": f"第{seq}个问题？"},
            }  # fmt: skip
            if seq in bad_time:  # decrypts, but its send time is none a datetime can hold
                msg["msgtime"] = bad_msgtime
            key = base64.b64encode(pub.encrypt(b"randomkey0123456789", padding.PKCS1v15())).decode()
            body = f"BROKEN{seq}" if seq in bad else json.dumps(msg, ensure_ascii=False)
            self.items.append(
                {"seq": seq, "msgid": f"bad{seq}", "publickey_ver": 1, "encrypt_random_key": key,
                 "encrypt_chat_msg": body}
            )  # fmt: skip
        self.bad = bad
        self.pipeline = ChatDataPipeline(self._chatdata, self._decrypt, {1: private}, backoff_base=0.001)

    async def _chatdata(self, after_seq, limit):
        return [i for i in self.items if i["seq"] > after_seq][:limit]

    async def _decrypt(self, key, encrypted):
        from siyu.wecom.archive import ArchiveError

        if encrypted.startswith("BROKEN"):
            # the first bad one fails last in time: the messages are decrypted at once
            await asyncio.sleep(0.05 if encrypted == f"BROKEN{min(self.bad)}" else 0)
            raise ArchiveError(10006, "DecryptData")
        return encrypted

    async def fetch(self, after_seq, limit=1000):
        return await self.pipeline.fetch(after_seq, limit)

    async def aclose(self):
        self.pipeline.stop_reading_ahead()


def test_a_message_that_cannot_be_decrypted_holds_back_only_itself_and_what_follows(rt, tenant_id):  # noqa: F811
    from siyu.wecom.archive import ArchiveError

    source = OneBadMessage()
    for _ in range(2):  # the timer pulls again
        with pytest.raises(ArchiveError):
            asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        stored = sorted(s.scalars(select(Message.msgid)))
        cursor = s.scalar(select(ArchiveCursor))
    assert stored == ["bad1", "bad2"]  # those before it, once (they had waited with it)
    assert cursor.seq == 2 and "10006" in cursor.last_error and "seq 3" in cursor.last_error
    # pulled as far as what was stored, not to the moment of the pull: nothing after the bad
    # message is known, so no step may fire for want of a reply behind it
    assert cursor.pulled_until == service.ms_to_datetime(1764036000000 + 2 * 1000)
    # the admin gives that one message up (siyu archive skip): the pull goes on after it
    with pytest.raises(tasks.NotStuckThere):
        tasks.skip_stuck(rt, tenant_id, 4)  # only the seq the error names
    assert "seq 3" in tasks.skip_stuck(rt, tenant_id, 3)
    asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2", "bad4", "bad5"]
        assert s.scalar(select(ArchiveCursor)).last_error == ""
    with pytest.raises(tasks.NotStuckThere):
        tasks.skip_stuck(rt, tenant_id, 3)  # not stuck any more


# beyond any date, JSON's Infinity (or 1e400), seconds instead of milliseconds (January 1970)
@pytest.mark.parametrize("bad_msgtime", [10**17, float("inf"), 1764036000])
def test_a_message_whose_send_time_is_out_of_range_stops_the_pull_naming_its_seq(rt, tenant_id, bad_msgtime):  # noqa: F811
    """A message that decrypts but carries a msgtime no date can hold (year 5,000,000) had made
    ingest raise a bare ValueError naming no seq, so `siyu archive skip` could not move past
    it and the tenant's archive stood still for good; an infinite one (an OverflowError) did
    the same. One in seconds had been stored as a message of 1970."""
    from siyu.wecom.archive import ArchiveError

    source = OneBadMessage(bad=(), bad_time=(3,), bad_msgtime=bad_msgtime)
    with pytest.raises(ArchiveError):
        asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2"]
        cursor = s.scalar(select(ArchiveCursor))
    assert cursor.seq == 2 and "seq 3" in cursor.last_error and "msgtime" in cursor.last_error
    tasks.skip_stuck(rt, tenant_id, 3)
    asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2", "bad4", "bad5"]


@pytest.mark.parametrize("blank", ['""', '"   "', None])  # None: no msgid at all
def test_a_message_without_a_msgid_stops_the_pull_naming_its_seq(rt, tenant_id, blank):  # noqa: F811
    """WeCom gives every message a msgid (REFERENCE 11.3), and messages are stored once by it.
    Two with an empty (or blank, or no) msgid in a batch had been stored as one, the other lost
    without a word. Each stops the pull at it, named by seq, as one whose msgtime no date can
    hold does: those before it are stored, and those after it once it is skipped."""
    from siyu.wecom.archive import ArchiveError

    source = OneBadMessage(bad=())
    for seq in (3, 4):
        item = source.items[seq - 1]
        item["msgid"] = "" if blank is None else json.loads(blank)
        gone = f'"msgid": "bad{seq}", ' if blank is None else f'"bad{seq}"'
        item["encrypt_chat_msg"] = item["encrypt_chat_msg"].replace(gone, "" if blank is None else blank)
    for stuck_at in (3, 4):
        with pytest.raises(ArchiveError) as stuck:
            asyncio.run(tasks.pull(rt, tenant_id, source))
        assert stuck.value.seq == stuck_at
        with rt.db.tenant_session(tenant_id) as s:
            assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2"]
            cursor = s.scalar(select(ArchiveCursor))
        assert cursor.seq == stuck_at - 1 and f"seq {stuck_at}" in cursor.last_error
        assert "消息没有 msgid" in cursor.last_error
        tasks.skip_stuck(rt, tenant_id, stuck_at)
    asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2", "bad5"]


@pytest.fixture
def refused_msgid(db):
    """A msgid the database itself refuses to store (as a constraint nobody foresaw would)."""
    msgid = "refused-" + uuid.uuid4().hex[:8]
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.exec_driver_sql(
                f"ALTER TABLE messages ADD CONSTRAINT review_refused CHECK (msgid <> '{msgid}')"
            )
        else:
            conn.exec_driver_sql(
                f"CREATE TRIGGER review_refused BEFORE INSERT ON messages WHEN NEW.msgid = '{msgid}' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    yield msgid
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.exec_driver_sql("ALTER TABLE messages DROP CONSTRAINT review_refused")
        else:
            conn.exec_driver_sql("DROP TRIGGER review_refused")


def test_a_message_that_cannot_be_stored_for_any_reason_stops_the_pull_naming_its_seq(
    rt,
    tenant_id,  # noqa: F811
    refused_msgid,
):
    """A message ingest fails on for a reason nobody foresaw (here the database refuses it) had
    failed its whole batch with an error that named no seq: nothing was stored, `siyu archive
    skip` could not move past it, and the tenant's archive stood still for good. The messages
    before it are stored, and the pull stops at it, named, as at one that cannot be decrypted."""
    from siyu.wecom.archive import ArchiveError

    source = OneBadMessage(6, bad=())
    bad = source.items[2]
    bad["msgid"] = refused_msgid
    bad["encrypt_chat_msg"] = bad["encrypt_chat_msg"].replace('"bad3"', json.dumps(refused_msgid))
    with pytest.raises(ArchiveError) as stuck:
        asyncio.run(tasks.pull(rt, tenant_id, source))
    assert stuck.value.seq == 3 and stuck.value.msgid == refused_msgid
    with rt.db.tenant_session(tenant_id) as s:
        assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2"]
        cursor = s.scalar(select(ArchiveCursor))
    assert cursor.seq == 2 and "seq 3" in cursor.last_error and "无法保存" in cursor.last_error
    tasks.skip_stuck(rt, tenant_id, 3)
    asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2", "bad4", "bad5", "bad6"]


def test_with_two_bad_messages_the_pull_stops_at_the_first(rt, tenant_id):  # noqa: F811
    from siyu.wecom.archive import ArchiveError

    with pytest.raises(ArchiveError) as stuck:
        asyncio.run(tasks.pull(rt, tenant_id, OneBadMessage(6, bad=(3, 5))))
    assert stuck.value.seq == 3  # though seq 5 failed first
    with rt.db.tenant_session(tenant_id) as s:
        assert sorted(s.scalars(select(Message.msgid))) == ["bad1", "bad2"]


class _NetworkDown:
    """A ChatDataPipeline over chatdata made with a real key pair; decrypting the message of
    `down_seq` fails as the network does (10001) while `down` is set."""

    def __init__(self, items, down_seq: int):
        private, public = generate_key_pair()
        pub = serialization.load_pem_public_key(public.encode())
        self.plain, self.down, self.down_seq = {}, True, down_seq
        self.chatdata = []
        for it in items:
            key = f"k{it.seq:031d}"
            enc = base64.b64encode(pub.encrypt(key.encode(), padding.PKCS1v15())).decode()
            self.plain[key] = (it.seq, json.dumps(it.message, ensure_ascii=False))
            self.chatdata.append(
                {
                    "seq": it.seq,
                    "msgid": it.msgid,
                    "publickey_ver": 1,
                    "encrypt_random_key": enc,
                    "encrypt_chat_msg": key,
                }
            )
        self.pipeline = ChatDataPipeline(self._get, self._decrypt, {1: private}, retries=1, backoff_base=0.01)

    async def _get(self, after, limit):
        return [i for i in self.chatdata if i["seq"] > after][:limit]

    async def _decrypt(self, key, msg):
        seq, text = self.plain[key]
        if self.down and seq == self.down_seq:
            raise ArchiveError(10001, "connection reset")  # WeCom / the decryptor unreachable
        return text

    async def fetch(self, after, limit=1000):
        return await self.pipeline.fetch(after, limit)

    async def aclose(self):
        self.pipeline.stop_reading_ahead()


def test_a_network_failure_while_decrypting_is_not_offered_as_a_message_to_skip(rt, tenant_id):  # noqa: F811
    """WeCom or the decryptor unreachable while message 2 was decrypted (10001, retries spent):
    the error named seq 2 as a message that cannot be read, `siyu archive skip` took it, and a
    message that was fine was lost once the network came back."""
    chat = Chat()
    items = [chat.customer("在吗？", 1), chat.customer("想问价格", 2), chat.staff("您好", 3)]
    source = _NetworkDown(items, down_seq=2)
    with pytest.raises(ArchiveError):
        asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        error = s.scalar(select(ArchiveCursor.last_error))
    # the network failed (retryable): nothing is wrong with message 2, it must not be skippable
    try:
        tasks.skip_stuck(rt, tenant_id, 2)
        skipped = True
    except tasks.NotStuckThere:
        skipped = False
    source.down = False  # the network is back
    asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        stored = sorted(s.scalars(select(Message.seq)))
    assert not skipped and stored == [1, 2, 3], (error, stored)
