"""Staff web login against the emulator: authorize -> code -> auth/getuserinfo, single use."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from .conftest import call, token

CALLBACK = "http://scrm.example.com:8000/auth/wecom/cb"


def _authorize(http: httpx.Client, corp: dict, path: str = "/connect/oauth2/authorize", **params):
    query = {
        "appid": corp["corp_id"],
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "k3J9q",
        "agentid": str(corp["agent_id"]),
        **params,
    }
    return http.get(path, params=query, follow_redirects=False)


def test_code_flow_single_use(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp, "agent_secret")
    # Nobody signed in yet: a page lists the staff to sign in as.
    chooser = _authorize(http, corp)
    assert chooser.status_code == 200 and "张三" in chooser.text
    # Sign in through the control route, which comes back to the authorize URL.
    signin = http.get(
        f"/_emulator/oauth/as/{corp['corp_id']}/zhangsan",
        params={"next": str(chooser.request.url)},
        follow_redirects=False,
    )
    assert signin.status_code == 302 and "emu_user" in signin.cookies
    http.cookies.set("emu_user", signin.cookies["emu_user"])
    resp = _authorize(http, corp)
    assert resp.status_code == 302
    target = urlsplit(resp.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
    q = parse_qs(target.query)
    assert q["state"] == ["k3J9q"]
    code = q["code"][0]
    info = call(http, "GET", "auth/getuserinfo", tok, code=code)
    assert info["errcode"] == 0 and info["userid"] == "zhangsan" and "user_ticket" not in info
    assert call(http, "GET", "auth/getuserinfo", tok, code=code)["errcode"] == 40029
    assert call(http, "GET", "auth/getuserinfo", tok, code="made-up")["errcode"] == 40029
    http.cookies.clear()


def test_privateinfo_ticket_legacy_path_and_expiry(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp, "agent_secret")
    resp = _authorize(http, corp, scope="snsapi_privateinfo", emu_user="zhangsan")
    code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
    info = call(http, "GET", "auth/getuserinfo", tok, code=code)
    assert info["user_ticket"]
    detail = call(http, "POST", "auth/getuserdetail", tok, {"user_ticket": info["user_ticket"]})
    assert detail["userid"] == "zhangsan" and detail["mobile"] == "13800000001" and detail["gender"] == "1"

    legacy_code = parse_qs(urlsplit(_authorize(http, corp, emu_user="lisi").headers["location"]).query)[
        "code"
    ][0]
    legacy = call(http, "GET", "user/getuserinfo", tok, code=legacy_code)
    assert legacy["UserId"] == "lisi" and legacy["DeviceId"] == ""

    stale = parse_qs(urlsplit(_authorize(http, corp, emu_user="lisi").headers["location"]).query)["code"][0]
    http.post("/_emulator/clock", json={"advance_s": 301})
    assert (
        call(http, "GET", "auth/getuserinfo", token(http, corp, "agent_secret"), code=stale)["errcode"]
        == 40029
    )


def test_trusted_domains_and_desktop_login(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp, "agent_secret")
    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"trusted_domains": ["scrm.example.com"]})
    refused = _authorize(http, corp, emu_user="lisi")  # port 8000 is not covered by the bare host
    assert refused.status_code == 403 and "50001" in refused.text
    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"trusted_domains": ["scrm.example.com:8000"]})
    desktop = http.get(
        "/wwlogin/sso/login",
        params={
            "login_type": "CorpApp",
            "appid": corp["corp_id"],
            "agentid": corp["agent_id"],
            "redirect_uri": CALLBACK + "?x=1",
            "state": "s",
            "emu_user": "lisi",
        },
        follow_redirects=False,
    )
    assert desktop.status_code == 302 and desktop.headers["location"].startswith(CALLBACK + "?x=1&code=")
    code = parse_qs(urlsplit(desktop.headers["location"]).query)["code"][0]
    assert call(http, "GET", "auth/getuserinfo", tok, code=code)["userid"] == "lisi"


def test_the_sign_in_pages_are_readable_on_a_phone(http, make_corp):
    """WeCom's OAuth is done on a phone: the emulator's "who is signed in" page, and its
    refusals, had no viewport meta and came out at a desktop's width, unreadably small."""
    viewport = '<meta name="viewport" content="width=device-width, initial-scale=1">'
    corp = make_corp(callback=False)
    chooser = _authorize(http, corp)
    assert chooser.status_code == 200 and viewport in chooser.text
    refused = _authorize(http, corp, scope="snsapi_nothing")
    assert refused.status_code != 200 and viewport in refused.text
