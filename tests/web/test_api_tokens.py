"""API tokens for integrations: an admin makes one (the page, the API), an integration sends
it as `Authorization: Bearer`, and it reads what the person it acts as would read, no more,
and nothing of another tenant; revoked or expired it is a 401, and it opens no page."""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete, event, or_, select, text, update

from siyu.db import utcnow
from siyu.tenancy import api_tokens
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import ApiToken, Person, Staff
from tests.support.openapi import problems, response_schema
from tests.web.conftest import PASSWORD, fits_the_phone, login, sign_in

_SECRET = re.compile(r'id="token-secret">(siyu_[A-Za-z0-9]+)</code>')


def _bearer(siyu: str, secret: str) -> httpx.Client:
    return httpx.Client(base_url=siyu, timeout=10, headers={"Authorization": f"Bearer {secret}".strip()})


def _from_page(admin: httpx.Client, acts_as: str, expires: str = "90") -> tuple[str, str]:
    """A token made on the admin page: (its name, its secret as the page shows it once)."""
    name = f"CRM 同步 {uuid.uuid4().hex[:6]}"
    r = admin.post(
        "/setup/tokens",
        data={"csrf_token": admin.csrf, "name": name, "acts_as": acts_as, "expires": expires},
    )
    assert r.status_code == 200, r.text
    return name, _SECRET.search(r.text).group(1)


def _from_api(admin: httpx.Client, **body) -> dict:
    body.setdefault("name", f"数据平台 {uuid.uuid4().hex[:6]}")
    r = admin.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 201, r.text
    return r.json()


def _names(client: httpx.Client) -> set[str]:
    r = client.get("/api/v1/customers", params={"per_page": 100})
    assert r.status_code == 200, r.text
    return {c["name"] for c in r.json()["items"]}


def test_a_token_made_on_the_admin_page_reads_as_the_agent_it_acts_as(as_role, siyu):
    """张三's token sees 张三's customers (王女士), not 李四's or 赵六's, as 张三 signed in does;
    the page shows the secret once and then only its prefix."""
    admin, agent = as_role("admin"), as_role("agent")
    zhangsan = agent.get("/api/v1/me").json()["person_id"]
    assert f'value="p:{zhangsan}"' in admin.get("/setup/tokens").text
    name, secret = _from_page(admin, f"p:{zhangsan}")
    assert re.fullmatch(r"siyu_[A-Za-z0-9]{40}", secret)
    with _bearer(siyu, secret) as token:
        me = token.get("/api/v1/me").json()
        assert (me["role"], me["staff_userid"], me["visible_staff"]) == ("agent", "zhangsan", ["zhangsan"])
        seen = _names(token)
        assert "王女士" in seen and not seen & {"陈先生", "刘总"}
        assert seen == _names(agent)
        assert token.get("/api/v1/conversations").status_code == 200
    listed = admin.get("/setup/tokens").text
    assert name in listed and secret[:11] in listed and secret not in listed
    row = next(t for t in admin.get("/api/v1/tokens").json() if t["name"] == name)
    assert row["acts_as"]["staff_userid"] == "zhangsan" and row["status"] == "active"
    assert row["last_used_at"] is not None and row["expires_at"] is not None
    assert row["created_by"] == "甲管理员"


def test_a_token_opens_no_page(as_role, siyu):
    """Pages are for people: a token is sent to them as to a stranger (to the login form)."""
    admin = as_role("admin")
    secret = _from_api(admin)["token"]
    with _bearer(siyu, secret) as token:
        for path in ("/", "/customers", "/setup/tokens"):
            r = token.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), (path, r.status_code)
        assert token.get("/api/v1/me").status_code == 200


def test_a_write_with_a_token_needs_no_csrf_header(as_role, siyu):
    """A token is sent on purpose, never by a browser on its own as a cookie is: no X-CSRF-Token."""
    admin = as_role("admin")
    secret = _from_api(admin, staff_userid="zhangsan")["token"]
    with _bearer(siyu, secret) as token:
        r = token.put("/api/v1/staff/zhangsan/call-phone", json={"phone": "13800002222"})
        assert r.status_code == 200, r.text
        assert r.json()["call_phone"] == "13800002222"
        # acting as 张三: his own number, no one else's
        assert token.put("/api/v1/staff/lisi/call-phone", json={"phone": ""}).status_code == 403
        assert token.put("/api/v1/staff/zhangsan/call-phone", json={"phone": ""}).status_code == 200
    # (a session still needs it)
    assert admin.put("/api/v1/staff/zhangsan/call-phone", json={"phone": ""}).status_code == 403


def test_a_revoked_expired_or_unknown_token_is_refused_with_401(as_role, siyu, db, world):
    refused = "API 令牌无效、已撤销或已过期 / the API token is not valid, revoked or expired"
    admin = as_role("admin")
    revoked, expired = (
        _from_api(admin),
        _from_api(admin, expires_at=(utcnow() + timedelta(days=1)).isoformat()),
    )
    r = admin.post(f"/api/v1/tokens/{revoked['id']}/revoke", headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revoked_at"]
    with db.engine.begin() as conn:  # its day has passed
        conn.execute(
            text("UPDATE api_tokens SET expires_at = :now WHERE id = :id"),
            {"now": utcnow(), "id": expired["id"]},
        )
    listed = {t["id"]: t["status"] for t in admin.get("/api/v1/tokens").json()}
    assert (listed[revoked["id"]], listed[expired["id"]]) == ("revoked", "expired")
    for secret in (revoked["token"], expired["token"], "siyu_" + "x" * 40, "nonsense", ""):
        with _bearer(siyu, secret) as token:
            r = token.get("/api/v1/customers")
            assert (r.status_code, r.json()) == (401, {"detail": refused}), secret
            assert r.headers["www-authenticate"].startswith("Bearer")
    # a bad token is refused even beside a good session: the caller meant the token
    r = admin.get("/api/v1/me", headers={"Authorization": f"Bearer {revoked['token']}"})
    assert r.status_code == 401
    assert "已撤销" in admin.get("/setup/tokens").text


def test_revoking_on_the_page_stops_the_token(as_role, siyu):
    admin = as_role("admin")
    made = _from_api(admin)
    with _bearer(siyu, made["token"]) as token:
        assert token.get("/api/v1/me").status_code == 200
        r = admin.post(f"/setup/tokens/{made['id']}/revoke", data={"csrf_token": admin.csrf})
        assert r.status_code == 303, r.text
        assert token.get("/api/v1/me").status_code == 401


def test_a_token_cannot_make_or_revoke_tokens_nor_can_a_non_admin(as_role, siyu):
    """A leaked admin token must not mint more, nor hide itself by revoking others."""
    admin, supervisor = as_role("admin"), as_role("supervisor")
    made = _from_api(admin)
    with _bearer(siyu, made["token"]) as token:
        assert token.get("/api/v1/me").json()["role"] == "admin"
        assert token.get("/api/v1/tokens").status_code == 403
        assert token.post("/api/v1/tokens", json={"name": "more"}).status_code == 403
        assert token.post(f"/api/v1/tokens/{made['id']}/revoke").status_code == 403
    assert supervisor.get("/api/v1/tokens").status_code == 403
    assert supervisor.get("/setup/tokens").status_code == 403
    r = supervisor.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": supervisor.csrf})
    assert r.status_code == 403


def test_a_token_may_act_as_a_member_who_never_signed_in_but_not_one_who_left(as_role, siyu):
    """李四 has no login yet: the token makes him one, with his scope (as his first WeCom
    sign-in would). 孙八 has left the company."""
    admin = as_role("admin")
    made = _from_api(admin, staff_userid="lisi")
    with _bearer(siyu, made["token"]) as token:
        me = token.get("/api/v1/me").json()
        assert (me["role"], me["visible_staff"]) == ("agent", ["lisi"])
        assert _names(token) == {"陈先生"}
    r = admin.post(
        "/api/v1/tokens", json={"name": "x", "staff_userid": "sunba"}, headers={"X-CSRF-Token": admin.csrf}
    )
    assert r.status_code == 422 and "/" in r.json()["detail"]
    # the page's choice edited by hand: a digit int() refuses (²) is no person, said on the form
    r = admin.post("/setup/tokens", data={"csrf_token": admin.csrf, "name": "x", "acts_as": "p:²"})
    assert r.status_code == 422 and "找不到这个账号" in r.text
    # named as before: by his userid, not the login the token made him (tenant/lisi)
    page = admin.get("/setup/tokens").text
    assert "李四（lisi · 成员）" in page and '李四 <small class="muted">lisi · 成员' in page
    assert "/lisi" not in page


def test_a_token_never_reads_another_tenants_data(as_role, siyu, world):
    admin_a, admin_b = as_role("admin"), as_role("admin", "b")
    b_token = _from_api(admin_b)
    with _bearer(siyu, b_token["token"]) as token:
        assert token.get("/api/v1/me").json()["tenant"]["id"] == world.b.id
        assert _names(token) == {"乙方客户"}
        assert token.get(f"/api/v1/customers/{world.a.customers['王女士']}").status_code == 404
    # tenant A's admin neither sees B's tokens nor can revoke them
    assert b_token["id"] not in {t["id"] for t in admin_a.get("/api/v1/tokens").json()}
    r = admin_a.post(f"/api/v1/tokens/{b_token['id']}/revoke", headers={"X-CSRF-Token": admin_a.csrf})
    assert r.status_code == 404
    assert (
        admin_a.post(f"/setup/tokens/{b_token['id']}/revoke", data={"csrf_token": admin_a.csrf}).status_code
        == 404
    )
    # nor make one acting as B's person
    b_admin_id = admin_b.get("/api/v1/me").json()["person_id"]
    r = admin_a.post(
        "/api/v1/tokens", json={"name": "x", "person_id": b_admin_id}, headers={"X-CSRF-Token": admin_a.csrf}
    )
    assert r.status_code == 422
    with _bearer(siyu, b_token["token"]) as token:
        assert token.get("/api/v1/me").status_code == 200


def test_person_id_is_a_json_number_as_every_other_id_in_the_api(as_role):
    """{"person_id": "1"} made a token (201) acting as person 1, and true did too: a body's
    other ids (a channel's department_ids) and numbers are strict, and a script's mistake (an id
    read from a form or a CSV as text) should not pick whom a token acts as."""
    admin = as_role("admin")
    agent_id = as_role("agent").get("/api/v1/me").json()["person_id"]
    name = f"数据平台 {uuid.uuid4().hex[:6]}"
    for sent in (str(agent_id), True, float(agent_id)):
        r = admin.post(
            "/api/v1/tokens", json={"name": name, "person_id": sent}, headers={"X-CSRF-Token": admin.csrf}
        )
        assert r.status_code == 422, (sent, r.text)
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "person_id"]], r.text
    # 0 is no person's id, not "yourself" (leaving person_id out is): it had made an admin's token
    body = {"name": name, "person_id": 0}
    r = admin.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 422, r.text
    assert name not in {t["name"] for t in admin.get("/api/v1/tokens").json()}
    assert _from_api(admin, name=name, person_id=agent_id)["acts_as"]["person_id"] == agent_id


def test_the_secret_is_kept_only_as_its_hash(as_role, db, world):
    admin = as_role("admin")
    made = _from_api(admin)
    secret = made["token"]
    with db.engine.connect() as conn:
        row = (
            conn.execute(text("SELECT * FROM api_tokens WHERE id = :id"), {"id": made["id"]}).mappings().one()
        )
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert row["prefix"] == secret[:11] == made["prefix"]
    assert row["tenant_id"] == world.a.id
    assert not any(isinstance(v, str) and secret in v for v in row.values())
    assert all("token" not in t for t in admin.get("/api/v1/tokens").json())


def test_the_token_answers_fit_the_spec(as_role, siyu):
    admin = as_role("admin")
    spec = admin.get("/api/v1/openapi.json").json()
    assert spec["components"]["securitySchemes"]["api_token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["api_token"]["description"],
    }
    # a token is refused on the token operations (403): the spec offers only the session there
    for path, method in (
        ("/api/v1/tokens", "get"),
        ("/api/v1/tokens", "post"),
        ("/api/v1/tokens/{token_id}/revoke", "post"),
    ):
        assert spec["paths"][path][method]["security"] == [{"session": []}], (method, path)
    assert {"api_token": []} in spec["paths"]["/api/v1/me"]["get"]["security"]
    assert spec["components"]["securitySchemes"]["session"]["in"] == "cookie"
    made_r = admin.post("/api/v1/tokens", json={"name": "spec"}, headers={"X-CSRF-Token": admin.csrf})
    made = made_r.json()
    with _bearer(siyu, made["token"]) as token, _bearer(siyu, "siyu_nope") as bad:
        calls = [
            ("POST", "/api/v1/tokens", made_r),
            ("GET", "/api/v1/tokens", admin.get("/api/v1/tokens")),
            ("GET", "/api/v1/me", token.get("/api/v1/me")),
            ("GET", "/api/v1/me", bad.get("/api/v1/me")),
            ("GET", "/api/v1/tokens", token.get("/api/v1/tokens")),
            (
                "POST",
                "/api/v1/tokens/{token_id}/revoke",
                admin.post(f"/api/v1/tokens/{made['id']}/revoke", headers={"X-CSRF-Token": admin.csrf}),
            ),
            (
                "POST",
                "/api/v1/tokens/{token_id}/revoke",
                admin.post("/api/v1/tokens/999999999/revoke", headers={"X-CSRF-Token": admin.csrf}),
            ),
        ]
        wrong = []
        for method, path, r in calls:
            try:
                found = problems(spec, response_schema(spec, path, method, r.status_code), r.json())
            except AssertionError as exc:
                found = [str(exc)]
            if found:
                wrong.append((method, path, r.status_code, found[:3]))
    assert [r.status_code for _m, _p, r in calls] == [201, 200, 200, 401, 403, 200, 404]
    assert not wrong, wrong


def test_the_token_page_fits_a_phone_with_the_secret_shown(page, siyu, world):
    sign_in(page, siyu, world.a.logins["admin"], "/setup/tokens")
    page.get_by_label("用途").fill("手机上建的令牌")
    page.get_by_role("button", name="创建令牌").click()
    secret = page.locator("#token-secret").inner_text()
    assert re.fullmatch(r"siyu_[A-Za-z0-9]{40}", secret)
    assert page.locator("#tokens").get_by_text("手机上建的令牌").count() == 1
    fits_the_phone(page)
    # its state and 撤销 on the screen, not past its right edge in a table scrolled sideways
    row = page.locator("#tokens tr", has_text="手机上建的令牌")
    for shown in (row.get_by_text("有效"), row.get_by_role("button", name="撤销")):
        box = shown.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="撤销").click()
    assert page.locator("#tokens tr", has_text="手机上建的令牌").get_by_text("已撤销").count() == 1


def test_an_expiry_is_at_most_ten_years_ahead_and_no_stored_one_breaks_the_page(as_role, db):
    """Year 9999 was taken, and then /setup/tokens failed for every admin: showing it in
    +08:00 overflowed the calendar, and a revoked token stays listed."""
    admin = as_role("admin")
    far = "到期时间最多 10 年 / the expiry is at most 10 years ahead"
    r = admin.post(
        "/api/v1/tokens",
        json={"name": "e4", "expires_at": "9999-12-31T23:59:59Z"},
        headers={"X-CSRF-Token": admin.csrf},
    )
    assert (r.status_code, r.json()) == (422, {"detail": far})
    assert "e4" not in {t["name"] for t in admin.get("/api/v1/tokens").json()}
    made = _from_api(admin, expires_at=(utcnow() + timedelta(days=9 * 365)).isoformat())
    with db.engine.begin() as conn:  # one stored before anything refused it
        conn.execute(
            text("UPDATE api_tokens SET expires_at = :end WHERE id = :id"),
            {"end": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "id": made["id"]},
        )
    page = admin.get("/setup/tokens")
    assert page.status_code == 200 and "9999-12-31 23:59 UTC" in page.text


def test_a_member_who_never_signed_in_is_offered_with_the_role_the_token_gets(as_role):
    """In tenant B nobody but the admin has signed in: 王五 leads 销售部, so a token acting as
    him is a supervisor's, and the choice says so (it said 成员); 李四 leads no one."""
    page = as_role("admin", "b").get("/setup/tokens").text
    assert "王五（wangwu · 主管，尚未登录过）" in page
    assert "李四（lisi · 成员，尚未登录过）" in page


def test_reloading_the_answer_to_the_form_makes_no_second_token(as_role):
    """A reload posts the form again: it made a second active token, whose secret the admin
    then saw in place of the first one's."""
    admin = as_role("admin")
    once = re.search(r'name="once" value="([A-Za-z0-9]+)"', admin.get("/setup/tokens").text).group(1)
    me = admin.get("/api/v1/me").json()["person_id"]
    name = f"重载 {uuid.uuid4().hex[:6]}"
    form = {"csrf_token": admin.csrf, "name": name, "acts_as": f"p:{me}", "expires": "30"}
    first = admin.post("/setup/tokens", data={**form, "once": once})
    assert first.status_code == 200 and _SECRET.search(first.text)
    again = admin.post("/setup/tokens", data={**form, "once": once})
    assert again.status_code == 409 and not _SECRET.search(again.text)
    assert "这个令牌已经创建过，密钥只显示一次 / already created; the secret is shown only once" in again.text
    assert [t["name"] for t in admin.get("/api/v1/tokens").json()].count(form["name"]) == 1
    # the answer's own form is a new one: it makes the next token
    fresh = re.search(r'name="once" value="([A-Za-z0-9]+)"', first.text).group(1)
    assert fresh != once
    assert admin.post("/setup/tokens", data={**form, "once": fresh}).status_code == 200
    assert [t["name"] for t in admin.get("/api/v1/tokens").json()].count(form["name"]) == 2


def test_a_double_click_on_the_form_makes_one_token_and_the_second_post_says_it_was_made(as_role, db, world):
    """Two posts of one form at the same moment both look for its token, both find none, and
    both made one: two active tokens, the admin shown the second's secret only. Here the first
    post's token is stored between the second's look and its own insert, as the first post of a
    double click stores it; the second answers as a reload does."""
    admin = as_role("admin")
    once = re.search(r'name="once" value="([A-Za-z0-9]+)"', admin.get("/setup/tokens").text).group(1)
    me = admin.get("/api/v1/me").json()["person_id"]
    name = f"双击 {uuid.uuid4().hex[:6]}"
    form = {"csrf_token": admin.csrf, "name": name, "acts_as": f"p:{me}", "expires": "30", "once": once}
    stored: list[int] = []

    def first_post_stores_its_token(conn, cursor, statement, *_):
        if stored or not statement.lstrip().upper().startswith("INSERT INTO API_TOKENS"):
            return
        stored.append(1)
        with db.tenant_session(world.a.id) as s:
            first_secret = api_tokens.new_secret(once)
            s.add(
                ApiToken(
                    name=name,
                    person_id=me,
                    created_by_id=me,
                    prefix=first_secret[: api_tokens.SHOWN_CHARS],
                    token_hash=api_tokens.hashed(first_secret),
                )
            )

    event.listen(db.engine, "before_cursor_execute", first_post_stores_its_token)
    try:
        second = admin.post("/setup/tokens", data=form)
    finally:
        event.remove(db.engine, "before_cursor_execute", first_post_stores_its_token)
    assert stored
    assert second.status_code == 409 and not _SECRET.search(second.text)
    assert api_tokens.ALREADY_MADE in second.text
    assert [t["name"] for t in admin.get("/api/v1/tokens").json()].count(name) == 1


# a token refused while who made it or whom it acts as may not call: said so, not "revoked"
SUSPENDED = (
    "API 令牌已暂停：它代表的人或创建它的管理员已离职或停用、创建者不再是管理员，或它代表另一位管理员"
    " / the API token is suspended: the person it acts as or the admin who made it left or was"
    " disabled, its maker is no admin, or it acts as another admin"
)
OTHER_ADMIN = (
    "不能以其他管理员的身份创建令牌：请选自己，或一位主管、成员"
    " / a token may act as yourself or as a supervisor or member, not as another admin"
)


@contextmanager
def _newcomer(db, world, name: str, role: str | None = None, member: bool = True):
    """A WeCom member (or, `member` False, a login made by hand) of tenant A, with a person of
    `role` if one is given (signed in with PASSWORD); removed, and what they made, after."""
    sfx = uuid.uuid4().hex[:6]
    userid, login_name = f"tk{sfx}", f"tk-{sfx}"
    with db.tenant_session(world.a.id) as s:
        if member:
            s.add(Staff(userid=userid, name=name, departments=[1], main_department=1))
        if role:
            tenancy.add_person(s, login_name, name, role, PASSWORD, userid if member else None)
    try:
        yield userid, login_name
    finally:
        with db.tenant_session(world.a.id) as s:
            gone = select(Person.id).where(or_(Person.staff_userid == userid, Person.login == login_name))
            theirs = or_(ApiToken.created_by_id.in_(gone), ApiToken.person_id.in_(gone))
            s.execute(delete(ApiToken).where(theirs))
            s.execute(delete(Person).where(Person.id.in_(gone)))
            s.execute(delete(Staff).where(Staff.userid == userid))


def test_a_token_stops_answering_once_the_admin_who_made_it_leaves(as_role, siyu, db, world):
    """离职管理员, an admin who is a WeCom member, makes tokens acting as 张三 and leaves the
    company: their own session ended at once, but the tokens went on reading 张三's customers,
    for good if they never expire. They are refused while their maker is gone, as the maker's
    own sign-in is; 甲管理员's token acting as 张三 goes on."""
    admin, agent = as_role("admin"), as_role("agent")
    zhangsan = agent.get("/api/v1/me").json()["person_id"]
    with _newcomer(db, world, "离职管理员", "admin") as (userid, login_name):
        leaving = login(siyu, login_name)
        try:
            theirs = [
                _from_api(leaving, person_id=zhangsan)["token"],
                _from_page(leaving, f"p:{zhangsan}")[1],
                _from_api(leaving)["token"],  # acting as themselves
            ]
        finally:
            leaving.close()
        kept = _from_api(admin, person_id=zhangsan)["token"]
        for secret in (*theirs, kept):
            with _bearer(siyu, secret) as token:
                assert token.get("/api/v1/me").status_code == 200
        with db.tenant_session(world.a.id) as s:  # the staff sync finds them gone
            s.execute(update(Staff).where(Staff.userid == userid).values(active=False))
        for secret in theirs:
            with _bearer(siyu, secret) as token:
                r = token.get("/api/v1/customers")
                assert (r.status_code, r.json()) == (401, {"detail": SUSPENDED}), secret[:11]
                assert r.headers["www-authenticate"].startswith("Bearer")
        with _bearer(siyu, kept) as token:
            assert "王女士" in _names(token)
        # the admins' list says which are refused, and why, rather than 有效
        listed = {t["prefix"]: t["status"] for t in admin.get("/api/v1/tokens").json()}
        assert [listed[secret[:11]] for secret in theirs] == ["suspended"] * 3
        assert listed[kept[:11]] == "active"
        page = admin.get("/setup/tokens").text
        assert page.count("代表的人或创建它的管理员已离职") == 3


def test_an_admin_makes_no_token_acting_as_another_admin(as_role, siyu, db, world):
    """An admin made a token acting as 乙号管理员, a login made by hand that nothing in WeCom
    ends: after leaving, they kept an admin's reach under another's name. The page offers
    themselves and no other admin; the page and the API refuse one, saying why, and make
    nothing."""
    admin = as_role("admin")
    me = admin.get("/api/v1/me").json()["person_id"]
    with _newcomer(db, world, "乙号管理员", "admin", member=False) as (_userid, login_name):
        with db.tenant_session(world.a.id) as s:
            other = s.scalar(select(Person.id).where(Person.login == login_name))
        page = admin.get("/setup/tokens").text
        assert f'value="p:{me}"' in page and f'value="p:{other}"' not in page
        name = f"后门 {uuid.uuid4().hex[:6]}"
        r = admin.post(
            "/api/v1/tokens", json={"name": name, "person_id": other}, headers={"X-CSRF-Token": admin.csrf}
        )
        assert (r.status_code, r.json()) == (422, {"detail": OTHER_ADMIN})
        r = admin.post(
            "/setup/tokens",
            data={"csrf_token": admin.csrf, "name": name, "acts_as": f"p:{other}", "expires": ""},
        )
        assert r.status_code == 422 and OTHER_ADMIN in html.unescape(r.text)
        assert name not in {t["name"] for t in admin.get("/api/v1/tokens").json()}
        # the other admin, signed in, makes their own
        themselves = login(siyu, login_name)
        try:
            assert _from_api(themselves)["acts_as"]["person_id"] == other
        finally:
            themselves.close()


def _made_by(page: str, name: str) -> str:
    """Who the tokens page says made the token `name` (its 创建 cell)."""
    row = re.search(rf"<td>{re.escape(name)}</td>.*?</tr>", page, re.S)
    assert row, page
    made = re.search(r'<td data-label="创建">[^<]*<small class="muted">([^<]*)</small>', row[0])
    return made[1] if made else ""


def test_the_tokens_page_says_you_for_the_tokens_the_viewer_made(as_role, siyu, db, world):
    """甲管理员 read their own name beside the tokens they made, as if another 甲管理员 had made
    them; the page says 你 now, as 账号 and 设置 do. Another admin reads the name, and the API,
    for integrations, keeps it."""
    admin = as_role("admin")
    name, _secret = _from_page(admin, f"p:{admin.get('/api/v1/me').json()['person_id']}")
    assert _made_by(admin.get("/setup/tokens").text, name) == "你"
    with _newcomer(db, world, "乙号管理员", "admin", member=False) as (_userid, login_name):
        other = login(siyu, login_name)
        try:
            assert _made_by(other.get("/setup/tokens").text, name) == "甲管理员"
        finally:
            other.close()
    [row] = [t for t in admin.get("/api/v1/tokens").json() if t["name"] == name]
    assert row["created_by"] == "甲管理员"


def test_a_refused_token_form_leaves_no_person_behind(as_role, db, world):
    """A member who never signed in was made a person by the form even when it was refused
    (no name, too long a name): the page's refusal was caught inside its session, which kept
    the person. The page still offers them as never signed in."""
    admin = as_role("admin")
    with _newcomer(db, world, "新同事") as (userid, _login):
        offered = f"新同事（{userid} · 成员，尚未登录过）"
        assert offered in admin.get("/setup/tokens").text
        for name in ("", " ", "长" * 101):
            r = admin.post(
                "/setup/tokens",
                data={"csrf_token": admin.csrf, "name": name, "acts_as": f"s:{userid}", "expires": "30"},
            )
            assert r.status_code == 422 and offered in r.text, name
        assert offered in admin.get("/setup/tokens").text


def test_what_a_token_does_is_recorded_under_the_token_too(as_role, siyu, db, world):
    """无需回复 and a snooze sent with a token acting as 张三 were recorded as 张三's own: a
    supervisor could not tell the integration from him."""
    from siyu.conversations import service as conversations
    from siyu.conversations.models import Conversation
    from siyu.insights.needs_reply import default_classifier
    from tests.web.test_sla_board import _text

    admin, agent = as_role("admin"), as_role("agent")
    name, secret = _from_page(admin, f"p:{agent.get('/api/v1/me').json()['person_id']}")
    signed = f"张三 · API 令牌「{name}」"
    sfx = uuid.uuid4().hex[:8]
    with db.tenant_session(world.a.id) as s:
        asked = [_text(sfx, n, f"wmtk{n}{sfx}", "zhangsan", f"能开发票吗 {sfx}", 30) for n in (1, 2)]
        conversations.ingest(s, asked, default_classifier().classify)
        snoozed, dismissed = (
            s.scalar(select(Conversation.id).where(Conversation.external_userid == f"wmtk{n}{sfx}"))
            for n in (1, 2)
        )
    with _bearer(siyu, secret) as token:
        r = token.post(f"/api/v1/conversations/{snoozed}/snooze", json={"minutes": 30})
        assert r.status_code == 200 and r.json()["by"] == signed, r.text
        assert token.post(f"/api/v1/conversations/{dismissed}/dismiss").status_code == 200
    assert agent.get(f"/api/v1/conversations/{snoozed}").json()["snooze"]["by"] == signed
    assert signed in html.unescape(agent.get(f"/conversations/{snoozed}").text)
    [asked] = [m for m in agent.get(f"/api/v1/conversations/{dismissed}/messages").json()["items"]]
    assert asked["dismissed_by"] == signed
    # signed in, 张三 is himself
    r = agent.post(
        f"/api/v1/conversations/{snoozed}/snooze", json={"minutes": 60}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert r.json()["by"] == "张三"


def test_a_token_acting_as_another_admin_is_refused_whenever_it_was_made(as_role, siyu, db, world):
    """The rule was checked only when a token was made: one made before it (or whose person was
    made admin since) went on answering with another admin's reach, listed as 有效."""
    admin = as_role("admin")
    with _newcomer(db, world, "乙号管理员", "supervisor", member=False) as (_userid, login_name):
        with db.tenant_session(world.a.id) as s:
            other = s.scalar(select(Person.id).where(Person.login == login_name))
        secret = _from_api(admin, person_id=other)["token"]  # a supervisor then: allowed
        with _bearer(siyu, secret) as token:
            assert token.get("/api/v1/me").status_code == 200
        with db.tenant_session(world.a.id) as s:
            s.execute(update(Person).where(Person.id == other).values(role="admin"))
        with _bearer(siyu, secret) as token:
            r = token.get("/api/v1/me")
            assert (r.status_code, r.json()) == (401, {"detail": SUSPENDED})
        listed = {t["prefix"]: t["status"] for t in admin.get("/api/v1/tokens").json()}
        assert listed[secret[: api_tokens.SHOWN_CHARS]] == "suspended"
        with db.tenant_session(world.a.id) as s:  # a supervisor again: it answers again
            s.execute(update(Person).where(Person.id == other).values(role="supervisor"))
        with _bearer(siyu, secret) as token:
            assert token.get("/api/v1/me").status_code == 200


def test_a_token_for_a_member_named_in_another_case_acts_as_that_member(as_role, siyu, db, world):
    """WeCom's userids are case-insensitive: a token for ZhangSan was refused as 找不到这个账号,
    one for a member who left (SunBa) named no one. ZhangSan's acts as 张三; a newcomer typed in
    capitals gets their login made as lisi's was, with the userid as synced; SunBa has left."""
    admin = as_role("admin")
    made = _from_api(admin, staff_userid="ZhangSan")
    assert (made["acts_as"]["staff_userid"], made["acts_as"]["login"]) == (
        "zhangsan",
        world.a.logins["agent"],
    )
    with _bearer(siyu, made["token"]) as token:
        assert token.get("/api/v1/me").json()["visible_staff"] == ["zhangsan"]
    with _newcomer(db, world, "新同事") as (userid, _login):
        made = _from_api(admin, staff_userid=userid.upper())
        assert made["acts_as"]["staff_userid"] == userid and made["acts_as"]["login"].endswith(f"/{userid}")
    r = admin.post(
        "/api/v1/tokens", json={"name": "x", "staff_userid": "SunBa"}, headers={"X-CSRF-Token": admin.csrf}
    )
    assert r.status_code == 422 and "孙八 已离职" in r.json()["detail"], r.text
