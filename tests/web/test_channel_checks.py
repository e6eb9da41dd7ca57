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
