"""What a running Siyu process holds: settings, database, intake, WeCom clients, wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from siyu.config import Settings
from siyu.db import Database, utcnow
from siyu.db.crypto import SecretBox
from siyu.intake.service import CallbackIntake
from siyu.tenancy.clients import TenantClients

WAKE_GRID_S = 0.02


class Clock:
    """Siyu's idea of now. Tests move it forward to let minutes pass in a second."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    box: SecretBox
    intake: CallbackIntake
    clients: TenantClients
    # Worker loops in this process wait on these; `wake()` sets them all when work is stored.
    _wakes: list[asyncio.Event] = field(default_factory=list)
    _outbox_wakes: list[asyncio.Event] = field(default_factory=list)
    _wake_slots: set[float] = field(default_factory=set)
    # The SLA loops of this process, with their event loops: `archive_moved()` wakes them.
    _sla_wakes: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)
    # The write end of a pipe to a worker child process (siyu.jobs.child), if there is one.
    wake_fd: int | None = None
    clock: Clock = field(default_factory=Clock)

    def now(self) -> datetime:
        return self.clock.now()

    @classmethod
    def create(cls, settings: Settings, db: Database | None = None) -> Runtime:
        db = db or Database(settings.sqlalchemy_url, settings.database_timeouts)
        box = SecretBox(settings.encryption_key())
        return cls(
            settings=settings,
            db=db,
            box=box,
            intake=CallbackIntake(db, box),
            clients=TenantClients(
                db, box, settings.wecom_base_url, settings.wecom_rate_limit_pause_s, settings.wecom_timeout_s
            ),
        )

    def new_wake(self, outbox: bool = False) -> asyncio.Event:
        """An event set when work is stored; `outbox`: also when a queued outbox message
        comes due (`wake_after`)."""
        event = asyncio.Event()
        self._wakes.append(event)
        if outbox:
            self._outbox_wakes.append(event)
        self._loop = asyncio.get_running_loop()
        return event

    def wake_after(self, seconds: float) -> None:
        """An outbox message stored now comes due in `seconds` (a card waiting for others to
        join it): wake this process's outbox loops then, rather than at their next poll.
        Callable from any thread; a no-op where no worker loop runs. Wake-ups that fall
        within the same WAKE_GRID_S share one: a burst of cards is one claim, not many."""
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_at, loop.time() + seconds)

    def _wake_at(self, when: float) -> None:
        slot = math.ceil(when / WAKE_GRID_S) * WAKE_GRID_S
        if slot not in self._wake_slots:
            self._wake_slots.add(slot)
            self._loop.call_at(slot, self._slot_due, slot)

    def _slot_due(self, slot: float) -> None:
        self._wake_slots.discard(slot)
        self.wake_senders()

    def forget_wake(self, event: asyncio.Event) -> None:
        for events in (self._wakes, self._outbox_wakes):
            if event in events:
                events.remove(event)
        self._sla_wakes[:] = [(loop, e) for loop, e in self._sla_wakes if e is not event]

    def new_sla_wake(self) -> asyncio.Event:
        """An event set when a tenant's archive was pulled further (`archive_moved`)."""
        event = asyncio.Event()
        self._sla_wakes.append((asyncio.get_running_loop(), event))
        return event

    def archive_moved(self) -> None:
        """A pull stored the archive up to a later time: steps it held back may fire now, not
        at the SLA loop's next poll. Callable from any thread."""
        for loop, event in list(self._sla_wakes):
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def wake_senders(self) -> None:
        """Outbox messages were stored in this process's worker loop (on its thread): start
        sending them now. The other loops are left asleep: each wake-up costs them a claim,
        and escalation firing stores cards many times a second."""
        for event in self._outbox_wakes:
            event.set()

    def wake(self) -> None:
        """New work was stored: start on it now rather than at the next poll."""
        for event in self._wakes:
            event.set()
        if self.wake_fd is not None:
            # a full pipe means the child has wake-ups waiting anyway; a broken one, it is gone
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self.wake_fd, b"\0")
