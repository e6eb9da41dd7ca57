"""The archive page's key pairs by version, as admins use them: a key that decrypts the archive
is kept (its private half the only copy), a stale page removes nothing but what it showed, a
double click stores one key, and a version typed wrong is told."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import pytest
from sqlalchemy import func, select

from siyu.conversations import service as conversation_service
from siyu.conversations import tasks
from siyu.conversations.models import ArchiveCursor, ArchiveKey, Message
from siyu.db.crypto import SecretBox
from siyu.runtime import Runtime
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Tenant
from siyu.wecom.archive import generate_key_pair
from tests.support import TEST_SECRET_KEY, new_tenant
from tests.web.conftest import PASSWORD, _make_tenant, login


@pytest.fixture
def mine(db, web_settings, emu_url, siyu):
    """A tenant of this test's own with its admin signed in."""
    rt = Runtime.create(web_settings, db)
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        t = _make_tenant(db, rt, emu, "arch")
    with db.tenant_session(t.id) as s:
        tenancy.add_person(s, f"admin-{t.slug}", "管理员", "admin", PASSWORD)
    client = login(siyu, f"admin-{t.slug}")
    client.t, client.rt, client.siyu = t, rt, siyu
    yield client
    client.close()


def test_a_version_of_many_digits_is_refused_not_a_500(mine):
    """A version number pasted wrong (a key's body, a long number): the page says the version
    must be a positive integer. A number of over 4300 digits raised in int() (Python's limit
    on converting such strings) and the admin got a 500."""
    c = mine
    r = c.post("/setup/archive/keys/generate", data={"csrf_token": c.csrf, "version": "1" * 5000})
    assert r.status_code == 422 and "版本号应为正整数" in r.text


def test_a_page_link_with_a_long_ver_still_shows_the_page(mine):
    c = mine
    r = c.get("/setup/archive?done=generated&ver=" + "7" * 5000)
    assert r.status_code == 200


def _setup_archive(c, emu: httpx.Client, version: int) -> str:
    """As the README's checklist: HTTP mode with the 会话存档 Secret, a key pair generated
    here, its public key pasted into WeCom's console under the same version."""
    corp = c.t.corp
    r = c.post(
        "/setup/archive", data={"csrf_token": c.csrf, "mode": "http", "secret": corp["archive_secret"]}
    )
    assert r.status_code == 303, r.text[:300]
    r = c.post("/setup/archive/keys/generate", data={"csrf_token": c.csrf, "version": str(version)})
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    public_pem = page.split(f'id="public-pem-{version}">', 1)[1].split("</pre>", 1)[0]
    public_pem = public_pem.replace("&#43;", "+").replace("&#x2B;", "+")
    r = emu.post(
        f"/_emulator/corps/{corp['corp_id']}/archive/keys",
        json={"publickey_ver": version, "public_key_pem": public_pem},
    )
    assert r.status_code < 300, r.text
    return public_pem


def _archive_with_key(
    c, emu: httpx.Client, corp: dict, version: int, public_pem: str, private_pem: str
) -> dict:
    """HTTP mode with the 会话存档 Secret, `public_pem` put into WeCom's console under `version`
    and `private_pem` (its pair, or a wrong one) uploaded under it; the upload form's fields."""
    r = c.post(
        "/setup/archive", data={"csrf_token": c.csrf, "mode": "http", "secret": corp["archive_secret"]}
    )
    assert r.status_code == 303
    emu.post(
        f"/_emulator/corps/{corp['corp_id']}/archive/keys",
        json={"publickey_ver": version, "public_key_pem": public_pem},
    )
    up = {"csrf_token": c.csrf, "version": str(version)}
    assert c.post("/setup/archive/keys/upload", data={**up, "private_pem": private_pem}).status_code == 303
    return up


def _say(emu, corp, sender, to, text):
    body = {"from": sender, "tolist": [to], "msgtype": "text", "text": {"content": text}}
    r = emu.post(f"/_emulator/corps/{corp['corp_id']}/archive/messages", json=body)
    assert r.status_code < 300, r.text


def test_removing_the_key_that_decrypts_the_archive_is_refused(mine, db, emu_url):
    """The README offers 删除 for a key uploaded wrong (every message of its version fails).
    On a key generated in Siyu that works, the same button destroys the only copy of the
    private key (Siyu never shows it): the confirm says messages resume once the right key is
    added back, which cannot be done, and every later message of that version is lost."""
    c = mine
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        _setup_archive(c, emu, 1)
        _say(emu, c.t.corp, "wmCustomer1", "zhangsan", "你好，在吗？")
        asyncio.run(tasks.pull_once(c.rt, c.t.id))
        with db.tenant_session(c.t.id) as s:
            assert s.scalar(select(func.count()).select_from(Message)) == 1  # the key works
        page = c.get("/setup/archive").text
        assert "已用于解密消息" in page and 'action="/setup/archive/keys/1/remove"' not in page
        r = c.post("/setup/archive/keys/1/remove", data={"csrf_token": c.csrf})
        assert r.status_code == 409 and "已解密过消息" in r.text
        # a key that has decrypted this tenant's messages is the right one: kept
        with db.tenant_session(c.t.id) as s:
            kept = s.scalar(select(ArchiveKey).where(ArchiveKey.version == 1))
        _say(emu, c.t.corp, "wmCustomer1", "zhangsan", "还有现货吗？")
        asyncio.run(tasks.pull_once(c.rt, c.t.id))
        with db.tenant_session(c.t.id) as s:
            texts = s.scalars(select(Message.text).order_by(Message.id)).all()
            error = s.scalar(select(ArchiveCursor.last_error))
    assert kept is not None, (r.status_code, r.headers.get("location"))
    assert texts == ["你好，在吗？", "还有现货吗？"], error


def _pem_pair():
    from siyu.wecom.archive import generate_key_pair

    return generate_key_pair()


def test_a_wrong_key_replaced_under_its_version_lets_the_pull_go_on(mine, db, emu_url):
    """The README's own flow: a key uploaded wrong, every message of its version fails; the
    admin removes it and uploads the right one under the same version; the pull goes on from
    the message it stopped at, and the page no longer shows the error."""
    c = mine
    corp = c.t.corp
    right_private, right_public = _pem_pair()
    wrong_private, _ = _pem_pair()
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        up = _archive_with_key(c, emu, corp, 3, right_public, wrong_private)
        _say(emu, corp, "wmCust9", "zhangsan", "第一条")
        with pytest.raises(Exception, match="10002|decrypt"):
            asyncio.run(tasks.pull_once(c.rt, c.t.id))
        assert c.post("/setup/archive/keys/3/remove", data={"csrf_token": c.csrf}).status_code == 303
        assert (
            c.post("/setup/archive/keys/upload", data={**up, "private_pem": right_private}).status_code == 303
        )
        _say(emu, corp, "wmCust9", "zhangsan", "第二条")
        asyncio.run(tasks.pull_once(c.rt, c.t.id))
        with db.tenant_session(c.t.id) as s:
            texts = s.scalars(select(Message.text).order_by(Message.id)).all()
            error = s.scalar(select(ArchiveCursor.last_error))
        page = c.get("/setup/archive").text
    assert texts == ["第一条", "第二条"]
    assert error == "" and 'id="archive-skip"' not in page


def test_a_remove_button_drawn_before_the_key_was_replaced_does_not_remove_the_new_key(mine, db):
    """Two admins see version 3's wrong key. One removes it and uploads the right one; the
    other, on the page drawn before, clicks 删除 beside the wrong key (its fingerprint on
    that page). The form names only the version, so the right key went instead (the SLA
    policy and channel forms refuse such a stale form)."""
    c = mine
    right_private, right_public = _pem_pair()
    wrong_private, _ = _pem_pair()
    with db.tenant_session(c.t.id) as s:
        tenancy.add_person(s, f"admin2-{c.t.slug}", "管理员乙", "admin", PASSWORD)
    up = {"csrf_token": c.csrf, "version": "3"}
    assert c.post("/setup/archive/keys/upload", data={**up, "private_pem": wrong_private}).status_code == 303
    other = login(c.siyu, f"admin2-{c.t.slug}")
    try:
        stale = other.get("/setup/archive").text  # 乙's page: version 3, the wrong key
        form = stale.split('action="/setup/archive/keys/3/remove"', 1)[1].split("</form>", 1)[0]
        fields = dict(re_fields(form))
        # 甲 replaces it meanwhile
        assert c.post("/setup/archive/keys/3/remove", data={"csrf_token": c.csrf}).status_code == 303
        assert (
            c.post("/setup/archive/keys/upload", data={**up, "private_pem": right_private}).status_code == 303
        )
        r = other.post("/setup/archive/keys/3/remove", data=fields)
        assert r.status_code == 409 and "已换过" in r.text
    finally:
        other.close()
    with db.tenant_session(c.t.id) as s:
        kept = s.scalar(select(ArchiveKey).where(ArchiveKey.version == 3))
    assert kept is not None and kept.public_pem.strip() == right_public.strip(), (
        r.status_code,
        r.headers.get("location"),
    )


def re_fields(form_html: str):
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form_html)


def test_generate_sent_twice_at_once_is_no_500_and_leaves_one_key(mine, db):
    c = mine
    clients = [login(c.siyu, f"admin-{c.t.slug}") for _ in range(2)]
    barrier = threading.Barrier(len(clients))
    results: list = []

    def click(me):
        barrier.wait()
        try:
            r = me.post("/setup/archive/keys/generate", data={"csrf_token": me.csrf, "version": "5"})
            results.append(r.status_code)
        except Exception as exc:  # noqa: BLE001
            results.append(repr(exc))

    threads = [threading.Thread(target=click, args=(me,)) for me in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for me in clients:
        me.close()
    assert all(r in (303, 422) for r in results), results
    with db.tenant_session(c.t.id) as s:
        assert s.scalar(select(func.count()).select_from(ArchiveKey)) == 1


def test_a_key_added_in_a_transaction_that_fails_is_not_kept(db):
    """(A savepoint on SQLite had committed it before the caller's transaction ended.)"""
    tid = new_tenant(db)
    private_pem, public_pem = generate_key_pair()
    with pytest.raises(RuntimeError), db.tenant_session(tid) as s:
        conversation_service.add_archive_key(s, SecretBox(TEST_SECRET_KEY), 1, private_pem, public_pem)
        raise RuntimeError("a later step of the same transaction fails")
    with db.tenant_session(tid) as s:
        kept = s.scalars(select(ArchiveKey.version)).all()
    assert kept == [], (
        f"rolled back, yet the key of version(s) {kept} was committed ({db.engine.dialect.name})"
    )


class _AdminActsMeanwhile:
    """The pull's source: after it has decrypted a batch, and before the pull stores it, the
    admin replaces the version's key on the archive page."""

    def __init__(self, inner, act):
        self.inner, self.act, self.done = inner, act, False

    async def fetch(self, after_seq, limit=1000):
        got = await self.inner.fetch(after_seq, limit)
        if got and not self.done:
            self.done = True
            await asyncio.to_thread(self.act)
        return got

    async def aclose(self):
        await self.inner.aclose()


def test_a_wrong_key_put_in_during_a_pull_is_not_marked_used(mine, db, emu_url):
    """A pull loads the keys as it starts; meanwhile the admin swaps the version's (unused) key
    for another, a wrong one. Marked used by its version, the wrong key could not be removed
    (409), every later message of the version failing: the key that decrypted is marked."""
    c = mine
    rt, t, corp = c.rt, c.t, c.t.corp
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        right_private, right_public = generate_key_pair()
        wrong_private, _ = generate_key_pair()
        up = _archive_with_key(c, emu, corp, 1, right_public, right_private)
        body = {"from": "wmRace1", "tolist": ["zhangsan"], "msgtype": "text", "text": {"content": "你好"}}
        assert emu.post(f"/_emulator/corps/{corp['corp_id']}/archive/messages", json=body).status_code < 300

        def replace_key():  # the admin, unsure of the key, swaps in another (the wrong one)
            assert c.post("/setup/archive/keys/1/remove", data={"csrf_token": c.csrf}).status_code == 303
            r = c.post("/setup/archive/keys/upload", data={**up, "private_pem": wrong_private})
            assert r.status_code == 303

        with db.tenant_session(t.id) as s:
            tenant = s.get(Tenant, t.id)
            source = tasks.source_for(rt, tenant)
        racing = _AdminActsMeanwhile(source, replace_key)

        async def pull_then_close():
            try:
                await tasks.pull(rt, t.id, source=racing)
            finally:
                await racing.aclose()
                await rt.clients.aclose()

        asyncio.run(pull_then_close())

        with db.tenant_session(t.id) as s:
            key = s.scalar(select(ArchiveKey).where(ArchiveKey.version == 1))
            kept_pem, used_at = key.public_pem, key.used_at
        assert kept_pem.strip() != right_public.strip()  # the wrong key is the one kept now
        # it never decrypted anything, so the README's remedy must still work
        r = c.post("/setup/archive/keys/1/remove", data={"csrf_token": c.csrf})
    assert used_at is None and r.status_code == 303, (used_at, r.status_code)
