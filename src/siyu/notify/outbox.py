"""Writing to the outbox: called by services inside their own transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.notify.models import OutboxMessage

URGENT = 0  # welcome messages: WeCom accepts them only within 20 s of the event
NORMAL = 5
LOW = 9


def enqueue(
    session: Session,
    kind: str,
    dedupe_key: str,
    payload: dict,
    *,
    priority: int = NORMAL,
    deadline_at: datetime | None = None,
    delay: timedelta | None = None,
) -> OutboxMessage | None:
    """Queue one side effect unless one with the same key was queued before."""
    existing = session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key))
    if existing is not None:
        return None
    now = utcnow()
    message = OutboxMessage(
        kind=kind,
        dedupe_key=dedupe_key,
        payload=payload,
        priority=priority,
        due_at=now + delay if delay else now,
        deadline_at=deadline_at,
    )
    session.add(message)
    return message
