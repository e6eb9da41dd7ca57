from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, TenantOwned, utcnow


class CallbackEvent(TenantOwned, Base):
    """A decrypted callback, stored before WeCom gets its answer and processed afterwards.

    `digest` is the sha256 of the decrypted inner XML: WeCom's retries resend identical
    XML, so a retry hits the unique key; two customers scanning in the same second differ."""

    __tablename__ = "callback_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "digest"),
        Index("ix_callback_events_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(80))
    xml: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime | None]
    # to run once more when this run ends: the same XML came while it ran, a change of its own
    # (siyu.intake.service.REREAD)
    again: Mapped[bool] = mapped_column(default=False, server_default=false())
