"""Firing due escalation steps in batches: one transaction per tenant per batch.

In ONE transaction per tenant:

1. the due steps are locked and read with what deciding needs (their waits and
   conversations), in one statement: on PostgreSQL `FOR UPDATE OF sla_escalations`, with
   SKIP LOCKED when a worker takes whatever is due (so workers share out the due rows
   without waiting on each other) and in id order when given rows (`fire_batch`); on
   SQLite after taking its single write lock. A step is fired by the transaction that
   locked it while pending, so it fires once: a second transaction either skips it while
   locked or, once the first has committed, finds it no longer pending ("lost");
2. decides per step: cancelled (the wait closed, or the conversation no longer awaits that
   message), skipped (stale, or nobody to reach), else fired (a voice call in quiet hours
   too: the outbox holds its call until they end), with the wait's breached_step raised;
   policies and recipients are looked up once per batch;
3. queues the side effects through the outbox with a dedupe key per escalation row: app
   messages to one person join a card of theirs not yet due (or overdue by more than
   JOIN_OVERDUE_S: the senders are behind), else the batch's steps to that person become
   one new card, which goes at once unless the person had a card within the policy's merge
   window or has had as many cards lately as WeCom's pace allows (`next_card_at`): then it
   waits for that moment.
   One voice call per person per cooldown, the rest of the person's call steps are covered
   by it;
4. writes the steps' outcomes and the waits' breached steps, one statement each.

There is no lease: a worker that dies before commit leaves its steps pending, and the
next transaction fires them at once.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, text
from sqlalchemy.orm import Session

from siyu.conversations import service as conversations
from siyu.conversations.models import ArchiveCursor, Conversation
from siyu.db import bulk, utcnow
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from siyu.sla import queries, service
from siyu.sla.models import SlaCall, SlaEscalation, SlaPolicy, SlaWait
from siyu.tenancy.queries import members_left

FIRED = ("fired", "covered")  # outcomes that reached (or will reach) a person
# WeCom silently drops app messages to one member beyond 30 a minute and 1,000 an hour
# (REFERENCE section 17): an escalation card that vanishes is a customer nobody is told
# about. A person's cards keep to a token bucket, whatever the policy's merge window: up to
# CARD_BURST at once, then one per CARD_SPACING_S. That is at most 20 in any minute and 905
# in any hour, leaving room for Siyu's other notices to them. (A plain 4 s gap between any
# two cards, as before, held a card back whenever the one before went a little late, and a
# person with a customer waiting every 4.5 s then fell further behind with every card.)
CARD_SPACING_S = 4.0
CARD_BURST = 5
WAKE_MARGIN_S = 0.01  # a card's due time is a little after the moment it was queued
# A card due this soon, or due this recently, is left to the senders: steps firing now go
# to the person's next card. (Joining locks the card, and a sender skips a locked card: with
# steps firing for a person every fraction of a second, a due card could be locked again and
# again.) A card overdue by longer means the senders are behind: steps join it, so that a
# person still has one card waiting, not a pile that would go out at once when they catch up.
JOIN_MARGIN_S = 0.05
JOIN_OVERDUE_S = 1.0
# A card sent late counts from when it went; cards are read back for that this far behind
# the pace's and the merge window's look-back (the outbox index is on due_at: reading
# further costs every firing batch).
SENT_LATE_S = 10.0
# Cards older than this no longer hold a new one back: the bucket has refilled.
PACE_LOOKBACK_S = (CARD_BURST + 1) * CARD_SPACING_S
# Cards still waiting to go are looked for this far back: further back the senders would be
# behind by more than any backlog they recover from (a card that old still goes; it is only
# not joined or counted for the pace).
PENDING_HORIZON_S = 600.0


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
    started_at: datetime | None = None  # the wait's
    was_due: datetime | None = None
    delay_s: int | None = None  # as scheduled (None: before rows kept it)


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
    """Fire these rows (anything with .id and .tenant_id) if still pending and due, each
    exactly once. Returns each row's outcome by id: fired | covered | cancelled | skipped |
    snoozed (pending again, due when the snooze ends) | lost (another transaction fired it,
    or it is no longer due)."""
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant_id].append(row.id)
    outcomes: dict[int, str] = {}
    for tenant_id, ids in by_tenant.items():
        outcomes.update(_fire_tenant(rt, tenant_id, ids=ids))
    return outcomes


def fire_tenant_due(rt, tenant_id: int, limit: int) -> dict[int, str]:
    """Fire up to `limit` of the tenant's due steps (oldest first) that no other transaction
    is firing, and whose due time the tenant's archive has been pulled past (a reply still
    in flight in the archive must not be missed). Returns outcomes by id."""
    return _fire_tenant(rt, tenant_id, limit=limit)


def archive_pulled_past(e):
    """The step's tenant has pulled its archive past the step's due time: only then may it
    fire (a reply still in flight in the archive must not be missed)."""
    return (
        exists()
        .where(
            ArchiveCursor.tenant_id == e.tenant_id,
            ArchiveCursor.source == "archive",
            ArchiveCursor.pulled_until >= e.due_at,
        )
        .correlate(e)
    )


def _locked_due(s: Session, now: datetime, ids: list[int] | None, limit: int | None):
    """Lock the due steps and read them with their waits and conversations (see step 1)."""
    e, w, c = SlaEscalation, SlaWait, Conversation
    query = (
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
            w.started_at,
            w.customer_id,
            w.snoozed_until,
            e.delay_s,
        )
        .outerjoin(w, w.id == e.wait_id)
        .outerjoin(c, c.id == e.conversation_id)
        .where(e.status == "pending", e.due_at <= now)
    )
    postgres = s.get_bind().dialect.name == "postgresql"
    if not postgres:
        s.connection().exec_driver_sql("UPDATE sla_escalations SET id = id WHERE 0")  # the write lock
    if ids is not None:
        query = query.where(e.id.in_(ids)).order_by(e.id)
        if postgres:  # in id order: batches over the same rows queue, never deadlock
            query = query.with_for_update(of=e)
    else:
        query = query.where(archive_pulled_past(e)).order_by(e.due_at).limit(limit)
        if postgres:
            query = query.with_for_update(of=e, skip_locked=True)
    return sorted(s.execute(query).all(), key=lambda r: (r.due_at, r[0]))  # due, then step id


def _fire_tenant(
    rt, tenant_id: int, ids: list[int] | None = None, limit: int | None = None
) -> dict[int, str]:
    now = rt.now()
    outcomes = dict.fromkeys(ids or (), "lost")
    with rt.db.tenant_session(tenant_id) as s:
        if s.get_bind().dialect.name == "postgresql":
            # the policies the next steps are timed by, held till this commits, before the steps
            # (a save takes them in that order too): business hours turned on while a step fired
            # left its next step on the wall clock, the save not seeing it to re-time
            s.execute(select(SlaPolicy.id).with_for_update(read=True))
        loaded = _locked_due(s, now, ids, limit)
        if not loaded:
            return outcomes
        steps: list[_Step] = []
        recipients: dict[tuple, str | None] = {}
        nobody_notes: dict[tuple, str] = {}
        left = members_left(s, {r.agent_userid for r in loaded if r.target == "agent"})
        book = service.PolicyBook(s)  # the policies the steps ran under, read once a batch

        closed_conversations: set[int] = set()
        step_policy: dict[int, service.PolicyView] = {}
        ended = service.ended_follows(s, {r.customer_id for r in loaded if r.customer_id is not None})
        for r in loaded:
            # the columns _locked_due selects, in its order: the step's, its wait's, its conversation's
            (*step_columns, wait_id, closed_at, close_reason, msgid, policy_id) = r[:13]
            (conversation_id, awaiting, started_at, customer_id, snoozed_until, delay_s) = r[13:]
            st = _Step(*step_columns, fired_at=now)
            steps.append(st)
            st.started_at, st.was_due, st.delay_s = started_at, st.due_at, delay_s
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
            if snoozed_until is not None and snoozed_until > now:
                # snoozed after the step before this one was read to fire (a snooze moves the
                # pending step, and that one was firing): this one waits for the snooze's end
                st.due_at, st.fired_at = service.snooze_ends(book, book.by_id(policy_id), snoozed_until), None
                st.outcome, st.status, st.note = "snoozed", "pending", "snoozed"
                continue
            gone, ended_at = ended.get((customer_id, st.agent_userid), (None, None))
            # (a question sent after the follow ended: they are contacts again, a customer handed
            # back to the member they were handed away from, which WeCom sends no add event for)
            if gone is not None and (ended_at is None or ended_at >= st.started_at):
                # the archive brought the message after they stopped being contacts: nobody
                # can answer there, so the wait closes as it would have (customers.follow_ended)
                if st.conversation_id not in closed_conversations:
                    closed_conversations.add(st.conversation_id)
                    conversations.dismiss(s, st.conversation_id, now, gone)
                _set(st, "cancelled", gone)
                continue
            policy = step_policy[st.id] = book.by_id(policy_id)
            if (now - st.due_at).total_seconds() > policy.stale_after_s:
                _set(st, "skipped", queries.STALE)
                continue
            key = (st.target, st.agent_userid, policy_id)
            if key not in recipients:
                recipients[key] = service.recipient_for(s, st.target, st.agent_userid, policy, left)
            recipient = recipients[key]
            if not recipient:
                # why, once a key too: a member who left with hundreds of open waits is asked about once
                if key not in nobody_notes:
                    nobody_notes[key] = queries.nobody_note(s, st.target, policy, st.agent_userid)
                _set(st, "skipped", nobody_notes[key])
                continue
            # A call in quiet hours fires all the same: its call waits in the outbox until they
            # end (the sender holds it, and drops it once nobody waits), while the steps after
            # it, cards to the leader among them, come due on time.
            st.recipient = recipient

        firing = [st for st in steps if st.status == "fired"]
        notices = [st for st in firing if st.action != "voice_call"]
        calls = [st for st in firing if st.action == "voice_call"]
        wanted = {("call", st.recipient) for st in calls}
        wanted |= {("notice", st.recipient) for st in notices}
        recipient_locks(s, tenant_id, wanted)
        windows = _queue_notices(s, tenant_id, notices, step_policy) if notices else set()
        queued = time.monotonic()
        for st in calls:
            _queue_call(s, st, step_policy[st.id], now)
        _record(s, steps)
        _schedule_next(book, steps, step_policy, now)
        outcomes.update({st.id: st.outcome for st in steps})
    # Committed: each card goes out when its window ends. A wake-up before the commit would
    # find nothing to send (or the card locked) and leave it to the senders' next poll.
    for window in windows:
        rt.wake_after(max(0.0, window - (time.monotonic() - queued)) + WAKE_MARGIN_S)
    return outcomes


def _set(st: _Step, status: str, note: str) -> None:
    st.outcome = st.status = status
    st.note = note


def _record(s: Session, steps: list[_Step]) -> None:
    """The steps' outcomes, and the waits' breached steps (never lowered)."""
    bulk.update_by_id(
        s,
        SlaEscalation,
        [
            {
                "id": st.id,
                "status": st.status,
                "note": st.note,
                "recipient": st.recipient,
                "due_at": st.due_at,
                "fired_at": st.fired_at,
                "claimed_until": None,
            }
            for st in steps
        ],
        ["status", "note", "recipient", "due_at", "fired_at", "claimed_until"],
    )
    breached: dict[int, int] = {}
    for st in steps:
        if st.outcome in FIRED:
            breached[st.wait_id] = max(breached.get(st.wait_id, -1), st.step)
    bulk.update_by_id(
        s,
        SlaWait,
        [{"id": wait_id, "breached_step": step} for wait_id, step in breached.items()],
        ["breached_step"],
        greatest=["breached_step"],
    )


def _schedule_next(book: service.PolicyBook, steps: list[_Step], step_policy: dict, now: datetime) -> None:
    """The next step of each wait whose step fired or was skipped: a wait has one pending
    step at a time (siyu.sla.service.next_due)."""
    befores = []
    for st in steps:
        policy = step_policy.get(st.id)
        if policy is None or st.status not in ("fired", "skipped"):
            continue  # cancelled (the wait is over), or no policy read
        before_s = service.delay_of(st.delay_s, st.step, policy)
        if before_s is not None:
            befores.append((st, policy, service.Step(before_s, st.action, st.target)))
    had = _steps_had(
        book.session, [st.wait_id for st, policy, before in befores if before not in policy.steps]
    )
    rows = []
    for st, policy, before in befores:
        found = service.next_due(book, policy, st.started_at, before, st.was_due, had.get(st.wait_id, ()))
        if found is not None:
            step, due = found
            rows.append(
                service.step_row(st.wait_id, st.conversation_id, st.agent_userid, st.step + 1, step, due, now)
            )
    bulk.insert_rows(book.session, SlaEscalation, rows, conflict=["wait_id", "step"])


def _steps_had(session, wait_ids: list[int]) -> dict[int, set[service.Step]]:
    """The steps each of these waits has had (their rows), where the one that fired is no
    longer in its policy: next_due then knows which of its delay's other steps are still to go."""
    if not wait_ids:
        return {}
    e = SlaEscalation
    had: dict[int, set[service.Step]] = {}
    query = select(e.wait_id, e.delay_s, e.action, e.target).where(
        bulk.among(session, e.wait_id, wait_ids), e.delay_s.is_not(None)
    )
    for wait_id, delay_s, action, target in session.execute(query):
        had.setdefault(wait_id, set()).add(service.Step(delay_s, action, target))
    return had


def next_card_at(went: list[datetime], merge_window_s: float) -> datetime | None:
    """When a person's next card may go, given when their recent cards went or go (None:
    at once): the policy's merge window after the last one, and no sooner than WeCom's pace
    allows, a token bucket of CARD_BURST cards refilled one per CARD_SPACING_S (GCRA: each
    card moves the bucket's "theoretical arrival time" one spacing on from the later of it
    and the card's own time)."""
    if not went:
        return None
    went = sorted(went)
    spacing = timedelta(seconds=CARD_SPACING_S)
    full_at = went[0]
    for at in went:
        full_at = max(full_at, at) + spacing
    return max(went[-1] + timedelta(seconds=merge_window_s), full_at - (CARD_BURST - 1) * spacing)


def _queue_notices(s: Session, tenant_id: int, notices: list[_Step], policy_of: dict) -> set[float]:
    """Each person's app-message steps: join a card for them that is not due right now
    (not yet due, or overdue by more than JOIN_OVERDUE_S) nor claimed by a sender, else one
    new card for all of the batch's steps to the person. A new card goes at once unless the
    person had a card within the merge window or has had all that WeCom's pace allows
    (`next_card_at`, counted from when their cards went or go): then it waits for that
    moment, and what comes due meanwhile joins it. So a lone step is told on time, and a
    burst of them arrives as one card per merge window, and never faster than WeCom
    delivers.
    Returns in how many seconds from now the cards it wrote come due: the senders are woken
    then (a joined card may be due already: a sender that came for it while this
    transaction held it skipped it, and must come back)."""
    merging: dict[str, list[_Step]] = defaultdict(list)
    for st in notices:
        merging[st.recipient].append(st)
    new_cards: list[tuple[list[_Step], float]] = []
    wake_in: set[float] = set()
    now = utcnow()
    longest = max(PACE_LOOKBACK_S, *(policy_of[st.id].merge_window_s for st in notices))
    open_cards, went = _cards_of(s, set(merging), now - timedelta(seconds=longest), now)
    joined = []
    for recipient, (card_id, payload, due_at) in open_cards.items():
        group = merging.pop(recipient)
        wake_in.add(max(0.0, (due_at - now).total_seconds()))
        escalations = [*payload["escalations"], *(st.id for st in group)]
        joined.append({"id": card_id, "payload": {**payload, "escalations": escalations}})
        for st in group:
            st.note = f"merged into outbox {card_id}"
    bulk.update_by_id(s, OutboxMessage, joined, ["payload"])
    for recipient, group in merging.items():
        window = max(policy_of[st.id].merge_window_s for st in group)
        at = next_card_at(went.get(recipient, []), window)
        new_cards.append((group, max(0.0, (at - now).total_seconds()) if at else 0.0))
    if not new_cards:
        return wake_in
    rows = [
        outbox.row(
            tenant_id,
            "sla_notice",
            f"sla-notice:{group[0].recipient}:{group[0].id}",
            {"touser": group[0].recipient, "escalations": [st.id for st in group]},
            delay=timedelta(seconds=delay) if delay else None,
            recipient=group[0].recipient,
        )
        for group, delay in new_cards
    ]
    queued = outbox.enqueue_many(s, rows)
    for group, _ in new_cards:
        card_id = queued.get(f"sla-notice:{group[0].recipient}:{group[0].id}")
        for st in group[1:]:
            st.note = f"merged into outbox {card_id}"
    return wake_in | {delay for _, delay in new_cards if delay}


def _cards_of(
    s: Session, recipients: set[str], since: datetime, now: datetime
) -> tuple[dict[str, tuple[int, dict, datetime]], dict[str, list[datetime]]]:
    """For these people: each one's first card still waiting to go out, not due right now
    (JOIN_MARGIN_S, JOIN_OVERDUE_S), locked until this transaction ends so that no sender
    takes it meanwhile (PostgreSQL: FOR UPDATE, skipping a card a sender is claiming right
    now; SQLite: its write lock, held since the gate); and when each one's cards (going
    out, or sent and due after `since` less SENT_LATE_S) went or go: a sent card when it
    was due or, if later, sent; a card still waiting, when it is due, or now if that has
    passed (it goes as soon as a sender has it); a card being retried after failures neither
    takes new steps nor counts.

    Those cards are few (a person has at most a window's worth), so they are read by
    recipient and due time (PENDING_HORIZON_S), unlocked, and only this batch's people's
    open ones are then locked and read again: one short statement each, whatever the
    number of people."""
    o = OutboxMessage
    cards = s.execute(
        select(o.id, o.recipient, o.status, o.claimed_until, o.due_at, o.sent_at, o.attempts)
        .where(
            o.kind == "sla_notice",
            bulk.among(s, o.recipient, recipients),
            o.due_at > now - timedelta(seconds=PENDING_HORIZON_S),  # a range of the recipient index
            or_(
                o.status == "pending",
                and_(
                    o.status == "sent",
                    o.priority == outbox.NORMAL,
                    o.due_at > since - timedelta(seconds=SENT_LATE_S),
                ),
            ),
        )
        .order_by(o.id)
    ).tuples()
    first: dict[str, int] = {}
    went: dict[str, list[datetime]] = defaultdict(list)
    joinable_after = now + timedelta(seconds=JOIN_MARGIN_S)
    overdue_before = now - timedelta(seconds=JOIN_OVERDUE_S)
    for card_id, recipient, status, claimed_until, due_at, sent_at, attempts in cards:
        # cards late to go (the senders behind) count from when they go; one backing off after
        # failures not at all (it goes when its retry says, and reached nobody so far: counted,
        # a new step would queue behind its backoff)
        backing_off = status == "pending" and attempts > 0 and claimed_until is None
        if status == "sent":
            went[recipient].append(max(due_at, sent_at or now))
        elif not backing_off:
            went[recipient].append(max(due_at, now))
        joinable = (
            status == "pending"
            and claimed_until is None
            # not one backing off after failures: the step would wait that out, or die with it
            and not backing_off
            and (due_at > joinable_after or due_at < overdue_before)
        )
        if joinable and recipient not in first:
            first[recipient] = card_id
    if not first:
        return {}, went
    # As read above, again under the lock: a sender may have claimed one since, had WeCom
    # refuse it and left it backing off (attempts > 0, unclaimed) before the lock was taken.
    query = (
        select(o.id, o.recipient, o.payload, o.due_at)
        .where(
            bulk.among(s, o.id, first.values()),
            o.status == "pending",
            o.claimed_until.is_(None),
            o.attempts == 0,
        )
        .order_by(o.id)
    )
    if s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = {
        recipient: (card_id, payload, due_at) for card_id, recipient, payload, due_at in s.execute(query)
    }
    return found, went


def _queue_call(s: Session, st: _Step, policy, now: datetime) -> None:
    """One call per person per cooldown: a call placed within it, or one still to ring (held
    by quiet hours, or retrying), covers the step."""
    since = now - timedelta(seconds=policy.call_cooldown_s)
    recent = s.execute(
        select(SlaCall.id, SlaCall.status, SlaCall.escalation_id)
        .where(
            SlaCall.callee_userid == st.recipient,
            or_(
                queries.still_to_ring(),  # (a night's calls held till 08:00 ring once)
                queries.placed_since(since),  # (the board says both ahead: queries.next_calls_covered)
            ),
        )
        .order_by(SlaCall.created_at.desc())
        .limit(1)
    ).first()
    if recent is not None:
        st.outcome, st.note = "covered", f"covered by call {recent.id}"
        if recent.status == "queued":
            # the call still to ring speaks of this wait too, even once its own is answered
            query = select(OutboxMessage).where(
                OutboxMessage.dedupe_key == f"sla-call:{recent.escalation_id}",
                OutboxMessage.status == "pending",
            )
            if s.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()  # two workers covering steps of one call: both kept
            queued = s.scalar(query)
            if queued is not None:
                queued.payload = {**queued.payload, "escalations": [*queued.payload["escalations"], st.id]}
        return
    call = SlaCall(callee_userid=st.recipient, escalation_id=st.id, created_at=now, status="queued")
    s.add(call)
    s.flush()
    outbox.enqueue(
        s,
        "sla_call",
        f"sla-call:{st.id}",
        {"call": call.id, "callee": st.recipient, "escalations": [st.id]},
        recipient=st.recipient,
    )
