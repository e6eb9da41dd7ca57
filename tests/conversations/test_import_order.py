"""`siyu archive import` of a migration's files in the wrong order (newest first)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from siyu.conversations import tasks
from siyu.sla import queries
from tests.conversations.test_import_escalation import line
from tests.sla.conftest import local, ms  # noqa: F401 - fixture


def test_a_question_still_unanswered_waits_when_the_older_file_is_imported_second(local):  # noqa: F811
    """A migration's monthly files imported newest first (README: a recall or a question pulled
    out of order ends as in order). The newer file's last question, 能便宜点吗, was never
    answered: the chat rightly says the customer waits for it. But the older file, imported
    second, holds an earlier question and its reply: the wait that began with 能便宜点吗 is
    moved back to the earlier question (the same wait), closed by the reply, and 能便宜点吗
    waits on as a wait of its own, which the SLA listener inserts before it renames the moved
    wait: the insert finds the old wait still under 能便宜点吗's msgid and does nothing. The
    SLA board did not list the customer, and nobody was ever reminded (a review of the waits
    stored in the wrong order: the moved wait now frees its message first)."""
    w = local
    now = w.rt.now()

    def imported(name: str, *lines: str) -> None:
        path = w.rt.settings.data_dir / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        asyncio.run(tasks.import_file(w.rt, w.tenant_id, path))

    imported(  # the newer file first
        "today.jsonl",
        line("q-2", "wmcustomer1", "zhangsan", "能便宜点吗？", now - timedelta(minutes=30)),
    )
    imported(
        "earlier.jsonl",
        line("q-1", "wmcustomer1", "zhangsan", "什么时候发货？", now - timedelta(hours=3)),
        line("a-1", "zhangsan", "wmcustomer1", "明天上午发", now - timedelta(hours=2, minutes=50)),
    )

    assert w.conversation().awaiting_msgid == "q-2"  # the chat: the customer waits since 能便宜点吗
    waits = {x.msgid: (x.close_reason, x.response_s) for x in w.waits()}
    assert waits.get("q-1") == ("replied", 600.0)
    with w.session() as s:
        board = queries.waiting_now(s, now)
    assert waits.get("q-2") == ("", None) and len(board) == 1, (
        f"the SLA board lists {len(board)} waiting; the waits: {waits}"
    )
