"""`/wecom/callback/{tenant}`: WeCom's URL check (GET) and event delivery (POST).

Plain Starlette routes rather than FastAPI ones: this is the hottest path in Siyu and it
speaks WeCom's protocol, not our API, so it needs neither validation models nor a place
in the OpenAPI docs.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from siyu.intake.service import UnknownTenant
from siyu.wecom.crypto import CallbackCryptoError, InvalidSignature
from siyu.wecom.events import MalformedXML

log = logging.getLogger(__name__)
OK = PlainTextResponse("")


def _refuse(exc: Exception, slug: str) -> PlainTextResponse:
    if isinstance(exc, UnknownTenant):
        return PlainTextResponse("unknown tenant", status_code=404)
    if isinstance(exc, InvalidSignature):
        log.warning("callback for %s refused: bad signature", slug)
        return PlainTextResponse("invalid signature", status_code=403)
    log.warning("callback for %s refused: %s", slug, exc)
    return PlainTextResponse(f"bad request: {exc}", status_code=400)


def _query(request: Request, *names: str) -> list[str]:
    values = [request.query_params.get(name) for name in names]
    missing = [n for n, v in zip(names, values, strict=True) if not v]
    if missing:
        raise MalformedXML(f"missing query parameter(s): {', '.join(missing)}")
    return values


async def callback(request: Request) -> PlainTextResponse:
    slug = request.path_params["slug"]
    intake = request.app.state.rt.intake
    try:
        if request.method == "GET":  # WeCom's URL check: answer the decrypted echostr, nothing else
            signature, timestamp, nonce, echostr = _query(
                request, "msg_signature", "timestamp", "nonce", "echostr"
            )
            return PlainTextResponse(intake.verify_url(slug, signature, timestamp, nonce, echostr))
        signature, timestamp, nonce = _query(request, "msg_signature", "timestamp", "nonce")
        row = intake.open(slug, await request.body(), signature, timestamp, nonce)
    except (UnknownTenant, CallbackCryptoError, MalformedXML, UnicodeDecodeError) as exc:
        return _refuse(exc, slug)
    # Stored (group commit) before WeCom gets its answer; processing happens in the worker.
    await request.app.state.event_writer.store(row)
    request.app.state.rt.wake()
    return OK


routes = [Route("/wecom/callback/{slug}", callback, methods=["GET", "POST"])]
