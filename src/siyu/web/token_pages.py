"""The API token page (/setup/tokens, admins): the tenant's tokens for integrations, a form
to make one (its secret shown on the answer to that form, and never again: the same form
posted again, as a reload does, makes no second token), and revoking."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from siyu.tenancy import api_tokens
from siyu.web.auth import PageViewer, Viewer, require_admin
from siyu.web.stale_notice import named_for
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

EXPIRIES = {"30": "30 天", "90": "90 天", "365": "一年", "": "永不过期"}
DONE = {"revoked": "令牌已撤销：用它的调用立即被拒绝（401）。"}


def _page(
    request: Request,
    viewer: Viewer,
    created: dict | None = None,
    error: str = "",
    form: dict | None = None,
    status: int = 200,
):
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        tokens = api_tokens.described(s, api_tokens.listed(s))
        choices = api_tokens.acting_choices(s, viewer.person_id)
        who = named_for(s, viewer)  # the tokens the viewer made: 你
    return render(
        request,
        "tokens.html",
        {
            "tokens": tokens,
            "choices": choices,
            "who": who,
            "expiries": EXPIRIES,
            "created": created,
            "error": error,
            "form": form or {"acts_as": f"p:{viewer.person_id}", "expires": "90"},
            "once": api_tokens.form_once(),
            "done": DONE.get(request.query_params.get("done")),
            "api_url": request.app.state.rt.settings.public_url.rstrip("/") + "/api/v1/me",
        },
        status_code=status,
    )


@router.get("/setup/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, viewer: PageViewer):
    require_admin(viewer)
    return _page(request, viewer)


@router.post("/setup/tokens")
async def token_create(request: Request, viewer: PageViewer):
    require_admin(viewer)
    raw = await request.form()
    form = {k: str(raw.get(k, "")) for k in ("name", "acts_as", "expires", "once")}
    days = form["expires"]
    if days not in EXPIRIES:
        days = "90"

    def create():
        # refused, the session ends by its exception, undone: acting_person may have made a
        # person for a member who never signed in, and a refused form must leave nothing
        try:
            with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
                if api_tokens.made_from_form(s, form["once"], viewer.person_id) is not None:
                    return None, api_tokens.ALREADY_MADE
                acting = api_tokens.acting_person(s, viewer.tenant_id, form["acts_as"], viewer.person_id)
                expires_at = api_tokens.expires_in(int(days) if days else None)
                token, secret = api_tokens.create(
                    s, form["name"], acting, viewer.person_id, expires_at, form["once"]
                )
                return {**api_tokens.described(s, [token])[0], "secret": secret}, ""
        except api_tokens.TokenRefused as exc:
            return None, str(exc)

    def made_meanwhile() -> bool:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            return api_tokens.made_from_form(s, form["once"], viewer.person_id) is not None

    try:
        created, problem = await run_in_threadpool(create)
    except IntegrityError:
        # the same form posted at the same moment (a double click): both found no token, and the
        # other post's was stored first (the index on the prefix refused this one's)
        if not await run_in_threadpool(made_meanwhile):
            raise
        created, problem = None, api_tokens.ALREADY_MADE
    if problem == api_tokens.ALREADY_MADE:  # a blank form: not one to send once more
        return await run_in_threadpool(_page, request, viewer, None, problem, None, 409)
    if problem:
        return await run_in_threadpool(_page, request, viewer, None, problem, form, 422)
    # the secret is on this answer only (pages are never kept by the browser: no-store)
    return await run_in_threadpool(_page, request, viewer, created)


@router.post("/setup/tokens/{token_id}/revoke")
async def token_revoke(request: Request, viewer: PageViewer, token_id: int):
    require_admin(viewer)

    def revoke() -> bool:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            return api_tokens.revoke(s, token_id) is not None

    if not await run_in_threadpool(revoke):
        raise HTTPException(404, "not found")
    return RedirectResponse("/setup/tokens?done=revoked", 303)
