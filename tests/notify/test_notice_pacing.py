"""Loss alerts to one member keep to 10 a minute (siyu.notify.outbox.next_notice_at)."""

from __future__ import annotations

from datetime import timedelta

from siyu.notify import outbox
from tests.sla.conftest import local  # noqa: F401 - the fixture

# customers deleting 李四's team members over a minute: when each deletion is handled (seconds)
EVENTS = [0, 5, 10, 15, 15, 20, 20, 40, 50, 55, 55]


def test_loss_alerts_to_one_member_never_pass_10_in_a_minute(local):  # noqa: F811
    """Each alert is given its time by next_notice_at as the callbacks come. The README says at
    most 10 a minute to one person (beside the SLA cards' 20, WeCom drops past 30): the bucket
    read from 40 s back as if full had let an 11th go within the minute (a review)."""
    w = local
    dues = []
    for i, t in enumerate(EVENTS):
        with w.session() as s:
            due = outbox.next_notice_at(s, "lisi", w.at(t))
            r = outbox.row(w.tenant_id, "app_message", f"lost:{i}", {"touser": "lisi"}, recipient="lisi")
            r["due_at"] = due
            outbox.enqueue_many(s, [r])
        dues.append(due)
    dues.sort()
    most = max(sum(1 for d in dues if a <= d < a + timedelta(seconds=60)) for a in dues)
    # fails: 11 alerts due within 55 s (at 0, 5, 10, 15, 15, 20, 30, 40, 50, 55, 55)
    assert most <= 10, [round((d - w.t0).total_seconds(), 1) for d in dues]
