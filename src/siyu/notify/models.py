from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, TenantOwned, utcnow

# Rows that have not gone out (an index of their own: the sent ones are nearly all the table).
UNSENT = "status IN ('pending', 'failed', 'dead')"


class OutboxMessage(TenantOwned, Base):
    """A side effect written in the same transaction as the change that causes it.

    Workers claim due rows by priority (0 first: welcome messages, which WeCom accepts only
    within 20 s), send, and record the result. `dedupe_key` makes a re-processed event
    enqueue nothing twice."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key"),
        Index("ix_outbox_due", "status", "priority", "due_at"),
        Index("ix_outbox_recipient", "tenant_id", "kind", "recipient", "due_at"),
        # what workers claim: sent messages leave it (see migration 0004)
        # what has not gone out, for the SLA board's "did not reach them" (migration 0007)
        Index(
            "ix_outbox_unsent",
            "tenant_id",
            "kind",
            "created_at",
            postgresql_where=text(UNSENT),
            sqlite_where=text(UNSENT),
        ),
        Index(
            "ix_outbox_pending",
            "priority",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    # The person it goes to (a WeCom userid) where their messages are paced; else empty.
    recipient: Mapped[str] = mapped_column(String(64), default="", server_default="")
    payload: Mapped[dict] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(default=5)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | failed | dead
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
