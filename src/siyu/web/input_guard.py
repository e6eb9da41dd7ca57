"""Refusing, alike on every route and both databases, what no field of Siyu can hold: a NUL
character. PostgreSQL refuses one in text (a 500 deep in a query), SQLite would store it."""

from __future__ import annotations

import re

from fastapi import HTTPException, Request

NUL_REFUSED = "请求里有空字符（NUL），请去掉后再试 / the request holds a NUL character"
# \u0000 in JSON text, unless its backslash is itself escaped (\\u0000 is the six characters)
JSON_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
_CHECKED_BODIES = ("application/json", "application/x-www-form-urlencoded")


async def refuse_nul(request: Request) -> None:
    """A route dependency: 422 for a NUL in the path, the query or a JSON or form body (an
    uploaded file may hold any bytes, and is checked by what reads it)."""
    query = request.scope.get("query_string", b"")
    if "\x00" in request.scope.get("path", "") or b"%00" in query or b"\x00" in query:
        raise HTTPException(422, NUL_REFUSED)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _CHECKED_BODIES:
        return
    body = await request.body()  # kept by the request: the route reads it again for nothing
    found = b"%00" in body if kind.endswith("urlencoded") else JSON_NUL.search(body)
    if b"\x00" in body or found:
        raise HTTPException(422, NUL_REFUSED)
