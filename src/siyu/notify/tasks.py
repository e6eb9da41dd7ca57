"""Sending outbox messages: what the worker runs for each claimed row."""

from __future__ import annotations

import logging

from siyu.customers import service as customers
from siyu.db import utcnow
from siyu.jobs.claim import backoff
from siyu.notify.models import OutboxMessage
from siyu.wecom.errors import WeComError, WeComWelcomeCodeError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 12


class Permanent(Exception):
    """A failure that retrying cannot fix."""


async def _welcome(rt, tenant_id: int, p: dict) -> None:
    try:
        await rt.clients.get(tenant_id).contact.send_welcome_msg(
            p["welcome_code"], text=(p.get("text") or {}).get("content"), attachments=p.get("attachments")
        )
    except WeComWelcomeCodeError as exc:
        raise Permanent(str(exc)) from exc


async def _mark_tag(rt, tenant_id: int, p: dict) -> None:
    await rt.clients.get(tenant_id).contact.mark_tag(
        p["userid"], p["external_userid"], add_tag=p.get("add_tag", []), remove_tag=p.get("remove_tag", [])
    )


async def _app_message(rt, tenant_id: int, p: dict) -> None:
    wecom = rt.clients.get(tenant_id)
    await wecom.app.message_send({**p, "agentid": wecom.agent_id})


SENDERS = {"welcome": _welcome, "mark_tag": _mark_tag, "app_message": _app_message}


def _after(session, message: OutboxMessage, ok: bool, error: str = "") -> None:
    """Domain bookkeeping that must commit together with the outbox row's new status."""
    if message.kind == "welcome" and (ok or message.status == "dead"):
        p = message.payload
        customers.record_welcome_result(session, p["customer_id"], p["userid"], ok, error)


async def send(rt, message_id: int) -> None:
    with rt.db.system_session() as s:
        message = s.get(OutboxMessage, message_id)
        if message is None or message.status != "pending":
            return
        tenant_id, kind, payload, attempts = (
            message.tenant_id,
            message.kind,
            message.payload,
            message.attempts,
        )
        deadline = message.deadline_at
    error, permanent = "", False
    try:
        sender = SENDERS.get(kind)
        if sender is None:
            raise Permanent(f"no sender for outbox kind {kind!r}")
        await sender(rt, tenant_id, payload)
    except Permanent as exc:
        error, permanent = str(exc), True
    except Exception as exc:  # noqa: BLE001 - recorded on the row and retried with backoff
        error = exc.describe() if isinstance(exc, WeComError) else f"{type(exc).__name__}: {exc}"
    now = utcnow()
    with rt.db.tenant_session(tenant_id) as s:
        message = s.get(OutboxMessage, message_id)
        if not error:
            message.status, message.sent_at, message.last_error = "sent", now, ""
        else:
            log.warning("outbox %s %s failed: %s", kind, message_id, error)
            message.last_error = error[:2000]
            late = deadline is not None and now >= deadline
            if permanent or late or attempts >= MAX_ATTEMPTS:
                message.status = "dead"
            else:
                # Urgent messages with a deadline retry fast; the rest back off.
                delay = backoff(attempts, base=0.2, cap=2.0) if deadline else backoff(attempts)
                message.due_at = now + delay
        message.claimed_until = None
        _after(s, message, not error, error)
