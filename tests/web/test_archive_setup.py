"""The archive setup page (/setup/archive): mode and Secret (checked with WeCom, masked
after saving, blank keeps it), key pairs (generated here with the public PEM shown and the
private key sealed at rest, or uploaded and refused unless an RSA private key), and the
live permit / agreement lists from the emulator, with a readable error when WeCom refuses."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select, text

from siyu.conversations.models import ArchiveKey
from siyu.customers import service as customers
from siyu.customers.models import Customer
from siyu.db.crypto import SecretBox
from siyu.runtime import Runtime
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Tenant
from tests.web.conftest import DEPARTMENTS, PASSWORD, _contact, _make_tenant, login


@pytest.fixture
def box(web_settings) -> SecretBox:
    return SecretBox(web_settings.encryption_key())


def _pem(key, fmt) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def test_archive_page_is_for_admins_and_linked_from_setup(as_role):
    admin = as_role("admin")
    page = admin.get("/setup/archive")
    assert page.status_code == 200 and "会话存档" in page.text and "还没有密钥" in page.text
    assert 'href="/setup/archive"' in admin.get("/setup").text
    for role in ("supervisor", "agent"):
        c = as_role(role)
        assert c.get("/setup/archive").status_code == 403
        r = c.post("/setup/archive/keys/generate", data={"csrf_token": c.csrf, "version": "9"})
        assert r.status_code == 403


def test_generate_a_key_pair_shows_the_public_key_and_seals_the_private_one(as_role, world, db, box):
    admin = as_role("admin", "b")
    assert admin.post("/setup/archive/keys/generate", data={"version": "1"}).status_code == 403  # CSRF
    r = admin.post("/setup/archive/keys/generate", data={"csrf_token": admin.csrf, "version": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith("/setup/archive?done=generated&ver=1")
    page = admin.get(r.headers["location"])
    assert "BEGIN RSA PUBLIC KEY" in page.text and 'id="public-pem-1"' in page.text
    with db.tenant_session(world.b.id) as s:
        key = s.scalar(select(ArchiveKey).where(ArchiveKey.version == 1))
        public_pem, sealed = key.public_pem, key.private_sealed
        raw = s.execute(
            text("SELECT private_sealed FROM archive_keys WHERE id = :id"), {"id": key.id}
        ).scalar()
    assert public_pem.strip() in page.text
    assert "PRIVATE KEY" not in raw and "PRIVATE KEY" not in sealed
    private_pem = box.open(sealed)
    assert private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    body_line = private_pem.splitlines()[1]
    assert body_line not in page.text
    loaded = serialization.load_pem_private_key(private_pem.encode(), None)
    assert (
        loaded.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
        == public_pem
    )
    # The same version twice: refused, the key kept.
    again = admin.post("/setup/archive/keys/generate", data={"csrf_token": admin.csrf, "version": "1"})
    assert again.status_code == 422 and "版本 1 已有密钥" in again.text
    for written in ("abc", "٣", "1_0", "+3"):  # WeCom's admin page shows 1, 2, 3...
        bad = admin.post("/setup/archive/keys/generate", data={"csrf_token": admin.csrf, "version": written})
        assert bad.status_code == 422 and "版本号" in bad.text, written
        # beside the keys' forms, the version as typed
        assert 'id="keys-error"' in bad.text and f'value="{written}"' in bad.text
    # a full-width 2, as a Chinese IME types it, is 2; a superscript or circled one is no version
    for written in ("²", "⑦"):
        bad = admin.post("/setup/archive/keys/generate", data={"csrf_token": admin.csrf, "version": written})
        assert bad.status_code == 422, written
    r = admin.post("/setup/archive/keys/generate", data={"csrf_token": admin.csrf, "version": "２"})
    assert r.status_code == 303 and "ver=2" in r.headers["location"]


@pytest.mark.parametrize(
    "pem",
    [
        "hello, not a key",
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
        _pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8),
    ],
    ids=["text", "broken", "ec"],
)
def test_uploading_what_is_not_an_rsa_private_key_is_refused(as_role, pem, world, db):
    admin = as_role("admin", "b")
    r = admin.post(
        "/setup/archive/keys/upload", data={"csrf_token": admin.csrf, "version": "50", "private_pem": pem}
    )
    assert r.status_code == 422 and "不是 RSA 私钥" in r.text
    with db.tenant_session(world.b.id) as s:
        assert s.scalar(select(ArchiveKey).where(ArchiveKey.version == 50)) is None


def _rsa(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _pem(key, serialization.PrivateFormat.TraditionalOpenSSL)


def _public() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()


def _with_passphrase(fmt) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(b"secret")
    ).decode()


@pytest.mark.parametrize(
    ("pem", "says"),
    [
        (lambda: _rsa(1024), "2048 位"),  # what WeCom's admin console takes
        (lambda: _rsa(2048) + _rsa(2048), "一次只能上传一把私钥"),
        (_public, "这是公钥"),
        # BEGIN RSA PRIVATE KEY, as asked for: "not an RSA private key" had been the answer
        (lambda: _with_passphrase(serialization.PrivateFormat.TraditionalOpenSSL), "私钥有密码保护"),
        (lambda: _with_passphrase(serialization.PrivateFormat.PKCS8), "私钥有密码保护"),
    ],
    ids=["1024-bit", "two keys", "public", "passphrase PKCS#1", "passphrase PKCS#8"],
)
def test_an_rsa_key_wecom_would_not_take_is_refused(as_role, pem, says, world, db):
    admin = as_role("admin", "b")
    r = admin.post(
        "/setup/archive/keys/upload", data={"csrf_token": admin.csrf, "version": "51", "private_pem": pem()}
    )
    assert r.status_code == 422 and says in r.text
    with db.tenant_session(world.b.id) as s:
        assert s.scalar(select(ArchiveKey).where(ArchiveKey.version == 51)) is None


def test_a_private_key_pasted_after_its_public_key_is_taken_alone(as_role, world, db, box):
    """What a key tool shows, the public key and then the private one, had been refused as
    two private keys."""
    admin = as_role("admin", "b")
    private = _rsa(2048)
    r = admin.post(
        "/setup/archive/keys/upload",
        data={"csrf_token": admin.csrf, "version": "52", "private_pem": _public() + private},
    )
    assert r.status_code == 303, r.text
    with db.tenant_session(world.b.id) as s:
        stored = s.scalar(select(ArchiveKey).where(ArchiveKey.version == 52))
        assert box.open(stored.private_sealed).strip() == private.strip()


def test_uploading_an_rsa_private_key_as_a_file(as_role, world, db, box):
    admin = as_role("admin", "b")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _pem(key, serialization.PrivateFormat.PKCS8)
    r = admin.post(
        "/setup/archive/keys/upload",
        data={"csrf_token": admin.csrf, "version": "7"},
        files={"private_file": ("archive.pem", pem.encode(), "application/x-pem-file")},
    )
    assert r.status_code == 303, r.text
    page = admin.get(r.headers["location"])
    assert "私钥已保存" in page.text and 'id="public-pem-7"' in page.text
    with db.tenant_session(world.b.id) as s:
        stored = s.scalar(select(ArchiveKey).where(ArchiveKey.version == 7))
        assert box.open(stored.private_sealed).strip() == pem.strip()
        assert "PRIVATE" not in stored.private_sealed
    assert (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
        .splitlines()[1]
        in page.text
    )


def test_mode_and_secret_saved_masked_and_permit_and_agreement_lists(as_role, world, db, box, emu_url):
    admin = as_role("admin")
    corp = world.a.corp
    secret = corp["archive_secret"]
    # Off: nothing is asked of WeCom.
    assert "开启会话存档并保存 Secret 后" in admin.get("/setup/archive").text
    # A wrong Secret is refused with WeCom's reason; nothing is stored.
    r = admin.post(
        "/setup/archive", data={"csrf_token": admin.csrf, "mode": "http", "secret": "wrong-secret"}
    )
    assert r.status_code == 422 and "会话存档 Secret 未通过企业微信检查" in r.text
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "http"})
    assert r.status_code == 422 and "请填写会话存档 Secret" in r.text
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "sdk", "secret": secret})
    assert r.status_code == 422 and "SDK 方式需要填写 libWeWorkFinanceSdk_C.so 的路径 / the path" in r.text
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "bogus"})
    assert r.status_code == 422
    with db.tenant_session(world.a.id) as s:
        assert s.get(Tenant, world.a.id).archive_secret_sealed == ""
    # The right one: stored sealed, shown masked.
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "http", "secret": secret})
    assert r.status_code == 303 and r.headers["location"] == "/setup/archive?done=saved"
    with db.tenant_session(world.a.id) as s:
        tenant = s.get(Tenant, world.a.id)
        assert tenant.archive_mode == "http" and secret not in tenant.archive_secret_sealed
        assert box.open(tenant.archive_secret_sealed) == secret
        assert tenancy.archive_callback_pair(tenant, box)  # turning archiving on made its callback pair
        ext = dict(s.execute(select(Customer.name, Customer.external_userid)).all())

    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        assert (
            emu.put(
                f"/_emulator/corps/{corp['corp_id']}/archive/permit", json={"userids": ["zhangsan", "lisi"]}
            ).status_code
            == 200
        )
        r = emu.post(
            f"/_emulator/corps/{corp['corp_id']}/archive/agree",
            json={"userid": "zhangsan", "external_userid": ext["王女士"], "agree": False},
        )
        assert r.status_code in (200, 201), r.text
        emu.post(
            f"/_emulator/corps/{corp['corp_id']}/archive/agree",
            json={"userid": "lisi", "external_userid": ext["陈先生"], "agree": True},
        )
    page = admin.get("/setup/archive?done=saved")
    assert page.status_code == 200
    assert secret not in page.text and secret[:3] + "••••" in page.text
    assert "会话存档设置已保存" in page.text
    permit = page.text.split('id="permit-users"', 1)[1].split("</p>", 1)[0]
    assert "张三" in permit and "李四" in permit and "赵六" not in permit
    assert "赵六" in page.text.split('id="not-permitted"', 1)[1].split("</p>", 1)[0]
    disagree = page.text.split('id="disagree"', 1)[1].split("</ul>", 1)[0]
    assert "王女士" in disagree and "张三" in disagree and "未同意存档" in disagree
    assert "陈先生" not in disagree and "刘总" not in disagree  # 刘总's 赵六 is not archived at all
    assert f'href="/customers/{world.a.customers["王女士"]}"' in disagree

    # Blank Secret keeps the stored one.
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "http", "secret": ""})
    assert r.status_code == 303
    with db.tenant_session(world.a.id) as s:
        assert box.open(s.get(Tenant, world.a.id).archive_secret_sealed) == secret

    # WeCom refuses (a Secret that no longer works): a readable message, not a 500.
    with db.tenant_session(world.a.id) as s:
        tenancy.save_archive_settings(s, box, s.get(Tenant, world.a.id), "http", "no-longer-valid-secret")
    page = admin.get("/setup/archive")
    assert (
        page.status_code == 200
        and 'id="live-error"' in page.text
        and "无法从企业微信读取存档范围" in page.text
    )

    # Put the world back: archiving off, the emulator archives everyone.
    with db.tenant_session(world.a.id) as s:
        tenant = s.get(Tenant, world.a.id)
        tenant.archive_mode, tenant.archive_secret_sealed = "off", ""
        tenant.archive_callback_token_sealed = tenant.archive_encoding_aes_key_sealed = ""
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        emu.put(f"/_emulator/corps/{corp['corp_id']}/archive/permit", json={"userids": None})


def test_archive_callback_url_token_and_key_generated_entered_and_shown(
    as_role, world, db, box, web_settings
):
    """The 会话存档 app's own callback: its URL, a Token shown in full and an EncodingAESKey
    shown masked (in full once after generating, or on request), sealed at rest; generated
    by Siyu or entered by the admin; refused unless WeCom would take it."""
    admin = as_role("admin", "b")
    page = admin.get("/setup/archive")
    url = f"{web_settings.public_url}/wecom/callback/{world.b.slug}/archive"
    assert url in page.text and 'id="archive-callback-unset"' in page.text
    for role in ("supervisor", "agent"):
        c = as_role(role)
        assert c.post("/setup/archive/callback/generate", data={"csrf_token": c.csrf}).status_code == 403
    assert admin.post("/setup/archive/callback/generate", data={}).status_code == 403  # CSRF

    r = admin.post("/setup/archive/callback/generate", data={"csrf_token": admin.csrf})
    assert r.status_code == 200 and 'id="callback-generated"' in r.text
    assert "no-store" in r.headers["cache-control"]  # the key in full: for no cache
    with db.tenant_session(world.b.id) as s:
        token, key = tenancy.archive_callback_pair(s.get(Tenant, world.b.id), box)
        raw = s.execute(text("SELECT * FROM tenants WHERE id = :id"), {"id": world.b.id}).mappings().one()
    assert len(token) == 32 and len(key) == 43
    assert token not in str(dict(raw)) and key not in str(dict(raw))
    assert token in r.text and key in r.text  # shown in full right after generating
    page = admin.get("/setup/archive")
    assert token in page.text and key not in page.text and key[:3] + "••••" in page.text
    shown = admin.post("/setup/archive/callback/reveal", data={"csrf_token": admin.csrf})
    assert shown.status_code == 200 and key in shown.text

    # Entered by the admin (e.g. 随机获取 in WeCom's console); a wrong one is refused, kept.
    bad = admin.post(
        "/setup/archive/callback",
        data={"csrf_token": admin.csrf, "token": "ok1", "encoding_aes_key": "short"},
    )
    assert (
        bad.status_code == 422 and "EncodingAESKey 应为 43 位字母或数字 / EncodingAESKey must be" in bad.text
    )
    # the error beside that form, and what was typed still in it (a 43-character key to re-paste)
    assert 'id="callback-error"' in bad.text and 'id="archive-error"' not in bad.text
    assert 'name="token" autocomplete="off" maxlength="32" value="ok1"' in bad.text
    assert 'maxlength="43" value="short"' in bad.text
    half = admin.post("/setup/archive/callback", data={"csrf_token": admin.csrf, "token": "ok1"})
    assert half.status_code == 422 and 'value="ok1"' in half.text
    # making a new pair while one is in use asks first: the old one stops working at once
    assert (
        "data-confirm="
        in admin.get("/setup/archive").text.split('action="/setup/archive/callback/generate"')[1][:200]
    )
    new_key = "B" * 43
    r = admin.post(
        "/setup/archive/callback",
        data={"csrf_token": admin.csrf, "token": "MyArchiveToken", "encoding_aes_key": new_key},
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/setup/archive?done=callback")
    page = admin.get(r.headers["location"])
    assert "MyArchiveToken" in page.text and new_key not in page.text
    with db.tenant_session(world.b.id) as s:
        tenant = s.get(Tenant, world.b.id)
        assert tenancy.archive_callback_pair(tenant, box) == ("MyArchiveToken", new_key)
        tenant.archive_callback_token_sealed = tenant.archive_encoding_aes_key_sealed = ""  # put back


def test_the_archive_state_shows_batches_waiting_to_be_indexed_for_search(as_role, world, db):
    """On PostgreSQL search tokens are indexed from a queue by the puller's second
    connection; a batch queued for long means indexing keeps failing, and the admin sees it."""
    from datetime import timedelta

    from siyu.conversations.models import ArchiveCursor
    from siyu.conversations.search import SearchBacklog
    from siyu.db.base import utcnow

    admin = as_role("admin")
    forget = text("DELETE FROM search_backlog WHERE tenant_id = :t")
    with db.tenant_session(world.a.id) as s:
        created = s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive")) is None
        if created:
            s.add(ArchiveCursor(source="archive", seq=0))
        s.execute(forget, {"t": world.a.id})  # batches other tests stored without an indexer running
        s.add(SearchBacklog(entries="[]", created_at=utcnow() - timedelta(minutes=10)))
    try:
        state = admin.get("/setup/archive").text
        assert "1 批消息待建索引" in state and "建索引一直失败" in state
        with db.tenant_session(world.a.id) as s:
            s.execute(forget, {"t": world.a.id})
        assert "已是最新" in admin.get("/setup/archive").text
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(forget, {"t": world.a.id})
            if created:
                s.execute(text("DELETE FROM archive_cursors WHERE tenant_id = :t"), {"t": world.a.id})


def test_the_last_pull_error_says_when_in_the_tenants_time(as_role, world, db):
    """The worker stamps the error in UTC; the page shows it in the corp's time, like the
    last pull that worked beside it."""
    from siyu.conversations.models import ArchiveCursor

    admin = as_role("admin")
    with db.tenant_session(world.a.id) as s:
        cursor = s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive"))
        created = cursor is None
        if created:
            cursor = ArchiveCursor(source="archive", seq=0)
            s.add(cursor)
        kept = cursor.last_error
        cursor.last_error = "2026-12-05 02:30:07 UTC · ConnectionError: archive unreachable"
    try:
        error = admin.get("/setup/archive").text
        assert "2026-12-05 10:30:07 · ConnectionError: archive unreachable" in error  # Asia/Shanghai
        assert "UTC" not in error.split('id="archive-error"')[1].split("</dd>")[0]
        assert 'id="archive-skip"' not in error
        with db.tenant_session(world.a.id) as s:  # a message that cannot be decrypted
            stuck = "2026-12-05 02:30:07 UTC · ArchiveError: 10006 解密失败 [seq 41, msgid m41]"
            s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive")).last_error = stuck
        page = admin.get("/setup/archive").text
        assert f"siyu archive skip --tenant {world.a.slug} --seq 41" in page
    finally:
        with db.tenant_session(world.a.id) as s:
            if created:
                s.execute(text("DELETE FROM archive_cursors WHERE tenant_id = :t"), {"t": world.a.id})
            else:
                s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive")).last_error = kept


def test_the_stored_secret_is_checked_when_archiving_is_switched_on(as_role, world, db, box):
    admin = as_role("admin", "b")
    with db.tenant_session(world.b.id) as s:  # stored unchecked before this rule (mode off)
        tenant = s.get(Tenant, world.b.id)
        tenant.archive_mode, tenant.archive_secret_sealed = "off", box.seal("never-checked")
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "http"})
    assert r.status_code == 422 and "已保存的会话存档 Secret 未通过企业微信检查" in r.text
    # a new one is checked even while archiving stays off
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "off", "secret": "also-wrong"})
    assert r.status_code == 422 and "会话存档 Secret 未通过企业微信检查" in r.text
    with db.tenant_session(world.b.id) as s:
        tenant = s.get(Tenant, world.b.id)
        assert tenant.archive_mode == "off" and box.open(tenant.archive_secret_sealed) == "never-checked"
        tenant.archive_secret_sealed = ""


def test_an_overlong_secret_or_sdk_path_is_refused_clearly(as_role, world, db):
    admin = as_role("admin", "b")
    r = admin.post("/setup/archive", data={"csrf_token": admin.csrf, "mode": "off", "secret": "s" * 600})
    assert r.status_code == 422 and "Secret 太长" in r.text
    r = admin.post(
        "/setup/archive", data={"csrf_token": admin.csrf, "mode": "sdk", "sdk_path": "/opt/" + "p" * 600}
    )
    assert r.status_code == 422 and "SDK 路径最多 400 个字符" in r.text
    with db.tenant_session(world.b.id) as s:
        assert s.get(Tenant, world.b.id).archive_sdk_path == ""


def test_the_sdk_path_must_name_the_sdk_and_tells_nothing_of_other_files(as_role, world, db, tmp_path):
    """Loading a library runs its code in Siyu's process: a tenant's admin may point Siyu at
    WeCom's finance SDK only, and may not learn which other files the server holds."""
    admin = as_role("admin", "b")
    there = tmp_path / "libssl.so"
    there.write_bytes(b"\x7fELF")
    for path in (str(there), str(tmp_path / "missing.so"), "/etc/passwd", str(tmp_path) + "/"):
        r = admin.post(
            "/setup/archive", data={"csrf_token": admin.csrf, "mode": "sdk", "secret": "s", "sdk_path": path}
        )
        assert r.status_code == 422 and "只能填写 libWeWorkFinanceSdk_C.so 的路径" in r.text
        assert "没有" not in r.text.split("只能填写")[1].split("</")[0]  # the same answer either way
    with db.tenant_session(world.b.id) as s:
        assert s.get(Tenant, world.b.id).archive_sdk_path == ""


def test_the_archive_secret_is_saved_while_wecom_limits_the_call_that_checks_it(
    siyu, db, web_settings, emu_url
):
    """The permit list tells the 会话存档 Secret from another app's; WeCom limiting that call
    says nothing of the Secret, and a right one was refused as 未通过企业微信检查."""
    path = "/cgi-bin/msgaudit/get_permit_user_list"
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        tenant = _make_tenant(db, Runtime.create(web_settings, db), emu, "ding")
        fault = {"corp_id": tenant.corp["corp_id"], "path": path, "errcode": 45009, "times": 1000}
        assert emu.post("/_emulator/faults", json=fault).status_code < 300
        with db.tenant_session(tenant.id) as s:
            tenancy.add_person(s, f"admin-{tenant.slug}", "丁管理员", "admin", PASSWORD)
        admin = login(siyu, f"admin-{tenant.slug}")
        try:
            secret = tenant.corp["archive_secret"]
            r = admin.post(
                "/setup/archive", data={"csrf_token": admin.csrf, "mode": "http", "secret": secret}
            )
            assert (r.status_code, r.headers.get("location")) == (303, "/setup/archive?done=saved"), r.text[
                :300
            ]
        finally:
            admin.close()
            emu.delete("/_emulator/faults")


def test_the_sdk_path_must_be_a_full_one_where_this_server_loads_it(world, db, box):
    """A bare name passed the check for a file (looked for in Siyu's working folder), and the
    worker in this server then failed every pull: the loader looks for one in the system's
    library folders. (Workers on other machines may load it so: there a bare name is taken.)"""
    path = "libWeWorkFinanceSdk_C.so"
    with db.tenant_session(world.b.id) as s:
        tenant = s.get(Tenant, world.b.id)
        with pytest.raises(ValueError, match="请填写 SDK 的完整路径"):
            tenancy.save_archive_settings(s, box, tenant, "sdk", "secret", path, check_file=True)
        tenancy.save_archive_settings(s, box, tenant, "sdk", "secret", path, check_file=False)
        assert tenant.archive_sdk_path == path
        tenant.archive_mode, tenant.archive_sdk_path, tenant.archive_secret_sealed = "off", "", ""
        tenant.archive_callback_token_sealed = tenant.archive_encoding_aes_key_sealed = ""


def test_only_the_key_itself_is_kept_of_what_was_pasted(as_role, world, db, box):
    admin = as_role("admin", "b")
    key = _pem(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), serialization.PrivateFormat.PKCS8
    )
    r = admin.post(
        "/setup/archive/keys/upload",
        data={"csrf_token": admin.csrf, "version": "61", "private_pem": "my key:\n" + key + "\n-- ops"},
    )
    assert r.status_code == 303, r.text
    with db.tenant_session(world.b.id) as s:
        stored = s.scalar(select(ArchiveKey).where(ArchiveKey.version == 61))
        assert box.open(stored.private_sealed) == key.strip() + "\n"


def test_a_refused_upload_keeps_the_version_and_the_pasted_key(as_role):
    admin = as_role("admin", "b")
    pem = _rsa(1024)
    r = admin.post(
        "/setup/archive/keys/upload", data={"csrf_token": admin.csrf, "version": "71", "private_pem": pem}
    )
    assert r.status_code == 422 and "2048 位" in r.text and 'id="keys-error"' in r.text
    assert 'value="71"' in r.text and pem.strip().splitlines()[1] in r.text
    assert "no-store" in r.headers["cache-control"]  # a private key in the page: never cached


def test_a_wrong_archive_secret_points_to_the_archive_page_of_the_console(as_role):
    admin = as_role("admin")
    r = admin.post(
        "/setup/archive", data={"csrf_token": admin.csrf, "mode": "http", "secret": "wrong-secret"}
    )
    assert r.status_code == 422 and "「管理工具 → 会话内容存档」重新复制" in r.text
    assert "应用管理 → the app → Secret" not in r.text


@pytest.mark.parametrize("which", ["contact_secret", "agent_secret"])
def test_another_apps_secret_pasted_as_the_archive_secret_is_refused(as_role, world, db, which):
    """The mistake the refusal above warns of, made with a Secret of the same corp: WeCom gives
    a token for any of them, so that check passed, the page said 会话存档设置已保存, and WeCom
    refused every pull (48002)."""
    admin = as_role("admin", "b")
    try:
        r = admin.post(
            "/setup/archive", data={"csrf_token": admin.csrf, "mode": "http", "secret": world.b.corp[which]}
        )
        assert r.status_code == 422, (r.status_code, r.headers.get("location"))
        assert "这不是会话存档的 Secret" in r.text and "「管理工具 → 会话内容存档」" in r.text
        with db.tenant_session(world.b.id) as s:
            tenant = s.get(Tenant, world.b.id)
            assert (tenant.archive_mode, tenant.archive_secret_sealed) == ("off", "")
    finally:
        with db.tenant_session(world.b.id) as s:
            tenant = s.get(Tenant, world.b.id)
            tenant.archive_mode, tenant.archive_secret_sealed = "off", ""


def test_a_key_uploaded_wrong_is_removed_and_replaced_under_its_version(as_role, world, db, box):
    """Every message of a version failed to decrypt: the admin had pasted the wrong private
    key. The version's key is removed (admins only, their own tenant's) and the right one
    uploaded under the same version."""
    admin = as_role("admin", "b")
    wrong, right = (
        _pem(
            rsa.generate_private_key(public_exponent=65537, key_size=2048), serialization.PrivateFormat.PKCS8
        )
        for _ in range(2)
    )
    upload = {"csrf_token": admin.csrf, "version": "81"}
    assert admin.post("/setup/archive/keys/upload", data={**upload, "private_pem": wrong}).status_code == 303
    again = admin.post("/setup/archive/keys/upload", data={**upload, "private_pem": right})
    assert again.status_code == 422 and "先删除这把" in again.text

    page = admin.get("/setup/archive")
    assert 'action="/setup/archive/keys/81/remove"' in page.text
    for who, tenant in (("supervisor", "a"), ("agent", "a")):  # (b has only its admin)
        other = as_role(who, tenant)
        assert other.post("/setup/archive/keys/81/remove", data={"csrf_token": other.csrf}).status_code == 403
    stranger = as_role("admin", "a")
    refused = stranger.post("/setup/archive/keys/81/remove", data={"csrf_token": stranger.csrf})
    assert refused.status_code == 404 and "没有版本 81 的密钥" in refused.text

    r = admin.post("/setup/archive/keys/81/remove", data={"csrf_token": admin.csrf})
    assert r.status_code == 303 and "密钥已删除" in admin.get(r.headers["location"]).text
    assert admin.post("/setup/archive/keys/upload", data={**upload, "private_pem": right}).status_code == 303
    with db.tenant_session(world.b.id) as s:
        [stored] = s.scalars(select(ArchiveKey).where(ArchiveKey.version == 81)).all()
        assert box.open(stored.private_sealed).strip() == right.strip()
    gone = admin.post("/setup/archive/keys/82/remove", data={"csrf_token": admin.csrf})
    assert gone.status_code == 404 and "没有版本 82 的密钥" in gone.text


def test_the_archive_page_answers_at_once_while_wecom_keeps_limiting_calls(
    siyu, db, web_settings, emu_url, box
):
    """WeCom answers 45009 to the permit list on and on: each load of the page had waited out
    Siyu's pause before asking again, a pause that doubles while the limit lasts, up to 60 s
    (longer than a person waits, and nginx's default proxy timeout). Now the page asks WeCom
    only while the pause is short, and otherwise says at once to look again later."""
    path = "/cgi-bin/msgaudit/get_permit_user_list"
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        tenant = _make_tenant(db, Runtime.create(web_settings, db), emu, "bing")
        corp_id = tenant.corp["corp_id"]
        fault = {"corp_id": corp_id, "path": path, "errcode": 45009, "times": 1000}
        assert emu.post("/_emulator/faults", json=fault).status_code < 300

        def asked() -> int:
            (left,) = [f["times"] for f in emu.get("/_emulator/faults").json() if f["corp_id"] == corp_id]
            return 1000 - left

        with db.tenant_session(tenant.id) as s:
            tenancy.save_archive_settings(
                s, box, s.get(Tenant, tenant.id), "http", tenant.corp["archive_secret"]
            )
            tenancy.add_person(s, f"admin-{tenant.slug}", "丙管理员", "admin", PASSWORD)
        admin = login(siyu, f"admin-{tenant.slug}")  # (its reads give up after 10 s)
        try:
            for _ in range(4):  # pauses of 1, 2 and 4 s are waited out, then it does not wait
                page = admin.get("/setup/archive")
                assert page.status_code == 200 and 'id="live-error"' in page.text
            before = asked()
            for _ in range(4):
                page = admin.get("/setup/archive")
                assert page.status_code == 200 and "企业微信正在限制调用频率" in page.text
            assert asked() == before  # while the pause lasts, WeCom is not asked again
        finally:
            admin.close()
            emu.delete("/_emulator/faults")


PERMIT_STAFF = [
    {"userid": "zhangsan", "name": "张三", "department": [3]},
    {"userid": "zhaoliu", "name": "赵六", "department": [4]},
]


def test_a_permitted_members_declining_customer_is_listed_past_a_thousand_unarchived_follows(
    db, web_settings, siyu, emu_url
):
    """赵六 is not on the permit list and holds the corp's oldest 1,000 customers; 张三 is
    archived and his newest customer says no. The page checks only archived members' pairs,
    yet spent its budget of 1,000 pairs on 赵六's before leaving them out: it checked none,
    said every checked customer agreed (0 pairs), and never named the one who said no."""
    rt = Runtime.create(web_settings, db)
    sfx = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        t = _make_tenant(db, rt, emu, "permit", staff=PERMIT_STAFF)
    now = int(time.time())
    with db.tenant_session(t.id) as s:
        tenancy.save_directory(s, DEPARTMENTS, PERMIT_STAFF)
        admin = f"admin-permit-{sfx}"
        tenancy.add_person(s, admin, "管理员", "admin", PASSWORD)
        for i in range(1000):
            ext = f"wmZ{i:04d}{sfx}"
            customers.record_added(
                s,
                {"UserID": "zhaoliu", "ExternalUserID": ext, "CreateTime": now - 86400, "State": ""},
                _contact(ext, f"客户{i}", "zhaoliu", now - 86400),
            )
        ext_new = f"wmNEW{sfx}"
        customers.record_added(
            s,
            {"UserID": "zhangsan", "ExternalUserID": ext_new, "CreateTime": now - 60, "State": ""},
            _contact(ext_new, "新客户吴女士", "zhangsan", now - 60),
        )
        tenancy.save_archive_settings(s, rt.box, s.get(Tenant, t.id), "http", t.corp["archive_secret"])
    corp = t.corp["corp_id"]
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        r = emu.put(f"/_emulator/corps/{corp}/archive/permit", json={"userids": ["zhangsan"]})
        assert r.status_code == 200, r.text
        r = emu.post(
            f"/_emulator/corps/{corp}/archive/agree",
            json={"userid": "zhangsan", "external_userid": ext_new, "agree": False},
        )
        assert r.status_code in (200, 201), r.text

    client = login(siyu, admin)
    try:
        page = client.get("/setup/archive")
    finally:
        client.close()
    assert page.status_code == 200
    section = page.text.split('id="permit"', 1)[1]
    assert "张三" in section.split('id="permit-users"', 1)[1].split("</p>", 1)[0]
    # 吴女士 said no to 张三, who is archived: the page must say so
    assert 'id="disagree"' in section and "新客户吴女士" in section, section[:1500]
