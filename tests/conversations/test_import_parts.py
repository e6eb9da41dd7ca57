"""`siyu archive import`'s parts by chat (conversations/tasks.py _by_chat)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from siyu.conversations import tasks
from siyu.sla import tasks as sla_tasks
from tests.conversations.test_import_escalation import line
from tests.sla.conftest import (
    local,  # noqa: F401 - the fixture
    ms,
)


def test_a_decline_addressed_to_the_customer_goes_in_its_chats_part(local):  # noqa: F811
    """As test_import_escalation's, but the question is ended a minute later by the customer
    declining archiving, an event WeCom addresses to the customer themselves (tolist = the
    customer, the payload's userid the member: ingest's _sender_and_to keys it to the chat).
    _by_chat keys it by from/tolist only, as a chat of its own: it goes in the next part, and
    the worker cards the agent about a question the file shows settled a minute later."""
    w = local
    w.pulled(0)
    now = w.rt.now()
    asked = now - timedelta(minutes=40)
    lines = [
        line(
            f"fill-{i}", "wangwu", f"wmFill{i % 50}", f"订单{i}已发货", asked - timedelta(seconds=10_000 - i)
        )
        for i in range(tasks.BATCH * tasks.BATCHES_PER_STORE - 1)
    ]
    lines.append(line("q-1", "wmcustomer1", "zhangsan", "请问这款还有现货吗？", asked))
    declined = asked + timedelta(minutes=1)
    lines.append(
        json.dumps(
            {
                "msgid": "d-1",
                "action": "send",
                "from": "wmcustomer1",
                "tolist": ["wmcustomer1"],
                "roomid": "",
                "msgtime": ms(declined),
                "msgtype": "disagree",
                "disagree": {"userid": "zhangsan", "disagree_time": ms(declined)},
            }
        )
    )
    path = w.rt.settings.data_dir / "export.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def worker_meanwhile(done: int, total: int) -> None:
        for _ in range(4):
            sla_tasks.claim_and_fire(w.rt, sla_tasks.BATCH)

    counts = asyncio.run(tasks.import_file(w.rt, w.tenant_id, path, worker_meanwhile))
    assert counts["stored"] == len(lines)
    (wait,) = w.waits()
    assert wait.close_reason == "declined"
    fired = [step for step in w.steps() if step[1] == "fired"]
    queued = [o.kind for o in w.outbox()] + [o.kind for o in w.outbox("sla_call")]
    assert (fired, queued) == ([], []), (
        f"fired for a question the file shows declined a minute later: {fired}, {queued}"
    )
