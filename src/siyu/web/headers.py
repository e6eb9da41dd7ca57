"""Response headers that keep other sites from misusing Siyu's pages in a browser."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siyu.web.templating import STATIC_VERSION

# No page of Siyu is meant to be shown inside another site's frame: without these, any site
# could load the signed-in setup page or a chat invisibly under its own buttons and have an
# admin click 停用 or 重新生成 (clickjacking). And nothing is to be read as another type than
# the one it is sent as (an answer sniffed into HTML or script).
HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]
# Pages and the API show customers' names, numbers and chats: nothing a browser may keep, or
# Back after 退出 on a shared computer (or a phone passed round) showed the last customer
# again. Style, script and the API docs' assets hold nothing of anyone's and stay cacheable.
NO_STORE = (b"cache-control", b"no-store")
_CACHEABLE = ("/static/", "/api/docs/static/")
# Pages ask for style and script by their digest (`?v=`, templating.static_version): that
# address never changes its answer, so a browser keeps it a year without asking. Asked for
# otherwise, they are checked with the server each time (ETag), never kept stale.
KEPT = (b"cache-control", b"public, max-age=31536000, immutable")
CHECKED = (b"cache-control", b"no-cache")


class SecurityHeaders:
    """ASGI middleware: HEADERS, and NO_STORE but on static files, on every answer but WeCom's
    callbacks (server to server, the hottest path), unless a route set one of them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/wecom/callback/"):
            await self.app(scope, receive, send)
            return

        kept = scope["path"].startswith(_CACHEABLE)
        cache = KEPT if kept and scope["path"].startswith("/static/") and _versioned(scope) else CHECKED

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in HEADERS if h[0] not in present)
                if NO_STORE[0] not in present:
                    headers.append(cache if kept else NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _versioned(scope: Scope) -> bool:
    return f"v={STATIC_VERSION}" in scope.get("query_string", b"").decode("latin-1").split("&")
