"""Who is asking: sessions, CSRF, the Viewer, password login and WeCom OAuth for staff.

A browser signs in with a password (`POST /login`) or through WeCom OAuth
(`GET /auth/wecom/{slug}` → WeCom → `/auth/wecom/{slug}/callback`). Either way it gets
the cookie `siyu_session`, a random token; the database keeps only sha256(token) in
WebSession, with an expiry and the session's CSRF token.

Every authenticated request goes through `_authenticate`, the one place that also checks
CSRF: a request with an unsafe method must carry the session's csrf_token, as the form
field `csrf_token` or the header `X-CSRF-Token`. Pages use `PageViewer` (no session →
redirect to /login?next=..., or in WeCom's browser back through WeCom's OAuth: see
`signed_out`), the API uses `ApiViewer` (no session → 401 JSON).

The API also takes `Authorization: Bearer siyu_…`, an admin's API token for an integration
(siyu.tenancy.api_tokens), which acts as the person it names while the admin who made it
still is one. It needs no CSRF token: a browser never sends it on its own, as it does a
cookie. Pages never read it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from siyu.db import utcnow
from siyu.tenancy import api_tokens, login_throttle
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Person, Staff, Tenant, WebSession
from siyu.web.templating import UNSAVED, UNSAVED_COOKIE, render, wecom_message
from siyu.wecom.client import oauth_authorize_url, web_login_url
from siyu.wecom.errors import WeComFailure, WeComInvalidCode

SESSION_COOKIE = "siyu_session"
LOGIN_CSRF_COOKIE = "siyu_login_csrf"
OAUTH_COOKIE = "siyu_oauth"
OAUTH_TTL_S = 600
# sign-ins one browser may have under way at once (cards tapped quickly, each in its tab), and
# the characters their cookie may take: a browser drops a cookie over 4096 bytes, all of them with it
OAUTH_PENDING = 5
OAUTH_COOKIE_CHARS = 3000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# the company of the browser's last WeCom sign-in, sealed (one written by hand, or by a site on
# a sibling subdomain, names none): a page opened there signed out signs in through WeCom
# again, as the member may have no password. As long as a browser keeps one (Chrome: 400 days).
WECOM_TENANT_COOKIE = "siyu_wecom_tenant"
WECOM_TENANT_DAYS = 400
# how many times a minute a signed-out page goes through WeCom before the password form: a
# session that does not hold (a browser that drops it) would otherwise go round for ever
AGAIN_COOKIE = "siyu_wecom_again"
AGAIN_LIMIT = 3
AGAIN_WINDOW_S = 60
# set by 退出, dropped by the next sign-in: a member who signed out on purpose is not signed in
# through WeCom again by Back or a page that reloads itself; the password form offers it
SIGNED_OUT_COOKIE = "siyu_signed_out"
NOT_SIGNED_IN = "未登录，或登录已过期 / not signed in"
TOKEN_REFUSED = "API 令牌无效、已撤销或已过期 / the API token is not valid, revoked or expired"
# a good token refused meanwhile (listed as 暂停, `suspended`): "revoked" would send the
# integrator to make a new one, refused the same, rather than to whoever can undo the cause
TOKEN_SUSPENDED = (
    "API 令牌已暂停：它代表的人或创建它的管理员已离职或停用、创建者不再是管理员，或它代表另一位管理员"
    " / the API token is suspended: the person it acts as or the admin who made it left or was"
    " disabled, its maker is no admin, or it acts as another admin"
)
CODE_SPENT = (
    "企业微信的登录凭证已用过或已超过 5 分钟（例如刷新了页面，或很久之后才打开）。请点「重新登录」，"
    "登录后回到要打开的页面。/ The sign-in code was used already or is older than 5 minutes: sign in again."
)
ROLE_NAMES = {"admin": "管理员", "supervisor": "主管", "agent": "成员"}


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of a token the client sent (any characters: compare_digest
    refuses non-ASCII str, which would answer a forged token with a 500)."""
    return hmac.compare_digest(given.encode(errors="surrogatepass"), expected.encode(errors="surrogatepass"))


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, and which staff members' customers they may see.

    visible_staff is None for an admin (the whole tenant), {own userid} for an agent, and
    for a supervisor: everyone in the departments they lead (with sub-departments), everyone
    whose direct leader they are, and themselves."""

    person_id: int
    tenant_id: int
    role: str
    staff_userid: str | None
    display_name: str
    visible_staff: frozenset[str] | None
    csrf_token: str = ""
    tenant_slug: str = ""
    tenant_name: str = ""
    timezone: str = "Asia/Shanghai"
    session_id: int = field(default=0, compare=False)
    token_id: int | None = field(default=None, compare=False)  # called with an API token
    token_name: str = field(default="", compare=False)

    @property
    def via_token(self) -> bool:
        return self.token_id is not None

    @property
    def signature(self) -> str:
        """The name what they do is recorded under (closed_by, snoozed_by: 200 characters):
        a token's deeds name the token too, so that a reader tells an integration from the
        person it acts as."""
        if not self.via_token:
            return self.display_name[:200]
        tail = f" · API 令牌「{self.token_name}」"
        return self.display_name[: 200 - len(tail)] + tail

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)

    def may_set_call_phone(self, userid: str) -> bool:
        """The number escalation calls ring: a member sets (and sees) their own, an admin anyone's."""
        return self.is_admin or userid == self.staff_userid


class LoginRequired(Exception):
    """Raised by PageViewer; the handler in routes.py redirects to the login page."""

    def __init__(self, next_url: str, unsaved: str = "", owner: tuple[int, int] | None = None):
        self.next_url = next_url
        self.unsaved = unsaved  # a form sent signed out: what it was, for `note_unsaved`
        self.owner = owner  # whose session had ended (tenant, person); None: no session sent


class CsrfRefused(Exception):
    def __init__(self, api: bool):
        self.api = api


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def safe_next(value: str | None, default: str = "/") -> str:
    """Only same-site relative paths: "/customers/1" yes; "//evil", "https://evil", "\\\\x" no."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return default
    return value


# ---------------------------------------------------------------- who may see whom


# ---------------------------------------------------------------- sessions


def start_session(session: Session, rt, person: Person) -> tuple[str, WebSession]:
    """Create a WebSession for `person` (in a tenant session); returns the cookie token."""
    now = utcnow()
    session.execute(delete(WebSession).where(WebSession.person_id == person.id, WebSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=token_hash(token),
        person_id=person.id,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=now + timedelta(days=rt.settings.session_days),
    )
    session.add(row)
    session.flush()
    return token, row


def _set_cookie(response: Response, rt, name: str, value: str, max_age: int, path: str = "/") -> None:
    """A cookie only Siyu's server reads (httponly), sent on links from other sites but not
    their forms (lax), over HTTPS only where Siyu is served so."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=rt.settings.public_url.startswith("https://"),
        path=path,
    )


def set_session_cookie(response: Response, rt, token: str) -> None:
    _set_cookie(response, rt, SESSION_COOKIE, token, rt.settings.session_days * 86400)
    response.delete_cookie(SIGNED_OUT_COOKIE, path="/")


def note_unsaved(response: Response, rt, what: str, owner: tuple[int, int] | None = None) -> None:
    """The login page, and the first page shown once signed in again, say that the form sent
    while signed out (`what`: snooze, dismiss, form) saved nothing (siyu.web.templating). With
    the person whose session had ended (`owner`), sealed: only they are told once signed in,
    not a colleague who signs in next on that browser about a row they may not see."""
    value = f"{what}.{rt.box.seal(f'{owner[0]}:{owner[1]}')}" if owner else what
    _set_cookie(response, rt, UNSAVED_COOKIE, value, 3600)


def load_viewer(rt, token: str) -> Viewer | None:
    return _load_session(rt, token)[0]


def _load_session(rt, token: str) -> tuple[Viewer | None, tuple[int, int] | None]:
    """The viewer the session cookie signs in, and whose session it is or was (tenant, person;
    None: no such session), an ended one too: a form sent after it ended is told of to them."""
    if not token:
        return None, None
    with rt.db.system_session() as s:
        row = s.scalar(select(WebSession).where(WebSession.token_hash == token_hash(token)))
        if row is None:
            return None, None
        owner = (row.tenant_id, row.person_id)
        if row.expires_at <= utcnow():
            s.delete(row)
            return None, owner
        csrf, session_id = row.csrf_token, row.id
    return _viewer(rt, *owner, csrf_token=csrf, session_id=session_id), owner


def load_token_viewer(rt, secret: str) -> Viewer | str:
    """The person an API token acts as, with their role and scope as they are now; else why
    the token is refused."""
    with rt.db.system_session() as s:
        found = api_tokens.use(s, secret)
    if found is None:
        return TOKEN_REFUSED
    return _viewer(rt, found.tenant_id, found.person_id, token=found) or TOKEN_SUSPENDED


def _viewer(
    rt, tenant_id: int, person_id: int, session_id: int = 0, token: api_tokens.TokenUse | None = None, **more
) -> Viewer | None:
    with rt.db.tenant_session(tenant_id) as s:
        person = s.get(Person, person_id)
        tenant = s.get(Tenant, tenant_id)
        if person is None or tenant is None:
            return None
        if person.disabled_at is not None or tenancy.has_left(s, person):
            # a member who left the corp loses access with it, signed in already or not (a
            # token acting as them too: it is refused while they are gone, not revoked); so
            # does a login an admin disabled (siyu.tenancy.people), until enabled
            if session_id:
                s.execute(delete(WebSession).where(WebSession.id == session_id))
            return None
        if token is not None and not api_tokens.vouched_for(s, token):
            return None  # its maker left, or is no admin now: refused while so, not revoked
        return Viewer(
            person_id=person.id,
            tenant_id=tenant_id,
            role=person.role,
            staff_userid=person.staff_userid,
            display_name=person.display_name,
            visible_staff=tenancy.visible_staff(s, person.role, person.staff_userid),
            tenant_slug=tenant.slug,
            tenant_name=tenant.name,
            timezone=tenant.timezone or "Asia/Shanghai",
            session_id=session_id,
            token_id=token.token_id if token else None,
            token_name=token.name if token else "",
            **more,
        )


async def current_viewer(request: Request) -> Viewer | None:
    if not hasattr(request.state, "viewer"):
        token = request.cookies.get(SESSION_COOKIE, "")
        loaded = await run_in_threadpool(_load_session, request.app.state.rt, token)
        request.state.viewer, request.state.session_owner = loaded
    return request.state.viewer


async def _sent_csrf(request: Request) -> str:
    sent = request.headers.get("x-csrf-token", "")
    if sent:
        return sent
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # Starlette caches it for the handler
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


def _bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header ("" for an empty one); None without one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def _token_viewer(request: Request, secret: str) -> Viewer:
    if not hasattr(request.state, "viewer"):  # (asked twice for a body FastAPI refused)
        found = await run_in_threadpool(load_token_viewer, request.app.state.rt, secret)
        request.state.viewer = found if isinstance(found, Viewer) else None
        request.state.token_refused = found if isinstance(found, str) else TOKEN_REFUSED
    if request.state.viewer is None:
        refused = getattr(request.state, "token_refused", TOKEN_REFUSED)
        raise HTTPException(401, refused, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return request.state.viewer


async def _authenticate(request: Request, api: bool) -> Viewer:
    secret = _bearer(request) if api else None
    if secret is not None:  # a token is sent on purpose, not by the browser: no CSRF to check
        return await _token_viewer(request, secret)
    viewer = await current_viewer(request)
    if viewer is None:
        if api:
            raise HTTPException(401, NOT_SIGNED_IN, headers={"WWW-Authenticate": "Cookie"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        unsaved = ""
        if request.method not in SAFE_METHODS:
            target = _page_sent_from(request)
            # never replayed (it would be a write without its CSRF check): the person is told
            action = request.url.path.rsplit("/", 1)[-1]
            unsaved = "" if action == "logout" else action if action in UNSAVED else "form"
        raise LoginRequired(target, unsaved, getattr(request.state, "session_owner", None))
    if request.method not in SAFE_METHODS:
        sent = await _sent_csrf(request)
        if not sent or not _same(sent, viewer.csrf_token):
            raise CsrfRefused(api)
    return viewer


def in_wecom(request: Request) -> bool:
    """WeCom's own browser, on a phone or the desktop client: `... wxwork/4.1.26 MicroMessenger/...`."""
    return "wxwork" in request.headers.get("user-agent", "").lower()


def remember_wecom_tenant(response: Response, rt, tenant_id: int) -> None:
    _set_cookie(response, rt, WECOM_TENANT_COOKIE, rt.box.seal(str(tenant_id)), WECOM_TENANT_DAYS * 86400)


def _remembered_company(rt, sealed: str) -> tuple[str, str] | None:
    """The slug and name of the company a WeCom sign-in on this browser was for; None: none, or gone."""
    try:
        tenant_id = int(rt.box.open(sealed))
    except ValueError:
        return None
    with rt.db.system_session() as s:
        found = s.execute(select(Tenant.slug, Tenant.name).where(Tenant.id == tenant_id)).first()
        return tuple(found) if found else None


async def signed_out(request: Request, exc: LoginRequired) -> Response:
    """Where a page asked for signed out goes: the password form, or, in WeCom's browser that
    signed in through WeCom before, WeCom's OAuth for that company and on to the page (the
    member may have no password). Only a page opened (GET, HEAD): a form sent is never
    replayed, and is told of on the password form; not after 退出, until the next sign-in (the
    form offers WeCom's). A sign-in WeCom refuses ends on its page."""
    rt = request.app.state.rt
    to_login = f"/login?next={quote(exc.next_url, safe='')}"
    sealed = request.cookies.get(WECOM_TENANT_COOKIE, "")
    sent = request.cookies.get(AGAIN_COOKIE, "")
    tries = int(sent) if sent.isascii() and sent.isdigit() and len(sent) < 3 else 0
    wecom = not exc.unsaved and request.method in ("GET", "HEAD") and sealed and in_wecom(request)
    wecom = wecom and not request.cookies.get(SIGNED_OUT_COOKIE)
    if not wecom or tries >= AGAIN_LIMIT:
        response = RedirectResponse(to_login, 303)
        if exc.unsaved:
            note_unsaved(response, rt, exc.unsaved, exc.owner)
        return response
    company = await run_in_threadpool(_remembered_company, rt, sealed)
    if company is None:
        response = RedirectResponse(to_login, 303)
        response.delete_cookie(WECOM_TENANT_COOKIE, path="/")
        return response
    slug = company[0]
    response = RedirectResponse(f"/auth/wecom/{quote(slug)}?next={quote(exc.next_url, safe='')}", 303)
    _set_cookie(response, rt, AGAIN_COOKIE, str(tries + 1), AGAIN_WINDOW_S)
    return response


def _page_sent_from(request: Request) -> str:
    """Where a form sent while signed out (a session ended, signed out in another tab) was:
    to go back to once signed in. Not its action, which answers a GET with 405; the pages
    send their address to this site only (<meta name="referrer" content="same-origin">)."""
    sent_from = urlsplit(request.headers.get("referer", ""))
    if sent_from.netloc != request.url.netloc:
        return "/"
    return safe_next(sent_from.path + (f"?{sent_from.query}" if sent_from.query else ""))


async def page_viewer(request: Request) -> Viewer:
    return await _authenticate(request, api=False)


# Declares the header in the OpenAPI spec (Swagger UI's Authorize); _authenticate reads it.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="api_token",
    description="an API token an admin made (设置 → API 令牌), `siyu_` and 40 letters and digits",
)


_session_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="a signed-in person's session (POST /login), with `X-CSRF-Token` on every write",
)


async def api_viewer(
    request: Request,
    _token: HTTPAuthorizationCredentials | None = Security(_bearer_scheme),
    _session: str | None = Security(_session_scheme),
) -> Viewer:
    return await _authenticate(request, api=True)


async def signed_in_api_viewer(request: Request, _session: str | None = Security(_session_scheme)) -> Viewer:
    """As api_viewer, for what a token may not do (require_signed_in_admin refuses one with a
    403): the spec then offers only the session for it, not a token that cannot work."""
    return await _authenticate(request, api=True)


PageViewer = Annotated[Viewer, Depends(page_viewer)]
ApiViewer = Annotated[Viewer, Depends(api_viewer)]
SignedInApiViewer = Annotated[Viewer, Depends(signed_in_api_viewer)]


def require_admin(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise HTTPException(403, "只有管理员可以这样做 / admins only")


def require_signed_in_admin(viewer: Viewer) -> None:
    """An admin in person: what makes and revokes API tokens, so that a leaked token cannot
    make itself more."""
    if viewer.via_token:
        raise HTTPException(
            403, "API 令牌不能管理令牌，请登录后操作 / an API token cannot manage tokens: sign in"
        )
    require_admin(viewer)


# ---------------------------------------------------------------- routes

router = APIRouter(include_in_schema=False)


async def _wecom_sign_in(request: Request, next_url: str) -> dict | None:
    """The button to WeCom's sign-in for the company of this browser's last one, on to the page:
    after 退出, or a form sent signed out, a member with no password has no other way on. Outside
    WeCom's browser by QR scan, as WeCom's OAuth signs in only inside it."""
    sealed = request.cookies.get(WECOM_TENANT_COOKIE, "")
    company = sealed and await run_in_threadpool(_remembered_company, request.app.state.rt, sealed)
    if not company:
        return None
    slug, name = company
    href = f"/auth/wecom/{quote(slug)}?next={quote(next_url, safe='')}"
    return {"href": href if in_wecom(request) else f"{href}&desktop=1", "company": name}


async def _login_page(request: Request, next_url: str, error: str = "", login: str = "", status: int = 200):
    rt = request.app.state.rt
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _login_token_ours(rt, token):  # (only one this server made is used again)
        nonce = secrets.token_urlsafe(18)
        token = f"{nonce}.{rt.box.sign(LOGIN_CSRF_COOKIE, nonce)}"
    context = {"next": next_url, "error": error, "login": login, "login_csrf": token}
    context["wecom"] = await _wecom_sign_in(request, next_url)
    response = render(request, "login.html", context, status_code=status)
    # Secure where Siyu is served over HTTPS, as every cookie of its: one set over plain http
    # by someone on the path would be a token they know, to sign a staff member in as them
    _set_cookie(response, rt, LOGIN_CSRF_COOKIE, token, 3600)
    return response


def _login_token_ours(rt, token: str) -> bool:
    nonce, _, tag = token.partition(".")
    return bool(nonce) and _same(tag, rt.box.sign(LOGIN_CSRF_COOKIE, nonce))


def _from_elsewhere(request: Request) -> bool:
    """A form posted by a page of another site: the Origin the browser sends names another
    host than this one's (as the client or the configured public address reach it)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False  # (not sent, or a privacy setting's: the CSRF token alone decides)
    ours = {request.headers.get("host", ""), urlsplit(request.app.state.rt.settings.public_url).netloc}
    return urlsplit(origin).netloc not in ours


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/"):
    if await current_viewer(request) is not None:
        return RedirectResponse(safe_next(next), 303)
    return await _login_page(request, safe_next(next))


def _person_by_login(s: Session, login: str) -> Person | None:
    """The login as spelt, else the one login spelt so but for case: a phone's keyboard
    capitalises the first letter typed, and Zhangsan was refused as a wrong password. Where two
    logins differ only by case (made before this), a third spelling is neither's."""
    person = s.scalar(select(Person).where(Person.login == login))
    if person is None and login.isascii():
        # ASCII only: SQLite's lower() folds no other letters, and PostgreSQL's would by locale
        alike = s.scalars(select(Person).where(func.lower(Person.login) == login.lower()).limit(2)).all()
        person = alike[0] if len(alike) == 1 else None
    return person


class LoginRefused(Exception):
    """Too many passwords tried for this login (siyu.tenancy.login_throttle): not checked."""


def _password_login(rt, login: str, password: str, address: str) -> str | None:
    """A session token for the right password, None for a wrong one; LoginRefused when too
    many were tried to check this one."""
    with rt.db.system_session() as s:
        if not login_throttle.take_try(s, login, address):
            raise LoginRefused
    with rt.db.system_session() as s:
        person = _person_by_login(s, login)
        if not tenancy.check_password(person, password) or person.disabled_at is not None:
            return None
        tenant_id, person_id, userid = person.tenant_id, person.id, person.staff_userid
        checked = person.password_hash
    with rt.db.tenant_session(tenant_id) as s:
        if userid and s.scalar(select(Staff.active).where(Staff.userid == userid)) is False:
            return None  # a member who left the corp loses access with it
    with rt.db.system_session() as s:
        login_throttle.signed_in(s, login, address)
    with rt.db.tenant_session(tenant_id) as s:
        # locked, and as it is now: a new password given (or the person disabled) while this
        # one was checked ended every session before this one was made, and it had outlived it
        now = s.scalar(select(Person).where(Person.id == person_id).with_for_update())
        if now is None or now.password_hash != checked or now.disabled_at is not None:
            return None
        token, _ = start_session(s, rt, now)
    return token


@router.post("/login")
async def login_submit(request: Request):
    form = await request.form()
    login = str(form.get("login", "")).strip()
    password = str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "/")))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = str(form.get("csrf_token", ""))
    # (a login posted from another site, or with a token this server did not make, signs nobody
    # in: someone on the path could otherwise sign a member in as themselves)
    rt = request.app.state.rt
    if not cookie or not _login_token_ours(rt, cookie) or not _same(cookie, sent) or _from_elsewhere(request):
        return await _login_page(
            request, next_url, "页面已过期，请重新提交 / the form expired, please retry", login, 403
        )
    if not login or not password:
        return await _login_page(request, next_url, "请输入账号和密码 / enter login and password", login, 422)
    # The client as uvicorn took it: X-Forwarded-For only from a proxy it trusts
    # (FORWARDED_ALLOW_IPS, 127.0.0.1 by default), never the header as any client sent it.
    address = login_throttle.client_address(request.client.host if request.client else None)
    try:
        token = await run_in_threadpool(_password_login, request.app.state.rt, login, password, address)
    except LoginRefused:
        message = (
            "密码错误次数过多，请 15 分钟后再试或用企业微信登录"
            " / too many wrong passwords: try again in 15 minutes, or sign in through WeCom"
        )
        return await _login_page(request, next_url, message, login, 429)
    if token is None:
        return await _login_page(request, next_url, "账号或密码错误 / wrong login or password", login, 401)
    response = RedirectResponse(next_url, 303)
    set_session_cookie(response, request.app.state.rt, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, viewer: PageViewer):
    rt = request.app.state.rt

    def drop() -> None:
        with rt.db.tenant_session(viewer.tenant_id) as s:
            s.execute(delete(WebSession).where(WebSession.id == viewer.session_id))

    await run_in_threadpool(drop)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    _set_cookie(response, rt, SIGNED_OUT_COOKIE, "1", WECOM_TENANT_DAYS * 86400)
    return response


def _refusal(request: Request, title: str, message: str, status: int, retry: str | None = None):
    return render(
        request, "refused.html", {"title": title, "message": message, "retry": retry}, status_code=status
    )


def _tenant_by_slug(rt, slug: str) -> tuple[int, str, int] | None:
    with rt.db.system_session() as s:
        tenant = s.scalar(select(Tenant).where(Tenant.slug == slug))
        return (tenant.id, tenant.corp_id, tenant.agent_id) if tenant else None


@router.get("/auth/wecom/{slug}")
async def wecom_start(request: Request, slug: str, next: str = "/", desktop: bool = False):
    """Start WeCom sign-in: in WeCom's own browser (OAuth2), else by QR scan (a card's link the
    desktop client opens in the system browser, or copied to one: WeCom's OAuth signs in only
    inside its own browser, elsewhere it says 请在企业微信客户端打开链接); ?desktop=1 asks for the
    QR scan whatever the browser."""
    rt = request.app.state.rt
    found = await run_in_threadpool(_tenant_by_slug, rt, slug)
    if found is None:
        return _refusal(request, "找不到企业", "这个登录链接指向的企业不存在。/ Unknown company.", 404)
    _tenant_id, corp_id, agent_id = found
    state = secrets.token_hex(16)
    next_url = safe_next(next)
    # the page rides along in WeCom's redirect too: a browser that comes back without the
    # cookie (expired, another browser) is still offered a sign-in that goes on to it
    redirect_uri = (
        f"{rt.settings.public_url.rstrip('/')}/auth/wecom/{slug}/callback?next={quote(next_url, safe='')}"
    )
    if desktop or not in_wecom(request):
        url = web_login_url(rt.settings.wecom_login_url, corp_id, agent_id, redirect_uri, state)
    else:
        url = oauth_authorize_url(
            rt.settings.wecom_oauth_url, corp_id, redirect_uri, state, agent_id, scope="snsapi_base"
        )
    response = RedirectResponse(url, 302)
    until = int(utcnow().timestamp()) + OAUTH_TTL_S
    _keep_pending(response, rt, [*_pending(request), (slug, state, next_url, until)])
    return response


def _pending(request: Request) -> list[tuple[str, str, str, int]]:
    """The sign-ins this browser started, not yet finished nor expired, oldest first:
    (slug, state, the page to go on to, until when)."""
    now = int(utcnow().timestamp())
    found = []
    for entry in request.cookies.get(OAUTH_COOKIE, "").split("!"):
        parts = entry.split("|")
        expiry = parts[3] if len(parts) == 4 else ""
        # (an edited cookie's thousands of digits: int() refuses past 4,300, a 500)
        if expiry.isascii() and expiry.isdigit() and len(expiry) <= 12 and int(expiry) > now:
            found.append((parts[0], parts[1], unquote(parts[2]), int(parts[3])))
    return found


def _keep_pending(response: Response, rt, pending: list[tuple[str, str, str, int]]) -> None:
    entries = [f"{slug}|{state}|{quote(to, safe='')}|{until}" for slug, state, to, until in pending]
    entries = entries[-OAUTH_PENDING:]
    while len(entries) > 1 and len("!".join(entries)) > OAUTH_COOKIE_CHARS:
        entries.pop(0)  # the oldest given up first
    if not entries:
        response.delete_cookie(OAUTH_COOKIE, path="/auth/wecom")
        return
    _set_cookie(response, rt, OAUTH_COOKIE, "!".join(entries), OAUTH_TTL_S, path="/auth/wecom")


def _staff_sign_in(rt, tenant_id: int, userid: str) -> tuple[str | None, str]:
    """A session for the WeCom member `userid`, or (None, why not)."""
    with rt.db.tenant_session(tenant_id) as s:
        tenant = s.get(Tenant, tenant_id)
        staff = s.scalar(select(Staff).where(Staff.userid == userid))
        if staff is not None and not staff.active:
            return None, "inactive"
        person = tenancy.person_for_staff(s, tenant, userid)
        if person is None:
            return None, "unknown"
        if person.disabled_at is not None:
            return None, "disabled"
        token, _ = start_session(s, rt, person)
        return token, ""


async def _signed_in_to(request: Request, slug: str) -> bool:
    viewer = await current_viewer(request)
    return viewer is not None and viewer.tenant_slug == slug


@router.get("/auth/wecom/{slug}/callback")
async def wecom_callback(request: Request, slug: str, code: str = "", state: str = "", next: str = "/"):
    rt = request.app.state.rt
    retry = f"/auth/wecom/{quote(slug)}"
    pending = _pending(request)
    mine = [p for p in pending if p[0] == slug and _same(p[1], state)] if state else []
    if not mine:
        if await _signed_in_to(request, slug):
            # its address opened again after it signed in (Back, a restored tab): the page,
            # not "expired" to someone who is signed in; a path on this site, as /login?next=
            return RedirectResponse(safe_next(next), 303)
        # the address's `next`, not the cookie's: that is another sign-in's, if any; anyone can
        # write the address, so only a path on this site (as /auth/wecom/{slug}?next= takes)
        retry = f"{retry}?next={quote(safe_next(next), safe='')}"
        return _refusal(
            request,
            "登录已过期",
            "登录请求已过期或不是从本浏览器发起的，请重新打开链接。"
            " / The sign-in expired; open the link again.",
            400,
            retry,
        )
    next_url = safe_next(mine[0][2])
    retry = f"{retry}?next={quote(next_url, safe='')}"
    if not code:
        return _refusal(request, "已取消登录", "你取消了企业微信登录。/ Sign-in was cancelled.", 400, retry)
    found = await run_in_threadpool(_tenant_by_slug, rt, slug)
    if found is None:
        return _refusal(request, "找不到企业", "这个登录链接指向的企业不存在。/ Unknown company.", 404)
    tenant_id = found[0]
    try:
        app = (await rt.clients.get(tenant_id)).app
        who = await app.auth_getuserinfo(code)
    except WeComInvalidCode as exc:  # the member's doing (a reload, a link opened late), not WeCom failing
        return _refusal(request, "登录链接已失效", f"{CODE_SPENT} ({wecom_message(exc)})", 400, retry)
    except WeComFailure as exc:
        return _refusal(request, "企业微信登录失败", wecom_message(exc), 502, retry)
    userid = who.get("userid") or ""
    if not userid:
        return _refusal(
            request,
            "不是企业成员",
            "只有本企业的成员可以登录私域。/ Only members of this company can sign in.",
            403,
        )
    token, why = await run_in_threadpool(_staff_sign_in, rt, tenant_id, userid)
    if token is None:
        message = {
            "inactive": f"成员 {userid} 已停用或已离职，不能登录。/ Member {userid} is inactive.",
            "disabled": f"成员 {userid} 的私域账号已被管理员停用。/ An admin disabled this login.",
            "unknown": (
                f"私域还不认识成员 {userid}：请管理员在「成员」页点「立即同步」后再试。"
                f" / Siyu does not know member {userid} yet: ask an admin to sync staff."
            ),
        }[why]
        return _refusal(request, "无法登录", message, 403, retry)
    response = RedirectResponse(next_url, 303)
    set_session_cookie(response, rt, token)
    remember_wecom_tenant(response, rt, tenant_id)
    _keep_pending(response, rt, [p for p in pending if p is not mine[0]])
    return response
