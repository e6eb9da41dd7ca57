"""Whom a reminder card sent before cards kept the waits they spoke of (their payload's
told_waits, siyu.sla.queries.CARD_TOLD) did speak of, where that can be known.

Its payload's escalations are the steps merged into it, not the waits it named: the builder
left out those answered or snoozed by then. What it sent is kept (AS_SENT) for cards built since
such bodies were kept, and its title says how many customers it named (one, or 「N 位客户等待
回复」, siyu.sla.tasks.build_card); the dates tell which waits were certainly left out when it
went: answered by then, or under a snooze running then (the builder of then left out a wait only
while its snooze ran). Where those are exactly as many as the title leaves out, the card spoke of
the others; else nothing is known (a wait snoozed again since, its earlier snooze not kept), and
the card is read as before, as speaking of them all."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import bulk
from siyu.notify.models import OutboxMessage
from siyu.notify.outbox import AS_SENT
from siyu.sla.models import SlaEscalation, SlaWait

# A card's payload key: the waits it spoke of when it was built (siyu.sla.tasks._notices).
CARD_TOLD = "told_waits"
# a card about several customers: its title counts them (siyu.sla.tasks.build_card)
_SEVERAL = re.compile(r"^(\d+) 位客户等待回复，最长 ")


def named(body: dict | None) -> int | None:
    """How many customers a card's body named (None: no body kept)."""
    title = ((body or {}).get("textcard") or {}).get("title")
    if not isinstance(title, str):
        return None
    several = _SEVERAL.match(title)
    return int(several[1]) if several else 1


def told_by_text(session: Session, card_ids: Iterable[int]) -> dict[int, list[int]]:
    """The waits each of these sent cards (outbox ids) spoke of, for those where it can be known."""
    cards = list(
        session.execute(
            select(OutboxMessage.id, OutboxMessage.payload, OutboxMessage.sent_at).where(
                bulk.among(session, OutboxMessage.id, set(card_ids))
            )
        )
    )
    steps = {c.id: list(c.payload.get("escalations") or []) for c in cards}
    every = {step for ids in steps.values() for step in ids}
    if not every:
        return {}
    e, w = SlaEscalation, SlaWait
    waits = {
        r.id: r
        for r in session.execute(
            select(e.id, e.conversation_id, w.id.label("wait_id"), w.closed_at, w.snoozed_at, w.snoozed_until)
            .join(w, w.id == e.wait_id)
            .where(bulk.among(session, e.id, every))
        )
    }
    out = {}
    for c in cards:
        count = named(c.payload.get(AS_SENT))
        if count is None or c.sent_at is None:
            continue
        on = [waits[step] for step in steps[c.id] if step in waits]
        kept = {r.wait_id for r in on if not _left_out_then(r, c.sent_at)}
        # one customer a conversation: it was named if any of its waits on the card was kept
        if len({r.conversation_id for r in on if r.wait_id in kept}) == count:
            out[c.id] = sorted(kept)
    return out


def _left_out_then(wait, at) -> bool:
    """Whether a card built at `at` certainly left the wait out: answered, or snoozed, then."""
    if wait.closed_at is not None and wait.closed_at <= at:
        return True
    snoozed = wait.snoozed_at is not None and wait.snoozed_until is not None
    return snoozed and wait.snoozed_at <= at < wait.snoozed_until
