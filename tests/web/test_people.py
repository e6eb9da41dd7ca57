"""设置 → 账号 (/setup/people): an admin sees the tenant's logins and changes a role, gives
a new password or ends a login; each holds from the person's next request, and an admin can
neither demote nor disable themselves nor the last admin who may sign in."""

from __future__ import annotations

import html
import re
import uuid
from contextlib import contextmanager

import httpx
from sqlalchemy import delete, func, select

from siyu.tenancy import api_tokens
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import STAFF_DISABLED, ApiToken, Person, Staff, WebSession
from tests.web.conftest import PASSWORD, fits_the_phone, login, sign_in


def _names(client: httpx.Client) -> set[str]:
    r = client.get("/api/v1/customers", params={"per_page": 100})
    assert r.status_code == 200, r.text
    return {c["name"] for c in r.json()["items"]}


def _post(admin: httpx.Client, person_id: int, action: str, **data) -> httpx.Response:
    return admin.post(f"/setup/people/{person_id}/{action}", data={"csrf_token": admin.csrf, **data})


def _error(r: httpx.Response) -> str:
    found = re.search(r'id="people-error">([^<]*)<', r.text)
    return html.unescape(found.group(1)) if found else ""


def _id(db, world, login_name: str) -> int:
    with db.tenant_session(world.a.id) as s:
        return s.scalar(select(Person.id).where(Person.login == login_name))


@contextmanager
def _by_hand(db, world, role: str, tenant_id: int | None = None):
    """A login made by hand (no WeCom member) of `role`; removed, with its tokens, after."""
    login_name = f"pp-{uuid.uuid4().hex[:6]}"
    with db.tenant_session(tenant_id or world.a.id) as s:
        person_id = tenancy.add_person(s, login_name, f"临时{role}", role, PASSWORD).id
    try:
        yield person_id, login_name
    finally:
        with db.tenant_session(tenant_id or world.a.id) as s:
            s.execute(delete(ApiToken).where(ApiToken.person_id == person_id))
            s.execute(delete(Person).where(Person.id == person_id))


def test_the_page_lists_the_tenants_people_for_admins_only(as_role, siyu, world):
    admin, supervisor = as_role("admin"), as_role("supervisor")
    r = admin.get("/setup/people")
    assert r.status_code == 200, r.text
    page = r.text
    for name, handle in (("甲管理员", world.a.logins["admin"]), ("王五", "wangwu"), ("张三", "zhangsan")):
        assert name in page and handle in page
    assert world.a.logins["agent"] in page and "主管" in page
    assert "乙管理员" not in page  # another tenant's
    assert 'href="/setup/people"' in admin.get("/setup").text
    assert supervisor.get("/setup/people").status_code == 403
    assert _post(supervisor, 1, "role", role="admin").status_code == 403


def test_a_role_change_holds_from_the_persons_next_request(as_role, siyu, db, world):
    """王五, signed in as a supervisor, sees 李四's 陈先生 (his team); made an agent he sees
    only his own at once, in the same session, and made a supervisor again his team again."""
    admin, wangwu = as_role("admin"), as_role("supervisor")
    wangwu_id = _id(db, world, world.a.logins["supervisor"])
    assert "陈先生" in _names(wangwu)
    try:
        assert _post(admin, wangwu_id, "role", role="agent").status_code == 303
        assert wangwu.get("/api/v1/me").json()["role"] == "agent"
        assert "陈先生" not in _names(wangwu)
        page = admin.get("/setup/people?done=role").text
        # read by who made it, the change is theirs (their own name was taken for someone
        # else's doing); another admin reads the name
        assert "已修改" in page and "最近由 你 修改" in page and "最近由 甲管理员 修改" not in page
        with _by_hand(db, world, "admin") as (_, other_admin):
            other = login(siyu, other_admin)
            try:
                assert "最近由 甲管理员 修改" in other.get("/setup/people").text
            finally:
                other.close()
        assert _post(admin, wangwu_id, "role", role="supervisor").status_code == 303
        assert "陈先生" in _names(wangwu)
    finally:
        with db.tenant_session(world.a.id) as s:
            s.get(Person, wangwu_id).role = "supervisor"
    r = _post(admin, wangwu_id, "role", role="superuser")
    assert r.status_code == 422 and "角色应为" in _error(r)


def test_a_reset_password_signs_in_and_the_old_one_no_longer_does(as_role, siyu, db, world):
    admin = as_role("admin")
    with _by_hand(db, world, "agent") as (person_id, login_name):
        before = login(siyu, login_name)
        r = _post(admin, person_id, "password", password="short")
        assert r.status_code == 422 and "至少 8 位" in _error(r)
        assert _post(admin, person_id, "password", password="new-pass-456").status_code == 303
        assert before.get("/api/v1/me").status_code == 401  # signed out where they were signed in
        login(siyu, login_name, "new-pass-456").close()
        with httpx.Client(base_url=siyu) as c:
            page = c.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = c.post("/login", data={"login": login_name, "password": PASSWORD, "csrf_token": token})
            assert r.status_code == 401
        before.close()


def test_a_disabled_login_is_refused_signed_in_by_password_and_by_token(as_role, siyu, db, world):
    admin = as_role("admin")
    with _by_hand(db, world, "supervisor") as (person_id, login_name):
        session = login(siyu, login_name)
        with db.tenant_session(world.a.id) as s:
            _, secret = api_tokens.create(s, "CRM", s.get(Person, person_id), None)
        with httpx.Client(base_url=siyu, headers={"Authorization": f"Bearer {secret}"}) as token:
            assert token.get("/api/v1/me").status_code == 200
            assert _post(admin, person_id, "disable").status_code == 303
            r = token.get("/api/v1/me")
            # the token is good: the 401 says it is suspended, not "not valid, revoked or expired"
            assert r.status_code == 401 and r.json()["detail"].startswith("API 令牌已暂停"), r.text
            assert "the API token is suspended" in r.json()["detail"]
        listed = {t["prefix"]: t["status"] for t in admin.get("/api/v1/tokens").json()}
        assert listed[secret[:11]] == "suspended"  # not 有效 while refused
        assert session.get("/api/v1/me").status_code == 401
        with db.tenant_session(world.a.id) as s:
            assert s.scalar(select(WebSession.id).where(WebSession.person_id == person_id)) is None
        assert "已停用" in admin.get("/setup/people").text
        with httpx.Client(base_url=siyu) as c:
            page = c.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = c.post("/login", data={"login": login_name, "password": PASSWORD, "csrf_token": csrf})
            assert r.status_code == 401
        assert _post(admin, person_id, "enable").status_code == 303
        login(siyu, login_name).close()
        session.close()


def test_an_admin_cannot_demote_or_disable_themselves_nor_the_last_admin(as_role, siyu, db, world):
    from siyu.tenancy import people

    admin = as_role("admin")
    own = _id(db, world, world.a.logins["admin"])
    for action, data in (("role", {"role": "agent"}), ("disable", {})):
        r = _post(admin, own, action, **data)
        assert r.status_code == 422 and "不能降低或停用自己" in _error(r), r.text
    assert admin.get("/api/v1/me").json()["role"] == "admin"
    # another admin may be demoted; the last one who may sign in may not (the command line
    # asks as no one: `by` None)
    with _by_hand(db, world, "admin", world.b.id) as (other_id, other_login):
        b_admin = login(siyu, world.b.logins["admin"])
        try:
            assert _post(b_admin, other_id, "disable").status_code == 303
            with db.tenant_session(world.b.id) as s:
                first = s.scalar(select(Person.id).where(Person.login == world.b.logins["admin"]))
                try:
                    people.set_role(s, first, "agent")
                except people.PersonRefused as exc:
                    assert "唯一可以登录的管理员" in str(exc)
                else:
                    raise AssertionError("the last admin was demoted")
            # an admin of another tenant is no one here
            r = _post(admin, other_id, "role", role="agent")
            assert r.status_code == 404 and "找不到这个账号" in _error(r)
        finally:
            b_admin.close()


def test_a_login_that_does_not_exist_is_a_404_on_the_page_as_in_the_api(as_role):
    """/setup/people/999/role answered 422 (as for a refused change) where the API answers 404."""
    admin = as_role("admin")
    for action, data in (("role", {"role": "agent"}), ("password", {"password": "x" * 12}), ("disable", {})):
        r = _post(admin, 999999, action, **data)
        assert r.status_code == 404 and _error(r) == "找不到这个账号 / no such person in this company", r.text
    r = admin.put("/api/v1/people/999999/role", json={"role": "agent"}, headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 404


def test_a_disabled_member_is_refused_through_wecom_too(as_role, siyu, db, world):
    """张三 signs in through WeCom (no password): disabled, WeCom's sign-in is refused too."""
    admin = as_role("admin")
    zhangsan = _id(db, world, world.a.logins["agent"])
    assert _post(admin, zhangsan, "disable").status_code == 303
    try:
        with httpx.Client(follow_redirects=True, timeout=10) as client:
            link = f"{siyu}/auth/wecom/{world.a.slug}?next=/"
            corp_id = world.a.corp["corp_id"]
            r = client.get(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/zhangsan", params={"next": link})
            assert r.status_code == 403 and "已被管理员停用" in r.text, r.text
            assert "siyu_session" not in client.cookies
    finally:
        assert _post(admin, zhangsan, "enable").status_code == 303
    assert "王女士" in _names(as_role("agent"))


def test_two_admins_demoting_each_other_at_once_leave_one_admin(db, fresh_tenant):
    """Each had seen the other still an admin and gone on: the company was left with none, and
    nobody to undo it but the operator."""
    import threading

    import pytest

    from siyu.tenancy import people

    if not db.is_postgres:
        pytest.skip("row locks: SQLite has one writer at a time (SIYU_TEST_DATABASE_URL)")
    tid = fresh_tenant
    with db.tenant_session(tid) as s:
        a, b = (tenancy.add_person(s, f"pp-{uuid.uuid4().hex[:6]}", n, "admin", PASSWORD).id for n in "甲乙")
    refused: list[str] = []
    done = threading.Event()

    def b_demotes_a() -> None:
        try:
            with db.tenant_session(tid) as s:
                people.set_role(s, a, "agent", by=b)
        except people.PersonRefused as exc:
            refused.append(str(exc))
        done.set()

    with db.tenant_session(tid) as s:
        people.set_role(s, b, "agent", by=a)  # not committed yet when 乙 asks
        other = threading.Thread(target=b_demotes_a)
        other.start()
        done.wait(timeout=3)
    other.join(timeout=30)
    assert done.is_set()
    with db.tenant_session(tid) as s:
        roles = dict(s.execute(select(Person.id, Person.role).where(Person.id.in_([a, b]))).all())
    assert roles == {a: "admin", b: "agent"}
    assert len(refused) == 1 and "唯一可以登录的管理员" in refused[0]


def test_two_admins_adding_the_same_login_but_for_case_at_once_make_only_one(db, fresh_tenant):
    """Each had found no login alike, neither made yet, and both were made: Wang's capitals then
    signed in as wang, or failed. The second waits for the first and is refused, in another
    company as in the same."""
    import threading

    from siyu.tenancy import people
    from tests.support import new_tenant

    # On SQLite this passes without the hold too: the add's savepoint, the transaction's first
    # statement there, committed the login at its release, before the other company's check.
    first, second = fresh_tenant, new_tenant(db)
    upper = f"Pp{uuid.uuid4().hex[:6]}"
    answers: list[str] = []
    done = threading.Event()

    def second_admin_adds_lower() -> None:
        try:
            with db.tenant_session(second) as s:
                people.add(s, upper.lower(), "王二", "agent", password=PASSWORD, by="乙管理员")
            answers.append("added")
        except people.PersonRefused as exc:
            answers.append(str(exc))
        done.set()

    with db.tenant_session(first) as s:
        people.add(s, upper, "王大", "agent", password=PASSWORD, by="甲管理员")  # not committed yet
        other = threading.Thread(target=second_admin_adds_lower)
        other.start()
        done.wait(timeout=3)
    other.join(timeout=60)
    assert done.is_set()
    with db.system_session() as s:
        made = set(s.scalars(select(Person.login).where(func.lower(Person.login) == upper.lower())))
    assert made == {upper}
    # (in another company: refused as taken, its spelling theirs, not quoted)
    assert answers == [
        f"登录名 {upper.lower()} 已被使用，请换一个 / the login {upper.lower()} is taken: choose another"
    ]


def test_an_admin_adds_a_login_on_the_page_by_hand_or_for_a_member_who_never_signed_in(
    as_role, siyu, db, world
):
    """Only `siyu person add` made a login, and a WeCom member could be made an admin only after
    their first WeCom sign-in. 添加账号 makes either: a login with a password, or one for a
    member (listed while they have none), who then signs in through WeCom."""
    admin = as_role("admin")
    by_hand = f"pp-{uuid.uuid4().hex[:6]}"
    with db.tenant_session(world.a.id) as s:  # (an earlier test's WeCom sign-in made 李四 one)
        s.execute(delete(Person).where(Person.staff_userid == "lisi"))

    def add(**fields) -> httpx.Response:
        return admin.post("/setup/people", data={"csrf_token": admin.csrf, "role": "agent", **fields})

    try:
        page = admin.get("/setup/people").text
        assert '<option value="lisi">李四（lisi）</option>' in page
        assert '<option value="zhangsan">' not in page  # has a login already
        r = add(login=by_hand, display_name="前台小刘")
        assert r.status_code == 422 and "请设置密码" in html.unescape(r.text)
        assert f'value="{by_hand}"' in r.text  # what was typed is kept
        r = add(login=by_hand, display_name="前台小刘", password="front-desk-1")
        assert r.status_code == 303, r.text
        assert "账号已添加" in admin.get(r.headers["location"]).text
        login(siyu, by_hand, "front-desk-1").close()
        r = add(login=by_hand, display_name="重名", password="front-desk-1")
        assert r.status_code == 422 and "已被使用" in html.unescape(r.text)
        # alike but for case: sign-in would take the capitals as the first login's
        r = add(login=by_hand.upper(), display_name="重名", password="front-desk-1")
        assert r.status_code == 422 and f"与已有的 {by_hand} 只差大小写" in html.unescape(r.text)
        login(siyu, by_hand.capitalize(), "front-desk-1").close()

        r = add(login="lisi-login", display_name="李四", role="admin", staff_userid="lisi")
        assert r.status_code == 303, r.text
        with db.tenant_session(world.a.id) as s:
            lisi = s.scalar(select(Person).where(Person.staff_userid == "lisi"))
            assert (lisi.role, lisi.password_hash, lisi.updated_by) == ("admin", None, "甲管理员")
        assert '<option value="lisi">' not in admin.get("/setup/people").text
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(Person).where((Person.login == by_hand) | (Person.staff_userid == "lisi")))


def test_a_login_added_on_the_page_for_a_member_in_another_case_is_the_members(as_role, db, world):
    """添加账号 with the member typed LiSi (a form filled by a script, or an old page's option)
    was refused as 企业微信里没有在职成员 LiSi: it is lisi's login, as the API makes it."""
    admin = as_role("admin")
    with db.tenant_session(world.a.id) as s:  # (an earlier test's WeCom sign-in made 李四 one)
        s.execute(delete(Person).where(Person.staff_userid == "lisi"))
    fields = {"csrf_token": admin.csrf, "display_name": "李四", "role": "agent", "staff_userid": "LiSi"}
    try:
        r = admin.post("/setup/people", data={**fields, "login": "lisi-cased"})
        assert r.status_code == 303, html.unescape(r.text.split('id="add-person-error">', 1)[-1])[:200]
        with db.tenant_session(world.a.id) as s:
            assert s.scalar(select(Person.staff_userid).where(Person.login == "lisi-cased")) == "lisi"
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(Person).where(Person.staff_userid == "lisi"))


def test_a_display_name_of_only_invisible_characters_is_refused_on_the_page_as_in_the_api(as_role, db, world):
    """The page makes a login through the same rule as /api/v1/people: a zero-width space alone
    is no name (the list showed a row with none)."""
    admin = as_role("admin")
    by_hand = f"pp-{uuid.uuid4().hex[:6]}"
    for blank in ("\u200b", "\u2800\u3164"):
        r = admin.post(
            "/setup/people",
            data={
                "csrf_token": admin.csrf,
                "login": by_hand,
                "display_name": blank,
                "role": "agent",
                "password": PASSWORD,
            },
        )
        assert r.status_code == 422, (ascii(blank), r.text)
        assert "姓名不能为空" in html.unescape(r.text.split('id="add-person-error">', 1)[1].split("<", 1)[0])
    assert _id(db, world, by_hand) is None


def test_adding_a_login_on_a_phone_fits_the_screen(page, siyu, db, world):
    login_name = f"pp-{uuid.uuid4().hex[:6]}"
    sign_in(page, siyu, world.a.logins["admin"], "/setup/people")
    try:
        form = page.locator("#add-person")
        form.get_by_label("登录名", exact=True).fill(login_name)
        form.get_by_label("姓名", exact=True).fill("手机上加的")
        form.get_by_label("密码", exact=True).fill("phone-pass-1")
        form.get_by_role("button", name="添加账号").click()
        assert page.get_by_text("账号已添加").count() == 1
        assert page.locator("#people").get_by_text(login_name).count() == 1
        fits_the_phone(page)
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(Person).where(Person.login == login_name))


def test_a_member_disabled_in_wecom_is_not_said_to_have_left_on_the_logins_page(as_role, db, world):
    """A member WeCom disabled (已禁用: they may come back) is marked so on 设置 → 账号, as on the
    成员 page and in the API's staff status: the login's member had read 已离职 (left)."""
    admin = as_role("admin")
    sfx = uuid.uuid4().hex[:6]
    userid = f"gone{sfx}"  # a member of its own: the shared world's may have a login already
    with db.tenant_session(world.a.id) as s:
        s.add(Staff(userid=userid, name="赵六", departments=[1], active=False, wecom_status=STAFF_DISABLED))
        s.flush()
        person_id = tenancy.add_person(s, f"hp-zl-{sfx}", "赵六", "agent", None, userid).id
    try:
        staff = {m["userid"]: m["status"] for m in admin.get("/api/v1/staff?include_inactive=true").json()}
        assert staff[userid] == "disabled"  # the API (and the 成员 page) say 已禁用
        page = admin.get("/setup/people").text
        row = re.search(rf'<tr id="person-{person_id}".*?</tr>', page, re.S).group(0)
        status = re.search(r'data-label="状态">(.*?)</td>', row, re.S).group(1)
        assert "已禁用" in status and "已离职" not in status, status
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(Person).where(Person.id == person_id))
            s.execute(delete(Staff).where(Staff.userid == userid))


def test_a_login_of_yi_spelt_with_other_capitals_is_not_shown_to_jias_admin(as_role, world):
    """Logins are unique across tenants (so a taken one is refused, by design); but the refusal
    of one alike but for case quotes the other tenant's login as it is spelt there."""
    admin = as_role("admin")
    typed = world.b.logins["admin"].upper()
    r = admin.post(
        "/setup/people",
        data={
            "csrf_token": admin.csrf,
            "login": typed,
            "display_name": "甲新人",
            "role": "agent",
            "password": "pass-word-123",
        },
    )
    assert r.status_code == 422 and "已被使用" in r.text
    assert world.b.logins["admin"] not in r.text, (
        f"甲's admin was shown 乙's login {world.b.logins['admin']!r} as spelt in 乙"
    )
