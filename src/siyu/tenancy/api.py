"""JSON API: who am I, the corp's staff, and the tenant's API tokens (/api/v1)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from siyu.tenancy import api_tokens, service, setting_changes
from siyu.tenancy.models import STAFF_STATUS, Staff, gone_word
from siyu.tenancy.queries import member_userid
from siyu.tenancy.schemas import (
    CallPhoneIn,
    CallPhoneOut,
    MeOut,
    StaffOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
)
from siyu.web.api_errors import API_RESPONSES, NOT_FOUND, TOO_LARGE, error, not_found
from siyu.web.auth import ApiViewer, SignedInApiViewer, require_signed_in_admin

router = APIRouter(prefix="/api/v1", tags=["tenancy"], responses=API_RESPONSES)


@router.get("/me", response_model=MeOut)
def me(request: Request, viewer: ApiViewer):
    """Who is signed in, which staff members' customers they see, and the CSRF token to send
    as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE; the tenant's time zone and who
    last changed it."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        zone = setting_changes.last(s, ("timezone",)).get("timezone")
    return {
        "person_id": viewer.person_id,
        "display_name": viewer.display_name,
        "role": viewer.role,
        "staff_userid": viewer.staff_userid,
        "tenant": {
            "id": viewer.tenant_id,
            "slug": viewer.tenant_slug,
            "name": viewer.tenant_name,
            "timezone": viewer.timezone,
            "timezone_changed": zone
            and {
                "previous": zone["old"],
                "timezone": zone["new"],
                "changed_by": zone["by"],
                "changed_at": zone["at"],
            },
        },
        "visible_staff": None if viewer.visible_staff is None else sorted(viewer.visible_staff),
        "csrf_token": viewer.csrf_token,
    }


@router.get("/staff", response_model=list[StaffOut])
def list_staff(request: Request, viewer: ApiViewer, include_inactive: bool = False):
    """The corp's members as last synced from WeCom, by name; those who left with `include_inactive`."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        stmt = select(Staff).order_by(Staff.name, Staff.userid)
        if not include_inactive:
            stmt = stmt.where(Staff.active.is_(True))
        return [
            {
                "userid": m.userid,
                "name": m.name,
                "departments": list(m.departments or []),
                "main_department": m.main_department,
                "direct_leaders": list(m.direct_leaders or []),
                "position": m.position,
                "active": m.active,
                "status": STAFF_STATUS[gone_word(m.active, m.wecom_status)],
                "synced_at": m.synced_at,
                "call_phone": m.call_phone if viewer.may_set_call_phone(m.userid) else None,
                "has_call_phone": bool(m.call_phone) or service.rings(m.mobile or ""),
            }
            for m in s.scalars(stmt)
        ]


@router.put(
    "/staff/{userid}/call-phone",
    response_model=CallPhoneOut,
    responses={
        **NOT_FOUND,
        403: error("not an admin, and not your own number; or the `X-CSRF-Token` header is missing or wrong"),
        **TOO_LARGE,
    },
)
def set_call_phone(request: Request, viewer: ApiViewer, userid: str, body: CallPhoneIn):
    """The mainland mobile number escalation calls ring for this member ("" clears it: WeCom's
    number is rung then, if WeCom gives one). A member sets their own, an admin anyone's; the
    userid in any case, as WeCom's are (ZhangSan: zhangsan)."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        userid = member_userid(s, userid) or userid
        if not viewer.may_set_call_phone(userid):
            raise HTTPException(403, "只能填写自己的号码 / only your own number")
        try:
            stored = service.set_call_phone(s, userid, body.phone)
        except service.UnknownStaff:
            raise not_found() from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return {"userid": userid, "call_phone": stored}


# ---------------------------------------------------------------- API tokens

SIGNED_IN_ADMIN = {403: error("admins signed in only, not with an API token")}
SIGNED_IN_ADMIN_WRITE = {
    403: error(
        "admins signed in only, not with an API token; or the `X-CSRF-Token` header is missing or wrong"
    ),
    **TOO_LARGE,
}


@router.get("/tokens", response_model=list[TokenOut], responses=SIGNED_IN_ADMIN, tags=["tokens"])
def list_tokens(request: Request, viewer: SignedInApiViewer):
    """The tenant's API tokens, newest first, revoked and expired ones too; never a secret."""
    require_signed_in_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        return api_tokens.described(s, api_tokens.listed(s))


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    responses=SIGNED_IN_ADMIN_WRITE,
    tags=["tokens"],
)
def create_token(request: Request, viewer: SignedInApiViewer, body: TokenCreate):
    """A token for an integration, acting as the person named (their role and scope, as they
    stand at each call). The answer's `token` is the secret: it is not kept, and is shown
    this once. Admins signed in only: an API token cannot make another."""
    require_signed_in_admin(viewer)
    if body.person_id is not None and body.staff_userid is not None:
        raise HTTPException(
            422, "person_id 和 staff_userid 只填一个 / give person_id or staff_userid, not both"
        )
    choice = (
        f"s:{body.staff_userid}"
        if body.staff_userid is not None
        else f"p:{viewer.person_id if body.person_id is None else body.person_id}"
    )
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        try:
            acting = api_tokens.acting_person(s, viewer.tenant_id, choice, viewer.person_id)
            token, secret = api_tokens.create(s, body.name, acting, viewer.person_id, body.expires_at)
        except api_tokens.TokenRefused as exc:
            raise HTTPException(422, str(exc)) from None
        return {**api_tokens.described(s, [token])[0], "token": secret}


@router.post(
    "/tokens/{token_id}/revoke",
    response_model=TokenOut,
    responses={**NOT_FOUND, **SIGNED_IN_ADMIN_WRITE},
    tags=["tokens"],
)
def revoke_token(request: Request, viewer: SignedInApiViewer, token_id: int):
    """The token stops working at once; it stays listed, with when it was revoked."""
    require_signed_in_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        token = api_tokens.revoke(s, token_id)
        if token is None:
            raise not_found()
        return api_tokens.described(s, [token])[0]
