"""`siyu archive import`'s parts by chat (conversations/tasks.py _by_chat)."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.conversations.test_import_escalation import filler, import_beside_the_worker, line
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
    lines = filler(asked)
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
    import_beside_the_worker(w, lines)
    (wait,) = w.waits()
    assert wait.close_reason == "declined"
    fired = [step for step in w.steps() if step[1] == "fired"]
    queued = [o.kind for o in w.outbox()] + [o.kind for o in w.outbox("sla_call")]
    assert (fired, queued) == ([], []), (
        f"fired for a question the file shows declined a minute later: {fired}, {queued}"
    )
