"""`/wecom/callback/{tenant}`: WeCom's URL check (GET) and event delivery (POST)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from siyu.intake.service import UnknownTenant
from siyu.wecom.crypto import CallbackCryptoError, InvalidSignature
from siyu.wecom.events import MalformedXML

router = APIRouter(tags=["wecom"])
log = logging.getLogger(__name__)


def _refuse(exc: Exception, slug: str) -> PlainTextResponse:
    if isinstance(exc, UnknownTenant):
        return PlainTextResponse("unknown tenant", status_code=404)
    if isinstance(exc, InvalidSignature):
        log.warning("callback for %s refused: bad signature", slug)
        return PlainTextResponse("invalid signature", status_code=403)
    log.warning("callback for %s refused: %s", slug, exc)
    return PlainTextResponse(f"bad request: {exc}", status_code=400)


@router.get("/wecom/callback/{slug}", response_class=PlainTextResponse)
def verify_url(
    slug: str,
    request: Request,
    msg_signature: str = Query(...),
    timestamp: str = Query(...),
    nonce: str = Query(...),
    echostr: str = Query(...),
):
    """WeCom's URL check: answer the decrypted echostr, nothing else."""
    try:
        return PlainTextResponse(
            request.app.state.rt.intake.verify_url(slug, msg_signature, timestamp, nonce, echostr)
        )
    except (UnknownTenant, CallbackCryptoError, UnicodeDecodeError) as exc:
        return _refuse(exc, slug)


@router.post("/wecom/callback/{slug}", response_class=PlainTextResponse)
async def receive(
    slug: str,
    request: Request,
    msg_signature: str = Query(...),
    timestamp: str = Query(...),
    nonce: str = Query(...),
):
    """Verify, decrypt, store once, answer at once; processing happens in the worker."""
    rt = request.app.state.rt
    body = await request.body()
    try:
        row = rt.intake.open(slug, body, msg_signature, timestamp, nonce)
    except (UnknownTenant, CallbackCryptoError, MalformedXML) as exc:
        return _refuse(exc, slug)
    await request.app.state.event_writer.store(row)
    rt.events_waiting.set()
    return PlainTextResponse("")
