"""Staff, setup and WeCom OAuth sign-in pages over real HTTP (the emulator plays WeCom)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from siyu.tenancy.models import Person, Staff, Tenant
from tests.web.conftest import IN_WECOM


def test_staff_page_and_sync_now(as_role, world, db):
    admin = as_role("admin")
    page = admin.get("/staff")
    assert page.status_code == 200 and "立即同步" in page.text and "钱七" not in page.text
    r = admin.post("/staff/sync", data={"csrf_token": admin.csrf})
    assert r.status_code == 303 and r.headers["location"] == "/staff?done=synced"
    page = admin.get("/staff?done=synced")
    assert "成员已同步" in page.text and "钱七" in page.text
    with db.tenant_session(world.a.id) as s:
        assert s.scalar(select(Staff).where(Staff.userid == "qianqi")).active
        assert s.get(Tenant, world.a.id).staff_synced_at is not None
        # Put the world back: 钱七 unknown to Siyu, 孙八 gone (other tests rely on it).
        s.delete(s.scalar(select(Staff).where(Staff.userid == "qianqi")))
        sunba = s.scalar(select(Staff).where(Staff.userid == "sunba"))
        sunba.active, sunba.wecom_status = False, 5
    agent = as_role("agent")
    assert "立即同步" not in agent.get("/staff").text
    assert agent.post("/staff/sync", data={"csrf_token": agent.csrf}).status_code == 403


def test_the_number_a_call_rings_is_set_on_the_staff_page_and_in_the_api(as_role, world, db):
    """Escalation calls ring the number set in Siyu, else WeCom's (which WeCom gives apps made
    since mid-2022 no longer): an agent sets their own, an admin anyone's."""
    agent, admin = as_role("agent"), as_role("admin")  # 张三, and the tenant's admin
    page = agent.get("/staff").text
    assert 'action="/staff/zhangsan/call-phone"' in page and 'action="/staff/lisi/call-phone"' not in page
    r = agent.post("/staff/zhangsan/call-phone", data={"csrf_token": agent.csrf, "phone": "139 0000 1234"})
    assert r.status_code == 303 and r.headers["location"] == "/staff?done=call_phone"
    bad = agent.post("/staff/zhangsan/call-phone", data={"csrf_token": agent.csrf, "phone": "0571-88886666"})
    assert bad.status_code == 422 and "不是中国大陆手机号" in bad.text
    assert (
        agent.post(
            "/staff/lisi/call-phone", data={"csrf_token": agent.csrf, "phone": "13900001111"}
        ).status_code
        == 403
    )
    assert agent.post("/staff/zhangsan/call-phone", data={"phone": "13900001111"}).status_code == 403  # CSRF
    with db.tenant_session(world.a.id) as s:
        assert s.scalar(select(Staff.call_phone).where(Staff.userid == "zhangsan")) == "13900001234"
    headers = {"X-CSRF-Token": admin.csrf}
    r = admin.put("/api/v1/staff/zhaoliu/call-phone", json={"phone": "+8613900005555"}, headers=headers)
    assert r.status_code == 200 and r.json() == {"userid": "zhaoliu", "call_phone": "13900005555"}
    assert (
        admin.put("/api/v1/staff/nobody/call-phone", json={"phone": ""}, headers=headers).status_code == 404
    )
    assert (
        admin.put("/api/v1/staff/zhaoliu/call-phone", json={"phone": 139}, headers=headers).status_code == 422
    )
    refused = agent.put(
        "/api/v1/staff/zhaoliu/call-phone", json={"phone": ""}, headers={"X-CSRF-Token": agent.csrf}
    )
    # in the words of the page's refusal (and of every other 403 of the API), Chinese first
    assert refused.status_code == 403 and refused.json() == {
        "detail": "只能填写自己的号码 / only your own number"
    }
    listed = {m["userid"]: m for m in agent.get("/api/v1/staff").json()}
    assert listed["zhangsan"]["call_phone"] == "13900001234" and listed["zhaoliu"]["call_phone"] is None
    assert listed["zhaoliu"]["has_call_phone"] is True
    # tenant B's admin sets B's own 赵六, never A's (each tenant has its own directory)
    b = as_role("admin", "b")
    r = b.put(
        "/api/v1/staff/zhaoliu/call-phone", json={"phone": "13700000000"}, headers={"X-CSRF-Token": b.csrf}
    )
    assert r.status_code in (200, 404)
    with db.tenant_session(world.a.id) as s:
        assert s.scalar(select(Staff.call_phone).where(Staff.userid == "zhaoliu")) == "13900005555"
    with db.tenant_session(world.b.id) as s:
        for member in s.scalars(select(Staff)):
            member.call_phone = ""
    # a staff sync leaves the numbers set in Siyu as they are; cleared, WeCom's is shown again
    admin.post("/staff/sync", data={"csrf_token": admin.csrf})
    with db.tenant_session(world.a.id) as s:
        assert s.scalar(select(Staff.call_phone).where(Staff.userid == "zhaoliu")) == "13900005555"
        for userid in ("zhangsan", "zhaoliu"):
            s.scalar(select(Staff).where(Staff.userid == userid)).call_phone = ""
        s.delete(s.scalar(select(Staff).where(Staff.userid == "qianqi")))  # as the sync test leaves it
        sunba = s.scalar(select(Staff).where(Staff.userid == "sunba"))
        sunba.active, sunba.wecom_status = False, 5


def test_the_number_a_call_rings_is_set_through_the_api_for_a_member_named_in_another_case(
    as_role, world, db
):
    """WeCom's userids are case-insensitive: PUT /api/v1/staff/ZhaoLiu/call-phone was a 404,
    and 张三 setting his own as ZHANGSAN a 403 (只能填写自己的号码). Each sets that member's
    number, answered under the userid as synced."""
    agent, admin = as_role("agent"), as_role("admin")  # 张三, and the tenant's admin
    try:
        r = admin.put(
            "/api/v1/staff/ZhaoLiu/call-phone",
            json={"phone": "13900006666"},
            headers={"X-CSRF-Token": admin.csrf},
        )
        assert r.status_code == 200 and r.json() == {"userid": "zhaoliu", "call_phone": "13900006666"}, r.text
        r = agent.put(
            "/api/v1/staff/ZHANGSAN/call-phone",
            json={"phone": "13900007777"},
            headers={"X-CSRF-Token": agent.csrf},
        )
        assert r.status_code == 200 and r.json()["userid"] == "zhangsan", r.text
        refused = agent.put(
            "/api/v1/staff/ZhaoLiu/call-phone", json={"phone": ""}, headers={"X-CSRF-Token": agent.csrf}
        )
        assert refused.status_code == 403
        with db.tenant_session(world.a.id) as s:
            numbers = dict(
                s.execute(select(Staff.userid, Staff.call_phone).where(Staff.call_phone != "")).all()
            )
        assert numbers == {"zhaoliu": "13900006666", "zhangsan": "13900007777"}
    finally:
        with db.tenant_session(world.a.id) as s:
            for userid in ("zhangsan", "zhaoliu"):
                s.scalar(select(Staff).where(Staff.userid == userid)).call_phone = ""


def test_a_number_refused_on_the_staff_page_stays_in_its_field(as_role, world):
    """A number that is no mobile is refused beside what was typed: the field had gone back to
    the number stored (or blank), so the admin retyped it from memory, not knowing whose row
    the message at the top meant."""
    admin = as_role("admin")
    bad = admin.post("/staff/zhaoliu/call-phone", data={"csrf_token": admin.csrf, "phone": "0571-8888666"})
    assert bad.status_code == 422 and "不是中国大陆手机号" in bad.text
    row = re.search(r'<form method="post" action="/staff/zhaoliu/call-phone".*?</form>', bad.text, re.S)
    assert row and 'value="0571-8888666"' in row.group(0), row and row.group(0)
    assert "赵六" in re.search(r'<p class="alert" role="alert"[^>]*>(.*?)</p>', bad.text, re.S).group(1)
    # the other rows show what is stored
    other = re.search(r'<form method="post" action="/staff/lisi/call-phone".*?</form>', bad.text, re.S)
    assert other and 'value=""' in other.group(0) and "aria-invalid" not in other.group(0)
    assert bad.text.count("autofocus") == 1  # the refused field only


def test_setup_shows_masked_secrets_and_the_callback_url(as_role, world, web_settings):
    admin = as_role("admin")
    page = admin.get("/setup")
    assert page.status_code == 200
    assert web_settings.callback_url(world.a.slug) in page.text
    for secret in ("agent_secret", "contact_secret", "token", "encoding_aes_key"):
        assert world.a.corp[secret] not in page.text
    assert world.a.corp["agent_secret"][:3] + "••••" in page.text
    assert "public-url-warning" not in page.text  # WeCom is the emulator here: it can call back
    assert as_role("supervisor").get("/setup").status_code == 403


def test_setup_says_when_wecom_could_not_reach_the_callback_url(as_role, web_settings, monkeypatch):
    # (only the pages are read here: nothing calls WeCom meanwhile)
    monkeypatch.setattr(web_settings, "wecom_base_url", "https://qyapi.weixin.qq.com")
    admin = as_role("admin")
    page = admin.get("/setup")  # (the archive page says the same beside its own URL)
    assert page.status_code == 200 and 'id="public-url-warning"' in page.text
    assert f"SIYU_PUBLIC_URL 是 {web_settings.public_url}，企业微信的服务器访问不到这个地址" in page.text


def test_setup_checks_credentials_with_wecom_and_shows_why_not(as_role, world):
    admin = as_role("admin")
    r = admin.post(
        "/setup",
        data={
            "csrf_token": admin.csrf,
            "corp_id": world.a.corp["corp_id"],
            "agent_id": str(world.a.corp["agent_id"]),
            "agent_secret": "definitely-not-the-secret",
        },
    )
    assert r.status_code == 422
    assert "应用 Secret" in r.text and "Secret 不正确" in r.text
    r = admin.post(
        "/setup",
        data={
            "csrf_token": admin.csrf,
            "corp_id": world.a.corp["corp_id"],
            "agent_id": "1",
            "token": "bad token!",
        },
    )
    assert r.status_code == 422 and "Token 应为 1-32 位字母或数字 / Token must be" in r.text  # both languages
    r = admin.post("/setup", data={"csrf_token": admin.csrf, "corp_id": "wwsomethingelse", "agent_id": "1"})
    assert r.status_code == 422 and "企业ID 不能修改" in r.text
    # Blank secrets keep the stored ones; WeCom accepts them.
    r = admin.post(
        "/setup",
        data={
            "csrf_token": admin.csrf,
            "name": "甲公司",
            "corp_id": world.a.corp["corp_id"],
            "agent_id": str(world.a.corp["agent_id"]),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/setup?done=connected"


# ---------------------------------------------------------------- WeCom OAuth


def test_oauth_start_redirects_to_wecom(siyu, world, web_settings):
    with httpx.Client(base_url=siyu, headers={"user-agent": IN_WECOM}) as client:
        r = client.get(f"/auth/wecom/{world.a.slug}", params={"next": "/customers/5"})
        assert r.status_code == 302
        url = urlsplit(r.headers["location"])
        assert f"{url.scheme}://{url.netloc}" == world.emu_url and url.path == "/connect/oauth2/authorize"
        assert url.fragment == "wechat_redirect"
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert q["appid"] == world.a.corp["corp_id"] and q["scope"] == "snsapi_base"
        assert q["agentid"] == str(world.a.corp["agent_id"])
        callback = f"{web_settings.public_url}/auth/wecom/{world.a.slug}/callback"
        assert q["redirect_uri"] == f"{callback}?next=%2Fcustomers%2F5"
        assert q["state"] and q["state"] in client.cookies["siyu_oauth"]
        r = client.get(f"/auth/wecom/{world.a.slug}", params={"desktop": 1})
        url = urlsplit(r.headers["location"])
        assert url.path == "/wwlogin/sso/login" and "login_type=CorpApp" in url.query


def test_a_card_link_opened_outside_wecom_signs_in_by_qr_scan(siyu, world):
    """A card's link the desktop client opens in the system browser, or copied to one: WeCom's
    OAuth signs in only inside its own browser (elsewhere 请在企业微信客户端打开链接), and the
    link went there whatever the browser."""
    desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36"
    with httpx.Client(base_url=siyu, headers={"user-agent": desktop}) as client:
        r = client.get(f"/auth/wecom/{world.a.slug}", params={"next": "/conversations/5"})
        assert r.status_code == 302
        url = urlsplit(r.headers["location"])
        assert url.path == "/wwlogin/sso/login" and "login_type=CorpApp" in url.query
        assert client.get("/auth/wecom/no-such-corp").status_code == 404


def _wecom_sign_in(siyu, world, userid: str, next_path: str) -> httpx.Response:
    """Be signed in to (emulated) WeCom as `userid`, open the pushed link, follow redirects."""
    client = httpx.Client(follow_redirects=True, timeout=10)
    link = f"{siyu}/auth/wecom/{world.a.slug}?next={next_path}"
    corp_id = world.a.corp["corp_id"]
    r = client.get(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/{userid}", params={"next": link})
    r.client = client
    return r


def test_a_pushed_link_signs_the_agent_in_and_opens_the_customer(siyu, world, db):
    cid = world.a.customers["王女士"]
    r = _wecom_sign_in(siyu, world, "zhangsan", f"/customers/{cid}")
    try:
        assert r.status_code == 200, r.text
        assert str(r.url.copy_with(fragment=None)) == f"{siyu}/customers/{cid}"
        assert "王女士" in r.text and "张三" in r.text
        me = r.client.get(f"{siyu}/api/v1/me").json()
        assert me["staff_userid"] == "zhangsan" and me["role"] == "agent"
    finally:
        r.client.close()


def test_oauth_makes_a_supervisor_for_a_leader_on_first_sign_in(siyu, world, db):
    r = _wecom_sign_in(siyu, world, "lisi", "/")
    try:
        assert r.status_code == 200 and str(r.url.copy_with(fragment=None)) == f"{siyu}/"
        me = r.client.get(f"{siyu}/api/v1/me").json()
        assert me["role"] == "agent" and me["staff_userid"] == "lisi"
    finally:
        r.client.close()
    with db.tenant_session(world.a.id) as s:
        person = s.scalar(select(Person).where(Person.staff_userid == "lisi"))
        assert person.login == f"{world.a.slug}/lisi" and person.password_hash is None


def test_an_agent_made_a_leader_is_a_supervisor_from_their_next_sign_in(siyu, world, db):
    from siyu.tenancy.models import Department

    r = _wecom_sign_in(siyu, world, "zhaoliu", "/")
    try:
        assert r.client.get(f"{siyu}/api/v1/me").json()["role"] == "agent"
    finally:
        r.client.close()
    with db.tenant_session(world.a.id) as s:  # 赵六 now leads a department
        dept = s.scalar(select(Department).where(Department.wecom_id == 4))
        before, dept.leaders = list(dept.leaders or []), [*(dept.leaders or []), "zhaoliu"]
    try:
        r = _wecom_sign_in(siyu, world, "zhaoliu", "/")
        try:
            assert r.client.get(f"{siyu}/api/v1/me").json()["role"] == "supervisor"
        finally:
            r.client.close()
    finally:
        with db.tenant_session(world.a.id) as s:
            s.scalar(select(Department).where(Department.wecom_id == 4)).leaders = before
            person = s.scalar(select(Person).where(Person.staff_userid == "zhaoliu"))
            person.role = "agent"


def test_a_leader_an_admin_made_an_agent_stays_one_after_signing_in_through_wecom(as_role, siyu, world, db):
    """王五 leads 销售部 and the admin makes him an agent. Opening a pushed card link signed him in
    as a supervisor again, the whole team's customers (李四's 陈先生) in sight."""
    admin = as_role("admin")
    with db.tenant_session(world.a.id) as s:
        wangwu = s.scalar(select(Person.id).where(Person.staff_userid == "wangwu"))
    try:
        r = admin.post(f"/setup/people/{wangwu}/role", data={"csrf_token": admin.csrf, "role": "agent"})
        assert r.status_code == 303, r.text
        r = _wecom_sign_in(siyu, world, "wangwu", "/")
        try:
            role = r.client.get(f"{siyu}/api/v1/me").json()["role"]
            names = [c["name"] for c in r.client.get(f"{siyu}/api/v1/customers").json()["items"]]
        finally:
            r.client.close()
        with db.tenant_session(world.a.id) as s:
            assert (role, s.get(Person, wangwu).role) == ("agent", "agent")
        assert "陈先生" not in names
    finally:
        with db.tenant_session(world.a.id) as s:
            person = s.get(Person, wangwu)
            person.role, person.role_set_by_hand = "supervisor", False


def test_oauth_refuses_unknown_and_inactive_members_clearly(siyu, world):
    for userid, status, text in (("qianqi", 403, "立即同步"), ("sunba", 403, "已停用")):
        r = _wecom_sign_in(siyu, world, userid, "/")
        try:
            assert r.status_code == status and text in r.text, r.text
            assert "siyu_session" not in r.client.cookies
        finally:
            r.client.close()


def test_oauth_callback_checks_state_and_codes(siyu, world):
    with httpx.Client(base_url=siyu) as client:
        r = client.get(f"/auth/wecom/{world.a.slug}/callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 400 and "登录已过期" in r.text
        # the pending sign-ins cookie edited by hand, its expiry a digit int() refuses (²)
        edited = ("siyu_oauth=" + world.a.slug + "|" + "ab" * 16 + "|%2F|²").encode("latin-1")
        r = client.get(
            f"/auth/wecom/{world.a.slug}/callback",
            params={"code": "x", "state": "ab" * 16},
            headers={"Cookie": edited},
        )
        assert r.status_code == 400 and "登录已过期" in r.text
        start = client.get(f"/auth/wecom/{world.a.slug}")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        r = client.get(f"/auth/wecom/{world.a.slug}/callback", params={"state": state})
        assert r.status_code == 400 and "取消" in r.text
        r = client.get(f"/auth/wecom/{world.a.slug}/callback", params={"code": "made-up", "state": state})
        assert r.status_code == 400 and "登录链接已失效" in r.text and "40029" in r.text
        assert "siyu_session" not in client.cookies


def test_a_form_address_opened_as_a_page_says_so_in_chinese(siyu, as_role):
    """A refused form is shown at its action's address (/staff/zhaoliu/call-phone): opened again
    from there (the address bar, WeCom's browser restoring the tab) it answered
    {"detail":"Method Not Allowed"}, English JSON. It is a page now, saying what the address is
    for, with the menu to go on from."""
    admin = as_role("admin")
    for url in ("/staff/zhaoliu/call-phone", "/conversations/1/dismiss", "/sla/policy/days"):
        r = admin.get(url)
        assert r.status_code == 405 and r.headers["allow"] == "POST", (url, r.headers)
        assert r.headers["content-type"].startswith("text/html") and "Method Not Allowed" not in r.text
        assert "这个地址用来提交表单，不能直接打开" in r.text and 'aria-label="主菜单"' in r.text, url
    with httpx.Client(base_url=siyu) as anon:  # signed out: the page, without the menu
        r = anon.get("/conversations/1/dismiss")
        assert r.status_code == 405 and "不能直接打开" in r.text and 'aria-label="主菜单"' not in r.text
    api = admin.get("/api/v1/tokens/1/revoke")  # the API keeps its JSON
    assert api.status_code == 405 and "这个地址不支持 GET" in api.json()["detail"]
    # a form sent to a page that takes none is not told the page is a form's address
    r = admin.post("/customers", data={"csrf_token": admin.csrf})
    assert r.status_code == 405 and "这个页面不接受提交" in r.text and "不能直接打开" not in r.text


def _callback_of(siyu, world, client: httpx.Client, userid: str, next_path: str) -> str:
    """The address WeCom sends `client` back to, with its code, for a card's link to `next_path`."""
    r = client.get(f"{siyu}/auth/wecom/{world.a.slug}", params={"next": next_path})
    r = client.get(r.headers["location"].partition("#")[0] + f"&emu_user={userid}")
    assert r.status_code == 302 and "&code=" in r.headers["location"], r.text
    return r.headers["location"]


def test_a_card_link_whose_wecom_code_was_used_already_says_so_and_signs_in_again_to_the_chat(siyu, world):
    """A code WeCom had given already (a reload, a link opened twice) or given over 5 minutes
    ago answered a 502 企业微信登录失败 with "登录 code 无效" in Chinese and the why in English only."""
    cid = world.a.customers["王女士"]
    with httpx.Client(timeout=10) as first, httpx.Client(timeout=10) as again:
        used = _callback_of(siyu, world, first, "zhangsan", f"/customers/{cid}")
        assert first.get(used).headers["location"] == f"/customers/{cid}"  # signed in, the code spent
        fresh = _callback_of(siyu, world, again, "zhangsan", f"/customers/{cid}")
        state = parse_qs(urlsplit(fresh).query)["state"][0]
        code = parse_qs(urlsplit(used).query)["code"][0]
        r = again.get(f"{siyu}/auth/wecom/{world.a.slug}/callback", params={"code": code, "state": state})
        assert r.status_code == 400 and "siyu_session" not in again.cookies
        assert "<h1>登录链接已失效</h1>" in r.text
        assert "企业微信的登录凭证已用过或已超过 5 分钟" in r.text
        retry = re.search(r'<a class="button" href="([^"]+)">重新登录</a>', r.text)[1]
        assert retry == f"/auth/wecom/{world.a.slug}?next=%2Fcustomers%2F{cid}"


def test_error_pages_keep_the_menu_for_whoever_is_signed_in(siyu, as_role):
    """A mistyped address (404) or a NUL in it (422) was answered before anyone asked who was
    signed in: the page had no menu, only 返回 · 首页. Signed in, the menu is there to go on
    from; signed out, the page is as it was."""
    agent = as_role("agent")
    for url, status in (("/no-such-page", 404), ("/conversations?staff=%00", 422)):
        r = agent.get(url)
        assert r.status_code == status, r.text
        assert 'aria-label="主菜单"' in r.text and 'href="/conversations"' in r.text, url
        assert "张三" in r.text and 'action="/logout"' in r.text  # who, and a way out
        assert '<a href="/">首页</a>' in r.text
    with httpx.Client(base_url=siyu) as anon:
        r = anon.get("/no-such-page")
        assert r.status_code == 404 and 'aria-label="主菜单"' not in r.text
        assert '<a href="/">首页</a>' in r.text and "返回" in r.text


def test_an_empty_conversation_list_asks_for_archiving_only_where_it_is_off_and_of_an_admin(
    siyu, db, web_settings, emu_url
):
    """A new company's list said 开启会话存档后… to an agent, who cannot turn it on, and with
    archiving on. The admin now reads it with a link to where it is turned on; the agent, or
    anyone once archiving is on, that chats come as customers write."""
    import uuid

    from siyu.runtime import Runtime
    from siyu.tenancy import service as tenancy
    from tests.web.conftest import PASSWORD, _make_tenant, login

    rt = Runtime.create(web_settings, db)
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        t = _make_tenant(db, rt, emu, "空")
    sfx = uuid.uuid4().hex[:6]
    with db.tenant_session(t.id) as s:
        tenancy.add_person(s, f"admin-e-{sfx}", "空管理员", "admin", PASSWORD)
        tenancy.add_person(s, f"agent-e-{sfx}", "空成员", "agent", PASSWORD, "zhangsan")
    admin, agent = login(siyu, f"admin-e-{sfx}"), login(siyu, f"agent-e-{sfx}")

    def empty(client) -> str:
        return re.search(r'<p class="muted empty">(.*?)</p>', client.get("/conversations").text, re.S)[1]

    assert (
        empty(admin)
        == '还没有会话。<a href="/setup/archive">开启会话存档</a>后，客户与成员的聊天会出现在这里。'
    )
    assert empty(agent) == "还没有会话。客户发来消息后会出现在这里。"
    with db.tenant_session(t.id) as s:
        s.get(Tenant, t.id).archive_mode = "http"
    assert empty(admin) == empty(agent) == "还没有会话。客户发来消息后会出现在这里。"
    admin.close()
    agent.close()


def test_setup_ticks_the_steps_done_in_wecoms_console_from_what_siyu_received(
    siyu, db, emu_url, web_settings
):
    """Steps 2 (callback server), 8 (会话存档) and 9 (API 令牌) had stayed unticked while
    callbacks came, the archive was pulled and a token let calls in."""
    from siyu.conversations.service import add_archive_key
    from siyu.conversations.tasks import pull
    from siyu.runtime import Runtime
    from siyu.tenancy import api_tokens
    from siyu.tenancy import service as tenancy
    from siyu.wecom.archive import generate_key_pair
    from tests.web.conftest import PASSWORD, _in_thread, _make_tenant, login

    rt = Runtime.create(web_settings, db)
    with httpx.Client(base_url=emu_url, timeout=30) as emu:
        tenant = _make_tenant(db, rt, emu, "ding")
        with db.tenant_session(tenant.id) as s:
            tenancy.add_person(s, f"admin-{tenant.slug}", "丁管理员", "admin", PASSWORD)
        admin = login(siyu, f"admin-{tenant.slug}")

        def ticked() -> set[str]:
            page = admin.get("/setup").text
            steps = re.findall(r'<li class="(done)?" id="step-(\w+)"', page)
            assert len(steps) == 3, page
            return {step for done, step in steps if done}

        try:
            assert ticked() == set()
            # WeCom's 接收事件服务器 saved: its events come to the callback URL
            corp = f"/_emulator/corps/{tenant.corp['corp_id']}"
            callback = {"callback_url": web_settings.callback_url(tenant.slug)}
            assert emu.patch(corp, json=callback).status_code == 200
            r = emu.post(f"{corp}/group_chats", json={"owner": "zhangsan", "name": "售后群", "wait": True})
            assert r.status_code == 201, r.text
            assert ticked() == {"callback"}
            # the archive: a key pair uploaded to WeCom, the Secret saved, a pull that worked
            private_pem, public_pem = generate_key_pair()
            keys = {"publickey_ver": 1, "public_key_pem": public_pem}
            assert emu.post(f"{corp}/archive/keys", json=keys).status_code < 300
            with db.tenant_session(tenant.id) as s:
                t = s.get(Tenant, tenant.id)
                tenancy.save_archive_settings(s, rt.box, t, "http", tenant.corp["archive_secret"])
                add_archive_key(s, rt.box, 1, private_pem, public_pem)
            _in_thread(lambda: pull(rt, tenant.id))
            assert ticked() == {"callback", "archive"}
            # a token: ticked while it lets calls in, not once revoked
            with db.tenant_session(tenant.id) as s:
                me = s.scalar(select(Person).where(Person.login == f"admin-{tenant.slug}"))
                token, _ = api_tokens.create(s, "CRM", me, None)
                token_id = token.id
            assert ticked() == {"callback", "archive", "tokens"}
            with db.tenant_session(tenant.id) as s:
                api_tokens.revoke(s, token_id)
            assert ticked() == {"callback", "archive"}
        finally:
            admin.close()
            _in_thread(lambda: rt.clients.aclose())


def test_a_sign_in_that_expired_signs_in_again_to_the_page_the_link_was_for(siyu, world):
    """WeCom came back to a browser without the sign-in's cookie (it expired, or the link was
    opened in another browser): 重新登录 went to /auth/wecom/{slug}, and on to the home page,
    not to the customer the card was about."""
    cid = world.a.customers["王女士"]
    with httpx.Client(timeout=10) as started, httpx.Client(timeout=10) as other:
        callback = _callback_of(siyu, world, started, "zhangsan", f"/customers/{cid}")
        r = other.get(callback)
        assert r.status_code == 400 and "<h1>登录已过期</h1>" in r.text
        retry = re.search(r'<a class="button" href="([^"]+)">重新登录</a>', r.text)[1]
        assert retry == f"/auth/wecom/{world.a.slug}?next=%2Fcustomers%2F{cid}"
        for forged in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            r = other.get(f"{siyu}/auth/wecom/{world.a.slug}/callback", params={"state": "x", "next": forged})
            again = re.search(r'<a class="button" href="([^"]+)">重新登录</a>', r.text)[1]
            assert again == f"/auth/wecom/{world.a.slug}?next=%2F", forged
        to_wecom = other.get(f"{siyu}{retry}").headers["location"].partition("#")[0]
        r = other.get(f"{to_wecom}&emu_user=zhangsan")
        assert other.get(r.headers["location"]).headers["location"] == f"/customers/{cid}"


def test_a_sign_in_reopened_by_someone_signed_in_goes_on_to_the_page(siyu, world):
    """The callback's address opened again after it signed in (Back, a restored tab, a reload)
    told a person who was signed in that the sign-in had expired, with no way on but 重新登录."""
    cid = world.a.customers["王女士"]
    with httpx.Client(timeout=10) as phone:
        callback = _callback_of(siyu, world, phone, "zhangsan", f"/customers/{cid}")
        assert phone.get(callback).headers["location"] == f"/customers/{cid}"
        for _ in range(2):  # and reloaded
            r = phone.get(callback)
            assert r.status_code == 303 and r.headers["location"] == f"/customers/{cid}", r.text
        assert "王女士" in phone.get(f"{siyu}/customers/{cid}").text
        r = phone.get(f"{siyu}/auth/wecom/{world.a.slug}/callback", params={"next": "//evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/"  # only a page of this site
        phone.cookies.delete("siyu_session")  # signed out: told, as before
        r = phone.get(callback)
        assert r.status_code == 400 and "<h1>登录已过期</h1>" in r.text


def test_two_sign_ins_started_at_once_in_one_browser_both_complete(siyu, world):
    """Two cards tapped quickly: the second sign-in's cookie took the place of the first's,
    which came back to 登录已过期."""
    pages = [f"/customers/{world.a.customers['王女士']}", "/conversations?waiting=1"]
    with httpx.Client(timeout=10) as phone:
        first, second = (_callback_of(siyu, world, phone, "zhangsan", page) for page in pages)
        r = phone.get(first)
        assert r.status_code == 303 and r.headers["location"] == pages[0], r.text
        phone.cookies.delete("siyu_session")  # so that the second signs in by its own code
        r = phone.get(second)
        assert r.status_code == 303 and r.headers["location"] == pages[1], r.text
        assert "siyu_session" in phone.cookies
        # a few at most, the oldest given up
        started = [_callback_of(siyu, world, phone, "zhangsan", pages[0]) for _ in range(6)]
        phone.cookies.delete("siyu_session")
        assert "<h1>登录已过期</h1>" in phone.get(started[0]).text
        assert phone.get(started[-1]).status_code == 303
