"""What a demo's tester found refused or kept wrongly on channels: a refused form's welcome
image, names alike but for full-width or invisible characters, a disabled channel's QR code,
and a welcome link half filled in."""

from __future__ import annotations

import html
import re
import uuid

import httpx
import pytest

from siyu.customers.models import Channel
from tests.web.conftest import wecom_fault
from tests.web.test_channels import PNG

UPLOADIMG = "/cgi-bin/media/uploadimg"
HIDDEN_IMAGE = re.compile(r'<input type="hidden" name="welcome_image_url" value="([^"]+)"')


def _calls(world, path: str) -> int:
    calls = httpx.get(f"{world.emu_url}/_emulator/corps/{world.a.corp['corp_id']}/calls").json()
    return sum(1 for c in calls if c["path"] == path)


def test_a_form_refused_for_its_name_uploads_no_image_and_asks_for_it_again(as_role, world, db):
    """官网首页 taken, a PNG chosen: the image went to WeCom before the name was checked, the
    409 page showed it as 当前图片 with no field carrying it, and the next submit made the
    channel without it (the uploaded image orphaned in WeCom)."""
    admin = as_role("admin")
    uploads = _calls(world, UPLOADIMG)
    r = admin.post(
        "/channels/new",
        data={"csrf_token": admin.csrf, "name": "门店海报", "staff_userids": ["zhangsan"]},
        files={"welcome_image": ("poster.png", PNG, "image/png")},
    )
    assert r.status_code == 409 and "已有启用中的渠道" in r.text
    assert _calls(world, UPLOADIMG) == uploads  # nothing left in WeCom
    assert "当前图片" not in r.text  # no image shown that the form does not carry
    assert "所选图片还没有上传，请重新选择" in r.text


def test_an_image_uploaded_before_wecom_refused_the_code_is_kept_on_resubmit(as_role, world, db):
    """The image is uploaded, then WeCom refuses the code (502): the form carries the image's
    URL back, and the next submit makes the channel with it, uploading nothing again."""
    admin = as_role("admin")
    name = f"带图渠道-{uuid.uuid4().hex[:6]}"
    with wecom_fault(world, "/cgi-bin/externalcontact/add_contact_way", errcode=41054):
        r = admin.post(
            "/channels/new",
            data={"csrf_token": admin.csrf, "name": name, "staff_userids": ["zhangsan"]},
            files={"welcome_image": ("poster.png", PNG, "image/png")},
        )
    assert r.status_code == 502 and "41054" in r.text
    carried = HIDDEN_IMAGE.search(r.text)
    assert carried, "the refused form does not carry the uploaded image"
    url = html.unescape(carried.group(1))
    assert httpx.get(url).content == PNG
    uploads = _calls(world, UPLOADIMG)
    r = admin.post(
        "/channels/new",
        data={
            "csrf_token": admin.csrf,
            "name": name,
            "staff_userids": ["zhangsan"],
            "welcome_image_url": url,
        },
        files={"welcome_image": ("", b"", "application/octet-stream")},  # the file field left empty
    )
    assert r.status_code == 303, r.text
    channel_id = int(re.search(r"/channels/(\d+)", r.headers["location"]).group(1))
    with db.tenant_session(world.a.id) as s:
        assert s.get(Channel, channel_id).welcome_image_url == url
    assert _calls(world, UPLOADIMG) == uploads


def test_names_alike_but_for_full_width_or_invisible_characters_are_one_name(as_role, world, db):
    """门店海报 + a zero-width space was a second 门店海报 (201), ＡＢＣ渠道 a second abc渠道."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}

    def post(name: str, userid: str = "lisi"):
        return admin.post("/api/v1/channels", json={"name": name, "staff_userids": [userid]}, headers=csrf)

    tag = uuid.uuid4().hex[:4]
    made = post(f"abc{tag}渠道")
    assert made.status_code == 201, made.text
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in f"ABC{tag.upper()}")
    for same in (
        f"{full_width}渠道",
        f"abc{tag}\u200b渠道",
        f"\u200babc{tag}渠道\ufeff",
        f"abc{tag}渠道\u2060",
        f"\u200eABC{tag}渠道",
    ):
        r = post(same)
        assert r.status_code == 409, (ascii(same), r.text)
        assert "已有启用中的渠道" in r.json()["detail"]
    r = post("门店海报\u200b")
    assert r.status_code == 409, r.text
    # variation selectors and Hangul fillers show as nothing too: each made a second channel
    home = post(f"官网首页{tag}")
    assert home.status_code == 201, home.text
    for same in ("\ufe0f", "\U000e0100", "\u115f", "\u1160", "\u3164", "\uffa0", "\u034f"):
        r = post(f"官网首页{tag}{same}")
        assert r.status_code == 409, (ascii(same), r.text)
        r = post(f"官网{same}首页{tag}")
        assert r.status_code == 409, (ascii(same), r.text)

    # invisible characters at the edges are not kept; a name of nothing else is no name
    r = post(f"\u200b新渠道{tag}\u200d ")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == f"新渠道{tag}"
    for blank in ("\u200b", "\u200b \ufeff", "\u00a0", " ", "\u3164", "\ufe0f\u00a0"):
        r = post(blank)
        assert r.status_code == 422 and "渠道名称不能为空" in r.text, r.text
    r = admin.post(
        "/channels/new",
        data={"csrf_token": admin.csrf, "name": "\u200b\u200c", "staff_userids": ["lisi"]},
    )
    assert r.status_code == 422 and "渠道名称不能为空" in r.text

    # a pair alike under these rules, from before them, can each still be edited under its name
    twin = post(f"twin{tag}")
    assert twin.status_code == 201, twin.text
    with db.tenant_session(world.a.id) as s:
        s.get(Channel, twin.json()["id"]).name = f"twin{tag}\u200b"
    other = post(f"twin{tag}-2")
    with db.tenant_session(world.a.id) as s:
        s.get(Channel, other.json()["id"]).name = f"twin{tag}"
    r = admin.patch(f"/api/v1/channels/{twin.json()['id']}", json={"welcome_text": "欢迎"}, headers=csrf)
    assert r.status_code == 200, r.text
    r = admin.post(
        f"/channels/{other.json()['id']}/edit",
        data={
            "csrf_token": admin.csrf,
            "name": f"twin{tag}",
            "staff_userids": ["lisi"],
            "welcome_text": "好",
        },
    )
    assert r.status_code == 303, r.text

    # the customer list's channel filter tells a disabled channel from the one in use
    assert admin.post(f"/api/v1/channels/{twin.json()['id']}/disable", headers=csrf).status_code == 200
    page = admin.get("/customers").text
    option = re.search(rf'<option value="{twin.json()["id"]}"[^>]*>([^<]*)</option>', page)
    assert option and option.group(1).endswith("（已停用）"), option
    option = re.search(rf'<option value="{other.json()["id"]}"[^>]*>([^<]*)</option>', page)
    assert option and option.group(1) == f"twin{tag}", option


def test_a_braille_blank_is_as_invisible_in_a_channel_name_as_a_hangul_filler(as_role):
    """U+2800 shows as nothing (the usual invisible filler of WeChat nicknames), though Unicode
    counts it a symbol: 官网首页 + U+2800 was a second 官网首页 (201), and U+2800 alone a
    channel that read blank everywhere."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}

    def post(name: str):
        return admin.post("/api/v1/channels", json={"name": name, "staff_userids": ["lisi"]}, headers=csrf)

    tag = uuid.uuid4().hex[:4]
    home = post(f"官网首页{tag}")
    assert home.status_code == 201, home.text
    for same in (f"官网首页{tag}\u2800", f"官网\u2800首页{tag}", f"\u2800官网首页{tag}\u3164"):
        r = post(same)
        assert r.status_code == 409 and "已有启用中的渠道" in r.text, (ascii(same), r.text)
    for blank in ("\u2800", "\u2800\u3164\u2800", " \u2800\u115f\u1160"):
        r = post(blank)
        assert r.status_code == 422 and "渠道名称不能为空" in r.text, (ascii(blank), r.text)
    r = post(f"\u2800新首页{tag}\u2800")
    assert r.status_code == 201 and r.json()["name"] == f"新首页{tag}", r.text


def test_a_disabled_channel_offers_no_qr_code(as_role, world, db):
    """GET …/{id} gave a disabled channel a qr_url, and its qr.png answered 502 with httpx's
    words (a link to developer.mozilla.org): its code is gone from WeCom for good."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    made = admin.post(
        "/api/v1/channels",
        json={"name": f"停用码-{uuid.uuid4().hex[:6]}", "staff_userids": ["zhangsan"]},
        headers=csrf,
    ).json()
    r = admin.post(f"/api/v1/channels/{made['id']}/disable", headers=csrf)
    assert r.status_code == 200 and r.json()["qr_url"] is None
    assert admin.get(f"/api/v1/channels/{made['id']}").json()["qr_url"] is None
    listed = {c["id"]: c for c in admin.get("/api/v1/channels").json()}
    assert listed[made["id"]]["qr_url"] is None
    for path in (f"/api/v1/channels/{made['id']}/qr.png", f"/channels/{made['id']}/qr.png"):
        r = admin.get(path)
        assert r.status_code == 410, (path, r.status_code, r.text[:300])
        assert "渠道已停用" in r.text and "the channel is disabled" in r.text
        assert "mozilla" not in r.text and "httpx" not in r.text


def test_a_qr_image_wecom_does_not_give_is_a_502_in_our_words(as_role, world, db):
    admin = as_role("admin")
    made = admin.post(
        "/api/v1/channels",
        json={"name": f"坏码-{uuid.uuid4().hex[:6]}", "staff_userids": ["zhangsan"]},
        headers={"X-CSRF-Token": admin.csrf},
    ).json()
    with db.tenant_session(world.a.id) as s:
        channel = s.get(Channel, made["id"])
        channel.qr_code = f"{world.emu_url}/_emulator/qr/no-such-code.png"
    try:
        for path in (f"/api/v1/channels/{made['id']}/qr.png", f"/channels/{made['id']}/qr.png"):
            r = admin.get(path)
            assert r.status_code == 502, (path, r.text[:300])
            assert "二维码图片暂时取不到" in r.text
            assert "mozilla" not in r.text and "no-such-code" not in r.text and "Client error" not in r.text
    finally:
        admin.post(f"/api/v1/channels/{made['id']}/disable", headers={"X-CSRF-Token": admin.csrf})


def test_a_qr_address_answering_a_web_page_is_no_image_served_as_siyus_page(as_role, world, db):
    """The QR image was sent back with the answer's own Content-Type unless it began as a PNG: an
    HTML page answered there (a compromised host, a network in between) ran as a page of Siyu's
    own site, in a signed-in admin's browser. Only a PNG or JPEG is served, labelled by its bytes."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from tests.support.servers import serve

    async def page(request):
        return HTMLResponse("<html><body><script>alert(document.cookie)</script></body></html>")

    admin = as_role("admin")
    made = admin.post(
        "/api/v1/channels",
        json={"name": f"页码-{uuid.uuid4().hex[:6]}", "staff_userids": ["zhangsan"]},
        headers={"X-CSRF-Token": admin.csrf},
    ).json()
    try:
        with serve(Starlette(routes=[Route("/{p:path}", page)])) as host:
            with db.tenant_session(world.a.id) as s:  # the qr_code WeCom's add_contact_way answered
                s.get(Channel, made["id"]).qr_code = f"{host}/qr/abc.png"
            for path in (f"/channels/{made['id']}/qr.png", f"/api/v1/channels/{made['id']}/qr.png"):
                r = admin.get(path)
                assert r.status_code == 502 and "<script>alert" not in r.text, (path, r.text[:80])
                assert "二维码图片暂时取不到" in r.text
    finally:
        admin.post(f"/api/v1/channels/{made['id']}/disable", headers={"X-CSRF-Token": admin.csrf})


def test_a_welcome_link_needs_both_its_title_and_its_url(as_role, world, db):
    """链接标题 标题 with no 链接地址 was saved as {"title": "标题"} and never sent (WeCom sends a
    link with both); a URL without a title went out titled by the bare URL."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    before = len(admin.get("/api/v1/channels").json())
    name = f"链接渠道-{uuid.uuid4().hex[:6]}"
    cases = (
        (
            {"link_title": "标题"},
            {"title": "标题"},
            "填写了链接标题，请填写链接地址 / a link title needs a link",
        ),
        ({"link_desc": "说明"}, {"desc": "说明"}, "请填写链接地址"),
        (
            {"link_url": "https://example.com/p"},
            {"url": "https://example.com/p"},
            "填写了链接地址，请填写链接标题 / a link URL needs a link title",
        ),
        (
            {"link_url": "https://example.com/p", "link_title": "  "},
            {"url": "https://example.com/p", "title": "  "},
            "请填写链接标题",
        ),
    )
    for form, link, message in cases:
        r = admin.post(
            "/channels/new",
            data={"csrf_token": admin.csrf, "name": name, "staff_userids": ["zhangsan"], **form},
        )
        assert r.status_code == 422 and message in r.text, (form, r.status_code)
        assert 'value="' + name + '"' in r.text  # what was typed stays
        r = admin.post(
            "/api/v1/channels",
            json={"name": name, "staff_userids": ["zhangsan"], "welcome_link": link},
            headers=csrf,
        )
        assert r.status_code == 422 and message in r.text, (link, r.text)
    assert len(admin.get("/api/v1/channels").json()) == before

    made = admin.post(
        "/api/v1/channels",
        json={
            "name": name,
            "staff_userids": ["zhangsan"],
            "welcome_link": {"url": "https://e.c", "title": "手"},
        },
        headers=csrf,
    )
    assert made.status_code == 201, made.text
    path = f"/api/v1/channels/{made.json()['id']}"
    r = admin.patch(path, json={"welcome_link": {"title": "新"}}, headers=csrf)
    assert r.status_code == 422 and "请填写链接地址" in r.text
    r = admin.patch(path, json={"welcome_link": None}, headers=csrf)
    assert r.status_code == 200 and r.json()["welcome_link"] == {}

    # a link saved with a URL alone before both were asked for is kept as it was sent (titled
    # by its URL) when another field changes
    with db.tenant_session(world.a.id) as s:
        s.get(Channel, made.json()["id"]).welcome_link = {"url": "https://e.com/old"}
    r = admin.patch(f"/api/v1/channels/{made.json()['id']}", json={"skip_verify": False}, headers=csrf)
    assert r.status_code == 200, r.text
    assert r.json()["welcome_link"] == {"url": "https://e.com/old", "title": "https://e.com/old"}


def test_a_welcome_placeholder_the_welcome_does_not_fill_is_refused(as_role, world, db):
    """你好 {nickname}，{name was saved (201) and the customer got exactly that: only {name} and
    {客户名} become the customer's name."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    ways = len(_ways(world))
    body = {"name": f"占位符 {uuid.uuid4().hex[:6]}", "staff_userids": ["zhangsan"]}
    r = admin.post("/api/v1/channels", json={**body, "welcome_text": "你好 {nickname}，{name}"}, headers=csrf)
    assert r.status_code == 422
    assert "欢迎语中的 {nickname} 不是可用的占位符，可用的有 {name}、{客户名}" in r.json()["detail"]
    r = admin.post("/api/v1/channels", json={**body, "welcome_text": "你好 {name，欢迎"}, headers=csrf)
    assert r.status_code == 422 and "欢迎语中的「{name，欢迎」缺少右括号 }" in r.json()["detail"]
    assert len(_ways(world)) == ways  # nothing made in WeCom

    typed = "你好 {nickname}，{name"
    r = admin.post(
        "/channels/new",
        data={"csrf_token": admin.csrf, **body, "welcome_text": typed},
    )
    assert r.status_code == 422
    assert html.escape("欢迎语中的 {nickname} 不是可用的占位符，可用的有 {name}、{客户名}") in r.text
    assert f">{html.escape(typed)}</textarea>" in r.text  # what was typed, kept

    ch = admin.post(
        "/api/v1/channels", json={**body, "welcome_text": "你好 {name}，我是{客户名}的顾问"}, headers=csrf
    )
    assert ch.status_code == 201, ch.text
    r = admin.patch(f"/api/v1/channels/{ch.json()['id']}", json={"welcome_text": "{name"}, headers=csrf)
    assert r.status_code == 422 and "缺少右括号" in r.json()["detail"]
    admin.post(f"/api/v1/channels/{ch.json()['id']}/disable", headers=csrf)


def _ways(world) -> list:
    return httpx.get(f"{world.emu_url}/_emulator/corps/{world.a.corp['corp_id']}/contact_ways").json()


def test_a_single_member_code_given_more_members_is_told_it_cannot_become_a_multi_member_one(as_role):
    """Refused both ways, the English said "a single-member code cannot become a multi-member
    one" to a multi-member code cut to one member too: each way now says what was tried."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    body = {"name": f"单人 {uuid.uuid4().hex[:6]}", "staff_userids": ["zhangsan"]}
    ch = admin.post("/api/v1/channels", json=body, headers=csrf).json()
    wanted = (
        "单人码不能改为多人码（多位成员或部门），请新建渠道 / a single-member code cannot become a "
        "multi-member one: create a new channel"
    )
    r = admin.patch(
        f"/api/v1/channels/{ch['id']}", json={"staff_userids": ["zhangsan", "lisi"]}, headers=csrf
    )
    assert r.status_code == 422 and r.json()["detail"] == wanted
    r = admin.patch(f"/api/v1/channels/{ch['id']}", json={"department_ids": [4]}, headers=csrf)
    assert r.status_code == 422 and r.json()["detail"] == wanted
    r = admin.post(
        f"/channels/{ch['id']}/edit",
        data={"csrf_token": admin.csrf, "name": body["name"], "staff_userids": ["zhangsan", "lisi"]},
    )
    assert r.status_code == 422 and html.escape(wanted) in r.text
    admin.post(f"/api/v1/channels/{ch['id']}/disable", headers=csrf)


def test_a_welcome_longer_than_wecom_takes_is_refused_in_bytes(as_role, world):
    """WeCom's send_welcome_msg takes 4000 bytes of text. 1500 Chinese characters (4500 bytes)
    were saved, and every customer's welcome was refused (40035) until its code expired."""
    from siyu.customers import welcome

    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    ways = len(_ways(world))
    body = {"name": f"长欢迎语 {uuid.uuid4().hex[:6]}", "staff_userids": ["zhangsan"]}
    long = "您好，欢迎来到示例科技！" * 125
    r = admin.post("/api/v1/channels", json={**body, "welcome_text": long}, headers=csrf)
    assert (
        r.status_code == 422
        and "欢迎语最多 4000 字节（约 1300 个汉字），现在 4500 字节" in r.json()["detail"]
    )
    assert len(_ways(world)) == ways  # nothing made in WeCom
    with pytest.raises(ValueError, match="4000 字节"):
        welcome.save_default(None, world.a.id, long, "王五", None)
    # a name that takes a text near the limit over it: the end is cut, not the whole refused
    filled = welcome.fill("好" * 1330 + "{name}", "王" * 20)
    assert len(filled.encode()) <= 4000 and filled.startswith("好" * 1330 + "王")
