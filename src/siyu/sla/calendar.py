"""Business time: shifts on workdays in the tenant's time zone, holidays and 调休.

A workday is decided, in order, by the dates the admin set (SlaCalendarDay: holiday or
workday), then by mainland China's official calendar from the `chinese-calendar` package
(public holidays and the weekend days worked in exchange, 调休), then by the weekday.
Shifts are local times, several a day (split shifts, lunch breaks): [["09:00", "12:00"],
["13:30", "18:00"]]; "24:00" ends a shift at midnight.

    cal = BusinessCalendar.build("Asia/Shanghai", [["09:00", "18:00"]])
    cal.add(msgtime, 120)   # the moment two business minutes have passed since msgtime
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

MAX_DAYS = 800  # a calendar with no business hours for longer than this counts wall time


_HHMM = re.compile(r"(\d{1,2}):(\d{2})", re.ASCII)


def parse_hhmm(value: str) -> int:
    """Minutes since midnight for "HH:MM" (00:00 .. 24:00)."""
    found = _HHMM.fullmatch(str(value).strip())
    if found is None:  # int() alone took full-width and Arabic-Indic digits, and 0_9
        raise ValueError(f"时间应写作 HH:MM，如 09:00 / not a time of day (HH:MM): {value!r}")
    hours, minutes = int(found[1]), int(found[2])
    total = hours * 60 + minutes
    if not (0 <= minutes < 60 and 0 <= total <= 24 * 60):
        raise ValueError(f"时间应在 00:00 到 24:00 之间 / not a time of day (HH:MM): {value!r}")
    return total


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# The dates a calendar day or a board's day may be: beyond them date arithmetic overflows, and
# no service chat is that old or that far ahead.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def check_day(day: date) -> date:
    """The day, if it is one Siyu works with (FIRST_DAY .. LAST_DAY)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"日期应在 {FIRST_DAY} 至 {LAST_DAY} 之间 / a day from {FIRST_DAY} to {LAST_DAY}")
    return day


def parse_day(value: str) -> date:
    """A calendar day written YYYY-MM-DD, and nothing else (date.fromisoformat also reads
    20261001 and 2026-W40-4, and Pydantic a time or a count of seconds, as a day), within
    FIRST_DAY .. LAST_DAY."""
    if not _DAY.fullmatch(value):
        raise ValueError("日期应写作 YYYY-MM-DD / a day is written YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"没有 {value} 这一天 / there is no such day as {value}") from None
    return check_day(day)


DAY = 24 * 60


def parse_shifts(shifts: Iterable[Sequence[str]]) -> tuple[tuple[int, int], ...]:
    """Validated, sorted, non-overlapping shifts in minutes of the day. A shift that ends at or
    before its start runs overnight (22:00-06:00) and belongs to the day it starts: its end is
    given as minutes past that day's midnight (1800 for 06:00 the next morning). A night shift
    entered in two parts at midnight, as the form once asked (22:00-24:00 and 00:00-06:00), is
    that one shift: Friday's night runs into Saturday morning, and Monday 00:00 is no shift. Not
    where a part runs on into another shift: 00:00-08:00, 08:00-16:00 and 16:00-24:00 are the
    day's own, round the clock (Monday's early hours had been Sunday's, a day off)."""
    parsed = []
    for a, b in shifts:
        start, end = parse_hhmm(a), parse_hhmm(b)
        if start >= DAY:
            raise ValueError("班次不能从 24:00 开始 / a shift cannot start at 24:00")
        if end == start:
            raise ValueError("班次的开始和结束不能相同 / a shift must not end when it starts")
        parsed.append((start, end if end > start else end + DAY))
    parsed.sort()
    if (
        len(parsed) > 1
        and parsed[0][0] == 0
        and parsed[-1][1] == DAY
        and parsed[0][1] < parsed[1][0]  # (the morning part runs into no shift
        and parsed[-2][1] < parsed[-1][0]  # nor does one run into the evening part)
    ):
        (_, morning), (evening, _) = parsed.pop(0), parsed.pop()
        parsed.append((evening, morning + DAY))
    for (_, end), (start, _) in zip(parsed, parsed[1:], strict=False):
        if start < end:
            raise ValueError("班次时间重叠 / shifts overlap")
    if parsed and parsed[-1][1] - DAY > parsed[0][0]:
        raise ValueError("跨夜的班次和次日的班次重叠 / a night shift overlaps the next day's first shift")
    return tuple(parsed)


@lru_cache(maxsize=8192)  # the package's data does not change while Siyu runs
def official_workday(day: date) -> bool | None:
    """Mainland China's official answer (holidays, 调休), or None for years it does not cover.
    Remembered: the package checks each date against the min and max of all its dates, so the
    SLA board under a business-hours policy spent ~4 s of 6 s here for 35,000 waits."""
    try:
        import chinese_calendar
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@cache  # the package's data does not change while Siyu runs
def official_calendar_through() -> int | None:
    """The last year the official calendar covers (the State Council publishes a year's
    holidays late in the year before, and chinese-calendar follows in a release), or None.
    After it, days count as workdays Monday to Friday unless the admin sets them."""
    try:
        import chinese_calendar
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return max(day.year for day in chinese_calendar.holidays)


def official_calendar_gap(today: date, ahead_days: int = 60) -> int | None:
    """The year `ahead_days` from `today` where the official calendar does not cover it (the
    admin should add its holidays and 调休 workdays), or None: late in a year the package does
    not know either, the coming one, whose Spring Festival is weeks away, not the one nearly
    over."""
    through = official_calendar_through()
    if through is None:
        return None
    soon = (today + timedelta(days=ahead_days)).year
    return soon if soon > through else None


def _local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """`minutes` past the local midnight that starts `day` (1440 and more: the days after). A
    time the clocks skip when they go forward (02:30 on a night they jump from 02:00 to 03:00)
    is the moment they jump, the first the clock reads past it: Python reads it by the offset
    before the jump, an hour after it (03:30), and shifts and quiet hours ended half an hour
    after the clock had passed their end."""
    days, minutes = divmod(minutes, DAY)
    wall = datetime.combine(day + timedelta(days=days), time(minutes // 60, minutes % 60), tzinfo=tz)
    jumped = wall.replace(fold=1).utcoffset()
    if jumped <= wall.utcoffset():  # it exists (once, or twice when the clocks go back)
        return wall
    before, after = int(wall.replace(fold=1).timestamp()), int(wall.timestamp())
    while after - before > 1:  # the clocks jump on a whole second between the two readings
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == jumped:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, tz)


@dataclass(frozen=True)
class BusinessCalendar:
    tz: ZoneInfo
    shifts: tuple[tuple[int, int], ...]
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)
    public_holidays: bool = True
    # each day's business intervals, worked out once: the board measures every wait of the day
    # by this calendar, and the time zone arithmetic of a day cost more than the rest of a wait
    _days: dict[date, list[tuple[datetime, datetime]]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def build(
        cls,
        timezone: str,
        shifts: Iterable[Sequence[str]],
        holidays: Iterable[date] = (),
        workdays: Iterable[date] = (),
        public_holidays: bool = True,
    ) -> BusinessCalendar:
        return cls(
            ZoneInfo(timezone or "Asia/Shanghai"),
            parse_shifts(shifts),
            frozenset(holidays),
            frozenset(workdays),
            public_holidays,
        )

    def is_workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        if self.public_holidays:
            official = official_workday(day)
            if official is not None:
                return official
        return day.weekday() < 5

    def intervals_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Business intervals (UTC) that end after `start`, in order, clipped to start."""
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        for _ in range(MAX_DAYS):
            for begin, end in self._intervals_of(day):
                if end > start:
                    yield max(begin, start), end
            day += timedelta(days=1)

    def _intervals_of(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's shifts (UTC), none on a day off."""
        found = self._days.get(day)
        if found is None:
            found = self._days[day] = [
                (_local(day, a, self.tz).astimezone(UTC), _local(day, b, self.tz).astimezone(UTC))
                for a, b in self.shifts
                if self.is_workday(day)
            ]
        return found

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment `seconds` of business time have passed since `start` (a delay of 0
        gives the next open moment)."""
        remaining = max(0.0, float(seconds))
        last_end = None
        for begin, end in self.intervals_from(start):
            length = (end - begin).total_seconds()
            if remaining <= length:
                return begin + timedelta(seconds=remaining)
            remaining -= length
            last_end = end
        if last_end is None:
            return start + timedelta(seconds=seconds)  # no business hours at all: wall time
        # More than MAX_DAYS of business time (a one-minute shift): the rest in wall time after
        # the last of it, so a longer delay never comes due sooner than a shorter one
        return last_end + timedelta(seconds=remaining)

    def between(self, start: datetime, end: datetime) -> float:
        """Business seconds from `start` to `end`."""
        total = 0.0
        for begin, stop in self.intervals_from(start):
            if begin >= end:
                break
            total += (min(stop, end) - begin).total_seconds()
        return total

    def is_open(self, at: datetime) -> bool:
        return any(begin <= at for begin, _ in _first(self.intervals_from(at)))


def _first(it: Iterator) -> list:
    return [x for _, x in zip(range(1), it, strict=False)]


def quiet_until(at: datetime, window: Sequence[str], timezone: str) -> datetime | None:
    """If `at` falls in the daily quiet window [start, end) (local; may span midnight, e.g.
    ["21:00", "08:00"]), the moment it ends (UTC); else None."""
    if not window or len(window) != 2:
        return None
    tz = ZoneInfo(timezone or "Asia/Shanghai")
    start, end = parse_hhmm(window[0]), parse_hhmm(window[1])
    if start == end:
        return None
    local = at.astimezone(tz)
    minute = local.hour * 60 + local.minute + local.second / 60
    today = local.date()
    if start < end:
        inside = start <= minute < end
        ends = _local(today, end, tz)
    else:
        inside = minute >= start or minute < end
        ends = _local(today + timedelta(days=1) if minute >= start else today, end, tz)
    if not inside:
        return None
    # an end in the hour repeated when clocks go back, its first moment passed: the second
    if ends.replace(fold=1).astimezone(UTC) > at.astimezone(UTC) >= ends.astimezone(UTC):
        ends = ends.replace(fold=1)
    return ends.astimezone(UTC)


def shifts_all_quiet(shifts: Iterable[Sequence[str]], window: Sequence[str]) -> bool:
    """Whether every minute of every shift lies in the daily quiet window: under business hours
    a call held by quiet hours waits for the next shift, which quiet hours hold again (shift
    22:00-06:00, quiet 21:00-08:00): it never rings."""
    if not window or len(window) != 2:
        return False
    start, end = parse_hhmm(window[0]), parse_hhmm(window[1])
    if start == end:
        return False

    def quiet(minute: int) -> bool:
        m = minute % DAY
        return start <= m < end if start < end else m >= start or m < end

    parsed = parse_shifts(shifts)
    return bool(parsed) and all(quiet(m) for a, b in parsed for m in range(a, b))
