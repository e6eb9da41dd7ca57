"""What no field of Siyu can hold, refused alike on every route and both databases before
any route reads it: a NUL character (PostgreSQL refuses one in text: a 500 deep in a query;
SQLite would store it) and, in JSON, a lone surrogate (the driver cannot encode it: a 500).
And bodies too large for any form or API call, refused before they are held in memory."""

from __future__ import annotations

import contextlib
import json

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NUL_REFUSED = "请求里有空字符（NUL），请去掉后再试 / the request holds a NUL character"
SURROGATE_REFUSED = "请求里有无效的 Unicode 字符（孤立的代理项）/ the request holds a lone surrogate"
TOO_LARGE = "请求太大 / the request body is too large"
# A JSON call or a form carries text: a megabyte is far more than any of them needs. Uploads
# (a channel's welcome image, 2 MB at most; a key file, 16 KB) come as multipart.
MAX_BODY = 1024 * 1024
MAX_MULTIPART_BODY = 4 * 1024 * 1024


class InputRefused(HTTPException):
    """What no route can take: the app answers it once it knows who calls (routes.py)."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail)


def _is_json(kind: str) -> bool:
    """As FastAPI reads a body as JSON: application/json or application/<anything>+json."""
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def body_kind(request: Request) -> str:
    """The media type the body says it is (application/json), lowercase, "" without one."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def sent_as_json(request: Request) -> bool:
    return _is_json(body_kind(request))


async def refuse_nul(request: Request) -> None:
    """A route dependency: 422 for a NUL in the path, the query or a text field of the body
    (JSON, urlencoded or multipart; an uploaded file may hold any bytes), or a lone surrogate
    in a JSON body. The body is read as the route reads it (Starlette keeps it and the JSON
    document parsed from it)."""
    query = request.scope.get("query_string", b"")
    if "\x00" in request.scope.get("path", "") or b"%00" in query or b"\x00" in query:
        raise InputRefused(NUL_REFUSED)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    kind = body_kind(request)
    if _is_json(kind):
        try:  # (Starlette keeps the document: FastAPI's own reading of the body parsed it once)
            document = await request.json()
        except (ValueError, RecursionError):  # the route answers that it is not JSON
            return
        _check_texts(_texts(document))
    elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # the bytes kept first, so a route may still read them raw or as a form; a form parsed
        # already (a route's Form() fields) left no bytes, and Starlette keeps that form
        with contextlib.suppress(RuntimeError):
            await request.body()
        form = await request.form()
        _check_texts(
            text
            for key, value in form.multi_items()
            for text in (key, value)
            if not isinstance(text, UploadFile)
        )


def _texts(document):
    """Every string of a JSON document, keys too (without recursion: any depth)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_texts(texts) -> None:
    for text in texts:
        if "\x00" in text:
            raise InputRefused(NUL_REFUSED)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InputRefused(SURROGATE_REFUSED) from None


class BodyLimit:
    """ASGI middleware: a request body over MAX_BODY (MAX_MULTIPART_BODY for uploads) is
    answered 413 as soon as its Content-Length says so or its bytes pass the limit, whoever
    sends it (routes read the body before they check the login). WeCom's callbacks keep
    their own, smaller limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/wecom/callback/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        limit = MAX_MULTIPART_BODY if kind == b"multipart/form-data" else MAX_BODY
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _Overflow()
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _Overflow:
            if not started:
                await _too_large(send)


class _Overflow(HTTPException):
    """Raised where the route reads the body: FastAPI passes an HTTPException on as it is (any
    other error while reading becomes a 400), and the app's handler answers it."""

    def __init__(self) -> None:
        super().__init__(413, TOO_LARGE)


async def _too_large(send: Send) -> None:
    body = json.dumps({"detail": TOO_LARGE}, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
