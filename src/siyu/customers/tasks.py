"""What the worker does for customer events: ask WeCom, then let the service write.

The writes run in threads (siyu.db.threads), one event's at a time (`_WRITING`), never on
the event loop: the worker's other loops share it, and a write on it during a database
outage (a server gone silent answers nothing until the connection's limits give up on it)
had held back every card and step due meanwhile."""

from __future__ import annotations

from sqlalchemy import select

from siyu.customers import service, tag_sync
from siyu.customers import welcome as _welcome  # noqa: F401 - registers the welcome sender
from siyu.customers.models import Tag
from siyu.db.threads import OneAtATime, in_tenant
from siyu.intake.service import mark_done
from siyu.notify import outbox
from siyu.wecom.errors import WeComError

# WeCom's answers when the relation is gone by the time we ask: the event alone must do.
GONE = {84061, 40096}


async def _contact(rt, tenant_id: int, fields: dict) -> dict:
    contact = (await rt.clients.get(tenant_id)).contact
    try:
        return await contact.external_contact_get(fields["ExternalUserID"])
    except WeComError as exc:
        if exc.errcode not in GONE:
            raise
        return {"external_contact": {"external_userid": fields["ExternalUserID"]}, "follow_user": []}


async def on_added(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    contact = await _contact(rt, tenant_id, fields)
    half = fields.get("ChangeType") == "add_half_external_contact"

    def save(s) -> None:
        service.record_added(s, service.named_now(s, fields), contact, half=half)
        mark_done(s, event_id)

    await in_tenant(rt.db, tenant_id, save, one_at_a_time=_WRITING)
    rt.wake()


async def on_edited(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    contact = await _contact(rt, tenant_id, fields)

    def save(s) -> None:
        service.record_edited(s, service.named_now(s, fields), contact)
        mark_done(s, event_id)

    await in_tenant(rt.db, tenant_id, save, one_at_a_time=_WRITING)


async def on_deleted_by_staff(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    handed_over = fields.get("Source") == "DELETE_BY_TRANSFER"
    # who has the customer now: one handed back to a member who had them gets no add event
    contact = await _contact(rt, tenant_id, fields) if handed_over else None

    def save(s) -> None:
        if contact is not None:
            service.record_handed_over(s, service.named_now(s, fields), contact, rt.settings.public_url)
        else:
            service.record_follow_ended(s, service.named_now(s, fields), "deleted", rt.settings.public_url)
        mark_done(s, event_id)

    await in_tenant(rt.db, tenant_id, save, one_at_a_time=_WRITING)


async def on_lost(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    def save(s) -> None:
        service.record_follow_ended(s, service.named_now(s, fields), "lost", rt.settings.public_url)
        mark_done(s, event_id)

    await in_tenant(rt.db, tenant_id, save, one_at_a_time=_WRITING)
    rt.wake()


async def on_transfer_failed(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    def save(s) -> None:
        service.record_transfer_failed(s, service.named_now(s, fields))
        mark_done(s, event_id)

    await in_tenant(rt.db, tenant_id, save, one_at_a_time=_WRITING)


async def on_tag_changed(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    """change_external_tag: re-read the tag list from WeCom; what is gone was deleted."""
    contact = (await rt.clients.get(tenant_id)).contact
    groups = (await contact.get_corp_tag_list()).get("tag_group", [])
    live = service.live_tag_ids(groups)

    def save(s) -> None:
        service.upsert_tags(s, groups)
        gone = [fields["Id"]] if fields.get("Id") and fields["Id"] not in live else []
        if fields.get("ChangeType") == "delete" or gone:
            service.mark_tags_deleted(s, service.tags_not_in(s, live))
        mark_done(s, event_id)

    await in_tenant(rt.db, tenant_id, save, one_at_a_time=_WRITING)


# One event's writes at a time in a worker, as when they ran on its event loop: two at once (a
# tag's creation and a customer added with that tag) each insert a row the other inserts too,
# and one failed on the unique key, to be retried, the tag named by its id meanwhile.
_WRITING = OneAtATime()


# A relation WeCom does not know right after the add event may still be on its way; after
# this many tries it is gone (the customer deleted the staff member), and retrying for an
# hour would change nothing.
MARK_TAG_GONE_TRIES = 3
# WeCom's answers to mark_tag that no retry changes: the tag is not there (deleted in the
# admin console before Siyu heard of it) or not this app's to use. The admin must choose the
# channel's tags again, and the customer's profile and the channel page tell them so.
TAG_REFUSED = {40068, 301002}


def _why(exc: WeComError) -> str:
    """WeCom's refusal in words, with the errcode to look it up by."""
    text = exc.describe()
    return text if str(exc.errcode) in text else f"{text} (errcode {exc.errcode})"


@outbox.sender(tag_sync.KIND, on_dead=service.record_tag_mark_failed)
async def send_mark_tag(rt, tenant_id: int, message) -> None:
    p = message.payload
    # a tag deleted in WeCom since the row was queued (the channel dropped it): WeCom refuses the
    # whole call for it (40068), and the channel's other tags had never reached the customer
    add = await in_tenant(rt.db, tenant_id, _not_deleted, list(p.get("add_tag", [])))
    if not add and not p.get("remove_tag"):
        raise outbox.Skipped("its tags were all deleted in WeCom since")
    contact = (await rt.clients.get(tenant_id)).contact
    try:
        await contact.mark_tag(
            p["userid"],
            p["external_userid"],
            add_tag=add,
            remove_tag=p.get("remove_tag", []),
        )
    except WeComError as exc:
        if exc.errcode in TAG_REFUSED or (exc.errcode in GONE and message.attempts >= MARK_TAG_GONE_TRIES):
            raise outbox.Permanent(_why(exc)) from exc
        raise


def _not_deleted(s, tag_ids: list[str]) -> list[str]:
    """These tags, less those Siyu heard were deleted in WeCom."""
    if not tag_ids:
        return []
    deleted = set(s.scalars(select(Tag.wecom_id).where(Tag.wecom_id.in_(tag_ids), Tag.deleted.is_(True))))
    return [t for t in tag_ids if t not in deleted]
