"""/api/v1/people: an integration with an admin's API token (or an admin signed in) lists the
tenant's logins, makes one, changes a role, gives a new password and ends or restores a login,
with the guard rails of 设置 → 账号; it never sees a password hash, never another tenant's
people, and a token never gives anyone admin rights."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import timedelta

import httpx
from sqlalchemy import delete, or_, select, update

from siyu.db import utcnow
from siyu.tenancy import people
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import ApiToken, Person, WebSession
from tests.support.openapi import problems, response_schema
from tests.web.conftest import PASSWORD, login


def _token(admin: httpx.Client, **body) -> tuple[httpx.Client, str]:
    """A client calling with a new token the admin made (acting as themselves unless told), and
    the name its deeds are signed with."""
    body.setdefault("name", f"HR 同步 {uuid.uuid4().hex[:6]}")
    r = admin.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 201, r.text
    made = r.json()
    client = httpx.Client(
        base_url=str(admin.base_url), timeout=10, headers={"Authorization": f"Bearer {made['token']}"}
    )
    return client, f"{made['acts_as']['display_name']} · API 令牌「{made['name']}」"


@contextmanager
def _cleanup(db, world, *logins: str):
    try:
        yield
    finally:
        with db.tenant_session(world.a.id) as s:
            ids = select(Person.id).where(Person.login.in_(logins))
            s.execute(
                delete(ApiToken).where(or_(ApiToken.person_id.in_(ids), ApiToken.created_by_id.in_(ids)))
            )
            s.execute(delete(Person).where(Person.id.in_(ids)))


@contextmanager
def _by_hand(db, world, role: str):
    login_name = f"pa-{uuid.uuid4().hex[:6]}"
    with db.tenant_session(world.a.id) as s:
        person_id = tenancy.add_person(s, login_name, f"临时{role}", role, PASSWORD).id
    with _cleanup(db, world, login_name):
        yield person_id, login_name


def _signs_in(siyu: str, login_name: str, password: str) -> bool:
    with httpx.Client(base_url=siyu) as c:
        page = c.get("/login")
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = c.post("/login", data={"login": login_name, "password": password, "csrf_token": csrf})
        return r.status_code == 303


def test_an_admin_token_lists_the_tenants_people_and_no_password_hash(as_role, world):
    admin = as_role("admin")
    token, _ = _token(admin)
    with token:
        r = token.get("/api/v1/people")
        assert r.status_code == 200, r.text
        listed = {p["login"]: p for p in r.json()}
        assert listed[world.a.logins["admin"]]["role"] == "admin"
        assert listed[world.a.logins["agent"]]["staff_userid"] == "zhangsan"
        assert listed[world.a.logins["agent"]]["has_password"] is True
        assert world.b.logins["admin"] not in listed  # another tenant's
        assert "argon2" not in r.text and all("password_hash" not in p for p in r.json())
        one = token.get(f"/api/v1/people/{listed[world.a.logins['agent']]['id']}").json()
        assert one["display_name"] == "张三" and "password" not in one


def test_a_token_makes_a_login_that_signs_in_with_the_password_answered_once(as_role, siyu, db, world):
    admin = as_role("admin")
    token, signed = _token(admin)
    made_login, given_login = f"pa-{uuid.uuid4().hex[:6]}", f"pa-{uuid.uuid4().hex[:6]}"
    with token, _cleanup(db, world, made_login, given_login, f"{world.a.logins['admin']}x"):
        r = token.post(
            "/api/v1/people", json={"login": made_login, "display_name": "客服小周", "role": "agent"}
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["role"] == "agent" and made["has_password"] and made["updated_by"] == signed
        assert len(made["password"]) >= 12
        assert _signs_in(siyu, made_login, made["password"])
        # shown once: the login reads back without it
        assert "password" not in token.get(f"/api/v1/people/{made['id']}").json()
        assert admin.get("/api/v1/people").json()  # the admin sees who made it
        assert {p["login"]: p["updated_by"] for p in admin.get("/api/v1/people").json()}[made_login] == signed

        r = token.post(
            "/api/v1/people",
            json={
                "login": given_login,
                "display_name": "主管小吴",
                "role": "supervisor",
                "password": "hr-given-123",
            },
        )
        assert r.status_code == 201 and r.json()["password"] is None, r.text
        assert _signs_in(siyu, given_login, "hr-given-123")

        # a login is unique across Siyu: taken here or by another tenant, it is a 409
        for taken in (made_login, world.b.logins["admin"]):
            r = token.post("/api/v1/people", json={"login": taken, "display_name": "重名", "role": "agent"})
            assert r.status_code == 409 and "已被使用" in r.json()["detail"], r.text
            # spelt alike but for case, which sign-in ignores: taken too (another tenant's
            # spelling not quoted: it is theirs)
            alike = {"login": taken.upper(), "display_name": "重名", "role": "agent"}
            r = token.post("/api/v1/people", json=alike)
            said = f"与已有的 {taken} 只差大小写" if taken == made_login else "已被使用"
            assert r.status_code == 409 and said in r.json()["detail"], r.text
            assert taken == made_login or taken not in r.text


def test_an_empty_staff_userid_is_a_login_by_hand(as_role, siyu, db, world):
    """A directory sync that writes "" for "no WeCom member" (as a form's empty choice does) was
    refused: 企业微信里没有在职成员 ：先同步通讯录 (a member named by nothing), and with a
    password, by a token, told it set a password on a WeCom member's login. "" is none."""
    admin = as_role("admin")
    token, _ = _token(admin)
    made_login, given_login = f"pa-{uuid.uuid4().hex[:6]}", f"pa-{uuid.uuid4().hex[:6]}"
    with token, _cleanup(db, world, made_login, given_login):
        r = token.post(
            "/api/v1/people",
            json={"login": made_login, "display_name": "客服小郑", "role": "agent", "staff_userid": ""},
        )
        assert r.status_code == 201 and r.json()["staff_userid"] is None, r.text
        assert _signs_in(siyu, made_login, r.json()["password"])
        body = {"login": given_login, "display_name": "客服小王", "role": "agent", "staff_userid": "  "}
        r = token.post("/api/v1/people", json={**body, "password": "hr-given-123"})
        assert r.status_code == 201 and r.json()["staff_userid"] is None, r.text
        assert _signs_in(siyu, given_login, "hr-given-123")


def test_a_login_for_a_wecom_member_needs_no_password_and_only_one_per_member(as_role, siyu, db, world):
    admin = as_role("admin")
    token, _ = _token(admin)
    member_login = f"pa-{uuid.uuid4().hex[:6]}"
    with token, _cleanup(db, world, member_login, f"{member_login}2"):
        body = {"login": member_login, "display_name": "李四", "role": "supervisor", "staff_userid": "lisi"}
        r = token.post("/api/v1/people", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["password"] is None and r.json()["has_password"] is False
        r = token.post("/api/v1/people", json={**body, "login": f"{member_login}2"})
        assert r.status_code == 409 and "已有账号" in r.json()["detail"]
        # a password the token chose on a member's login could outlive it, the member made admin later
        r = token.post("/api/v1/people", json={**body, "login": f"{member_login}2", "password": "known-1234"})
        assert r.status_code == 403 and "企业微信成员的账号设密码" in r.json()["detail"], r.text
        r = token.post("/api/v1/people", json={**body, "login": f"{member_login}2", "staff_userid": "nobody"})
        assert r.status_code == 422 and "没有在职成员" in r.json()["detail"]


def test_a_login_for_a_member_named_in_another_case_is_the_members(as_role, siyu, db, world):
    """WeCom's userids are case-insensitive: an HR system sending LiSi for lisi was told
    企业微信里没有在职成员 LiSi. It is 李四's login, linked to lisi as stored, and one more
    for LISI is the second login of the same member."""
    admin = as_role("admin")
    token, _ = _token(admin)
    member_login = f"pa-{uuid.uuid4().hex[:6]}"
    with db.tenant_session(world.a.id) as s:  # (an earlier test's WeCom sign-in made 李四 one)
        s.execute(delete(Person).where(Person.staff_userid == "lisi"))
    with token, _cleanup(db, world, member_login, f"{member_login}2"):
        body = {"login": member_login, "display_name": "李四", "role": "agent", "staff_userid": "LiSi"}
        r = token.post("/api/v1/people", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["staff_userid"] == "lisi"
        r = token.post("/api/v1/people", json={**body, "login": f"{member_login}2", "staff_userid": "LISI"})
        assert r.status_code == 409 and "成员 lisi 已有账号" in r.json()["detail"], r.text


def test_bad_payloads_are_422_and_say_which_field(as_role, db, world):
    admin = as_role("admin")
    token, _ = _token(admin)
    ok = {"login": f"pa-{uuid.uuid4().hex[:6]}", "display_name": "某人", "role": "agent"}
    with token, _cleanup(db, world, ok["login"]):
        for body, where in (
            ({**ok, "role": "root"}, ["body", "role"]),
            ({k: v for k, v in ok.items() if k != "login"}, ["body", "login"]),
            ({**ok, "login": 42}, ["body", "login"]),
            ({**ok, "password": "short"}, ["body", "password"]),
            ({**ok, "is_admin": True}, ["body", "is_admin"]),
        ):
            r = token.post("/api/v1/people", json=body)
            assert r.status_code == 422, (body, r.text)
            assert [e["loc"] for e in r.json()["detail"]] == [where], r.text
        for login_name in ("a b", "acme/zhangsan", "   "):
            r = token.post("/api/v1/people", json={**ok, "login": login_name})
            assert r.status_code == 422 and isinstance(r.json()["detail"], str), r.text
        person_id = admin.get("/api/v1/me").json()["person_id"]
        r = token.put(f"/api/v1/people/{person_id}/role", json={"role": "boss"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "role"]
        r = token.post(f"/api/v1/people/{person_id}/password", json={"password": 12345678})
        assert r.status_code == 422
        with db.tenant_session(world.a.id) as s:
            assert s.scalar(select(Person.id).where(Person.login == ok["login"])) is None


# what shows as no name at all: a zero-width space, joiners and a BOM, a direction mark, an
# ideographic space, the Braille blank and Hangul filler of WeChat nicknames
INVISIBLE_NAMES = ("\u200b", "\u200c\u200d\ufeff", " \u200e ", "\u3000", "\u2800", "\u3164")


def test_a_display_name_of_only_invisible_characters_is_a_422_naming_the_field(as_role, db, world):
    """{"display_name": "\u200b"} made a login (201) that every list showed without a name."""
    token, _ = _token(as_role("admin"))
    ok = {"login": f"pa-{uuid.uuid4().hex[:6]}", "display_name": "某人", "role": "agent"}
    with token, _cleanup(db, world, ok["login"]):
        for blank in INVISIBLE_NAMES:
            r = token.post("/api/v1/people", json={**ok, "display_name": blank})
            assert r.status_code == 422, (ascii(blank), r.text)
            [problem] = r.json()["detail"]
            assert problem["loc"] == ["body", "display_name"], r.text
            assert "姓名不能为空" in problem["msg"] and "display_name" in problem["msg"], r.text
        with db.tenant_session(world.a.id) as s:
            assert s.scalar(select(Person.id).where(Person.login == ok["login"])) is None
        r = token.post("/api/v1/people", json={**ok, "display_name": "\u200b某人"})
        assert r.status_code == 201, r.text


def test_a_password_in_a_body_not_sent_as_a_json_object_is_not_repeated(as_role, db, world):
    """curl's `-d '{"password": …}'` sends the JSON with a form's Content-Type, and a client
    encoding its document twice sends one JSON string: either way the 422 repeated the whole
    body as its `input`, the password with it. The first is a 415 saying what to send, the
    second a 422 whose body is hidden, and neither repeats the password."""
    admin = as_role("admin")
    secret = f"Geheim-{uuid.uuid4().hex[:8]}"
    body = {
        "login": f"pa-{uuid.uuid4().hex[:6]}",
        "display_name": "某人",
        "role": "agent",
        "password": secret,
    }
    csrf = {"X-CSRF-Token": admin.csrf}
    with _cleanup(db, world, body["login"]):
        r = admin.post(
            "/api/v1/people",
            content=json.dumps(body),
            headers={**csrf, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 415 and "application/x-www-form-urlencoded" in r.json()["detail"], r.text
        assert secret not in r.text
        r = admin.post("/api/v1/people", json=json.dumps(body), headers=csrf)
        assert r.status_code == 422 and [e["loc"] for e in r.json()["detail"]] == [["body"]], r.text
        assert secret not in r.text
        with db.tenant_session(world.a.id) as s:
            assert s.scalar(select(Person.id).where(Person.login == body["login"])) is None


def test_a_refusal_never_repeats_a_password_sent(as_role, db, world):
    """A 422 repeated the refused value, so a body with a password and a field missing or
    wrong came back with the password in it (`"input": {…, "password": "…"}`), for whatever
    logs the answers (a proxy, the integration's own error log). It says the field, not it."""
    admin = as_role("admin")
    secret = f"Geheim-{uuid.uuid4().hex[:8]}"
    ok = {"login": f"pa-{uuid.uuid4().hex[:6]}", "display_name": "某人", "role": "agent"}
    no_login = {"display_name": "某人", "role": "agent", "password": secret}
    person_id = admin.get("/api/v1/me").json()["person_id"]
    csrf = {"X-CSRF-Token": admin.csrf}
    with _cleanup(db, world, ok["login"]):
        for url, body, where in (
            ("/api/v1/people", no_login, ["body", "login"]),  # the whole body repeated
            ("/api/v1/people", {**ok, "password": secret[:7]}, ["body", "password"]),
            ("/api/v1/people", {**ok, "role": "boss", "password": secret}, ["body", "role"]),
            (f"/api/v1/people/{person_id}/password", {"password": secret[:7]}, ["body", "password"]),
        ):
            r = admin.post(url, json=body, headers=csrf)
            assert r.status_code == 422 and [e["loc"] for e in r.json()["detail"]] == [where], r.text
            assert secret[:7] not in r.text, r.text
        with db.tenant_session(world.a.id) as s:
            assert s.scalar(select(Person.id).where(Person.login == ok["login"])) is None


def test_a_token_changes_a_role_disables_restores_and_resets_a_password(as_role, siyu, db, world):
    admin = as_role("admin")
    token, signed = _token(admin)
    with token, _by_hand(db, world, "agent") as (person_id, login_name):
        session = login(siyu, login_name)
        r = token.put(f"/api/v1/people/{person_id}/role", json={"role": "supervisor"})
        assert r.status_code == 200 and r.json()["role"] == "supervisor" and r.json()["updated_by"] == signed
        assert session.get("/api/v1/me").json()["role"] == "supervisor"

        r = token.post(f"/api/v1/people/{person_id}/disable")
        assert r.status_code == 200 and r.json()["disabled_at"], r.text
        assert session.get("/api/v1/me").status_code == 401
        assert not _signs_in(siyu, login_name, PASSWORD)
        r = token.post(f"/api/v1/people/{person_id}/enable")
        assert r.status_code == 200 and r.json()["disabled_at"] is None
        assert _signs_in(siyu, login_name, PASSWORD)

        # a password the token set would outlive it (and the login be made an admin later by
        # someone who never knew): a token resets none; an admin signed in does
        r = token.post(f"/api/v1/people/{person_id}/password", json={"password": "taken-over-1"})
        assert r.status_code == 403 and "不能重设密码" in r.json()["detail"], r.text
        assert _signs_in(siyu, login_name, PASSWORD)
        csrf = {"X-CSRF-Token": admin.csrf}
        r = admin.post(f"/api/v1/people/{person_id}/password", headers=csrf)
        assert r.status_code == 200, r.text
        new = r.json()["password"]
        assert new and not _signs_in(siyu, login_name, PASSWORD) and _signs_in(siyu, login_name, new)
        r = admin.post(
            f"/api/v1/people/{person_id}/password", json={"password": "chosen-by-hr"}, headers=csrf
        )
        assert r.status_code == 200 and r.json()["password"] is None
        assert _signs_in(siyu, login_name, "chosen-by-hr")
        r = admin.post(f"/api/v1/people/{person_id}/password", json={"password": "short"}, headers=csrf)
        assert r.status_code == 422
        session.close()


def test_the_guard_rails_hold_through_the_api(as_role, db, world):
    """The admin neither demotes nor disables themselves, by token or signed in (409), and what
    was refused is unchanged."""
    admin = as_role("admin")
    me = admin.get("/api/v1/me").json()["person_id"]
    token, _ = _token(admin)
    with token:
        for r in (
            token.put(f"/api/v1/people/{me}/role", json={"role": "agent"}),
            token.post(f"/api/v1/people/{me}/disable"),
            admin.put(
                f"/api/v1/people/{me}/role", json={"role": "agent"}, headers={"X-CSRF-Token": admin.csrf}
            ),
            admin.post(f"/api/v1/people/{me}/disable", headers={"X-CSRF-Token": admin.csrf}),
        ):
            assert r.status_code == 409, r.text
            assert "不能降低或停用自己" in r.json()["detail"]
        assert token.get(f"/api/v1/people/{me}").json()["role"] == "admin"
        assert token.get("/api/v1/me").status_code == 200
    # signed in, the CSRF header is needed as for every write
    assert admin.post(f"/api/v1/people/{me}/disable").status_code == 403


def test_a_token_gives_no_one_admin_rights_but_an_admin_signed_in_may(as_role, siyu, db, world):
    admin = as_role("admin")
    token, _ = _token(admin)
    new_admin = f"pa-{uuid.uuid4().hex[:6]}"
    with token, _by_hand(db, world, "agent") as (person_id, login_name), _cleanup(db, world, new_admin):
        r = token.post(
            "/api/v1/people", json={"login": new_admin, "display_name": "新管理员", "role": "admin"}
        )
        assert r.status_code == 403 and "API 令牌不能授予" in r.json()["detail"]
        r = token.put(f"/api/v1/people/{person_id}/role", json={"role": "admin"})
        assert r.status_code == 403
        assert token.get(f"/api/v1/people/{person_id}").json()["role"] == "agent"
        # signed in, the admin may
        r = admin.put(
            f"/api/v1/people/{person_id}/role", json={"role": "admin"}, headers={"X-CSRF-Token": admin.csrf}
        )
        assert r.status_code == 200 and r.json()["updated_by"] == "甲管理员"
        # now an admin: the token neither resets their password nor restores them once disabled
        r = token.post(f"/api/v1/people/{person_id}/password", json={"password": "taken-over-1"})
        assert r.status_code == 403 and _signs_in(siyu, login_name, PASSWORD)
        assert token.post(f"/api/v1/people/{person_id}/disable").status_code == 200
        assert token.post(f"/api/v1/people/{person_id}/enable").status_code == 403
        with db.tenant_session(world.a.id) as s:
            assert s.get(Person, person_id).disabled_at is not None


def test_a_non_admin_token_and_another_tenants_ids_are_refused(as_role, siyu, db, world):
    admin, admin_b = as_role("admin"), as_role("admin", "b")
    agent_id = {p["login"]: p["id"] for p in admin.get("/api/v1/people").json()}[world.a.logins["agent"]]
    agent_token, _ = _token(admin, person_id=agent_id)
    with agent_token:
        assert agent_token.get("/api/v1/people").status_code == 403
        assert agent_token.get(f"/api/v1/people/{agent_id}").status_code == 403
        r = agent_token.post(
            "/api/v1/people", json={"login": "x-agent", "display_name": "x", "role": "agent"}
        )
        assert r.status_code == 403 and r.json()["detail"] == "只有管理员可以这样做 / admins only"
        assert agent_token.post(f"/api/v1/people/{agent_id}/password").status_code == 403
    b_admin = admin_b.get("/api/v1/me").json()["person_id"]
    token, _ = _token(admin)
    with token:
        for r in (
            token.get(f"/api/v1/people/{b_admin}"),
            token.put(f"/api/v1/people/{b_admin}/role", json={"role": "agent"}),
            token.post(f"/api/v1/people/{b_admin}/disable"),
            token.post(f"/api/v1/people/{b_admin}/enable"),
            token.post("/api/v1/people/999999999/disable"),
        ):
            assert r.status_code == 404, r.text
            assert r.json()["detail"] == "找不到，或你无权查看 / not found (or not yours)"
        # (a token resets no password, whosever: refused before anyone is looked up)
        r = token.post(f"/api/v1/people/{b_admin}/password", json={"password": "taken-over-1"})
        assert r.status_code == 403, r.text
    me_b = admin_b.get("/api/v1/me").json()
    assert me_b["role"] == "admin" and _signs_in(siyu, world.b.logins["admin"], PASSWORD)


def test_the_people_answers_fit_the_spec(as_role, db, world):
    admin = as_role("admin")
    spec = admin.get("/api/v1/openapi.json").json()
    token, _ = _token(admin)
    me = admin.get("/api/v1/me").json()["person_id"]
    fresh = f"pa-{uuid.uuid4().hex[:6]}"
    with token, _cleanup(db, world, fresh), _by_hand(db, world, "agent") as (person_id, _login):
        calls = [
            ("GET", "/api/v1/people", token.get("/api/v1/people")),
            ("GET", "/api/v1/people/{person_id}", token.get("/api/v1/people/999999999")),
            (
                "POST",
                "/api/v1/people",
                token.post("/api/v1/people", json={"login": fresh, "display_name": "新人", "role": "agent"}),
            ),
            ("POST", "/api/v1/people", token.post("/api/v1/people", json={"login": fresh})),
            (
                "POST",
                "/api/v1/people",
                token.post("/api/v1/people", json={"login": fresh, "display_name": "x", "role": "admin"}),
            ),
            (
                "PUT",
                "/api/v1/people/{person_id}/role",
                token.put(f"/api/v1/people/{me}/role", json={"role": "agent"}),
            ),
            (
                "POST",
                "/api/v1/people/{person_id}/password",
                admin.post(f"/api/v1/people/{person_id}/password", headers={"X-CSRF-Token": admin.csrf}),
            ),
            ("POST", "/api/v1/people/{person_id}/disable", token.post(f"/api/v1/people/{person_id}/disable")),
            ("POST", "/api/v1/people/{person_id}/enable", token.post(f"/api/v1/people/{person_id}/enable")),
        ]
        wrong = []
        for method, path, r in calls:
            try:
                found = problems(spec, response_schema(spec, path, method, r.status_code), r.json())
            except AssertionError as exc:
                found = [str(exc)]
            if found:
                wrong.append((method, path, r.status_code, found[:3]))
    assert [r.status_code for _m, _p, r in calls] == [200, 404, 201, 422, 403, 409, 200, 200, 200]
    assert not wrong, wrong


def test_a_session_that_has_expired_is_not_shown_as_signed_in(as_role, siyu, db, world):
    """PersonOut.signed_in_at: "their newest open session began; null: none open"."""
    admin = as_role("admin")
    with _by_hand(db, world, "agent") as (person_id, login_name):
        login(siyu, login_name).close()
        assert admin.get(f"/api/v1/people/{person_id}").json()["signed_in_at"] is not None
        with db.tenant_session(world.a.id) as s:  # the session ran out (session_days later)
            s.execute(
                update(WebSession)
                .where(WebSession.person_id == person_id)
                .values(expires_at=utcnow() - timedelta(minutes=1))
            )
        got = admin.get(f"/api/v1/people/{person_id}").json()
        assert got["signed_in_at"] is None, got


def test_a_token_cannot_be_made_acting_as_a_disabled_login(as_role, db, world):
    """A login an admin disabled is refused as one who left is: a token acting as one who left is
    refused (422, 已离职或停用); one acting as a disabled login should be too, not made suspended."""
    admin = as_role("admin")
    with _by_hand(db, world, "agent") as (person_id, _login):
        with db.tenant_session(world.a.id) as s:
            people.disable(s, person_id)
        r = admin.post(
            "/api/v1/tokens",
            json={"name": "CRM", "person_id": person_id},
            headers={"X-CSRF-Token": admin.csrf},
        )
        assert r.status_code == 422, (r.status_code, r.json().get("status"))


def test_the_list_is_admins_first_then_by_name(as_role, db, world):
    """GET /api/v1/people: "The tenant's logins, admins first, then by name"."""
    admin = as_role("admin")
    sfx = uuid.uuid4().hex[:6]
    made = []
    with db.tenant_session(world.a.id) as s:
        for login_name, name, role in (
            (f"hz-{sfx}", "Zz 成员", "agent"),
            (f"ha-{sfx}", "Aa 主管", "supervisor"),
        ):
            made.append(tenancy.add_person(s, login_name, name, role, PASSWORD).id)
    try:
        listed = [p for p in admin.get("/api/v1/people").json() if p["id"] in made]
        names = [p["display_name"] for p in listed]
        assert names == ["Aa 主管", "Zz 成员"], names
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(Person).where(Person.id.in_(made)))
