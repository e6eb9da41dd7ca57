"""What the worker runs for SLA: fire due escalation steps, and send their notices.

Firing. `fire_next` finds the tenants with due steps (status pending, due_at <= now, and
the tenant's archive pulled past due_at, so that a reply still in flight in the archive
cannot be missed) and fires them through `siyu.sla.firing`: one transaction per tenant
locks the due steps (SKIP LOCKED on PostgreSQL, so workers share them out), decides, and
queues the notices in the outbox with a dedupe key per escalation row. A crash before
commit leaves the steps pending for the next transaction; nothing doubles. The worker
sleeps until the next step is due (`next_due_in`, at most POLL_S, so that new waits are
seen), so a step fires when it is due, not up to a poll later; a pull in its process that
moves the archive on wakes it (`Runtime.archive_moved`): since the archive is never pulled
past now, that pull, not the clock, is what most steps wait for.

Sending (outbox senders, registered on import):
  sla_notice  a WeCom textcard (message/send). A person's first card goes at once; one
              due within the policy's merge_window_s after their previous card, or beyond
              WeCom's pace (firing.next_card_at: WeCom drops app messages beyond 30 a
              minute to one member), waits for that moment, and steps for them that fire
              meanwhile join it (while no sender has claimed it), so a burst arrives as
              one card per window. Waits answered meanwhile are left out; if none is left
              it is Skipped. A retry after a send that may have reached them (no answer,
              or its outcome not recorded) sends the card of that try, written to the row
              before it went (siyu.notify.tasks.DUPLICATE_CHECK).
  sla_call    a voice call through siyu.sla.voice; one call says how many of the callee's
              customers wait, and no second call is queued within the policy's cooldown.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from siyu.conversations import queries as conversation_queries
from siyu.conversations.models import ArchiveCursor, Conversation, Message
from siyu.customers import queries as customer_queries
from siyu.customers.models import Customer
from siyu.db import bulk
from siyu.notify.models import OutboxMessage
from siyu.notify.outbox import AS_SENT, Deferred, Permanent, Retry, Skipped, sender
from siyu.notify.tasks import DUPLICATE_CHECK, send_app_message
from siyu.sla import firing, queries, service
from siyu.sla.firing import FIRED, fire_batch
from siyu.sla.models import SlaCall, SlaEscalation, SlaWait
from siyu.sla.voice import NoAnswer, VoiceCall, provider_for
from siyu.tenancy import timezones
from siyu.tenancy.models import Staff, Tenant, gone_word
from siyu.tenancy.queries import members_left
from siyu.wecom.errors import MEMBER_UNKNOWN_ERRCODES, WeComError, WeComNotPermitted

log = logging.getLogger(__name__)
BATCH = 200
POLL_S = 0.5  # the worker looks at least this often (new waits, another process's pulls)
GATHER_S = 0.1  # and at most this often: steps due close together fire as one batch
# A tenant whose firing failed (a row it cannot get past) is left out for 1 s, then twice as
# long each time it fails again, at most this long, rather than tried (and logged) at every pass.
FAILING_WAIT_MAX_S = 60.0
_failing: dict[int, tuple[int, float]] = {}  # tenant: (failures in a row, when to try again)


# ------------------------------------------------------------------------------- firing


def tenants_due(rt, leaving_out=()) -> list[int]:
    """The tenants with a pending step due now whose archive is pulled past it, none of
    `leaving_out`, the one whose oldest such step is oldest first: a plain read, no lock (the
    firing transaction locks what it fires), one indexed look per tenant with an archive.
    Each tenant gets a turn of its own: the oldest steps of all tenants taken together had
    let one tenant's burst of thousands fill every batch while another's customer waited."""
    now = rt.now()
    e, cursor = SlaEscalation, ArchiveCursor
    oldest = (
        select(func.min(e.due_at))
        .where(
            e.tenant_id == cursor.tenant_id,
            e.status == "pending",
            e.due_at <= now,
            e.due_at <= cursor.pulled_until,
        )
        .correlate(cursor)
        .scalar_subquery()
    )
    query = select(cursor.tenant_id, oldest).where(
        cursor.source == "archive", cursor.pulled_until.is_not(None)
    )
    if leaving_out:
        query = query.where(cursor.tenant_id.not_in(leaving_out))
    with rt.db.system_session() as s:
        rows = [row for row in s.execute(query) if row[1] is not None]
    return [tenant_id for tenant_id, _ in sorted(rows, key=lambda row: row[1])]


def fire_one(rt, tenant_id: int, escalation_id: int) -> str:
    """Fire one step exactly once (a batch of one, see siyu.sla.firing). Returns what
    happened: fired | covered | cancelled | skipped | snoozed | lost (another worker fired
    it, or it is no longer due)."""
    return fire_batch(rt, [_Row(escalation_id, tenant_id)])[escalation_id]


@dataclass(frozen=True)
class _Row:
    id: int
    tenant_id: int


def fire_next(rt, limit: int = BATCH) -> dict[int, str]:
    """Fire up to `limit` due steps of each tenant that has some, one transaction per
    tenant; workers running this at once fire disjoint steps. A tenant whose firing fails is
    logged and left out for a while (`_failing`). Returns outcomes by id."""
    outcomes: dict[int, str] = {}
    resting = {t for t, (_, until) in list(_failing.items()) if until > time.monotonic()}
    for tenant_id in tenants_due(rt, resting):
        try:
            outcomes.update(firing.fire_tenant_due(rt, tenant_id, limit))
        except Exception:  # noqa: BLE001 - one tenant's bad row must not stop the others' escalations
            failures = _failing.get(tenant_id, (0, 0.0))[0] + 1
            wait_s = min(FAILING_WAIT_MAX_S, 2.0 ** (failures - 1))
            _failing[tenant_id] = (failures, time.monotonic() + wait_s)
            log.exception("firing tenant %s's SLA steps failed (again in %.0f s)", tenant_id, wait_s)
        else:
            _failing.pop(tenant_id, None)
    return outcomes


def claim_and_fire(rt, limit: int = BATCH) -> tuple[int, int]:
    """`fire_next`, counted: (steps taken, steps that reached or will reach a person)."""
    outcomes = fire_next(rt, limit)
    return len(outcomes), sum(1 for o in outcomes.values() if o in FIRED)


def next_due_in(rt, cap: float = POLL_S) -> float:
    """Seconds until the next pending step that may fire (due later than now, with its
    tenant's archive already pulled past it), at most `cap`: one indexed read, no lock.
    Steps held back by the archive are seen when the cap runs out (the archive moved on)."""
    now = rt.now()
    e = SlaEscalation
    first = (
        select(func.min(e.due_at))
        .where(
            e.tenant_id == ArchiveCursor.tenant_id,
            e.status == "pending",
            e.due_at > now,
            e.due_at <= ArchiveCursor.pulled_until,
        )
        .correlate(ArchiveCursor)
        .scalar_subquery()
    )
    with rt.db.system_session() as s:
        at = s.scalar(
            select(func.min(first)).where(ArchiveCursor.source == "archive", ArchiveCursor.pulled_until > now)
        )
    if at is None:
        return cap
    return max(0.0, min(cap, (at - now).total_seconds()))


async def fire_due(rt) -> int:
    """Claim and fire everything due; returns how many steps fired (notices or calls)."""
    fired = 0
    while True:
        try:
            claimed, n = claim_and_fire(rt, BATCH)
        except Exception:  # noqa: BLE001 - the lease runs out and the rows are tried again
            log.exception("firing SLA steps failed")
            break
        fired += n
        if not claimed:  # firing a step may have made the wait's next one due already
            break
    if fired:
        rt.wake()
    return fired


# ------------------------------------------------------------------------------ notices


def conversation_link(rt, slug: str, conversation_id: int | None, card: int | None = None) -> str:
    """Opens the conversation signed in through WeCom's OAuth (REFERENCE 14); without one, the
    waiting conversations card `card` told of (a colleague's among them). Either page is told
    the card (a chat opened after the card's wait ended says so), and the link names it after
    the sign-in's `next` too (the sign-in ignores it there)."""
    if conversation_id:
        target = f"/conversations/{conversation_id}" + (f"?card={card}" if card is not None else "")
    elif card is not None:
        target = f"/conversations?waiting=1&card={card}"
    else:  # (no card to name: every waiting one the recipient's cards told of)
        target = "/conversations?waiting=1&told=1"
    link = f"{rt.settings.public_url.rstrip('/')}/auth/wecom/{slug}?next={quote(target, safe='/')}"
    return link if card is None else f"{link}&card={card}"


def waited(seconds: float) -> str:
    if seconds < 60:  # a policy's first step may come due within the minute
        return f"{max(0, int(seconds))} 秒"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} 分钟"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} 小时 {minutes} 分钟" if minutes else f"{hours} 小时"


def _clip(value: str, n: int) -> str:
    value = " ".join((value or "").split())
    return value if len(value) <= n else value[: n - 1] + "…"


def _open_entries_many(s: Session, cards: dict[int, list[int]], now: datetime) -> dict[int, list[dict]]:
    """The still-unanswered waits behind each card's steps (escalation ids by card), one
    per conversation, earliest first (`_notices` orders them by each policy's clock), left
    out those snoozed since their latest step on the card fired (queries.left_out, the call
    planner's rule): three reads for all the cards."""
    card_of: dict[int, list[int]] = {}
    for card, ids in cards.items():
        for esc_id in ids:
            card_of.setdefault(esc_id, []).append(card)
    e, w, c = SlaEscalation, SlaWait, Conversation
    rows = (
        s.execute(
            select(
                e.id,
                e.step,
                e.agent_userid,
                w.id,
                w.msgid,
                w.started_at,
                w.closed_at,
                w.snoozed_until,
                w.policy_id,
                c.id,
                c.awaiting_msgid,
                Customer.name,
                e.fired_at,
                w.snoozed_at,
                w.snoozed_by,
                c.customer_id,
            )
            .join(w, w.id == e.wait_id)
            .join(c, c.id == e.conversation_id)
            .outerjoin(Customer, Customer.id == c.customer_id)
            .where(bulk.among(s, e.id, card_of))
        ).all()
        if card_of
        else []
    )
    # a wait's latest step on each card: one that fired after the snooze ended is a reminder anew
    latest: dict[tuple[int, int], datetime] = {}
    for row in rows:
        esc_id, wait_id, fired_at = row[0], row[3], row[12]
        for key in ((card, wait_id) for card in card_of[esc_id]):
            if fired_at is not None and (key not in latest or fired_at > latest[key]):
                latest[key] = fired_at
    per_card: dict[int, dict[int, dict]] = {card: {} for card in cards}
    for row in rows:
        esc_id, step, agent, wait_id, msgid, started_at, closed_at, snoozed, policy_id = row[:9]
        conversation_id, awaiting, name, _, snoozed_at, snoozed_by, customer_id = row[9:]
        if closed_at is not None or awaiting != msgid:
            continue
        for card in card_of[esc_id]:
            if queries.left_out(snoozed, snoozed_at, latest.get((card, wait_id)), now):
                continue
            entries = per_card[card]
            entry = entries.get(conversation_id)
            if entry is None or step > entry["step"]:
                entries[conversation_id] = {
                    "conversation_id": conversation_id,
                    "wait_id": wait_id,
                    "msgid": msgid,
                    "started_at": started_at,
                    "customer": name or "客户",
                    "customer_id": customer_id,
                    "agent": agent,
                    "step": step,
                    "policy_id": policy_id,
                    "snoozed": (snoozed_by, snoozed_at, snoozed) if snoozed_at and snoozed else None,
                }
    found = {card: sorted(e.values(), key=lambda e: e["started_at"]) for card, e in per_card.items()}
    every = [e for entries in found.values() for e in entries]
    if every:
        texts = dict(
            s.execute(
                select(Message.msgid, Message.text).where(
                    bulk.among(s, Message.msgid, {e["msgid"] for e in every})
                )
            ).all()
        )
        staff = {
            userid: (name, gone_word(active, status))
            for userid, name, active, status in s.execute(
                select(Staff.userid, Staff.name, Staff.active, Staff.wecom_status).where(
                    bulk.among(s, Staff.userid, {e["agent"] for e in every})
                )
            )
        }
        asks = conversation_queries.waiting_asks(s, {e["conversation_id"]: e["started_at"] for e in every})
        for e in every:
            e["asks"], e["asked"] = asks.get(e["conversation_id"]) or ([texts.get(e["msgid"], "")], 1)
            e["agent_name"], e["agent_gone"] = staff.get(e["agent"], (e["agent"], ""))
    return found


# A textcard's title and description are cut by WeCom past this many bytes, silently and
# wherever that falls (its message/send docs): a card is built to fit.
TITLE_BYTES = 128
DESCRIPTION_BYTES = 512
# How many characters of the waiting messages a card about one wait quotes, at most: fewer
# where names and HTML escapes (" is 6 bytes) would take the description past its bytes.
QUOTE_CHARS = (60, 48, 36, 24, 12)


def _clip_bytes(value: str, n: int) -> str:
    """`value` if it is at most `n` UTF-8 bytes, else its head and "…" in `n` bytes."""
    if len(value.encode()) <= n:
        return value
    return value.encode()[: n - len("…".encode())].decode(errors="ignore") + "…"


def _business_time(book: service.PolicyBook, entries: list[dict], now: datetime) -> None:
    """`business_s` on the entries whose policy counts business hours only: how long they
    have waited by that clock (a card on Monday 09:01 for a question of Friday 17:59 tells
    2 minutes of it, and the 63 hours besides)."""
    for e in entries:
        e["business_s"] = book.waited_business_s(book.by_id(e["policy_id"]), e["started_at"], now)


def _remarks(s: Session, cards: dict[int, list[dict]], touser: dict[int, str]) -> None:
    """`remark` on each card's entries: the recipient's own remark on the customer (备注), which
    is how WeCom lists that chat on their phone; "" where they have none (a leader, mostly).
    One read for all the cards."""
    every = [(e, touser[card]) for card, found in cards.items() for e in found]
    remarks = customer_queries.remarks_on(
        s, {e["customer_id"] for e, _ in every if e["customer_id"] is not None}
    )
    for e, user in every:
        e["remark"] = remarks.get((e["customer_id"], user), "")


def _steps_around(
    s: Session,
    cards: dict[int, list[dict]],
    touser: dict[int, str],
    now: datetime,
    book: service.PolicyBook,
    timezone: str,
) -> None:
    """On a card about one wait (a card about several keeps to a line each): `next` on the
    agent's own, what comes if they do not answer (when, whom, card or call), by the wait's
    pending step as stored and whom it would reach now (as the board names them); `reminded`
    on anyone else's, when the agent's own card reached them (queries.deliveries: sent, not
    one queued, given up or that left the wait out). A few reads for all the cards."""
    single = {card: found[0] for card, found in cards.items() if len(found) == 1}
    if not single:
        return
    own = {card: x for card, x in single.items() if x["agent"] == touser[card]}
    others = {card: x for card, x in single.items() if card not in own}
    e = SlaEscalation
    wanted = or_(
        and_(bulk.among(s, e.wait_id, {x["wait_id"] for x in own.values()}), e.status == "pending"),
        and_(
            bulk.among(s, e.wait_id, {x["wait_id"] for x in others.values()}),
            e.status == "fired",
            e.action == "app_message",
            e.target == "agent",
        ),
    )
    columns = (e.id, e.wait_id, e.action, e.target, e.status, e.due_at, e.fired_at, e.recipient, e.note)
    rows = s.execute(select(*columns).where(wanted)).all()
    pending = {r.wait_id: r for r in rows if r.status == "pending" and r.due_at > now}
    ahead = []
    for x in own.values():
        step = pending.get(x["wait_id"])
        if step is None:
            continue
        policy, at = book.by_id(x["policy_id"]), step.due_at
        if step.action == "voice_call":  # it rings once the policy's quiet hours are over
            if queries.calls_never_ring(policy):
                continue
            at = queries.call_held_until(policy, at, timezone, book.calendar) or at
        ahead.append((x, step, at, policy.escalation_contact))
    people = service.next_step_people(
        s,
        [
            {
                "conversation_id": x["conversation_id"],
                "next_step_at": at,
                "next_step_target": step.target,
                "staff_userid": x["agent"],
                "escalation_contact": contact,
            }
            for x, step, at, contact in ahead
        ],
    )
    # a call the cooldown covers (the callee rung lately) is not placed: firing skips it, as the
    # board says (queries.next_calls_covered, judged at the step's time as firing judges it); one
    # still to ring for the callee (being retried, held) rings when it does, of this wait too
    calls = [
        {
            "conversation_id": x["conversation_id"],
            "next_step_action": step.action,
            "next_step_due_at": step.due_at,
            "call_cooldown_s": book.by_id(x["policy_id"]).call_cooldown_s,
        }
        for x, step, *_ in ahead
    ]
    queries.next_calls_covered(s, calls, people, now, book)
    for c in calls:
        if c["next_step_called_at"]:
            people.pop(c["conversation_id"], None)
    colleagues = {who for x, *_ in ahead if (who := people.get(x["conversation_id"])) and who != x["agent"]}
    names = {}
    if colleagues:
        staff = select(Staff.userid, Staff.name).where(bulk.among(s, Staff.userid, colleagues))
        names = dict(s.execute(staff).all())
    rings = {c["conversation_id"]: c["next_step_queued_call_at"] for c in calls}
    for x, step, at, _ in ahead:
        who = people.get(x["conversation_id"])
        if who:
            at = rings.get(x["conversation_id"]) or at
            x["next"] = (at, step.action, who, names.get(who) or who)
    fired = [r for r in rows if r.status == "fired"]
    reached = queries.deliveries(s, fired) if fired else {}
    for x in others.values():
        sent = [
            r.fired_at for r in fired if r.wait_id == x["wait_id"] and reached.get(r.id, ("",))[0] == "sent"
        ]
        if sent:
            x["reminded"] = min(sent)


def _how_long(e: dict, now: datetime, short: bool = False) -> str:
    """How long the entry has waited: by the business clock where its policy counts that."""
    wall = waited((now - e["started_at"]).total_seconds())
    if e.get("business_s") is None:
        return wall
    business = waited(e["business_s"])
    if short or business == wall:
        return f"{business}（工作时间）"
    return f"{business}（工作时间；实际 {wall}）"


def _named(e: dict, name_chars: int | None = None) -> str:
    """The customer as the card's recipient knows them: the WeChat name, and their own remark
    beside it where they have one (WeCom lists the chat on their phone by it), as the alert of a
    customer who left names them (siyu.customers.service): 王芳（备注：王姐-报价）."""
    name = e["customer"] if name_chars is None else _clip(e["customer"], name_chars)
    return f"{name}（备注：{_clip(e['remark'], 20)}）" if e.get("remark") else name


def _around(e: dict, touser: str, agent_name: str, zone: str, now: datetime) -> str:
    """A card's line on the steps around its one wait (_steps_around): to the agent, what comes
    if they do not answer; to anyone else, that the agent had their card, and held the
    reminders back (the latest snooze, over by now: a wait snoozed still is on no card)."""

    def _when(at: datetime) -> str:
        return timezones.of_the_day(at, zone, now)

    if e["agent"] == touser:
        if not e.get("next"):
            return ""
        at, action, who, name = e["next"]
        whom = "你" if who == touser else name
        done = (
            f"给{whom}打电话" if action == "voice_call" else "再次提醒你" if who == touser else f"提醒{whom}"
        )
        # to the second: a deadline rounded to a minute named one before the step (10:05 for
        # 10:05:40, read as "already past") or after it (10:06: the leader told at 10:05:40)
        return f"{timezones.of_the_day(at, zone, now, '%H:%M:%S')} 仍未回复将{done}"
    said = [f"已于 {_when(e['reminded'])} 提醒{agent_name}"] if e.get("reminded") else []
    if e.get("snoozed"):
        by, at, until = e["snoozed"]
        by = f"{_clip(by, 16)} " if by else "已于 "  # ("": Siyu itself)
        said.append(f"{by}{_when(at)} 暂缓提醒至 {_when(until)}")
    return "；".join(said)


def build_card(
    rt, slug: str, timezone: str, touser: str, entries: list[dict], card: int | None = None
) -> dict:
    """The message/send body (without agentid) of one notice card; `entries` longest first.
    `card`, the outbox row's id, goes in the link: WeCom's duplicate check (notify.tasks) drops
    a send equal to one of the last hours, and two cards of equal text (the same customers,
    quotes and minutes, hours apart) are two reminders; a retry of one card stays the same."""
    now = rt.now()
    first = entries[0]
    longest = _how_long(first, now)
    own = all(e["agent"] == touser for e in entries)
    if len(entries) == 1:
        agent_name = _clip(first["agent_name"], 16)
        gone = first.get("agent_gone", "")
        tail = f" 已等待 {_how_long(first, now, short=True)} 未回复"
        head = "" if own else f"{agent_name}（{gone}）的客户 " if gone else f"{agent_name}的客户 "
        # the customer's name gives way, so that the title still says how long and 未回复, and then
        # the recipient's remark on them, by which WeCom lists the chat
        room = TITLE_BYTES - len((head + tail).encode())
        remark, marks = first.get("remark", ""), len("（备注：）".encode())
        note = ""
        if remark and room >= marks + 16:  # (a long colleague's name can leave too little room)
            note = f"（备注：{_clip_bytes(remark, min(60, room - marks - 8))}）"
        name = _clip_bytes(" ".join(first["customer"].split()), max(room - len(note.encode()), 8))
        title = head + name + note + tail
        local = timezones.wall_clock(first["started_at"], timezone, "%m-%d %H:%M")
        several = f" 起发来 {first['asked']} 条" if first.get("asked", 1) > 1 else " 发来"
        if own:
            ask = "请尽快回复"
        elif gone:  # nobody to remind: the chat it opens says so too, and how WeCom hands customers over
            ask = f"{html.escape(agent_name)}{gone}，请在企业微信管理后台" + (
                "重新启用该成员或把客户分配给其他成员" if gone == "已禁用" else "把客户分配给在职成员"
            )
        else:
            ask = f"请提醒{html.escape(agent_name)}尽快回复"
        closing = f'<div class="highlight">已等待 {longest}，{ask}</div>'
        around = _around(first, touser, agent_name, timezone, now)
        around = f'<div class="gray">{html.escape(around)}</div>' if around else ""
        # WeCom cuts a description past 512 bytes, closing line and all: the quote gives way
        # first, then the line on the steps around, then the remark (the title has it)
        least = QUOTE_CHARS[-1]
        for extra, who, chars in [
            *((around, _named(first, 24), c) for c in QUOTE_CHARS),
            ("", _named(first, 24), least),
            ("", _clip(first["customer"], 24), least),
        ]:
            asked = conversation_queries.quote_asks(first["asks"], chars, first.get("asked"))
            description = (
                f'<div class="gray">{local}{several}</div>'
                f'<div class="normal">{html.escape(who)}：'
                f"{html.escape(asked)}</div>{extra}{closing}"
            )
            if len(description.encode()) <= DESCRIPTION_BYTES:
                break
        url = conversation_link(rt, slug, first["conversation_id"], card)
    else:
        title = f"{len(entries)} 位客户等待回复，最长 {_how_long(first, now, short=True)}"
        mine = sum(e["agent"] == touser for e in entries)
        gone = [e for e in entries if e.get("agent_gone")]
        reachable = len(entries) - mine - len(gone)  # colleagues still with the corp to remind
        asks = ["请尽快回复" if mine else "", "请提醒同事尽快回复" if not mine and reachable else ""]
        asks[0] += "，并提醒同事" if mine and reachable else ""
        if gone:  # nobody to remind of theirs (the chats say so): WeCom hands their customers over
            asks.append("离职或停用成员的客户，请在企业微信管理后台分配给在职成员")
        closing = f'<div class="highlight">{"；".join(a for a in asks if a)}</div>'
        lines: list[str] = []
        for e in entries[:5]:
            name = html.escape(e["agent_name"]) + (f"，{e['agent_gone']}" if e.get("agent_gone") else "")
            agent = "" if e["agent"] == touser else f"（{name}）"
            how_long = _how_long(e, now)  # under a business-hours policy, the wall time beside it
            asked = conversation_queries.quote_asks(e["asks"], 24, e.get("asked"))
            line = (
                f'<div class="normal">{html.escape(_named(e))}{agent}：'
                f"{html.escape(asked)} · {how_long}</div>"
            )
            # WeCom cuts a description past 512 bytes, wherever that falls in the markup
            if len("".join([*lines, line, closing]).encode()) > DESCRIPTION_BYTES - 40:
                break
            lines.append(line)
        if len(entries) > len(lines):
            lines.append(f'<div class="gray">还有 {len(entries) - len(lines)} 位</div>')
        lines.append(closing)
        description = "".join(lines)
        same = {e["conversation_id"] for e in entries}
        url = conversation_link(rt, slug, first["conversation_id"] if len(same) == 1 else None, card)
    return {
        "touser": touser,
        "msgtype": "textcard",
        "textcard": {
            "title": _clip_bytes(title, TITLE_BYTES),
            "description": description,
            "url": url,
            "btntxt": "去回复" if own else "查看",
        },
    }


def _notice(rt, tenant_id: int, message: OutboxMessage) -> dict | None:
    return _notices(rt, tenant_id, [message])[message.id]


# A card's body where its recipient left the corp since its step fired (the directory sync
# found them gone, held for WeCom's pace or the merge window meanwhile): WeCom would refuse it as
# 消息接收人全部无效, read as our trouble.
RECIPIENT_LEFT = object()


def _notices(rt, tenant_id: int, messages: list[OutboxMessage]) -> dict[int, object]:
    """The message/send bodies of these sla_notice messages (None: every wait was answered
    meanwhile; RECIPIENT_LEFT, read once for the batch): the card an earlier try sent where one
    may have reached them (its outcome not recorded, or no answer), else one built now and
    written to the row before it goes (notify.outbox.WRITES_AS_SENT): a card built anew says
    other minutes, and WeCom's duplicate check would not drop it as the second of one card."""
    now = rt.now()
    with rt.db.tenant_session(tenant_id) as s:
        entries = _open_entries_many(s, {m.id: list(m.payload.get("escalations", [])) for m in messages}, now)
        book = service.PolicyBook(s)
        _business_time(book, [e for found in entries.values() for e in found], now)
        for found in entries.values():  # longest first, each by its own policy's clock
            found.sort(key=lambda e: -service.by_its_clock(e["business_s"], e["started_at"], now))
        tenant = s.get(Tenant, tenant_id)
        tz = tenant.timezone or "Asia/Shanghai"
        left = members_left(s, {m.payload["touser"] for m in messages if entries[m.id]})
        bodies: dict[int, object] = {}
        for m in messages:
            found, before = entries[m.id], m.payload.get(AS_SENT)
            if not found:
                bodies[m.id] = None
            elif m.payload["touser"] in left:
                bodies[m.id] = RECIPIENT_LEFT
            elif before is not None:
                bodies[m.id] = before
        touser = {m.id: m.payload["touser"] for m in messages if m.id not in bodies}
        building = {card: entries[card] for card in touser}
        _remarks(s, building, touser)
        _steps_around(s, building, touser, now, book, tz)
        written = []
        for m in messages:
            if m.id not in touser:
                continue
            found = entries[m.id]
            card = build_card(rt, tenant.slug, tz, m.payload["touser"], found, card=m.id)
            bodies[m.id] = body = {**card, "agentid": tenant.agent_id, **DUPLICATE_CHECK}
            # the waits it speaks of: a step on it whose wait was left out (snoozed or answered
            # meanwhile) reads so on the board (queries.deliveries), not as the card's sent
            told = sorted({e["wait_id"] for e in found})
            # (the waits told of on the claimed row too: recording the send writes its payload
            # back from it, and had dropped them, the board then saying the card reached every
            # one; not its body, which a refusal clears for the retry to build anew)
            m.payload = {**m.payload, queries.CARD_TOLD: told}
            written.append({"id": m.id, "payload": {**m.payload, AS_SENT: body}})
        bulk.update_by_id(s, OutboxMessage, written, ["payload"])
        return bodies


_UNSET = object()


@sender("sla_notice", prepare=_notices, writes_as_sent=True)
async def _send_notice(rt, tenant_id: int, message: OutboxMessage, prepared=_UNSET):
    # (a batch's prepare failed: each builds its own, in a thread as the prepare did)
    body = await asyncio.to_thread(_notice, rt, tenant_id, message) if prepared is _UNSET else prepared
    if body is None:
        raise Skipped("every wait was answered meanwhile")
    if body is RECIPIENT_LEFT:
        raise Skipped("its recipient left the corp")
    wecom = await rt.clients.get(tenant_id)
    # a try that may have reached them (no answer, or its outcome not recorded) is sent again
    # as it was (the minutes waited of then), which WeCom's duplicate check drops if it did
    # (no step joins a card once tried, firing._cards_of, so the card of then tells all of
    # its steps)
    await send_app_message(wecom, {**body, "agentid": wecom.agent_id}, message)


# -------------------------------------------------------------------------------- calls


def _call_plan(rt, tenant_id: int, message: OutboxMessage) -> dict | None:
    now = rt.now()
    callee = message.payload["callee"]
    with rt.db.tenant_session(tenant_id) as s:
        ids = message.payload.get("escalations", [])
        fired_at: dict[int, datetime | None] = {}  # each wait's latest step on the call
        for wait_id, at in s.execute(
            select(SlaEscalation.wait_id, SlaEscalation.fired_at).where(SlaEscalation.id.in_(ids))
        ):
            fired_at[wait_id] = max(filter(None, (at, fired_at.get(wait_id))), default=None)
        wait_ids = set(fired_at)
        waits = list(
            s.scalars(
                select(SlaWait)
                .join(Conversation, Conversation.id == SlaWait.conversation_id)
                .where(
                    SlaWait.closed_at.is_(None),
                    Conversation.awaiting_msgid == SlaWait.msgid,
                    or_(SlaWait.staff_userid == callee, SlaWait.id.in_(wait_ids or {0})),
                )
            )
        )
        # snoozed now, or since the step fired though the snooze is over (the call held by
        # quiet hours, or waiting for a retry): it was seen and held back all the same
        waits = [
            w for w in waits if not queries.left_out(w.snoozed_until, w.snoozed_at, fired_at.get(w.id), now)
        ]
        call = s.get(SlaCall, message.payload["call"])
        if not any(w.id in wait_ids for w in waits):
            if call is not None:
                call.status, call.error = "skipped", queries.CALL_NOT_NEEDED
            return None
        if members_left(s, [callee]):  # since the step fired: held by quiet hours, or retried
            call.status, call.error = "skipped", queries.CALLEE_LEFT
            return None
        book = service.PolicyBook(s)
        cooldown = max(book.by_id(w.policy_id).call_cooldown_s for w in waits if w.id in wait_ids)
        other = s.execute(
            select(SlaCall.status)
            .where(
                SlaCall.callee_userid == callee,
                SlaCall.id != call.id,
                or_(
                    and_(SlaCall.status == "queued", SlaCall.provider != ""),
                    queries.placed_since(now - timedelta(seconds=cooldown)),
                ),
            )
            .limit(1)
        ).scalar()
        # this step fired while another call to them was being placed (firing could not know
        # it would ring): once it has, it covers this one; the phone rang twice within seconds
        if other == "queued":
            return {"call": call.id, "after": now + timedelta(seconds=rt.settings.voice_timeout_s + 1)}
        if other == "placed":
            call.status, call.error = "skipped", queries.CALL_JUST_RUNG
            return None
        call.waits = len(waits)
        # the waits it speaks of: a step whose wait it left out reads so on the board however
        # the wait is snoozed after it rang (queries.deliveries)
        call.told_waits = sorted(w.id for w in waits)
        numbers = select(Staff.call_phone, Staff.mobile, Staff.name).where(Staff.userid == callee)
        own, synced, name = s.execute(numbers).first() or ("", "", "")
        mobile = own or synced or ""  # the number set in Siyu first, then WeCom's as synced
        # by each wait's policy clock: business time where it counts that (a call on Monday
        # for Friday evening's question tells the minutes of business time, not 63 hours)
        longest = max(book.waited_s(book.by_id(w.policy_id), w.started_at, now) for w in waits)
    minutes = max(1, int(longest // 60))
    return {
        "call": call.id,
        "callee": callee,
        "callee_name": name or callee,
        "mobile": mobile,
        "params": [str(len(waits)), str(minutes)],
        # "longest", not "all of them": with several waits, the others are younger
        "text": f"您有{len(waits)}位客户在等待回复，最长已等{minutes}分钟，请尽快处理",
    }


CALL_OUTCOME_UNKNOWN = queries.CALL_OUTCOME_UNKNOWN


def _call_failed(session: Session, message: OutboxMessage, error: str) -> None:
    call = session.get(SlaCall, message.payload.get("call"))
    if call is not None:
        call.status, call.error = "failed", error[:2000]


def _mark_call(rt, tenant_id: int, call_id: int, **fields) -> None:
    with rt.db.tenant_session(tenant_id) as s:
        call = s.get(SlaCall, call_id)
        for name, value in fields.items() if call is not None else ():
            setattr(call, name, value)


NEVER = "never"  # _call_hold's answer for a call its policy lets no call ring
UNKNOWN = "unknown"  # and for one an earlier try handed to the provider, with no answer


def _call_hold(rt, tenant_id: int, message: OutboxMessage) -> datetime | str | None:
    """When a call that would ring in its policy's quiet hours may ring (firing holds a step
    back by them, but a failed call comes back by the outbox's own backoff, and a queued one
    may go minutes after its step); None when it may ring now. NEVER, with the call recorded
    so, when the policy lets no call ring (saved before such policies were refused): put off
    to its next shift, which the quiet hours hold again, the call sat pending for ever, and
    as one still to ring covered every later call step to its callee. UNKNOWN, with the call
    recorded so, when an earlier try handed it to the provider and got no answer (killed
    meanwhile, or timed out): it may have rung, and a phone rings at most once for a call; in
    quiet hours it had been put off till their end, the board promising a call that never
    rings."""
    with rt.db.tenant_session(tenant_id) as s:
        call = s.get(SlaCall, message.payload.get("call"))
        if call is not None and call.status == "queued" and call.provider:
            call.status, call.error = "failed", CALL_OUTCOME_UNKNOWN
            return UNKNOWN
        policy_id = s.scalar(
            select(SlaWait.policy_id)
            .join(SlaEscalation, SlaEscalation.wait_id == SlaWait.id)
            .where(SlaEscalation.id.in_(message.payload.get("escalations", []) or [0]))
            .limit(1)
        )
        book = service.PolicyBook(s)
        policy = book.by_id(policy_id)
        until = queries.call_held_until(policy, rt.now(), service.tenant_timezone(s), book.calendar)
        if until is None or not queries.calls_never_ring(policy):
            return until
        if call is not None:
            call.status, call.error = "never", queries.CALL_NEVER
        return NEVER


@sender("sla_call", on_dead=_call_failed)
async def _send_call(rt, tenant_id: int, message: OutboxMessage):
    # the database in threads, never on the event loop the worker's other loops share
    hold = await asyncio.to_thread(_call_hold, rt, tenant_id, message)
    if hold == NEVER:
        raise Skipped("its policy's shifts all lie in its quiet hours: no call rings")
    if hold == UNKNOWN:
        raise Permanent(CALL_OUTCOME_UNKNOWN)
    if hold is not None:
        raise Deferred(hold)
    plan = await asyncio.to_thread(_call_plan, rt, tenant_id, message)
    if plan is None:
        raise Skipped(
            "no call needed: every wait answered, the callee left or was just rung (the call's row says)"
        )
    if "after" in plan:
        raise Deferred(plan["after"])
    provider = provider_for(rt)
    if provider is None:
        reason = "未开通语音电话（服务器未设置 SIYU_VOICE_PROVIDER）"
        await asyncio.to_thread(_mark_call, rt, tenant_id, plan["call"], status="skipped", error=reason)
        raise Skipped("voice calls are off")
    mobile = plan["mobile"]
    if not mobile:  # not in Siyu's profile: ask WeCom (answered for older apps only)
        try:
            app = (await rt.clients.get(tenant_id)).app
            mobile = (await app.user_get(plan["callee"])).get("mobile", "")
        except WeComError as exc:
            # retrying for an hour cannot change these answers: say so now, on the board
            if exc.errcode in MEMBER_UNKNOWN_ERRCODES:
                why = f"企业微信查不到 {plan['callee_name']}（已离职或不在应用可见范围），取不到手机号"
            elif isinstance(exc, WeComNotPermitted):
                why = f"应用无权读取 {plan['callee_name']} 的手机号"
            else:
                raise
            where = "请在私域「成员」页填写其接电话提醒的手机号"
            raise Permanent(f"{why}：{where} / {exc.describe()} (errcode {exc.errcode})") from exc
    if not mobile:
        raise Permanent(f"{plan['callee_name']} 没有手机号：请在私域「成员」页填写其接电话提醒的手机号")
    context = f"siyu:{tenant_id}:call:{plan['call']}"
    # handed to the provider, committed before it rings: a try that gets no answer leaves it
    # so, and the next does not ring again (_call_hold)
    await asyncio.to_thread(_mark_call, rt, tenant_id, plan["call"], provider=provider.name)
    try:
        call_id = await provider.call(VoiceCall(mobile, plan["params"], plan["text"], context))
    except (Retry, Permanent):  # the provider answered that it placed nothing
        await asyncio.to_thread(_mark_call, rt, tenant_id, plan["call"], provider="")
        raise
    except NoAnswer:
        # it may have rung, and no try rings it again (_call_hold): failed now, not shown as
        # being retried till a next try only to say so
        raise Permanent(CALL_OUTCOME_UNKNOWN) from None
    placed_at = rt.now()

    def record(s: Session) -> None:
        call = s.get(SlaCall, plan["call"])
        call.status, call.call_id, call.provider, call.placed_at = "placed", call_id, provider.name, placed_at

    return record
