"""`/wecom/callback/{tenant}`: WeCom's URL check (GET) and event delivery (POST).

`/wecom/callback/{tenant}/archive` is the same for the 会话存档 app, which WeCom configures
separately (its own URL, Token and EncodingAESKey): verified with the archive's pair and
taking msgaudit_notify only.

Plain Starlette routes rather than FastAPI ones: this is the hottest path in Siyu and it
speaks WeCom's protocol, not our API, so it needs neither validation models nor a place
in the OpenAPI docs.
"""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from siyu.intake.service import ARCHIVE, MAIN, Channel, ChannelNotConfigured, UnexpectedEvent, UnknownTenant
from siyu.wecom.crypto import CallbackCryptoError, InvalidSignature
from siyu.wecom.events import MalformedXML

log = logging.getLogger(__name__)
OK = PlainTextResponse("")


_last_unknown_logged = 0.0


def _refuse(exc: Exception, slug: str, channel: Channel) -> PlainTextResponse:
    global _last_unknown_logged
    if isinstance(exc, UnknownTenant):
        # said at most once a minute: anyone may call this URL with any slug
        if time.monotonic() - _last_unknown_logged > 60:
            _last_unknown_logged = time.monotonic()
            log.warning(
                "callback for unknown tenant %r refused (404): the callback URL in WeCom must end with a"
                " slug `siyu tenant list` shows",
                slug[:64],
            )
        return PlainTextResponse("unknown tenant", status_code=404)
    if isinstance(exc, ChannelNotConfigured):
        log.warning("callback for %s refused: %s", slug, exc)
        return PlainTextResponse("this callback URL is not configured for the tenant", status_code=404)
    if isinstance(exc, InvalidSignature) and channel == ARCHIVE:
        # the 会话存档 app has a pair of its own: the main callback's form is not where to look
        log.warning(
            "archive callback for %s refused: bad signature (the Token or EncodingAESKey in WeCom's"
            " 会话内容存档 → 接收事件服务器 form is not the 会话存档 pair Siyu has: compare the 会话存档"
            " callback on /setup/archive, or give Siyu WeCom's with `siyu tenant archive-callback %s"
            " --token ... --aes-key ...`; or the request is not WeCom's)",
            slug,
            slug,
        )
        return PlainTextResponse("invalid signature", status_code=403)
    if isinstance(exc, InvalidSignature):
        log.warning(
            "callback for %s refused: bad signature (the Token or EncodingAESKey in WeCom's 接收事件服务器"
            " form is not the one Siyu has, see `siyu tenant show %s`; or the request is not WeCom's)",
            slug,
            slug,
        )
        return PlainTextResponse("invalid signature", status_code=403)
    log.warning("callback for %s refused: %s", slug, exc)
    return PlainTextResponse(f"bad request: {exc}", status_code=400)


def _query(request: Request, *names: str) -> list[str]:
    values = [request.query_params.get(name) for name in names]
    missing = [n for n, v in zip(names, values, strict=True) if not v]
    if missing:
        raise MalformedXML(f"missing query parameter(s): {', '.join(missing)}")
    return values


# WeCom's callbacks are a few KB of XML. Anyone may post to the URL, and the signature can only
# be checked once the body is read: a larger one is refused before it is held in memory.
MAX_BODY = 256 * 1024


async def _capped_body(request: Request) -> bytes | None:
    """The request's body, or None when it is over MAX_BODY (said or found)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def callback(request: Request) -> PlainTextResponse:
    return await _callback(request, MAIN)


async def archive_callback(request: Request) -> PlainTextResponse:
    return await _callback(request, ARCHIVE)


async def _opened(
    intake, slug: str, body: bytes, signature: str, timestamp: str, nonce: str, channel: Channel
):
    """intake.open on the loop while the URL's keys are cached (the hot path: a thread's hop
    for each callback costs), else in a thread: the keys are read from the database, which may
    be slow to answer (an outage), and the loop serves every other request meanwhile."""
    if intake.cached(slug, channel):
        try:
            return intake.open(slug, body, signature, timestamp, nonce, channel, reread=False)
        except CallbackCryptoError:
            pass  # the keys may have changed elsewhere: read afresh, in a thread
    return await run_in_threadpool(intake.open, slug, body, signature, timestamp, nonce, channel)


async def _callback(request: Request, channel: Channel) -> PlainTextResponse:
    slug = request.path_params["slug"]
    intake = request.app.state.rt.intake
    try:
        if request.method == "GET":  # WeCom's URL check: answer the decrypted echostr, nothing else
            signature, timestamp, nonce, echostr = _query(
                request, "msg_signature", "timestamp", "nonce", "echostr"
            )
            echo = await run_in_threadpool(
                intake.verify_url, slug, signature, timestamp, nonce, echostr, channel
            )
            return PlainTextResponse(echo)
        signature, timestamp, nonce = _query(request, "msg_signature", "timestamp", "nonce")
        body = await _capped_body(request)
        if body is None:
            log.warning("callback for %s refused: body over %d bytes", slug, MAX_BODY)
            return PlainTextResponse("callback body too large", status_code=413)
        row = await _opened(intake, slug, body, signature, timestamp, nonce, channel)
    except (
        UnknownTenant,
        ChannelNotConfigured,
        CallbackCryptoError,
        MalformedXML,
        UnexpectedEvent,
        UnicodeDecodeError,
    ) as exc:
        return _refuse(exc, slug, channel)
    # Stored (group commit) before WeCom gets its answer; processing happens in the worker.
    await request.app.state.event_writer.store(row)
    request.app.state.rt.wake()
    return OK


routes = [
    Route("/wecom/callback/{slug}", callback, methods=["GET", "POST"]),
    Route("/wecom/callback/{slug}/archive", archive_callback, methods=["GET", "POST"]),
]
