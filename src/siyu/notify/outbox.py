"""Writing to the outbox (called by services inside their own transaction) and the
registry of senders that the worker runs for each kind of message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.db import locks, utcnow
from siyu.notify.models import OutboxMessage

URGENT = 0  # welcome messages: WeCom accepts them only within 20 s of the event
NORMAL = 5
LOW = 9

# A sender does the side effect and may return a function that records domain bookkeeping
# in the same transaction as the message's new status. `on_dead(session, message, error)`
# records a message given up on, also in that transaction.
Sender = Callable[..., Awaitable[Callable[[Session], None] | None]]
SENDERS: dict[str, Sender] = {}
ON_DEAD: dict[str, Callable[[Session, OutboxMessage, str], None]] = {}
# `prepare(rt, tenant_id, messages)` reads what a batch of one kind's messages needs in one
# go and returns it by message id; the sender then gets it as `prepared=`.
PREPARE: dict[str, Callable[..., dict[int, Any]]] = {}


class Permanent(Exception):
    """A failure that retrying cannot fix: the message is given up on at once."""


class Retry(Exception):  # noqa: N818 - a failure, said in words for whoever reads the board
    """A failure that retrying may fix, its message written for the admin who reads it: kept
    as it is (other errors are kept with their type's name, for the developer)."""


class Unanswered(Exception):  # noqa: N818 - a failure whose outcome nobody knows
    """No answer came (timed out, the connection lost, a gateway's page): the message may
    have reached them. `body` is what was sent; the row keeps it (payload[AS_SENT]) and its
    retries send it again as it was, which WeCom's duplicate check then drops if the first
    got through."""

    def __init__(self, message: str, body: dict):
        super().__init__(message)
        self.body = body


AS_SENT = "as_sent"  # a payload's key: the body of a send that may have reached them
# Kinds whose body is built anew at each try (an SLA card tells how long the customers have
# waited by then): their `prepare` writes the body to payload[AS_SENT] before it goes, so that
# a send whose outcome the database would not record goes again as it was (WeCom's duplicate
# check drops it), not as a second, different card. A recorded outcome drops it again: sent,
# or refused (it reached nobody, and the next try builds anew); a send with no answer keeps it.
WRITES_AS_SENT: set[str] = set()


class Skipped(Exception):  # noqa: N818 - not an error: there was nothing to send
    """Nothing to send after all (e.g. no welcome message set up)."""


class Deferred(Exception):  # noqa: N818 - not an error: not yet
    """Not to be sent before `until` (a call held back by quiet hours): pending again till then."""

    def __init__(self, until):
        super().__init__(f"deferred until {until}")
        self.until = until


def sender(
    kind: str,
    on_dead: Callable[[Session, OutboxMessage, str], None] | None = None,
    prepare: Callable[..., dict[int, Any]] | None = None,
    writes_as_sent: bool = False,
):
    def register(fn: Sender) -> Sender:
        SENDERS[kind] = fn
        if writes_as_sent:
            WRITES_AS_SENT.add(kind)
        if on_dead is not None:
            ON_DEAD[kind] = on_dead
        if prepare is not None:
            PREPARE[kind] = prepare
        return fn

    return register


def insert_statement(dialect_name: str):
    """INSERT ... ON CONFLICT (tenant_id, dedupe_key) DO NOTHING for this database."""
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    return dialect.insert(OutboxMessage).on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"])


def row(
    tenant_id: int,
    kind: str,
    dedupe_key: str,
    payload: dict,
    *,
    priority: int = NORMAL,
    deadline_at: datetime | None = None,
    delay: timedelta | None = None,
    recipient: str = "",
) -> dict:
    now = utcnow()
    return {
        "tenant_id": tenant_id,
        "kind": kind,
        "dedupe_key": dedupe_key,
        "recipient": recipient,
        "payload": payload,
        "priority": priority,
        "status": "pending",
        "due_at": now + delay if delay else now,
        "deadline_at": deadline_at,
        "attempts": 0,
        "last_error": "",
        "created_at": now,
    }


# WeCom silently drops app messages to one member past 30 a minute (REFERENCE 17). SLA cards
# keep to 20 (siyu.sla.firing's bucket); Siyu's other notices to a member (客户流失提醒: 35
# customers deleting an agent at once lost five alerts, recorded as sent) keep to the other
# NOTICES_A_MINUTE: each goes no sooner than the one before it, nor than a minute after the
# one that many before it, so no minute holds more.
NOTICES_A_MINUTE = 10
_MINUTE = timedelta(seconds=61)  # (a second to spare: clocks and the window's edges)


def next_notice_at(session: Session, recipient: str, now: datetime) -> datetime:
    """When Siyu's next notice (kind app_message) to `recipient` may go, by the rule above;
    their notices are decided one at a time till the transaction ends (a burst of events
    handled at once would all take the same moment)."""
    locks.hold(session, f"notice:{session.info['siyu_tenant_id']}:{recipient}", "outbox")
    dues = list(
        session.scalars(
            select(OutboxMessage.due_at)
            .where(
                OutboxMessage.kind == "app_message",
                OutboxMessage.recipient == recipient,
                OutboxMessage.due_at >= now - _MINUTE,
            )
            .order_by(OutboxMessage.due_at.desc())
            .limit(NOTICES_A_MINUTE)
        )
    )
    at = max([now, *dues[:1]])
    if len(dues) == NOTICES_A_MINUTE:
        at = max(at, dues[-1] + _MINUTE)
    return at


def enqueue(session: Session, kind: str, dedupe_key: str, payload: dict, **options) -> bool:
    """Queue one side effect unless one with the same key was queued before; True if queued."""
    tenant_id = session.info["siyu_tenant_id"]
    conn = session.connection()
    stmt = insert_statement(conn.dialect.name).returning(OutboxMessage.id)  # no row back: it was there
    return conn.execute(stmt, row(tenant_id, kind, dedupe_key, payload, **options)).first() is not None


def enqueue_many(session: Session, rows: list[dict]) -> dict[str, int]:
    """Queue many side effects (dicts from `row`) in one INSERT, skipping keys queued
    before; returns the new messages' ids by dedupe key."""
    if not rows:
        return {}
    conn = session.connection()
    stmt = insert_statement(conn.dialect.name).returning(OutboxMessage.dedupe_key, OutboxMessage.id)
    return dict(conn.execute(stmt, rows).all())
