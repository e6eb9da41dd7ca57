"""Callback intake: the only writer of callback_events.

Verification and decryption happen before anything is stored, so a bad signature, an
undecryptable body or malformed XML stores nothing. The raw event is stored under its
digest with INSERT ... ON CONFLICT DO NOTHING, so WeCom's retries change nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import and_, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.customers.welcome import queued_welcome
from siyu.db import Database, utcnow
from siyu.db.crypto import SecretBox
from siyu.intake.models import CallbackEvent
from siyu.notify import outbox
from siyu.tenancy.models import Tenant
from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto
from siyu.wecom.events import CallbackEvent as ParsedEvent
from siyu.wecom.events import MalformedXML, envelope_encrypt, parse_event


class UnknownTenant(LookupError):
    pass


class ChannelNotConfigured(LookupError):
    """The tenant exists but has no key pair for this callback URL (e.g. no archive callback)."""


class UnexpectedEvent(ValueError):
    """A trusted event delivered to a callback URL that does not take that kind of event."""


ARCHIVE_KINDS = frozenset({"msgaudit_notify"})
RELOAD_S = 1.0  # cached keys that fail are reread at most this often per URL
KEYS_TTL_S = 60.0  # cached keys are reread this often anyway (another process may have replaced them)
T = TypeVar("T")


@dataclass(frozen=True)
class Channel:
    """One of a tenant's callback URLs: which sealed Token/EncodingAESKey verify it."""

    name: str
    token_column: str
    key_column: str


# The self-built app / 客户联系 callback: /wecom/callback/{slug}
MAIN = Channel("main", "callback_token_sealed", "encoding_aes_key_sealed")
# The 会话存档 app's own callback: /wecom/callback/{slug}/archive, msgaudit_notify only
ARCHIVE = Channel("archive", "archive_callback_token_sealed", "archive_encoding_aes_key_sealed")


@dataclass(frozen=True)
class TenantKeys:
    tenant_id: int
    crypto: WeComCrypto
    # Event kinds this URL takes: None = any, else only these; `refused` are never taken.
    accepted: frozenset[str] | None = None
    refused: frozenset[str] = frozenset()

    def check(self, kind: str, channel: Channel) -> None:
        if kind in self.refused:
            raise UnexpectedEvent(f"{kind} belongs at the archive callback URL (…/archive), not here")
        if self.accepted is not None and kind not in self.accepted:
            raise UnexpectedEvent(
                f"the {channel.name} callback URL takes only {', '.join(sorted(self.accepted))}"
            )


class CallbackIntake:
    def __init__(self, db: Database, box: SecretBox):
        self.db = db
        self.box = box
        self._keys: dict[tuple[str, str], TenantKeys] = {}
        self._reloaded_at: dict[tuple[str, str], float] = {}
        self._loaded_at: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def keys(self, slug: str, channel: Channel = MAIN) -> TenantKeys:
        found = self._keys.get((slug, channel.name))
        # kept a minute at most: a pair replaced by another process (`siyu tenant archive-callback
        # --replace`) stops being accepted here soon, not at this server's next restart
        if found and time.monotonic() - self._loaded_at.get((slug, channel.name), 0.0) < KEYS_TTL_S:
            return found
        if "\x00" in slug:  # no slug holds one, and PostgreSQL refuses it in a query (a 500)
            raise UnknownTenant(slug)
        with self.db.system_session() as s:
            tenant = s.scalar(select(Tenant).where(Tenant.slug == slug))
            if tenant is None:
                raise UnknownTenant(slug)
            token_sealed, key_sealed = (
                getattr(tenant, channel.token_column),
                getattr(tenant, channel.key_column),
            )
            if not (token_sealed and key_sealed):
                raise ChannelNotConfigured(f"{slug} has no {channel.name} callback Token/EncodingAESKey")
            has_archive_pair = bool(
                tenant.archive_callback_token_sealed and tenant.archive_encoding_aes_key_sealed
            )
            keys = TenantKeys(
                tenant.id,
                WeComCrypto(self.box.open(token_sealed), self.box.open(key_sealed), tenant.corp_id),
                # The archive URL takes msgaudit_notify only. The main URL takes it too while
                # the tenant has no archive pair of its own (tenants from before 0002, whose
                # 会话存档 app may still post to the main URL with the main pair).
                accepted=ARCHIVE_KINDS if channel is ARCHIVE else None,
                refused=ARCHIVE_KINDS if channel is MAIN and has_archive_pair else frozenset(),
            )
        with self._lock:
            self._keys[(slug, channel.name)] = keys
            self._loaded_at[(slug, channel.name)] = time.monotonic()
        return keys

    def forget(self, slug: str) -> None:
        """Drop cached keys after a tenant's credentials change."""
        with self._lock:
            for key in [k for k in self._keys if k[0] == slug]:
                self._keys.pop(key, None)

    def cached(self, slug: str, channel: Channel = MAIN) -> bool:
        """Whether this URL's keys are at hand without the database (read within the minute)."""
        key = (slug, channel.name)
        return key in self._keys and time.monotonic() - self._loaded_at.get(key, 0.0) < KEYS_TTL_S

    def _verified(
        self, slug: str, channel: Channel, use: Callable[[WeComCrypto], T], reread: bool = True
    ) -> tuple[TenantKeys, T]:
        """`use(crypto)` with the cached keys; if they fail, once more with keys read afresh:
        another process (`siyu tenant archive-callback`, another server) may have changed
        them (not with `reread` off: the caller is on the event loop, where the database is not
        waited on). At most one reread per URL per second, so bad signatures cannot flood the
        database."""
        keys = self.keys(slug, channel)
        try:
            return keys, use(keys.crypto)
        except CallbackCryptoError:
            if not reread:
                raise
            now, cache_key = time.monotonic(), (slug, channel.name)
            with self._lock:
                if now - self._reloaded_at.get(cache_key, -RELOAD_S) < RELOAD_S:
                    raise
                self._reloaded_at[cache_key] = now
                self._keys.pop(cache_key, None)
            fresh = self.keys(slug, channel)
            if (fresh.crypto.token, fresh.crypto.key) == (keys.crypto.token, keys.crypto.key):
                raise
            return fresh, use(fresh.crypto)

    def verify_url(
        self, slug: str, msg_signature: str, timestamp: str, nonce: str, echostr: str, channel: Channel = MAIN
    ) -> str:
        return self._verified(
            slug, channel, lambda c: c.verify_url(msg_signature, timestamp, nonce, echostr)
        )[1]

    def open(
        self,
        slug: str,
        body: bytes,
        msg_signature: str,
        timestamp: str,
        nonce: str,
        channel: Channel = MAIN,
        reread: bool = True,
    ):
        """Verify, decrypt, parse and check the kind; raises before anything is stored."""
        encrypted = envelope_encrypt(body)
        keys, inner = self._verified(
            slug, channel, lambda c: c.decrypt_callback(encrypted, msg_signature, timestamp, nonce), reread
        )
        # Stored as text: bytes that are not UTF-8 had been stored with replacement characters
        # (names garbled; UTF-16 kept NULs, which PostgreSQL refuses) and could not be read back.
        try:
            text = inner.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedXML("the decrypted event is not UTF-8 (WeCom sends UTF-8)") from None
        if "\x00" in text:
            raise MalformedXML("the decrypted event holds NUL characters (WeCom sends UTF-8 XML)")
        event = parse_event(inner)
        keys.check(event.kind, channel)
        return keys.tenant_id, inner, event

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
                "xml": inner.decode("utf-8"),  # open() refused any other
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
        once = dialect.insert(CallbackEvent).on_conflict_do_nothing(index_elements=["tenant_id", "digest"])
        again = [v for v in values if _rereads(v["kind"])]
        with self.db.engine.begin() as conn:
            if len(again) < len(values):  # (the plain statement for the rest: a third of the cost)
                conn.execute(once, [v for v in values if not _rereads(v["kind"])])
            if again:
                conn.execute(_run_again(dialect, now), again)
            if welcomes:
                conn.execute(outbox.insert_statement(conn.dialect.name), welcomes)


def _run_again(dialect, now):
    """The INSERT of events of a kind that reads WeCom (REREAD_KINDS): the same XML again, a
    retry of WeCom's or a change of its own in the same second, runs the event again, once more
    after the run under way if one is (mark_done)."""
    e = CallbackEvent
    running = and_(e.status == "pending", e.claimed_until.is_not(None), e.claimed_until > now)
    return dialect.insert(e).on_conflict_do_update(
        index_elements=["tenant_id", "digest"],
        set_={
            "again": running,
            "status": "pending",
            "received_at": now,  # (a directory sync since the first does not cover this one)
            "due_at": case((running, e.due_at), else_=now),
            "attempts": case((e.status == "pending", e.attempts), else_=0),
        },
    )


def mark_done(session: Session, event_id: int) -> None:
    """Called inside a handler's own transaction, so the effect and 'done' commit together. An
    event whose XML came again while it ran (`again`) is to run once more, at once."""
    e, now = CallbackEvent, utcnow()
    session.execute(
        update(e)
        .where(e.id == event_id)
        .values(
            status=case((e.again, "pending"), else_="done"),
            due_at=case((e.again, now), else_=e.due_at),
            again=False,
            processed_at=now,
            claimed_until=None,
            last_error="",
        )
    )


# Kinds whose handler reads WeCom's state of what changed (the XML names it, no more): two
# changes in one second come as the same XML, each to be read (edits, a group's update, tags,
# the directory). The rest run once: an add, a loss, a welcome code, a group's creation.
REREAD_KINDS = ("change_external_contact/edit_external_contact", "change_external_chat/update")
REREAD_PREFIXES = ("change_external_tag/", "change_contact/")


def _rereads(kind: str) -> bool:
    return kind in REREAD_KINDS or kind.startswith(REREAD_PREFIXES)


# ---------------------------------------------------------------- failed events


def failed_events(session: Session, tenant_id: int | None = None, limit: int = 500) -> list[tuple]:
    """Events given up (status failed), newest first, with their tenant's slug:
    (CallbackEvent, slug). A system session: `tenant_id` None lists every tenant's."""
    query = (
        select(CallbackEvent, Tenant.slug)
        .join(Tenant, Tenant.id == CallbackEvent.tenant_id)
        .where(CallbackEvent.status == "failed")
        .order_by(CallbackEvent.received_at.desc(), CallbackEvent.id.desc())
        .limit(limit)
    )
    if tenant_id is not None:
        query = query.where(CallbackEvent.tenant_id == tenant_id)
    return list(session.execute(query).tuples())


class NotFailed(LookupError):
    """The event named is not there, or not failed (pending or done: nothing to re-run).
    `status` is its status, None when there is no such event (or, in a tenant's session,
    none of that tenant's)."""

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


def retry_failed(session: Session, event_id: int | None = None, tenant_id: int | None = None) -> int:
    """Queue failed events again, one (`event_id`) or every one (of `tenant_id`, or of all
    tenants): due now, with a fresh round of tries. The last error stays until one succeeds.
    Returns how many; NotFailed when the one named is not a failed event."""
    query = update(CallbackEvent).where(CallbackEvent.status == "failed")
    if event_id is not None:
        query = query.where(CallbackEvent.id == event_id)
    if tenant_id is not None:
        query = query.where(CallbackEvent.tenant_id == tenant_id)
    count = session.execute(
        query.values(status="pending", due_at=utcnow(), claimed_until=None, attempts=0)
    ).rowcount
    if event_id is not None and not count:
        status = select(CallbackEvent.status).where(CallbackEvent.id == event_id)
        if tenant_id is not None:  # (another tenant's failed event had read "is failed, not failed")
            status = status.where(CallbackEvent.tenant_id == tenant_id)
        found = session.scalar(status)
        raise NotFailed(
            f"no callback event {event_id}" if found is None else f"event {event_id} is {found}, not failed",
            found,
        )
    return count
