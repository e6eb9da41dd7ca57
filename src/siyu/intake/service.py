"""Callback intake: the only writer of callback_events.

Verification and decryption happen before anything is stored, so a bad signature, an
undecryptable body or malformed XML stores nothing. The raw event is stored under its
digest with INSERT ... ON CONFLICT DO NOTHING, so WeCom's retries change nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.customers.welcome import queued_welcome
from siyu.db import Database, utcnow
from siyu.db.crypto import SecretBox
from siyu.intake.models import CallbackEvent
from siyu.notify import outbox
from siyu.tenancy.models import Tenant
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.events import CallbackEvent as ParsedEvent
from siyu.wecom.events import envelope_encrypt, parse_event


class UnknownTenant(LookupError):
    pass


@dataclass(frozen=True)
class TenantKeys:
    tenant_id: int
    crypto: WeComCrypto


class CallbackIntake:
    def __init__(self, db: Database, box: SecretBox):
        self.db = db
        self.box = box
        self._keys: dict[str, TenantKeys] = {}
        self._lock = threading.Lock()

    def keys(self, slug: str) -> TenantKeys:
        found = self._keys.get(slug)
        if found:
            return found
        with self.db.system_session() as s:
            tenant = s.scalar(select(Tenant).where(Tenant.slug == slug))
            if tenant is None:
                raise UnknownTenant(slug)
            keys = TenantKeys(
                tenant.id,
                WeComCrypto(
                    self.box.open(tenant.callback_token_sealed),
                    self.box.open(tenant.encoding_aes_key_sealed),
                    tenant.corp_id,
                ),
            )
        with self._lock:
            self._keys[slug] = keys
        return keys

    def forget(self, slug: str) -> None:
        """Drop cached keys after a tenant's credentials change."""
        with self._lock:
            self._keys.pop(slug, None)

    def verify_url(self, slug: str, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        return self.keys(slug).crypto.verify_url(msg_signature, timestamp, nonce, echostr)

    def open(self, slug: str, body: bytes, msg_signature: str, timestamp: str, nonce: str):
        """Verify, decrypt and parse; raises before anything is stored."""
        keys = self.keys(slug)
        inner = keys.crypto.decrypt_callback(envelope_encrypt(body), msg_signature, timestamp, nonce)
        return keys.tenant_id, inner, parse_event(inner)

    def store(self, rows: list[tuple[int, bytes, ParsedEvent]]) -> None:
        """Store decrypted events; duplicates (same tenant and digest) are ignored."""
        if not rows:
            return
        now = utcnow()
        values = [
            {
                "tenant_id": tenant_id,
                "digest": event.digest,
                "kind": event.kind[:80],
                "xml": inner.decode("utf-8", errors="replace"),
                "received_at": now,
                "due_at": now,
                "status": "pending",
                "attempts": 0,
                "last_error": "",
            }
            for tenant_id, inner, event in rows
        ]
        # Welcome messages are queued with the event itself: WeCom's 20 s window starts now.
        welcomes = [w for tenant_id, _, event in rows if (w := queued_welcome(tenant_id, event.fields))]
        dialect = sqlite if self.db.engine.dialect.name == "sqlite" else postgresql
        stmt = dialect.insert(CallbackEvent).on_conflict_do_nothing(index_elements=["tenant_id", "digest"])
        with self.db.engine.begin() as conn:
            conn.execute(stmt, values)
            if welcomes:
                conn.execute(outbox.insert_statement(conn.dialect.name), welcomes)


def mark_done(session: Session, event_id: int) -> None:
    """Called inside a handler's own transaction, so the effect and 'done' commit together."""
    session.execute(
        update(CallbackEvent)
        .where(CallbackEvent.id == event_id)
        .values(status="done", processed_at=utcnow(), claimed_until=None, last_error="")
    )
