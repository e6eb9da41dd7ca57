"""A reply pulled late that answered a settled wait, then recalled (sla_waits.settled, _unsettle)."""

from __future__ import annotations

import pytest

from siyu.conversations import service as conversations
from tests.sla.test_engine import _recall


def _settle(w, how: str) -> None:
    with w.session() as s:
        if how == "lost":
            conversations.follow_ended(s, "wmcustomer1", "zhangsan", w.at(40), "lost")
        else:
            assert conversations.dismiss(s, w.conversation().id, w.at(40), by="张三")


@pytest.mark.parametrize("how", ["lost", "dismissed"])
@pytest.mark.parametrize("one_pull", [True, False], ids=["one_pull", "two_pulls"])
def test_the_steps_of_a_wait_put_back_as_settled_stay_cancelled_and_nothing_fires(local, how, one_pull):
    w = local
    w.policy()
    w.say("发票开好了吗？", at=0)
    _settle(w, how)
    reply = w._message("zhangsan", "wmcustomer1", "开好了", 30, None)
    recall = _recall(w, reply["msgid"], 35, by="zhangsan")
    if one_pull:
        w.ingest(reply, recall)
    else:
        w.ingest(reply)
        w.ingest(recall)
    assert [(x.close_reason, x.closed_at) for x in w.waits()] == [(how, w.at(40))]
    assert all(status != "pending" for _, status, _ in w.steps()), w.steps()
    w.pulled(7200)
    w.clock(3600)
    assert w.fire() == 0
    assert w.conversation().awaiting_since is None
