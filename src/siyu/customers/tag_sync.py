"""Whether a channel's tags reached WeCom, read back from their `mark_tag` outbox rows.

An add through a channel applies the channel's tags in Siyu at once and queues `mark_tag`
for WeCom. When WeCom refuses (the tag was deleted there, the customer is no longer the
member's contact) the row is retried or given up on, and the customer carries the tags in
Siyu only: the profile and the channel page say so. The row is the truth: one sent after
a refusal (a retry that got through) shows nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from siyu.customers.models import Customer, Follow, Tag
from siyu.db import utcnow
from siyu.notify.models import UNSENT, OutboxMessage
from siyu.tenancy.models import Staff

KIND = "mark_tag"
FAILED = "标签未能同步到企业微信：{error}"
RETRYING = "标签同步到企业微信失败，正在重试：{error}"
CHANNEL_DAYS = 30  # as the channel page's daily figures
CHANNEL_LISTED = 50


def key(follow_id: int, channel_id: int) -> str:
    """The dedupe key of the mark_tag a follow's channel queued (one per follow and channel)."""
    return f"{KIND}:{follow_id}:channel:{channel_id}"


def follow_id_of(dedupe_key: str) -> int | None:
    parts = dedupe_key.split(":")
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None


def _outcome(row: OutboxMessage, names: dict[str, str]) -> dict | None:
    if row.status in ("dead", "failed"):
        state, template = "failed", FAILED
    elif row.status == "pending" and row.last_error:
        state, template = "retrying", RETRYING
    else:  # sent, or not tried yet
        return None
    tags = [names.get(t, t) for t in row.payload.get("add_tag", [])]
    return {
        "state": state,
        "error": row.last_error,
        "tags": tags,
        "since": row.created_at,
        "text": template.format(error=row.last_error),
    }


def _tag_names(session: Session, rows: list[OutboxMessage]) -> dict[str, str]:
    ids = {t for r in rows for t in r.payload.get("add_tag", [])}
    if not ids:
        return {}
    return dict(session.execute(select(Tag.wecom_id, Tag.name).where(Tag.wecom_id.in_(ids))).all())


def of_follows(session: Session, follows: list[tuple[int, int | None]]) -> dict[int, dict]:
    """(follow id, channel id) -> the trouble with that follow's channel tags, where there is some."""
    keys = {key(fid, cid): fid for fid, cid in follows if cid}
    if not keys:
        return {}
    rows = list(
        session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.dedupe_key.in_(list(keys)), OutboxMessage.status != "sent"
            )
        )
    )
    names = _tag_names(session, rows)
    out = {}
    for row in rows:
        outcome = _outcome(row, names)
        if outcome is not None:
            out[keys[row.dedupe_key]] = outcome
    return out


def of_channel(session: Session, channel_id: int, visible_follow, days: int = CHANNEL_DAYS) -> dict:
    """The customers added through the channel in the last `days` whose channel tags WeCom
    refused: how many, and the newest of them with WeCom's reason. `visible_follow` is the
    viewer's scope (siyu.customers.queries.visible_follow)."""
    rows = list(
        session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.kind == KIND,
                OutboxMessage.created_at >= utcnow() - timedelta(days=days),
                text(UNSENT),  # the unsent rows' own index (ix_outbox_unsent), as it says it
                OutboxMessage.last_error != "",
                OutboxMessage.dedupe_key.like(f"{KIND}:%:channel:{int(channel_id)}"),
            )
            .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        )
    )
    by_follow = {follow_id_of(r.dedupe_key): r for r in rows}
    seen = {
        follow.id: (follow, customer)
        for follow, customer in session.execute(
            select(Follow, Customer)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Follow.id.in_([f for f in by_follow if f is not None]), visible_follow)
        )
    }
    names = _tag_names(session, rows)
    staff = dict(
        session.execute(
            select(Staff.userid, Staff.name).where(
                Staff.userid.in_({f.staff_userid for f, _ in seen.values()})
            )
        ).all()
    )
    items = []
    for follow_id, row in by_follow.items():
        outcome = _outcome(row, names) if follow_id in seen else None
        if outcome is None:
            continue
        follow, customer = seen[follow_id]
        items.append(
            {
                **outcome,
                "customer_id": customer.id,
                "customer_name": customer.name,
                "staff_userid": follow.staff_userid,
                "staff_name": staff.get(follow.staff_userid, follow.staff_userid),
                "added_at": follow.added_at,
            }
        )
    return {
        "days": days,
        "customers": len({i["customer_id"] for i in items}),
        "failed": sum(1 for i in items if i["state"] == "failed"),
        "retrying": sum(1 for i in items if i["state"] == "retrying"),
        "items": items[:CHANNEL_LISTED],
    }
