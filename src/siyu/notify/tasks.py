"""Sending outbox messages: what the worker runs for each claimed row.

Senders live with their domain and register with `siyu.notify.outbox.sender(kind)`;
app messages are this module's own."""

from __future__ import annotations

import logging

from siyu.db import utcnow
from siyu.jobs.claim import backoff, renew
from siyu.notify.models import OutboxMessage
from siyu.notify.outbox import ON_DEAD, SENDERS, Permanent, Skipped, sender
from siyu.wecom.errors import WeComError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 12


@sender("app_message")
async def _app_message(rt, tenant_id: int, message: OutboxMessage):
    wecom = rt.clients.get(tenant_id)
    await wecom.app.message_send({**message.payload, "agentid": wecom.agent_id})


async def send(rt, message: OutboxMessage) -> None:
    """Send one claimed message (a detached row, as claimed)."""
    message_id = message.id
    lease = renew(rt.db, message)
    if lease is None:
        log.info("outbox %s %s: lease lost before sending; another worker has it", message.kind, message_id)
        return
    error, permanent, after, status = "", False, None, "sent"
    try:
        if message.deadline_at is not None and utcnow() >= message.deadline_at:
            raise Permanent("past its deadline; not sent")
        send_one = SENDERS.get(message.kind)
        if send_one is None:
            raise Permanent(f"no sender for outbox kind {message.kind!r}")
        after = await send_one(rt, message.tenant_id, message)
    except Skipped as exc:
        status, error = "skipped", ""
        log.debug("outbox %s %s skipped: %s", message.kind, message_id, exc)
    except Permanent as exc:
        error, permanent = str(exc), True
    except Exception as exc:  # noqa: BLE001 - recorded on the row and retried with backoff
        error = exc.describe() if isinstance(exc, WeComError) else f"{type(exc).__name__}: {exc}"
    now = utcnow()
    with rt.db.tenant_session(message.tenant_id) as s:
        row = s.get(OutboxMessage, message_id)
        row.claimed_until = None
        if not error:
            row.status, row.sent_at, row.last_error = status, now, ""
            if after is not None:
                after(s)
            return
        log.warning("outbox %s %s failed: %s", message.kind, message_id, error)
        row.last_error = error[:2000]
        if permanent or message.attempts >= MAX_ATTEMPTS:
            row.status = "dead"
            if message.kind in ON_DEAD:
                ON_DEAD[message.kind](s, message, error)
        else:
            # Messages with a deadline (welcomes) retry fast; the rest back off.
            fast = message.deadline_at is not None
            row.due_at = now + (
                backoff(message.attempts, base=0.2, cap=2.0) if fast else backoff(message.attempts)
            )
