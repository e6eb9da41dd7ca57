"""Welcome messages (新客户欢迎语): WeCom accepts one per add, within 20 s of the event.

The callback intake queues the welcome in the same transaction that stores the event, at
the outbox's top priority, so it never waits for the rest of the event's processing
(customer upserts, tags): during a burst the welcomes go first. The sender composes the
message from the channel the `state` names, with the customer's name when it is known
in time, and sends it; the result lands on the customer's timeline.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.customers.models import Channel, Customer, Follow, TimelineEvent
from siyu.db import locks, utcnow
from siyu.db.threads import in_tenant
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from siyu.tenancy import setting_changes
from siyu.tenancy.models import Tenant
from siyu.wecom.errors import WeComFailure, WeComTransportError, WeComWelcomeCodeError, WeComWelcomeCodeUsed

WINDOW = timedelta(seconds=20)
NAME_PLACEHOLDERS = ("{name}", "{客户名}")
# Asking WeCom for the customer's name costs a call. When a welcome is already this close to
# its deadline (a burst of adds is queued ahead of it), it goes out without the name.
NAME_LOOKUP_MIN_REMAINING_S = 8.0
NAME_LOOKUP_MAX_WAIT_S = 3.0  # and it never takes more of the window than this


def queued_welcome(tenant_id: int, fields: dict) -> dict | None:
    """The outbox row for an add event that carries a WelcomeCode (intake writes it)."""
    code = fields.get("WelcomeCode")
    if not code or fields.get("ChangeType") not in ("add_external_contact", "add_half_external_contact"):
        return None
    try:
        at = datetime.fromtimestamp(int(fields.get("CreateTime", "0")), UTC)
    except (ValueError, OverflowError, OSError):  # not a time, or past any calendar's end
        at = utcnow()
    payload = {
        "welcome_code": code,
        "userid": fields.get("UserID", ""),
        "external_userid": fields.get("ExternalUserID", ""),
        "state": fields.get("State", ""),
    }
    return outbox.row(
        tenant_id, "welcome", f"welcome:{code}", payload, priority=outbox.URGENT, deadline_at=at + WINDOW
    )


def compose(tenant: Tenant, channel: Channel | None) -> tuple[str, list[dict]] | None:
    """The welcome text (with placeholders) and attachments; None when nothing is set up."""
    text = (channel.welcome_text if channel else "") or tenant.welcome_text
    attachments = []
    if channel and channel.welcome_image_url:
        attachments.append({"msgtype": "image", "image": {"pic_url": channel.welcome_image_url}})
    if channel and channel.welcome_link.get("url"):
        link = {k: v for k, v in channel.welcome_link.items() if v}
        link.setdefault("title", link["url"])
        attachments.append({"msgtype": "link", "link": link})
    if not text and not attachments:
        return None
    return text, attachments


DEFAULT_CHARS = 2000
# send_welcome_msg takes a text of at most 4000 bytes (UTF-8): 2000 Chinese characters are 6000,
# and a welcome over about 1333 of them had been saved and then refused for every customer (40035)
MAX_BYTES = 4000


def size_problem(text: str) -> str:
    """Why WeCom would refuse the welcome text for its size, "" when it would not."""
    size = len(text.encode())
    if size <= MAX_BYTES:
        return ""
    return (
        f"欢迎语最多 {MAX_BYTES} 字节（约 1300 个汉字），现在 {size} 字节 / the welcome text is {size} "
        f"bytes, over WeCom's {MAX_BYTES}"
    )


def save_default(session: Session, tenant_id: int, text: str, by: str, at: datetime) -> str:
    """The tenant's own welcome text: sent where the channel has none, or the customer came
    through no channel (a member's own QR code). "" sends nothing there. ValueError says why
    a text is refused. A change is recorded as `by`'s at `at` (setting_changes)."""
    text = text.strip()
    if len(text) > DEFAULT_CHARS:
        raise ValueError(
            f"欢迎语最多 {DEFAULT_CHARS} 字 / the welcome text is over {DEFAULT_CHARS} characters"
        )
    problem = size_problem(text) or placeholder_problem(text)
    if problem:
        raise ValueError(problem)
    # the text before read once no other save can change it (two admins at once had each
    # recorded replacing the same old text)
    locks.hold(session, f"siyu.welcome_text:{tenant_id}", "tenants")
    tenant = session.get(Tenant, tenant_id)
    session.refresh(tenant)
    setting_changes.record(session, "welcome_text", tenant.welcome_text or "", text, by, at)
    tenant.welcome_text = text
    return text


def placeholder_problem(text: str) -> str:
    """Why a welcome text's placeholders would reach the customer as typed ({nickname}, or a
    `{name` not closed), "" when none would: fill() replaces only NAME_PLACEHOLDERS."""
    valid = "、".join(NAME_PLACEHOLDERS)
    for match in re.finditer(r"\{([^{}]*)(\}?)", text):
        whole = match.group(0)
        if not match.group(2):
            return (
                f"欢迎语中的「{whole}」缺少右括号 }}，可用的占位符有 {valid} / unclosed placeholder "
                f"{whole!r}: use {' or '.join(NAME_PLACEHOLDERS)}"
            )
        if whole not in NAME_PLACEHOLDERS:
            return (
                f"欢迎语中的 {whole} 不是可用的占位符，可用的有 {valid} / unknown placeholder "
                f"{whole}: use {' or '.join(NAME_PLACEHOLDERS)}"
            )
    return ""


def fill(text: str, name: str) -> str:
    # in one pass: a name holding a placeholder (小{客户名}) is put in whole, not filled again
    text = re.sub("|".join(map(re.escape, NAME_PLACEHOLDERS)), lambda _: name, text)
    # a long name in a text near the limit: its end cut rather than the whole refused
    return text.encode()[:MAX_BYTES].decode(errors="ignore")


def _record(session: Session, message: OutboxMessage, kind: str, **data) -> None:
    p = message.payload
    customer = session.scalar(
        select(Customer)
        .join(Follow, Follow.customer_id == Customer.id)
        .where(Customer.external_userid == p["external_userid"], Follow.staff_userid == p["userid"])
    )
    # else the add is recorded later and picks the outcome up then (a customer of another member
    # already: their add to this one is not processed yet, and it records the outcome then)
    if customer is not None:
        session.add(
            TimelineEvent(
                customer_id=customer.id, kind=kind, at=utcnow(), staff_userid=p["userid"], data=data
            )
        )


def record_outcome_for_new_customer(session: Session, customer: Customer, code: str) -> None:
    """When the add is processed after the welcome already went out (or was given up on).
    The row is locked: a send being recorded meanwhile (its `after` found no customer yet, this
    transaction's not committed) is waited for, and then read as sent. Read unlocked, each
    missed the other and the timeline never said the welcome went out."""
    message = session.scalar(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == f"welcome:{code}").with_for_update()
    )
    if message is None or message.status not in ("sent", "dead"):
        return
    kind = "welcome_sent" if message.status == "sent" else _given_up_as(message)
    told = select(TimelineEvent.id).where(  # by the send itself (the add's follow made first)
        TimelineEvent.customer_id == customer.id,
        TimelineEvent.staff_userid == message.payload["userid"],
        TimelineEvent.kind.in_(["welcome_sent", "welcome_failed", "welcome_unknown"]),
        TimelineEvent.at >= message.created_at,
    )
    if session.scalar(told.limit(1)) is not None:
        return
    at = message.sent_at or utcnow()
    data = {"error": message.last_error} if message.status == "dead" else {}
    session.add(
        TimelineEvent(
            customer_id=customer.id, kind=kind, at=at, staff_userid=message.payload["userid"], data=data
        )
    )


def _on_dead(session: Session, message: OutboxMessage, error: str) -> None:
    _record(session, message, _given_up_as(message), error=error)


def _given_up_as(message: OutboxMessage) -> str:
    """A welcome given up on after a try that may have reached the customer reads 结果未知, not
    发送失败: an agent believing the timeline had greeted the customer a second time by hand."""
    return "welcome_unknown" if _may_have_gone(message) else "welcome_failed"


def _may_have_gone(message: OutboxMessage) -> bool:
    """Whether an earlier try of this claimed row may have reached the customer: it got no
    answer (payload[AS_SENT]), or its outcome was never recorded (an earlier claim, and no
    failure written: the database refused the write, or the worker was killed or stopped
    mid-send; a failure WeCom answered leaves its error)."""
    unanswered = isinstance(message.payload.get(outbox.AS_SENT), dict)
    return unanswered or (message.attempts > 1 and not message.last_error)


# (tenant_id, state) -> (valid until, template). A burst of adds through one channel reads
# its welcome once; an edit of the channel shows within TEMPLATE_TTL.
_templates: dict[tuple[int, str], tuple[float, tuple[str, list[dict]] | None]] = {}
TEMPLATE_TTL_S = 5.0
# Past this many, stale ones are dropped: a 获客链接's state is the customer_channel its sharer
# appended (any string, one per ad click, say), and a worker running for months had kept them all.
TEMPLATES_KEPT = 1000


async def _template(rt, tenant_id: int, state: str) -> tuple[str, list[dict]] | None:
    now = time.monotonic()
    cached = _templates.get((tenant_id, state))
    if cached and cached[0] > now:
        return cached[1]
    # in a thread: on the event loop, a read during an outage (a server gone silent) held the
    # worker's every loop until the connection's limits gave up on it
    template = await in_tenant(rt.db, tenant_id, _composed, tenant_id, state)
    if len(_templates) >= TEMPLATES_KEPT:
        for key in [key for key, (until, _) in _templates.items() if until <= now]:
            del _templates[key]
    _templates[(tenant_id, state)] = (now + TEMPLATE_TTL_S, template)
    return template


def _composed(s: Session, tenant_id: int, state: str) -> tuple[str, list[dict]] | None:
    channel = s.scalar(select(Channel).where(Channel.state == state)) if state else None
    return compose(s.get(Tenant, tenant_id), channel)


async def _greeting(rt, tenant_id: int, message: OutboxMessage, contact) -> tuple[str, list[dict]]:
    """The welcome's text, with the customer's name where it is known in time, and attachments."""
    p = message.payload
    template = await _template(rt, tenant_id, p.get("state", ""))
    if template is None:
        raise outbox.Skipped("no welcome message is set up for this channel")
    text, attachments = template
    name = ""
    remaining = (message.deadline_at - utcnow()).total_seconds()
    if any(ph in text for ph in NAME_PLACEHOLDERS) and remaining > NAME_LOOKUP_MIN_REMAINING_S:
        try:  # the name is nice to have; the welcome in time is not negotiable
            # (max_wait bounds the waits for a slot and retries, not the call itself: a WeCom
            # that hung had kept it the client's whole timeout, and the code expired meanwhile)
            answer = await asyncio.wait_for(
                contact.external_contact_get(
                    p["external_userid"], priority="urgent", max_wait=NAME_LOOKUP_MAX_WAIT_S
                ),
                NAME_LOOKUP_MAX_WAIT_S,
            )
            name = answer.get("external_contact", {}).get("name", "")
        except (WeComFailure, TimeoutError):
            name = ""
    return fill(text, name), attachments


@outbox.sender("welcome", on_dead=_on_dead)
async def send_welcome(rt, tenant_id: int, message: OutboxMessage):
    p = message.payload
    contact = (await rt.clients.get(tenant_id)).contact
    unanswered = p.get(outbox.AS_SENT)  # a try before had no answer: it may have gone
    if isinstance(unanswered, dict):
        sent_text, attachments = unanswered.get("text", ""), unanswered.get("attachments") or []
    else:
        sent_text, attachments = await _greeting(rt, tenant_id, message, contact)
    remaining = (message.deadline_at - utcnow()).total_seconds()
    try:
        await contact.send_welcome_msg(
            p["welcome_code"],
            text=sent_text or None,
            attachments=attachments or None,
            max_wait=max(0.0, remaining),
        )
    except WeComWelcomeCodeUsed as exc:
        # after a try with no answer, or one whose outcome was never recorded, the code used is
        # that try's doing (a code is the add's own, and Siyu its only user): the customer got
        # it, it had read 欢迎语发送失败
        if not _may_have_gone(message):
            raise outbox.Permanent(exc.describe()) from exc
    except WeComWelcomeCodeError as exc:
        raise outbox.Permanent(exc.describe()) from exc
    except WeComTransportError as exc:
        raise outbox.Unanswered(exc.describe(), {"text": sent_text, "attachments": attachments}) from exc

    def after(session: Session) -> None:
        # keep what was sent, so that the archive's copy is known as Siyu's and not a reply
        # (and its attachments, each archived as a message of its own type)
        sent_kinds = [a.get("msgtype", "") for a in attachments or []]
        session.get(OutboxMessage, message.id).payload = {
            **{k: v for k, v in p.items() if k != outbox.AS_SENT},
            "sent_text": sent_text,
            "sent_kinds": sent_kinds,
            # a link's or mini program's title tells its copy from one the staff member sends
            "sent_attachments": attachments or [],
        }
        _record(session, message, "welcome_sent")

    return after
