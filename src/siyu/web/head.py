"""HEAD answered as GET is, headers and all, without the body: uptime monitors and `curl -I`
ask with HEAD. Starlette's own routes take HEAD wherever they take GET; FastAPI's take only the
methods they name, and naming HEAD on each would put a HEAD twin of every GET in the spec (and
make the GET's operationId, taken from the first of its methods, sometimes the HEAD's)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: a HEAD request runs once, as the GET it asks about (a path taking no GET
    answers its 405), and only the answer's status and headers are sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
