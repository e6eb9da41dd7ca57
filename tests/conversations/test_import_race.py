"""`siyu archive import` on PostgreSQL while the worker's pull stores messages."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from sqlalchemy import func, select, text

from siyu.config import Settings
from siyu.conversations import service, tasks
from siyu.conversations.models import Conversation, Message
from siyu.runtime import Runtime
from siyu.wecom.archive import ArchivedMessage
from tests.conversations.test_import_file import text_message
from tests.conversations.test_ingest import tenant_id  # noqa: F401 - fixture

T = 1764036000000  # 2025-11-25 10:00 in Shanghai, in ms


@pytest.fixture
def rt(db, settings: Settings) -> Runtime:
    return Runtime.create(settings, db)


def test_an_import_while_the_pull_stores_the_same_new_chat_is_not_refused(rt, tenant_id):  # noqa: F811
    """A company moving to Siyu runs the live pull and imports its old archive meanwhile. The
    customer who writes today (the pull) also has history in the file (the import). The two
    store in transactions of their own; each finds no conversation for the pair and inserts
    one, and the second INSERT waits for the first and then hits the unique key: the import
    stopped with a database error, though nothing is wrong with the file or the database: a
    chat another transaction made meanwhile is now taken as it is."""
    if not rt.db.is_postgres:
        pytest.skip("SQLite has one writer: the two never overlap")
    path = rt.settings.data_dir / "history.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(m, ensure_ascii=False)
            for m in (
                text_message("old-1", "wmRace", "zhangsan", "上次买的还有吗", T),
                text_message("old-2", "zhangsan", "wmRace", "有的", T + 60_000),
            )
        )
        + "\n",
        encoding="utf-8",
    )
    live = ArchivedMessage(1, "live-1", text_message("live-1", "wmRace", "zhangsan", "在吗", T + 86_400_000))
    outcome: dict = {}

    def run_import() -> None:
        try:
            outcome["counts"] = asyncio.run(tasks.import_file(rt, tenant_id, path))
        except Exception as exc:  # noqa: BLE001 - what the operator would see
            outcome["error"] = exc

    importing = threading.Thread(target=run_import)
    with rt.db.tenant_session(tenant_id) as s:  # the pull's transaction storing today's message
        service.ingest(s, [live], tasks.classifier().classify)
        importing.start()
        deadline = time.monotonic() + 20
        with rt.db.engine.connect() as watch:  # until the import waits on the pull's row
            while time.monotonic() < deadline:
                waiting = watch.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
                if waiting:
                    break
                time.sleep(0.05)
    importing.join(timeout=60)

    assert "error" not in outcome, f"the import failed: {outcome.get('error')!r}"[:400]
    assert outcome["counts"] == {"stored": 2, "duplicates": 0}
    with rt.db.tenant_session(tenant_id) as s:
        chats = s.scalar(select(func.count()).select_from(Conversation))
        stored = s.scalar(select(func.count()).select_from(Message))
    assert (chats, stored) == (1, 3)


def test_two_stores_making_the_same_new_chats_in_opposite_order_do_not_deadlock(rt, tenant_id):  # noqa: F811
    """The live pull and an import of the old archive each bring the first messages of the same
    new chats, in opposite orders (the file is sorted by customer, the pull by time). Each
    transaction inserts its new conversations in one statement, in the order it met them: each
    held a row the other was waiting for, and PostgreSQL killed one as a deadlock's victim (the
    import stopped, or the pull failed until the next try). Conversations are now made in one
    order whoever makes them."""
    if not rt.db.is_postgres:
        pytest.skip("SQLite has one writer: the two never overlap")
    chats = 400
    errors: list[Exception] = []
    for round_ in range(4):
        pull = [
            ArchivedMessage(
                i,
                f"p{round_}-{i}",
                text_message(f"p{round_}-{i}", f"wmR{round_}x{i}", "zhangsan", "在吗", T + i),
            )
            for i in range(chats)
        ]
        old = [
            ArchivedMessage(
                i,
                f"o{round_}-{i}",
                text_message(
                    f"o{round_}-{i}", f"wmR{round_}x{i}", "zhangsan", "有货吗", T - 10 * chats + chats - i
                ),
            )
            for i in range(chats)
        ]
        start = threading.Barrier(2)

        def store(items, start=start) -> None:
            try:
                with rt.db.tenant_session(tenant_id) as s:
                    start.wait(timeout=10)
                    service.ingest(s, items, tasks.classifier().classify)
            except Exception as exc:  # noqa: BLE001 - what the pull or the import would have met
                errors.append(exc)

        both = [threading.Thread(target=store, args=(batch,)) for batch in (pull, old)]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join(timeout=60)
        assert not errors, f"round {round_}: {str(errors[0]).splitlines()[0]}"
    with rt.db.tenant_session(tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Conversation)) == 4 * chats
        assert s.scalar(select(func.count()).select_from(Message)) == 8 * chats
