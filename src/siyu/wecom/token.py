"""Access-token cache shared by every client of one process.

One token per (base_url, corp_id, secret). A token is handed out until shortly before
WeCom's `expires_in` runs out; then the next caller fetches a new one. Fetches are
single-flight: while one gettoken is under way for a key, other callers await it.
A secret or corp id WeCom refused (40001, 40013) is not asked about again for `refusal_s`:
callers get the same error at once. Only a new secret (a new key) mends it, and WeCom
blocks gettoken for an hour after ~2,000 failures (REFERENCE 17.1), which every queued
event and message asking again would soon reach.
Secrets are kept only as a SHA-256 digest in the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .errors import WeComInvalidCredentials, error_for

__all__ = ["TokenCache", "TokenKey", "token_key", "default_token_cache"]

TokenKey = tuple[str, str, str]


def token_key(base_url: str, corp_id: str, secret: str) -> TokenKey:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return (base_url.rstrip("/"), corp_id, digest)


@dataclass
class _Entry:
    token: str
    refresh_at: float


class TokenCache:
    """Cached access tokens with single-flight refresh.

    `margin` is how long before expiry a token counts as stale: min(margin, expires_in / 10).
    `clock` is a monotonic clock (injectable for tests).
    """

    def __init__(
        self, margin: float = 300.0, clock: Callable[[], float] = time.monotonic, refusal_s: float = 60.0
    ):
        self.margin = margin
        self.clock = clock
        self.refusal_s = refusal_s
        self._entries: dict[TokenKey, _Entry] = {}
        self._pending: dict[TokenKey, asyncio.Task[str]] = {}
        self._refused: dict[TokenKey, tuple[float, WeComInvalidCredentials]] = {}

    def peek(self, key: TokenKey) -> str | None:
        """The cached token if it is still fresh, without fetching."""
        entry = self._entries.get(key)
        if entry and self.clock() < entry.refresh_at:
            return entry.token
        return None

    def put(self, key: TokenKey, token: str, expires_in: float) -> None:
        early = min(self.margin, max(0.0, expires_in) / 10)
        self._entries[key] = _Entry(token, self.clock() + max(0.0, expires_in - early))

    def invalidate(self, key: TokenKey, token: str | None = None) -> None:
        """Forget the token for `key`; with `token`, only if that is still the cached one
        (so that many callers seeing the same expired token cause one refresh)."""
        entry = self._entries.get(key)
        if entry and (token is None or entry.token == token):
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
        self._refused.clear()

    async def get(self, key: TokenKey, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """A fresh token for `key`, calling `fetch()` -> (token, expires_in) when needed."""
        token = self.peek(key)
        if token is not None:
            return token
        refused = self._refused.get(key)
        if refused is not None:
            until, error = refused
            if self.clock() < until:
                raise error_for(error.errcode, error.errmsg, error.path)
            del self._refused[key]
        loop = asyncio.get_running_loop()
        task = self._pending.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._fetch(key, fetch))
            # its error is each awaiting caller's; with all of them cancelled (a worker stopping)
            # asyncio had logged it as never retrieved
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._pending[key] = task
        # shield: one caller being cancelled must not cancel the fetch the others await
        return await asyncio.shield(task)

    async def _fetch(self, key: TokenKey, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        try:
            token, expires_in = await fetch()
        except WeComInvalidCredentials as exc:
            self._refused[key] = (self.clock() + self.refusal_s, exc)
            raise
        else:
            self.put(key, token, expires_in)
            return token
        finally:
            if self._pending.get(key) is asyncio.current_task():
                del self._pending[key]


default_token_cache = TokenCache()
"""The process-wide cache that clients use unless given another."""
