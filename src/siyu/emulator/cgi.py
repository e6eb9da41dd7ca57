"""The `/cgi-bin/...` dispatcher: token check, trusted IPs, faults, frequency limits, call log.

API handlers are plain coroutines registered with `@api("externalcontact/get")`; they get a
`Ctx` and return the success payload (without errcode/errmsg) or raise `WeComError`. Keeping
the cross-cutting WeCom behaviour here means every endpoint fails the same way the real
server does, and each handler module reads as the API it imitates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .errors import WeComError, error_body
from .faults import over_limit
from .state import Corp, EmulatorState

UNMETERED = frozenset({"message/send"})  # APIs outside the per-corp base limit (REFERENCE 17)

Handler = Callable[["Ctx"], Awaitable[dict | Response]]


@dataclass
class Route:
    methods: tuple[str, ...]
    handler: Handler
    needs_token: bool = True
    ok_errmsg: str = "ok"


HANDLERS: dict[str, Route] = {}


def api(name: str, methods: tuple[str, ...] = ("GET", "POST"), needs_token: bool = True, ok_errmsg="ok"):
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = Route(methods, fn, needs_token, ok_errmsg)
        return fn

    return register


@dataclass
class Ctx:
    request: Request
    emu: object  # the Emulator (app.py); typed loosely to avoid an import cycle
    corp: Corp | None
    api: str
    ip: str
    raw: bytes = b""
    _json: dict | None = field(default=None, repr=False)

    @property
    def state(self) -> EmulatorState:
        return self.emu.state

    @property
    def query(self):
        return self.request.query_params

    @property
    def json(self) -> dict:
        """The JSON body. wechatpy posts JSON without a JSON content type, so don't require one."""
        if self._json is None:
            if not self.raw.strip():
                self._json = {}
            else:
                try:
                    value = json.loads(self.raw)
                except ValueError as exc:
                    raise WeComError(47001, "data format error, Warning: wrong json format.") from exc
                if not isinstance(value, dict):
                    raise WeComError(47001, "data format error, Warning: wrong json format.")
                self._json = value
        return self._json

    def int_field(self, name: str, default: int | None = None) -> int | None:
        """An integer from the JSON body; a non-number is WeCom's 40035, not a server error."""
        value = self.json.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise WeComError(40035, f"invalid {name}") from exc

    @property
    def base_url(self) -> str:
        return self.emu.public_url(self.request)

    def need_corp(self) -> Corp:
        assert self.corp is not None
        return self.corp


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "127.0.0.1"


def build_router(emu) -> APIRouter:
    router = APIRouter()

    @router.api_route("/cgi-bin/{name:path}", methods=["GET", "POST"], include_in_schema=False)
    async def dispatch(name: str, request: Request):
        ip = _client_ip(request)
        route = HANDLERS.get(name)
        if route is None or request.method not in route.methods:
            body = error_body(48001, ip, "api forbidden (not emulated)")
            return JSONResponse(body, status_code=404)
        corp = None
        try:
            corp = _resolve_corp(emu.state, route, request)
            if corp is not None and corp.trusted_ips and ip not in corp.trusted_ips:
                raise WeComError(60020)
            if corp is not None and name.startswith("externalcontact/"):
                _may_call_contact_apis(emu.state, corp, request)
            # The body first, as WeCom has it before it answers: a sender that gives up during
            # a slow answer (a fault's delay) has still made the call, which is then done.
            raw = b""
            if request.method == "POST" and not request.headers.get("content-type", "").startswith(
                "multipart/"
            ):
                raw = await request.body()
            fault = emu.faults.take(corp.corp_id if corp else None, request.url.path)
            if fault is not None:
                if fault.delay_s:
                    await asyncio.sleep(fault.delay_s)
                if fault.status:
                    _log_call(emu, corp, request, ip, fault.status)
                    page = f"<html><body><h1>{fault.status}</h1>nginx</body></html>"
                    return Response(page, status_code=fault.status, media_type="text/html")
                if fault.errcode:
                    raise WeComError(fault.errcode)
            # message/send is outside the base limit: WeCom limits it per member (api_message)
            if corp is not None and name not in UNMETERED and over_limit(emu.state, corp, name):
                raise WeComError(45009)
            ctx = Ctx(request=request, emu=emu, corp=corp, api=name, ip=ip, raw=raw)
            payload = await route.handler(ctx)
            if isinstance(payload, Response):  # raw bytes, e.g. media/get
                _log_call(emu, corp, request, ip, 0)
                return payload
            result = {"errcode": 0, "errmsg": route.ok_errmsg, **payload}
        except WeComError as exc:
            result = error_body(exc.errcode, ip, exc.text)
        _log_call(emu, corp, request, ip, result["errcode"])
        return JSONResponse(result)

    return router


def _log_call(emu, corp: Corp | None, request: Request, ip: str, errcode: int) -> None:
    if corp is not None:
        corp.calls.append(
            {
                "path": request.url.path,
                "method": request.method,
                "errcode": errcode,
                "time": emu.state.now(),
                "ip": ip,
            }
        )


def _may_call_contact_apis(state: EmulatorState, corp: Corp, request: Request) -> None:
    """客户联系 APIs take the 客户联系 secret's token, or the self-built app's when it is among
    「可调用应用」 (REFERENCE 3.1): the 会话存档 secret's is refused (48002)."""
    record = state.tokens.get(request.query_params.get("access_token", ""))
    if record is not None and record.secret == corp.archive_secret and corp.archive_secret:
        raise WeComError(48002, "api forbidden: 客户联系 APIs take the 客户联系 secret's access_token")


def _resolve_corp(state: EmulatorState, route: Route, request: Request) -> Corp | None:
    if not route.needs_token:
        return state.corps.get(request.query_params.get("corpid", ""))
    token = request.query_params.get("access_token")
    if not token:
        raise WeComError(41001)
    record = state.tokens.get(token)
    if record is None:
        raise WeComError(40014)
    if record.expires_at <= state.now():
        raise WeComError(42001)
    return state.corps[record.corp_id]
