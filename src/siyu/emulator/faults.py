"""Injected faults and frequency limits (REFERENCE.md section 17).

A fault makes the next `times` matching calls answer `errcode` (and/or answer only after
`delay_s`), or answer HTTP `status` with an HTML page instead of WeCom's JSON (what a proxy or
load balancer in front of WeCom answers when WeCom is down), so a client's retry and
back-off paths can be tested on purpose. The limiter
counts calls per (corp, API) in a sliding minute and answers 45009 past the limit.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import asdict, dataclass

from .state import Corp, EmulatorState

_ids = itertools.count(1)


@dataclass
class Fault:
    id: int
    errcode: int | None  # None or 0: only slow the answer down
    times: int
    corp_id: str | None = None
    path: str = "*"  # "*" or a full path such as /cgi-bin/externalcontact/mark_tag
    delay_s: float = 0.0
    status: int | None = None  # an HTTP status answered with an HTML page, no WeCom JSON

    def matches(self, corp_id: str | None, path: str) -> bool:
        if self.times <= 0:
            return False
        if self.corp_id and self.corp_id != corp_id:
            return False
        return self.path in ("*", path, path.removeprefix("/cgi-bin/"))

    def as_dict(self) -> dict:
        return asdict(self)


class Faults:
    def __init__(self) -> None:
        self.items: list[Fault] = []

    def add(
        self,
        errcode: int | None,
        times: int = 1,
        corp_id: str | None = None,
        path: str = "*",
        delay_s: float = 0.0,
        status: int | None = None,
    ) -> Fault:
        fault = Fault(next(_ids), errcode, times, corp_id, path or "*", delay_s, status)
        self.items.append(fault)
        return fault

    def clear(self) -> None:
        self.items.clear()

    def take(self, corp_id: str | None, path: str) -> Fault | None:
        """The first matching fault, with one use consumed."""
        for fault in self.items:
            if fault.matches(corp_id, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.items.remove(fault)
                return fault
        return None


def admitted(times: deque, now: float, windows) -> bool:
    """Count one event at `now` in `times` (its earlier ones, oldest first) unless one of the
    sliding (seconds, limit) windows is full. A refused event is not counted: a block lifts
    when its window rolls on, however often one knocks."""
    if not windows:
        return True
    longest = max(seconds for seconds, _ in windows)
    while times and times[0] <= now - longest:
        times.popleft()
    for seconds, limit in windows:
        within = len(times) if seconds == longest else sum(1 for t in times if t > now - seconds)
        if within >= limit:
            return False
    times.append(now)
    return True


def over_limit(state: EmulatorState, corp: Corp, api: str) -> bool:
    """Count this call; True when it exceeds the corp's per-minute limit for `api`."""
    limit = corp.rate_limits.get(api, corp.rate_limits.get("*", state.config.rate_limit_per_minute))
    window = state.rate_windows.setdefault((corp.corp_id, api), deque())
    return not admitted(window, state.now(), ((60.0, limit),))
