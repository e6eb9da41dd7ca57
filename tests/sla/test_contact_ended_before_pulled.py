"""A customer asks 张三 a question and, 30 seconds later, deletes him. WeCom calls back about the
deletion at once (del_follow_user), the archive brings the question a little later (the archive
lags: README, and the fix for a reply pulled after the follow's end). The README: "when the
customer and the staff member stop being contacts ... a wait in their chat closes instead of
escalating on (also when the archive brings a message after that ...)".

The question pulled after the deletion opened a wait that nothing ended until a step of it came
due: under a policy with reminders off there is no step, so it never ended. The customer's
timeline said 仍在等待回复 under 被客户删除（流失）, the SLA board listed 马强 as waiting for a reply
from a member he deleted. The end of a follow now settles the chat (created settled, if its
first message comes after)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from siyu.customers import service as customers
from siyu.customers.models import Customer
from tests.sla.test_board_metrics import _get


def _contact_of(w, at_s: float) -> int:
    """马强 added 张三 `at_s` seconds from t0 (as the add callback records it)."""
    w.customer("wmcustomer1", "马强")
    added = int(w.at(at_s).timestamp())
    with w.session() as s:
        customers.record_added(
            s,
            {"UserID": "zhangsan", "ExternalUserID": "wmcustomer1", "CreateTime": str(added), "State": ""},
            {
                "external_contact": {"external_userid": "wmcustomer1", "name": "马强"},
                "follow_user": [{"userid": "zhangsan", "createtime": added}],
            },
        )
        return s.scalar(select(Customer.id).where(Customer.external_userid == "wmcustomer1"))


def _customer_deletes_zhangsan(w, at_s: float) -> None:
    """del_follow_user, handled by the worker as it comes (the callback is at once)."""
    with w.session() as s:
        fields = {
            "UserID": "zhangsan",
            "ExternalUserID": "wmcustomer1",
            "CreateTime": str(int(w.at(at_s).timestamp())),
        }
        customers.record_follow_ended(s, fields, "lost")


def test_a_question_pulled_after_the_customer_deleted_the_member_does_not_wait_for_ever(local):
    w = local
    w.policy(enabled=False)  # reminders off: waits are still timed and shown, no steps
    cid = _contact_of(w, -600)
    w.clock(31)
    _customer_deletes_zhangsan(w, 30)
    w.say("这个怎么退货？", at=0)  # sent before the deletion, pulled after it
    w.pulled(3600)
    w.clock(3600)  # an hour later
    w.fire()

    timeline = _get(w, f"/api/v1/customers/{cid}/timeline").json()
    assert timeline[0]["kind"] == "lost", timeline[0]
    # nobody can answer him there any more: no wait of his goes on (as when the question is
    # pulled before the deletion: 客户删除了成员，不再计时)
    waiting = [e["text"] for e in timeline if e["kind"] == "wait" and e["data"]["state"] == "waiting"]
    assert waiting == [], waiting

    board = _get(w, "/api/v1/sla/board").json()
    assert [r["customer"] for r in board["waiting"]] == [], board["waiting"]


def test_the_wait_ends_when_the_customer_deleted_the_member_not_when_its_step_came_due(local):
    """The default policy: the question's 2-minute step finds them no longer contacts and
    closes the wait then (11:39:06), not when the contact ended (11:37:35, 30 s after the
    question, on the same timeline). So the board counts the wait against the 2-minute step as
    仍未回复 (outlived, share 0 %), where the same question pulled before the deletion ends at
    the deletion and is not held against any step."""
    w = local
    w.policy()
    cid = _contact_of(w, -600)
    w.clock(31)
    _customer_deletes_zhangsan(w, 30)
    w.say("这个怎么退货？", at=0)
    w.pulled(3600)
    w.clock(121)
    w.fire()

    timeline = _get(w, f"/api/v1/customers/{cid}/timeline").json()
    lost = datetime.fromisoformat(next(e["at"] for e in timeline if e["kind"] == "lost"))
    for e in (e for e in timeline if e["kind"] == "wait"):
        # (no wait at all would do too: the question came before the contact ended)
        closed = e["data"]["closed_at"]
        assert closed is not None and datetime.fromisoformat(closed) <= lost, (e["text"], closed, lost)

    [first_step] = _get(w, "/api/v1/sla/board").json()["within_steps"][:1]
    assert first_step["outlived"] == 0, first_step


def _handed(w, userid: str, at_s: float, how: str) -> None:
    """A follow of 王女士's to `userid` begins (add_external_contact) or ends (handed over)."""
    at = int(w.at(at_s).timestamp())
    with w.session() as s:
        fields = {"UserID": userid, "ExternalUserID": "wmcustomer1", "CreateTime": at}
        if how == "added":
            contact = {"external_userid": "wmcustomer1", "name": "王女士"}
            follows = [{"userid": userid, "createtime": at}]
            customers.record_added(s, fields, {"external_contact": contact, "follow_user": follows})
        else:
            customers.record_follow_ended(s, fields, "transferred")


def test_a_customer_handed_back_to_their_member_is_escalated_again(local):
    """王女士 is handed from 张三 to 李四 (在职继承) and back. WeCom sends 张三 no add event the
    second time (REFERENCE 16.1), so his follow stays ended; her question an hour later was
    taken for one pulled after the contact ended, and its wait closed at its first step."""
    w = local
    w.policy(steps=[{"delay_s": 120, "action": "app_message", "target": "agent"}])
    _handed(w, "zhangsan", -7200, "added")
    _handed(w, "zhangsan", -3600, "ended")
    _handed(w, "lisi", -3600, "added")
    _handed(w, "lisi", -1800, "ended")  # back to 张三: no add event for him
    w.say("我的订单什么时候发？", at=0)
    w.pulled(3600)
    w.clock(120)
    assert w.fire() == 1, w.steps()
    assert [x.closed_at for x in w.waits()] == [None]
