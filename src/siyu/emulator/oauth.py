"""Staff web login (REFERENCE.md section 14): in-client OAuth2 and desktop QR login.

There is no WeCom client in a test browser, so the emulator must be told who is "signed in
to WeCom": either `emu_user=<userid>` on the authorize URL, or the `emu_user` cookie set by
`GET /_emulator/oauth/as/{corp_id}/{userid}?next=<url>`. Without either, the authorize page
lists the corp's staff as links that sign in and come back (handy in a demo).

Browser routes:
  GET /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope&state&agentid
  GET /wwlogin/sso/login?login_type=CorpApp&appid&agentid&redirect_uri&state   (desktop QR login)
  GET /wwopen/sso/qrConnect?appid&agentid&redirect_uri&state                   (legacy QR login)
  GET /_emulator/oauth/as/{corp_id}/{userid}?next=URL   sets the emu_user cookie, 302 to next
  GET /_emulator/oauth/signout                          clears it
Each authorize answers 302 to `redirect_uri?code=CODE&state=STATE`. The redirect host
(host:port, exact) must be in the corp's trusted_domains; an EMPTY list accepts any host,
so tests need no setup. Refusals are an HTML page with the errcode (403/400), as WeCom
shows a page rather than redirecting.

API: auth/getuserinfo (userid, + user_ticket for snsapi_privateinfo), auth/getuserdetail,
legacy user/getuserinfo (UserId/DeviceId). Codes: single use, 5 min (40029 otherwise).
"""

from __future__ import annotations

import html
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from .cgi import Ctx, api
from .errors import MESSAGES, WeComError
from .state import Corp, OAuthCode, rand_id

COOKIE = "emu_user"
SCOPES = ("snsapi_base", "snsapi_privateinfo", "snsapi_userinfo")
# The head of its pages: they are opened on a phone, as WeCom's are (else drawn at a desktop's width)
HEAD = (
    '<!doctype html><meta charset=utf-8><meta name="viewport" content="width=device-width, initial-scale=1">'
)


def _refuse(errcode: int, detail: str = "", status: int = 400) -> HTMLResponse:
    text = html.escape(f"{errcode} {MESSAGES.get(errcode, 'error')} {detail}".strip())
    return HTMLResponse(f"{HEAD}<title>{errcode}</title><p>{text}</p>", status)


def _signed_in(request: Request, corp: Corp) -> str | None:
    userid = request.query_params.get(COOKIE)
    if not userid:
        cookie = request.cookies.get(COOKIE, "")
        corp_id, _, userid = cookie.partition("/")
        if corp_id != corp.corp_id:
            return None
    staff = corp.staff.get(userid or "")
    return staff.userid if staff and staff.status != 5 else None


def _chooser(request: Request, corp: Corp) -> HTMLResponse:
    here = quote(str(request.url), safe="")
    links = "".join(
        f'<li><a href="/_emulator/oauth/as/{corp.corp_id}/{quote(s.userid)}?next={here}">'
        f"{html.escape(s.name)} ({html.escape(s.userid)})</a></li>"
        for s in corp.active_staff()
    )
    return HTMLResponse(
        f"{HEAD}<title>企业微信 emulator sign-in</title>"
        f"<h1>{html.escape(corp.name)}: who is signed in to WeCom?</h1><ul>{links}</ul>"
    )


def _authorize(request: Request, emu, scope: str, agentid_required: bool):
    q = request.query_params
    corp = emu.state.corps.get(q.get("appid", ""))
    if corp is None:
        return _refuse(40013)
    if scope not in SCOPES:
        return _refuse(40035, "invalid scope")
    agentid = q.get("agentid", "")
    if (agentid_required or scope == "snsapi_privateinfo") and not agentid:
        return _refuse(40056, "agentid is required")
    if agentid and agentid != str(corp.agent_id):
        return _refuse(40056)
    redirect_uri = q.get("redirect_uri", "")
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _refuse(40035, "invalid redirect_uri")
    if corp.trusted_domains and parts.netloc not in corp.trusted_domains:
        return _refuse(50001, parts.netloc, status=403)
    userid = _signed_in(request, corp)
    if userid is None:
        return _chooser(request, corp)
    code = OAuthCode(rand_id(n=64), userid, scope, agentid, parts.netloc, emu.state.now())
    corp.oauth_codes[code.code] = code
    sep = "&" if parts.query else "?"
    target = redirect_uri + sep + urlencode({"code": code.code, "state": q.get("state", "")})
    return RedirectResponse(target, status_code=302)


def build_router(emu) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/connect/oauth2/authorize")
    async def authorize(request: Request):
        if request.query_params.get("response_type", "code") != "code":
            return _refuse(40035, "response_type must be code")
        return _authorize(request, emu, request.query_params.get("scope", "snsapi_base"), False)

    @router.get("/wwlogin/sso/login")
    async def sso_login(request: Request):
        if request.query_params.get("login_type", "CorpApp") != "CorpApp":
            return _refuse(40035, "only login_type=CorpApp is emulated")
        return _authorize(request, emu, "snsapi_base", True)

    @router.get("/wwopen/sso/qrConnect")
    async def qr_connect(request: Request):
        return _authorize(request, emu, "snsapi_base", True)

    @router.get("/_emulator/oauth/as/{corp_id}/{userid}")
    async def sign_in_as(corp_id: str, userid: str, next: str = ""):
        corp = emu.state.corps.get(corp_id)
        if corp is None or userid not in corp.staff:
            return JSONResponse({"detail": "unknown corp or userid"}, 404)
        resp = RedirectResponse(next, 302) if next else JSONResponse({"corp_id": corp_id, "userid": userid})
        resp.set_cookie(COOKIE, f"{corp_id}/{userid}", httponly=True, samesite="lax")
        return resp

    @router.get("/_emulator/oauth/signout")
    async def sign_out():
        resp = JSONResponse({"signed_out": True})
        resp.delete_cookie(COOKIE)
        return resp

    return router


def _take_code(ctx: Ctx) -> OAuthCode:
    corp = ctx.need_corp()
    value = ctx.query.get("code", "")
    if not value:
        raise WeComError(41008)
    code = corp.oauth_codes.get(value)
    if code is None or code.used or code.issued_at + ctx.state.config.oauth_code_ttl_s < ctx.state.now():
        raise WeComError(40029)
    if corp.trusted_domains and code.redirect_host not in corp.trusted_domains:
        raise WeComError(50001)
    code.used = True
    return code


@api("auth/getuserinfo", methods=("GET",))
async def auth_getuserinfo(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    code = _take_code(ctx)
    out = {"userid": code.userid}
    if code.scope == "snsapi_privateinfo":
        ticket = rand_id(n=64)
        corp.user_tickets[ticket] = (code.userid, ctx.state.now() + ctx.state.config.user_ticket_ttl_s)
        out.update(user_ticket=ticket, expires_in=int(ctx.state.config.user_ticket_ttl_s))
    return out


@api("user/getuserinfo", methods=("GET",))
async def legacy_getuserinfo(ctx: Ctx) -> dict:
    code = _take_code(ctx)
    return {"UserId": code.userid, "DeviceId": ""}


@api("auth/getuserdetail", methods=("POST",))
async def auth_getuserdetail(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    ticket = str(ctx.json.get("user_ticket") or "")
    if not ticket:
        raise WeComError(41009)
    entry = corp.user_tickets.get(ticket)
    if entry is None or entry[1] < ctx.state.now():
        raise WeComError(40035, "invalid user_ticket")  # no documented code; our choice
    staff = corp.staff[entry[0]]
    return {
        "userid": staff.userid,
        "gender": str(staff.gender),
        "avatar": staff.avatar,
        "qr_code": "",
        "mobile": staff.mobile,
        "email": staff.email,
        "biz_mail": "",
        "address": "",
    }
