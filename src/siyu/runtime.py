"""What a running Siyu process holds: settings, database, intake, WeCom clients, wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from siyu.config import Settings
from siyu.db import Database, utcnow
from siyu.db.crypto import SecretBox
from siyu.intake.service import CallbackIntake
from siyu.tenancy.clients import TenantClients


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
    # The write end of a pipe to a worker child process (siyu.jobs.child), if there is one.
    wake_fd: int | None = None
    clock: Clock = field(default_factory=Clock)

    def now(self) -> datetime:
        return self.clock.now()

    @classmethod
    def create(cls, settings: Settings, db: Database | None = None) -> Runtime:
        db = db or Database(settings.sqlalchemy_url)
        box = SecretBox(settings.encryption_key())
        return cls(
            settings=settings,
            db=db,
            box=box,
            intake=CallbackIntake(db, box),
            clients=TenantClients(db, box, settings.wecom_base_url, settings.wecom_rate_limit_pause_s),
        )

    def new_wake(self) -> asyncio.Event:
        event = asyncio.Event()
        self._wakes.append(event)
        self._loop = asyncio.get_running_loop()
        return event

    def wake_after(self, seconds: float) -> None:
        """Work stored now comes due in `seconds` (a card waiting for others to join it):
        wake this process's worker loops then, rather than at their next poll. Callable from
        any thread; a no-op where no worker loop runs."""
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.call_later, seconds, self.wake)

    def forget_wake(self, event: asyncio.Event) -> None:
        if event in self._wakes:
            self._wakes.remove(event)

    def wake(self) -> None:
        """New work was stored: start on it now rather than at the next poll."""
        for event in self._wakes:
            event.set()
        if self.wake_fd is not None:
            # a full pipe means the child has wake-ups waiting anyway; a broken one, it is gone
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self.wake_fd, b"\0")
