"""Sending outbox messages: what the worker runs for each claimed row.

Senders live with their domain and register with `siyu.notify.outbox.sender(kind)`;
app messages are this module's own."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select

from siyu.db import bulk, utcnow
from siyu.jobs.claim import backoff, held, renew_many
from siyu.notify.models import OutboxMessage
from siyu.notify.outbox import (
    AS_SENT,
    ON_DEAD,
    PREPARE,
    SENDERS,
    WRITES_AS_SENT,
    Deferred,
    Permanent,
    Retry,
    Skipped,
    Unanswered,
    sender,
)
from siyu.tenancy.queries import members_left
from siyu.wecom.errors import WeComError, WeComTransportError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 12
RECORD_RETRY_S = 0.5  # a tenant's outcomes that failed to record are tried again this much later
# WeCom does not deliver a message/send whose JSON equals one the app sent within the interval
# (REFERENCE 9). Every app message asks for that check: a send that got no answer may have
# reached WeCom, and its retries send the very body again (Unanswered), which WeCom then drops
# rather than put a second card on the phone. Four hours, the most WeCom allows: more than a
# row's retries take (MAX_ATTEMPTS, backing off 1 s to 17 min, 35-40 min in all). A message
# equal to one sent that recently tells the member nothing new: each names its event's time
# (an alert) or, to the minute, how long the customers have waited (a card).
DUPLICATE_CHECK = {"enable_duplicate_check": 1, "duplicate_check_interval": 4 * 3600}
# message/send's answers that it reached nobody: 消息接收人全部无效 (81013), 指定的成员/部门/
# 标签全部无效 (82001, recipients empty or outside the app's visible range), 不合法的UserID列表
# (40031) and UserID 不存在 (60111). No retry changes them.
RECIPIENTS_INVALID = frozenset({81013, 82001, 40031, 60111})


@sender("app_message")
async def _app_message(rt, tenant_id: int, message: OutboxMessage):
    body = {k: v for k, v in message.payload.items() if k != AS_SENT}
    # one who left since the message was queued (a loss alert's member): WeCom would refuse
    # it (消息接收人全部无效, 81013) and log a failure; sent to the others, or not at all
    touser = [u for u in str(body.get("touser", "")).split("|") if u]
    gone = await asyncio.to_thread(_left, rt.db, tenant_id, touser)
    if touser and set(touser) <= gone:
        raise Skipped(f"recipients left the company: {'|'.join(touser)}")
    if gone:
        body["touser"] = "|".join(u for u in touser if u not in gone)
    wecom = await rt.clients.get(tenant_id)
    await send_app_message(wecom, {**body, "agentid": wecom.agent_id}, message)


def _left(db, tenant_id: int, userids: list[str]) -> set[str]:
    """Those of `userids` the staff sync found no longer with the corp (one not synced is tried)."""
    if not userids:
        return set()
    with db.tenant_session(tenant_id) as s:
        return members_left(s, userids)


async def send_app_message(wecom, payload: dict, message: OutboxMessage | None = None) -> dict:
    """`message/send` with WeCom's duplicate check (DUPLICATE_CHECK), given up on at once
    where WeCom says it reached nobody: every recipient invalid (RECIPIENTS_INVALID), or the one recipient
    listed as invalid or without a license in an answer of errcode 0. Retrying cannot change
    either; the row then says who was not reached. `message`: the outbox row it is sent for,
    whose earlier try got no answer: its body then goes again as it was, not `payload`."""
    before = (message.payload if message is not None else {}).get(AS_SENT)
    if before is not None and before.get("agentid") == payload.get("agentid"):
        body = before  # (another app since, after the tenant was reconnected: WeCom checks per app)
    else:
        body = {**payload, **DUPLICATE_CHECK}
    try:
        answer = await wecom.app.message_send(body)
    except WeComTransportError as exc:
        raise Unanswered(exc.describe(), body) from None
    except WeComError as exc:
        if exc.errcode in RECIPIENTS_INVALID:
            raise Permanent(exc.describe()) from None
        raise
    wanted = {u.lower() for u in str(payload.get("touser", "")).split("|") if u}
    missed = {
        field: [u for u in str(answer.get(field, "")).split("|") if u.lower() in wanted]
        for field in ("invaliduser", "unlicenseduser")
    }
    missed = {field: users for field, users in missed.items() if users}
    if wanted and wanted <= {u.lower() for users in missed.values() for u in users}:
        why = "；".join(f"{field}: {'|'.join(users)}" for field, users in missed.items())
        raise Permanent(
            f"企业微信未送达：接收人无效或未获接口许可 / WeCom did not deliver ({why}): check the member "
            "is in the app's visible range (可见范围) and has an account license"
        )
    return answer


async def send(rt, message: OutboxMessage) -> None:
    """Send one claimed message (a detached row, as claimed)."""
    await send_batch(rt, [message])


async def send_batch(rt, messages: list[OutboxMessage]) -> None:
    """Send claimed messages (detached rows, as claimed) together: one lease renewal (and one
    every third of the lease while the sends last), each kind's `prepare` once for all of its
    messages (e.g. the SLA cards' texts in one read), the sends at once (the WeCom client
    queues them on its connections), and the outcomes recorded in one transaction per tenant,
    each tenant's whatever another's does."""
    lease = rt.settings.work_lease
    leased = await asyncio.to_thread(renew_many, rt.db, messages, lease)
    for message in messages:
        if message.id not in leased:
            log.info("outbox %s %s: lease lost before sending; another has it", message.kind, message.id)
    messages = [m for m in messages if m.id in leased]
    if not messages:
        return
    paced = await asyncio.to_thread(_over_the_pace, rt.db, messages)
    async with held(rt.db, messages, lease):  # however long WeCom's limits hold the sends
        sent = iter(await _send_all(rt, [m for m in messages if m.id not in paced]))
    results = [("deferred", "", False, paced[m.id], None) if m.id in paced else next(sent) for m in messages]
    by_tenant: dict[int, list[tuple[OutboxMessage, tuple]]] = {}
    for message, result in zip(messages, results, strict=True):
        by_tenant.setdefault(message.tenant_id, []).append((message, result))
    # Each tenant's outcomes on their own: the sends have happened, and a row left unrecorded
    # is sent again once its lease runs out (a second card on the phone). One tenant's failure
    # (the database refusing its update, a dropped connection) must not leave the others'
    # unrecorded; it is tried once more after the others'.
    failed = []
    for tenant_id, done in by_tenant.items():
        if not await _recorded(rt, tenant_id, done, last=False):
            failed.append((tenant_id, done))
    if failed:
        await asyncio.sleep(RECORD_RETRY_S)
    for tenant_id, done in failed:
        await _recorded(rt, tenant_id, done, last=True)


# WeCom drops app messages to one member past 30 a minute without a word (REFERENCE 17).
# Cards (firing's bucket, 20) and alerts (outbox.next_notice_at, 10) are paced as they are
# queued; checked again as they go, whatever made them late: 40 cards retried through a WeCom
# outage went within half a minute of its end, 35 alerts queued while the worker was down
# within a second of its start, and a quarter of them were lost, recorded as sent.
PACED_KINDS = ("app_message", "sla_notice")
SENDS_A_MINUTE = 28  # (two to spare: clocks, and the window's edges)
_WINDOW = timedelta(seconds=61)
# ... and past 1,000 an hour: a supervisor carded for a large team's backlog for an hour (20
# cards a minute and 10 alerts) had lost every message after the thousandth without a word.
SENDS_AN_HOUR = 980
_HOUR = timedelta(minutes=61)


def _over_the_pace(db, messages: list[OutboxMessage]) -> dict[int, datetime]:
    """The paced messages of a batch that would make their member's sends of the last minute
    more than SENDS_A_MINUTE, or of the last hour more than SENDS_AN_HOUR (those sent, and those
    other workers are sending), each with when to try again: when the oldest of that minute's
    (or hour's) sends leaves it."""
    by_tenant: dict[int, dict[str, list[OutboxMessage]]] = {}
    for m in messages:
        if m.kind in PACED_KINDS and m.recipient:
            by_tenant.setdefault(m.tenant_id, {}).setdefault(m.recipient, []).append(m)
    now, mine = utcnow(), [m.id for m in messages]
    held_back: dict[int, datetime] = {}
    o = OutboxMessage
    for tenant_id, members in by_tenant.items():
        recent = and_(o.kind.in_(PACED_KINDS), o.recipient.in_(sorted(members)))
        with db.tenant_session(tenant_id) as s:
            went: dict[str, list[datetime]] = {}
            for recipient, at in s.execute(
                select(o.recipient, o.sent_at).where(recent, o.status == "sent", o.sent_at > now - _WINDOW)
            ):
                went.setdefault(recipient, []).append(at)
            hour = {
                recipient: (count, oldest)
                for recipient, count, oldest in s.execute(
                    select(o.recipient, func.count(), func.min(o.sent_at))
                    .where(recent, o.status == "sent", o.sent_at > now - _HOUR)
                    .group_by(o.recipient)
                )
            }
            going = dict(
                s.execute(
                    select(o.recipient, func.count())
                    .where(recent, o.status == "pending", o.claimed_until > now, o.id.not_in(mine))
                    .group_by(o.recipient)
                ).all()
            )
        for recipient, batch in members.items():
            room = SENDS_A_MINUTE - len(went.get(recipient, [])) - going.get(recipient, 0)
            until = min(went.get(recipient, []), default=now) + _WINDOW
            in_the_hour, oldest = hour.get(recipient, (0, now))
            if (hour_room := SENDS_AN_HOUR - in_the_hour - going.get(recipient, 0)) < room:
                room, until = hour_room, oldest + _HOUR
            for m in sorted(batch, key=lambda m: (m.due_at, m.id))[max(0, room) :]:
                held_back[m.id] = until
    return held_back


async def _recorded(rt, tenant_id: int, done: list[tuple[OutboxMessage, tuple]], last: bool) -> bool:
    try:
        await asyncio.to_thread(_record, rt, tenant_id, done)
    except Exception:  # noqa: BLE001 - logged with what it leaves undone; the other tenants go on
        ids = [m.id for m, _ in done]
        if last:
            log.exception(
                "recording the outcomes of tenant %s's outbox messages %s failed again: they are sent "
                "again once their lease runs out",
                tenant_id,
                ids,
            )
        else:
            log.exception("recording the outcomes of tenant %s's outbox messages %s failed", tenant_id, ids)
        return False
    return True


async def _send_all(rt, messages: list[OutboxMessage]) -> list[tuple]:
    prepared: dict[int, object] = {}
    groups: dict[tuple[str, int], list[OutboxMessage]] = {}
    for message in messages:
        if message.kind in PREPARE:
            groups.setdefault((message.kind, message.tenant_id), []).append(message)
    for (kind, tenant_id), group in groups.items():
        try:
            prepared.update(await asyncio.to_thread(PREPARE[kind], rt, tenant_id, group))
        except Exception:  # noqa: BLE001 - each message's sender prepares its own instead
            log.exception("preparing %d outbox %s messages failed", len(group), kind)
    return await asyncio.gather(*(_send_one(rt, m, prepared) for m in messages))


async def _send_one(rt, message: OutboxMessage, prepared: dict) -> tuple:
    """(status, error, permanent, after, as_sent) of one message's send (as_sent: the body of
    a send that got no answer)."""
    error, permanent, after, status, as_sent = "", False, None, "sent", None
    try:
        if message.deadline_at is not None and utcnow() >= message.deadline_at:
            raise Permanent("已超过发送时限，没有发送 / past its deadline; not sent")
        send_one = SENDERS.get(message.kind)
        if send_one is None:
            kind = message.kind
            raise Permanent(f"没有这类消息的发送方式（{kind}）/ no sender for outbox kind {kind!r}")
        if message.id in prepared:
            after = await send_one(rt, message.tenant_id, message, prepared=prepared[message.id])
        else:
            after = await send_one(rt, message.tenant_id, message)
    except Skipped as exc:
        status, error = "skipped", ""
        log.debug("outbox %s %s skipped: %s", message.kind, message.id, exc)
    except Deferred as exc:
        status, after = "deferred", exc.until
    except Permanent as exc:
        error, permanent = str(exc), True
    except Unanswered as exc:
        error, as_sent = str(exc), exc.body
    except Retry as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded on the row and retried with backoff
        name = type(exc).__name__  # (the Chinese half first: the board and the timeline show it)
        error = exc.describe() if isinstance(exc, WeComError) else f"发送时出错（{name}）/ {name}: {exc}"
    return status, error, permanent, after, as_sent


def _record(rt, tenant_id: int, done: list[tuple[OutboxMessage, tuple]]) -> None:
    now = utcnow()
    # The common outcome (sent or skipped, nothing more to record) is one UPDATE for all;
    # failures and senders' own bookkeeping go through the ORM, row by row.
    plain = [(m, r) for m, r in done if not r[1] and r[3] is None]
    rest = [(m, r) for m, r in done if r[1] or r[3] is not None]
    columns = ["status", "sent_at", "last_error", "claimed_until"]
    with rt.db.tenant_session(tenant_id) as s:
        for wrote in (False, True):  # a body written before the send (WRITES_AS_SENT) goes with it
            bulk.update_by_id(
                s,
                OutboxMessage,
                [
                    {"id": m.id, "status": status, "sent_at": now, "last_error": "", "claimed_until": None}
                    | ({"payload": _without_as_sent(m.payload)} if wrote else {})
                    for m, (status, *_) in plain
                    if (m.kind in WRITES_AS_SENT) == wrote
                ],
                [*columns, "payload"] if wrote else columns,
            )
        if not rest:
            return
        rows = {
            r.id: r
            for r in s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_([m.id for m, _ in rest])))
        }
        for message, (status, error, permanent, after, as_sent) in rest:
            row = rows.get(message.id)
            if row is None:
                continue
            row.claimed_until = None
            if status == "deferred":  # pending again, due then (the claim does not count as a try)
                row.due_at, row.attempts = after, max(0, row.attempts - 1)
                # held now, not retried: an earlier failure's error read as a retry on the board,
                # and left it out of what editing the quiet hours moves (retime_held_calls)
                row.last_error = ""
                continue
            if not error:
                row.status, row.sent_at, row.last_error = status, now, ""
                if message.kind in WRITES_AS_SENT:
                    row.payload = _without_as_sent(row.payload)
                if after is not None:
                    try:
                        with s.begin_nested():  # the send happened: record it whatever this does
                            after(s)
                    except Exception:  # noqa: BLE001
                        log.exception("recording outbox %s %s failed", message.kind, message.id)
                continue
            log.warning("outbox %s %s failed: %s", message.kind, message.id, error)
            row.last_error = error[:2000]
            if as_sent is not None:
                if row.payload.get(AS_SENT) != as_sent:
                    row.payload = {**row.payload, AS_SENT: as_sent}
            elif message.kind in WRITES_AS_SENT and AS_SENT in row.payload and AS_SENT not in message.payload:
                # written for this try, which WeCom refused: it reached nobody, the next builds anew
                row.payload = _without_as_sent(row.payload)
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


def _without_as_sent(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != AS_SENT}
