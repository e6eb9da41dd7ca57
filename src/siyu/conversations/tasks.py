"""Pulling the conversation archive: continuously from each tenant's last seq, woken by
`msgaudit_notify` and by a timer otherwise.

The cursor row is locked while a batch is stored (FOR UPDATE on PostgreSQL, the write lock
before it is read on SQLite), so two pulls never store the same batch twice nor move the
cursor back, and it moves only once the whole batch is stored, so a crash mid-pull neither
skips nor repeats a seq. On PostgreSQL a large batch is stored in parts at once, by
conversation, each in a transaction of its own (`store_batch`). What a pull stores is
indexed for search by the time it returns (see `_SearchIndexing`).

Every database call here runs in a thread (siyu.db.threads), never on the event loop: the
worker's other loops share it, and a read on it during a database outage (a server gone
silent answers nothing until the connection's limits give up on it) had held back every
card and step due meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from siyu.conversations import groups, search, service
from siyu.conversations.models import ArchiveCursor, ArchiveKey
from siyu.customers.service import from_unix
from siyu.db import bulk
from siyu.db.threads import in_system, in_tenant
from siyu.intake.service import mark_done
from siyu.tenancy import tasks as tenancy_tasks
from siyu.tenancy.models import Tenant
from siyu.tenancy.service import renames
from siyu.wecom.archive import storable_text
from siyu.wecom.finance_sdk import ArchiveError

log = logging.getLogger(__name__)
BATCH = 1000  # messages a fetch asks for: the most GetChatData returns
# A backlog is stored this many fetched batches at a time, in one transaction (a store): a
# conversation in it is read and written once per store instead of once per batch, and a
# wait opened and answered within the store is written closed, its step never written and
# then cancelled. benchmarks/ingest.py at its default (100,000 messages pulled 10,000 at a
# time), ratio to the baseline on SQLite: 0.24-0.27 one batch a store, 0.39-0.43 ten (five:
# 0.37 with 20,000 a round); PostgreSQL, 40,000 pulled 10,000 at a time: 0.55-0.66 against
# 0.93-0.98.
# A store of ten batches holds SQLite's write lock for about a second; the trickle after a
# notify is one short batch, stored at once.
BATCHES_PER_STORE = 10
# PostgreSQL stores a batch of at least PARTS_FROM messages in PARTS parts at once, each on
# its own connection and thread: while one part's Python works, the server works on the
# other's statements. Ingest of 100,000 messages on a 2-core machine (benchmarks/ingest.py
# --parts): ratio to the baseline 0.48 in one part, 0.52-0.54 in two (runs alternating),
# 0.53 in three, 0.51 in four. A small batch (the trickle after a notify) is not worth a
# second transaction.
PARTS = 2
PARTS_FROM = 200
# The parts of a batch beyond its first (which its pull's own thread stores). They never
# wait for a pull's other parts or its cursor, so a queue here only delays, never blocks.
_PART_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="siyu-ingest")
# One thread a process indexes stored messages for search (see _SearchIndexing).
_INDEXER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-search")
# A pull waits at most this long for search at its end: the next tenant's pull, and the
# escalations waiting for it, must not wait for a search index that is behind.
SEARCH_WAIT_S = 10.0
# The timer pulls this many tenants at once: one catching up on a backlog (a corp just
# connected, a day stuck) must not hold up the others' pulls, and the escalations that wait
# for them to be pulled past their due time.
PULLS_AT_ONCE = 4
# A tenant whose pull failed (a wrong secret or key, WeCom down) is tried by the timer again
# after twice as many polls each time, at most this long: it neither fills the log every few
# seconds nor takes the other tenants' turns. A msgaudit_notify still pulls it at once.
FAILING_WAIT_MAX_S = 60.0


def classifier():
    from siyu.insights.needs_reply import default_classifier

    return default_classifier()


def private_keys(rt, tenant_id: int) -> dict[int, str]:
    with rt.db.tenant_session(tenant_id) as s:
        return {k.version: rt.box.open(k.private_sealed) for k in s.scalars(select(ArchiveKey))}


def proven_versions(rt, tenant_id: int) -> list[int]:
    """The key versions that have decrypted messages."""
    with rt.db.tenant_session(tenant_id) as s:
        return list(s.scalars(select(ArchiveKey.version).where(ArchiveKey.used_at.is_not(None))))


def source_for(rt, tenant: Tenant):
    """The tenant's archive source, by configuration; None when archiving is off."""
    from siyu.wecom import archive

    if tenant.archive_mode == "off" or not tenant.archive_secret_sealed:
        return None
    secret = rt.box.open(tenant.archive_secret_sealed)
    keys, proven = private_keys(rt, tenant.id), proven_versions(rt, tenant.id)
    if tenant.archive_mode == "sdk":
        proxy, passwd = archive.sdk_proxy()
        return archive.SdkArchiveSource(
            tenant.archive_sdk_path,
            tenant.corp_id,
            secret,
            keys,
            proxy,
            passwd=passwd,
            proven_versions=proven,
        )
    return archive.HttpArchiveSource(
        rt.settings.wecom_base_url, tenant.corp_id, secret, keys, proven_versions=proven
    )


class NotStuckThere(ValueError):
    pass


def skip_stuck(rt, tenant_id: int, seq: int) -> str:
    """Move the cursor past the message the pull is stuck at (`seq`, named by its last error:
    one the archive cannot decrypt, as a lost old private key leaves): the admin's choice to
    lose that one message rather than everything after it, which WeCom keeps a few days only.
    Refused for any other seq. Returns the error that stopped the pull."""
    with rt.db.tenant_session(tenant_id) as s:
        cursor = _cursor(s)
        stuck = cursor.last_error
        named = f"[seq {seq}," in stuck or f"[seq {seq}]" in stuck
        if not named or cursor.seq >= seq:
            raise NotStuckThere(
                f"the archive is not stuck at seq {seq} "
                f"(cursor at {cursor.seq}; last error: {stuck or 'none'})"
            )
        log.warning("tenant %s: archive seq %s skipped by hand (%s)", tenant_id, seq, stuck)
        cursor.seq, cursor.last_error = seq, f"{rt.now():%Y-%m-%d %H:%M:%S} UTC · skipped seq {seq} by hand"
        return stuck


def _cursor(session) -> ArchiveCursor:
    """The tenant's archive cursor, locked for the rest of the transaction: FOR UPDATE on
    PostgreSQL; on SQLite its one write lock, taken before the read (a write that changes
    nothing takes it), so that a second pull of the tenant reads the cursor only once the
    first has committed, never moving it back."""
    q = select(ArchiveCursor).where(ArchiveCursor.source == "archive")
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    else:
        session.connection().exec_driver_sql("UPDATE archive_cursors SET id = id WHERE 0")
    cursor = session.scalar(q)
    if cursor is None:  # the tenant's first pull; another may be making it at the same time
        bulk.insert_rows(session, ArchiveCursor, [{"source": "archive", "seq": 0}], conflict=["source"])
        cursor = session.scalar(q)
    return cursor


async def store_batch(
    rt, tenant_id: int, items: list, fetched_at, drained: bool, parts: int | None = None
) -> dict:
    """Store what was fetched (up to BATCHES_PER_STORE batches: "the batch" below) and then
    move the cursor, in the transaction that holds its lock. `parts`: how many parts to
    store the batch in at once, on PostgreSQL (by default PARTS for a large batch, else 1).
    A part that fails leaves the cursor where it was; the parts that committed are skipped
    as stored when the batch is pulled again, and only what is stored moves a conversation,
    so nothing is lost or counted twice.

    It runs on a thread: waiting for the cursor's lock (another pull of the tenant holds it)
    must not hold up the event loop, which that pull may need to finish, and the worker's
    other work goes on meanwhile."""
    counts = await asyncio.to_thread(
        _store_or_name_the_bad_one, rt, tenant_id, items, fetched_at, drained, parts
    )
    rt.db.wrote(counts["stored"])
    rt.archive_moved()  # steps held back until the archive came this far may fire now
    return counts


def _store_batch(rt, tenant_id: int, items: list, fetched_at, drained: bool, parts: int | None) -> dict:
    with rt.db.tenant_session(tenant_id) as s:
        cursor = _cursor(s)
        fresh = [i for i in items if i.seq > cursor.seq]  # another worker may have stored some
        parts = parts_for(rt.db, len(fresh), parts)
        split = (
            [part for part in service.partition(fresh, parts, renames(s)) if part] if parts > 1 else [fresh]
        )
        if len(split) > 1:
            counts = _store_in_parts(rt, tenant_id, split)
        elif fresh:
            counts = service.ingest(s, fresh, classifier().classify)
        else:
            counts = {"stored": 0, "duplicates": 0}
        if fresh:
            cursor.seq = max(i.seq for i in fresh)
            used = {(i.publickey_ver, i.key_fingerprint) for i in fresh if getattr(i, "key_fingerprint", "")}
            service.keys_used(s, used, fetched_at)
        # what a part of the backlog tells of how far the archive is pulled: not a message
        # stamped after the fetch (a sender's clock ahead), which had marked it pulled up to now
        # with the rest of the backlog, replies among it, still in WeCom
        ahead = int(fetched_at.timestamp() * 1000)
        times = (int(t) for i in fresh if (t := i.message.get("msgtime")))
        newest = max((t for t in times if drained or t <= ahead), default=None)
        candidates = [cursor.pulled_until] if cursor.pulled_until is not None else []
        lagged = fetched_at - timedelta(seconds=rt.settings.archive_lag_s)
        if newest is not None:  # a time made once, not once a message
            # never past what the archive could hold when we asked: a message stamped ahead of
            # the clock (a sender's clock) had let steps fire before replies could be pulled
            candidates.append(min(service.ms_to_datetime(newest), lagged))
        if drained:  # everything the archive held when we asked is stored, up to its lag
            candidates.append(lagged)
        cursor.pulled_until = max(candidates) if candidates else None
        cursor.pulled_at, cursor.last_error = fetched_at, ""
    return counts


# Failures that may be one message's doing: a value the database refused or could not take
# (too long, out of range, of a type it does not hold), or one ingest could not read. Not the
# database being away or busy, nor a part of Siyu failing as a whole (a crashed classifier).
_VALUE_ERRORS = (
    sa_exc.DataError,
    sa_exc.IntegrityError,
    sa_exc.ProgrammingError,
    TypeError,
    ValueError,
    AttributeError,
    LookupError,
    ArithmeticError,
)


def _about_a_message(exc: Exception) -> bool:
    if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError):
        exc = exc.orig  # raised before the database saw the statement
    return isinstance(exc, _VALUE_ERRORS)


class _DryRun(Exception):
    pass


def _store_or_name_the_bad_one(
    rt, tenant_id: int, items: list, fetched_at, drained: bool, parts: int | None
) -> dict:
    """`_store_batch`; when that fails for a reason that may be one message's (a value ingest
    or the database cannot take, which nobody foresaw), the batch is stored in halves, in
    order, down to the first message that cannot be stored alone, and the pull stops at it
    with an ArchiveError naming its seq, as at one that cannot be decrypted: `siyu archive
    skip` can then give it up. A failure the next message shares is no message's: it is
    raised as it came, and nothing after the messages stored before it is."""
    try:
        return _store_batch(rt, tenant_id, items, fetched_at, drained, parts)
    except Exception as exc:
        if not _about_a_message(exc) or len(items) < 2:  # (one message: nothing to tell it by)
            raise
        failed = exc
    counts = {"stored": 0, "duplicates": 0}
    mid = len(items) // 2
    found = _first_unstorable(rt, tenant_id, items[:mid], fetched_at, counts) or _first_unstorable(
        rt, tenant_id, items[mid:], fetched_at, counts, mid
    )
    if found is None:  # the halves stored: the trouble was the batch as a whole
        _store_batch(rt, tenant_id, [], fetched_at, drained, 1)
        return counts
    index, error = found
    if index + 1 >= len(items) or not _stores_alone(rt, tenant_id, items[index + 1]):
        raise failed
    bad = items[index]
    log.warning("tenant %s: archive seq %s cannot be stored: %r", tenant_id, bad.seq, error)
    said = (str(error).splitlines() or [""])[0]  # (not the SQL a database error goes on with)
    why = f"消息无法保存，可跳过这一条 / the message cannot be stored: {type(error).__name__}: {said}"
    raise ArchiveError(10002, why[:600], retryable=False, seq=bad.seq, msgid=bad.msgid) from error


def _first_unstorable(rt, tenant_id: int, items: list, fetched_at, counts: dict, start: int = 0):
    """Store `items` in order, in halves where they fail; (index, error) of the first that
    fails alone, those before it stored (`counts` adds up what was); None when all are."""
    try:
        stored = _store_batch(rt, tenant_id, items, fetched_at, False, 1)
    except Exception as exc:
        if not _about_a_message(exc):
            raise
        if len(items) == 1:
            return start, exc
        mid = len(items) // 2
        return _first_unstorable(rt, tenant_id, items[:mid], fetched_at, counts, start) or _first_unstorable(
            rt, tenant_id, items[mid:], fetched_at, counts, start + mid
        )
    for key in counts:
        counts[key] += stored[key]
    return None


def _stores_alone(rt, tenant_id: int, item) -> bool:
    """Whether `item` could be stored by itself (tried in a transaction rolled back)."""
    try:
        with rt.db.tenant_session(tenant_id) as s:
            service.ingest(s, [item], classifier().classify)
            raise _DryRun
    except _DryRun:
        return True
    except Exception:  # noqa: BLE001 - the answer is no
        return False


def parts_for(db, messages: int, asked: int | None = None) -> int:
    """How many parts a batch of `messages` is stored in: `asked` on PostgreSQL, else PARTS
    for a large batch there; always one on SQLite, which has one writer (parts would only
    wait for each other)."""
    if not db.is_postgres:
        return 1
    if asked is not None:
        return asked
    return PARTS if messages >= PARTS_FROM else 1


def _store_part(rt, tenant_id: int, items: list) -> dict:
    with rt.db.tenant_session(tenant_id) as s:
        return service.ingest(s, items, classifier().classify)


def _store_in_parts(rt, tenant_id: int, parts: list[list]) -> dict:
    """Each part in its own transaction: the first on this thread, the others on
    _PART_THREADS. All of them finish (or fail) before this returns, so the cursor never
    moves while a part is still being stored."""
    others = [_PART_THREADS.submit(_store_part, rt, tenant_id, part) for part in parts[1:]]
    try:
        done = [_store_part(rt, tenant_id, parts[0])]
    finally:
        wait(others)
    done += [future.result() for future in others]  # raises the first part's error, if any
    return {k: sum(outcome[k] for outcome in done) for k in ("stored", "duplicates")}


def _index(db, tenant_id: int) -> None:
    try:
        search.index_backlog(db, tenant_id)
    except Exception:  # noqa: BLE001 - search must never hold up the archive: the batch stays queued
        log.exception("indexing tenant %s's messages for search failed", tenant_id)


class _SearchIndexing:
    """Indexes for search what a pull stores (PostgreSQL; SQLite's ingest does it itself), on
    another thread, with its own connection and server process, while the puller stores the
    next batch."""

    def __init__(self, db, tenant_id: int) -> None:
        self.db, self.tenant_id = db, tenant_id
        self.running: Future | None = None

    def stored(self) -> None:
        if self.db.is_postgres and (self.running is None or self.running.done()):
            self.running = _INDEXER.submit(_index, self.db, self.tenant_id)  # a running one takes it too

    async def finish(self) -> None:
        """Once this returns, everything stored is searchable (one more round takes a batch
        stored after the thread last looked, and any a crash left queued), unless indexing
        takes over SEARCH_WAIT_S: the thread then goes on, and the next pull waits again.
        (A batch another worker has claimed is that worker's to index.)"""
        if not self.db.is_postgres:
            return

        async def rounds() -> None:
            if self.running is not None:
                await asyncio.wrap_future(self.running)
            await asyncio.wrap_future(_INDEXER.submit(_index, self.db, self.tenant_id))

        try:
            await asyncio.wait_for(rounds(), SEARCH_WAIT_S)
        except TimeoutError:
            log.warning("search indexing for tenant %s is behind; the pull returns", self.tenant_id)


async def pull(rt, tenant_id: int, source=None, parts: int | None = None) -> dict:
    """Pull until the archive has nothing newer; returns what was stored. `parts`: see
    `store_batch`.

    A backlog is fetched up to BATCHES_PER_STORE batches, one after another, and stored
    together. While they are being stored, the next ones are fetched and decrypted (RSA,
    and the SDK's own decryption, run outside Python's GIL: the two overlap). They are
    fetched from where the store before them ends, but stored only once that one is, so the
    cursor moves in order; when a store fails, what was fetched after it is dropped."""
    own = source is None
    if own:
        source = await asyncio.to_thread(_own_source, rt, tenant_id)
        if source is None:
            return {"stored": 0, "duplicates": 0}
    total = {"stored": 0, "duplicates": 0}
    indexing = _SearchIndexing(rt.db, tenant_id)

    async def fetch(after: int) -> tuple[list, datetime, bool | ArchiveError]:
        """The next store's messages, when the last of them was fetched, and whether that
        fetch drained the archive; or, when a message cannot be read, those before it and
        the error, raised once they are stored (the archive is not drained: nothing after
        the bad message is known, so no step may fire for want of a reply behind it)."""
        items: list = []
        for _ in range(BATCHES_PER_STORE):
            fetched_at = rt.now()
            try:
                got = await source.fetch(after, BATCH)
            except ArchiveError as exc:
                if not (items or exc.before):
                    raise
                return items + exc.before, fetched_at, exc
            items += got
            if len(got) < BATCH:
                return items, fetched_at, True
            after = got[-1].seq
        return items, fetched_at, False

    try:
        fetched = await fetch(await asyncio.to_thread(_pulled_up_to, rt, tenant_id))
        while fetched is not None:
            items, fetched_at, drained = fetched
            if isinstance(drained, ArchiveError):  # stored up to the message that fails, then said
                await store_batch(rt, tenant_id, items, fetched_at, False, parts)
                indexing.stored()
                raise drained
            storing = store_batch(rt, tenant_id, items, fetched_at, drained, parts)
            if drained:
                counts, fetched = await storing, None
            else:
                counts, fetched = await asyncio.gather(storing, fetch(items[-1].seq), return_exceptions=True)
                for outcome in (counts, fetched):  # a failed store first: nothing after it counts
                    if isinstance(outcome, BaseException):
                        raise outcome
            indexing.stored()
            total = {k: total[k] + counts[k] for k in total}
        return total
    except Exception as exc:
        # when, too: the last pull that worked is shown beside it, and may be hours ago
        error = f"{rt.now():%Y-%m-%d %H:%M:%S} UTC · {type(exc).__name__}: {exc}"[:2000]
        error = storable_text(error)  # (naming a message's msgid: one that could not be stored either)
        await asyncio.to_thread(_pull_failed, rt, tenant_id, error)
        raise
    finally:
        try:
            await indexing.finish()
        finally:
            if own:
                await source.aclose()


def _own_source(rt, tenant_id: int):
    with rt.db.system_session() as s:
        return source_for(rt, s.get(Tenant, tenant_id))


def _pulled_up_to(rt, tenant_id: int) -> int:
    with rt.db.tenant_session(tenant_id) as s:  # a read: store_batch locks the cursor
        return s.scalar(select(ArchiveCursor.seq).where(ArchiveCursor.source == "archive")) or 0


def _pull_failed(rt, tenant_id: int, error: str) -> None:
    with rt.db.tenant_session(tenant_id) as s:
        _cursor(s).last_error = error


class ImportStopped(Exception):
    """An import that stored some of its file and then could not go on (not a ValueError: the
    command says "nothing imported" of those)."""


async def import_file(rt, tenant_id: int, path, report=None) -> dict:
    """`siyu archive import`: already-decrypted messages from a JSON-lines file (a migration
    from another archive). The file is checked whole first: a bad line refuses it
    (ValueError naming the line) and nothing is stored. Then it is stored like a pulled
    backlog (BATCHES_PER_STORE batches a transaction), and indexed for search. The archive's
    cursor does not move (the file's seqs are its own), and a message is stored once (by
    msgid), so importing a file again, or one that overlaps what the archive pulled, stores
    only what is new. Escalation steps of old messages are skipped as stale when they come
    due. `report(done, total)` follows the progress."""
    from siyu.wecom.archive import JsonLinesArchiveSource

    items = await asyncio.to_thread(JsonLinesArchiveSource(path).read)
    total = {"stored": 0, "duplicates": 0}
    done = 0
    for part in _by_chat(items, BATCH * BATCHES_PER_STORE):
        try:
            counts = await asyncio.to_thread(_store_part, rt, tenant_id, part)
        except Exception as exc:
            if not any(total.values()):
                raise
            raise ImportStopped(  # (not "nothing imported": the parts before it are stored)
                f"{total['stored']} messages stored, then a part of {len(part)} could not be"
                f" ({type(exc).__name__}: {exc}); importing the file again stores only the rest"
            ) from exc
        rt.db.wrote(counts["stored"])
        total = {k: total[k] + counts[k] for k in total}
        done += len(part)
        if report is not None:
            report(done, len(items))
    await asyncio.to_thread(_index, rt.db, tenant_id)  # PostgreSQL's queued search tokens
    return total


def _by_chat(items: list, size: int) -> Iterator[list]:
    """The file's messages in parts of about `size`, each chat's in one part, in the file's order
    within it: a question at the end of one part was an open wait, escalated by the worker (cards,
    a call) before the next part brought its answer. A chat longer than a part is split."""
    chats: dict[str | None, list] = {}
    for item in items:  # (ingest's reading of whose chat a message is: a consent event is the
        # customer's own, addressed to them, its member in its payload)
        chats.setdefault(service._chat_of(item.message), []).append(item)
    part: list = []
    for chat in chats.values():
        if part and len(part) + len(chat) > size:
            yield part
            part = []
        for start in range(0, len(chat), size):
            part.extend(chat[start : start + size])
            if len(part) >= size:
                yield part
                part = []
    if part:
        yield part


@dataclass
class _Pulls:
    """A tenant's pulls in this process: one at a time, and a request made while one runs is
    served by the next pull to begin (a storm of notifies after downtime had each fetched and
    decrypted the same backlog)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    asked: int = 0  # requests so far
    served: int = 0  # requests made before the last pull began


_pulls: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # by event loop, then tenant
# the timer's failing tenants: (failures in a row, when to try again), by event loop, then tenant
_failing: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# by event loop: (its PULLS_AT_ONCE slots, the timer's pulls in flight by tenant)
_timer: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def pull_once(rt, tenant_id: int) -> dict:
    """`pull`, unless a pull of the tenant that began after this was asked for has run (or
    is running) meanwhile: then that one's work stands for it."""
    loop = asyncio.get_running_loop()
    state = _pulls.setdefault(loop, {}).setdefault(tenant_id, _Pulls())
    state.asked += 1
    mine = state.asked
    async with state.lock:
        if state.served >= mine:
            return {"stored": 0, "duplicates": 0}
        state.served = state.asked
        done = await pull(rt, tenant_id)
        _failing.get(loop, {}).pop(tenant_id, None)  # it works again: the timer is back on it
        return done


async def on_msgaudit_notify(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    stored = (await pull_once(rt, tenant_id))["stored"]
    await in_tenant(rt.db, tenant_id, mark_done, event_id)
    if stored:
        await _name_new_groups(rt, tenant_id)


# Group chats looked up after a pull, at most: a backlog's groups are named over a few pulls
# rather than holding up the next tenant's pull.
GROUP_LOOKUPS_PER_PULL = 20
# How long a lookup after a pull may wait for WeCom's pacing: not at all. WeCom busy or
# limiting (45009) leaves the groups to the next pull at once; waiting the limit out (retries
# over a minute and more) had held up the timer's round, every tenant's next pull with it.
AFTER_PULL_MAX_WAIT_S = 0.0


async def look_up_groups(
    rt,
    tenant_id: int,
    chat_ids: list[str],
    unknown_raises: bool = False,
    max_wait: float | None = None,
    change: dict | None = None,
) -> int:
    """Ask WeCom for these group chats' names and owners, one call each, and store what it
    says: externalcontact/groupchat/get for a customer group; for a room it does not know
    there, the archive's msgaudit/groupchat/get (a group of staff only; with the 会话存档
    secret, when archiving is set up). WeCom busy or unreachable: stop (raise), the next
    round asks again. A room neither knows is stored as unknown, or raises with
    `unknown_raises` (a customer group's info may lag its change_external_chat event by
    seconds). `max_wait`: how long each call may wait out WeCom's pacing and limits (the
    client's default when None). `change`: the change_external_chat event asked for (who
    left, with a del_member); refused for good (not busy or limited), those an add_member or
    del_member names join or leave as it says, without the answer. Returns how many were
    looked up."""
    from siyu.wecom.errors import RETRY_ERRCODES, WeComError

    client = (await rt.clients.get(tenant_id)).contact
    patience = {"max_wait": max_wait} if max_wait is not None else {}
    archive, asked_for_archive = None, False  # the 会话存档 secret's client, once a room needs it
    done = 0
    try:
        for chat_id in chat_ids:
            try:
                chat = (await client.groupchat_get(chat_id, **patience)).get("group_chat") or {}
            except WeComError as exc:
                if exc.errcode in RETRY_ERRCODES:
                    raise
                if groups.told_by_event(change):
                    # asking again gives the same answer, and the event tells who came or left
                    log.warning(
                        "tenant %s: groupchat/get refused group %s for good (%s); the %s of %s "
                        "is taken from the change_external_chat event alone",
                        tenant_id,
                        chat_id,
                        exc,
                        change.get("UpdateDetail"),
                        change.get("MemChangeList"),
                    )
                    why, now = exc.describe(), rt.now()
                    await in_tenant(rt.db, tenant_id, groups.record_event_only, chat_id, change, why, now)
                    done += 1
                    continue
                if not unknown_raises:
                    if not asked_for_archive:
                        archive = await _archive_client(rt, tenant_id)
                        asked_for_archive = True
                    room = await _staff_room(archive, chat_id, patience) if archive else None
                    if room is not None:
                        await in_tenant(rt.db, tenant_id, groups.record_internal, chat_id, room, rt.now())
                        done += 1
                        continue
                # a create or rename that WeCom no longer knows because the group was
                # dismissed since (its dismiss came first) is done with, not retried
                if not await in_tenant(rt.db, tenant_id, _unknown, chat_id, exc, unknown_raises, rt.now()):
                    raise
            else:
                chat = {**chat, "chat_id": chat_id}
                await in_tenant(rt.db, tenant_id, groups.record, chat, rt.now(), change)
            done += 1
    finally:
        if archive is not None:
            await archive.aclose()
    return done


def _unknown(s, chat_id: str, exc, unknown_raises: bool, now) -> bool:
    """Store a room WeCom does not know as unknown; False (nothing stored) where the lookup
    must be retried instead: `unknown_raises`, and the group not dismissed since."""
    if unknown_raises and not groups.is_dismissed(s, chat_id):
        return False
    groups.record_unknown(s, chat_id, exc.describe(), now)
    return True


def _archive_secret(s, box, tenant_id: int) -> tuple[str, str] | None:
    """The tenant's corp id and 会话存档 secret, or None when archiving has no secret."""
    tenant = s.get(Tenant, tenant_id)
    if tenant is None or not tenant.archive_secret_sealed:
        return None
    return tenant.corp_id, box.open(tenant.archive_secret_sealed)


async def _archive_client(rt, tenant_id: int):
    """A client with the tenant's 会话存档 secret, or None when archiving has no secret. The
    tenant's row is read in a thread; the client is made on the loop it will run on."""
    from siyu.wecom.client import WeComClient

    found = await in_system(rt.db, _archive_secret, rt.box, tenant_id)
    if found is None:
        return None
    corp_id, secret = found
    return WeComClient(corp_id, secret, base_url=rt.settings.wecom_base_url)


async def _staff_room(archive, roomid: str, patience: dict) -> dict | None:
    """msgaudit/groupchat/get's answer for a group of staff only; None if it does not know the
    room either (busy or unreachable raises)."""
    from siyu.wecom.errors import RETRY_ERRCODES, WeComError

    try:
        return await archive.msgaudit_groupchat_get(roomid, **patience)
    except WeComError as exc:
        if exc.errcode in RETRY_ERRCODES:
            raise
        return None


async def _name_new_groups(rt, tenant_id: int) -> None:
    """After a pull that stored messages: name the group chats not named yet, and ask again
    about rooms unknown for long (see siyu.conversations.groups)."""
    try:
        chat_ids = await in_tenant(rt.db, tenant_id, groups.to_look_up, rt.now(), GROUP_LOOKUPS_PER_PULL)
        if chat_ids:
            await look_up_groups(rt, tenant_id, chat_ids, max_wait=AFTER_PULL_MAX_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - a name is cosmetic: the archive and escalations go on
        log.warning("naming group chats of tenant %s failed: %s", tenant_id, exc)


# Groups whose members were never read (stored before Siyu kept them), read again per tenant
# each round of the worker's, at most: groupchat/get's limit (10,000 a minute per corp,
# REFERENCE 17) is shared with every other lookup, so a backlog goes at under 1 % of it.
MEMBERS_READ_PER_ROUND = 50
GROUP_GONE = {40050}  # groupchat/get: no such group (chat_id invalid) — the emulator's choice too
MEMBERS_READ_EVERY_S = 60.0


async def read_unread_members(rt) -> None:
    """Scheduled: each tenant's customer groups whose members were never read, looked up again
    (their customers' joins land on the timeline at their join_time). WeCom busy or limiting
    leaves the rest to the next round; one tenant's trouble is logged, the others go on."""
    from siyu.wecom.errors import WeComError

    for tenant_id in await in_system(rt.db, _tenant_ids):
        try:
            chat_ids = await in_tenant(rt.db, tenant_id, groups.members_unread, MEMBERS_READ_PER_ROUND)
            for chat_id in chat_ids:
                try:
                    # a refusal leaves the group as it is (a secret or a permission being mended
                    # must not take every old group off its customers' pages) ...
                    await look_up_groups(
                        rt, tenant_id, [chat_id], unknown_raises=True, max_wait=AFTER_PULL_MAX_WAIT_S
                    )
                except WeComError as exc:
                    if exc.errcode not in GROUP_GONE:
                        raise
                    # ... but one WeCom no longer knows is stored so, else it comes first again
                    await look_up_groups(rt, tenant_id, [chat_id], max_wait=AFTER_PULL_MAX_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            why = exc.describe() if hasattr(exc, "describe") else f"{type(exc).__name__}: {exc}"
            log.warning("reading the group members of tenant %s failed: %s", tenant_id, why)


def _tenant_ids(s) -> list[int]:
    return list(s.scalars(select(Tenant.id).order_by(Tenant.id)))


# How often each tenant's 会话存档 permit list is read: WeCom tells no one when a member is
# taken off it, and their customers' waits go on escalating meanwhile.
PERMIT_READ_EVERY_S = 300.0


async def read_permit_lists(rt) -> None:
    """Scheduled: each archiving tenant's permit list (msgaudit/get_permit_user_list, with the
    会话存档 secret); a member no longer on it has their customers' waits settled
    (service.settle_unarchived). An empty list is left alone: nobody archived, nothing waits,
    and a list read wrong must not settle every wait. One tenant's trouble is logged, the
    others go on."""
    from siyu.wecom import archive as wecom_archive

    for tenant_id in (await asyncio.to_thread(_to_pull, rt))[0]:
        try:
            client = await _archive_client(rt, tenant_id)
            if client is None:
                continue
            try:
                permitted = await wecom_archive.permit_users(client)
            finally:
                await client.aclose()
            if not permitted:
                continue
            if await in_tenant(rt.db, tenant_id, service.newly_unarchived, set(permitted)):
                # a member who left is off the list too, and the staff sync may not know it yet:
                # no member taken off the archive (their customers still wait, on the board, for
                # someone to take them over)
                try:
                    await tenancy_tasks.sync_staff(rt, tenant_id)
                except Exception as exc:  # noqa: BLE001 - those off the list are settled all the same
                    log.warning("the staff sync before settling tenant %s's waits failed: %s", tenant_id, exc)
            settled = await in_tenant(rt.db, tenant_id, service.settle_unarchived, set(permitted), rt.now())
            if settled:
                log.info("tenant %s: %d waits settled, their members no longer archived", tenant_id, settled)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            why = exc.describe() if hasattr(exc, "describe") else f"{type(exc).__name__}: {exc}"
            log.warning("reading the archive's permit list of tenant %s failed: %s", tenant_id, why)


async def on_group_changed(rt, tenant_id: int, event_id: int, fields: dict) -> None:
    """change_external_chat: a customer group was created, changed (renamed, members came or
    left) or dismissed. A failed lookup raises, so the event is retried with backoff, unless
    WeCom refused it for good and the event itself names who came or left."""
    chat_id = fields.get("ChatId", "")
    if chat_id:
        if fields.get("ChangeType") == "dismiss":
            at = from_unix(fields.get("CreateTime")) if fields.get("CreateTime") else None
            await in_tenant(rt.db, tenant_id, groups.record_dismissed, chat_id, rt.now(), at)
        else:
            await look_up_groups(rt, tenant_id, [chat_id], unknown_raises=True, change=fields)
    await in_tenant(rt.db, tenant_id, mark_done, event_id)


async def pull_all(rt, wait: bool = True) -> None:
    """The timer: every tenant with archiving on, each pull a task of its own, at most
    PULLS_AT_ONCE at once in this event loop. A tenant still being pulled by an earlier round
    is left to that pull: the worker's next round had waited for the whole of the last one, so
    a tenant catching up on a backlog held up every other tenant's next pull (and the
    escalations waiting for their archives) until it was through. `wait`: return once this
    round's pulls are done (the worker does not wait: its next round comes at the next poll)."""
    tenants, queued = await asyncio.to_thread(_to_pull, rt)
    loop = asyncio.get_running_loop()
    if loop not in _timer:
        _timer[loop] = (asyncio.Semaphore(PULLS_AT_ONCE), {})
    at_once, running = _timer[loop]
    failing = _failing.setdefault(loop, {})
    now = time.monotonic()

    async def one(tenant_id: int) -> None:
        async with at_once:
            try:
                stored = (await pull_once(rt, tenant_id))["stored"]
            except Exception as exc:  # noqa: BLE001 - one tenant's archive trouble must not stop the others
                failures = failing.get(tenant_id, (0, 0.0))[0] + 1
                # (the power capped: 2**1024 is no float, and a day's failures had raised there,
                # the tenant then pulled every round)
                wait_s = min(FAILING_WAIT_MAX_S, rt.settings.archive_poll_s * 2.0 ** min(failures, 32))
                failing[tenant_id] = (failures, time.monotonic() + wait_s)
                log.warning("archive pull for tenant %s failed (again in %.0f s): %s", tenant_id, wait_s, exc)
                return
            if stored:  # only a pull that stored something can have brought a new group
                await _name_new_groups(rt, tenant_id)

    started = []
    for tenant_id in tenants:
        if failing.get(tenant_id, (0, 0.0))[1] > now or tenant_id in running:
            continue
        task = running[tenant_id] = asyncio.create_task(one(tenant_id))
        task.add_done_callback(lambda _, tenant_id=tenant_id: running.pop(tenant_id, None))
        started.append(task)
    if wait:
        await asyncio.gather(*started)
    for tenant_id in queued.difference(tenants):  # archiving turned off with batches still queued
        await asyncio.wrap_future(_INDEXER.submit(_index, rt.db, tenant_id))


def _to_pull(rt) -> tuple[list[int], set[int]]:
    """The tenants with archiving on, and those with messages queued for search."""
    with rt.db.system_session() as s:
        tenants = list(s.scalars(select(Tenant.id).where(Tenant.archive_mode != "off").order_by(Tenant.id)))
        return tenants, set(s.scalars(select(search.SearchBacklog.tenant_id).distinct()))


async def stop_pulls() -> None:
    """Cancel the timer's pulls in this event loop (the worker stops). A store under way in a
    thread is written whole all the same (it and the cursor are one transaction)."""
    running = list(_timer[loop][1].values()) if (loop := asyncio.get_running_loop()) in _timer else []
    for task in running:
        task.cancel()
    if running:
        await asyncio.wait(running)
