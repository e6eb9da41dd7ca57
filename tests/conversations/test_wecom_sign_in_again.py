"""A chat left open in WeCom's browser after the session ended: a tap or a reload opened the
password form, which a member who only ever signed in through WeCom cannot use. There, it now
signs in through WeCom again, for the company of the last WeCom sign-in, and opens the page."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import update

from siyu.db.base import utcnow
from siyu.db.crypto import SecretBox
from siyu.tenancy.models import WebSession
from siyu.web.auth import token_hash
from tests.support import TEST_SECRET_KEY
from tests.web.conftest import IN_WECOM

DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)


@contextmanager
def _opened_from_a_card(siyu, world, cid: int, agent: str = "zhangsan", user_agent: str = IN_WECOM):
    """A browser signed in to (emulated) WeCom as `agent` that opened a card's link to the chat."""
    with httpx.Client(follow_redirects=True, timeout=10, headers={"user-agent": user_agent}) as browser:
        link = f"{siyu}/auth/wecom/{world.a.slug}?next=/conversations/{cid}"
        corp_id = world.a.corp["corp_id"]
        r = browser.get(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/{agent}", params={"next": link})
        assert r.status_code == 200 and r.url.path == f"/conversations/{cid}", r.text
        yield browser


def _session_ends(db, world, browser: httpx.Client) -> None:
    with db.tenant_session(world.a.id) as s:
        hashed = token_hash(browser.cookies["siyu_session"])
        s.execute(
            update(WebSession)
            .where(WebSession.token_hash == hashed)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )


def test_a_chat_opened_in_wecom_after_the_session_ended_signs_in_through_wecom_again(
    siyu, world, db, new_waiting
):
    cid = new_waiting("zhangsan")
    with _opened_from_a_card(siyu, world, cid) as phone:
        _session_ends(db, world, phone)
        r = phone.get(f"{siyu}/conversations/{cid}")  # a reload
        hops = [str(h.headers["location"]) for h in r.history]
        assert r.status_code == 200 and r.url.path == f"/conversations/{cid}", (hops, r.text)
        assert hops[0] == f"/auth/wecom/{world.a.slug}?next=%2Fconversations%2F{cid}"
        assert "<h1>登录私域</h1>" not in r.text and "张三" in r.text
        assert phone.get(f"{siyu}/api/v1/me").json()["staff_userid"] == "zhangsan"
        phone.cookies.delete("siyu_session")  # signed out, the cookie gone (cleared, or a new one)
        r = phone.get(f"{siyu}/conversations/{cid}?view=all")
        assert r.status_code == 200, r.text
        assert str(r.url.copy_with(fragment=None)) == f"{siyu}/conversations/{cid}?view=all"
        assert phone.get(f"{siyu}/api/v1/me").json()["staff_userid"] == "zhangsan"


def test_a_form_sent_signed_out_in_wecom_is_not_replayed_and_says_so(siyu, world, db, new_waiting):
    cid = new_waiting("zhangsan")
    with _opened_from_a_card(siyu, world, cid) as phone:
        csrf = phone.get(f"{siyu}/api/v1/me").json()["csrf_token"]
        _session_ends(db, world, phone)
        r = phone.post(
            f"{siyu}/conversations/{cid}/dismiss",
            data={"csrf_token": csrf, "msgid": "m1"},
            headers={"referer": f"{siyu}/conversations/{cid}"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/login?"), r.headers
        assert "无需回复的标记没有保存" in phone.get(f"{siyu}{r.headers['location']}").text


def test_in_a_desktop_browser_a_page_opened_signed_out_is_still_the_password_form(
    siyu, world, db, new_waiting
):
    cid = new_waiting("zhangsan")
    with _opened_from_a_card(siyu, world, cid, user_agent=DESKTOP) as desktop:
        assert "siyu_wecom_tenant" in desktop.cookies  # the company is known, as in WeCom
        _session_ends(db, world, desktop)
        r = desktop.get(f"{siyu}/conversations/{cid}")
        assert r.url.path == "/login" and r.url.params["next"] == f"/conversations/{cid}"
        assert "<h1>登录私域</h1>" in r.text and desktop.get(f"{siyu}/api/v1/me").status_code == 401


def test_an_unknown_or_removed_company_falls_back_to_the_password_form(siyu, world, new_waiting):
    cid = new_waiting("zhangsan")
    box = SecretBox(TEST_SECRET_KEY)
    for remembered in (
        box.seal("987654321"),  # a company removed since
        world.a.slug,  # written by hand: not sealed by Siyu
        SecretBox("another key").seal(str(world.a.id)),
        "",
    ):
        with httpx.Client(follow_redirects=True, timeout=10, headers={"user-agent": IN_WECOM}) as phone:
            phone.cookies.set("siyu_wecom_tenant", remembered)
            r = phone.get(f"{siyu}/conversations/{cid}")
            assert r.url.path == "/login" and "<h1>登录私域</h1>" in r.text, remembered
            assert r.url.params["next"] == f"/conversations/{cid}"
            assert not any("/auth/wecom/" in h.headers["location"] for h in r.history), remembered


def test_a_member_wecom_refuses_ends_on_the_refusal_and_a_session_that_does_not_hold_on_the_form(
    siyu, world, db, new_waiting
):
    """No round and round: a member the company's sign-in refuses (left since) is told so; a
    browser that keeps no session goes through WeCom a few times, then to the password form."""
    cid = new_waiting("zhangsan")
    corp_id = world.a.corp["corp_id"]
    with _opened_from_a_card(siyu, world, cid) as phone:
        _session_ends(db, world, phone)
        phone.get(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/sunba")  # WeCom signed in as 孙八
        r = phone.get(f"{siyu}/conversations/{cid}")
        assert r.status_code == 403 and "已停用" in r.text, r.text[-800:]
        assert phone.get(f"{siyu}/api/v1/me").status_code == 401
    with _opened_from_a_card(siyu, world, cid) as phone:
        phone.follow_redirects = False
        url, rounds = f"{siyu}/conversations/{cid}", 0
        for _ in range(30):
            phone.cookies.delete("siyu_session")
            r = phone.get(url)
            if not r.is_redirect:
                break
            rounds += r.headers["location"].startswith("/auth/wecom/")
            url = httpx.URL(url).join(r.headers["location"]).copy_with(fragment=None)
        assert r.status_code == 200 and "<h1>登录私域</h1>" in r.text, url
        assert url.path == "/login" and url.params["next"] == f"/conversations/{cid}"
        assert 1 <= rounds <= 3


def _wecom_button(page: str) -> str | None:
    """The href of the login page's 用企业微信登录 button, None without one."""
    found = re.search(r'<a class="button" href="([^"]+)">用企业微信登录（([^）]*)）</a>', page)
    return html.unescape(found.group(1)) if found else None


def test_after_sign_out_in_wecom_the_login_page_offers_the_company_s_wecom_sign_in(siyu, world, new_waiting):
    """退出 in WeCom's browser lands on the password form, which a member with no password
    cannot use: it now offers WeCom's sign-in for the company, going on to the page asked for."""
    cid = new_waiting("zhangsan")
    with _opened_from_a_card(siyu, world, cid) as phone:
        csrf = phone.get(f"{siyu}/api/v1/me").json()["csrf_token"]
        r = phone.post(f"{siyu}/logout", data={"csrf_token": csrf})
        assert r.url.path == "/login" and phone.get(f"{siyu}/api/v1/me").status_code == 401
        r = phone.get(f"{siyu}/login", params={"next": f"/conversations/{cid}"})
        assert f"用企业微信登录（{world.a.corp['name']}）" in r.text and "<h1>登录私域</h1>" in r.text
        href = _wecom_button(r.text)
        assert href == f"/auth/wecom/{world.a.slug}?next=%2Fconversations%2F{cid}", href
        r = phone.get(f"{siyu}{href}")
        assert r.status_code == 200 and r.url.path == f"/conversations/{cid}", r.text[-800:]
        assert phone.get(f"{siyu}/api/v1/me").json()["staff_userid"] == "zhangsan"


def test_outside_wecom_the_button_is_wecom_s_qr_sign_in(siyu, world, new_waiting):
    cid = new_waiting("zhangsan")
    with _opened_from_a_card(siyu, world, cid, user_agent=DESKTOP) as desktop:
        desktop.cookies.delete("siyu_session")
        href = _wecom_button(desktop.get(f"{siyu}/login").text)
        assert href == f"/auth/wecom/{world.a.slug}?next=%2F&desktop=1", href
        r = desktop.get(f"{siyu}{href}", follow_redirects=False)
        assert urlsplit(r.headers["location"]).path == "/wwlogin/sso/login"
        r = desktop.get(f"{siyu}{href}")  # the QR scanned, as the emulator's WeCom user
        assert r.status_code == 200 and desktop.get(f"{siyu}/api/v1/me").json()["staff_userid"] == "zhangsan"


def test_without_a_company_remembered_the_login_page_has_no_wecom_button(siyu, world):
    box = SecretBox(TEST_SECRET_KEY)
    for remembered in (
        None,
        box.seal("987654321"),  # a company removed since
        world.a.slug,  # written by hand: not sealed by Siyu
        SecretBox("another key").seal(str(world.a.id)),
    ):
        with httpx.Client(follow_redirects=True, timeout=10, headers={"user-agent": IN_WECOM}) as phone:
            if remembered is not None:
                phone.cookies.set("siyu_wecom_tenant", remembered)
            r = phone.get(f"{siyu}/login", params={"next": "/customers"})
            assert r.status_code == 200 and "<h1>登录私域</h1>" in r.text, remembered
            assert "用企业微信登录" not in r.text and "/auth/wecom/" not in r.text, remembered


def test_after_sign_out_in_wecom_back_does_not_sign_the_member_in_again(siyu, world, db, new_waiting):
    """退出 on purpose stays signed out: Back, or a board that reloads itself, opens the password
    form (with WeCom's sign-in on it), not the customers; once signed in again, a session that
    ends signs in through WeCom as before."""
    cid = new_waiting("zhangsan")
    with _opened_from_a_card(siyu, world, cid) as phone:
        csrf = phone.get(f"{siyu}/api/v1/me").json()["csrf_token"]
        phone.post(f"{siyu}/logout", data={"csrf_token": csrf})
        r = phone.get(f"{siyu}/conversations/{cid}")  # Back
        assert r.url.path == "/login" and "<h1>登录私域</h1>" in r.text and "张三" not in r.text
        assert phone.get(f"{siyu}/api/v1/me").status_code == 401
        r = phone.get(f"{siyu}{_wecom_button(r.text)}")
        assert r.status_code == 200 and r.url.path == f"/conversations/{cid}", r.text[-800:]
        _session_ends(db, world, phone)
        r = phone.get(f"{siyu}/conversations/{cid}")
        assert r.status_code == 200 and r.url.path == f"/conversations/{cid}" and "张三" in r.text
