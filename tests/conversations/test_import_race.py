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
