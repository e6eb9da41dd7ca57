"""Set-wise writes (siyu.db.bulk) keep to the session's tenant like the ORM does."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select

from siyu.conversations.models import Conversation
from siyu.db import bulk
from siyu.db.crypto import SecretBox
from siyu.tenancy.service import CorpCredentials, save_tenant
from siyu.wecom.crypto import new_encoding_aes_key


def tenant(db) -> int:
    creds = CorpCredentials("ww" + secrets.token_hex(8), 1, "a", "c", "t", new_encoding_aes_key())
    with db.system_session() as s:
        return save_tenant(s, SecretBox("k"), "t", creds, slug="b" + secrets.token_hex(4)).id


def test_bulk_writes_stamp_and_stay_within_the_tenant(db):
    a, b = tenant(db), tenant(db)
    rows = [{"key": "single:wmX:zhangsan", "kind": "single", "message_count": 0, "awaiting_msgid": ""}]
    with db.tenant_session(a) as s:
        [(a_id,)] = bulk.insert_rows(s, Conversation, rows, conflict=["key"], returning=["id"])
        assert bulk.insert_rows(s, Conversation, rows, conflict=["key"], returning=["id"]) == []  # once
    with db.tenant_session(b) as s:
        [(b_id,)] = bulk.insert_rows(s, Conversation, rows, conflict=["key"], returning=["id"])
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    change = ["message_count", "awaiting_since", "last_inbound_at"]
    with db.tenant_session(a) as s:  # b's id given from a's session changes nothing
        bulk.update_by_id(
            s,
            Conversation,
            [
                {"id": a_id, "message_count": 3, "awaiting_since": at, "last_inbound_at": None},
                {"id": b_id, "message_count": 9, "awaiting_since": at, "last_inbound_at": None},
            ],
            change,
        )
    with db.system_session() as s:
        found = {c.id: c for c in s.scalars(select(Conversation).where(Conversation.id.in_([a_id, b_id])))}
    assert (found[a_id].tenant_id, found[a_id].message_count, found[a_id].awaiting_since) == (a, 3, at)
    assert found[a_id].last_inbound_at is None
    assert (found[b_id].tenant_id, found[b_id].message_count, found[b_id].awaiting_since) == (b, 0, None)
    with db.tenant_session(a) as s:  # stored as the ORM stores times: comparisons in SQL work
        assert s.scalar(select(Conversation.id).where(Conversation.awaiting_since == at)) == a_id
        assert s.scalar(select(Conversation.id).where(Conversation.awaiting_since > at)) is None
