"""A wait's entry on the customer's timeline tells "which steps fired and how each went, in the
SLA board's words" (README). A step that reached nobody (the agent left: their card and their
call have nobody to go to) or was skipped as due too long ago is shown on the board's row of
the same wait (第 1 步·提醒卡片→负责成员 · 没有可通知的人); the timeline left it out, the entry
reading as if the only reminder ever due was the leader's card."""

from __future__ import annotations

from sqlalchemy import select, update

from siyu.customers.models import Customer
from siyu.tenancy.models import Staff
from tests.sla.test_board_metrics import _get


def _customer_id(w, ext: str = "wmcustomer1") -> int:
    with w.session() as s:
        return s.scalar(select(Customer.id).where(Customer.external_userid == ext))


def test_a_waits_entry_tells_the_steps_that_reached_nobody_as_the_board_does(local):
    w = local
    w.policy()  # the default steps: card to the agent at 2 min, to the leader at 5, a call at 10
    w.customer("wmcustomer1", "马强")
    w.say("你好，这个套餐多少钱？", at=0)
    with w.session() as s:  # 张三 left the company before anyone answered
        s.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=False, wecom_status=5))
    w.pulled(3600)
    for at in (120, 300, 600):
        w.clock(at)
        w.fire()

    [row] = _get(w, "/api/v1/sla/board").json()["waiting"]
    # the board's row of the wait: the leader's card went, the agent's card and call reached nobody
    assert [(k["step"], k["reason"]) for k in row["skipped"]] == [(0, "nobody"), (2, "nobody")]
    assert [f["step"] for f in row["fired"]] == [1]

    timeline = _get(w, f"/api/v1/customers/{_customer_id(w)}/timeline").json()
    [entry] = [e for e in timeline if e["kind"] == "wait"]
    # the same wait on the customer's timeline: three steps came due, the entry tells one
    assert "没有可通知的人" in entry["text"], entry["text"]
    assert len(entry["data"]["escalations"]) == 3, entry["data"]["escalations"]


def test_a_waits_entry_tells_the_steps_skipped_as_due_long_ago_as_the_board_does(local):
    """The archive was down for a night: when it came back, the customer's question of 7 hours
    before was pulled and its three steps, due long ago, were skipped (the board: 过期未发; the
    chat: 提醒没有发出（过期或没有可通知的人，见 SLA 看板）). The timeline's entry said nothing of
    them: a supervisor reading it sees a 7-hour wait that no reminder was ever due for."""
    w = local
    w.policy()
    w.customer("wmcustomer1", "马强")
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(7 * 3600)
    w.clock(7 * 3600)
    w.fire()

    [row] = _get(w, "/api/v1/sla/board").json()["waiting"]
    assert [(k["step"], k["reason"]) for k in row["skipped"]] == [(0, "stale"), (1, "stale"), (2, "stale")]

    timeline = _get(w, f"/api/v1/customers/{_customer_id(w)}/timeline").json()
    [entry] = [e for e in timeline if e["kind"] == "wait"]
    assert "过期未发" in entry["text"], entry["text"]
    assert len(entry["data"]["escalations"]) == 3, entry["data"]["escalations"]
