"""What a running Siyu process holds: settings, database, intake, WeCom clients, wake-ups."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from siyu.config import Settings
from siyu.db import Database
from siyu.db.crypto import SecretBox
from siyu.intake.service import CallbackIntake
from siyu.tenancy.clients import TenantClients


@dataclass
class Runtime:
    settings: Settings
    db: Database
    box: SecretBox
    intake: CallbackIntake
    clients: TenantClients
    # Set when new work is stored, so the worker starts at once instead of at its next poll.
    events_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    outbox_waiting: asyncio.Event = field(default_factory=asyncio.Event)

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

    def wake(self) -> None:
        self.events_waiting.set()
        self.outbox_waiting.set()
