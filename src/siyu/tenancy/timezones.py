"""The tenant's time zone: the days, business hours and times every page and the SLA clock
read in (Tenant.timezone)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy.orm import Session

from siyu.tenancy import setting_changes
from siyu.tenancy.models import Tenant

DEFAULT = "Asia/Shanghai"
# offered first: where WeCom corps' service teams mostly sit
COMMON = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Kuala_Lumpur",
    "Asia/Bangkok",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Asia/Dubai",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
)


@cache  # the tz database does not change while Siyu runs (reading it scans the files)
def zones() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted: not `localtime`, this machine's own link
    (another host running Siyu's worker reads another zone, or none)."""
    return tuple(sorted(available_timezones() - {"localtime"}))


def check(zone: str) -> str:
    """`zone` as stored, or ValueError naming it: only a name of the IANA database (exact
    case), which every process of Siyu can load, not a path or an abbreviation."""
    zone = zone.strip()
    if zone not in zones():
        raise ValueError(
            f"时区「{zone[:80]}」不存在：请填写 IANA 时区名，如 Asia/Shanghai、Asia/Singapore、Europe/Berlin"
            f" / unknown time zone {zone[:80]!r}: give an IANA name such as Asia/Singapore"
        )
    return zone


def set_timezone(session: Session, tenant_id: int, zone: str, by: str, at: datetime) -> bool:
    """Store the tenant's zone (ValueError: not one); True when it changed, recorded as `by`'s
    at `at` with the zone before (setting_changes). The SLA clock's waits follow through
    siyu.sla.service.change_timezone, which callers use."""
    zone = check(zone)
    tenant = session.get(Tenant, tenant_id)
    was = tenant.timezone or DEFAULT
    changed = was != zone
    setting_changes.record(session, "timezone", was, zone, by, at)
    tenant.timezone = zone
    session.flush()
    return changed


def local_now(zone: str, now: datetime) -> str:
    """`now` on the zone's wall clock, as the setting shows it."""
    return now.astimezone(ZoneInfo(zone or DEFAULT)).strftime("%Y-%m-%d %H:%M")


def today(zone: str | None, now: datetime) -> date:
    """The day `now` (Siyu's clock, rt.now(): the demo's and the tests' moved one, not the
    machine's) falls on in the zone: "today" for every page and figure of the tenant."""
    return now.astimezone(ZoneInfo(zone or DEFAULT)).date()


def wall_clock(at: datetime, zone: str | None, fmt: str) -> str:
    """`at` on the zone's wall clock by `fmt`. In the hour a change from summer time repeats,
    a time with an hour in it says which pass it is (01:30（UTC-04:00）, then 01:30（UTC-05:00）):
    a card's "reminded at 01:50" before "will call at 01:10" read as time running backwards."""
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(ZoneInfo(zone or DEFAULT))
    text = local.strftime(fmt)
    if "%H" in fmt and local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        offset = local.utcoffset() or timedelta(0)
        sign, minutes = "-" if offset < timedelta(0) else "+", abs(int(offset.total_seconds())) // 60
        text += f"（UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}）"
    return text


def upcoming(value: datetime) -> datetime:
    """A time to come as shown to the minute: the minute it will have come by (a step due at
    00:15:59 shown as 00:15 looked overdue at 00:15:30; it fires at 00:16). Pages and cards
    alike: a card said 10:05 of the step the board beside it said 10:06."""
    whole = value.replace(second=0, microsecond=0)
    return whole if whole == value else whole + timedelta(minutes=1)


def of_the_day(at: datetime, zone: str | None, now: datetime, clock: str = "%H:%M") -> str:
    """HH:MM when `at` falls on the zone's today (by `now`, Siyu's clock), else MM-DD HH:MM: how
    every page and card gives a time near now (`clock`: "%H:%M:%S" for a deadline)."""
    same_day = at.astimezone(ZoneInfo(zone or DEFAULT)).date() == today(zone, now)
    return wall_clock(at, zone, clock if same_day else f"%m-%d {clock}")
