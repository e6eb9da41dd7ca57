"""The 会话存档 app's own callback URL (/wecom/callback/{slug}/archive) over real HTTP with
real crypto: verified with the archive's Token / EncodingAESKey, not the corp's main pair;
msgaudit_notify only; the same refusals as the main URL; the pair sealed at rest."""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy import select, text

from siyu.db.crypto import SecretBox
from siyu.intake.models import CallbackEvent
from siyu.tenancy.models import Tenant
from siyu.tenancy.service import archive_callback_pair, save_archive_callback, save_archive_settings
from siyu.wecom.crypto import WeComCrypto, new_encoding_aes_key
from siyu.wecom.events import event_xml
from tests.intake.test_callback import add_event, corp, crypto_key, siyu, stored  # noqa: F401 - fixtures


def notify_xml(corp_id: str, at: int = 1732500000) -> str:
    return event_xml(
        {
            "ToUserName": corp_id,
            "FromUserName": "sys",
            "CreateTime": at,
            "MsgType": "event",
            "AgentID": 2000004,
            "Event": "msgaudit_notify",
        }
    )


@pytest.fixture
def archive(corp, db, settings):  # noqa: F811
    """The tenant with archiving on: Siyu generated the archive callback's own pair."""
    slug, tenant_id, main = corp
    box = SecretBox(settings.secret_key)
    with db.system_session() as s:
        tenant = s.get(Tenant, tenant_id)
        save_archive_settings(s, box, tenant, "http", "archive-secret")
        token, aes_key = archive_callback_pair(tenant, box)
    return WeComCrypto(token, aes_key, main.receive_id)


def post(url: str, sender: WeComCrypto, xml: str) -> httpx.Response:
    body, params = sender.encrypt_callback(xml)
    return httpx.post(url, params=params, content=body)


def echostr_params(sender: WeComCrypto, plain: str) -> dict:
    echostr = sender.encrypt(plain)
    ts, nonce = "1409659589", str(secrets.randbelow(10**9))
    return {
        "msg_signature": sender.sign(ts, nonce, echostr),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
    }


def test_the_archive_pair_is_its_own_and_sealed_at_rest(corp, archive, db):  # noqa: F811
    _, tenant_id, main = corp
    assert archive.token != main.token and archive.key != main.key
    with db.system_session() as s:
        row = s.execute(text("select * from tenants where id = :id"), {"id": tenant_id}).mappings().one()
    raw = " ".join(str(v) for v in row.values())
    assert archive.token not in raw and crypto_key(archive) not in raw
    assert row["archive_callback_token_sealed"] and row["archive_encoding_aes_key_sealed"]


def test_url_check_on_the_archive_url_uses_the_archive_pair(siyu, corp, archive):  # noqa: F811
    slug, _, main = corp
    url = f"{siyu}/wecom/callback/{slug}/archive"
    r = httpx.get(url, params=echostr_params(archive, "1616140317555161061"))
    assert r.status_code == 200 and r.text == "1616140317555161061"
    assert httpx.get(url, params=echostr_params(main, "1616140317555161061")).status_code == 403


def test_a_notify_on_the_archive_url_is_stored_once(siyu, corp, archive, db):  # noqa: F811
    slug, tenant_id, main = corp
    url = f"{siyu}/wecom/callback/{slug}/archive"
    assert post(url, archive, notify_xml(main.receive_id)).status_code == 200
    assert post(url, archive, notify_xml(main.receive_id)).status_code == 200  # WeCom's retry
    with db.tenant_session(tenant_id) as s:
        assert list(s.scalars(select(CallbackEvent.kind))) == ["msgaudit_notify"]


def test_a_notify_signed_with_the_main_pair_on_the_archive_url_is_refused(siyu, corp, archive, db):  # noqa: F811
    slug, tenant_id, main = corp
    r = post(f"{siyu}/wecom/callback/{slug}/archive", main, notify_xml(main.receive_id))
    assert r.status_code == 403
    assert stored(db, tenant_id) == 0


def test_a_wrong_archive_pair_is_logged_with_where_the_archive_pair_is_set(siyu, corp, archive, caplog):  # noqa: F811
    """Each notify signed with a pair Siyu does not have for the 会话存档 callback was logged as a
    wrong Token in 接收事件服务器 and `siyu tenant show`, the main callback's: the operator checked
    the wrong form. The log names the 会话存档 callback's setup."""
    import logging

    slug, _, main = corp
    with caplog.at_level(logging.WARNING, logger="siyu.intake.api"):
        r = post(f"{siyu}/wecom/callback/{slug}/archive", main, notify_xml(main.receive_id))
    assert r.status_code == 403
    said = caplog.text
    assert "archive callback for" in said and "会话内容存档 → 接收事件服务器" in said
    assert "/setup/archive" in said and f"siyu tenant archive-callback {slug}" in said
    assert "siyu tenant show" not in said


def test_the_archive_url_takes_msgaudit_notify_only(siyu, corp, archive, db):  # noqa: F811
    slug, tenant_id, main = corp
    r = post(f"{siyu}/wecom/callback/{slug}/archive", archive, add_event(main.receive_id, "wmX"))
    assert r.status_code == 400 and "msgaudit_notify" in r.text
    assert stored(db, tenant_id) == 0
    # signed with the archive's pair, but a message of "type" msgaudit_notify, not the event
    not_the_event = event_xml(
        {"ToUserName": main.receive_id, "FromUserName": "sys", "CreateTime": 1, "MsgType": "msgaudit_notify"}
    )
    r = post(f"{siyu}/wecom/callback/{slug}/archive", archive, not_the_event)
    assert r.status_code == 400 and "msgaudit_notify" in r.text
    assert stored(db, tenant_id) == 0


@pytest.mark.parametrize("spoil", ["ciphertext", "outer_xml", "inner_xml", "other_corp"])
def test_bad_notifies_on_the_archive_url_are_400_and_nothing_is_stored(siyu, corp, archive, db, spoil):  # noqa: F811
    slug, tenant_id, main = corp
    xml = "<xml><ToUserName>broken" if spoil == "inner_xml" else notify_xml(main.receive_id)
    sender = (
        WeComCrypto(archive.token, crypto_key(archive), "wwSomeoneElse") if spoil == "other_corp" else archive
    )
    body, params = sender.encrypt_callback(xml)
    if spoil == "ciphertext":
        encrypted = body.split("CDATA[")[2].split("]]")[0]
        spoilt = "A" * 8 + encrypted[8:]
        body = body.replace(encrypted, spoilt)
        params["msg_signature"] = archive.sign(params["timestamp"], params["nonce"], spoilt)
    elif spoil == "outer_xml":
        body = body[:-10]
    r = httpx.post(f"{siyu}/wecom/callback/{slug}/archive", params=params, content=body)
    assert r.status_code == 400
    assert stored(db, tenant_id) == 0


def test_unknown_tenant_and_unconfigured_archive_url_are_404(siyu, corp, db):  # noqa: F811
    slug, tenant_id, main = corp
    assert post(f"{siyu}/wecom/callback/nobody/archive", main, notify_xml(main.receive_id)).status_code == 404
    # No archive pair yet (a tenant from before 0002): nothing verifies the archive URL ...
    r = post(f"{siyu}/wecom/callback/{slug}/archive", main, notify_xml(main.receive_id))
    assert r.status_code == 404
    assert (
        httpx.get(f"{siyu}/wecom/callback/{slug}/archive", params=echostr_params(main, "1")).status_code
        == 404
    )
    assert stored(db, tenant_id) == 0
    # ... and the main URL keeps taking msgaudit_notify signed with the main pair.
    assert post(f"{siyu}/wecom/callback/{slug}", main, notify_xml(main.receive_id)).status_code == 200
    assert stored(db, tenant_id) == 1


def test_with_an_archive_pair_the_main_url_no_longer_takes_msgaudit_notify(siyu, corp, archive, db):  # noqa: F811
    slug, tenant_id, main = corp
    r = post(f"{siyu}/wecom/callback/{slug}", main, notify_xml(main.receive_id))
    assert r.status_code == 400 and "/archive" in r.text
    assert stored(db, tenant_id) == 0
    assert post(f"{siyu}/wecom/callback/{slug}", main, add_event(main.receive_id, "wmY")).status_code == 200


def test_a_pair_changed_elsewhere_is_picked_up_without_a_restart(siyu, corp, archive, db, settings):  # noqa: F811
    """`siyu tenant archive-callback` runs in another process: the server's cached keys
    fail, are read again, and the new pair works at once; the old one no longer does."""
    slug, tenant_id, main = corp
    url = f"{siyu}/wecom/callback/{slug}/archive"
    assert post(url, archive, notify_xml(main.receive_id, 1)).status_code == 200  # cached now
    new_key = new_encoding_aes_key()
    with db.system_session() as s:
        save_archive_callback(
            s, SecretBox(settings.secret_key), s.get(Tenant, tenant_id), "NewToken9", new_key
        )
    fresh = WeComCrypto("NewToken9", new_key, main.receive_id)
    assert post(url, fresh, notify_xml(main.receive_id, 2)).status_code == 200
    assert post(url, archive, notify_xml(main.receive_id, 3)).status_code == 403
    assert stored(db, tenant_id) == 2


def test_a_replaced_pair_stops_working_though_nobody_used_the_new_one(  # noqa: F811
    siyu,  # noqa: F811
    corp,  # noqa: F811
    archive,
    db,
    settings,
    monkeypatch,
):
    """The cached pair is read again after KEYS_TTL_S (a minute): the old one had kept working
    until the server restarted, as long as WeCom still signed with it."""
    from siyu.intake import service as intake_service

    slug, tenant_id, main = corp
    url = f"{siyu}/wecom/callback/{slug}/archive"
    assert post(url, archive, notify_xml(main.receive_id, 1)).status_code == 200  # cached now
    with db.system_session() as s:
        save_archive_callback(
            s, SecretBox(settings.secret_key), s.get(Tenant, tenant_id), "NewToken8", new_encoding_aes_key()
        )
    assert post(url, archive, notify_xml(main.receive_id, 2)).status_code == 200  # within the minute
    monkeypatch.setattr(intake_service, "KEYS_TTL_S", 0.0)
    assert post(url, archive, notify_xml(main.receive_id, 3)).status_code == 403


@pytest.mark.parametrize("signature", ["é", "中文签名", "\u0000"])
def test_a_signature_of_any_characters_is_refused_not_a_server_error(siyu, corp, archive, db, signature):  # noqa: F811
    slug, tenant_id, main = corp
    for url in (f"{siyu}/wecom/callback/{slug}/archive", f"{siyu}/wecom/callback/{slug}"):
        params = {**echostr_params(archive, "1616140317555161061"), "msg_signature": signature}
        assert httpx.get(url, params=params).status_code == 403
        body, params = archive.encrypt_callback(notify_xml(main.receive_id))
        assert httpx.post(url, params={**params, "msg_signature": signature}, content=body).status_code == 403
    assert stored(db, tenant_id) == 0


def test_a_body_too_large_for_a_callback_is_refused_before_it_is_read_whole(siyu, corp, archive, db):  # noqa: F811
    slug, tenant_id, _ = corp
    params = {"msg_signature": "0" * 40, "timestamp": "1409659589", "nonce": "1"}
    for url in (f"{siyu}/wecom/callback/{slug}/archive", f"{siyu}/wecom/callback/{slug}"):
        r = httpx.post(url, params=params, content=b"<xml>" + b"x" * (300 * 1024) + b"</xml>")
        assert r.status_code == 413
        chunked = httpx.post(url, params=params, content=iter([b"<xml>", b"x" * (300 * 1024)]))  # no length
        assert chunked.status_code == 413
    with db.tenant_session(tenant_id) as s:
        assert list(s.scalars(select(CallbackEvent.kind))) == []
