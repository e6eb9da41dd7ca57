"""Contacts (通讯录, REFERENCE.md section 4): department/list, user/get, user/list, user/simplelist."""

from __future__ import annotations

from .cgi import Ctx, api
from .errors import WeComError


def _dept_id(ctx: Ctx, name: str, default: int | None = None) -> int | None:
    value = ctx.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise WeComError(60003) from exc


@api("department/list", methods=("GET",))
async def department_list(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    dept_id = _dept_id(ctx, "id")
    if dept_id is None:
        depts = list(corp.departments.values())
    else:
        if dept_id not in corp.departments:
            raise WeComError(60003)
        # WeCom returns the department and all of its descendants.
        ids = corp.subtree(dept_id)
        depts = [d for d in corp.departments.values() if d.id in ids]
    return {"department": [d.as_api() for d in depts]}


@api("user/get", methods=("GET",))
async def user_get(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    staff = corp.staff.get(ctx.query.get("userid", ""))
    if staff is None or staff.status == 5:
        raise WeComError(60111)
    return staff.as_api()


def _members(ctx: Ctx):
    corp = ctx.need_corp()
    dept_id = _dept_id(ctx, "department_id")
    if dept_id is None or dept_id not in corp.departments:
        raise WeComError(60003)
    return corp.staff_in(dept_id, recursive=ctx.query.get("fetch_child") == "1")


@api("user/list", methods=("GET",))
async def user_list(ctx: Ctx) -> dict:
    return {"userlist": [s.as_api() for s in _members(ctx)]}


@api("user/simplelist", methods=("GET",))
async def user_simplelist(ctx: Ctx) -> dict:
    return {"userlist": [s.as_simple() for s in _members(ctx)]}
