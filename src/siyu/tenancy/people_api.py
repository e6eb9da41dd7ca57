"""JSON API: the tenant's logins (/api/v1/people), what 设置 → 账号 and `siyu person` do, for
an integration with an admin's token or an admin signed in (siyu.tenancy.people).

A token may do what its admin does here, except give anyone admin rights (make an admin, make
someone one, restore an admin's login) or set a password on a login that exists or is a WeCom
member's (one an admin may later promote). Those would let a leaked token make itself a login
that outlives it (sign in with the password it chose, then make tokens), which a token is
refused everywhere else (require_signed_in_admin). A new login by hand it may make, with a
password it gives or is answered once: the list names the token as who made it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from siyu.tenancy import people
from siyu.tenancy.models import Person
from siyu.tenancy.schemas import PasswordIn, PersonChanged, PersonCreate, PersonOut, RoleIn
from siyu.web.api_errors import ADMIN, ADMIN_WRITE, API_RESPONSES, NOT_FOUND, error, not_found
from siyu.web.auth import ApiViewer, Viewer, require_admin

router = APIRouter(prefix="/api/v1", tags=["people"], responses=API_RESPONSES)

WRITE = {
    **ADMIN_WRITE,
    403: error(
        "admins only; or the `X-CSRF-Token` header is missing or wrong; or, with an API token, it would"
        " give admin rights or set a password on an existing login or a WeCom member's (sign in for that)"
    ),
}
CONFLICT = {
    409: error(
        "refused as things stand: the last admin who may sign in, or yourself, cannot be demoted or"
        " disabled; or the login (or the WeCom member's login) exists"
    )
}
BY_TOKEN = (
    "API 令牌不能授予或恢复管理员权限，请管理员登录后在「设置 → 账号」操作"
    " / an API token cannot give admin rights: an admin signed in can"
)

# A password a token set would outlive the token, and the login could be made an admin later
# by someone who never knew: a token sets none on an existing login, nor on a WeCom member's.
NO_PASSWORD_BY_TOKEN = (
    "API 令牌不能重设密码，也不能给企业微信成员的账号设密码：请管理员登录后在「设置 → 账号」操作"
    " / an API token sets no password on an existing login or a WeCom member's: an admin signed in can"
)


def _no_admin_rights_by_token(viewer: Viewer, gives_admin: bool) -> None:
    if viewer.via_token and gives_admin:
        raise HTTPException(403, BY_TOKEN)


def _apply(request: Request, viewer: Viewer, change, person_id: int | None = None):
    """Runs `change(session, person)` (person None when making one) and answers the person as
    listed; the service's refusals as 404, 409 and 422."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        person = None
        if person_id is not None:
            person = s.get(Person, person_id)
            if person is None:
                raise not_found()
        try:
            changed, password = change(s, person)
        except people.NoSuchPerson:
            raise not_found() from None
        except people.PersonConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except people.PersonRefused as exc:
            raise HTTPException(422, str(exc)) from None
        return {**people.one(s, changed.id), "password": password}


@router.get("/people", response_model=list[PersonOut], responses=ADMIN)
def list_people(request: Request, viewer: ApiViewer):
    """The tenant's logins, admins first, then by name; disabled ones and those who left too.
    Admins only; never a password or its hash."""
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        return people.listed(s)


@router.get("/people/{person_id}", response_model=PersonOut, responses={**ADMIN, **NOT_FOUND})
def get_person(request: Request, viewer: ApiViewer, person_id: int):
    require_admin(viewer)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        try:
            return people.one(s, person_id)
        except people.NoSuchPerson:
            raise not_found() from None


@router.post("/people", response_model=PersonChanged, status_code=201, responses={**WRITE, **CONFLICT})
def create_person(request: Request, viewer: ApiViewer, body: PersonCreate):
    """A new login. By hand (no `staff_userid`) it signs in with a password: yours, or one Siyu
    makes and answers once in `password`. For a WeCom member it signs in through WeCom, and
    with a password too if you give one (signed in: a token sets none there, 403). Admins only;
    a token makes no admin (403)."""
    require_admin(viewer)
    _no_admin_rights_by_token(viewer, body.role == "admin")
    if viewer.via_token and body.staff_userid is not None and body.password is not None:
        raise HTTPException(403, NO_PASSWORD_BY_TOKEN)
    made = people.new_password() if body.password is None and body.staff_userid is None else None

    def create(s, _person):
        person = people.add(
            s,
            body.login,
            body.display_name,
            body.role,
            body.password or made,
            body.staff_userid,
            by=viewer.signature,
        )
        return person, made

    return _apply(request, viewer, create)


@router.put(
    "/people/{person_id}/role",
    response_model=PersonOut,
    responses={**NOT_FOUND, **WRITE, **CONFLICT},
)
def set_role(request: Request, viewer: ApiViewer, person_id: int, body: RoleIn):
    """Holds from the person's next request. You cannot demote yourself, nor the last admin who
    may sign in (409). Admins only; a token makes no one an admin (403)."""
    require_admin(viewer)
    _no_admin_rights_by_token(viewer, body.role == "admin")

    def change(s, person):
        return people.set_role(s, person.id, body.role, by=viewer.person_id, signed=viewer.signature), None

    return _apply(request, viewer, change, person_id)


@router.post(
    "/people/{person_id}/password",
    response_model=PersonChanged,
    responses={**NOT_FOUND, **WRITE},
)
def reset_password(request: Request, viewer: ApiViewer, person_id: int, body: PasswordIn | None = None):
    """A new password: yours, or (no body, or no `password`) one Siyu makes and answers once.
    The person is signed out everywhere. Admins signed in only: a token resets no password (403)."""
    require_admin(viewer)
    if viewer.via_token:
        raise HTTPException(403, NO_PASSWORD_BY_TOKEN)
    given = body.password if body is not None else None
    made = people.new_password() if given is None else None

    def change(s, person):
        return people.reset_password(s, person.id, given or made, signed=viewer.signature), made

    return _apply(request, viewer, change, person_id)


@router.post(
    "/people/{person_id}/disable",
    response_model=PersonOut,
    responses={**NOT_FOUND, **WRITE, **CONFLICT},
)
def disable(request: Request, viewer: ApiViewer, person_id: int):
    """Signed out everywhere and refused from now on, the API tokens acting as them too, until
    enabled. You cannot disable yourself, nor the last admin who may sign in (409). Admins only."""
    require_admin(viewer)

    def change(s, person):
        return people.disable(s, person.id, by=viewer.person_id, signed=viewer.signature), None

    return _apply(request, viewer, change, person_id)


@router.post("/people/{person_id}/enable", response_model=PersonOut, responses={**NOT_FOUND, **WRITE})
def enable(request: Request, viewer: ApiViewer, person_id: int):
    """The login may sign in again (a WeCom member who left still may not). Admins only; a token
    restores no admin (403)."""
    require_admin(viewer)

    def change(s, person):
        _no_admin_rights_by_token(viewer, person.role == "admin")
        return people.enable(s, person.id, signed=viewer.signature), None

    return _apply(request, viewer, change, person_id)
