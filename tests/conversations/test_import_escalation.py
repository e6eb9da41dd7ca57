"""`siyu archive import` while the worker runs: what the import's history makes the SLA fire."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from siyu.conversations import tasks
from siyu.sla import tasks as sla_tasks
from tests.conversations.test_import_file import text_line
from tests.sla.conftest import local, ms  # noqa: F401 - fixture


def line(msgid: str, sender: str, to: str, content: str, at) -> str:
    return text_line(msgid, sender, to, content, ms(at))


def filler(asked) -> list[str]:
    """A part's worth but one of the hours before `asked`: the agent wangwu's notes to his
    customers, so that the next message ends the import's first part."""
    return [
        line(
            f"fill-{i}", "wangwu", f"wmFill{i % 50}", f"订单{i}已发货", asked - timedelta(seconds=10_000 - i)
        )
        for i in range(tasks.BATCH * tasks.BATCHES_PER_STORE - 1)
    ]


def import_beside_the_worker(w, lines: list[str]) -> None:
    """The file of `lines` imported while the worker's SLA loop runs: a few of its polls (one
    each 0.5 s) between two of the import's stores."""
    path = w.rt.settings.data_dir / "export.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def worker_meanwhile(done: int, total: int) -> None:
        for _ in range(4):
            sla_tasks.claim_and_fire(w.rt, sla_tasks.BATCH)

    counts = asyncio.run(tasks.import_file(w.rt, w.tenant_id, path, worker_meanwhile))
    assert counts["stored"] == len(lines)


def test_a_question_answered_later_in_the_import_file_is_not_escalated_mid_import(local):  # noqa: F811
    """A company imports its old SCRM's export, taken an hour ago, while Siyu's worker runs
    (the live pull has the archive up to now). The import stores the file 10,000 messages a
    transaction; a customer's question that ends one transaction, answered a minute later at
    the start of the next, is written as an open wait whose first steps came due long before
    now. The worker (which looks every 0.5 s) fires them between the two transactions: the
    agent is carded, then the leader, and the agent's phone rings, about a question the file
    itself shows answered a minute after it was asked. A pull never does this: its steps fire
    only once the archive is stored past their due time (pulled_until), which an import never
    moves; the import is judged by the live pull's cursor. Each chat's messages of the file now
    go in one part."""
    w = local
    w.pulled(0)  # the live pull has stored the archive up to now
    now = w.rt.now()
    asked = now - timedelta(minutes=40)
    lines = filler(asked)  # the hours before
    lines.append(line("q-1", "wmcustomer1", "zhangsan", "请问这款还有现货吗？", asked))
    lines.append(line("a-1", "zhangsan", "wmcustomer1", "有的，今天下单今天发", asked + timedelta(minutes=1)))
    import_beside_the_worker(w, lines)

    (wait,) = w.waits()
    assert (wait.close_reason, wait.response_s) == ("replied", 60.0)
    # answered in a minute, before the first step's two: no step of it was breached
    assert wait.breached_step == -1, (
        f"the board counts a wait answered in 60 s as breached up to step {wait.breached_step}"
    )
    fired = [step for step in w.steps() if step[1] == "fired"]
    queued = [o.kind for o in w.outbox()] + [o.kind for o in w.outbox("sla_call")]
    assert (fired, queued) == ([], []), (
        f"fired for a question the file answered a minute later: {fired}, {queued}"
    )
