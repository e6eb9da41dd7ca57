"""Password login, sessions, logout and CSRF, over real HTTP."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import delete, select, update

from siyu.app import create_app
from siyu.db import utcnow
from siyu.runtime import Runtime
from siyu.tenancy import service as tenancy
from siyu.tenancy.login_throttle import MAX_FAILURES
from siyu.tenancy.models import Person, Staff, WebSession
from siyu.web.auth import NOT_SIGNED_IN, safe_next
from tests.support.servers import serve
from tests.web.conftest import PASSWORD, login

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _login_form(client: httpx.Client) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    assert "siyu_login_csrf" in client.cookies
    return CSRF.search(page.text).group(1)


def _agent_signs_in(client: httpx.Client, world, next_path: str) -> httpx.Response:
    """The agent's login form, filled in and sent to land on `next_path`."""
    token = _login_form(client)
    form = {"login": world.a.logins["agent"], "password": PASSWORD, "csrf_token": token, "next": next_path}
    return client.post("/login", data=form)


def test_login_sets_an_httponly_session_cookie_and_stores_only_its_hash(siyu, world, db):
    with httpx.Client(base_url=siyu) as client:
        r = _agent_signs_in(client, world, next_path="/customers")
        assert r.status_code == 303 and r.headers["location"] == "/customers"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("siyu_session="))
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        raw = client.cookies["siyu_session"]
        with db.tenant_session(world.a.id) as s:
            hashes = set(s.scalars(select(WebSession.token_hash)))
        assert hashlib.sha256(raw.encode()).hexdigest() in hashes
        assert raw not in hashes
        me = client.get("/api/v1/me").json()
        assert me["role"] == "agent" and me["staff_userid"] == "zhangsan"
        assert me["visible_staff"] == ["zhangsan"]
        assert me["tenant"]["slug"] == world.a.slug


def test_wrong_password_and_unknown_login_are_refused_alike(siyu, world):
    with httpx.Client(base_url=siyu) as client:
        token = _login_form(client)
        for name in (world.a.logins["agent"], "nobody-here"):
            r = client.post("/login", data={"login": name, "password": "wrong", "csrf_token": token})
            assert r.status_code == 401
            assert "账号或密码错误" in r.text
            assert "siyu_session" not in client.cookies


def test_a_login_typed_with_capitals_signs_in_unless_two_logins_differ_only_by_case(siyu, world, db):
    """A phone's keyboard types Zhangsan-… for zhangsan-…: it was refused as 账号或密码错误."""
    agent = world.a.logins["agent"]
    for typed in (agent.capitalize(), agent.upper()):
        me = login(siyu, typed).get("/api/v1/me").json()
        assert me["staff_userid"] == "zhangsan", typed
    # two logins alike but for case (as could be made before): each as spelt, a third neither
    base = f"Lin-{uuid.uuid4().hex[:6]}"
    with db.tenant_session(world.a.id) as s:
        tenancy.add_person(s, base.lower(), "林一", "agent", PASSWORD)
        tenancy.add_person(s, base.upper(), "林二", "agent", PASSWORD)
    assert login(siyu, base.lower()).get("/api/v1/me").json()["display_name"] == "林一"
    assert login(siyu, base.upper()).get("/api/v1/me").json()["display_name"] == "林二"
    with httpx.Client(base_url=siyu) as client:
        token = _login_form(client)
        r = client.post("/login", data={"login": base, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 401 and "账号或密码错误" in r.text


def test_login_form_without_its_csrf_cookie_is_refused(siyu, world):
    with httpx.Client(base_url=siyu) as client:
        r = client.post(
            "/login", data={"login": world.a.logins["agent"], "password": PASSWORD, "csrf_token": "forged"}
        )
        assert r.status_code == 403
        assert "siyu_session" not in client.cookies


def test_login_never_redirects_off_site(siyu, world):
    with httpx.Client(base_url=siyu) as client:
        r = _agent_signs_in(client, world, next_path="//evil.example/x")
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_safe_next_allows_only_same_site_paths():
    assert safe_next("/customers/12?x=1") == "/customers/12?x=1"
    for bad in ("//evil.com", "https://evil.com/", "/\\evil.com", "javascript:alert(1)", "", None, "/a\nb"):
        assert safe_next(bad) == "/"


def test_pages_redirect_to_login_and_the_api_answers_401(siyu):
    with httpx.Client(base_url=siyu) as client:
        r = client.get("/customers?q=王")
        assert r.status_code == 303
        location = urlsplit(r.headers["location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"] == ["/customers?q=%E7%8E%8B"]
        r = client.get("/api/v1/customers")
        assert r.status_code == 401 and r.json() == {"detail": NOT_SIGNED_IN}


def test_unsafe_requests_need_the_session_csrf_token(as_role):
    admin = as_role("admin")
    body = {"name": "无令牌", "staff_userids": ["zhangsan"]}
    assert admin.post("/api/v1/channels", json=body).status_code == 403
    r = admin.post("/api/v1/channels", json=body, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = admin.post("/api/v1/channels", json=body, headers={"X-CSRF-Token": "é".encode("latin-1")})
    assert r.status_code == 403  # a token of any characters is refused, not a server error
    # A form post without the hidden field is refused too (the page says why).
    r = admin.post("/staff/sync", data={})
    assert r.status_code == 403 and "页面已过期" in r.text
    r = admin.post("/logout", data={"csrf_token": "nope"})
    assert r.status_code == 403
    assert admin.get("/api/v1/me").status_code == 200  # still signed in


def test_logout_deletes_the_session(as_role, db, world):
    agent = as_role("agent")
    raw = agent.cookies["siyu_session"]
    r = agent.post("/logout", data={"csrf_token": agent.csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with db.tenant_session(world.a.id) as s:
        assert (
            s.scalar(
                select(WebSession).where(WebSession.token_hash == hashlib.sha256(raw.encode()).hexdigest())
            )
            is None
        )
    with httpx.Client(base_url=agent.base_url, cookies={"siyu_session": raw}) as replay:
        assert replay.get("/api/v1/me").status_code == 401


def test_an_expired_session_is_not_accepted(siyu, world, db):
    client = login(siyu, world.a.logins["supervisor"])
    raw = client.cookies["siyu_session"]
    with db.tenant_session(world.a.id) as s:
        s.execute(
            update(WebSession)
            .where(WebSession.token_hash == hashlib.sha256(raw.encode()).hexdigest())
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get("/api/v1/me").status_code == 401
    client.close()


def test_roles_see_their_team(as_role):
    assert as_role("admin").get("/api/v1/me").json()["visible_staff"] is None
    # 王五 leads 销售部 (and its sub-department, 张三's) and is 李四's direct leader.
    assert as_role("supervisor").get("/api/v1/me").json()["visible_staff"] == ["lisi", "wangwu", "zhangsan"]


def test_a_login_is_not_tried_again_after_ten_wrong_passwords(siyu, world, db):
    """Anyone may post the login form: without a limit a password was guessed as fast as the
    server could hash, and the right one still opened the account after any number of wrong."""
    name = f"guessed-{uuid.uuid4().hex[:8]}"
    with db.tenant_session(world.a.id) as s:
        tenancy.add_person(s, name, "被猜密码的人", "agent", PASSWORD)
    with httpx.Client(base_url=siyu) as client:
        token = _login_form(client)
        for n in range(MAX_FAILURES):
            r = client.post("/login", data={"login": name, "password": f"guess-{n}", "csrf_token": token})
            assert r.status_code == 401
        r = client.post("/login", data={"login": name, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 429 and "次数过多" in r.text
        assert "siyu_session" not in client.cookies
        # other logins are not held up by it
        r = client.post(
            "/login", data={"login": world.a.logins["supervisor"], "password": PASSWORD, "csrf_token": token}
        )
        assert r.status_code == 303


def test_a_member_the_staff_sync_has_not_brought_yet_signs_in_and_one_who_left_is_refused(siyu, world, db):
    """A login naming a WeCom member before the staff sync brings them is let in (nothing says
    they left); once the sync finds them gone, their session ends and they cannot sign in."""
    sfx = uuid.uuid4().hex[:6]
    userid, login_name = f"new{sfx}", f"new-{sfx}"
    with db.tenant_session(world.a.id) as s:
        tenancy.add_person(s, login_name, "新同事", "agent", PASSWORD, userid)
    try:
        client = login(siyu, login_name)
        assert client.get("/api/v1/me").status_code == 200
        with db.tenant_session(world.a.id) as s:
            s.add(Staff(userid=userid, name="新同事", departments=[1], main_department=1, active=False))
        assert client.get("/api/v1/me").status_code == 401
        with httpx.Client(base_url=siyu) as again:
            token = _login_form(again)
            form = {"login": login_name, "password": PASSWORD, "csrf_token": token, "next": "/"}
            assert again.post("/login", data=form).status_code != 303
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(
                delete(WebSession).where(
                    WebSession.person_id.in_(select(Person.id).where(Person.login == login_name))
                )
            )
            s.execute(delete(Person).where(Person.login == login_name))
            s.execute(delete(Staff).where(Staff.userid == userid))


def test_the_login_forms_csrf_cookie_is_secure_over_https_and_a_planted_one_is_not_used(web_settings, db):
    """Served over https, the login form's CSRF cookie is Secure, as the session's is: one set
    over plain http by someone on the path (a café's Wi-Fi) is a token they know, to sign a
    member in as themselves. A value Siyu would not have made is not taken up either."""
    settings = web_settings.model_copy(update={"public_url": "https://siyu.example.test"})
    with (
        serve(create_app(settings, Runtime.create(settings, db))) as url,
        httpx.Client(base_url=url) as client,
    ):
        planted = "p" * 32  # the shape of a token, not one this server made
        page = client.get("/login", headers={"Cookie": f"siyu_login_csrf={planted}"})
        [cookie] = [h for h in page.headers.get_list("set-cookie") if h.startswith("siyu_login_csrf=")]
    assert "; secure" in cookie.lower()
    assert planted not in cookie and planted not in page.text


def test_a_login_posted_from_another_site_or_with_a_token_siyu_did_not_make_signs_nobody_in(siyu, world):
    """Login CSRF: a page elsewhere posting the form (its Origin another host), or a token planted
    in the browser that this server did not make, signs nobody in, even with the right password."""
    with httpx.Client(base_url=siyu) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {"login": world.a.logins["agent"], "password": PASSWORD, "csrf_token": token, "next": "/"}
        elsewhere = client.post("/login", data=form, headers={"Origin": "https://evil.example"})
        assert elsewhere.status_code == 403 and "siyu_session" not in elsewhere.cookies
        client.cookies.set("siyu_login_csrf", "p" * 32)
        planted = client.post("/login", data={**form, "csrf_token": "p" * 32})
        assert planted.status_code == 403 and "siyu_session" not in planted.cookies
        client.cookies.set("siyu_login_csrf", token)
        assert client.post("/login", data=form, headers={"Origin": siyu}).status_code == 303
