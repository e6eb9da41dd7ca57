"""The archive pulled through WeCom's finance SDK (the compiled stand-in of
libWeWorkFinanceSdk_C.so), end to end through `siyu.conversations.tasks`: the proxy it goes
out through, tenants pulled side by side, and a storm of notifies served by one pull."""

from __future__ import annotations

import asyncio
import base64
import json
import platform
import random
import secrets
import string
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select, update

from siyu.config import Settings
from siyu.conversations import tasks
from siyu.conversations.models import ArchiveCursor, ArchiveKey, Message
from siyu.db.crypto import SecretBox
from siyu.jobs.worker import Worker
from siyu.runtime import Runtime
from siyu.tenancy.models import Staff, Tenant
from siyu.tenancy.service import CorpCredentials, save_archive_settings, save_tenant
from siyu.wecom.archive import generate_key_pair
from siyu.wecom.crypto import new_encoding_aes_key
from tests.support import TEST_SECRET_KEY
from tests.support.finance_sdk import HERE, compiler, standin_encrypt, standin_or_skip
from tests.support.stack import wait_for


@pytest.fixture(scope="module")
def lib():
    return standin_or_skip()


@pytest.fixture(scope="module")
def pair():
    return generate_key_pair()


@pytest.fixture
def rt(db, settings: Settings) -> Runtime:
    return Runtime.create(settings, db)


@pytest.fixture
def sdk_tenants(db, lib, pair):
    """Make tenants whose archive is read through the SDK stand-in (key version 1); their
    archive is switched off again afterwards, so no other test's timer pulls them."""
    made: list[int] = []
    box = SecretBox(TEST_SECRET_KEY)

    def make(path=lib) -> int:
        creds = CorpCredentials("ww" + secrets.token_hex(8), 1, "a", "c", "t", new_encoding_aes_key())
        with db.system_session() as s:
            tenant = save_tenant(s, box, "t", creds, slug="h" + secrets.token_hex(4))
            save_archive_settings(s, box, tenant, "sdk", secret="archive-secret", sdk_path=str(path))
            tid = tenant.id
        with db.tenant_session(tid) as s:
            s.add(Staff(userid="zhangsan", name="张三"))
            s.add(ArchiveKey(version=1, public_pem=pair[1], private_sealed=box.seal(pair[0])))
        made.append(tid)
        return tid

    yield make
    with db.system_session() as s:
        s.execute(update(Tenant).where(Tenant.id.in_(made)).values(archive_mode="off"))


def chatdata_item(seq: int, message: dict, public_pem: str, rng: random.Random) -> dict:
    key = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32))
    public = serialization.load_pem_public_key(public_pem.encode())
    return {
        "seq": seq,
        "msgid": message["msgid"],
        "publickey_ver": 1,
        "encrypt_random_key": base64.b64encode(public.encrypt(key.encode(), padding.PKCS1v15())).decode(),
        "encrypt_chat_msg": standin_encrypt(key, json.dumps(message, ensure_ascii=False)),
    }


def text(seq: int, sender: str, at: datetime, content: str) -> dict:
    return {
        "msgid": f"h{seq}-{secrets.token_hex(3)}",
        "action": "send",
        "from": sender,
        "tolist": ["zhangsan"] if sender.startswith("wm") else ["wmCUSTOMER"],
        "roomid": "",
        "msgtime": int(at.timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": content},
    }


@pytest.fixture
def archive_file(tmp_path, monkeypatch, pair):
    """What the stand-in's GetChatData serves (SIYU_FAKE_SDK_CHATDATA)."""
    path = tmp_path / "chatdata.jsonl"
    monkeypatch.setenv("SIYU_FAKE_SDK_CHATDATA", str(path))
    monkeypatch.delenv("SIYU_FAKE_SDK_FAIL", raising=False)
    monkeypatch.delenv("SIYU_FAKE_SDK_LATENCY_MS", raising=False)

    def write(messages: list[dict]) -> None:
        rng = random.Random(7)
        items = [chatdata_item(seq, m, pair[1], rng) for seq, m in enumerate(messages, start=1)]
        path.write_text("".join(json.dumps(i) + "\n" for i in items))

    write([])
    return write


def cursor_of(rt, tenant_id: int) -> ArchiveCursor | None:
    with rt.db.tenant_session(tenant_id) as s:
        return s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive"))


# ---------------------------------------------------------------------------------------


def test_the_sdk_reaches_wecom_through_the_proxy_the_rest_of_siyu_uses(rt, sdk_tenants, monkeypatch):
    """README (connecting a real corp): Siyu reaches WeCom through HTTPS_PROXY when it is set,
    and a fixed egress proxy is then the IP the admin adds to WeCom's trusted IPs (the
    archive's 可信IP too). GetChatData takes its proxy as an argument (SdkArchiveSource's
    `proxy`, "handed to GetChatData"), but the pull's source is made without one: the SDK
    goes out directly, from an IP WeCom does not trust (or not at all, on a server whose only
    way out is the proxy), and fails with 10001 "check the proxy setting", a setting Siyu
    does not have. The HTTP calls of the same tenant go through the proxy."""
    monkeypatch.setenv("HTTPS_PROXY", "http://10.1.2.3:3128")
    monkeypatch.setenv("https_proxy", "http://10.1.2.3:3128")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    tenant_id = sdk_tenants()
    with rt.db.system_session() as s:
        source = tasks.source_for(rt, s.get(Tenant, tenant_id))
    try:
        assert (source.proxy, source.passwd) == ("http://10.1.2.3:3128", None)
    finally:
        asyncio.run(source.aclose())


def test_the_sdk_gets_the_proxys_credentials_apart_and_no_proxy_where_no_proxy_says(monkeypatch):
    from siyu.wecom.archive import sdk_proxy

    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert sdk_proxy() == (None, None)
    monkeypatch.setenv("https_proxy", "http://ops:p%40ss@10.1.2.3:3128")
    assert sdk_proxy() == ("http://10.1.2.3:3128", "ops:p@ss")
    monkeypatch.setenv("https_proxy", "http://ops:pw@[fd00::1]:3128")  # had lost its brackets
    assert sdk_proxy() == ("http://[fd00::1]:3128", "ops:pw")
    monkeypatch.setenv("no_proxy", ".weixin.qq.com")
    assert sdk_proxy() == (None, None)


def test_a_tenants_backlog_does_not_hold_up_another_tenants_pull(rt, sdk_tenants, archive_file, monkeypatch):
    """The timer (`pull_all`) pulls tenants one after another, each until its archive is
    drained. A tenant catching up on a backlog (a corp just connected, or a pull that was
    stuck for a day) then holds up every other tenant's pull until its whole backlog is
    stored: their `pulled_until` stands still, and their escalation steps (which fire only
    once the archive is pulled past their due time) wait as long, though their archives
    are idle. The code itself says the next tenant's pull must not wait for a search index
    that is behind (SEARCH_WAIT_S) nor for a backlog's group names (GROUP_LOOKUPS_PER_PULL).

    Here GetChatData takes 0.1 s (a call over the network) and tenant A's backlog is 81
    calls; tenant B's archive is idle and is one call. B's pulled_until should move within
    2.5 seconds of the timer's round starting, not after A's backlog."""
    monkeypatch.setattr(tasks, "BATCH", 5)
    now = datetime.now(UTC)
    archive_file([text(i, "wmCUSTOMER" if i % 2 else "zhangsan", now - timedelta(hours=3), f"第{i}条")
                  for i in range(1, 401)])  # fmt: skip
    busy = sdk_tenants()  # made first: the timer comes to it first (by id)
    idle = sdk_tenants()
    # B has everything already (its archive is idle): its cursor is at the end
    with rt.db.tenant_session(idle) as s:
        s.add(ArchiveCursor(source="archive", seq=400, pulled_until=now - timedelta(minutes=10)))
    others = _others_aside(rt, [busy, idle])
    monkeypatch.setenv("SIYU_FAKE_SDK_LATENCY_MS", "100")

    seen: list[int] = []  # how much of A's backlog was stored when B's archive was pulled

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            c = cursor_of(rt, idle)
            if c.pulled_until is not None and c.pulled_until > now - timedelta(minutes=1):
                seen.append((cursor_of(rt, busy) or ArchiveCursor(seq=0)).seq)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        asyncio.run(tasks.pull_all(rt))
    finally:
        watcher.join(35)
        _others_back(rt, others)
    with rt.db.tenant_session(busy) as s:
        assert len(s.scalars(select(Message.id)).all()) == 400  # A's backlog was pulled
    assert seen, "the idle tenant was never pulled"
    assert seen[0] < 400, "the idle tenant was pulled only once the other's whole backlog was stored"


def test_the_timers_next_rounds_do_not_wait_for_a_tenants_backlog(rt, sdk_tenants, archive_file, monkeypatch):
    """The worker's timer waited for the whole of a round before the next: the first round
    pulled an idle tenant at once (above), but its next pull, and with it the escalations
    waiting for its archive to be pulled past their due time, came only once another
    tenant's backlog was through. Here that backlog is 81 calls of 0.1 s."""
    monkeypatch.setattr(tasks, "BATCH", 5)
    now = datetime.now(UTC)
    archive_file([text(i, "wmCUSTOMER" if i % 2 else "zhangsan", now - timedelta(hours=3), f"第{i}条")
                  for i in range(1, 401)])  # fmt: skip
    busy = sdk_tenants()
    idle = sdk_tenants()
    with rt.db.tenant_session(idle) as s:
        s.add(ArchiveCursor(source="archive", seq=400, pulled_until=now - timedelta(minutes=10)))
    others = _others_aside(rt, [busy, idle])
    monkeypatch.setenv("SIYU_FAKE_SDK_LATENCY_MS", "100")
    worker = Worker(rt, concurrency=4, scheduled=True)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
    thread.start()
    try:

        def idle_pulled_after(moment: datetime) -> datetime | None:
            pulled_until = cursor_of(rt, idle).pulled_until
            return pulled_until if pulled_until is not None and pulled_until > moment else None

        first = wait_for(lambda: idle_pulled_after(now - timedelta(minutes=1)), timeout=30)
        wait_for(lambda: idle_pulled_after(first), timeout=60)  # the timer's next round
        assert (cursor_of(rt, busy) or ArchiveCursor(seq=0)).seq < 400, (
            "the idle tenant's next pull waited for the whole backlog"
        )
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(30)
        loop.close()
        _others_back(rt, others)


def test_a_storm_of_notifies_does_not_make_every_pull_decrypt_the_same_backlog(
    rt, sdk_tenants, archive_file, monkeypatch
):
    """Each msgaudit_notify the worker claims (up to 32 at once) ran a pull of its own, and
    each fetched and decrypted (RSA and DecryptData for every message) the whole backlog from
    the same cursor, all but the first finding it stored. Notifies pile up exactly when a
    backlog does (Siyu was down while WeCom kept notifying). Sixteen at once are served by
    one pull, or one more after it."""
    now = datetime.now(UTC)
    archive_file([text(i, "wmCUSTOMER" if i % 2 else "zhangsan", now - timedelta(minutes=30), f"第{i}条")
                  for i in range(1, 1001)])  # fmt: skip
    tenant_id = sdk_tenants()
    pulled = _pulls_counted(monkeypatch)

    async def notified() -> None:
        # (no callback rows: mark_done of these ids updates nothing)
        await asyncio.gather(*(tasks.on_msgaudit_notify(rt, tenant_id, -1 - i, {}) for i in range(16)))

    asyncio.run(notified())
    assert cursor_of(rt, tenant_id).seq == 1000
    with rt.db.tenant_session(tenant_id) as s:
        assert len(s.scalars(select(Message.id)).all()) == 1000
    assert len(pulled) <= 2, f"{len(pulled)} pulls for sixteen notifies"


def _others_aside(rt, keep: list[int]) -> dict[int, str]:
    """Other tests' tenants sit out the timer's rounds of a test (their archives are gone)."""
    with rt.db.system_session() as s:
        others = dict(
            s.execute(
                select(Tenant.id, Tenant.archive_mode).where(
                    Tenant.archive_mode != "off", Tenant.id.not_in(keep)
                )
            ).all()
        )
        s.execute(update(Tenant).where(Tenant.id.in_(list(others) or [0])).values(archive_mode="off"))
    return others


def _others_back(rt, others: dict[int, str]) -> None:
    with rt.db.system_session() as s:
        for tenant_id, mode in others.items():
            s.execute(update(Tenant).where(Tenant.id == tenant_id).values(archive_mode=mode))


def test_a_tenant_whose_pull_fails_is_tried_again_later_not_every_round(
    rt, sdk_tenants, archive_file, monkeypatch
):
    """A wrong secret or key fails every pull: the timer tried it every few seconds, each time
    a warning in the log and a turn the other tenants waited for. It backs off (twice as many
    polls after each failure, at most a minute); a notify still pulls at once."""
    monkeypatch.setenv("SIYU_FAKE_SDK_FAIL", "10009:1000")
    failing = sdk_tenants()
    pulled = _pulls_counted(monkeypatch)
    others = _others_aside(rt, [failing])
    try:

        async def rounds() -> None:
            for _ in range(3):
                await tasks.pull_all(rt)
            monkeypatch.delenv("SIYU_FAKE_SDK_FAIL")  # the admin fixed it; WeCom notifies
            await tasks.on_msgaudit_notify(rt, failing, -1, {})
            await tasks.pull_all(rt)  # (the notify's pull worked: the timer is back on it)

        asyncio.run(rounds())
    finally:
        _others_back(rt, others)
    assert pulled == [failing, failing, failing]  # the first round, the notify, the last round


def test_a_tenant_failing_for_most_of_a_day_stays_backed_off(rt, sdk_tenants, archive_file, monkeypatch):
    """The back-off is poll x 2**failures, at most a minute: at the default 5 s poll a tenant
    failing once a minute (a stuck message over a weekend) comes to its 1,024th failure in about
    17 hours. 2**1025 is no float: the round then raised OverflowError before recording the
    failure, the log lost its warning, and the tenant was pulled every round."""
    monkeypatch.setenv("SIYU_FAKE_SDK_FAIL", "10009:1000")
    failing = sdk_tenants()
    pulled = _pulls_counted(monkeypatch)
    others = _others_aside(rt, [failing])
    try:

        async def rounds() -> tuple[int, float]:
            loop = asyncio.get_running_loop()
            tasks._failing[loop] = {failing: (1024, 0.0)}  # failed 1,024 times, due again now
            started = time.monotonic()
            await tasks.pull_all(rt)
            await tasks.pull_all(rt)  # (backed off: not pulled)
            failures, again_at = tasks._failing[loop][failing]
            return failures, again_at - started

        failures, again_in = asyncio.run(rounds())
    finally:
        _others_back(rt, others)
    assert pulled == [failing]
    assert failures == 1025 and 59 < again_in <= tasks.FAILING_WAIT_MAX_S + 1


def _pulls_counted(monkeypatch) -> list[int]:
    """The tenants `tasks.pull` runs for, in order (the real pull, counted)."""
    pulled: list[int] = []
    real_pull = tasks.pull

    async def counted(rt, tenant_id, *args, **kw):
        pulled.append(tenant_id)
        return await real_pull(rt, tenant_id, *args, **kw)

    monkeypatch.setattr(tasks, "pull", counted)
    return pulled


# ---------------------------------------------------------------- the library file itself


def _as_built_for_arm64(lib, path) -> None:
    """The stand-in as WeCom's arm64 build looks to this machine's loader."""
    data = bytearray(lib.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine: EM_AARCH64
    path.write_bytes(bytes(data))


def _pull_error(rt, tenant_id: int) -> str:
    with pytest.raises(Exception):  # noqa: B017,PT011 - whatever it is, the page shows it
        asyncio.run(tasks.pull(rt, tenant_id))
    return cursor_of(rt, tenant_id).last_error


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="an x86_64 loader")
def test_the_sdk_built_for_another_machine_is_named_so_not_a_missing_file(
    db, rt, sdk_tenants, archive_file, lib, tmp_path
):
    """WeCom offers x86_64 and arm64 builds. The arm64 one on an x86_64 server failed with
    glibc's "No such file or directory", for a file the setup page had found there."""
    path = tmp_path / "sdk" / "libWeWorkFinanceSdk_C.so"
    path.parent.mkdir()
    path.write_bytes(lib.read_bytes())
    tenant_id = sdk_tenants(path)
    _as_built_for_arm64(lib, path)
    with db.system_session() as s, pytest.raises(ValueError, match="aarch64"):
        save_archive_settings(s, SecretBox(TEST_SECRET_KEY), s.get(Tenant, tenant_id), "sdk",
                              secret="archive-secret", sdk_path=str(path))  # fmt: skip
    archive_file([text(1, "wmCUSTOMER", datetime.now(UTC), "在吗")])
    error = _pull_error(rt, tenant_id)
    assert "aarch64" in error and "No such file" not in error, error


def test_an_sdk_file_put_right_in_place_is_loaded_by_the_next_pull(
    rt, sdk_tenants, archive_file, lib, tmp_path
):
    """A download lacking DecryptData failed the pull, as it should; the right file then put
    at the same path was never loaded: glibc handed back the broken one, still open, until
    the worker restarted."""
    if compiler() is None:
        pytest.skip("no C compiler")
    path = tmp_path / "sdk" / "libWeWorkFinanceSdk_C.so"
    path.parent.mkdir()
    build = [compiler(), "-shared", "-fPIC", "-std=gnu11", "-I", str(HERE), "-DDecryptData=Other",
             "-o", str(path), str(HERE / "standin.c")]  # fmt: skip
    subprocess.run(build, check=True, capture_output=True)
    tenant_id = sdk_tenants(path)
    archive_file([text(1, "wmCUSTOMER", datetime.now(UTC), "在吗")])
    assert "DecryptData" in _pull_error(rt, tenant_id)
    fixed = path.with_name(".new")
    fixed.write_bytes(lib.read_bytes())
    fixed.replace(path)
    assert asyncio.run(tasks.pull(rt, tenant_id))["stored"] == 1


def test_a_damaged_message_under_a_key_that_works_is_not_blamed_on_the_key(
    rt, sdk_tenants, archive_file, pair, tmp_path
):
    """Key version 1 has decrypted messages (it cannot be removed). One later message's
    encrypt_random_key is damaged: the page had said there was no private key for version 1
    and to upload that key pair again, which cannot be done and would not help."""
    tenant_id = sdk_tenants()
    now = datetime.now(UTC)
    archive_file([text(i, "wmCUSTOMER", now, f"第{i}条") for i in range(1, 4)])
    assert asyncio.run(tasks.pull(rt, tenant_id))["stored"] == 3
    served = tmp_path / "chatdata.jsonl"
    items = [json.loads(line) for line in served.read_text().splitlines()]
    damaged = chatdata_item(4, text(4, "wmCUSTOMER", now, "第4条"), pair[1], random.Random(4))
    cipher = bytearray(base64.b64decode(damaged["encrypt_random_key"]))
    cipher[10] ^= 0xFF
    damaged["encrypt_random_key"] = base64.b64encode(bytes(cipher)).decode()
    served.write_text("".join(json.dumps(i) + "\n" for i in [*items, damaged]))
    error = _pull_error(rt, tenant_id)
    assert "[seq 4," in error and "damaged; skip it" in error, error
    assert "upload that key pair" not in error
    tasks.skip_stuck(rt, tenant_id, 4)
