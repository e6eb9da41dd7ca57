"""The seeded tenants' day, for tests of what Siyu counts as "today": the tenant's day, in
Asia/Shanghai, never the machine's (UTC on CI: a day behind Shanghai's from 16:00 to 24:00
UTC). Siyu's clock in these tests is the machine's own, so a test near midnight in Shanghai
(16:00 UTC) must keep what it seeds, and what it reads twice, within one day."""

from __future__ import annotations

import time as clock
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def today() -> date:
    """The seeded tenants' today (the day their pages and figures count)."""
    return datetime.now(SHANGHAI).date()


def today_at(ago_s: float) -> int:
    """A Unix time `ago_s` seconds ago, but not before today began in Shanghai: something done
    "a while ago" that the test then counts among today's (just after midnight it would have been
    yesterday's)."""
    now = datetime.now(SHANGHAI)
    began = datetime.combine(now.date(), time(0), tzinfo=SHANGHAI)
    return int(max(now.timestamp() - ago_s, began.timestamp()))


def clear_of_midnight(span_s: float) -> None:
    """When midnight in Shanghai is less than `span_s` away, wait until it has passed: the next
    `span_s` seconds (what a test seeds and then reads as today's, or reads twice to compare)
    then lie within one day."""
    now = datetime.now(SHANGHAI)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=SHANGHAI)
    left = (midnight - now).total_seconds()
    if left < span_s:
        clock.sleep(left + 1)
