"""Channels through the API and the pages, against the WeCom emulator: create, edit,
disable, stats, QR proxy and download, WeCom errors shown instead of a 500."""

from __future__ import annotations

import re
from urllib.parse import unquote

import httpx
from sqlalchemy import select

from siyu.customers import service as customers
from siyu.customers.models import Channel
from siyu.tenancy.models import Staff
from tests.web.conftest import wecom_fault, zhaoliu_left


def _ways(world, tenant) -> dict:
    r = httpx.get(f"{world.emu_url}/_emulator/corps/{tenant.corp['corp_id']}/contact_ways")
    return {w["config_id"]: w for w in r.json()}


def test_create_edit_disable_through_the_api(as_role, world, db):
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    body = {
        "name": "API 渠道",
        "staff_userids": ["zhangsan", "lisi"],
        "tag_ids": ["tagVIP"],
        "welcome_text": "你好 {name}",
        "welcome_link": {"url": "https://example.com/a", "title": "产品手册"},
    }
    r = admin.post("/api/v1/channels", json=body, headers=csrf)
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["enabled"] and ch["state"].startswith("ch_") and ch["tag_ids"] == ["tagVIP"]
    assert ch["qr_url"] == f"/api/v1/channels/{ch['id']}/qr.png"
    with db.tenant_session(world.a.id) as s:
        config_id = s.get(Channel, ch["id"]).config_id
    way = _ways(world, world.a)[config_id]
    assert way["state"] == ch["state"] and sorted(way["user"]) == ["lisi", "zhangsan"]

    r = admin.patch(
        f"/api/v1/channels/{ch['id']}", json={"name": "API 渠道改名", "skip_verify": False}, headers=csrf
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "API 渠道改名" and r.json()["skip_verify"] is False
    assert r.json()["staff_userids"] == ["zhangsan", "lisi"]  # untouched fields stay
    assert _ways(world, world.a)[config_id]["skip_verify"] is False

    # WeCom keeps a code's type: a multi-member code left with one member stays one, and takes
    # a second member again
    r = admin.patch(f"/api/v1/channels/{ch['id']}", json={"staff_userids": ["zhangsan"]}, headers=csrf)
    assert r.status_code == 200, r.text
    assert _ways(world, world.a)[config_id]["user"] == ["zhangsan"]
    assert _ways(world, world.a)[config_id]["type"] == 2
    r = admin.patch(
        f"/api/v1/channels/{ch['id']}", json={"staff_userids": ["zhangsan", "lisi"]}, headers=csrf
    )
    assert r.status_code == 200, r.text

    r = admin.post(f"/api/v1/channels/{ch['id']}/disable", headers=csrf)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert config_id not in _ways(world, world.a)
    r = admin.patch(f"/api/v1/channels/{ch['id']}", json={"name": "x"}, headers=csrf)
    assert r.status_code == 409


def test_a_member_or_tag_named_twice_is_one(as_role, world, db):
    """A script that built its list with a member twice (["张三", "张三"]) got a channel listing
    him twice and a multi-member code for one person, which WeCom then never lets become a
    single-member one; a tag or department twice was kept twice too. Each is kept once."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    body = {"name": "重复成员", "staff_userids": ["zhangsan", "zhangsan"], "tag_ids": ["tagVIP", "tagVIP"]}
    r = admin.post("/api/v1/channels", json=body, headers=csrf)
    assert r.status_code == 201, r.text
    ch = r.json()
    assert (ch["staff_userids"], ch["tag_ids"]) == (["zhangsan"], ["tagVIP"])
    with db.tenant_session(world.a.id) as s:
        config_id = s.get(Channel, ch["id"]).config_id
    way = _ways(world, world.a)[config_id]
    assert (way["type"], way["user"]) == (1, ["zhangsan"])  # a single-member code
    twice = {"staff_userids": ["lisi", "lisi"], "department_ids": None}
    r = admin.patch(f"/api/v1/channels/{ch['id']}", json=twice, headers=csrf)
    assert r.status_code == 200 and r.json()["staff_userids"] == ["lisi"], r.text
    body = {"name": "重复部门", "department_ids": [1, 1], "staff_userids": []}
    r = admin.post("/api/v1/channels", json=body, headers=csrf)
    assert r.status_code == 201 and r.json()["department_ids"] == [1], r.text
    for made in (ch["id"], r.json()["id"]):
        assert admin.post(f"/api/v1/channels/{made}/disable", headers=csrf).status_code == 200


def test_a_member_named_in_another_case_is_the_members_userid(as_role, new_channel, world, db):
    """WeCom's userids are case-insensitive: a script sending ZhangSan for zhangsan was told
    成员不存在或已停用. The channel keeps zhangsan, as synced (ZhangSan and zhangsan: one
    member, a single-member code), and a change to LISI hands scans to lisi."""
    admin = as_role("admin")
    ch = new_channel(admin, "大小写成员", ["ZhangSan", "zhangsan"])
    assert ch["staff_userids"] == ["zhangsan"]
    with db.tenant_session(world.a.id) as s:
        config_id = s.get(Channel, ch["id"]).config_id
    assert (_ways(world, world.a)[config_id]["type"], _ways(world, world.a)[config_id]["user"]) == (
        1,
        ["zhangsan"],
    )
    csrf = {"X-CSRF-Token": admin.csrf}
    r = admin.patch(f"/api/v1/channels/{ch['id']}", json={"staff_userids": ["LISI"]}, headers=csrf)
    assert r.status_code == 200 and r.json()["staff_userids"] == ["lisi"], r.text
    assert _ways(world, world.a)[config_id]["user"] == ["lisi"]


def test_bad_channel_payloads_answer_422_with_clear_messages(as_role):
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}

    def post(body):
        return admin.post("/api/v1/channels", json=body, headers=csrf)

    r = post({"staff_userids": ["zhangsan"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    r = post({"name": "   ", "staff_userids": ["zhangsan"]})
    assert r.status_code == 422
    r = post({"name": "无人", "staff_userids": []})
    assert r.status_code == 422 and "请选择至少一位成员" in r.json()["detail"]
    r = post({"name": "陌生人", "staff_userids": ["ghost"]})
    assert r.status_code == 422 and "ghost" in r.json()["detail"]
    r = post({"name": "离职", "staff_userids": ["sunba"]})
    assert r.status_code == 422 and "sunba" in r.json()["detail"]
    r = post({"name": "坏标签", "staff_userids": ["zhangsan"], "tag_ids": ["nope"]})
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    r = post({"name": "坏链接", "staff_userids": ["zhangsan"], "welcome_link": {"url": "ftp://x"}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "url"
    r = post({"name": "多字段", "staff_userids": ["zhangsan"], "colour": "red"})
    assert r.status_code == 422
    assert admin.post("/api/v1/channels", content=b"not json", headers=csrf).status_code == 415  # no type
    json_typed = {**csrf, "Content-Type": "application/json"}
    assert admin.post("/api/v1/channels", content=b"not json", headers=json_typed).status_code == 422


def test_a_channel_takes_numbers_and_switches_only_as_json_numbers_and_booleans(as_role, world):
    """As the SLA policy does: a department id of true was read as department 1 (总部: the whole
    corp's members got the channel's customers), "1" as 1, and a switch of "no" or 0 as false,
    all saved without a word. Each is a 422 naming the field, and nothing is made or changed."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    before = len(admin.get("/api/v1/channels").json())
    for field, value in (("department_ids", [True]), ("department_ids", ["1"]), ("skip_verify", "no")):
        body = {"name": f"严格{field}", "staff_userids": ["zhangsan"], field: value}
        r = admin.post("/api/v1/channels", json=body, headers=csrf)
        assert r.status_code == 422, (field, value, r.text[:200])
        assert r.json()["detail"][0]["loc"][:2] == ["body", field]
    assert len(admin.get("/api/v1/channels").json()) == before
    channel = world.a.channels["门店海报"]
    r = admin.patch(f"/api/v1/channels/{channel}", json={"skip_verify": 0}, headers=csrf)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "skip_verify"]
    assert admin.get(f"/api/v1/channels/{channel}").json()["skip_verify"] is True


def test_a_null_name_or_switch_is_a_422_and_changes_nothing(as_role, world):
    """A name of null was a 500, and a skip_verify of null turned 免验证 off in WeCom without a
    word: neither can be cleared, so each is a 422 naming the field (null still clears what
    can be cleared, as the welcome text)."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    channel = world.a.channels["门店海报"]
    before = admin.get(f"/api/v1/channels/{channel}").json()
    for field in ("name", "skip_verify"):
        r = admin.patch(f"/api/v1/channels/{channel}", json={field: None}, headers=csrf)
        assert r.status_code == 422, (field, r.text[:200])
        assert r.json()["detail"][0]["loc"] == ["body", field]
    after = admin.get(f"/api/v1/channels/{channel}").json()
    assert (
        (after["name"], after["skip_verify"])
        == (before["name"], before["skip_verify"])
        == (
            "门店海报",
            True,
        )
    )
    spec = admin.get("/api/v1/openapi.json").json()["components"]["schemas"]["ChannelPatch"]["properties"]
    assert spec["name"]["type"] == "string" and spec["skip_verify"]["type"] == "boolean"


def test_only_admins_change_channels(as_role, world):
    agent = as_role("agent")
    r = agent.post(
        "/api/v1/channels",
        json={"name": "x", "staff_userids": ["zhangsan"]},
        headers={"X-CSRF-Token": agent.csrf},
    )
    assert r.status_code == 403
    channel = world.a.channels["门店海报"]
    assert (
        agent.post(f"/api/v1/channels/{channel}/disable", headers={"X-CSRF-Token": agent.csrf}).status_code
        == 403
    )
    assert agent.get("/channels/new").status_code == 403
    assert agent.get(f"/api/v1/channels/{channel}").status_code == 200  # reading is fine


def test_stats_totals_and_per_day(as_role, world):
    admin = as_role("admin")
    channel = world.a.channels["门店海报"]
    stats = admin.get(f"/api/v1/channels/{channel}/stats", params={"days": 14}).json()
    assert stats["totals"] == {
        "adds": 3, "losses": 1, "deleted": 0, "transferred": 0, "active": 2, "net": 2, "scope": "tenant"
    }  # fmt: skip
    assert len(stats["days"]) == 14
    assert sum(d["adds"] for d in stats["days"]) == 3
    assert sum(d["losses"] for d in stats["days"]) == 1
    listed = {c["id"]: c for c in admin.get("/api/v1/channels").json()}
    assert listed[channel]["totals"]["adds"] == 3
    page = admin.get(f"/channels/{channel}")
    assert page.status_code == 200 and 'id="stats"' in page.text
    rows = re.findall(r"<tr[^>]*><td>(\d{4}-\d\d-\d\d)</td><td>(\d+)</td><td>(\d+)</td>", page.text)
    assert len(rows) == 30 and sum(int(a) for _, a, _ in rows) == 3
    listing = admin.get("/channels")
    assert "门店海报" in listing.text and "乙方海报" not in listing.text


def test_qr_is_proxied_as_png_and_downloads_for_posters(as_role, world, db):
    admin = as_role("admin")
    channel = world.a.channels["门店海报"]
    for path in (f"/api/v1/channels/{channel}/qr.png", f"/channels/{channel}/qr.png"):
        r = admin.get(path)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content.startswith(b"\x89PNG")
        assert "content-disposition" not in r.headers
    r = admin.get(f"/channels/{channel}/qr.png", params={"download": 1})
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition).group(1)
    assert unquote(encoded) == "渠道-门店海报.png"
    # The image is the emulator's real QR code: it decodes to the contact way.
    with db.tenant_session(world.a.id) as s:
        config_id = s.get(Channel, channel).config_id
    assert r.content == httpx.get(f"{world.emu_url}/_emulator/qr/{config_id}.png").content


def test_notice_is_shown_when_a_channel_tag_was_deleted_in_wecom(as_role, world, db):
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    ch = admin.post(
        "/api/v1/channels",
        json={"name": "标签渠道", "staff_userids": ["lisi"], "tag_ids": ["tagVIP"]},
        headers=csrf,
    ).json()
    with db.tenant_session(world.a.id) as s:
        customers.mark_tags_deleted(s, ["tagVIP"])
    try:
        page = admin.get(f"/channels/{ch['id']}")
        assert "标签 VIP 已在企业微信中删除" in page.text
        assert admin.get(f"/api/v1/channels/{ch['id']}").json()["notice"].startswith("标签 VIP")
    finally:
        with db.tenant_session(world.a.id) as s:
            customers.upsert_tags(
                s, [{"group_id": "grp1", "group_name": "客户等级", "tag": [{"id": "tagVIP", "name": "VIP"}]}]
            )


def test_a_member_who_left_is_warned_of_on_the_channels_that_still_hand_scans_to_them(
    as_role, new_channel, world, db
):
    """A member who left keeps receiving a code's scans in WeCom until the code is changed: the
    list, the channel, the API and the edit form say so, rather than show the code as fine."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    alone = new_channel(admin, "赵六的海报", ["zhaoliu"])
    shared = new_channel(admin, "赵六和张三的易拉宝", ["zhangsan", "zhaoliu"])
    with db.tenant_session(world.a.id) as s:
        s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).active = False  # as the staff sync leaves it
    try:
        nobody = "接待成员 赵六 已离职或停用，扫码的客户无人接待：请换一位成员"
        assert admin.get(f"/api/v1/channels/{alone['id']}").json()["notice"] == nobody
        assert (
            admin.get(f"/api/v1/channels/{shared['id']}").json()["notice"]
            == "赵六 已离职或停用，不再接待：可从接待成员中移除"
        )
        listed = admin.get("/channels").text
        row = re.search(rf'<tr data-channel="{alone["id"]}">.*?</tr>', listed, re.S).group(0)
        assert f'<span class="warn" title="{nobody}">⚠</span>' in row
        page = admin.get(f"/channels/{shared['id']}").text
        assert (
            "赵六 已离职或停用，不再接待：可从接待成员中移除" in page and "张三、赵六（已离职或停用）" in page
        )
        form = admin.get(f"/channels/{alone['id']}/edit").text
        assert "赵六 已离职或停用，扫码的客户无人接待：请取消勾选赵六，另选一位在职的成员后保存" in form
        form = admin.get(f"/channels/{shared['id']}/edit").text
        assert "赵六 已离职或停用，扫码的客户只会加给其他接待成员。赵六仍勾选在下面" in form
        # a disabled code hands scans to nobody: nothing to warn of
        admin.post(f"/api/v1/channels/{alone['id']}/disable", headers=csrf)
        assert admin.get(f"/api/v1/channels/{alone['id']}").json()["notice"] == ""
    finally:
        with db.tenant_session(world.a.id) as s:
            s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).active = True


def test_a_channel_whose_member_left_can_still_be_changed_and_says_whom_to_replace(
    as_role, new_channel, world, db
):
    """A member who left WeCom made every change of their channels refused ("成员不存在或已停用")
    until they were replaced, a welcome text too, and without saying so. WeCom's
    update_contact_way takes any of its fields: a change that leaves the members as they are is
    saved; one that sends them, the leaver still among them, says whom to replace or remove."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    ch = new_channel(admin, "赵六留下的易拉宝", ["zhangsan", "zhaoliu"])
    with zhaoliu_left(world, db):
        r = admin.patch(f"/api/v1/channels/{ch['id']}", json={"welcome_text": "欢迎光临"}, headers=csrf)
        assert r.status_code == 200, r.text
        assert r.json()["welcome_text"] == "欢迎光临"
        r = admin.patch(f"/api/v1/channels/{ch['id']}", json={"name": "易拉宝改名"}, headers=csrf)
        assert r.status_code == 200, r.text
        with db.tenant_session(world.a.id) as s:
            config_id = s.get(Channel, ch["id"]).config_id
        assert _ways(world, world.a)[config_id]["remark"] == "易拉宝改名"

        r = admin.patch(
            f"/api/v1/channels/{ch['id']}",
            json={"staff_userids": ["zhangsan", "lisi", "zhaoliu"]},
            headers=csrf,
        )
        assert r.status_code == 422
        assert r.json()["detail"].startswith("「赵六」已离职或停用：请在成员中换人或移除后再保存")
        r = admin.patch(
            f"/api/v1/channels/{ch['id']}", json={"staff_userids": ["zhangsan", "lisi"]}, headers=csrf
        )
        assert r.status_code == 200, r.text
        assert sorted(_ways(world, world.a)[config_id]["user"]) == ["lisi", "zhangsan"]


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_the_form_creates_a_channel_with_an_uploaded_welcome_image(as_role, world, db):
    admin = as_role("admin")
    form = admin.get("/channels/new")
    assert form.status_code == 200 and "张三" in form.text and "VIP" in form.text
    r = admin.post(
        "/channels/new",
        data={
            "csrf_token": admin.csrf,
            "name": "表单渠道",
            "staff_userids": ["zhangsan"],
            "skip_verify": "1",
            "tag_ids": ["tagNEW"],
            "welcome_text": "欢迎 {name}",
            "link_url": "https://example.com/p",
            "link_title": "产品页",
        },
        files={"welcome_image": ("hello.png", PNG, "image/png")},
    )
    assert r.status_code == 303, r.text
    channel_id = int(re.search(r"/channels/(\d+)", r.headers["location"]).group(1))
    with db.tenant_session(world.a.id) as s:
        ch = s.get(Channel, channel_id)
        assert ch.welcome_image_url.startswith(world.emu_url + "/_emulator/img/")
        assert ch.welcome_link == {"url": "https://example.com/p", "title": "产品页"}
        assert ch.staff_userids == ["zhangsan"] and ch.tag_ids == ["tagNEW"] and ch.skip_verify
    assert httpx.get(ch.welcome_image_url).content == PNG
    page = admin.get(r.headers["location"])
    assert "渠道已创建" in page.text and ch.welcome_image_url in page.text

    # Edit through the form; an invalid form shows the message and keeps what was typed.
    r = admin.post(
        f"/channels/{channel_id}/edit",
        data={"csrf_token": admin.csrf, "name": "", "staff_userids": ["zhangsan"]},
    )
    assert r.status_code == 422 and "渠道名称不能为空" in r.text
    r = admin.post(
        f"/channels/{channel_id}/edit",
        data={
            "csrf_token": admin.csrf,
            "name": "表单渠道2",
            "staff_userids": ["zhangsan"],
            "remove_image": "1",
        },
    )
    assert r.status_code == 303
    with db.tenant_session(world.a.id) as s:
        ch = s.get(Channel, channel_id)
        assert ch.name == "表单渠道2" and ch.welcome_image_url == "" and not ch.skip_verify

    r = admin.post(f"/channels/{channel_id}/disable", data={"csrf_token": admin.csrf})
    assert r.status_code == 303
    assert "已停用" in admin.get(f"/channels/{channel_id}").text


def test_wecom_errors_are_shown_not_a_500(as_role, world, db):
    admin = as_role("admin")
    refused = {"path": "/cgi-bin/externalcontact/add_contact_way", "errcode": 41054}
    with wecom_fault(world, **refused):
        r = admin.post(
            "/channels/new", data={"csrf_token": admin.csrf, "name": "会失败", "staff_userids": ["zhangsan"]}
        )
        assert r.status_code == 502
        assert "企业微信拒绝了请求" in r.text and "41054" in r.text
        assert 'value="会失败"' in r.text  # the form keeps what was typed
    with db.tenant_session(world.a.id) as s:
        assert s.scalar(select(Channel).where(Channel.name == "会失败")) is None
    with wecom_fault(world, **refused):
        r = admin.post(
            "/api/v1/channels",
            json={"name": "会失败", "staff_userids": ["zhangsan"]},
            headers={"X-CSRF-Token": admin.csrf},
        )
        assert r.status_code == 502 and "41054" in r.json()["detail"]


def test_a_refused_form_keeps_what_was_typed(as_role, world):
    """No member chosen: the form said so and came back empty (a new channel) or as stored (an
    edit), the name, welcome text, link and tags just typed all lost."""
    admin = as_role("admin")
    typed = {
        "csrf_token": admin.csrf,
        "name": "双十二海报",
        "welcome_text": "{name}您好，双十二见！",
        "link_url": "https://example.com/1212",
        "tag_ids": ["tagVIP"],
    }

    def kept(page: str) -> bool:
        return (
            'value="双十二海报"' in page
            and "{name}您好，双十二见！</textarea>" in page
            and 'value="https://example.com/1212"' in page
            and re.search(r'value="tagVIP"\s+checked', page) is not None
        )

    r = admin.post("/channels/new", data=typed)
    assert r.status_code == 422 and "请选择至少一位成员" in r.text
    assert kept(r.text)
    csrf = {"X-CSRF-Token": admin.csrf}
    made = admin.post("/api/v1/channels", json={"name": "改前", "staff_userids": ["zhangsan"]}, headers=csrf)
    assert made.status_code == 201, made.text
    channel_id = made.json()["id"]
    try:
        r = admin.post(f"/channels/{channel_id}/edit", data=typed)
        assert r.status_code == 422 and "请选择至少一位成员" in r.text
        assert kept(r.text)
    finally:
        admin.post(f"/channels/{channel_id}/disable", data={"csrf_token": admin.csrf})
