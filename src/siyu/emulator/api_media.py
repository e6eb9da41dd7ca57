"""Media (REFERENCE.md section 15): media/upload (temporary, 3 days), media/uploadimg
(permanent URL, served by the emulator) and media/get."""

from __future__ import annotations

from fastapi.responses import Response
from starlette.datastructures import UploadFile

from .cgi import Ctx, api
from .errors import WeComError
from .state import Media, rand_id

MB = 1024 * 1024
# type -> (max bytes, errcode when larger); everything must be larger than 5 bytes.
LIMITS = {
    "image": (10 * MB, 40009),
    "voice": (2 * MB, 40006),
    "video": (10 * MB, 40011),
    "file": (20 * MB, 40006),
}
UPLOADIMG_MAX = 2 * MB


async def _media_part(ctx: Ctx) -> UploadFile:
    try:
        form = await ctx.request.form()
    except Exception as exc:  # not multipart at all: same as an empty media part
        raise WeComError(44001) from exc
    part = form.get("media")  # WeCom requires the part name `media` (anything else: 44001)
    if not isinstance(part, UploadFile):
        raise WeComError(44001)
    return part


@api("media/upload", methods=("POST",), ok_errmsg="")  # the doc sample's errmsg is empty
async def upload(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    kind = ctx.query.get("type", "")
    if kind not in LIMITS:
        raise WeComError(40005)
    part = await _media_part(ctx)
    data = await part.read()
    max_size, too_big = LIMITS[kind]
    if len(data) <= 5:
        raise WeComError(40006)
    if len(data) > max_size:
        raise WeComError(too_big)
    created = int(ctx.state.now())
    media = Media(rand_id("3", 63), kind, part.filename or "media", part.content_type or "", data, created)
    corp.media[media.media_id] = media
    # created_at is a string here (REFERENCE 15.1), unlike upload_attachment.
    return {"type": kind, "media_id": media.media_id, "created_at": str(created)}


@api("media/uploadimg", methods=("POST",))
async def uploadimg(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    part = await _media_part(ctx)
    data = await part.read()
    if len(data) <= 5 or len(data) > UPLOADIMG_MAX:
        raise WeComError(40009)
    key = rand_id(n=24)
    corp.images[key] = Media(
        key, "image", part.filename or "image", part.content_type or "image/png", data, int(ctx.state.now())
    )
    return {"url": image_url(ctx.base_url, corp.corp_id, key)}


def image_url(base: str, corp_id: str, key: str) -> str:
    return f"{base}/_emulator/img/{corp_id}/{key}"


def live_media(ctx: Ctx, media_id: str, kind: str | None = None) -> Media:
    """A media_id this corp uploaded, not older than 3 days (else 40007)."""
    media = ctx.need_corp().media.get(media_id or "")
    if media is None or media.created_at + ctx.state.config.media_ttl_s < ctx.state.now():
        raise WeComError(40007)
    if kind and media.type != kind:
        raise WeComError(40004)
    return media


@api("media/get", methods=("GET",))
async def media_get(ctx: Ctx) -> Response:
    media_id = ctx.query.get("media_id", "")
    if not media_id:
        raise WeComError(41006)
    media = live_media(ctx, media_id)
    return Response(
        media.data,
        media_type=media.content_type or "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{media.filename}"'},
    )
