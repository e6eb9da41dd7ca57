"""JSON API: the callback events Siyu gave up on (/api/v1/events), what 设置 → 未处理的回调事件
and `siyu events failed / retry` do, for an integration with an admin's token or an admin
signed in. Another tenant's event id answers the same 404 as one that does not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from siyu.db.paging import BadCursor
from siyu.intake import failed
from siyu.intake.schemas import FailedEventPage, Queued
from siyu.intake.service import NotFailed, retry_failed
from siyu.web.api_errors import ADMIN, ADMIN_WRITE, API_RESPONSES, NOT_FOUND, error, not_found
from siyu.web.api_paging import After, Before, PageNumber, one_way_of_paging
from siyu.web.auth import ApiViewer, require_admin

router = APIRouter(prefix="/api/v1", tags=["events"], responses=API_RESPONSES)

NOT_FAILED = {409: error("the event is not failed (pending or done): there is nothing to run again")}
# the Chinese half names the status in Chinese, as the page does
STATUS_NAMES = {"pending": "等待处理", "done": "已处理"}


@router.get("/events/failed", response_model=FailedEventPage, responses=ADMIN)
def list_failed(
    request: Request,
    viewer: ApiViewer,
    page: PageNumber = 1,
    per_page: Annotated[int, Query(ge=1, le=failed.MAX_PER_PAGE)] = 50,
    after: After = None,
    before: Before = None,
):
    """Callback events WeCom sent that Siyu gave up on after a day of tries, newest first, with
    whom each concerns and why its last try failed. Admins only."""
    require_admin(viewer)
    one_way_of_paging(page, after, before)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        try:
            result = failed.listed(s, page, per_page, after, before)
        except BadCursor as e:
            raise HTTPException(422, str(e)) from None
    return {**vars(result), "pages": result.pages}


def _retry(request: Request, tenant_id: int, event_id: int | None) -> int:
    with request.app.state.rt.db.tenant_session(tenant_id) as s:
        return retry_failed(s, event_id, tenant_id)


@router.post(
    "/events/{event_id}/retry",
    response_model=Queued,
    responses={**ADMIN_WRITE, **NOT_FOUND, **NOT_FAILED},
)
async def retry_one(request: Request, viewer: ApiViewer, event_id: int):
    """Run a failed event again (once what made it fail is mended), with a fresh round of
    tries. Admins only."""
    require_admin(viewer)
    try:
        queued = await run_in_threadpool(_retry, request, viewer.tenant_id, event_id)
    except NotFailed as exc:
        if exc.status is None:
            raise not_found() from None
        raise HTTPException(
            409,
            f"这个事件不是失败状态（{STATUS_NAMES.get(exc.status, exc.status)}），无需重新处理"
            f" / the event is {exc.status}, not failed",
        ) from None
    request.app.state.rt.wake()
    return {"queued": queued}


@router.post("/events/retry-failed", response_model=Queued, responses=ADMIN_WRITE)
async def retry_all(request: Request, viewer: ApiViewer):
    """Run every failed event of the tenant again. Admins only."""
    require_admin(viewer)
    queued = await run_in_threadpool(_retry, request, viewer.tenant_id, None)
    if queued:
        request.app.state.rt.wake()
    return {"queued": queued}
