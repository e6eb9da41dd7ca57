"""The logins page (/setup/people, admins): the tenant's people, and for each a role to
change, a new password to give, and their login to end or restore (siyu.tenancy.people)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from siyu.tenancy import people
from siyu.web.auth import ROLE_NAMES, PageViewer, Viewer, require_admin
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

DONE = {
    "role": "角色已修改：对方下一次打开页面或调用接口时即按新角色。",
    "password": "密码已重设：对方已在所有设备上退出，请用新密码登录。",
    "disabled": "账号已停用：对方已在所有设备上退出，不能再登录，以其身份调用的 API 令牌也被拒绝。",
    "enabled": "账号已恢复，可以重新登录。",
}


def _page(request: Request, viewer: Viewer, error: str = "", status: int = 200):
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        rows = people.listed(s)
    return render(
        request,
        "people.html",
        {
            "people": rows,
            "roles": ROLE_NAMES,
            "min_password": people.MIN_PASSWORD,
            "error": error,
            "done": DONE.get(request.query_params.get("done")),
        },
        status_code=status,
    )


@router.get("/setup/people", response_class=HTMLResponse)
def people_page(request: Request, viewer: PageViewer):
    require_admin(viewer)
    return _page(request, viewer)


async def _change(request: Request, viewer: Viewer, done: str, change):
    require_admin(viewer)
    form = await request.form()

    def apply() -> str:
        try:
            with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
                change(s, form)
            return ""
        except people.PersonRefused as exc:
            return str(exc)

    problem = await run_in_threadpool(apply)
    if problem:
        return await run_in_threadpool(_page, request, viewer, problem, 422)
    return RedirectResponse(f"/setup/people?done={done}", 303)


@router.post("/setup/people/{person_id}/role")
async def person_role(request: Request, viewer: PageViewer, person_id: int):
    return await _change(
        request,
        viewer,
        "role",
        lambda s, form: people.set_role(
            s, person_id, str(form.get("role", "")), by=viewer.person_id, signed=viewer.signature
        ),
    )


@router.post("/setup/people/{person_id}/password")
async def person_password(request: Request, viewer: PageViewer, person_id: int):
    return await _change(
        request,
        viewer,
        "password",
        lambda s, form: people.reset_password(
            s, person_id, str(form.get("password", "")), signed=viewer.signature
        ),
    )


@router.post("/setup/people/{person_id}/disable")
async def person_disable(request: Request, viewer: PageViewer, person_id: int):
    return await _change(
        request,
        viewer,
        "disabled",
        lambda s, form: people.disable(s, person_id, by=viewer.person_id, signed=viewer.signature),
    )


@router.post("/setup/people/{person_id}/enable")
async def person_enable(request: Request, viewer: PageViewer, person_id: int):
    return await _change(
        request, viewer, "enabled", lambda s, form: people.enable(s, person_id, signed=viewer.signature)
    )
