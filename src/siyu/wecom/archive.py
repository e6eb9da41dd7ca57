"""Conversation archive (会话内容存档, REFERENCE section 11): where archived messages come from.

An `ArchiveSource` answers `fetch(after_seq, limit)`: the decrypted messages (REFERENCE
11.3) with seq > after_seq, in seq order. Three sources:

- `SdkArchiveSource`: WeCom's finance SDK (libWeWorkFinanceSdk_C.so) over ctypes.
- `HttpArchiveSource`: the WeCom emulator, which stands in for the SDK with two
  emulator-only endpoints (chatdata over HTTP with the 会话存档 secret's token, and a
  decrypt endpoint in place of the SDK's opaque DecryptData).
- `JsonLinesArchiveSource`: already-decrypted messages, one JSON object a line (migrations).

The first two share `ChatDataPipeline`: fetch raw chatdata items (REFERENCE 11.2), RSA-
decrypt each item's `encrypt_random_key` with the tenant's private key for its
`publickey_ver` (PKCS#1 v1.5), hand that string and `encrypt_chat_msg` to the decryptor.
Only the two functions differ, so which decryptor a tenant uses is configuration.

Failures raise `ArchiveError` (SDK codes 10000-10011, readable in Chinese and English);
10001-10003 are retried a few times with backoff before they surface. A message that
cannot be decrypted fails the whole batch (its `seq` is on the error): a caller that
advanced its cursor past it would lose that message for good.

This module knows no database and no domain: it speaks WeCom, whoever answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import contextlib
import hashlib
import inspect
import json
import logging
import math
import os
import random
import re
import reprlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import getproxies, proxy_bypass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .client import DEFAULT_BASE_URL, WeComClient
from .errors import WeComError, WeComTransportError
from .finance_sdk import SDK_ERRORS, ArchiveError, FinanceSdk, answered_errcode
from .http import HttpFailure, WeComHttp

__all__ = [
    "ArchivedMessage",
    "ArchiveSource",
    "ArchiveError",
    "SDK_ERRORS",
    "MAX_LIMIT",
    "ChatDataPipeline",
    "SdkArchiveSource",
    "HttpArchiveSource",
    "JsonLinesArchiveSource",
    "EMULATOR_CHATDATA_PATH",
    "EMULATOR_DECRYPT_PATH",
    "rsa_decrypt_random_key",
    "generate_key_pair",
    "load_private_keys",
    "permit_users",
    "check_single_agree",
]

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
EMULATOR_CHATDATA_PATH = "/cgi-bin/msgaudit/emulator_get_chat_data"
EMULATOR_DECRYPT_PATH = "/cgi-bin/msgaudit/emulator_decrypt"


@dataclass
class ArchivedMessage:
    seq: int
    msgid: str
    message: dict  # the decrypted JSON of REFERENCE 11.3
    # The same JSON as the source decrypted it, when it came as text: stored verbatim, so
    # that ingest does not serialize every message again ("" when the source gave a dict).
    raw: str = field(default="", compare=False, repr=False)
    # the key pair that decrypted it: its version (0: not by key, an import) and fingerprint
    publickey_ver: int = field(default=0, compare=False)
    key_fingerprint: str = field(default="", compare=False)


@runtime_checkable
class ArchiveSource(Protocol):
    async def fetch(self, after_seq: int, limit: int = MAX_LIMIT) -> list[ArchivedMessage]:
        """Messages with seq > after_seq, in seq order, at most `limit` (<= 1000)."""
        ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------- keys

PrivateKeys = Mapping[int | str, "str | bytes | rsa.RSAPrivateKey"]


def _load_private_key(pem: str | bytes | rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    if isinstance(pem, rsa.RSAPrivateKey):
        return pem
    data = pem.encode() if isinstance(pem, str) else bytes(pem)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key (PKCS#1 or PKCS#8): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the archive private key must be an RSA key")
    return key


def key_fingerprint(public_pem: str) -> str:
    """What tells key pairs apart on the archive page: the start of the SHA-256 of the public
    key (DER); "" for none, or for what is no public key."""
    try:
        key = serialization.load_pem_public_key(public_pem.encode())
    except ValueError:
        return ""
    return _spki_digest(key)


def _spki_digest(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def load_private_keys(private_keys: PrivateKeys | None) -> dict[int, rsa.RSAPrivateKey]:
    """`{publickey_ver: PEM}` (PKCS#1 or PKCS#8, or key objects) -> loaded keys; ValueError if bad."""
    out: dict[int, rsa.RSAPrivateKey] = {}
    for ver, pem in (private_keys or {}).items():
        try:
            out[int(ver)] = _load_private_key(pem)
        except ValueError as exc:
            raise ValueError(f"private key for publickey_ver {ver}: {exc}") from None
    return out


_MIN_RANDOM_KEY = 8
_TRIES_TO_BLAME = 3  # other messages of a version tried before a failing key is called wrong
_DAMAGED = (
    "publickey_ver {ver} 的私钥解得开其他消息，这条消息的 encrypt_random_key 已损坏，可跳过"
    " / the key of publickey_ver {ver} decrypts the other messages: this one's encrypt_random_key"
    " is damaged; skip it"
)


def _version(item: Mapping[str, Any]) -> int:
    try:
        return int(item.get("publickey_ver") or 0)
    except (TypeError, ValueError):
        return 0


def rsa_decrypt_random_key(
    encrypt_random_key_b64: str, private_key_pem: str | bytes | rsa.RSAPrivateKey
) -> str:
    """The chatdata item's random key: base64 -> RSA PKCS#1 v1.5 decrypt -> ASCII string."""
    key = _load_private_key(private_key_pem)
    try:
        cipher = base64.b64decode(encrypt_random_key_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ArchiveError(10008, "encrypt_random_key is not base64", retryable=False) from None
    mismatch = ArchiveError(
        10007,
        "the private key does not decrypt encrypt_random_key: wrong key pair for this publickey_ver",
        retryable=False,
    )
    try:
        plain = key.decrypt(cipher, padding.PKCS1v15())
    except ValueError:
        raise mismatch from None
    # OpenSSL 3.2+ may answer a wrong key with random bytes (implicit rejection) instead of
    # an error. The real random key is a printable ASCII string of a few dozen characters;
    # about 0.3% of the random answers are 1-7 printable bytes, so a floor of 8 is needed
    # for a wrong key to be named as such (the chance falls to about 2 in a million).
    if len(plain) < _MIN_RANDOM_KEY or not all(0x20 < b < 0x7F for b in plain):
        raise mismatch
    return plain.decode("ascii")


def generate_key_pair(bits: int = 2048) -> tuple[str, str]:
    """A new archive key pair `(private_pem, public_pem)`, both PKCS#1 PEM ("BEGIN RSA ...")
    as WeCom's admin console expects; upload the public one, keep the private one."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    )
    return private_pem, public_pem


# ---------------------------------------------------------------------------- pipeline

# RSA-decrypting a message's random key costs about 0.35 ms of CPU, nine tenths of fetching
# it through the SDK (benchmarks/archive_pull.py). OpenSSL does it outside Python's GIL, so a
# batch's keys are decrypted in slices on threads at once, one a core.
_RSA_THREAD_COUNT = min(8, os.cpu_count() or 1)
_RSA_THREADS = ThreadPoolExecutor(max_workers=_RSA_THREAD_COUNT, thread_name_prefix="siyu-rsa")
_RSA_SLICE = 64  # keys a thread takes at least (a notify's trickle stays on its own thread)

FetchChatData = Callable[[int, int], "Awaitable[list[dict]] | list[dict]"]
DecryptData = Callable[[str, str], "Awaitable[dict | str] | dict | str"]


def _check_limit(limit: int) -> int:
    limit = int(limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise ArchiveError(10000, f"limit must be 1..{MAX_LIMIT}, got {limit}", retryable=False)
    return limit


def _archived(plain: dict | str | bytes, seq: int, msgid: str) -> ArchivedMessage:
    """The decrypted message (a dict, or JSON text kept as `raw`) -> ArchivedMessage."""
    if isinstance(plain, dict):
        message, raw = plain, ""
    else:
        try:
            raw = plain.decode("utf-8") if isinstance(plain, bytes) else plain
            message = json.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError both
            message = None
        if not isinstance(message, dict):
            raise ArchiveError(10006, "the decrypted message is not a JSON object", seq=seq, msgid=msgid)
    message, raw = storable(message, raw)
    # cleaned as the body is (a lone surrogate, a NUL): the store refused it, and the pull stopped
    msgid = storable_text(msgid if msgid.strip() else str(message.get("msgid") or ""))
    msgid = _clipped(msgid, _LONGEST["msgid"])
    if not msgid.strip():  # stored once by msgid: a batch's blank ones had been kept as one, the rest lost
        why = "消息没有 msgid / the message has no msgid (WeCom gives every message one)"
        raise ArchiveError(10002, why, retryable=False, seq=seq, msgid=msgid)
    at = message.get("msgtime", message.get("time"))
    # none, or none a date holds: stored as of 1970 (a wait opened then), or ingest failing with
    # no seq named
    if not _is_ms(at):
        why = f"消息时间无效 / msgtime {reprlib.repr(at)} is no send time in milliseconds"
        raise ArchiveError(10002, why, retryable=False, seq=seq, msgid=msgid)
    return ArchivedMessage(seq, msgid, message, raw)


def _is_ms(value) -> bool:
    try:
        # one in seconds (10 digits) is refused as the import refuses it: it had been stored
        # as a message of January 1970, opening a wait there and skewing first-response figures
        return _MS_FROM <= int(value) < _MS_UNTIL
    except (TypeError, ValueError, OverflowError):  # (JSON's Infinity, or 1e400)
        return False


# What PostgreSQL cannot store, in a message's JSON text: NUL, a lone surrogate (escaped, or in
# the text itself); an escaped pair (an emoji, as ASCII-only JSON writes it) is fine.
_UNSTORABLE = re.compile(
    r"\\u0000|\x00|[\ud800-\udfff]"
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
# Identifiers and how long the columns they are stored in are (WeCom's own are shorter): a
# longer value would fail its whole batch on PostgreSQL. The import refuses one, a pull cuts it.
_LONGEST = {"msgid": 128, "from": 64, "user": 64, "roomid": 64, "msgtype": 32}
_LONGEST_ACTION = 8  # send | recall | switch
# Bodies ingest reads as JSON objects.
_BODIES = ("revoke", "doc", "info")
# (body, key, longest) of the ids ingest reads inside bodies.
_IDS_IN_BODIES = (
    ("revoke", "pre_msgid", _LONGEST["msgid"]),
    ("agree", "userid", _LONGEST["from"]),
    ("disagree", "userid", _LONGEST["from"]),
)


def storable(message: dict, raw: str = "") -> tuple[dict, str]:
    """The message as the database can store it, its `raw` JSON kept when it can be. A message
    PostgreSQL would refuse failed its whole batch, and the pull stopped there for good: text
    it cannot hold is cleaned (NUL dropped, a lone surrogate replaced), an identifier longer
    than its column is cut and made unique again, a body that is not a JSON object is read as
    one (a text's bare string as its content), a value that is not text becomes text."""
    if _UNSTORABLE.search(raw or json.dumps(message, ensure_ascii=False)):
        message = _cleaned(message)
        raw = json.dumps(message, ensure_ascii=False) if raw else ""
    fixes = {}
    for name, longest in _LONGEST.items():
        value = message.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > longest):
            fixes[name] = _clipped(str(value), longest)
    tolist = message.get("tolist")
    if tolist is not None and not _userids(tolist):
        users = tolist if isinstance(tolist, list) else [tolist]
        fixes["tolist"] = [_clipped(str(u), _LONGEST["from"]) for u in users]
    action = message.get("action")
    if action is None and "action" in message:
        fixes["action"] = "send"  # (a null read as the key left out; the column has to hold something)
    elif action is not None and (not isinstance(action, str) or len(action) > _LONGEST_ACTION):
        fixes["action"] = str(action)[:_LONGEST_ACTION]  # none WeCom sends: kept for the record only
    if message.get("msgtype", "") is None:
        fixes["msgtype"] = ""
    kind = fixes.get("msgtype", message.get("msgtype"))
    for name in (kind, *_BODIES):
        if name and name in message and not isinstance(message[name], dict):
            value = message[name]
            text = "" if value is None else str(value)
            fixes[name] = {"content": text} if kind == "text" and name == kind else {}
    # the ids inside bodies that ingest looks up and stores: the recalled message's (cut as its
    # own msgid was, so that the recall still finds it) and a consent event's staff member
    for name, key, longest in _IDS_IN_BODIES:
        body = fixes.get(name, message.get(name))
        value = body.get(key) if isinstance(body, dict) else None
        if value is not None and (not isinstance(value, str) or len(value) > longest):
            fitted = _clipped(str(value), longest) if isinstance(value, str | int) else ""
            fixes[name] = {**body, key: fitted}
    return ({**message, **fixes} if fixes else message), raw


def _userids(tolist) -> bool:
    """Is `tolist` a list of userids that fit their column?"""
    return isinstance(tolist, list) and all(isinstance(u, str) and len(u) <= _LONGEST["from"] for u in tolist)


def storable_text(value: str) -> str:
    """Text PostgreSQL can hold: NUL dropped, a lone surrogate replaced."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _cleaned(value):
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if isinstance(value, dict):
        return {_cleaned(k): _cleaned(v) for k, v in value.items()}
    return value


def _clipped(value: str, longest: int) -> str:
    """`value` if it fits, else its head and a hash of the whole: unique, and the same each time."""
    if len(value) <= longest:
        return value
    digest = hashlib.sha1(value.encode("utf-8", "replace")).hexdigest()[:8]
    return f"{value[: longest - 9]}~{digest}"


def _ours(task: asyncio.Task) -> bool:
    """Whether the task runs on this thread's event loop: only then may it be awaited or
    cancelled here (a source used from several threads leaves another's to finish)."""
    try:
        return task.get_loop() is asyncio.get_running_loop()
    except RuntimeError:
        return False


class ChatDataPipeline:
    """chatdata items -> ArchivedMessages.

    `fetch_chatdata(after_seq, limit)` returns raw chatdata items (REFERENCE 11.2);
    `decrypt_data(encrypt_key, encrypt_chat_msg)` returns the message (dict or JSON text).
    Either may be a coroutine function; plain functions are taken to block and run in a
    worker thread (a batch's decryption in one thread; its RSA keys on several, see
    `random_keys`). Both raise `ArchiveError`; retryable ones are retried `retries` times
    with exponential backoff (`backoff_base` doubling up to `backoff_max`, jittered).
    `private_keys`: `{publickey_ver: PEM}`.
    """

    def __init__(
        self,
        fetch_chatdata: FetchChatData,
        decrypt_data: DecryptData,
        private_keys: PrivateKeys,
        *,
        retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        concurrency: int = 8,
        proven_versions: Iterable[int] = (),
    ) -> None:
        self._fetch_chatdata = fetch_chatdata
        self._decrypt_data = decrypt_data
        self.private_keys = load_private_keys(private_keys)
        # versions whose key has decrypted messages: one of theirs that fails is damaged, and
        # asking for the key pair again (10007) would send the admin after the wrong thing
        self.proven_versions = set(proven_versions)
        self._fingerprints: dict[int, str] = {}
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = max(1, concurrency)
        self._random = random.Random()
        # GetChatData for the batch after the last full one: (after_seq, limit, its task)
        self._ahead: tuple[int, int, asyncio.Task] | None = None

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    async def _retrying(self, call: Callable[[], Awaitable[Any]]) -> Any:
        attempt = 0
        while True:
            try:
                return await call()
            except ArchiveError as exc:
                if not exc.retryable or attempt >= self.retries:
                    raise
                attempt += 1
                delay = self._delay(attempt)
                log.info("archive call failed (%s); retry %d in %.2fs", exc.code, attempt, delay)
                await asyncio.sleep(delay)

    def _retrying_sync(self, call: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return call()
            except ArchiveError as exc:
                if not exc.retryable or attempt >= self.retries:
                    raise
                attempt += 1
                time.sleep(self._delay(attempt))

    async def _fetch_items(self, after_seq: int, limit: int) -> list[dict]:
        fn = self._fetch_chatdata
        if inspect.iscoroutinefunction(fn):
            items = await self._retrying(lambda: fn(after_seq, limit))
        else:
            items = await asyncio.to_thread(self._retrying_sync, lambda: fn(after_seq, limit))
            if inspect.isawaitable(items):  # a plain function that returned a coroutine
                items = await items
        try:
            items = sorted((dict(i) for i in items or ()), key=lambda i: int(i["seq"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(10002, f"chatdata item without a numeric seq ({exc})") from None
        return [i for i in items if int(i["seq"]) > after_seq]

    def _by_key(self, message: ArchivedMessage, item: Mapping[str, Any]) -> ArchivedMessage:
        """The message, marked with the key pair that decrypted it (random_key found it by
        version): the store marks that very key used, not one put under its version since."""
        with contextlib.suppress(TypeError, ValueError):
            message.publickey_ver = int(item.get("publickey_ver") or 0)
        ver = message.publickey_ver
        key = self.private_keys.get(ver)
        if key is not None:
            if ver not in self._fingerprints:
                self._fingerprints[ver] = _spki_digest(key.public_key())
            message.key_fingerprint = self._fingerprints[ver]
        return message

    def random_key(self, item: Mapping[str, Any]) -> str:
        """The RSA-decrypted random key of one chatdata item (ArchiveError 10007 if no key)."""
        seq, msgid = int(item["seq"]), str(item.get("msgid") or "")
        ver = _version(item)
        key = self.private_keys.get(ver)
        if key is None:
            raise ArchiveError(
                10007,
                f"no private key for publickey_ver {ver}: upload that key pair "
                f"(known versions: {sorted(self.private_keys) or 'none'})",
                retryable=False,
                seq=seq,
                msgid=msgid,
            )
        try:
            random_key = rsa_decrypt_random_key(str(item.get("encrypt_random_key") or ""), key)
        except ArchiveError as exc:
            code, detail = exc.code, f"publickey_ver {ver}: {exc.detail}"
            if code == 10007 and ver in self.proven_versions:
                code, detail = 10006, _DAMAGED.format(ver=ver)
            raise ArchiveError(code, detail, retryable=False, seq=seq, msgid=msgid) from None
        self.proven_versions.add(ver)
        return random_key

    def random_keys(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """The random keys of a batch's items (blocking), decrypted on _RSA_THREADS in
        slices; the error of the first item that fails, in order, is raised."""
        try:
            return self._random_keys(items)
        except ArchiveError as exc:
            raise self._blamed(exc, items) from None

    def _blamed(self, exc: ArchiveError, items: Sequence[Mapping[str, Any]]) -> ArchiveError:
        """A key that fails on the first message of its version may fail on that message alone:
        where it decrypts another of the batch, the message is damaged (10006), not the key
        wrong. Blamed on the key, the admin was sent to replace one that works, and a key made
        anew decrypts nothing WeCom sealed before."""
        failed = next((i for i in items if exc.code == 10007 and int(i["seq"]) == exc.seq), None)
        ver = _version(failed) if failed is not None else None
        if ver not in self.private_keys or ver in self.proven_versions:
            return exc
        others = [i for i in items if i is not failed and _version(i) == ver][:_TRIES_TO_BLAME]
        for other in others:
            with contextlib.suppress(ArchiveError):
                rsa_decrypt_random_key(str(other.get("encrypt_random_key") or ""), self.private_keys[ver])
                self.proven_versions.add(ver)
                return ArchiveError(
                    10006, _DAMAGED.format(ver=ver), retryable=False, seq=exc.seq, msgid=exc.msgid
                )
        return exc

    def _random_keys(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        slices = max(1, min(_RSA_THREAD_COUNT, len(items) // _RSA_SLICE))
        if slices == 1:
            return [self.random_key(i) for i in items]
        size = -(-len(items) // slices)
        parts = [
            _RSA_THREADS.submit(lambda part: [self.random_key(i) for i in part], items[at : at + size])
            for at in range(0, len(items), size)
        ]
        return [key for part in parts for key in part.result()]

    def _decrypt_batch_sync(self, items: list[dict]) -> list[ArchivedMessage]:
        out = []
        for item, key in zip(items, self.random_keys(items), strict=True):
            seq, msgid = int(item["seq"]), str(item.get("msgid") or "")
            try:
                plain = self._retrying_sync(
                    lambda k=key, i=item: self._decrypt_data(k, str(i.get("encrypt_chat_msg") or ""))
                )
            except ArchiveError as exc:
                raise _at_message(exc, seq, msgid) from None
            out.append(self._by_key(_archived(plain, seq, msgid), item))
        return out

    async def _decrypt_batch_async(self, items: list[dict]) -> list[ArchivedMessage]:
        keys = await asyncio.to_thread(self.random_keys, items)
        gate = asyncio.Semaphore(self.concurrency)
        fn = self._decrypt_data

        async def one(item: dict, key: str) -> ArchivedMessage:
            seq, msgid = int(item["seq"]), str(item.get("msgid") or "")
            async with gate:
                try:
                    plain = await self._retrying(lambda: fn(key, str(item.get("encrypt_chat_msg") or "")))
                except ArchiveError as exc:
                    raise _at_message(exc, seq, msgid) from None
            return self._by_key(_archived(plain, seq, msgid), item)

        return list(await asyncio.gather(*(one(i, k) for i, k in zip(items, keys, strict=True))))

    async def fetch(self, after_seq: int, limit: int = MAX_LIMIT) -> list[ArchivedMessage]:
        """Messages with seq > after_seq, decrypted, in seq order, at most `limit`.

        After a full batch, the next batch's chatdata is asked for at once (GetChatData is a
        call over the network), while this one is decrypted."""
        after_seq, limit = max(0, int(after_seq)), _check_limit(limit)
        items = (await self._chatdata(after_seq, limit))[:limit]
        if not items:
            return []
        if len(items) == limit:
            self._read_ahead(int(items[-1]["seq"]), limit)
        try:
            return await self._decrypt_batch(items)
        except ArchiveError as exc:
            failed = exc
        # a message that cannot be read (its seq named): those before it go with the error
        while True:
            before = [i for i in items if failed.seq is not None and int(i["seq"]) < failed.seq]
            if not before or failed.retryable:
                raise failed
            self.stop_reading_ahead()
            try:
                failed.before = await self._decrypt_batch(before)
            except ArchiveError as earlier:  # (decrypted at once, a later one may fail first)
                failed, items = earlier, before
                continue
            raise failed

    async def _decrypt_batch(self, items: list[dict]) -> list[ArchivedMessage]:
        if inspect.iscoroutinefunction(self._decrypt_data):
            return await self._decrypt_batch_async(items)
        return await asyncio.to_thread(self._decrypt_batch_sync, items)

    def _read_ahead(self, after_seq: int, limit: int) -> None:
        self.stop_reading_ahead()
        task = asyncio.ensure_future(self._fetch_items(after_seq, limit))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its error is not ours
        self._ahead = (after_seq, limit, task)

    async def _chatdata(self, after_seq: int, limit: int) -> list[dict]:
        """The chatdata items after `after_seq`: what the read-ahead got, when it asked for
        these and came back full; else asked now. A short answer is never taken: it may be
        older than the caller's fetch, and a caller counts everything up to the start of a
        fetch that came back short as pulled (see siyu.conversations.tasks)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and _ours(ahead[2]):
            seq, wanted, task = ahead
            if (seq, wanted) == (after_seq, limit):
                try:
                    items = await task
                except Exception:  # noqa: BLE001 - asked again below, where an error counts
                    items = []
                if len(items) >= limit:
                    return items
            else:
                task.cancel()
        return await self._fetch_items(after_seq, limit)

    def stop_reading_ahead(self) -> None:
        """Drop the read-ahead, if any (the source is closing, or asked elsewhere)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and _ours(ahead[2]):
            ahead[2].cancel()


def _at_message(exc: ArchiveError, seq: int, msgid: str) -> ArchiveError:
    """A decrypt's error, its retries spent: one of that message (named by seq, so that the
    messages before it are stored and it may be skipped), or, where the network or WeCom failed
    (10001-10003), of none: the next pull tries again (named, it had been offered to `siyu
    archive skip`, and a message that was fine was lost)."""
    if exc.retryable:
        return exc
    return ArchiveError(exc.code, exc.detail, retryable=False, seq=seq, msgid=msgid)


# ---------------------------------------------------------------------------- sources


def sdk_proxy(host: str = "qyapi.weixin.qq.com") -> tuple[str | None, str | None]:
    """The (proxy, "user:pass") GetChatData should go through: the one HTTPS_PROXY (or
    ALL_PROXY) names, unless NO_PROXY covers WeCom, as Siyu's HTTP calls do (a fixed egress
    proxy is how a server gets the trusted IP WeCom asks for). The SDK takes credentials
    apart from the address."""
    found = getproxies()
    proxy = found.get("https") or found.get("all")
    if not proxy or proxy_bypass(host):
        return None, None
    parts = urlsplit(proxy)
    if parts.username is None:
        return proxy, None
    address = parts.netloc.rpartition("@")[2]  # (an IPv6 host keeps its brackets)
    passwd = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return urlunsplit(parts._replace(netloc=address)), passwd


class SdkArchiveSource:
    """WeCom's finance SDK over ctypes (`lib_path` = libWeWorkFinanceSdk_C.so).

    The SDK handle is created and Init'ed once, on the first fetch; blocking SDK calls run
    in worker threads. `proxy` ("socks5://host:port" or "http://...") and `passwd`
    ("user:pass") are handed to GetChatData; `timeout` is its timeout in seconds.
    """

    def __init__(
        self,
        lib_path: str | os.PathLike[str],
        corp_id: str,
        secret: str,
        private_keys: PrivateKeys,
        proxy: str | None = None,
        timeout: int = 10,
        *,
        passwd: str | None = None,
        retries: int = 3,
        backoff_base: float = 0.5,
        proven_versions: Iterable[int] = (),
    ) -> None:
        if not corp_id or not secret:
            raise ValueError("corp_id and the 会话存档 secret are required")
        self.lib_path = os.fspath(lib_path)
        self.corp_id = corp_id
        self._secret = secret
        self.proxy = proxy or None
        self.passwd = passwd or None
        self.timeout = int(timeout)
        self._sdk: FinanceSdk | None = None
        self._init_lock = threading.Lock()
        self._closed = False
        self.pipeline = ChatDataPipeline(
            self._get_chat_data,
            self._decrypt,
            private_keys,
            retries=retries,
            backoff_base=backoff_base,
            proven_versions=proven_versions,
        )

    def __repr__(self) -> str:
        return f"SdkArchiveSource(lib_path={self.lib_path!r}, corp_id={self.corp_id!r})"

    def _handle(self) -> FinanceSdk:
        with self._init_lock:
            if self._closed:
                raise ArchiveError(10000, "the archive source is closed", retryable=False)
            if self._sdk is None:
                self._sdk = FinanceSdk(self.lib_path, self.corp_id, self._secret)
            return self._sdk

    def _get_chat_data(self, after_seq: int, limit: int) -> list[dict]:  # blocking
        return self._handle().get_chat_data(after_seq, limit, self.proxy, self.passwd, self.timeout)

    def _decrypt(self, encrypt_key: str, encrypt_chat_msg: str) -> str:  # blocking
        return self._handle().decrypt_data(encrypt_key, encrypt_chat_msg)

    async def fetch(self, after_seq: int, limit: int = MAX_LIMIT) -> list[ArchivedMessage]:
        return await self.pipeline.fetch(after_seq, limit)

    async def aclose(self) -> None:
        self.pipeline.stop_reading_ahead()

        def close() -> None:
            with self._init_lock:
                self._closed = True
                if self._sdk is not None:
                    self._sdk.close()
                    self._sdk = None

        await asyncio.to_thread(close)


def _archive_error(exc: WeComError | WeComTransportError) -> ArchiveError:
    if isinstance(exc, WeComTransportError):
        return ArchiveError(10001, str(exc))
    return ArchiveError(exc.errcode, exc.errmsg or str(exc))


class HttpArchiveSource:
    """The WeCom emulator's stand-in for the SDK (emulator only: real WeCom serves chatdata
    through the SDK's own protocol, never at these paths).

    chatdata: POST {base_url}/cgi-bin/msgaudit/emulator_get_chat_data {seq, limit, timeout}
    with the 会话存档 secret's access token (through `WeComClient`: token cache, refresh,
    retries); the answer is the SDK's GetChatData JSON. Decryption: POST
    {base_url}/cgi-bin/msgaudit/emulator_decrypt {encrypt_key, encrypt_chat_msg} ->
    {plaintext}; like the SDK's DecryptData it needs no token.
    """

    def __init__(
        self,
        base_url: str,
        corp_id: str,
        secret: str,
        private_keys: PrivateKeys,
        *,
        http: WeComHttp | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff_base: float = 0.5,
        concurrency: int = 8,
        proven_versions: Iterable[int] = (),
        **client_options: Any,
    ) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self._own_http = http is None
        self._http = http if http is not None else WeComHttp(timeout)
        self.client = WeComClient(
            corp_id, secret, base_url=self.base_url, http=self._http, timeout=timeout, **client_options
        )
        self.pipeline = ChatDataPipeline(
            self._get_chat_data,
            self._decrypt,
            private_keys,
            retries=retries,
            backoff_base=backoff_base,
            concurrency=concurrency,
            proven_versions=proven_versions,
        )

    def __repr__(self) -> str:
        return f"HttpArchiveSource(base_url={self.base_url!r}, corp_id={self.client.corp_id!r})"

    async def _get_chat_data(self, after_seq: int, limit: int) -> list[dict]:
        body = {"seq": after_seq, "limit": limit, "timeout": int(self.timeout)}
        try:
            data = await self.client._post(EMULATOR_CHATDATA_PATH, body)
        except (WeComError, WeComTransportError) as exc:
            raise _archive_error(exc) from None
        return list(data.get("chatdata") or [])

    async def _decrypt(self, encrypt_key: str, encrypt_chat_msg: str) -> str:
        body = {"encrypt_key": encrypt_key, "encrypt_chat_msg": encrypt_chat_msg}
        try:
            resp = await self._http.request("POST", self.base_url + EMULATOR_DECRYPT_PATH, json_body=body)
            data = resp.json()
        except HttpFailure as exc:
            raise ArchiveError(10001, str(exc)) from None
        except ValueError:
            raise ArchiveError(10002, f"HTTP {resp.status} without a JSON body") from None
        errcode = answered_errcode(data, "emulator_decrypt") if isinstance(data, dict) else 10002
        if errcode:
            raise ArchiveError(errcode, str(data.get("errmsg") or "") if isinstance(data, dict) else "")
        return str(data.get("plaintext") or "")

    async def fetch(self, after_seq: int, limit: int = MAX_LIMIT) -> list[ArchivedMessage]:
        return await self.pipeline.fetch(after_seq, limit)

    async def aclose(self) -> None:
        self.pipeline.stop_reading_ahead()
        await self.client.aclose()
        if self._own_http:
            await self._http.aclose()


class JsonLinesArchiveSource:
    """Already-decrypted messages, one JSON object a line (for migrations: `siyu archive
    import`).

    A line is either the message itself (REFERENCE 11.3, with an optional top-level
    "seq" that is taken off) or `{"seq"?, "msgid"?, "message": {...}}`. Without a seq the
    line number (1-based) is the seq. Blank lines are skipped. The file is read once, on
    the first fetch, and checked whole before anything is handed over: a line that is not
    such a message (no msgid, a msgtime that is not in milliseconds, a seq below 1 or used
    twice, ...) refuses the file with `ValueError("line N: ...")`, so an import never stores
    half a file or a message with made-up fields.
    """

    def __init__(self, path_or_lines: str | os.PathLike[str] | Iterable[str]) -> None:
        self._source = path_or_lines
        self._messages: list[ArchivedMessage] | None = None

    def _load(self) -> list[ArchivedMessage]:
        source = self._source
        if isinstance(source, str | os.PathLike):
            try:
                # lines end at "\n" only: JSON holds U+2028, U+0085 and the like unescaped in
                # strings, and str.splitlines() would break a message there
                data = Path(source).read_bytes()
                text = data.decode("utf-8-sig")
                lines: Iterable[str] = [line.removesuffix("\r") for line in text.split("\n")]
            except UnicodeDecodeError as exc:
                if data.startswith(b"\x1f\x8b"):
                    raise ValueError(f"{source}: gzip-compressed: gunzip it first") from None
                at = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
                line = data[:at].count(b"\n") + 1  # (by line, as every other refusal)
                raise ValueError(f"{source} line {line}: not UTF-8 text ({exc.reason})") from None
        else:
            lines = source
        out: list[ArchivedMessage] = []
        line_of_seq: dict[int, int] = {}
        line_of_msgid: dict[str, int] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            message = _imported(number, line)
            seq = message.seq
            if seq in line_of_seq:
                raise ValueError(
                    f"line {number}: seq {seq} is used by line {line_of_seq[seq]} too"
                    " (a line without a seq takes its line number as its seq)"
                )
            if message.msgid in line_of_msgid:  # which copy would be kept depends on the batches
                raise ValueError(
                    f"line {number}: msgid {message.msgid} is used by line {line_of_msgid[message.msgid]} too"
                )
            line_of_seq[seq], line_of_msgid[message.msgid] = number, number
            out.append(message)
        out.sort(key=lambda m: m.seq)
        return out

    def read(self) -> list[ArchivedMessage]:
        """Every message of the file, checked, in seq order (read once)."""
        if self._messages is None:
            self._messages = self._load()
        return self._messages

    async def fetch(self, after_seq: int, limit: int = MAX_LIMIT) -> list[ArchivedMessage]:
        limit = _check_limit(limit)
        if self._messages is None:
            await asyncio.to_thread(self.read)
        return [m for m in self._messages if m.seq > after_seq][:limit]

    async def aclose(self) -> None:
        self._messages = None


# A msgtime in milliseconds lies between these (2001 and 2286); one in seconds does not.
_MS_FROM, _MS_UNTIL = 10**12, 10**13
_ACTIONS = ("send", "recall", "switch")
_CONSENT = ("agree", "disagree")  # their userid names the staff member (a customer's own event)
# What the seq column holds (see _LONGEST for the identifiers').
_MAX_SEQ = 2**63 - 1


# A text message is at most a few thousand characters, and media come as ids: a line of an
# import longer than this is no archived message (one of 50 MB had taken 4.8 GB to store).
MAX_IMPORT_LINE_CHARS = 1_000_000


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is too large a number for JSON")
    return value


def _imported(number: int, line: str) -> ArchivedMessage:
    """One line of a JSON-lines import as an archived message, or ValueError naming the line."""

    def refuse(why: str) -> ValueError:
        return ValueError(f"line {number}: {why}")

    if len(line) > MAX_IMPORT_LINE_CHARS:
        raise refuse(f"over {MAX_IMPORT_LINE_CHARS:,} characters: no archived message is that long")

    def no_constant(name: str):
        raise ValueError(f"{name} is no JSON value")  # (Python's own: PostgreSQL refuses to store it)

    try:
        obj = json.loads(line, parse_constant=no_constant, parse_float=_finite)
    except ValueError as exc:
        raise refuse(f"not JSON ({exc})") from None
    except RecursionError:
        raise refuse("not JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise refuse("not a JSON object")
    if "message" in obj:
        message = obj["message"]
        if not isinstance(message, dict):
            raise refuse('"message" is not a JSON object')
        message, seq, msgid = dict(message), obj.get("seq"), obj.get("msgid") or message.get("msgid")
        inner = message.get("msgid")
        if inner is not None and msgid != inner:  # which one is the message's is anyone's guess
            raise refuse(f"msgid {msgid!r} differs from the message's own {inner!r}")
    else:
        message = dict(obj)
        seq, msgid = message.pop("seq", None), message.get("msgid")
    if not isinstance(msgid, str) or not msgid.strip():
        raise refuse("message without a msgid (a non-empty string)")
    if len(msgid) > _LONGEST["msgid"]:
        raise refuse(f"msgid longer than {_LONGEST['msgid']} characters")
    if storable_text(msgid) != msgid:  # (a message is stored by it as given: one stored cleaned had no match)
        raise refuse("msgid holds a NUL or a lone surrogate, which no database stores")
    if seq is None:
        seq = number
    elif type(seq) is not int or not 1 <= seq <= _MAX_SEQ:
        raise refuse(f"seq must be a whole number from 1 to {_MAX_SEQ}, not {seq!r}")
    action = message.get("action", "send")
    if action not in _ACTIONS:
        raise refuse(f"action must be one of {', '.join(_ACTIONS)}, not {action!r}")
    at = message.get("msgtime", message.get("time"))
    if type(at) is not int or not _MS_FROM <= at < _MS_UNTIL:
        raise refuse(f"msgtime must be the send time in milliseconds since 1970 (13 digits), not {at!r}")
    for name in ("from", "user", "roomid", "msgtype"):
        if name in message and not isinstance(message[name], str):
            raise refuse(f"{name} must be a string, not {message[name]!r}")
        if len(message.get(name) or "") > _LONGEST[name]:
            raise refuse(f"{name} longer than {_LONGEST[name]} characters")
    if not (message.get("from") or message.get("user")):
        raise refuse("message without a sender (from)")
    tolist = message.get("tolist", [])
    if not _userids(tolist):
        raise refuse("tolist must be a list of userids (64 characters at most)")
    if action == "send" and not message.get("msgtype"):
        raise refuse("a sent message needs its msgtype")
    for name in (message.get("msgtype"), *_BODIES):  # read as JSON objects when stored
        if name and name in message and not isinstance(message[name], dict):
            raise refuse(f"{name} must be a JSON object, not {str(message[name])[:40]!r}")
    recalled = (message.get("revoke") or {}).get("pre_msgid", "")
    if action == "recall" and not isinstance(recalled, str):
        raise refuse(f"revoke.pre_msgid must be the recalled message's msgid, not {recalled!r}")
    for name in _CONSENT:
        body = message.get(name)
        if isinstance(body, dict) and not isinstance(body.get("userid", ""), str):
            raise refuse(f"{name}.userid must be a string, not {message[name]['userid']!r}")
    message, _ = storable(message)  # NUL and lone surrogates cleaned (PostgreSQL holds neither)
    return ArchivedMessage(seq, msgid, message)


# ---------------------------------------------------------------------------- HTTP APIs §11.4


async def permit_users(client: WeComClient, type: int | None = None) -> list[str]:
    """msgaudit/get_permit_user_list: userids of members whose chats are archived.
    `client` must use the 会话存档 secret; `type` 1 办公版, 2 服务版, 3 企业版 (optional)."""
    body = {"type": int(type)} if type is not None else {}
    data = await client._post("/cgi-bin/msgaudit/get_permit_user_list", body, idempotent=True)
    return [str(i) for i in data.get("ids") or []]


async def check_single_agree(client: WeComClient, pairs: Iterable[tuple[str, str]]) -> list[dict]:
    """msgaudit/check_single_agree for (userid, external_userid) pairs: WeCom's agreeinfo
    items `{userid, exteranalopenid (sic), agree_status: Agree|Disagree|Default_Agree,
    status_change_time}`, each with `external_userid` added (the correctly spelled copy)."""
    pairs = list(pairs)
    out: list[dict] = []
    for i in range(0, len(pairs), 100):
        info = [{"userid": u, "exteranalopenid": e} for u, e in pairs[i : i + 100]]
        data = await client._post("/cgi-bin/msgaudit/check_single_agree", {"info": info}, idempotent=True)
        for item in data.get("agreeinfo") or []:
            item = dict(item)
            item.setdefault("external_userid", item.get("exteranalopenid", ""))
            out.append(item)
    return out
