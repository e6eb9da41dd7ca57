"""Firing claimed escalation steps in batches: one transaction per tenant per batch.

`fire_batch(rt, rows)` takes rows as `claim_due` returns them and, per tenant, in ONE
transaction:

1. flips every row still pending and due from pending to fired with one conditional
   UPDATE ... WHERE id IN (...) AND status = 'pending' AND due_at <= now RETURNING id. This
   is the exactly-once gate and the first statement, so it also takes SQLite's write lock;
   on PostgreSQL the rows are locked in id order first (SELECT ... ORDER BY id FOR UPDATE),
   so two batches over overlapping rows (a worker whose lease ran out and the one that
   claimed the rows after it) queue behind each other instead of deadlocking, and the
   second finds the rows fired and wins none of them;
2. loads the winners with their waits and conversations in one query;
3. decides per step what `fire_one` always decided: cancelled (the wait closed, or the
   conversation no longer awaits that message), skipped (stale, or nobody to reach),
   deferred (a voice call in quiet hours), else fired, with the wait's breached_step
   raised; policies, recipients and the tenant's time zone are looked up once per batch;
4. queues the side effects through the outbox with the same dedupe keys as one step at a
   time: app messages to one person join a card still waiting to go out (policy merge
   window > 0), else the batch's steps to that person become one new card that waits the
   merge window; with a merge window of 0 each step is its own card. One voice call per
   person per cooldown, the rest of the person's call steps are covered by it;
5. writes the steps' outcomes and the waits' breached steps with two executemany UPDATEs.

A crash before commit leaves every row pending for the next claim once its lease runs out.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, or_, select, text, update
from sqlalchemy.orm import Session

from siyu.conversations.models import Conversation
from siyu.db import bulk
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from siyu.sla import service
from siyu.sla.calendar import quiet_until
from siyu.sla.models import SlaCall, SlaEscalation, SlaWait

FIRED = ("fired", "covered")  # outcomes that reached (or will reach) a person
WAKE_MARGIN_S = 0.02  # after a card's merge window: its transaction has committed by then


@dataclass
class _Step:
    """One won step and what the batch decided for it."""

    id: int
    wait_id: int
    conversation_id: int
    step: int
    action: str
    target: str
    agent_userid: str
    due_at: datetime
    outcome: str = "fired"
    status: str = "fired"
    note: str = ""
    recipient: str = ""
    fired_at: datetime | None = None


def lock_key(tenant_id: int, what: str, userid: str) -> int:
    digest = hashlib.sha256(f"sla-{what}:{tenant_id}:{userid}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def recipient_locks(session: Session, tenant_id: int, wanted: set[tuple[str, str]]) -> None:
    """Serialise decisions about these people's notices or calls: transaction-scoped
    advisory locks on PostgreSQL, taken in one statement in key order (so batches never
    deadlock on them); SQLite serialises all writers anyway."""
    if not wanted or session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({lock_key(tenant_id, what, userid) for what, userid in wanted})
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(k))"
            " FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS sorted"
        ),
        {"keys": keys},
    )


def fire_batch(rt, rows) -> dict[int, str]:
    """Fire claimed rows (anything with .id and .tenant_id), each exactly once. Returns each
    row's outcome by id: fired | covered | cancelled | skipped | deferred | lost (another
    worker fired it, or it is no longer due)."""
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant_id].append(row.id)
    outcomes: dict[int, str] = {}
    for tenant_id, ids in by_tenant.items():
        outcomes.update(_fire_tenant(rt, tenant_id, ids))
    return outcomes


def _gate(s: Session, ids: list[int], now: datetime) -> list[int]:
    """The exactly-once gate: pending -> fired for the rows still pending and due."""
    e = SlaEscalation
    conditions = (e.id.in_(ids), e.status == "pending", e.due_at <= now)
    stmt = update(e).values(status="fired", fired_at=now, claimed_until=None).returning(e.id)
    if s.get_bind().dialect.name == "postgresql":
        locked = select(e.id).where(*conditions).order_by(e.id).with_for_update()
        stmt = stmt.where(e.id.in_(locked.scalar_subquery()), *conditions[1:])
    else:
        stmt = stmt.where(*conditions)
    return list(s.scalars(stmt.execution_options(synchronize_session=False)))


def _fire_tenant(rt, tenant_id: int, ids: list[int]) -> dict[int, str]:
    now = rt.now()
    outcomes = dict.fromkeys(ids, "lost")
    with rt.db.tenant_session(tenant_id) as s:
        won = _gate(s, ids, now)
        if not won:
            return outcomes
        e, w, c = SlaEscalation, SlaWait, Conversation
        loaded = s.execute(
            select(
                e.id,
                e.wait_id,
                e.conversation_id,
                e.step,
                e.action,
                e.target,
                e.agent_userid,
                e.due_at,
                w.id,
                w.closed_at,
                w.close_reason,
                w.msgid,
                w.policy_id,
                c.id,
                c.awaiting_msgid,
            )
            .outerjoin(w, w.id == e.wait_id)
            .outerjoin(c, c.id == e.conversation_id)
            .where(e.id.in_(won))
            .order_by(e.due_at, e.id)
        ).all()
        steps: list[_Step] = []
        policies: dict[int | None, service.PolicyView] = {}
        recipients: dict[tuple, str | None] = {}
        timezone: list[str] = []
        closed_conversations: set[int] = set()
        step_policy: dict[int, service.PolicyView] = {}
        for r in loaded:
            st = _Step(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], fired_at=now)
            steps.append(st)
            wait_id, closed_at, close_reason, msgid, policy_id, conversation_id, awaiting = r[8:]
            if wait_id is None or closed_at is not None:
                _set(st, "cancelled", close_reason if wait_id is not None else "gone")
                continue
            if conversation_id is None or awaiting != msgid:
                # closed where no SLA listener ran: the conversation is the truth
                if st.conversation_id not in closed_conversations:
                    closed_conversations.add(st.conversation_id)
                    service.close_waits(s, st.conversation_id, now, "closed")
                _set(st, "cancelled", "no longer awaiting")
                continue
            if policy_id not in policies:
                policies[policy_id] = service.policy_by_id(s, policy_id)
            policy = step_policy[st.id] = policies[policy_id]
            if (now - st.due_at).total_seconds() > policy.stale_after_s:
                _set(st, "skipped", "stale: due long ago")
                continue
            key = (st.target, st.agent_userid, policy_id)
            if key not in recipients:
                recipients[key] = service.recipient_for(s, st.target, st.agent_userid, policy)
            recipient = recipients[key]
            if not recipient:
                _set(st, "skipped", f"nobody to reach for target {st.target}")
                continue
            if st.action == "voice_call":
                if not timezone:
                    timezone.append(service.tenant_timezone(s))
                quiet_end = quiet_until(now, policy.quiet_hours, timezone[0])
                if quiet_end is not None:
                    st.outcome, st.status, st.note = "deferred", "pending", "quiet hours"
                    st.fired_at, st.due_at = None, quiet_end
                    continue
            st.recipient = recipient

        firing = [st for st in steps if st.status == "fired"]
        notices = [st for st in firing if st.action != "voice_call"]
        calls = [st for st in firing if st.action == "voice_call"]
        wanted = {("call", st.recipient) for st in calls}
        wanted |= {("notice", st.recipient) for st in notices if step_policy[st.id].merge_window_s}
        recipient_locks(s, tenant_id, wanted)
        if notices:
            for window in _queue_notices(s, tenant_id, notices, step_policy):
                rt.wake_after(window + WAKE_MARGIN_S)  # the new card goes out when its window ends
        for st in calls:
            _queue_call(s, st, step_policy[st.id], now)
        _record(s, tenant_id, steps)
        outcomes.update({st.id: st.outcome for st in steps})
    return outcomes


def _set(st: _Step, status: str, note: str) -> None:
    st.outcome = st.status = status
    st.note = note


def _record(s: Session, tenant_id: int, steps: list[_Step]) -> None:
    """The steps' outcomes and the waits' breached steps, one executemany each."""
    conn = s.connection()
    t = SlaEscalation.__table__
    conn.execute(
        update(t)
        .where(t.c.tenant_id == tenant_id, t.c.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            note=bindparam("b_note"),
            recipient=bindparam("b_recipient"),
            due_at=bindparam("b_due_at"),
            fired_at=bindparam("b_fired_at"),
        ),
        [
            {
                "b_id": st.id,
                "b_status": st.status,
                "b_note": st.note,
                "b_recipient": st.recipient,
                "b_due_at": st.due_at,
                "b_fired_at": st.fired_at,
            }
            for st in steps
        ],
    )
    breached: dict[int, int] = {}
    for st in steps:
        if st.outcome in FIRED:
            breached[st.wait_id] = max(breached.get(st.wait_id, -1), st.step)
    if breached:
        wt = SlaWait.__table__
        conn.execute(
            update(wt)
            .where(wt.c.tenant_id == tenant_id, wt.c.id == bindparam("b_id"))
            .values(
                breached_step=case(
                    (wt.c.breached_step < bindparam("b_step"), bindparam("b_step")),
                    else_=wt.c.breached_step,
                )
            ),
            [{"b_id": wait_id, "b_step": step} for wait_id, step in breached.items()],
        )


def _key_range(recipient: str) -> tuple[str, str]:
    """The dedupe keys of a person's notices, as a key range (not LIKE, so the
    (tenant_id, dedupe_key) index serves it)."""
    prefix = f"sla-notice:{recipient}:"
    return prefix, prefix[:-1] + chr(ord(":") + 1)


def _queue_notices(s: Session, tenant_id: int, notices: list[_Step], policy_of: dict) -> set[float]:
    """Each person's app-message steps: join a card for them still waiting to go out (not
    yet claimed by a sender) when the step's policy merges, else a new card (one per
    step without merging; one for all of the batch's merging steps to the person)."""
    merging: dict[str, list[_Step]] = defaultdict(list)
    new_cards: list[tuple[list[_Step], float]] = []
    for st in notices:
        window = policy_of[st.id].merge_window_s
        if window:
            merging[st.recipient].append(st)
        else:
            new_cards.append(([st], 0))
    if merging:
        joined = []
        for recipient, (card_id, payload) in _open_cards(s, set(merging)).items():
            group = merging.pop(recipient)
            escalations = [*payload["escalations"], *(st.id for st in group)]
            joined.append({"id": card_id, "payload": {**payload, "escalations": escalations}})
            for st in group:
                st.note = f"merged into outbox {card_id}"
        bulk.update_by_id(s, OutboxMessage, joined, ["payload"])
        new_cards.extend((group, policy_of[group[0].id].merge_window_s) for group in merging.values())
    if not new_cards:
        return set()
    rows = [
        outbox.row(
            tenant_id,
            "sla_notice",
            f"sla-notice:{group[0].recipient}:{group[0].id}",
            {"touser": group[0].recipient, "escalations": [st.id for st in group]},
            delay=timedelta(seconds=window) if window else None,
        )
        for group, window in new_cards
    ]
    queued = outbox.enqueue_many(s, rows)
    for group, _ in new_cards:
        card_id = queued.get(f"sla-notice:{group[0].recipient}:{group[0].id}")
        for st in group[1:]:
            st.note = f"merged into outbox {card_id}"
    return {window for _, window in new_cards if window}


def _open_cards(s: Session, recipients: set[str]) -> dict[str, tuple[int, dict]]:
    """Each person's first card still waiting to go out, locked until this transaction ends
    so that no sender takes it meanwhile (PostgreSQL: FOR UPDATE, skipping a card a sender
    is claiming right now; SQLite: its write lock, held since the gate)."""
    o = OutboxMessage
    ranges = [_key_range(r) for r in recipients]
    query = (
        select(o.id, o.dedupe_key, o.payload)
        .where(
            o.kind == "sla_notice",
            o.status == "pending",
            o.claimed_until.is_(None),
            or_(*[(o.dedupe_key >= lo) & (o.dedupe_key < hi) for lo, hi in ranges]),
        )
        .order_by(o.id)
    )
    if s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    first: dict[str, tuple[int, dict]] = {}
    for card_id, key, payload in s.execute(query):
        recipient = key[len("sla-notice:") :].rsplit(":", 1)[0]
        if recipient in recipients and recipient not in first:
            first[recipient] = (card_id, payload)
    return first


def _queue_call(s: Session, st: _Step, policy, now: datetime) -> None:
    """One call per person per cooldown: a call queued or placed within it covers the step."""
    recent = s.scalar(
        select(SlaCall.id)
        .where(
            SlaCall.callee_userid == st.recipient,
            SlaCall.status.in_(("queued", "placed")),
            SlaCall.created_at > now - timedelta(seconds=policy.call_cooldown_s),
        )
        .order_by(SlaCall.created_at.desc())
        .limit(1)
    )
    if recent is not None:
        st.outcome, st.note = "covered", f"covered by call {recent}"
        return
    call = SlaCall(callee_userid=st.recipient, escalation_id=st.id, created_at=now, status="queued")
    s.add(call)
    s.flush()
    outbox.enqueue(
        s,
        "sla_call",
        f"sla-call:{st.id}",
        {"call": call.id, "callee": st.recipient, "escalations": [st.id]},
    )
