"""Async client for WeCom's server API (REFERENCE sections 3-9, 14, 15, 17).

One `WeComClient` per (corp, secret): a tenant has an app secret (messages, OAuth, media)
and a 客户联系 secret (customers, tags, contact ways, welcome messages); `WeComClients`
opens both over one HTTP connection pool.

Behaviour:
- The access token is cached per (base_url, corp_id, secret) in a `TokenCache` shared by
  all clients of the process (injectable), refreshed shortly before `expires_in`, fetched
  single-flight. On 40014/42001/41001 the token is dropped, refetched and the call
  retried once. A secret or corp id gettoken refused (40001/40013) is asked about again
  once a minute (`TokenCache.refusal_s`), each call meanwhile failing with that error.
- On -1 (busy) and 45033 (concurrency; also halves the endpoint's in-flight cap) the call
  is retried after an exponential backoff with jitter (`backoff_base` 0.5 s doubling, at
  most `backoff_max` 8 s, the upper half jittered). On 45009 or 45011 (frequency) the endpoint is
  paused and the call retried after the pause: `freq_pause` (1 s) first, doubling while
  45009 persists, up to the limiter's `max_pause` (60 s: a minute-level block lifts within
  a minute), back to 1 s after a success; short first pauses are cheap probes, long ones
  would outlast callers' budgets. At most `max_retries` (3) such retries, and never past
  the call's `max_wait` (90 s, urgent 15 s): when the next wait would exceed it the WeCom
  error is raised at once. Every other non-zero errcode raises the typed error at once.
  These retries apply to POSTs too (45009/45033 mean WeCom did not act; -1 almost always,
  see `send_welcome_msg` for the rare case where it did).
- Calls are paced per endpoint by a `RateLimiter` (default 10,000/min and 150,000/h per
  corp and API, at most 10 in flight per API). `priority="urgent"` calls are admitted
  before queued normal calls of the same endpoint; endpoints never wait for each other.
  `send_welcome_msg` is urgent with a 15 s budget (the welcome code lives 20 s).
- Network errors, timeouts, non-JSON answers and JSON without an errcode (a gateway's
  own page: WeCom always says errcode) raise `WeComTransportError`; GETs and the POSTs
  that only read (lookups: `idempotent=True`) are retried `network_retries` times first,
  other POSTs never (a POST may have taken effect).
- Each call is logged at DEBUG on "siyu.wecom.client" with method, path, errcode and
  latency; never the query string, so never a token or secret (error texts mask them).
- Requests go over `siyu.wecom.http.WeComHttp` (aiohttp), one pool per tenant.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from .errors import (
    FREQUENCY_ERRCODES,
    RETRY_ERRCODES,
    TOKEN_ERRCODES,
    WeComTransportError,
    error_for,
)
from .http import HttpFailure, WeComHttp
from .ratelimit import PRIORITIES, RateLimiter, default_rate_limiter
from .token import TokenCache, default_token_cache, token_key

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_OAUTH_BASE",
    "DEFAULT_LOGIN_BASE",
    "WeComClient",
    "WeComClients",
    "oauth_authorize_url",
    "web_login_url",
]

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
DEFAULT_OAUTH_BASE = "https://open.weixin.qq.com"
DEFAULT_LOGIN_BASE = "https://login.work.weixin.qq.com"

log = logging.getLogger(__name__)


_SECRET_IN_URL = re.compile(r"((?:access_token|corpsecret)=)[^&\s\"']+", re.IGNORECASE)


def _redact(text: str) -> str:
    return _SECRET_IN_URL.sub(r"\1***", text)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class WeComClient:
    """Async client for one (corp_id, secret).

    `http`: a shared `WeComHttp` pool (not closed by `aclose()`); by default the client
    makes its own. `token_cache` / `limiter`: default to the process-wide instances so
    that every client of a corp shares tokens and pacing.
    """

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: WeComHttp | None = None,
        timeout: float = 10.0,
        upload_timeout: float = 60.0,
        token_cache: TokenCache | None = None,
        limiter: RateLimiter | None = None,
        max_retries: int = 3,
        network_retries: int = 2,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        freq_pause: float = 1.0,
        max_wait: float = 90.0,
        urgent_max_wait: float = 15.0,
    ):
        if not corp_id or not secret:
            raise ValueError("corp_id and secret are required")
        self.corp_id = corp_id
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.max_retries = max_retries
        self.network_retries = network_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.freq_pause = freq_pause
        self.max_wait = max_wait
        self.urgent_max_wait = urgent_max_wait
        self._secret = secret
        self._token_key = token_key(self.base_url, corp_id, secret)
        self._tokens = token_cache if token_cache is not None else default_token_cache
        self._limiter = limiter if limiter is not None else default_rate_limiter
        self._own_http = http is None
        self._http = http if http is not None else WeComHttp(timeout)
        self._random = random.Random()

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self.corp_id!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> WeComClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ core

    async def get_token(self, *, force_refresh: bool = False) -> str:
        """The access token for this (corp, secret), fetching it if needed (§3.1)."""
        if force_refresh:
            self._tokens.invalidate(self._token_key)
        return await self._tokens.get(self._token_key, self._fetch_token)

    async def _fetch_token(self) -> tuple[str, float]:
        data = await self._call(
            "GET",
            "/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self._secret},
            with_token=False,
            priority="urgent",
        )
        token = data.get("access_token")
        if not token:
            raise WeComTransportError("gettoken answered without access_token", "/cgi-bin/gettoken")
        return str(token), float(data.get("expires_in") or 7200)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempt - 1)))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        files: Mapping[str, Any] | None = None,
        with_token: bool = True,
        priority: str = "normal",
        max_wait: float | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """One WeCom API call with token handling, retries and pacing; the answer's JSON.
        `idempotent`: asked again after a network failure (default: GETs only)."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {sorted(PRIORITIES)}")
        if max_wait is None:
            max_wait = self.urgent_max_wait if priority == "urgent" else self.max_wait
        if idempotent is None:
            idempotent = method == "GET"
        deadline = time.monotonic() + max_wait
        key = (self.base_url, self.corp_id, path)
        token_retried = False
        retries = 0
        network_failures = 0
        while True:
            query = dict(params or {})
            token = None
            if with_token:
                token = await self.get_token()
                query["access_token"] = token
            try:
                data = await self._send(
                    method, path, key, query, body, files, priority, deadline - time.monotonic(), timeout
                )
            except WeComTransportError:
                network_failures += 1
                if not idempotent or network_failures > self.network_retries:
                    raise
                delay = self._backoff(network_failures)
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                continue

            errcode = _errcode(data)
            if errcode == 0:
                self._limiter.on_success(key)
                return data
            error = error_for(errcode, str(data.get("errmsg") or ""), path)
            if errcode in TOKEN_ERRCODES and with_token and not token_retried:
                token_retried = True
                self._tokens.invalidate(self._token_key, token)
                continue
            if errcode not in RETRY_ERRCODES or retries >= self.max_retries:
                raise error
            retries += 1
            remaining = deadline - time.monotonic()
            if errcode in FREQUENCY_ERRCODES:
                pause = self._limiter.on_frequency_limited(key, self.freq_pause)
                if pause > remaining:
                    raise error
                continue  # the limiter holds the next attempt until the pause is over
            if errcode == 45033:
                self._limiter.on_concurrency_limited(key)
            delay = self._backoff(retries)
            if delay > remaining:
                raise error
            await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        path: str,
        key: tuple[str, str, str],
        query: dict[str, Any],
        body: Any,
        files: Mapping[str, Any] | None,
        priority: str,
        max_wait: float,
        timeout: float | None,
    ) -> dict[str, Any]:
        async with self._limiter.slot(key, priority, max(0.0, max_wait), path):
            started = time.perf_counter()
            try:
                response = await self._http.request(
                    method,
                    self.base_url + path,
                    params=query,
                    json_body=body,
                    files=files,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            except HttpFailure as exc:
                _log_call(method, path, "timeout" if exc.timed_out else "network-error", started)
                detail = str(exc) if exc.timed_out else f"network error ({_redact(str(exc))})"
                raise WeComTransportError(detail, path) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or "errcode" not in data:
            _log_call(method, path, f"http-{response.status}", started)
            raise WeComTransportError(
                f"HTTP {response.status} without a WeCom JSON body (no errcode)",
                path,
                status_code=response.status,
            )
        _log_call(method, path, _errcode(data), started)
        return data

    async def _get(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return await self._call("GET", path, params=params, **kw)

    async def _post(self, path: str, body: Any, **kw: Any) -> dict[str, Any]:
        return await self._call("POST", path, body=body, **kw)

    # ------------------------------------------------------------ contacts §4

    async def department_list(self, id: int | None = None) -> dict[str, Any]:
        """`{"department": [{id, name, parentid, order, ...}]}`; all visible ones, or `id`'s subtree."""
        return await self._get("/cgi-bin/department/list", {"id": id} if id is not None else None)

    async def user_get(self, userid: str) -> dict[str, Any]:
        return await self._get("/cgi-bin/user/get", {"userid": userid})

    async def user_list(self, department_id: int) -> dict[str, Any]:
        """`{"userlist": [user, ...]}` for one department."""
        return await self._get("/cgi-bin/user/list", {"department_id": department_id})

    async def user_simplelist(self, department_id: int) -> dict[str, Any]:
        """`{"userlist": [{userid, name, department}, ...]}` for one department."""
        return await self._get("/cgi-bin/user/simplelist", {"department_id": department_id})

    # --------------------------------------------------- external contacts §5

    async def get_follow_user_list(self) -> dict[str, Any]:
        """`{"follow_user": [userid, ...]}`: members with 客户联系 enabled."""
        return await self._get("/cgi-bin/externalcontact/get_follow_user_list")

    async def external_contact_list(self, userid: str) -> dict[str, Any]:
        """`{"external_userid": [...]}`: the customers of one member."""
        return await self._get("/cgi-bin/externalcontact/list", {"userid": userid})

    async def external_contact_get(
        self, external_userid: str, *, priority: str = "normal", max_wait: float | None = None
    ) -> dict[str, Any]:
        """`{"external_contact": {...}, "follow_user": [...]}` with every follow_user page merged.

        `priority="urgent"` with a `max_wait` is for a welcome message that needs the name."""
        path = "/cgi-bin/externalcontact/get"
        params: dict[str, Any] = {"external_userid": external_userid}
        data = await self._get(path, params, priority=priority, max_wait=max_wait)
        follow_user = list(data.get("follow_user") or [])
        seen = {""}
        cursor = str(data.get("next_cursor") or "")
        while cursor not in seen:
            seen.add(cursor)
            page = await self._get(path, {**params, "cursor": cursor})
            follow_user.extend(page.get("follow_user") or [])
            cursor = str(page.get("next_cursor") or "")
        data["follow_user"] = follow_user
        data["next_cursor"] = ""
        return data

    async def batch_get_by_user(
        self, userids: Sequence[str], cursor: str = "", limit: int = 100
    ) -> dict[str, Any]:
        """One page: `{"external_contact_list": [{external_contact, follow_info}], "next_cursor"}`.

        At most 100 userids; `limit` is clamped to 1..100.
        """
        userids = list(userids)
        if not 1 <= len(userids) <= 100:
            raise ValueError("batch_get_by_user takes 1 to 100 userids")
        body = {"userid_list": userids, "cursor": cursor or "", "limit": max(1, min(100, int(limit)))}
        return await self._post("/cgi-bin/externalcontact/batch/get_by_user", body, idempotent=True)

    async def iter_customers_by_user(
        self, userids: Iterable[str], limit: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every `{external_contact, follow_info}` of these members, 100 userids per call,
        following `next_cursor` to the end."""
        ids = list(dict.fromkeys(userids))
        for chunk in _chunks(ids, 100):
            cursor = ""
            seen: set[str] = set()
            while True:
                page = await self.batch_get_by_user(chunk, cursor, limit)
                for item in page.get("external_contact_list") or []:
                    yield item
                if page.get("fail_info"):
                    log.debug("batch/get_by_user fail_info: %s", page["fail_info"])
                seen.add(cursor)
                cursor = str(page.get("next_cursor") or "")
                if not cursor or cursor in seen:
                    break

    async def remark(
        self,
        userid: str,
        external_userid: str,
        *,
        remark: str | None = None,
        description: str | None = None,
        remark_company: str | None = None,
        remark_mobiles: Sequence[str] | None = None,
        remark_pic_mediaid: str | None = None,
    ) -> dict[str, Any]:
        """Set the member's remark on a customer; fields left as None are not changed."""
        body: dict[str, Any] = {"userid": userid, "external_userid": external_userid}
        for name, value in (
            ("remark", remark),
            ("description", description),
            ("remark_company", remark_company),
            ("remark_mobiles", list(remark_mobiles) if remark_mobiles is not None else None),
            ("remark_pic_mediaid", remark_pic_mediaid),
        ):
            if value is not None:
                body[name] = value
        return await self._post("/cgi-bin/externalcontact/remark", body)

    # ------------------------------------------------------- contact ways §6

    async def add_contact_way(
        self,
        type: int,
        scene: int,
        *,
        user: Sequence[str] | None = None,
        party: Sequence[int] | None = None,
        state: str | None = None,
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
        is_temp: bool | None = None,
        expires_in: int | None = None,
        chat_expires_in: int | None = None,
        unionid: str | None = None,
        conclusions: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Create a 联系我 way; `{"config_id", "qr_code"}` (qr_code for scene 2)."""
        body: dict[str, Any] = {"type": type, "scene": scene}
        fields = {
            "user": list(user) if user is not None else None,
            "party": list(party) if party is not None else None,
            "state": state,
            "remark": remark,
            "skip_verify": skip_verify,
            "style": style,
            "is_temp": is_temp,
            "expires_in": expires_in,
            "chat_expires_in": chat_expires_in,
            "unionid": unionid,
            "conclusions": dict(conclusions) if conclusions is not None else None,
            **extra,
        }
        body.update({k: v for k, v in fields.items() if v is not None})
        return await self._post("/cgi-bin/externalcontact/add_contact_way", body)

    async def get_contact_way(self, config_id: str) -> dict[str, Any]:
        """`{"contact_way": {...}}`."""
        return await self._post(
            "/cgi-bin/externalcontact/get_contact_way", {"config_id": config_id}, idempotent=True
        )

    async def update_contact_way(self, config_id: str, **fields: Any) -> dict[str, Any]:
        """Change remark, skip_verify, style, state, user, party, expires_in, ... (None = unchanged)."""
        body = {"config_id": config_id, **{k: v for k, v in fields.items() if v is not None}}
        return await self._post("/cgi-bin/externalcontact/update_contact_way", body)

    async def del_contact_way(self, config_id: str) -> dict[str, Any]:
        return await self._post("/cgi-bin/externalcontact/del_contact_way", {"config_id": config_id})

    async def groupchat_get(self, chat_id: str, **kw: Any) -> dict[str, Any]:
        """A customer group (客户群): `{"group_chat": {chat_id, name, owner, create_time, notice,
        member_list, admin_list}}`. Its chat_id is the archive's roomid."""
        return await self._post(
            "/cgi-bin/externalcontact/groupchat/get",
            {"chat_id": chat_id, "need_name": 1},
            idempotent=True,
            **kw,
        )

    async def msgaudit_groupchat_get(self, roomid: str, **kw: Any) -> dict[str, Any]:
        """An internal group (staff only), with the 会话存档 secret's token: `{roomname,
        creator, room_create_time, notice, members: [{memid, jointime}]}`."""
        return await self._post("/cgi-bin/msgaudit/groupchat/get", {"roomid": roomid}, idempotent=True, **kw)

    # ----------------------------------------------------- welcome message §7

    async def send_welcome_msg(
        self,
        welcome_code: str,
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        *,
        max_wait: float | None = None,
    ) -> dict[str, Any]:
        """Send the welcome message for an add-customer event (urgent: the code lives 20 s).

        Retried only on -1 / 45033 / 45009 (within `max_wait`, default `urgent_max_wait`),
        never after a network error. The code is single use: a retry after an answer that
        got lost can see 41051 (`WeComWelcomeCodeUsed`) although the message was sent;
        41050 (`WeComWelcomeCodeExpired`) means the 20 s passed.
        """
        attachments = [dict(a) for a in attachments or ()]
        if not text and not attachments:
            raise ValueError("a welcome message needs text or attachments")
        if len(attachments) > 9:
            raise ValueError("a welcome message takes at most 9 attachments")
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = attachments
        return await self._post(
            "/cgi-bin/externalcontact/send_welcome_msg", body, priority="urgent", max_wait=max_wait
        )

    # ----------------------------------------------------------- media §15

    async def media_upload(
        self, type: str, filename: str, content: bytes, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """Temporary media (3 days): `{"type", "media_id", "created_at"}` (created_at a string)."""
        if type not in ("image", "voice", "video", "file"):
            raise ValueError("type must be image, voice, video or file")
        return await self._call(
            "POST",
            "/cgi-bin/media/upload",
            params={"type": type},
            files={"media": (filename, content, content_type)},
            timeout=self.upload_timeout,
        )

    async def media_uploadimg(
        self, filename: str, content: bytes, content_type: str | None = None
    ) -> dict[str, Any]:
        """Permanent image URL (for welcome-message pic_url): `{"url": ...}`."""
        if content_type is None:
            content_type = "image/png" if filename.lower().endswith(".png") else "image/jpeg"
        return await self._call(
            "POST",
            "/cgi-bin/media/uploadimg",
            files={"media": (filename, content, content_type)},
            timeout=self.upload_timeout,
        )

    # ------------------------------------------------------------ tags §8

    async def get_corp_tag_list(
        self, tag_ids: Sequence[str] | None = None, group_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """`{"tag_group": [{group_id, group_name, order, tag: [{id, name, order}]}]}`."""
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        return await self._post("/cgi-bin/externalcontact/get_corp_tag_list", body, idempotent=True)

    async def add_corp_tag(
        self,
        group_name: str | None = None,
        group_id: str | None = None,
        tags: Sequence[str | Mapping[str, Any]] = (),
        *,
        order: int | None = None,
        agentid: int | None = None,
    ) -> dict[str, Any]:
        """Add tags to group `group_id`, or to a new group `group_name`. `tags` are names
        or `{"name", "order"}` dicts. Answers `{"tag_group": {...}}`."""
        if not group_id and not group_name:
            raise ValueError("give group_id or group_name")
        body: dict[str, Any] = {
            "tag": [{"name": t} if isinstance(t, str) else dict(t) for t in tags],
        }
        if group_id:
            body["group_id"] = group_id
        if group_name:
            body["group_name"] = group_name
        if order is not None:
            body["order"] = order
        if agentid is not None:
            body["agentid"] = agentid
        return await self._post("/cgi-bin/externalcontact/add_corp_tag", body)

    async def mark_tag(
        self,
        userid: str,
        external_userid: str,
        add_tag: Sequence[str] = (),
        remove_tag: Sequence[str] = (),
        **kw: Any,
    ) -> dict[str, Any]:
        body = {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add_tag),
            "remove_tag": list(remove_tag),
        }
        return await self._post("/cgi-bin/externalcontact/mark_tag", body, **kw)

    # ------------------------------------------------------ app messages §9

    async def message_send(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """`message/send` as is; the answer may list invaliduser / invalidparty / invalidtag."""
        return await self._post("/cgi-bin/message/send", dict(payload))

    async def send_text(self, touser: str | Sequence[str], agentid: int, content: str) -> dict[str, Any]:
        return await self.message_send(
            {
                "touser": _join(touser),
                "msgtype": "text",
                "agentid": int(agentid),
                "text": {"content": content},
            }
        )

    async def send_textcard(
        self,
        touser: str | Sequence[str],
        agentid: int,
        title: str,
        description: str,
        url: str,
        btntxt: str | None = None,
    ) -> dict[str, Any]:
        card = {"title": title, "description": description, "url": url}
        if btntxt:
            card["btntxt"] = btntxt
        return await self.message_send(
            {"touser": _join(touser), "msgtype": "textcard", "agentid": int(agentid), "textcard": card}
        )

    # ----------------------------------------------------------- OAuth §14

    async def auth_getuserinfo(self, code: str) -> dict[str, Any]:
        """Exchange an OAuth / web-login code: members get `userid` (and `user_ticket` for
        snsapi_privateinfo), others `openid` / `external_userid`. Legacy capitalised keys
        (`UserId`, `OpenId`, `DeviceId`) are copied to their lower-case names."""
        data = await self._get("/cgi-bin/auth/getuserinfo", {"code": code}, priority="urgent")
        for legacy, name in (("UserId", "userid"), ("OpenId", "openid"), ("DeviceId", "deviceid")):
            if legacy in data and name not in data:
                data[name] = data[legacy]
        return data

    async def auth_getuserdetail(self, user_ticket: str) -> dict[str, Any]:
        """Sensitive fields (gender as a string, avatar, mobile, email, ...) for a user_ticket."""
        return await self._post(
            "/cgi-bin/auth/getuserdetail", {"user_ticket": user_ticket}, priority="urgent"
        )


def _errcode(data: Mapping[str, Any]) -> int:
    try:
        return int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def _log_call(method: str, path: str, errcode: object, started: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "wecom %s %s errcode=%s %.1fms", method, path, errcode, (time.perf_counter() - started) * 1000
        )


def _join(touser: str | Sequence[str]) -> str:
    return touser if isinstance(touser, str) else "|".join(touser)


class WeComClients:
    """A tenant's two clients over one connection pool: `app` (the self-built app's
    secret: messages, OAuth, media) and `contact` (the 客户联系 secret: customers, tags,
    contact ways, welcome messages)."""

    def __init__(
        self,
        corp_id: str,
        agent_secret: str,
        contact_secret: str,
        *,
        http: WeComHttp | None = None,
        timeout: float = 10.0,
        **options: Any,
    ):
        self._own_http = http is None
        self.http = http if http is not None else WeComHttp(timeout)
        self.app = WeComClient(corp_id, agent_secret, http=self.http, timeout=timeout, **options)
        self.contact = WeComClient(corp_id, contact_secret, http=self.http, timeout=timeout, **options)

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> WeComClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# ------------------------------------------------------------- URL builders

_STATE = re.compile(r"[A-Za-z0-9]{0,128}")


def _check_state(state: str) -> None:
    if not _STATE.fullmatch(state or ""):
        raise ValueError("state must be at most 128 letters and digits (WeCom's rule)")


def oauth_authorize_url(
    oauth_base: str,
    corp_id: str,
    redirect_uri: str,
    state: str,
    agentid: int | str | None,
    scope: str = "snsapi_base",
) -> str:
    """The in-WeCom OAuth2 authorize URL (§14.1), ending in the mandatory `#wechat_redirect`.

    `oauth_base` is "https://open.weixin.qq.com" (or an emulator's base URL; a base that
    already ends in /connect/oauth2/authorize is used as is).
    """
    if scope not in ("snsapi_base", "snsapi_privateinfo", "snsapi_userinfo"):
        raise ValueError("scope must be snsapi_base or snsapi_privateinfo")
    if scope == "snsapi_privateinfo" and agentid in (None, ""):
        raise ValueError("snsapi_privateinfo needs the agentid")
    _check_state(state)
    base = oauth_base.rstrip("/")
    if not base.endswith("/connect/oauth2/authorize"):
        base += "/connect/oauth2/authorize"
    params: list[tuple[str, str]] = [
        ("appid", corp_id),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", scope),
        ("state", state),
    ]
    if agentid not in (None, ""):
        params.append(("agentid", str(agentid)))
    return f"{base}?{urlencode(params, quote_via=quote, safe='')}#wechat_redirect"


def web_login_url(
    login_base: str,
    corp_id: str,
    agentid: int | str,
    redirect_uri: str,
    state: str,
    lang: str | None = None,
) -> str:
    """The desktop QR login URL (§14.4): wwlogin/sso/login?login_type=CorpApp&...

    `login_base` is "https://login.work.weixin.qq.com" (or an emulator's base URL; a base
    that already ends in /wwlogin/sso/login is used as is).
    """
    if agentid in (None, ""):
        raise ValueError("web login needs the agentid")
    _check_state(state)
    base = login_base.rstrip("/")
    if not base.endswith("/wwlogin/sso/login"):
        base += "/wwlogin/sso/login"
    params = [
        ("login_type", "CorpApp"),
        ("appid", corp_id),
        ("agentid", str(agentid)),
        ("redirect_uri", redirect_uri),
        ("state", state),
    ]
    if lang:
        params.append(("lang", lang))
    return f"{base}?{urlencode(params, quote_via=quote, safe='')}"
