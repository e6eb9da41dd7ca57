"""What a demo's tester found refused or kept wrongly on channels: a refused form's welcome
image, names alike but for full-width or invisible characters, a disabled channel's QR code,
and a welcome link half filled in."""

from __future__ import annotations

import html
import re
import uuid

import httpx

from siyu.customers.models import Channel
from tests.web.test_channels import PNG

UPLOADIMG = "/cgi-bin/media/uploadimg"
HIDDEN_IMAGE = re.compile(r'<input type="hidden" name="welcome_image_url" value="([^"]+)"')


def _calls(world, path: str) -> int:
    calls = httpx.get(f"{world.emu_url}/_emulator/corps/{world.a.corp['corp_id']}/calls").json()
    return sum(1 for c in calls if c["path"] == path)


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

    # invisible characters at the edges are not kept; a name of nothing else is no name
    r = post(f"\u200b新渠道{tag}\u200d ")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == f"新渠道{tag}"
    for blank in ("\u200b", "\u200b \ufeff"):
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
