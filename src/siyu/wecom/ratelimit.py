"""Pacing WeCom calls per endpoint (REFERENCE section 17).

Each key (base_url, corp_id, API path) has a gate that admits a call when
- fewer than `max_in_flight` calls of that key are running (WeCom answers 45033 above
  roughly 10 concurrent calls per API; the cap halves on 45033 and creeps back on success),
- every rate window has room (default 10,000 per minute and 150,000 per hour per corp and
  API, WeCom's published defaults), counted in 60 slots per window, rounding against us,
- the key is not paused after a 45009 (the pause doubles while 45009 persists, up to
  `max_pause`, 60 s by default: WeCom's minute-level block lifts within a minute, and a
  probe a minute during a longer block costs little).

APIs that WeCom does not count against the base limit (message/send: its limit is per
member, and what exceeds it is dropped silently, so the senders pace themselves, see
siyu.sla.firing.next_card_at) have no rate windows, only the in-flight cap and pauses.

Waiting calls are admitted in priority order ("urgent" before "normal", then first come
first served). Keys are independent: a paused or saturated endpoint never delays another.
A call that would wait longer than its `max_wait` fails at once with `WeComRateLimited`
(errmsg starting "siyu:") instead of waiting in vain.

Gates live per event loop (asyncio primitives belong to one loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Sequence

from .errors import WeComRateLimited

__all__ = ["RateLimiter", "PRIORITIES", "default_rate_limiter"]

PRIORITIES = {"urgent": 0, "normal": 1}

_EPSILON = 0.002
UNMETERED = frozenset({"/cgi-bin/message/send"})  # paths outside the base limit (REFERENCE 17)


class _Window:
    """At most `limit` admissions in any `seconds`-long window (bucketed, conservative)."""

    def __init__(self, seconds: float, limit: int, slots: int = 60):
        self.seconds = float(seconds)
        self.limit = int(limit)
        self.width = self.seconds / slots
        self.buckets: deque[list[int]] = deque()  # [slot index, count]
        self.total = 0

    def _expire(self, now: float) -> None:
        # a bucket's calls all lie in [i*w, (i+1)*w); drop it once (i+1)*w is a window ago
        horizon = now - self.seconds
        while self.buckets and (self.buckets[0][0] + 1) * self.width <= horizon:
            self.total -= self.buckets.popleft()[1]

    def free_at(self, now: float) -> float:
        """When the next admission fits (now if it fits now)."""
        self._expire(now)
        if self.total < self.limit:
            return now
        excess = self.total - self.limit + 1
        for index, count in self.buckets:
            excess -= count
            if excess <= 0:
                return (index + 1) * self.width + self.seconds
        return now  # pragma: no cover - unreachable while total >= limit

    def record(self, now: float) -> None:
        index = int(now // self.width)
        if self.buckets and self.buckets[-1][0] == index:
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([index, 1])
        self.total += 1


class _Gate:
    # No reference to the loop itself: gates are values of a WeakKeyDictionary keyed by it.
    def __init__(self, limiter: RateLimiter, metered: bool = True):
        self.limiter = limiter
        self.cap = limiter.max_in_flight
        self.in_flight = 0
        self.windows = [_Window(seconds, limit) for seconds, limit in limiter.windows] if metered else []
        self.waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self.paused_until = 0.0
        self.pause_streak = 0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def ready_at(self, now: float) -> float:
        return max([now, self.paused_until, *(w.free_at(now) for w in self.windows)])

    def admit(self) -> None:
        clock = self.limiter.clock
        while self.waiters:
            _, _, fut = self.waiters[0]
            if fut.done():  # cancelled or timed out while waiting
                heapq.heappop(self.waiters)
                continue
            if self.in_flight >= self.cap:
                return
            now = clock()
            at = self.ready_at(now)
            if at > now:
                self.wake_at(at, now)
                return
            heapq.heappop(self.waiters)
            self.in_flight += 1
            for w in self.windows:
                w.record(now)
            fut.set_result(None)

    def wake_at(self, at: float, now: float) -> None:
        if self.timer is not None and self.timer_at <= at:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = at
        self.timer = asyncio.get_running_loop().call_later(at - now + _EPSILON, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.admit()

    def release(self) -> None:
        self.in_flight -= 1
        self.admit()


class RateLimiter:
    """Per-key pacing: rate windows, in-flight cap, 45009 pauses, priorities.

    `windows` is a sequence of (seconds, limit); by default ((60, per_minute), (3600, per_hour)).
    """

    def __init__(
        self,
        per_minute: int | None = 10_000,
        per_hour: int | None = 150_000,
        max_in_flight: int = 10,
        *,
        windows: Sequence[tuple[float, int]] | None = None,
        max_pause: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        unmetered: Collection[str] = UNMETERED,
    ):
        if windows is None:
            windows = [(s, n) for s, n in ((60.0, per_minute), (3600.0, per_hour)) if n is not None]
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.windows = [(float(s), int(n)) for s, n in windows]
        self.max_in_flight = max_in_flight
        self.max_pause = max_pause
        self.clock = clock
        self.unmetered = frozenset(unmetered)
        self._seq = itertools.count()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Gate]] = (
            weakref.WeakKeyDictionary()
        )

    def _gate(self, key: Hashable) -> _Gate:
        loop = asyncio.get_running_loop()
        gates = self._gates.get(loop)
        if gates is None:
            gates = self._gates[loop] = {}
        gate = gates.get(key)
        if gate is None:
            # keys are (base_url, corp_id, path)
            metered = not (isinstance(key, tuple) and key and key[-1] in self.unmetered)
            gate = gates[key] = _Gate(self, metered)
        return gate

    @contextlib.asynccontextmanager
    async def slot(
        self, key: Hashable, priority: str = "normal", max_wait: float | None = None, path: str = ""
    ) -> AsyncIterator[None]:
        """Hold one admission for `key` for the duration of the block."""
        await self.acquire(key, priority, max_wait, path)
        try:
            yield
        finally:
            self._gate(key).release()

    async def acquire(
        self, key: Hashable, priority: str = "normal", max_wait: float | None = None, path: str = ""
    ) -> None:
        """Wait for admission; pair with `release(key)`."""
        try:
            rank = PRIORITIES[priority]
        except KeyError:
            raise ValueError(f"priority must be one of {sorted(PRIORITIES)}") from None
        gate = self._gate(key)
        now = self.clock()
        if max_wait is not None and gate.paused_until - now > max_wait:
            raise WeComRateLimited(
                45009,
                f"siyu: {path or key} is paused {gate.paused_until - now:.1f}s after a frequency limit, "
                f"longer than this call may wait ({max_wait:.1f}s)",
                path,
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(gate.waiters, (rank, next(self._seq), fut))
        gate.admit()
        try:
            if fut.done():
                return
            if max_wait is None:
                await fut
            else:
                await asyncio.wait_for(fut, max(0.0, max_wait))
        except TimeoutError:
            # admitted in the same turn of the loop as the timeout (Python 3.12's wait_for then
            # raises all the same): the slot is this call's, and had never been handed back
            if fut.done() and not fut.cancelled():
                return
            raise WeComRateLimited(
                45009, f"siyu: waited {max_wait:.1f}s for a free slot on {path or key} and gave up", path
            ) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                gate.release()  # admitted just as we were cancelled: hand the slot on
            raise

    def release(self, key: Hashable) -> None:
        self._gate(key).release()

    def pause(self, key: Hashable, seconds: float) -> None:
        """Admit nothing for `key` during the next `seconds`."""
        gate = self._gate(key)
        gate.paused_until = max(gate.paused_until, self.clock() + seconds)

    def on_frequency_limited(self, key: Hashable, base_pause: float) -> float:
        """After a 45009: pause `key`; returns how long the pause still lasts.

        A 45009 during a pause (a call that was already under way) does not lengthen it; one
        after the pause ended doubles the next pause (up to `max_pause`) until a call succeeds.
        """
        gate = self._gate(key)
        now = self.clock()
        if gate.paused_until > now:
            return gate.paused_until - now
        seconds = min(self.max_pause, base_pause * (2**gate.pause_streak))
        gate.pause_streak += 1
        self.pause(key, seconds)
        return seconds

    def on_concurrency_limited(self, key: Hashable) -> None:
        """After a 45033: halve the key's in-flight cap."""
        gate = self._gate(key)
        gate.cap = max(1, gate.cap // 2)

    def on_success(self, key: Hashable) -> None:
        gate = self._gate(key)
        gate.pause_streak = 0
        if gate.cap < self.max_in_flight:
            gate.cap += 1
            gate.admit()

    def paused_for(self, key: Hashable) -> float:
        return max(0.0, self._gate(key).paused_until - self.clock())

    def in_flight(self, key: Hashable) -> int:
        return self._gate(key).in_flight


default_rate_limiter = RateLimiter()
"""The process-wide limiter that clients use unless given another."""
