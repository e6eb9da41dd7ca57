"""Whether a channel's tags reached WeCom, read back from their `mark_tag` outbox rows.

An add through a channel applies the channel's tags in Siyu at once and queues `mark_tag`
for WeCom. When WeCom refuses (the tag was deleted there, the customer is no longer the
member's contact) the row is retried or given up on, and the customer carries the tags in
Siyu only: the profile and the channel page say so. The row is the truth: one sent after
a refusal (a retry that got through) shows nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ScalarSelect, String, case, cast, func, literal, select, text
from sqlalchemy.orm import Session

from siyu.customers.models import Customer, Follow, Tag
from siyu.db import utcnow
from siyu.db.base import BigId
from siyu.notify.models import UNSENT, OutboxMessage
from siyu.tenancy.models import Staff

KIND = "mark_tag"
FAILED = "标签未能同步到企业微信：{error}"
RETRYING = "标签同步到企业微信失败，正在重试：{error}"
CHANNEL_DAYS = 30  # as the channel page's daily figures
CHANNEL_LISTED = 50


def _around(channel_id: int) -> tuple[str, str]:
    """What the key of a channel's mark_tag has before and after the follow's id."""
    return f"{KIND}:", f":channel:{int(channel_id)}"


def key(follow_id: int, channel_id: int) -> str:
    """The dedupe key of the mark_tag a follow's channel queued (one per follow and channel)."""
    before, after = _around(channel_id)
    return f"{before}{follow_id}{after}"


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


def _refused(channel_id: int, days: int) -> list:
    """The channel's mark_tag rows of the last `days` that WeCom refused."""
    return [
        OutboxMessage.kind == KIND,
        OutboxMessage.created_at >= utcnow() - timedelta(days=days),
        text(UNSENT),  # the unsent rows' own index (ix_outbox_unsent), as it says it
        OutboxMessage.last_error != "",
        OutboxMessage.dedupe_key.like("%".join(_around(channel_id))),
    ]


def _follow_of(channel_id: int, visible_follow, column) -> ScalarSelect:
    """`column` of the follow the row's key names, NULL where the viewer does not see it. A
    lookup by primary key for each row, whatever the planner's statistics: as a join, or with
    the viewer's scope in its WHERE, PostgreSQL without them (tables just filled) scanned the
    agent's follows for each row instead (minutes at 66,000 rows)."""
    prefix, suffix = _around(channel_id)
    dedupe_key = OutboxMessage.dedupe_key
    middle = func.substr(dedupe_key, len(prefix) + 1, func.length(dedupe_key) - len(prefix) - len(suffix))
    return (
        select(case((visible_follow, column)))
        .where(
            Follow.id == cast(middle, BigId),
            # SQLite's cast reads "12x" as 12: the key must be exactly this follow's
            dedupe_key == literal(prefix) + cast(Follow.id, String) + literal(suffix),
        )
        .scalar_subquery()
    )


def of_channel(session: Session, channel_id: int, visible_follow, days: int = CHANNEL_DAYS) -> dict:
    """The customers added through the channel in the last `days` whose channel tags WeCom
    refused: how many, and the newest of them with WeCom's reason. `visible_follow` is the
    viewer's scope (siyu.customers.queries.visible_follow). Counted and listed in SQL: a
    channel may have more of them than a statement may carry ids."""
    refused = _refused(channel_id, days)
    pending = OutboxMessage.status == "pending"  # else failed or dead: given up on
    # per customer first: the lookup is grouped on, so made once a row (PostgreSQL copies a
    # subquery's column into each aggregate that reads it, and the lookup with it)
    customer_id = _follow_of(channel_id, visible_follow, Follow.customer_id)
    per_customer = (
        select(
            customer_id.label("customer_id"),
            func.count(case((~pending, 1))).label("failed"),
            func.count(case((pending, 1))).label("retrying"),
        )
        .where(*refused)
        .group_by(customer_id)
        .subquery()
    )
    seen = per_customer.c.customer_id.is_not(None)
    customers, failed, retrying = session.execute(
        select(
            func.count(per_customer.c.customer_id),
            func.coalesce(func.sum(case((seen, per_customer.c.failed))), 0),
            func.coalesce(func.sum(case((seen, per_customer.c.retrying))), 0),
        )
    ).one()
    follow_id = _follow_of(channel_id, visible_follow, Follow.id)
    listed = dict(
        session.execute(
            select(follow_id, OutboxMessage)
            .where(*refused, follow_id.is_not(None))
            .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
            .limit(CHANNEL_LISTED)
        ).all()
    )
    follows = {
        follow.id: (follow, customer)
        for follow, customer in session.execute(
            select(Follow, Customer)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Follow.id.in_(list(listed)))
        )
    }
    names = _tag_names(session, list(listed.values()))
    staff = dict(
        session.execute(
            select(Staff.userid, Staff.name).where(
                Staff.userid.in_({f.staff_userid for f, _ in follows.values()})
            )
        ).all()
    )
    items = []
    for follow_id, row in listed.items():
        follow, customer = follows[follow_id]
        items.append(
            {
                **_outcome(row, names),
                "customer_id": customer.id,
                "customer_name": customer.name,
                "staff_userid": follow.staff_userid,
                "staff_name": staff.get(follow.staff_userid, follow.staff_userid),
                "added_at": follow.added_at,
            }
        )
    return {"days": days, "customers": customers, "failed": failed, "retrying": retrying, "items": items}
