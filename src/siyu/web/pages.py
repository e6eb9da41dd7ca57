"""The web UI's pages: dashboard, customers, channels, staff, setup (server-rendered, Chinese first)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from siyu.conversations import queries as conversation_queries
from siyu.conversations.models import ArchiveCursor
from siyu.customers import channels as channel_service
from siyu.customers import queries, tag_sync, welcome
from siyu.customers.api import (
    QrUnavailable,
    channel_dict,
    channel_totals,
    fetch_qr,
    load_channel,
    qr_response,
    spec_problems,
    titled_link,
)
from siyu.customers.channels import ChannelChanged, ChannelError, ChannelSpec, channel_version
from siyu.customers.models import Channel
from siyu.db.versions import FORM_NOT_DRAWN, well_formed
from siyu.intake import failed
from siyu.intake.models import CallbackEvent
from siyu.intake.service import ARCHIVE_KINDS
from siyu.sla import service as sla_service
from siyu.tenancy import api_tokens, setting_changes, timezones
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import STAFF_NOT_ACTIVATED, Person, Staff, Tenant, gone_word
from siyu.tenancy.queries import as_stored, staff_gone
from siyu.tenancy.tasks import sync_staff
from siyu.web.auth import PageViewer, Viewer, require_admin
from siyu.web.channel_summary import channel_differences, channel_text
from siyu.web.stale_notice import changed_since, named_for, saved_by_viewer
from siyu.web.templating import STATUS_NAMES, render, wecom_message
from siyu.wecom.errors import WeComFailure

router = APIRouter(include_in_schema=False)

DONE = {
    "created": "渠道已创建，二维码可以使用了。",
    "saved": "已保存。",
    "disabled": "渠道已停用：扫码不再添加，历史数据保留。",
    "synced": "成员已同步。",
    "call_phone": "接电话提醒的手机号已保存。",
    "connected": "企业微信已连接，凭据检查通过。",
    "welcome": "默认欢迎语已保存：没有自己欢迎语的渠道和不经渠道添加的客户会收到它。",
    "timezone": "时区已保存：看板和首页的「今天」、工作时间和页面上的时间从现在起按它计算。",
}
MAX_IMAGE_BYTES = 2 * 1024 * 1024
NAME_CHARS = 200  # a company's name (Tenant.name)
# An image URL a refused form carries back (WeCom's media/uploadimg gave it), as the API takes one.
UPLOADED_IMAGE = re.compile(r"https?://\S{1,490}")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _not_found() -> HTTPException:
    return HTTPException(404, "not found")


# ---------------------------------------------------------------- dashboard


@router.get("/", response_class=HTMLResponse)
def home(request: Request, viewer: PageViewer):
    rt = request.app.state.rt
    # today on Siyu's clock (the board's), in the zone as it is now (read with the viewer)
    today = timezones.today(viewer.timezone, rt.now())
    with rt.db.tenant_session(viewer.tenant_id) as s:
        counts = queries.today_counts(s, viewer, today)
        recent = queries.list_customers(s, viewer, None, 1, 8).items
        tenant = s.get(Tenant, viewer.tenant_id)
        staff_count = s.scalar(select(func.count()).select_from(Staff).where(Staff.active.is_(True)))
        channel_count = s.scalar(select(func.count()).select_from(Channel).where(Channel.enabled.is_(True)))
        synced = tenant.staff_synced_at
        # events WeCom sent that were given up: what they brought (a customer added) is missing
        failed_events = failed.count(s) if viewer.is_admin else 0
    return render(
        request,
        "home.html",
        {
            "counts": counts,
            "recent": recent,
            "staff_count": staff_count,
            "channel_count": channel_count,
            "staff_synced_at": synced,
            "failed_events": failed_events,
        },
    )


# ---------------------------------------------------------------- customers


CUSTOMER_FILTERS = ("q", "tag", "channel", "staff", "from", "to", "status")


@router.get("/customers", response_class=HTMLResponse)
def customer_list(request: Request, viewer: PageViewer):
    p = request.query_params
    status = p.get("status") if p.get("status") in queries.FOLLOW_STATUSES else None
    f = queries.CustomerFilter(
        q=(p.get("q") or "")[:100],
        tag_id=_int(p.get("tag")),
        channel_id=_int(p.get("channel")),
        staff_userid=p.get("staff") or None,
        added_from=_date(p.get("from")),
        added_to=_date(p.get("to")),
        status=status,
    )
    asked = _int(p.get("page"))
    # a page the list did not hand out (cut short, typed in, 0), or a cursor it never hands out
    # (a conversation list's, pasted): the first page, said so
    paging_reset = (
        (asked is not None and asked < 1)
        or (p.get("page") not in (None, "") and asked is None)
        or any(p.get(k) for k in ("after", "before"))
    )
    page_no = max(1, asked or 1)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        f = replace(f, staff_userid=as_stored(s, f.staff_userid))  # ZhangSan: zhangsan's, as stored
        result = queries.list_customers(s, viewer, f, page_no, 20)
        if page_no > 1 and not result.items and result.total:
            # past the last page (customers gone since the link was handed out): 没有找到客户
            # under 共 N 位 read as none at all; the first page, said so
            result, paging_reset = queries.list_customers(s, viewer, f, 1, 20), True
        tags = queries.live_tags(s, f.tag_id)
        # enabled first: a disabled one may look just like one in use, and is marked so
        chans = list(s.scalars(select(Channel).order_by(Channel.enabled.desc(), Channel.name)))
        staff = queries.staff_choices(s, viewer, f.staff_userid)
        staff_chosen = queries.chosen_name(f.staff_userid, staff)
    kept = {k: v for k, v in p.items() if k in CUSTOMER_FILTERS and v}

    def page_url(n: int) -> str:
        return "/customers?" + urlencode({**kept, "page": n})

    def without(name: str) -> str:
        query = urlencode({k: v for k, v in kept.items() if k != name})
        return "/customers" + (f"?{query}" if query else "")

    # dates typed the wrong way round find nobody: said so, with the range turned around
    reversed_dates = bool(f.added_from and f.added_to and f.added_from > f.added_to)
    swapped_url = "/customers?" + urlencode({**kept, "from": p.get("to"), "to": p.get("from")})
    # a date typed in the address that is no date (2026-13-45): the list is not filtered by it,
    # which the page says rather than leave it looking applied
    typed_dates = (("from", "开始"), ("to", "结束"))
    bad_dates = [(label, p[k][:20]) for k, label in typed_dates if p.get(k) and _date(p[k]) is None]

    return render(
        request,
        "customers.html",
        {
            "reversed_dates": reversed_dates,
            "bad_dates": bad_dates,
            "swapped_url": swapped_url,
            "result": result,
            "f": f,
            "params": p,
            "tags": tags,
            "channels": chans,
            "staff": staff,
            "staff_chosen": staff_chosen,
            "statuses": STATUS_NAMES,
            "page_url": page_url,
            "without": without,
            "filtered": bool(kept),
            "paging_reset": paging_reset,
            "advanced": any(k in kept for k in ("tag", "channel", "staff", "status", "from", "to")),
        },
    )


WAITS_SHOWN = 30
EVENTS_SHOWN = 200  # a timeline page's entries; older ones a link away (?before=)


def _timeline_page(s, viewer, customer_id: int, before: int | None, now, gone) -> tuple[list[dict], bool]:
    """A page of the customer's timeline below entry `before` (the newest without it), one
    more read than shown: whether there are older ones to point to."""
    found = queries.timeline(
        s, viewer, customer_id, EVENTS_SHOWN + 1, before, waits=WAITS_SHOWN + 1, now=now, gone=gone
    )
    return found or [], bool(found) and len(found) > EVENTS_SHOWN


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer_page(request: Request, viewer: PageViewer, customer_id: int, before: str | None = None):
    now = request.app.state.rt.now()
    # (² and ① are digits int() refuses)
    below = int(before) if before and re.fullmatch(r"-?[0-9]{1,19}", before) else None
    paging_reset = before is not None and below is None
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        # its follows, its 无人跟进 notice, its groups' owners, its timeline and its chats mark them
        gone = staff_gone(s)
        found = queries.profile(s, viewer, customer_id, gone)
        events, more_waits, older = None, False, None
        if found:
            try:
                events, more = _timeline_page(s, viewer, customer_id, below, now, gone)
            except queries.UnknownEvent:  # (a link to an entry gone, or of another customer)
                events, more = _timeline_page(s, viewer, customer_id, None, now, gone)
                below, paging_reset = None, True
            # a customer who wrote hundreds of times: their newest waits, the rest on the chat list
            waits = [e for e in events if e["kind"] == "wait"]
            more_waits = len(waits) > WAITS_SHOWN
            if more_waits:
                # the page ends above the wait it leaves out: the next begins with it (ended at
                # the entry it read last, the waits between had been on no page)
                events, more = events[: events.index(waits[WAITS_SHOWN])], True
            if more:
                events = events[:EVENTS_SHOWN]
                older = events[-1]["id"]
        # the chats the viewer may open, waiting ones first (the five at the top of the list)
        # each wait by Siyu's clock, as the conversation list and the cards tell it
        chats = (
            conversation_queries.list_conversations(
                s,
                viewer,
                conversation_queries.ConversationFilter(customer_id=customer_id),
                1,
                5,
                request.app.state.rt.now(),
                gone=gone,
            )
            if found
            else None
        )
    if found is None:
        raise _not_found()
    return render(
        request,
        "customer.html",
        {
            "c": found,
            "events": events,
            "more_waits": more_waits,
            "waits_shown": WAITS_SHOWN,
            "older": older,
            "paged": below is not None,
            "paging_reset": paging_reset,
            "conversations": chats.items,
            "more_conversations": chats.total > 5,
        },
    )


# ---------------------------------------------------------------- channels


def _channel_choices(rt, viewer: Viewer) -> dict:
    with rt.db.tenant_session(viewer.tenant_id) as s:
        return {
            "all_staff": [(m.userid, m.name) for m in queries.active_staff(s)],
            "all_departments": [(d.wecom_id, d.name) for d in queries.departments(s)],
            "all_tags": [(t.wecom_id, t.name, t.group_name) for t in queries.live_tags(s)],
            "departed_staff": queries.departed_staff(s),
        }


@router.get("/channels", response_class=HTMLResponse)
def channel_list(request: Request, viewer: PageViewer):
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        totals = channel_service.totals(s, viewer)
        departed = queries.departed_staff(s)
        rows = [
            channel_dict(c, totals.get(c.id) or channel_service.empty_totals(viewer), departed)
            for c in s.scalars(select(Channel).order_by(Channel.enabled.desc(), Channel.created_at.desc()))
        ]
    return render(
        request, "channels.html", {"channels": rows, "done": DONE.get(request.query_params.get("done"))}
    )


def _blank_channel() -> dict:
    return {
        "id": None,
        "name": "",
        "staff_userids": [],
        "department_ids": [],
        "skip_verify": True,
        "tag_ids": [],
        "welcome_text": "",
        "welcome_link": {},
        "welcome_image_url": "",
    }


def _channel_form(
    request: Request,
    viewer: Viewer,
    values: dict,
    error: str = "",
    status: int = 200,
    version: str = "",
    stored: dict | None = None,
):
    """`version`: what an edit form was drawn from (channel_version); `stored`: the channel as
    saved now, summed up beside a form refused because someone saved it meanwhile, with each
    field where what was typed differs (what saving it again would overwrite)."""
    choices = _channel_choices(request.app.state.rt, viewer)
    ctx = {"ch": values, "error": error, "version": version, **choices}
    # the channel's members who left: not among all_staff (those a new member is chosen from), yet
    # kept, ticked, unless the admin unticks them: a save that leaves them is no change of members
    departed = choices["departed_staff"]
    ctx["leavers"] = [(u, departed[u] or u) for u in values.get("kept_staff") or [] if u in departed]
    ctx["stored_now"] = channel_text(stored, choices) if stored else ""
    ctx["stale_fields"] = channel_differences(stored, values, choices) if stored else []
    return render(request, "channel_form.html", ctx, status_code=status)


async def _read_channel_form(
    request: Request, viewer: Viewer, values: dict, before_upload=None
) -> ChannelSpec:
    """The spec; uploads a new image to WeCom once nothing known here refuses the form (its
    name taken among them; `before_upload(spec, chosen)`, chosen: a new image is to come), so
    a refused form leaves no image in WeCom. `values` takes what was typed first, so that a
    form refused by a check below shows it again rather than the blank or stored channel, and
    the URL of an image already uploaded, which the form carries back."""
    form = await request.form()
    link = {
        "url": str(form.get("link_url", "")).strip(),
        "title": str(form.get("link_title", "")).strip(),
        "desc": str(form.get("link_desc", "")).strip(),
    }
    kept = values.get("kept_staff")
    staff = [str(v) for v in form.getlist("staff_userids") if v]
    if kept and set(staff) == set(kept):
        staff = list(kept)  # the same members, whatever order the boxes stand in
    values.update(
        {
            "name": str(form.get("name", "")).strip(),
            "staff_userids": staff,
            "department_ids": [
                d for d in (_int(str(v)) for v in form.getlist("department_ids")) if d is not None
            ],
            "skip_verify": form.get("skip_verify") == "1",
            "tag_ids": [str(v) for v in form.getlist("tag_ids") if v],
            "welcome_text": str(form.get("welcome_text", "")),
            "welcome_link": {k: v for k, v in link.items() if v},
            "image_pending": False,
        }
    )
    carried = str(form.get("welcome_image_url", "")).strip()
    if UPLOADED_IMAGE.fullmatch(carried):
        values["welcome_image_url"] = carried
    if form.get("remove_image") == "1":
        values["welcome_image_url"] = ""
    spec = ChannelSpec(
        name=values["name"],
        staff_userids=values["staff_userids"],
        department_ids=values["department_ids"],
        skip_verify=values["skip_verify"],
        tag_ids=values["tag_ids"],
        welcome_text=values["welcome_text"],
        welcome_link=values["welcome_link"],
        welcome_image_url=values.get("welcome_image_url") or "",
    )
    image = form.get("welcome_image")
    chosen = isinstance(image, UploadFile) and bool(image.filename)
    try:
        spec.check()
        problems = await run_in_threadpool(spec_problems, request.app.state.rt, viewer, spec, kept)
        if problems:
            raise ChannelError("；".join(problems))
        await run_in_threadpool(_check_name_free, request.app.state.rt, viewer, spec.name, values.get("id"))
        if before_upload is not None:
            before_upload(spec, chosen)
    except ChannelError:
        # a browser never fills a file field again: the form asks for the image once more
        values["image_pending"] = chosen
        raise
    if chosen:
        content = await image.read(MAX_IMAGE_BYTES + 1)
        if content:
            if len(content) > MAX_IMAGE_BYTES:
                raise ChannelError("图片不能超过 2 MB / the image must be at most 2 MB")
            if not (content.startswith(b"\x89PNG") or content.startswith(b"\xff\xd8")):
                raise ChannelError("图片需为 PNG 或 JPG / the image must be a PNG or JPEG")
            ctype = "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"
            try:
                contact = (await request.app.state.rt.clients.get(viewer.tenant_id)).contact
                answer = await contact.media_uploadimg(image.filename, content, ctype)
            except WeComFailure:
                values["image_pending"] = True
                raise
            spec.welcome_image_url = values["welcome_image_url"] = answer.get("url", "")
    return spec


def _check_name_free(rt, viewer: Viewer, name: str, channel_id: int | None) -> None:
    with rt.db.tenant_session(viewer.tenant_id) as s:
        channel_service.check_name_free(s, name, channel_id)


@router.get("/channels/new", response_class=HTMLResponse)
def channel_new(request: Request, viewer: PageViewer):
    require_admin(viewer)
    return _channel_form(request, viewer, _blank_channel())


@router.post("/channels/new")
async def channel_create(request: Request, viewer: PageViewer):
    require_admin(viewer)
    values = _blank_channel()
    try:
        spec = await _read_channel_form(request, viewer, values)
        rt = request.app.state.rt
        channel_id = await channel_service.create_channel(rt, viewer.tenant_id, spec, viewer.display_name)
    except ChannelError as exc:
        return _channel_form(request, viewer, values, str(exc), exc.status)
    except WeComFailure as exc:
        return _channel_form(request, viewer, values, f"企业微信拒绝了请求：{wecom_message(exc)}", 502)
    return RedirectResponse(f"/channels/{channel_id}?done=created", 303)


@router.get("/channels/{channel_id}", response_class=HTMLResponse)
def channel_page(request: Request, viewer: PageViewer, channel_id: int):
    rt = request.app.state.rt
    with rt.db.tenant_session(viewer.tenant_id) as s:
        channel = s.get(Channel, channel_id)
        if channel is None:
            raise _not_found()
        departed = queries.departed_staff(s)
        ch = channel_dict(channel, channel_totals(s, viewer, channel.id), departed)
        today = timezones.today(viewer.timezone, rt.now())
        days = list(reversed(channel_service.daily_stats(s, channel_id, viewer, today, 30)))
        names = queries.staff_names(s)
        tags = {t.wecom_id: t.name for t in queries.live_tags(s)}
        depts = {d.wecom_id: d.name for d in queries.departments(s)}
        unsynced = tag_sync.of_channel(s, channel_id, queries.visible_follow(viewer))
    return render(
        request,
        "channel.html",
        {
            "ch": ch,
            "days": days,
            "staff_names": [
                f"{names.get(u, u)}（已离职或停用）" if u in departed else names.get(u, u)
                for u in ch["staff_userids"]
            ],
            "dept_names": [depts.get(d, str(d)) for d in ch["department_ids"]],
            "tag_names": [tags.get(t, t) for t in ch["tag_ids"]],
            "unsynced": unsynced,
            "done": DONE.get(request.query_params.get("done")),
        },
    )


class FormNotDrawn(ChannelError):
    status = 400


@router.get("/channels/{channel_id}/edit", response_class=HTMLResponse)
def channel_edit(request: Request, viewer: PageViewer, channel_id: int):
    require_admin(viewer)
    current = load_channel(request.app.state.rt, viewer, channel_id)
    if current is None:
        raise _not_found()
    if not current["enabled"]:
        return RedirectResponse(f"/channels/{channel_id}", 303)
    shown = {**current, **_kept(current), "welcome_link": titled_link(current["welcome_link"])}
    return _channel_form(request, viewer, shown, version=channel_version(current))


def _kept(current: dict) -> dict:
    """What the edit form of the channel as stored shows of its members who left."""
    return {"kept_staff": list(current["staff_userids"]), "leaver_note": _leaver_note(current)}


def _leaver_note(current: dict) -> str:
    """What the admin is told of the channel's members who left (channel_dict's `departed`)."""
    gone = current["departed"]
    if not gone:
        return ""
    names = "、".join(gone)
    if len(gone) == len(current["staff_userids"]) and not current["department_ids"]:
        return (
            f"{names} 已离职或停用，扫码的客户无人接待：请取消勾选{names}，另选一位在职的成员后保存"
            f"（只改其他内容也能保存，但扫码仍无人接待）"
        )
    return (
        f"{names} 已离职或停用，扫码的客户只会加给其他接待成员。{names}仍勾选在下面："
        f"取消勾选并保存即可移除；不移除也能保存其他修改"
    )


def _channel_changed(rt, viewer: Viewer, by: str) -> str:
    """The notice of an edit refused as stale: whose save it missed (the viewer's own, from
    another tab, said so)."""
    with rt.db.tenant_session(viewer.tenant_id) as s:
        mine = saved_by_viewer(s, viewer, by)
    outcome = "你的修改没有保存；下面是你填写的内容，请核对后再保存", "your change was not saved"
    # (no time: a channel keeps none of its last save)
    return changed_since("这个渠道", by, mine, None, viewer.timezone, *outcome)


@router.post("/channels/{channel_id}/edit")
async def channel_update(request: Request, viewer: PageViewer, channel_id: int):
    require_admin(viewer)
    rt = request.app.state.rt
    current = await run_in_threadpool(load_channel, rt, viewer, channel_id)
    if current is None:
        raise _not_found()
    values = {**current, **_kept(current)}
    drawn = str((await request.form()).get("version", "")).strip()[:40] or None
    now = channel_version(current)
    agreed = [drawn]  # the version the save is made to

    def unchanged_since(spec: ChannelSpec, chosen: bool) -> None:
        """Refused before an image is uploaded when someone saved the channel after the form
        was drawn, unless this save leaves it as it is now (a double click on 保存: the first
        click saved this very form; or the same change by two admins), which is let through:
        "not saved" would be untrue of it. A new image chosen is not compared: it replaces
        whatever is there (a double click uploads it twice)."""
        if drawn is None or drawn == now:
            return
        if not well_formed(drawn):
            raise FormNotDrawn(FORM_NOT_DRAWN)
        same = {**vars(spec), "welcome_image_url": current["welcome_image_url"]} if chosen else spec
        if channel_version(same) != now:
            raise ChannelChanged(current["updated_by"])
        agreed[0] = now

    try:
        if not current["enabled"]:
            raise ChannelError("渠道已停用，不能修改 / the channel is disabled")
        spec = await _read_channel_form(request, viewer, values, unchanged_since)
        await channel_service.update_channel(
            rt, viewer.tenant_id, channel_id, spec, agreed[0], viewer.display_name
        )
    except ChannelChanged as exc:
        # drawn again with the version stored now: saved after a look, it saves (and the notice
        # names whoever saved what it shows)
        stored = await run_in_threadpool(load_channel, rt, viewer, channel_id)
        notice = await run_in_threadpool(_channel_changed, rt, viewer, stored["updated_by"])
        return _channel_form(request, viewer, values, notice, exc.status, channel_version(stored), stored)
    except ChannelError as exc:
        return _channel_form(request, viewer, values, str(exc), exc.status, drawn or now)
    except WeComFailure as exc:
        message = f"企业微信拒绝了请求：{wecom_message(exc)}"
        return _channel_form(request, viewer, values, message, 502, drawn or now)
    return RedirectResponse(f"/channels/{channel_id}?done=saved", 303)


@router.post("/channels/{channel_id}/disable")
async def channel_disable(request: Request, viewer: PageViewer, channel_id: int):
    require_admin(viewer)
    try:
        await channel_service.disable_channel(request.app.state.rt, viewer.tenant_id, channel_id)
    except LookupError:
        raise _not_found() from None
    return RedirectResponse(f"/channels/{channel_id}?done=disabled", 303)


@router.get("/channels/{channel_id}/qr.png")
async def channel_qr(request: Request, viewer: PageViewer, channel_id: int, download: bool = False):
    try:
        content, ctype, name = await fetch_qr(request.app.state.rt, viewer, channel_id)
    except LookupError:
        raise _not_found() from None
    except QrUnavailable as exc:
        raise HTTPException(502, str(exc)) from exc
    return qr_response(content, ctype, name, download)


# ---------------------------------------------------------------- staff


def _staff_page(
    request: Request, viewer: Viewer, error: str = "", status: int = 200, typed: tuple[str, str] | None = None
):
    """`typed`: the member and the number typed for them that was refused, kept in their field."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        depts = {d.wecom_id: d.name for d in queries.departments(s)}
        people = {p.staff_userid: p.role for p in s.scalars(select(Person)) if p.staff_userid}
        members = list(s.scalars(select(Staff).order_by(Staff.active.desc(), Staff.name)))
        synced = s.get(Tenant, viewer.tenant_id).staff_synced_at
        rows = [
            {
                "userid": m.userid,
                "name": m.name,
                "position": m.position,
                "departments": [depts.get(d, str(d)) for d in m.departments or []],
                "active": m.active,
                "gone": gone_word(m.active, m.wecom_status),
                "not_activated": m.active and m.wecom_status == STAFF_NOT_ACTIVATED,
                "role": people.get(m.userid),
                "call_phone": m.call_phone,
                "call_phone_masked": _masked_mobile(m.call_phone),
                "typed": typed[1] if typed and typed[0] == m.userid else None,
                "wecom_mobile": _masked_mobile(m.mobile),
                "wecom_mobile_rings": tenancy.rings(m.mobile or ""),
                "editable": viewer.may_set_call_phone(m.userid),
            }
            for m in members
        ]
    return render(
        request,
        "staff.html",
        {
            "members": rows,
            "synced_at": synced,
            "error": error,
            "done": DONE.get(request.query_params.get("done")),
        },
        status_code=status,
    )


def _masked_mobile(mobile: str) -> str:
    """WeCom's number as the page shows it to everyone: 138****0002."""
    return f"{mobile[:3]}****{mobile[-4:]}" if len(mobile) >= 7 else mobile


@router.get("/staff", response_class=HTMLResponse)
def staff_page(request: Request, viewer: PageViewer):
    return _staff_page(request, viewer)


@router.post("/staff/{userid}/call-phone")
async def staff_call_phone(request: Request, viewer: PageViewer, userid: str):
    """The number escalation calls ring: a member sets their own, an admin anyone's."""
    if not viewer.may_set_call_phone(userid):
        raise HTTPException(403, "只能填写自己的号码 / only your own number")
    phone = str((await request.form()).get("phone", ""))

    def save() -> str:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            try:
                tenancy.set_call_phone(s, userid, phone)
            except tenancy.UnknownStaff:
                raise HTTPException(404, "not found") from None
            except ValueError as exc:
                name = s.scalar(select(Staff.name).where(Staff.userid == userid)) or userid
                return f"{name}：{exc}"  # whose row: an admin may have saved any of them
        return ""

    problem = await run_in_threadpool(save)
    if problem:  # what was typed stays in that member's field
        return await run_in_threadpool(_staff_page, request, viewer, problem, 422, (userid, phone))
    return RedirectResponse("/staff?done=call_phone", 303)


@router.post("/staff/sync")
async def staff_sync(request: Request, viewer: PageViewer):
    require_admin(viewer)
    try:
        await sync_staff(request.app.state.rt, viewer.tenant_id)
    except WeComFailure as exc:
        return await run_in_threadpool(_staff_page, request, viewer, f"同步失败：{wecom_message(exc)}", 502)
    return RedirectResponse("/staff?done=synced", 303)


# ---------------------------------------------------------------- setup


def _setup_page(
    request: Request, viewer: Viewer, error: str = "", form: dict | None = None, status: int = 200
):
    rt = request.app.state.rt
    with rt.db.tenant_session(viewer.tenant_id) as s:
        tenant = s.get(Tenant, viewer.tenant_id)
        summary = tenancy.tenant_summary(tenant, rt.box, rt.settings.callback_url(tenant.slug))
        summary.update(verified_at=tenant.verified_at, staff_synced_at=tenant.staff_synced_at)
        summary["version"] = tenancy.credentials_version(tenant)
        summary["welcome_text"] = tenant.welcome_text
        summary["timezone"] = zone = tenant.timezone or timezones.DEFAULT
        summary["timezone_now"] = timezones.local_now(zone, rt.now())
        changed = setting_changes.last(s)
        who = named_for(s, viewer)
        staff_count = s.scalar(select(func.count()).select_from(Staff).where(Staff.active.is_(True)))
        channel_count = s.scalar(select(func.count()).select_from(Channel))
        steps_done = _steps_done(s)
        failed_events = failed.count(s)
    base = rt.settings.public_url.rstrip("/")
    return render(
        request,
        "setup.html",
        {
            "t": summary,
            "changed": changed,
            "who": who,
            "form": form or {},
            "error": error,
            "done": DONE.get(request.query_params.get("done")),
            "public_url": base,
            "trusted_domain": base.split("://", 1)[-1].split("/", 1)[0],
            "oauth_link": f"{base}/auth/wecom/{summary['slug']}",
            "url_warning": rt.settings.public_url_warning(),
            "staff_count": staff_count,
            "channel_count": channel_count,
            "failed_events": failed_events,
            "zones": timezones.zones(),
            "common_zones": timezones.COMMON,
            **steps_done,
        },
        status_code=status,
    )


def _steps_done(s) -> dict:
    """The checklist's steps that WeCom's console alone can finish, ticked from what they
    leave in Siyu: the main callback URL is set once an event has come through it (an
    archive notify may come through the archive URL only), the archive once a pull worked,
    the tokens once one lets calls in (the tenant's session scopes each query)."""
    callback = select(CallbackEvent.id).where(CallbackEvent.kind.not_in(ARCHIVE_KINDS)).limit(1)
    pulled = select(ArchiveCursor.id).where(ArchiveCursor.pulled_at.is_not(None)).limit(1)
    tokens = api_tokens.described(s, api_tokens.listed(s))
    return {
        "callback_received": s.scalar(callback) is not None,
        "archive_pulled": s.scalar(pulled) is not None,
        "token_active": any(t["status"] == "active" for t in tokens),
    }


async def _save_setting(request: Request, viewer, field: str, section: str, save) -> Response:
    """A setting of 设置 saved from its form field `field` (`save(session, value)`; ValueError:
    refused, the page shown again with why and what was typed); then back to its `section`."""
    require_admin(viewer)
    rt = request.app.state.rt
    value = str((await request.form()).get(field, ""))

    def run() -> str:
        try:
            with rt.db.tenant_session(viewer.tenant_id) as s:
                save(s, value)
            return ""
        except ValueError as exc:
            return str(exc)

    problem = await run_in_threadpool(run)
    if problem:
        return await run_in_threadpool(_setup_page, request, viewer, problem, {field: value}, 422)
    return RedirectResponse(f"/setup?done={section}#{section}", 303)


@router.post("/setup/welcome")
async def setup_welcome(request: Request, viewer: PageViewer):
    """The tenant's default welcome text (customers.welcome.save_default)."""

    def save(s, text: str) -> None:
        welcome.save_default(s, viewer.tenant_id, text, viewer.signature, request.app.state.rt.now())

    return await _save_setting(request, viewer, "welcome_text", "welcome", save)


@router.post("/setup/timezone")
async def setup_timezone(request: Request, viewer: PageViewer):
    """The tenant's time zone (siyu.sla.service.change_timezone: business-hours waits follow)."""
    rt = request.app.state.rt

    def save(s, zone: str) -> None:
        sla_service.change_timezone(s, zone, rt.now(), viewer.signature)

    return await _save_setting(request, viewer, "timezone", "timezone", save)


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request, viewer: PageViewer):
    require_admin(viewer)
    return _setup_page(request, viewer)


def _current_secrets(rt, tenant_id: int) -> dict:
    with rt.db.tenant_session(tenant_id) as s:
        t = s.get(Tenant, tenant_id)
        return {
            "name": t.name,
            "slug": t.slug,
            "corp_id": t.corp_id,
            "agent_secret": rt.box.open(t.agent_secret_sealed),
            "contact_secret": rt.box.open(t.contact_secret_sealed),
            "token": rt.box.open(t.callback_token_sealed),
            "encoding_aes_key": rt.box.open(t.encoding_aes_key_sealed),
        }


CREDENTIALS_CHANGED = (
    "另一位管理员在你打开本页之后保存了凭据，你的修改没有保存：下面是现在保存的值，请看过后再改"
    " / another admin saved the credentials after this page was drawn: nothing was saved"
)


@router.post("/setup")
async def setup_submit(request: Request, viewer: PageViewer):
    """Connect (or re-connect) the corp: a blank secret field keeps the stored secret."""
    require_admin(viewer)
    rt = request.app.state.rt
    form = await request.form()
    shown = {k: str(form.get(k, "")).strip() for k in ("name", "corp_id", "agent_id")}
    drawn = str(form.get("version", "")).strip()[:40] or None
    current = await run_in_threadpool(_current_secrets, rt, viewer.tenant_id)

    def field(name: str) -> str:
        return str(form.get(name, "")).strip() or current[name]

    def refuse(message: str, status: int = 422):
        return _setup_page(request, viewer, message, shown, status)

    if drawn is not None and not well_formed(drawn):
        return await run_in_threadpool(refuse, FORM_NOT_DRAWN)
    if len(shown["name"]) > NAME_CHARS:  # (the column's: PostgreSQL had refused it with a 500)
        return await run_in_threadpool(
            refuse, f"企业名称最多 {NAME_CHARS} 个字 / the company name is over {NAME_CHARS} characters"
        )
    agent_id = _int(shown["agent_id"])
    if agent_id is None or agent_id <= 0:
        return await run_in_threadpool(
            refuse, "AgentId 应为数字，见 应用管理 → 自建应用 / AgentId must be a number"
        )
    corp_id = shown["corp_id"] or current["corp_id"]
    if corp_id != current["corp_id"]:
        return await run_in_threadpool(
            refuse,
            "企业ID 不能修改：接入另一个企业请用 `siyu tenant add` 新建"
            " / the corp id of a tenant cannot change",
        )
    creds = tenancy.CorpCredentials(
        corp_id=corp_id,
        agent_id=agent_id,
        agent_secret=field("agent_secret"),
        contact_secret=field("contact_secret"),
        token=field("token"),
        encoding_aes_key=field("encoding_aes_key"),
    )
    try:
        await tenancy.check_credentials(creds, rt.settings.wecom_base_url)
    except tenancy.ConnectError as exc:
        return await run_in_threadpool(refuse, str(exc))

    def save() -> None:
        with rt.db.system_session() as s:
            tenancy.save_credentials(
                s, rt.box, viewer.tenant_id, shown["name"] or current["name"], creds, drawn
            )

    try:
        await run_in_threadpool(save)
    except tenancy.CredentialsChanged:
        # drawn again from what is stored now, for the admin to look at before saving theirs
        return await run_in_threadpool(_setup_page, request, viewer, CREDENTIALS_CHANGED, None, 409)
    rt.clients.forget(viewer.tenant_id)
    rt.intake.forget(current["slug"])
    return RedirectResponse("/setup?done=connected", 303)
