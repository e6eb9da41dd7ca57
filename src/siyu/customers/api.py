"""JSON API: customers, channels and tags under /api/v1 (thin: queries read, services write).

Auth is the web session cookie; unsafe methods also need the `X-CSRF-Token` header (its
value is in `GET /api/v1/me`). A customer or channel that is missing, belongs to another
tenant, or is outside the caller's role scope answers 404 `{"detail": "not found"}`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from siyu.customers import channels as channel_service
from siyu.customers import queries, tag_sync
from siyu.customers.channels import ChannelError, ChannelSpec
from siyu.customers.models import Channel
from siyu.customers.schemas import (
    ChannelCreate,
    ChannelOut,
    ChannelPatch,
    ChannelStats,
    ChannelTagFailures,
    CustomerPage,
    CustomerProfile,
    FollowStatus,
    TagOut,
    TimelineEventOut,
)
from siyu.db.paging import BadCursor
from siyu.tenancy import timezones
from siyu.tenancy.queries import as_stored, members_as_stored
from siyu.web.api_errors import (
    ADMIN_WRITE,
    API_RESPONSES,
    NOT_FOUND,
    WECOM_FAILED,
    error,
    not_found,
)
from siyu.web.api_etag import etag, if_match, if_match_header, not_an_etag
from siyu.web.api_paging import After, Before, PageNumber, one_way_of_paging
from siyu.web.auth import ApiViewer, Viewer, require_admin

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["customers"], responses=API_RESPONSES)
NAME_TAKEN = {
    409: error(
        "an enabled channel of the tenant has the name (case, spaces, full width, invisible characters aside)"
    )
}


# ---------------------------------------------------------------- customers


@router.get("/customers", response_model=CustomerPage, summary="List customers")
def list_customers(
    request: Request,
    viewer: ApiViewer,
    q: Annotated[str, Query(max_length=100, description="name, remark or phone number")] = "",
    tag: Annotated[int | None, Query(description="tag id (from /api/v1/tags)")] = None,
    channel: Annotated[int | None, Query(description="channel id")] = None,
    staff: Annotated[str | None, Query(max_length=64, description="staff userid, in any case")] = None,
    added_from: Annotated[date | None, Query(description="follow added on or after (YYYY-MM-DD)")] = None,
    added_to: Annotated[date | None, Query(description="follow added on or before (YYYY-MM-DD)")] = None,
    status: Annotated[FollowStatus | None, Query(description="follow status")] = None,
    page: PageNumber = 1,
    per_page: Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE)] = 20,
    after: After = None,
    before: Before = None,
):
    """Newest first (by when the customer was first added). Page with `next` / `prev`: unlike
    page numbers, they show no customer twice and skip none when customers are added between
    two requests."""
    if added_from and added_to and added_from > added_to:
        raise HTTPException(422, "added_from 不能晚于 added_to / added_from must not be after added_to")
    one_way_of_paging(page, after, before)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        f = queries.CustomerFilter(q, tag, channel, as_stored(s, staff), added_from, added_to, status)
        try:
            result = queries.list_customers(s, viewer, f, page, per_page, after=after, before=before)
        except BadCursor as e:
            raise HTTPException(422, str(e)) from None
    return {
        "items": result.items,
        "total": result.total,
        "page": result.page,
        "per_page": result.per_page,
        "pages": result.pages,
        "next": result.next,
        "prev": result.prev,
    }


@router.get("/customers/{customer_id}", response_model=CustomerProfile, responses=NOT_FOUND)
def get_customer(request: Request, viewer: ApiViewer, customer_id: int):
    """One customer with the follow relations (and their tags) the caller may see."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        found = queries.profile(s, viewer, customer_id)
    if found is None:
        raise not_found()
    return found


@router.get("/customers/{customer_id}/timeline", response_model=list[TimelineEventOut], responses=NOT_FOUND)
def get_timeline(
    request: Request,
    viewer: ApiViewer,
    customer_id: int,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    before: Annotated[
        int | None,
        Query(
            description="an entry's id (the last of a page; a wait's is negative): the entries older than it"
        ),
    ] = None,
):
    """The customer's events, newest first (of the staff members the caller may see), with
    each time the customer wrote and waited for a reply (`wait`, in the chats the caller may
    read); the next page is `before` the last entry's id."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        try:
            found = queries.timeline(s, viewer, customer_id, limit, before, now=request.app.state.rt.now())
        except queries.UnknownEvent as exc:
            raise HTTPException(422, str(exc)) from None
    if found is None:
        raise not_found()
    return found


@router.get("/tags", response_model=list[TagOut], tags=["tags"])
def list_tags(request: Request, viewer: ApiViewer, include_deleted: bool = False):
    """The corp's customer tags as synced from WeCom, by group and name."""
    from siyu.customers.models import Tag

    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        stmt = select(Tag).order_by(Tag.group_name, Tag.name)
        if not include_deleted:
            stmt = stmt.where(Tag.deleted.is_(False))
        return [queries.tag_dict(t) for t in s.scalars(stmt)]


# ---------------------------------------------------------------- channels (shared with the pages)


def channel_dict(channel: Channel, totals: dict, departed: dict[str, str]) -> dict:
    """`departed`: the members who left or were disabled (queries.departed_staff): an enabled
    code still hands scans to them, and nobody would know."""
    gone = [departed[u] for u in channel.staff_userids or [] if u in departed] if channel.enabled else []
    return {
        "id": channel.id,
        "name": channel.name,
        "state": channel.state,
        "enabled": channel.enabled,
        "staff_userids": list(channel.staff_userids or []),
        "department_ids": list(channel.department_ids or []),
        "way_type": channel.way_type,
        "skip_verify": channel.skip_verify,
        "tag_ids": list(channel.tag_ids or []),
        "welcome_text": channel.welcome_text,
        "welcome_link": dict(channel.welcome_link or {}),
        "welcome_image_url": channel.welcome_image_url,
        "notice": "；".join(n for n in (channel.notice, departed_notice(channel, gone)) if n),
        "departed": gone,  # (marked where the members are shown: not in ChannelOut)
        "created_at": channel.created_at,
        "updated_by": channel.updated_by,  # (for a stale edit's notice: not in ChannelOut)
        "qr_url": f"/api/v1/channels/{channel.id}/qr.png" if channel.enabled else None,
        "totals": totals,
    }


def departed_notice(channel: Channel, gone: list[str]) -> str:
    if not gone:
        return ""
    names = "、".join(gone)
    if len(gone) == len(channel.staff_userids or []) and not channel.department_ids:
        return f"接待成员 {names} 已离职或停用，扫码的客户无人接待：请换一位成员"
    return f"{names} 已离职或停用，不再接待：可从接待成员中移除"


def titled_link(link: dict) -> dict:
    """A link saved with a URL and no title, before both were asked for, titled as it has been
    sent (by its URL): it is kept when the channel's other fields change."""
    if link.get("url") and not link.get("title"):
        return {**link, "title": link["url"]}
    return link


def load_channel(rt, viewer: Viewer, channel_id: int) -> dict | None:
    with rt.db.tenant_session(viewer.tenant_id) as s:
        channel = s.get(Channel, channel_id)
        if channel is None:
            return None
        return channel_dict(channel, channel_totals(s, viewer, channel.id), queries.departed_staff(s))


def channel_totals(session, viewer: Viewer, channel_id: int) -> dict:
    """The channel's figures within the viewer's scope."""
    return channel_service.totals(session, viewer).get(channel_id) or channel_service.empty_totals(viewer)


def with_stored_members(rt, viewer: Viewer, spec: ChannelSpec) -> ChannelSpec:
    """`spec` with its members as the sync stored their userids: WeCom's ignore case, so a
    script's ZhangSan is zhangsan, and is sent to WeCom, kept and counted as zhangsan."""
    with rt.db.tenant_session(viewer.tenant_id) as s:
        return replace(spec, staff_userids=members_as_stored(s, spec.staff_userids))


def spec_problems(rt, viewer: Viewer, spec: ChannelSpec, kept: list[str] | None = None) -> list[str]:
    """`kept`: the members of the channel being changed (queries.channel_ref_problems)."""
    with rt.db.tenant_session(viewer.tenant_id) as s:
        return queries.channel_ref_problems(s, spec.staff_userids, spec.department_ids, spec.tag_ids, kept)


async def fetch_qr(rt, viewer: Viewer, channel_id: int) -> tuple[bytes, str, str]:
    """The channel's QR image, fetched server-side from WeCom's URL: (bytes, type, name)."""

    def read() -> tuple[str, str]:
        with rt.db.tenant_session(viewer.tenant_id) as s:
            channel = s.get(Channel, channel_id)
            if channel is None or not channel.qr_code:
                raise LookupError(channel_id)
            if not channel.enabled:  # its code was deleted in WeCom: no image to fetch, nor to print
                raise HTTPException(410, QR_OF_DISABLED)
            return channel.qr_code, channel.name

    url, name = await run_in_threadpool(read)
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
            resp = await client.get(url)
            resp.raise_for_status()
    except httpx.HTTPError as exc:
        # httpx's own words (its URL, a link to MDN) are for the log, not for whoever prints a poster
        log.warning("channel %s: QR image not fetched: %r", channel_id, exc)
        raise QrUnavailable(QR_UNAVAILABLE) from exc
    content = resp.content
    # labelled by its own bytes, never by the answer's Content-Type: served from Siyu's site, an
    # HTML answer there (a compromised host, a network in between) would run as a Siyu page
    ctype = next((kind for magic, kind in _IMAGES if content.startswith(magic)), None)
    if ctype is None:
        log.warning("channel %s: the QR address answered no PNG or JPEG image", channel_id)
        raise QrUnavailable(QR_UNAVAILABLE)
    return content, ctype, name


_IMAGES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


QR_OF_DISABLED = "渠道已停用，二维码已失效 / the channel is disabled: its QR code no longer works"
QR_UNAVAILABLE = "二维码图片暂时取不到，请稍后再试 / could not fetch the QR image from WeCom: try again later"


class QrUnavailable(RuntimeError):
    pass


def qr_response(content: bytes, ctype: str, name: str, download: bool) -> Response:
    headers = {"Cache-Control": "private, max-age=300"}
    if download:
        filename = f"渠道-{name}.{'jpg' if ctype == 'image/jpeg' else 'png'}"
        safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in filename)
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(filename, safe='')}"
        )
    return Response(content, media_type=ctype, headers=headers)


def merged_spec(current: dict, patch: dict) -> ChannelSpec:
    merged = {**current, **{k: v for k, v in patch.items()}}
    if "welcome_link" not in patch:
        merged["welcome_link"] = titled_link(merged.get("welcome_link") or {})
    return ChannelSpec(
        name=merged["name"],
        staff_userids=list(merged["staff_userids"] or []),
        department_ids=[int(d) for d in merged["department_ids"] or []],
        skip_verify=bool(merged["skip_verify"]),
        tag_ids=list(merged["tag_ids"] or []),
        welcome_text=merged["welcome_text"] or "",
        welcome_link=dict(merged["welcome_link"] or {}),
        welcome_image_url=merged["welcome_image_url"] or "",
    )


@router.get("/channels", response_model=list[ChannelOut], tags=["channels"])
def list_channels(request: Request, viewer: ApiViewer, include_disabled: bool = True):
    """Enabled channels first, newest first, each with its totals (of the caller's scope)."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        totals = channel_service.totals(s, viewer)
        stmt = select(Channel).order_by(Channel.enabled.desc(), Channel.created_at.desc(), Channel.id.desc())
        if not include_disabled:
            stmt = stmt.where(Channel.enabled.is_(True))
        departed = queries.departed_staff(s)
        return [
            channel_dict(c, totals.get(c.id) or channel_service.empty_totals(viewer), departed)
            for c in s.scalars(stmt)
        ]


@router.post(
    "/channels",
    response_model=ChannelOut,
    status_code=201,
    responses={**ADMIN_WRITE, **NAME_TAKEN, **WECOM_FAILED},
    tags=["channels"],
)
async def create_channel(request: Request, viewer: ApiViewer, body: ChannelCreate):
    """Creates the "contact me" code in WeCom, then the channel. Admins only."""
    require_admin(viewer)
    rt = request.app.state.rt
    data = body.model_dump()
    spec = merged_spec(
        {"name": body.name, "skip_verify": True, "welcome_link": {}, "welcome_image_url": ""}, data
    )
    spec = await run_in_threadpool(with_stored_members, rt, viewer, spec)
    problems = await run_in_threadpool(spec_problems, rt, viewer, spec)
    if problems:
        raise HTTPException(422, "; ".join(problems))
    channel_id = await channel_service.create_channel(rt, viewer.tenant_id, spec, viewer.signature)
    return await run_in_threadpool(load_channel, rt, viewer, channel_id)


@router.get("/channels/{channel_id}", response_model=ChannelOut, responses=NOT_FOUND, tags=["channels"])
def get_channel(request: Request, response: Response, viewer: ApiViewer, channel_id: int):
    """One channel with its totals (of the caller's scope). Its `ETag` header is the version
    of what PATCH changes, for PATCH's `If-Match`."""
    found = load_channel(request.app.state.rt, viewer, channel_id)
    if found is None:
        raise not_found()
    response.headers["ETag"] = etag(channel_service.channel_version(found))
    return found


def changed_since_etag(by: str) -> str:
    """The 412's detail, naming who saved the channel last where that is known."""
    if not by:
        return "渠道已被修改，请重新读取后再改 / the channel changed since the ETag you sent; read it again"
    return (
        f"渠道已被「{by}」修改，请重新读取后再改 / {by} changed the channel since the ETag you sent;"
        " read it again"
    )


IfMatch = if_match_header("/channels/{id}")
NOT_AN_ETAG = not_an_etag("该渠道", "/api/v1/channels/{id}")


@router.patch(
    "/channels/{channel_id}",
    response_model=ChannelOut,
    responses={
        **NOT_FOUND,
        **ADMIN_WRITE,
        409: error("the channel is disabled: it cannot be changed; or an enabled one has the name"),
        400: error("If-Match names no version Siyu gave (use the ETag of GET)"),
        412: error("If-Match names a version the channel is no longer at: someone changed it since"),
        **WECOM_FAILED,
    },
    tags=["channels"],
)
async def patch_channel(
    request: Request,
    response: Response,
    viewer: ApiViewer,
    channel_id: int,
    body: ChannelPatch,
    typed_if_match: IfMatch = None,
):
    """Updates the code in WeCom, then the channel. Admins only. With `If-Match: "<ETag of
    GET>"` (or several: any may match), refused (412, nothing changed) when someone changed
    the channel since; without it, the last change wins."""
    require_admin(viewer)
    rt = request.app.state.rt
    current = await run_in_threadpool(load_channel, rt, viewer, channel_id)
    if current is None:
        raise not_found()
    if not current["enabled"]:
        raise HTTPException(409, "渠道已停用，不能修改 / the channel is disabled")
    now = channel_service.channel_version(current)
    drawn = if_match(typed_if_match, now, changed_since_etag(current["updated_by"]), NOT_AN_ETAG)
    spec = merged_spec(current, body.model_dump(exclude_unset=True))
    spec = await run_in_threadpool(with_stored_members, rt, viewer, spec)
    problems = await run_in_threadpool(spec_problems, rt, viewer, spec, current["staff_userids"])
    if problems:
        raise HTTPException(422, "; ".join(problems))
    try:
        by = viewer.signature
        await channel_service.update_channel(rt, viewer.tenant_id, channel_id, spec, drawn, by)
    except LookupError:
        raise not_found() from None
    except channel_service.ChannelChanged as exc:  # (saved by someone else while WeCom answered)
        raise HTTPException(412, changed_since_etag(exc.by)) from None
    found = await run_in_threadpool(load_channel, rt, viewer, channel_id)
    response.headers["ETag"] = etag(channel_service.channel_version(found))
    return found


@router.post(
    "/channels/{channel_id}/disable",
    response_model=ChannelOut,
    responses={**NOT_FOUND, **ADMIN_WRITE, **WECOM_FAILED},
    tags=["channels"],
)
async def disable_channel(request: Request, viewer: ApiViewer, channel_id: int):
    """Deletes the code in WeCom (scans stop working); the channel and its history stay. Admins only."""
    require_admin(viewer)
    rt = request.app.state.rt
    try:
        await channel_service.disable_channel(rt, viewer.tenant_id, channel_id)
    except LookupError:
        raise not_found() from None
    return await run_in_threadpool(load_channel, rt, viewer, channel_id)


@router.get(
    "/channels/{channel_id}/stats", response_model=ChannelStats, responses=NOT_FOUND, tags=["channels"]
)
def channel_stats(
    request: Request, viewer: ApiViewer, channel_id: int, days: Annotated[int, Query(ge=1, le=366)] = 30
):
    """The channel's adds, losses, deletions and net per day, in the tenant's time zone, for
    the last `days`, of the caller's scope as the totals are."""
    rt = request.app.state.rt
    today = timezones.today(viewer.timezone, rt.now())
    with rt.db.tenant_session(viewer.tenant_id) as s:
        if s.get(Channel, channel_id) is None:
            raise not_found()
        return {
            "channel_id": channel_id,
            "totals": channel_totals(s, viewer, channel_id),
            "days": channel_service.daily_stats(s, channel_id, viewer, today, days),
        }


def tag_failures(rt, viewer: Viewer, channel_id: int) -> dict | None:
    with rt.db.tenant_session(viewer.tenant_id) as s:
        if s.get(Channel, channel_id) is None:
            return None
        return tag_sync.of_channel(s, channel_id, queries.visible_follow(viewer))


@router.get(
    "/channels/{channel_id}/tag_failures",
    response_model=ChannelTagFailures,
    responses=NOT_FOUND,
    tags=["channels"],
)
def channel_tag_failures(request: Request, viewer: ApiViewer, channel_id: int):
    """Customers added through the channel in the last 30 days whose channel tags WeCom
    refused (a tag deleted there, the customer gone): they carry the tags in Siyu only."""
    found = tag_failures(request.app.state.rt, viewer, channel_id)
    if found is None:
        raise not_found()
    return found


@router.get(
    "/channels/{channel_id}/qr.png",
    responses={
        **NOT_FOUND,
        200: {"content": {"image/png": {}}},
        410: error("the channel is disabled: its code was deleted in WeCom"),
        502: error("WeCom's image could not be fetched"),
    },
    response_class=Response,
    tags=["channels"],
)
async def channel_qr(request: Request, viewer: ApiViewer, channel_id: int, download: bool = False):
    """The channel's QR code as an image; `?download=1` for a poster file (渠道-<name>.png)."""
    try:
        content, ctype, name = await fetch_qr(request.app.state.rt, viewer, channel_id)
    except LookupError:
        raise not_found() from None
    except QrUnavailable as exc:
        raise HTTPException(502, str(exc)) from exc
    return qr_response(content, ctype, name, download)


__all__ = ["router", "ChannelError"]
