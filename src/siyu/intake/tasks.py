"""Processing stored callback events: what the worker runs for each claimed row.

Their outcomes are written in threads (siyu.db.threads), not on the event loop the worker's
other loops share: during a database outage (a server gone silent answers nothing until the
connection's limits give up on it) a write on it had held back every card and step due
meanwhile."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update

from siyu.conversations import service as conversation_service
from siyu.conversations import tasks as conversation_tasks
from siyu.customers import service as customer_service
from siyu.customers import tasks as customer_tasks
from siyu.db import utcnow
from siyu.db.threads import in_system, in_tenant
from siyu.intake.models import CallbackEvent
from siyu.intake.service import mark_done
from siyu.jobs.claim import backoff, held
from siyu.sla import service as sla_service
from siyu.tenancy import service as tenancy_service
from siyu.tenancy import tasks as staff_tasks
from siyu.wecom.events import MalformedXML, parse_event

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
# An event is given up only once it has been tried MAX_ATTEMPTS times and is this old: ten
# tries take about 17 minutes of backoff, less than an admin may take to mend a secret or a
# permission WeCom refuses (40001, 60011), and the events of those minutes had been lost for
# good. Backoff is capped at an hour, so that is about 24 tries more.
KEEP_TRYING = timedelta(days=1)

HANDLERS = {
    "change_external_contact/add_external_contact": customer_tasks.on_added,
    "change_external_contact/add_half_external_contact": customer_tasks.on_added,
    "change_external_contact/edit_external_contact": customer_tasks.on_edited,
    "change_external_contact/del_external_contact": customer_tasks.on_deleted_by_staff,
    "change_external_contact/del_follow_user": customer_tasks.on_lost,
    "change_external_contact/transfer_fail": customer_tasks.on_transfer_failed,
    "msgaudit_notify": conversation_tasks.on_msgaudit_notify,
    "change_external_chat/create": conversation_tasks.on_group_changed,
    "change_external_chat/update": conversation_tasks.on_group_changed,
    "change_external_chat/dismiss": conversation_tasks.on_group_changed,
}


def _renamed(s, old: str, new: str, at: datetime) -> None:
    """A member's userid changed (update_user with NewUserID): everything of theirs follows,
    in one transaction, before the sync reads the directory (which names them by the new one
    only: the old would have left, and a blank member come)."""
    if tenancy_service.rename_member(s, old, new, at):
        conversation_service.rename_member(s, old, new)
        customer_service.rename_member(s, old, new)
        sla_service.rename_member(s, old, new)


async def _on_directory_changed(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    old, new = fields.get("UserID", ""), fields.get("NewUserID", "")
    if old and new and new != old:
        await in_tenant(
            rt.db, tenant_id, _renamed, old, new, customer_service.from_unix(fields.get("CreateTime"))
        )
    # by when Siyu had the event (its clock, as the sync's: WeCom's CreateTime may run apart)
    received = await in_tenant(rt.db, tenant_id, lambda s: s.get(CallbackEvent, event_id).received_at)
    await staff_tasks.sync_after(rt, tenant_id, received)
    await in_tenant(rt.db, tenant_id, mark_done, event_id)
    rt.wake()


async def process(rt, row: CallbackEvent) -> None:
    """Run one claimed event (a detached row, as claimed)."""
    event_id, tenant_id, xml, attempts, kind = row.id, row.tenant_id, row.xml, row.attempts, row.kind
    received_at = row.received_at
    try:
        fields = parse_event(xml).fields
    except MalformedXML as exc:
        # stored before intake refused such XML: no retry can read it, so it is given up at once
        log.warning("callback event %s (%s) cannot be read: %s", event_id, kind, exc)
        why = f"无法解析事件 XML，已放弃：{exc}"[:2000]
        await in_system(rt.db, _failed, event_id, MAX_ATTEMPTS, None, why)
        return
    handler = HANDLERS.get(kind)
    if handler is None and kind.startswith("change_external_tag/"):
        handler = customer_tasks.on_tag_changed
    if handler is None and kind.startswith("change_contact/"):
        handler = _on_directory_changed
    try:
        if handler is None:  # stored for the record; nothing to do yet
            await in_tenant(rt.db, tenant_id, mark_done, event_id)
        else:
            # WeCom's limits may hold a handler's calls for minutes: no other worker takes the
            # event up meanwhile
            async with held(rt.db, [row], rt.settings.work_lease):
                await handler(rt, tenant_id, event_id, fields)
    except Exception as exc:  # noqa: BLE001 - any failure is retried, and kept visible
        log.warning("callback event %s (%s) failed: %r", event_id, kind, exc)
        why = exc.describe() if hasattr(exc, "describe") else f"{type(exc).__name__}: {exc}"
        await in_system(rt.db, _failed, event_id, attempts, received_at, why[:2000])


def _failed(s, event_id: int, attempts: int, received_at, error: str) -> None:
    """Retried after a backoff, or failed for good after MAX_ATTEMPTS and KEEP_TRYING
    (received_at None: failed for good now)."""
    failed = attempts >= MAX_ATTEMPTS and (received_at is None or received_at <= utcnow() - KEEP_TRYING)
    s.execute(
        update(CallbackEvent)
        .where(CallbackEvent.id == event_id, CallbackEvent.status == "pending")
        .values(
            status="failed" if failed else "pending",
            due_at=utcnow() + backoff(attempts),
            claimed_until=None,
            last_error=error,
        )
    )
