"""The SLA board's figures on a real database: the share answered within each step, and the
first-response percentiles."""

from __future__ import annotations

from datetime import timedelta

import pytest

from siyu.customers import service as customers
from siyu.sla.api import board_for
from siyu.web.auth import Viewer


def _noon_tomorrow(w) -> None:
    w.t0 = w.t0.replace(hour=4, minute=0, second=0, microsecond=0) + timedelta(days=1)  # 12:00 Beijing
    w.clock(0)


def _board(w, day=None) -> dict:
    with w.session() as s:
        return board_for(s, Viewer(0, w.tenant_id, "admin", None, "管理员", None), w.rt.now(), day)


@pytest.mark.parametrize("status", ["lost", "deleted", "transferred"])
def test_a_wait_left_unanswered_past_a_step_until_the_contact_ended_counts_against_it(local, status):
    """The customer waited 6 minutes unanswered (steps 1 and 2 fired), then the customer removed
    the agent (lost), the agent removed the customer (deleted) or handed them to a colleague
    (transferred). The wait ran past both steps
    unanswered: it must count against them, as a wait marked "no reply needed" after them does,
    not vanish from the on-time share (the page showed no share at all while breaches stood at 2;
    an agent could clear a late wait from the figures by deleting the customer)."""
    w = local
    _noon_tomorrow(w)
    w.policy()  # 2 min, 5 min, 10 min
    w.say("在吗？我的订单怎么还没发货？", at=0)
    w.pulled(3600)
    w.clock(310)
    assert w.fire() == 2  # the agent's card at 2 minutes, the leader's at 5
    with w.session() as s:  # del_follow_user / del_external_contact at 6 minutes
        fields = {
            "UserID": "zhangsan",
            "ExternalUserID": "wmcustomer1",
            "CreateTime": str(int(w.at(360).timestamp())),
        }
        customers.record_follow_ended(s, fields, status)
    assert w.waits()[0].closed_at is not None
    w.clock(400)
    board = _board(w)
    assert board["breaches_total"] == 2
    first, second = board["within_steps"][:2]
    assert (first["outlived"], first["share"]) == (1, 0.0), first
    assert (second["outlived"], second["share"]) == (1, 0.0), second


def test_p90_of_ten_first_responses_is_not_the_slowest_one(local):
    """Ten customers answered: nine within a minute, one after an hour. 9 of the 10 (90 %) were
    answered within 60 s, so the page's "90% 在此之内" figure is 60 s; it read 1 hour (the single
    slowest answer, i.e. 100 %), because index int(0.9 * 10) = 9 is the 10th value."""
    w = local
    _noon_tomorrow(w)
    w.policy()
    for i in range(10):
        ext = f"wmp90{i}"
        w.say("请问有货吗？", at=0, ext=ext)
        w.reply("有的", at=60 if i < 9 else 3600, ext=ext)
    w.pulled(7200)
    w.clock(7200)
    first = _board(w)["first_response"]
    assert first["count"] == 10 and first["median_s"] == 60
    assert first["p90_s"] == 60, first
