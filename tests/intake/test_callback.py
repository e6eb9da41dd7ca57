"""The callback endpoint over real HTTP with real crypto: what WeCom sees."""

from __future__ import annotations

import secrets
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from siyu.app import create_app
from siyu.db.crypto import SecretBox
from siyu.intake.models import CallbackEvent
from siyu.tenancy.service import CorpCredentials, save_tenant
from siyu.wecom.crypto import WeComCrypto, new_encoding_aes_key
from siyu.wecom.events import event_xml
from tests.support.servers import serve


@pytest.fixture
def corp(db, settings):
    creds = CorpCredentials(
        corp_id="ww" + secrets.token_hex(8),
        agent_id=1000002,
        agent_secret="app-secret",
        contact_secret="contact-secret",
        token="tok" + secrets.token_hex(4),
        encoding_aes_key=new_encoding_aes_key(),
    )
    with db.system_session() as s:
        tenant = save_tenant(
            s, SecretBox(settings.secret_key), "测试企业", creds, slug=f"t-{uuid.uuid4().hex[:8]}"
        )
        slug, tenant_id = tenant.slug, tenant.id
    return slug, tenant_id, WeComCrypto(creds.token, creds.encoding_aes_key, creds.corp_id)


@pytest.fixture
def siyu(settings, db):
    settings.embedded_worker = False  # these tests look at what intake stores, not what follows
    from siyu.runtime import Runtime

    with serve(create_app(settings, Runtime.create(settings, db))) as url:
        yield url


def contact_event(change: str, corp_id: str, ext: str, at: int = 1732500000, **more) -> str:
    """A 客户联系 event of 张三's about customer `ext`, as WeCom writes its XML."""
    return event_xml(
        {
            "ToUserName": corp_id,
            "FromUserName": "sys",
            "CreateTime": at,
            "MsgType": "event",
            "Event": "change_external_contact",
            "ChangeType": change,
            "UserID": "zhangsan",
            "ExternalUserID": ext,
            **more,
        }
    )


def add_event(corp_id: str, ext: str, at: int = 1732500000) -> str:
    return contact_event("add_external_contact", corp_id, ext, at, State="c1", WelcomeCode="W" + ext)


def stored(db, tenant_id: int) -> int:
    with db.tenant_session(tenant_id) as s:
        return s.scalar(select(func.count()).select_from(CallbackEvent))


def test_url_verification_answers_the_decrypted_echostr(siyu, corp):
    slug, _, crypto = corp
    echostr = crypto.encrypt("1616140317555161061")
    params = {
        "msg_signature": crypto.sign("1409659589", "263014780", echostr),
        "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": echostr,
    }
    r = httpx.get(f"{siyu}/wecom/callback/{slug}", params=params)
    assert r.status_code == 200 and r.text == "1616140317555161061"
    params["nonce"] = "263014781"
    assert httpx.get(f"{siyu}/wecom/callback/{slug}", params=params).status_code == 403


def test_retry_is_stored_once_and_same_second_scans_both_count(siyu, corp, db):
    slug, tenant_id, crypto = corp
    for xml in [
        add_event(crypto.receive_id, "wmA"),
        add_event(crypto.receive_id, "wmA"),
        add_event(crypto.receive_id, "wmB"),
    ]:
        body, params = crypto.encrypt_callback(xml)  # WeCom re-encrypts a retry: new IV input, same XML
        r = httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=body)
        assert r.status_code == 200
    assert stored(db, tenant_id) == 2


@pytest.mark.parametrize("spoil", ["signature", "ciphertext", "outer_xml", "inner_xml", "other_corp"])
def test_bad_callbacks_are_refused_and_nothing_is_stored(siyu, corp, db, spoil):
    slug, tenant_id, crypto = corp
    xml = add_event(crypto.receive_id, "wmBad")
    if spoil == "inner_xml":
        xml = "<xml><ToUserName>broken"
    sender = (
        WeComCrypto(crypto.token, crypto_key(crypto), "wwSomeoneElse") if spoil == "other_corp" else crypto
    )
    body, params = sender.encrypt_callback(xml)
    if spoil == "signature":
        params["msg_signature"] = "0" * 40
    elif spoil == "ciphertext":
        encrypted = body.split("CDATA[")[2].split("]]")[0]
        spoilt = "A" * 8 + encrypted[8:]
        body = body.replace(encrypted, spoilt)
        params["msg_signature"] = crypto.sign(params["timestamp"], params["nonce"], spoilt)
    elif spoil == "outer_xml":
        body = body[:-10]
    r = httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=body)
    assert r.status_code in (400, 403)
    assert stored(db, tenant_id) == 0


def test_unknown_tenant_is_404_and_the_log_says_what_to_check(siyu, corp, caplog, monkeypatch):
    import logging

    from siyu.intake import api as intake_api

    monkeypatch.setattr(intake_api, "_last_unknown_logged", 0.0)
    slug, _, crypto = corp
    body, params = crypto.encrypt_callback(add_event(crypto.receive_id, "wmX"))
    with caplog.at_level(logging.WARNING, logger="siyu.intake.api"):
        assert httpx.post(f"{siyu}/wecom/callback/nobody", params=params, content=body).status_code == 404
        # a wrong slug in the URL pasted into WeCom had left nothing in the log
        assert "unknown tenant 'nobody'" in caplog.text and "siyu tenant list" in caplog.text
        params["msg_signature"] = "0" * 40
        assert httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=body).status_code == 403
        assert "bad signature (the Token or EncodingAESKey in WeCom's" in caplog.text
        assert f"siyu tenant show {slug}" in caplog.text


def crypto_key(crypto: WeComCrypto) -> str:
    import base64

    return base64.b64encode(crypto.key).decode()[:43]


def test_callbacks_encrypted_by_wechatpy_are_accepted(siyu, corp, db):
    """An independent implementation (wechatpy) encrypts; Siyu verifies, decrypts, stores."""
    from wechatpy.enterprise.crypto import WeChatCrypto

    slug, tenant_id, crypto = corp
    theirs = WeChatCrypto(crypto.token, crypto_key(crypto), crypto.receive_id)
    xml = add_event(crypto.receive_id, "wmFromWechatpy")
    envelope = theirs.encrypt_message(xml, "1372623149", "1409659813")
    sig = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    params = {"msg_signature": sig, "timestamp": "1409659813", "nonce": "1372623149"}
    r = httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=envelope)
    assert r.status_code == 200
    assert stored(db, tenant_id) == 1


def edit_event(corp_id: str, ext: str, at: int = 1732500000) -> str:
    return contact_event("edit_external_contact", corp_id, ext, at)


def _row(db, tenant_id: int, kind: str) -> CallbackEvent:
    with db.tenant_session(tenant_id) as s:
        return s.scalar(select(CallbackEvent).where(CallbackEvent.kind == kind))


def test_a_second_change_in_the_same_second_runs_its_event_again_an_add_does_not(siyu, corp, db):
    """A member edits a customer's remark twice in one second: WeCom sends the same XML twice (the
    edit names no data; CreateTime is in whole seconds). Stored once by its digest as if it were
    WeCom retrying, the second change was lost once the first had run. An edit reads WeCom's
    state, so the repeat runs it again; one arriving while it runs has it run once more when it
    ends. An add, read once, is stored once whatever comes again (its welcome is sent once)."""
    from datetime import timedelta

    from sqlalchemy import update

    from siyu.db import utcnow
    from siyu.intake.service import mark_done

    slug, tenant_id, crypto = corp
    edit, add = (
        "change_external_contact/edit_external_contact",
        "change_external_contact/add_external_contact",
    )

    def post(xml: str) -> None:
        body, params = crypto.encrypt_callback(xml)
        assert httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=body).status_code == 200

    for xml in (edit_event(crypto.receive_id, "wmE"), add_event(crypto.receive_id, "wmE")):
        post(xml)
    with db.tenant_session(tenant_id) as s:  # both ran
        for kind in (edit, add):
            mark_done(s, _row(db, tenant_id, kind).id)
    for xml in (edit_event(crypto.receive_id, "wmE"), add_event(crypto.receive_id, "wmE")):
        post(xml)
    assert stored(db, tenant_id) == 2
    assert (_row(db, tenant_id, edit).status, _row(db, tenant_id, add).status) == ("pending", "done")
    # while the edit runs (a worker holds it), it comes once more: it runs again when done
    with db.tenant_session(tenant_id) as s:
        lease = utcnow() + timedelta(seconds=60)
        s.execute(update(CallbackEvent).where(CallbackEvent.kind == edit).values(claimed_until=lease))
    post(edit_event(crypto.receive_id, "wmE"))
    assert _row(db, tenant_id, edit).again is True
    with db.tenant_session(tenant_id) as s:
        mark_done(s, _row(db, tenant_id, edit).id)
    row = _row(db, tenant_id, edit)
    assert (row.status, row.again, row.claimed_until) == ("pending", False, None)
    with db.tenant_session(tenant_id) as s:
        mark_done(s, row.id)
    assert _row(db, tenant_id, edit).status == "done"
