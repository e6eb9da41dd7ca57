"""The logins page (/setup/people, admins): the tenant's people, and for each a role to
change, a new password to give, and their login to end or restore (siyu.tenancy.people)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from siyu.tenancy import people
from siyu.web.auth import ROLE_NAMES, PageViewer, Viewer, require_admin
from siyu.web.stale_notice import named_for
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)

DONE = {
    "role": "角色已修改：对方下一次打开页面或调用接口时即按新角色。",
    "password": "密码已重设：对方已在所有设备上退出，请用新密码登录。",
    "disabled": "账号已停用：对方已在所有设备上退出，不能再登录，以其身份调用的 API 令牌也被拒绝。",
    "enabled": "账号已恢复，可以重新登录。",
    "added": "账号已添加：把登录名和密码告诉对方（企业微信成员也可以直接用企业微信登录）。",
}


def _page(
    request: Request,
    viewer: Viewer,
    error: str = "",
    status: int = 200,
    add_error: str = "",
    add: dict | None = None,
):
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        rows = people.listed(s)
        members = people.without_login(s)
        who = named_for(s, viewer)
    return render(
        request,
        "people.html",
        {
            "people": rows,
            "who": who,
            "roles": ROLE_NAMES,
            "min_password": people.MIN_PASSWORD,
            "error": error,
            "done": DONE.get(request.query_params.get("done")),
            "members": members,
            "add_error": add_error,
            "add": add or {},
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

    def apply() -> tuple[str, int]:
        try:
            with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
                change(s, form)
            return "", 303
        except people.NoSuchPerson as exc:  # (as the API answers: no such login here)
            return str(exc), 404
        except people.PersonRefused as exc:
            return str(exc), 422

    problem, status = await run_in_threadpool(apply)
    if problem:
        return await run_in_threadpool(_page, request, viewer, problem, status)
    return RedirectResponse(f"/setup/people?done={done}", 303)


@router.post("/setup/people")
async def person_add(request: Request, viewer: PageViewer):
    """A login made by hand (a password) or for a WeCom member who has not signed in yet: until
    now only `siyu person add` made one, and a member could be made an admin only after their
    first WeCom sign-in."""
    require_admin(viewer)
    form = await request.form()
    typed = {k: str(form.get(k, "")) for k in ("login", "display_name", "role", "staff_userid")}
    password = str(form.get("password", ""))

    def add() -> str:
        if not password and not typed["staff_userid"]:
            return f"请设置密码（至少 {people.MIN_PASSWORD} 位） / give a password"
        try:
            with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
                people.add(
                    s,
                    typed["login"],
                    typed["display_name"],
                    typed["role"],
                    password or None,
                    typed["staff_userid"] or None,
                    by=viewer.signature,
                )
            return ""
        except people.PersonRefused as exc:
            return str(exc)

    problem = await run_in_threadpool(add)
    if problem:
        return await run_in_threadpool(_page, request, viewer, "", 422, problem, typed)
    return RedirectResponse("/setup/people?done=added", 303)


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
