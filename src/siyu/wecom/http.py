"""The HTTP connections Siyu talks to WeCom over: aiohttp's client, used directly.

WeCom's API is JSON over HTTPS with a query string, plus multipart for media uploads, so
the client needs little: a request, its status and its body. httpx cost the escalation
worker much of its CPU at a few hundred app messages a second. Per message/send, with ten
in flight (benchmarks/send_cost.py, which also measures a bare aiohttp session as the
floor): httpx's own transport about 1.2 ms of CPU, httpx's API over aiohttp
(httpx-aiohttp) 0.55 ms, Siyu's client over this module 0.29 ms, the floor 0.25 ms.

The session is opened on first use, so a client may be made outside the event loop it
serves; like any aiohttp session, it then belongs to that loop."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp

# A tenant's calls share one pool; the rate limiter keeps at most 10 in flight per API.
MAX_CONNECTIONS = 16
KEEPALIVE_S = 30.0


class HttpFailure(Exception):
    """No HTTP answer: the connection failed or the answer did not come in time."""

    def __init__(self, message: str, *, timed_out: bool):
        super().__init__(message)
        self.timed_out = timed_out


class HttpReply(NamedTuple):
    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return json.loads(self.body)


class WeComHttp:
    def __init__(self, timeout: float = 10.0, max_connections: int = MAX_CONNECTIONS):
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.is_closed = False
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._proxies: dict[str, str | None] = {}

    def _client_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        # Each phase has the whole budget (a pooled connection and connecting; each read),
        # not the request as a whole, so a large upload is not cut off for being large.
        found = self._timeouts.get(seconds)
        if found is None:
            found = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=None, connect=seconds, sock_connect=seconds, sock_read=seconds
            )
        return found

    def _proxy_for(self, url: str) -> str | None:
        """The proxy HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for this URL's host, unless
        NO_PROXY covers it, as httpx did: WeCom answers trusted IPs only, and a fixed egress
        proxy is a common way to have one. Looked up once a host (aiohttp's own trust_env
        looks again on every request and cost more than the rest of a request together)."""
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        if origin not in self._proxies:
            parts = urlsplit(origin)
            found = getproxies()
            proxy = found.get(parts.scheme) or found.get("all")
            self._proxies[origin] = None if proxy and proxy_bypass(parts.hostname or "") else proxy
        return self._proxies[origin]

    def _open(self) -> aiohttp.ClientSession:
        if self.is_closed:
            raise RuntimeError("this WeComHttp pool is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
    ) -> HttpReply:
        """One request; `files`: multipart fields as (filename, content, content type).
        Raises HttpFailure when no answer comes; any HTTP status is an answer."""
        data: Any = None
        headers = None
        if json_body is not None:
            # keys sorted: the same request is the same bytes however its dict was built or
            # stored (WeCom's duplicate check of message/send compares the request's JSON)
            data = json.dumps(json_body, ensure_ascii=False, sort_keys=True).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"}
        elif files:
            data = aiohttp.FormData()
            for field, (filename, content, content_type) in files.items():
                data.add_field(field, content, filename=filename, content_type=content_type)
        try:
            async with self._open().request(
                method,
                url,
                params=_query(params),
                data=data,
                headers=headers,
                allow_redirects=False,
                proxy=self._proxy_for(url),
                timeout=self._client_timeout(self.timeout if timeout is None else timeout),
            ) as response:
                return HttpReply(response.status, await response.read())
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors
            raise HttpFailure(f"timed out ({type(exc).__name__})", timed_out=True) from None
        except aiohttp.ClientError as exc:
            raise HttpFailure(f"{type(exc).__name__}: {exc}", timed_out=False) from None

    async def aclose(self) -> None:
        self.is_closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None


def _query(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    # aiohttp takes str values only; WeCom's query values are ids and numbers.
    if not params:
        return None
    return {k: v if isinstance(v, str) else str(v) for k, v in params.items()}
