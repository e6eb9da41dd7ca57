"""Mounts the JSON API and the web UI on the app, and turns errors into answers people can read."""

from __future__ import annotations

import math
import re

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from siyu.conversations.api import router as conversations_api
from siyu.customers.api import router as customers_api
from siyu.customers.channels import ChannelError
from siyu.intake.events_api import router as events_api
from siyu.sla.api import router as sla_api
from siyu.tenancy.api import router as tenancy_api
from siyu.tenancy.people_api import router as people_api
from siyu.web import (
    archive_pages,
    auth,
    conversation_pages,
    event_pages,
    health,
    pages,
    people_pages,
    sla_pages,
    token_pages,
)
from siyu.web.api_errors import (
    BIGINT,
    NOT_FOUND_TEXT,
    ClearNotFound,
    body_refusals_where_a_body_is_taken,
    out_of_range,
)
from siyu.web.head import HeadAsGet
from siyu.web.headers import SecurityHeaders
from siyu.web.input_guard import BodyLimit, InputRefused, body_kind, refuse_nul, sent_as_json
from siyu.web.templating import HERE, render, wecom_message
from siyu.wecom.errors import WeComFailure

PAGE_TITLES = {
    403: "没有权限 / Forbidden",
    404: "找不到 / Not found",
    405: "不能直接打开 / Not a page",
    410: "已失效 / Gone",
    422: "无法处理 / Invalid request",
    413: "内容太大 / Too large",
    502: "企业微信暂时不可用 / WeCom unavailable",
}


FORM_ADDRESS = (
    "这个地址用来提交表单，不能直接打开：请回到上一页重新操作。"
    " / This address takes a form sent from a page; it is not a page to open."
)
NOT_A_FORM = "这个页面不接受提交：请回到上一页重新操作。 / This page takes no form; go back and try again."


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith(("/api/", "/wecom/", "/static/")) or path == "/healthz")


def install(app: FastAPI) -> None:
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HeadAsGet)  # outermost: the answer a GET gets, its headers included
    app.router.dependencies.append(Depends(refuse_nul))  # every route included from here on

    app.state.database_health = health.database_health()
    app.include_router(health.router)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():  # browsers ask on every page; there is none, and that is not an error
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(auth.router)
    app.include_router(customers_api)
    app.include_router(conversations_api)
    app.include_router(sla_api)
    app.include_router(tenancy_api)
    app.include_router(people_api)
    app.include_router(events_api)
    app.include_router(pages.router)
    app.include_router(conversation_pages.router)
    app.include_router(sla_pages.router)
    app.include_router(archive_pages.router)
    app.include_router(token_pages.router)
    app.include_router(people_pages.router)
    app.include_router(event_pages.router)
    body_refusals_where_a_body_is_taken(app)

    @app.exception_handler(auth.LoginRequired)
    async def _login_required(request: Request, exc: auth.LoginRequired):
        return await auth.signed_out(request, exc)

    @app.exception_handler(auth.CsrfRefused)
    async def _csrf(request: Request, exc: auth.CsrfRefused):
        if exc.api:
            return _csrf_refused()
        return await _error_page(request, 403, CSRF_REFUSED)

    @app.exception_handler(WeComFailure)
    async def _wecom(request: Request, exc: WeComFailure):
        if _wants_page(request):
            return await _error_page(request, 502, wecom_message(exc))
        return JSONResponse({"detail": wecom_message(exc)}, 502)

    @app.exception_handler(ChannelError)
    async def _channel(request: Request, exc: ChannelError):
        if _wants_page(request):
            return await _error_page(request, exc.status, str(exc))
        return JSONResponse({"detail": str(exc)}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # as FastAPI's own answer, but NaN / Infinity in the body (json.loads takes them) are
        # echoed back as text: JSON cannot carry them, and the answer would fail as a 500
        if _wants_page(request):  # /conversations/abc: a page a person can read
            return await _error_page(request, 422, "链接里的参数无效 / the address is not valid")
        if _body_not_sent_as_json(request, exc):
            return await _who_may_call(request) or JSONResponse({"detail": _not_json_type(request)}, 415)
        return await _who_may_call(request) or JSONResponse(
            {"detail": _echoable(_without_secrets(jsonable_encoder(exc.errors())))}, 422
        )

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError):
        return await _out_of_range(request)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError):
        # PostgreSQL refusing a number too large for its column (SQLSTATE 22003), as SQLite's
        # driver does with OverflowError: an id or page no row can have. Anything else is ours.
        if getattr(exc.orig, "sqlstate", None) == "22003":
            return await _out_of_range(request)
        raise exc

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == UNREADABLE_BODY and request.url.path.startswith("/api/"):
            # a body json.loads cannot decode (GBK), or gives up on (100,000 `[`): a 422 as one
            # that does not parse, after who may call, as for any body (FastAPI reads it first)
            said = NOT_UTF8_JSON
            if isinstance(exc.__cause__, RecursionError):
                said = TOO_DEEP_JSON
            elif isinstance(exc.__cause__, ValueError) and not isinstance(exc.__cause__, UnicodeError):
                said = TOO_LONG_NUMBER_JSON  # over Python's 4,300 digits: no charset problem to look for
            return await _who_may_call(request) or JSONResponse({"detail": said}, 422)
        if (
            exc.status_code == 404
            and request.url.path.startswith("/api/")
            and not isinstance(exc, ClearNotFound)
        ):
            return JSONResponse({"detail": NOT_FOUND_TEXT}, 404)
        if exc.status_code == 405 and request.url.path.startswith("/api/"):
            allowed = _allowed_methods(request)
            detail = (
                f"这个地址不支持 {request.method}，可用：{allowed}"
                f" / {request.method} is not allowed here: use {allowed}"
            )
            return JSONResponse({"detail": detail}, 405, {"Allow": allowed})
        if _wants_page(request) and exc.status_code == 405:
            # a form's address opened as a page: a refused form is shown there, and opening it
            # again (the address bar, WeCom's browser restoring the tab) answered English JSON
            said = FORM_ADDRESS if request.method in ("GET", "HEAD") else NOT_A_FORM
            page = await _error_page(request, 405, said)
            page.headers["Allow"] = _allowed_methods(request)
            return page
        if _wants_page(request) and exc.status_code >= 400:
            clear = isinstance(exc, ClearNotFound)  # says what is missing (an admin's own tenant)
            return await _error_page(request, exc.status_code, str(exc.detail or ""), clear)
        if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
            # /healthz, /wecom/callback/…: FastAPI's Allow names GET without the HEAD that
            # HeadAsGet answers there (StaticFiles' 405 names none: left so)
            exc = StarletteHTTPException(405, exc.detail, {**exc.headers, "Allow": _allowed_methods(request)})
        return await http_exception_handler(request, exc)

    @app.exception_handler(InputRefused)
    async def _input_refused(request: Request, exc: InputRefused):
        # a NUL is refused before any route runs, and so came before the sign-in check too
        return await _who_may_call(request) or await _http(request, exc)


def _allowed_methods(request: Request) -> str:
    """Every method the path takes: the Allow header names only the first route that has the
    path (GET of GET and PATCH, each its own route). HEAD wherever GET is (HeadAsGet)."""
    scope = {"type": "http", "path": request.url.path, "root_path": "", "headers": []}
    taken = [
        method
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if any(r.matches({**scope, "method": method})[0] == Match.FULL for r in request.app.routes)
    ]
    return ", ".join(["GET", "HEAD", *taken[1:]] if taken[:1] == ["GET"] else taken)


async def _who_may_call(request: Request) -> JSONResponse | None:
    """The 401 or 403 an /api/ call is owed, else None. FastAPI parses a JSON body before it
    asks who is calling: a body that is not JSON was a 422 where the same call with a good
    body is a 401 (signed out) or a 403 (no CSRF token). Who may call comes first, whatever
    the body (WeCom's callbacks, signed by WeCom, not by a session, keep their 422)."""
    if not request.url.path.startswith("/api/"):
        return None
    try:
        await auth.api_viewer(request)
    except auth.CsrfRefused:
        return _csrf_refused()
    except StarletteHTTPException as refused:
        return JSONResponse({"detail": refused.detail}, refused.status_code, refused.headers)
    return None


def _body_not_sent_as_json(request: Request, exc: RequestValidationError) -> bool:
    """A body whose Content-Type is not JSON's (curl's `-d` says a form's): FastAPI took it as
    text, and answered "Input should be a valid dictionary" with the body repeated in the
    answer, a password sent in it too. A call sending no body is told what is missing."""
    sent = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    return (
        request.url.path.startswith("/api/")
        and sent
        and not sent_as_json(request)
        and any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())
    )


def _not_json_type(request: Request) -> str:
    kind = body_kind(request)[:100]
    came, came_en = (f"这次是 {kind}", f"it came as {kind}") if kind else ("这次没有", "it came with none")
    return (
        f"请求体要用 JSON 发送，并带上 Content-Type: application/json（{came}）/ send the body as JSON"
        f" with the header Content-Type: application/json ({came_en})"
    )


UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's 400
NOT_UTF8_JSON = "请求体不是 UTF-8 编码的 JSON / the body is not JSON in UTF-8"
TOO_DEEP_JSON = "请求体的 JSON 嵌套太深 / the JSON in the body is nested too deeply"
TOO_LONG_NUMBER_JSON = "请求体的 JSON 里有个数字太长 / a number in the JSON body has too many digits"
CSRF_REFUSED = "页面已过期，请刷新后重试 / CSRF token missing or wrong: reload the page and try again"


def _csrf_refused() -> JSONResponse:
    return JSONResponse({"detail": CSRF_REFUSED}, 403)


async def _out_of_range(request: Request):
    if _wants_page(request):  # a person reads it, not the names of the address's parts
        return await _error_page(request, 422, out_of_range([]))
    return JSONResponse({"detail": out_of_range(_past_bigint(request))}, 422)


def _past_bigint(request: Request) -> list[str]:
    """The path and query parameters holding a whole number no database integer holds: the
    one the database refused (a number in a body is refused before, by its field's bounds)."""
    said = [*request.path_params.items(), *request.query_params.multi_items()]
    return list(dict.fromkeys(name for name, value in said if _whole_past_bigint(str(value))))


def _whole_past_bigint(text: str) -> bool:
    if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        return False
    try:
        return int(text) not in BIGINT
    except ValueError:  # more digits than int() reads (a text parameter: FastAPI refuses an int's)
        return True


# How much of a refused value the answer repeats (a 5 MB field had come back whole).
ECHO_CHARS = 200
ECHO_ITEMS = 20


# A refusal says which field, never repeats a password sent: proxies and the caller's own
# error log keep the answer.
SECRET_FIELDS = frozenset({"password"})
HIDDEN = "（已隐藏 / hidden）"


def _without_secrets(value):
    """`value` with every secret field's value hidden: a field's own error (its loc ends with
    it), the whole body a missing field's error repeats, and a body that came as one string
    naming such a field (a JSON document encoded twice, as a string)."""
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    if not isinstance(value, dict):
        return value
    loc = value.get("loc")
    if isinstance(loc, list | tuple) and loc and loc[-1] in SECRET_FIELDS and "input" in value:
        value = {**value, "input": HIDDEN}
    said = value.get("input")
    if list(loc or ()) == ["body"] and isinstance(said, str) and any(f in said for f in SECRET_FIELDS):
        value = {**value, "input": HIDDEN}
    return {k: HIDDEN if k in SECRET_FIELDS else _without_secrets(v) for k, v in value.items()}


def _echoable(value):
    """The validation errors as JSON can carry them: NaN / Infinity as text, a lone
    surrogate replaced (the encoder refused it: a 500 in place of the 422), long text and
    long lists and objects cut."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
        return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"
    if isinstance(value, list):
        return [_echoable(v) for v in value[:ECHO_ITEMS]] + (["…"] if len(value) > ECHO_ITEMS else [])
    if isinstance(value, dict):
        items = list(value.items())
        cut = {_echoable(k): _echoable(v) for k, v in items[:ECHO_ITEMS]}
        return cut | ({"…": f"{len(items) - ECHO_ITEMS} more"} if len(items) > ECHO_ITEMS else {})
    return value


async def _error_page(request: Request, status: int, message: str, clear: bool = False):
    title = PAGE_TITLES.get(status, f"出错了 / Error {status}")
    if status == 405 and request.method not in ("GET", "HEAD"):
        title = "不接受提交 / Not a form"
    if status == 404 and not clear:
        message = "这个页面不存在，或你没有权限查看。/ This page does not exist or is not yours."
    if not hasattr(request.state, "viewer"):
        # refused before any route asked who is signed in (an address that is no page, a NUL
        # in it): asked now, so that a signed-in person has the menu to go on from
        try:
            await auth.current_viewer(request)
        except SQLAlchemyError:  # the error is what they came for, not a 500 about the database
            request.state.viewer = None
    return render(request, "error.html", {"title": title, "message": message, "status": status}, status)
