"""设置 → 未处理的回调事件 (/setup/events, admins): the callback events Siyu gave up on after
a day of tries (a customer added while WeCom refused a secret or a permission), whom each
concerns and why, and 重新处理 to run them again once the cause is mended. Without this page
only `siyu events failed` on the server showed them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from siyu.db.paging import BadCursor
from siyu.intake import failed
from siyu.intake.service import NotFailed, retry_failed
from siyu.web.api_errors import ClearNotFound
from siyu.web.auth import PageViewer, require_admin
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
NOTHING_QUEUED = "没有处理失败的事件需要重新处理。"
NO_LONGER_FAILED = "这个事件已不是失败状态（可能已被重新处理），无需再处理。"
# A retry is a fresh round of tries of an event over a day old: given up again after
# MAX_ATTEMPTS (siyu.intake.tasks), about 17 minutes of backoff, if the cause stays.
QUEUED = "已重新排队 {} 个事件，后台会立即处理；原因若没有修好，约 17 分钟的重试后它们会再次列在这里。"


@router.get("/setup/events", response_class=HTMLResponse)
def events_page(request: Request, viewer: PageViewer):
    require_admin(viewer)
    p = request.query_params
    after, before = (p.get("after") or None), (p.get("before") or None)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        try:
            result = failed.listed(s, 1, PER_PAGE, after, before)
        except BadCursor:  # a cursor typed in or cut short: the newest, as the other lists do
            result = failed.listed(s, 1, PER_PAGE)
    return render(request, "failed_events.html", {"result": result, "done": _done(p)})


def _done(p) -> str | None:
    """What the redirect after 重新处理 says: how many were queued (`queued`), or that the
    event was no longer failed (another admin ran it meanwhile)."""
    queued = p.get("queued", "")
    if queued.isascii() and queued.isdigit() and len(queued) < 10:
        return QUEUED.format(int(queued)) if int(queued) else NOTHING_QUEUED
    return NO_LONGER_FAILED if p.get("done") == "not-failed" else None


def _retry(request: Request, tenant_id: int, event_id: int | None) -> int:
    with request.app.state.rt.db.tenant_session(tenant_id) as s:
        return retry_failed(s, event_id, tenant_id)


@router.post("/setup/events/{event_id}/retry")
async def event_retry(request: Request, viewer: PageViewer, event_id: int):
    require_admin(viewer)
    try:
        queued = await run_in_threadpool(_retry, request, viewer.tenant_id, event_id)
    except NotFailed as exc:
        if exc.status is None:
            raise ClearNotFound("找不到这个回调事件 / no such callback event") from None
        return RedirectResponse("/setup/events?done=not-failed", 303)
    request.app.state.rt.wake()  # an embedded worker takes it up now, not at its next poll
    return RedirectResponse(f"/setup/events?queued={queued}", 303)


@router.post("/setup/events/retry-all")
async def events_retry_all(request: Request, viewer: PageViewer):
    require_admin(viewer)
    queued = await run_in_threadpool(_retry, request, viewer.tenant_id, None)
    if queued:
        request.app.state.rt.wake()
    return RedirectResponse(f"/setup/events?queued={queued}", 303)
