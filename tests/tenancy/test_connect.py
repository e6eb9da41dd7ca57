"""Connecting a corp as a real admin would: credentials checked against WeCom (the
emulator), clear errors naming what is wrong, secrets sealed at rest, the URL handshake."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select, text

from siyu.db import utcnow
from siyu.db.crypto import SecretBox
from siyu.emulator.app import create_emulator_app
from siyu.tenancy.models import Tenant
from siyu.tenancy.service import ConnectError, CorpCredentials, check_credentials, save_tenant, tenant_summary
from tests.support import TEST_SECRET_KEY
from tests.support.servers import serve


@pytest.fixture
def emulator():
    with serve(create_emulator_app()) as url, httpx.Client(base_url=url) as http:
        corp = http.post("/_emulator/corps", json={"name": "甲公司", "staff": []}).json()
        yield url, http, corp


def creds(corp, **change) -> CorpCredentials:
    values = dict(
        corp_id=corp["corp_id"],
        agent_id=int(corp["agent_id"]),
        agent_secret=corp["agent_secret"],
        contact_secret=corp["contact_secret"],
        token=corp["token"],
        encoding_aes_key=corp["encoding_aes_key"],
    )
    return CorpCredentials(**{**values, **change})


def refusal(url, c) -> str:
    with pytest.raises(ConnectError) as info:
        asyncio.run(check_credentials(c, url))
    return str(info.value)


def test_good_credentials_pass(emulator):
    url, _, corp = emulator
    asyncio.run(check_credentials(creds(corp), url))


def test_each_refusal_names_what_is_wrong(emulator):
    url, http, corp = emulator
    assert "客户联系 Secret" in refusal(url, creds(corp, contact_secret="wrong-secret"))
    assert "secret" in refusal(url, creds(corp, agent_secret="wrong-secret")).lower()
    assert "corp" in refusal(url, creds(corp, corp_id="ww0000000000000000")).lower()
    assert "EncodingAESKey" in refusal(url, creds(corp, encoding_aes_key="short"))
    # the 会话存档 secret gets a token too, but no customer call would ever work with it
    wrong_kind = refusal(url, creds(corp, contact_secret=corp["archive_secret"]))
    assert wrong_kind.startswith("客户联系 Secret:") and "may not call this API" in wrong_kind
    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"trusted_ips": ["10.1.2.3"]})
    message = refusal(url, creds(corp))
    assert "127.0.0.1" in message and "IP" in message


def test_secrets_are_sealed_at_rest_and_shown_masked(db, emulator):
    _, _, corp = emulator
    box = SecretBox(TEST_SECRET_KEY)
    with db.system_session() as s:
        tenant = save_tenant(s, box, "甲公司", creds(corp))
        summary = tenant_summary(tenant, box, "https://scrm.example.com/wecom/callback/x")
        row = s.execute(text("select * from tenants where id = :id"), {"id": tenant.id}).mappings().one()
    stored = " ".join(str(v) for v in row.values())
    for secret in (corp["agent_secret"], corp["contact_secret"], corp["encoding_aes_key"]):
        assert secret not in stored
        assert secret not in str(summary)
    assert summary["agent_secret"].startswith(corp["agent_secret"][:3]) and "••••" in summary["agent_secret"]


def test_wecoms_url_check_of_the_callback_url(stack):
    """The emulator performs WeCom's GET echostr handshake against Siyu's callback URL."""
    result = stack.control("POST", stack.corp_path("/verify_callback"))
    assert result.get("ok") is True, result
    with stack.session() as s:
        assert s.scalar(select(Tenant.slug).where(Tenant.id == stack.tenant_id)) == stack.slug


def test_a_tenants_clients_use_the_configured_pause_share_a_pool_and_are_renewed_after_new_credentials(
    db, emulator
):
    from siyu.tenancy.clients import TenantClients

    url, _, corp = emulator
    box = SecretBox(TEST_SECRET_KEY)
    with db.system_session() as s:
        tenant_id = save_tenant(s, box, "甲公司", creds(corp)).id
    clients = TenantClients(db, box, url, rate_limit_pause_s=0.25)

    async def scenario():
        first = await clients.get(tenant_id)
        assert await clients.get(tenant_id) is first
        # SIYU_WECOM_RATE_LIMIT_PAUSE_S: the first rest after WeCom's 45009, for both secrets
        assert first.app.freq_pause == first.contact.freq_pause == 0.25
        assert first.app._http is first.contact._http  # one connection pool per tenant
        assert (await first.app.user_simplelist(1))["errcode"] == 0
        assert (await first.contact.get_follow_user_list())["errcode"] == 0

        clients.forget(tenant_id)  # the admin saved new credentials
        second = await clients.get(tenant_id)
        assert second is not first
        assert not first.app._http.is_closed  # a call may still be using it
        await clients.aclose()
        assert first.app._http.is_closed and second.app._http.is_closed

    asyncio.run(scenario())


def test_credentials_saved_by_another_process_reach_a_running_worker(emulator, settings, db, monkeypatch):
    """A worker keeps its WeCom clients; `siyu tenant add` (another process) fixing the
    AgentId had not reached it until it was restarted: it went on sending with the old one."""
    from siyu.runtime import Runtime
    from siyu.tenancy.clients import TenantClients

    url, _, corp = emulator
    worker = Runtime.create(settings.model_copy(update={"wecom_base_url": url}), db)
    with db.system_session() as s:
        tenant_id = save_tenant(s, worker.box, "甲公司", creds(corp, agent_id=1000099)).id

    async def scenario() -> list[int]:  # one loop, as a worker's: its clients are per loop
        seen = [(await worker.clients.get(tenant_id)).agent_id]
        with db.system_session() as s:  # as `siyu tenant add` does, in its own process
            save_tenant(s, worker.box, "甲公司", creds(corp))
        seen.append((await worker.clients.get(tenant_id)).agent_id)  # within the recheck interval
        monkeypatch.setattr(TenantClients, "RECHECK_S", 0.0)
        seen.append((await worker.clients.get(tenant_id)).agent_id)
        await worker.clients.aclose()
        return seen

    assert asyncio.run(scenario()) == [1000099, 1000099, int(corp["agent_id"])]


def test_one_tenants_failing_staff_sync_does_not_stop_the_others(emulator, settings, db):
    """The scheduled staff sync goes through the tenants one after another. One whose WeCom
    refuses the sync (here: the server's IP is not trusted, 60020) had raised out of the
    round, and every tenant after it was never synced again, every 5 minutes for good."""
    from siyu.runtime import Runtime
    from siyu.tenancy.models import Staff
    from siyu.tenancy.tasks import sync_due_staff

    url, http, broken = emulator
    good = http.post(
        "/_emulator/corps",
        json={
            "name": "乙公司",
            "departments": [{"id": 1, "name": "总部", "parentid": 0}],
            "staff": [{"userid": "yi_sync_01", "name": "乙一", "department": [1]}],
        },
    ).json()
    http.patch(f"/_emulator/corps/{broken['corp_id']}", json={"trusted_ips": ["203.0.113.9"]})
    rt = Runtime.create(settings.model_copy(update={"wecom_base_url": url, "staff_sync_interval_s": 300}), db)
    with db.system_session() as s:
        # the other tests' tenants are not due (their emulators are gone)
        s.execute(text("update tenants set staff_synced_at = :now"), {"now": utcnow()})
        first = save_tenant(s, rt.box, "甲公司", creds(broken)).id
        second = save_tenant(s, rt.box, "乙公司", creds(good)).id
        s.get(Tenant, first).staff_synced_at = s.get(Tenant, second).staff_synced_at = None

    async def scheduled_round():
        try:
            await sync_due_staff(rt)
        finally:
            await rt.clients.aclose()

    asyncio.run(scheduled_round())

    with db.tenant_session(second) as s:
        assert s.scalars(select(Staff.name)).all() == ["乙一"]
        assert s.get(Tenant, second).staff_synced_at is not None
    with db.tenant_session(first) as s:
        assert s.get(Tenant, first).staff_synced_at is None  # tried again at the next round
