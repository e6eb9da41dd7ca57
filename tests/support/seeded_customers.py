"""Customers, tags and timeline events added to a tenant for a test, removed after it."""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from datetime import UTC, datetime

from siyu.customers.models import Customer, Follow, FollowTag, Tag, TimelineEvent
from tests.web.conftest import remove_customers


@contextmanager
def seeded(db, tenant_id: int):
    """`add(name, follows=[dict(...)], first_added_at=...)` -> id; removed at the end."""
    made: list[int] = []
    made_tags: list[int] = []

    def add(name: str, follows=(), first_added_at: datetime | None = None) -> int:
        with db.tenant_session(tenant_id) as s:
            c = Customer(
                external_userid="wmH" + secrets.token_hex(8),
                name=name,
                first_added_at=first_added_at or datetime.now(UTC),
            )
            s.add(c)
            s.flush()
            for f in follows:
                f = dict(f)
                tag_ids = f.pop("tag_ids", [])
                fl = Follow(customer_id=c.id, **f)
                s.add(fl)
                s.flush()
                for t in tag_ids:
                    s.add(FollowTag(follow_id=fl.id, tag_id=t))
            made.append(c.id)
            return c.id

    def tag(name: str, deleted: bool = False) -> int:
        with db.tenant_session(tenant_id) as s:
            t = Tag(wecom_id="tagH" + secrets.token_hex(6), name=name, group_name="测试组", deleted=deleted)
            s.add(t)
            s.flush()
            made_tags.append(t.id)
            return t.id

    def event(customer_id: int, kind: str, at: datetime, staff: str = "", **data) -> int:
        with db.tenant_session(tenant_id) as s:
            e = TimelineEvent(customer_id=customer_id, kind=kind, at=at, staff_userid=staff, data=data)
            s.add(e)
            s.flush()
            return e.id

    add.tag = tag
    add.event = event
    try:
        yield add
    finally:
        remove_customers(db, tenant_id, made)
        if made_tags:
            from sqlalchemy import delete

            with db.tenant_session(tenant_id) as s:
                s.execute(delete(Tag).where(Tag.id.in_(made_tags)))
