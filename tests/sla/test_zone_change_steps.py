"""A change of time zone and the steps it retimes: one held back by the archive at the change,
and one of a wait closed at the time and open again afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from siyu.sla.models import SlaEscalation
from tests.sla.conftest import Wait
from tests.sla.test_engine import _recall
from tests.support.signed_in import SignedIn

SHANGHAI, BERLIN = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")


def _pending_due(w: Wait) -> datetime:
    with w.session() as s:
        return s.scalar(select(SlaEscalation.due_at).where(SlaEscalation.status == "pending"))


def test_a_wait_reopened_by_a_recalled_reply_after_a_zone_change_is_timed_by_the_new_zones_hours(local):
    """Shifts 09:00-18:00. Monday 17:59 in Shanghai a customer asks; the 2-minute step is due
    Tuesday 09:01 Shanghai time. 张三 answers at 18:00; the admin moves the company to
    Europe/Berlin (17:59 Shanghai is 10:59 there, business hours); 张三 then takes the reply
    back, so the customer waits again from 10:59 Berlin time: 2 business minutes later is 11:01
    Berlin time, as for a wait that stayed open across the change. The step came back due at
    Tuesday 02:01 in Berlin, the old zone's 09:01, in the middle of the Berlin night, outside
    every shift of the policy."""
    w = local
    w.t0 = datetime(2026, 3, 2, 17, 59, tzinfo=SHANGHAI).astimezone(UTC)
    w.clock(0)
    w.policy(business_hours_only=True, shifts=[["09:00", "18:00"]], public_holidays=False)
    w.say("在吗？", at=0)
    assert _pending_due(w) == datetime(2026, 3, 3, 9, 1, tzinfo=SHANGHAI)
    answer = w.reply("在的", at=60)
    w.clock(90)
    admin = SignedIn(w.rt, w.tenant_id, "admin", None, "管理员")
    assert admin("POST", "/setup/timezone", {"timezone": "Europe/Berlin"}).status_code == 303
    w.clock(100)
    w.ingest(_recall(w, answer, 100, by="zhangsan"))
    assert [x.closed_at for x in w.waits()] == [None]  # waiting again, from 17:59 Shanghai
    due = _pending_due(w).astimezone(BERLIN)
    assert due == datetime(2026, 3, 2, 11, 1, tzinfo=BERLIN), due


def test_a_step_overdue_but_not_yet_fired_when_the_zone_changes_is_not_skipped_as_stale(local):
    """Shifts 09:00-18:00. Monday 17:59 in Shanghai a customer asks; the 2-minute step is due
    Tuesday 09:01 Shanghai time. On Tuesday the archive has been pulled up to 09:00 only (the
    step waits for it, as steps do), and at 09:20 the admin moves the company to Europe/Berlin.
    By Berlin's hours the step was due on Monday at 11:01 Berlin time, 22 hours before. A step
    the change puts in the past is due at the change (the README: "at its time by the new clock
    it was hours overdue, and firing skipped it as stale (过期未发), so nobody was reminded at
    all"), but one overdue by minutes at the change was moved to Monday all the same: when the
    archive caught up a minute later the step was skipped as stale and nobody was reminded."""
    w = local
    w.t0 = datetime(2026, 3, 2, 17, 59, tzinfo=SHANGHAI).astimezone(UTC)
    w.clock(0)
    w.policy(business_hours_only=True, shifts=[["09:00", "18:00"]], public_holidays=False)
    w.say("在吗？", at=0)
    due = datetime(2026, 3, 3, 9, 1, tzinfo=SHANGHAI)
    assert _pending_due(w) == due
    at = (due - w.t0).total_seconds()
    w.pulled(at - 60)  # Tuesday 09:00 Shanghai
    w.clock(at + 19 * 60)  # 09:20 Shanghai
    assert w.fire() == 0  # the archive has not been pulled past its time yet
    admin = SignedIn(w.rt, w.tenant_id, "admin", None, "管理员")
    assert admin("POST", "/setup/timezone", {"timezone": "Europe/Berlin"}).status_code == 303
    w.pulled(at + 20 * 60)
    w.clock(at + 20 * 60)
    w.fire()
    assert w.steps()[0][:2] == (0, "fired"), w.steps()


def test_a_wait_reopened_long_after_a_zone_change_comes_due_then_not_skipped_as_stale(local):
    """As above, but 张三 takes the reply back seven hours after the change: by Berlin's hours the
    step was due hours before, beyond the six hours after which a step is stale. It is due when
    the wait opened again, and fires (put in the past, it had been skipped as 过期未发)."""
    w = local
    w.t0 = datetime(2026, 3, 2, 17, 59, tzinfo=SHANGHAI).astimezone(UTC)
    w.clock(0)
    w.policy(business_hours_only=True, shifts=[["09:00", "18:00"]], public_holidays=False)
    w.say("在吗？", at=0)
    answer = w.reply("在的", at=60)
    w.clock(90)
    admin = SignedIn(w.rt, w.tenant_id, "admin", None, "管理员")
    assert admin("POST", "/setup/timezone", {"timezone": "Europe/Berlin"}).status_code == 303
    later = 7 * 3600
    w.clock(later)
    w.ingest(_recall(w, answer, later, by="zhangsan"))
    w.pulled(later + 60)
    w.clock(later + 60)
    w.fire()
    assert w.steps()[0][:2] == (0, "fired"), w.steps()
