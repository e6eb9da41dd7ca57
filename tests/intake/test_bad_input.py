"""Authentic callbacks with values nobody expects (a time past any calendar, XML that is not
UTF-8): each is stored or refused on its own, and never holds up the callbacks beside it."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from sqlalchemy import select

from siyu.customers.models import Customer
from siyu.db.crypto import SecretBox
from siyu.intake import tasks as intake_tasks
from siyu.intake.models import CallbackEvent
from siyu.intake.service import CallbackIntake
from siyu.intake.writer import EventWriter
from siyu.jobs.claim import claim
from siyu.notify.models import OutboxMessage
from siyu.wecom.events import parse_event
from tests.intake.test_callback import add_event, corp, siyu, stored  # noqa: F401 - fixtures
from tests.support.stack import stack

PAST_ANY_CALENDAR = 10**20


def test_an_add_event_timed_past_any_calendar_is_stored_and_welcomed(siyu, corp, db):  # noqa: F811
    slug, tenant_id, crypto = corp
    body, params = crypto.encrypt_callback(add_event(crypto.receive_id, "wmFar", at=PAST_ANY_CALENDAR))
    r = httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=body)
    assert r.status_code == 200  # had been a 500, and WeCom's retries failed the same way
    assert stored(db, tenant_id) == 1
    with db.tenant_session(tenant_id) as s:
        assert s.scalar(select(OutboxMessage.kind)) == "welcome"


def test_one_row_the_database_refuses_fails_its_own_request_not_its_batch(db, settings, corp):  # noqa: F811
    _, tenant_id, crypto = corp
    intake = CallbackIntake(db, SecretBox(settings.secret_key))
    first_stored = threading.Event()
    release = threading.Event()

    def store(rows):  # the real store; the first commit waits, so the next two share one
        intake.store(rows)
        first_stored.set()
        release.wait(10)

    writer = EventWriter(store)

    def row(tenant: int, ext: str):
        inner = add_event(crypto.receive_id, ext).encode()
        return tenant, inner, parse_event(inner)

    async def deliver():
        first = asyncio.ensure_future(writer.store(row(tenant_id, "wmFirst")))
        await asyncio.to_thread(first_stored.wait, 10)
        good = asyncio.ensure_future(writer.store(row(tenant_id, "wmGood")))
        bad = asyncio.ensure_future(writer.store(row(tenant_id + 10**6, "wmNoTenant")))  # FK refuses it
        await asyncio.sleep(0.2)
        release.set()
        return await asyncio.gather(first, good, bad, return_exceptions=True)

    try:
        first, good, bad = asyncio.run(deliver())
    finally:
        release.set()
        writer.close()
    assert first is None and good is None  # WeCom gets its 200 for the good one
    assert isinstance(bad, Exception)
    assert stored(db, tenant_id) == 2


def test_an_event_whose_inner_xml_is_not_utf8_is_refused_with_400(siyu, corp, db):  # noqa: F811
    slug, tenant_id, crypto = corp
    xml = add_event(crypto.receive_id, "wmCafé")
    for inner in [
        xml.replace("<xml>", '<?xml version="1.0" encoding="ISO-8859-1"?><xml>').encode("latin-1"),
        xml.replace("<xml>", '<?xml version="1.0" encoding="UTF-16"?><xml>').encode("utf-16"),
    ]:
        body, params = crypto.encrypt_callback(inner)
        r = httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=body)
        assert r.status_code == 400 and "not UTF-8" in r.text
    assert stored(db, tenant_id) == 0


def _process(st, event_id: int) -> CallbackEvent:
    [row] = claim(st.rt.db, CallbackEvent, 10, where=(CallbackEvent.id == event_id,))
    asyncio.run(intake_tasks.process(st.rt, row))
    with st.session() as s:
        return s.get(CallbackEvent, event_id)


def test_a_stored_event_that_cannot_be_read_fails_once_with_the_reason(settings, db):
    """Stored by an earlier Siyu (UTF-16 with replacement characters): it had been claimed again
    every lease, with an exception logged each time, and never failed."""
    with stack(settings, db, serve_siyu=False) as st:
        unreadable = "\ufffd\ufffd<\x00x\x00m\x00l\x00>\x00"
        event_id = st.stored_event(unreadable.replace("\x00", "") + "<broken")
        event = _process(st, event_id)
        assert event.status == "failed" and "无法解析事件 XML" in event.last_error
        assert claim(st.rt.db, CallbackEvent, 10, where=(CallbackEvent.id == event_id,)) == []


def test_an_add_event_timed_past_any_calendar_adds_its_customer(settings, db):
    with stack(settings, db, serve_siyu=False) as st:
        xml = add_event(st.corp_id, "wmFarAway", at=PAST_ANY_CALENDAR)
        event = _process(st, st.stored_event(xml))
        assert event.status == "done", event.last_error
        with st.session() as s:
            assert s.scalar(select(Customer.id).where(Customer.external_userid == "wmFarAway"))


@pytest.mark.parametrize("where", ["envelope", "event"])
@pytest.mark.parametrize("encoding", ["GBK", "no-such-encoding"])
def test_xml_declaring_an_encoding_the_parser_cannot_read_is_refused_clearly(
    siyu,  # noqa: F811 - the fixtures
    corp,  # noqa: F811
    db,
    encoding,
    where,
):
    """XML declaring an encoding the parser cannot read (GBK, common in China, or one made up)
    is malformed XML like any other: a 400 saying why, not a 500. `envelope`: the POSTed body
    (anyone may send one, no key needed); `event`: the signed, decrypted event inside it."""
    slug, tenant_id, crypto = corp
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>'
    event = add_event(crypto.receive_id, "wmDeclared")
    body, params = crypto.encrypt_callback(declaration + event if where == "event" else event)
    declared = declaration + body if where == "envelope" else body
    r = httpx.post(f"{siyu}/wecom/callback/{slug}", params=params, content=declared.encode())
    # it was a 500 Internal Server Error (pyexpat's ValueError "multi-byte encodings are not
    # supported" / LookupError "unknown encoding" escaped the MalformedXML guard)
    assert r.status_code in (200, 400), f"{r.status_code} {r.text[:100]}"
    if r.status_code == 400:
        assert r.text.startswith("bad request:") and stored(db, tenant_id) == 0
    else:
        assert stored(db, tenant_id) == 1


def test_a_nul_in_the_callback_slug_is_a_404_not_a_500(siyu, corp, db):  # noqa: F811
    """A callback URL whose slug holds a NUL (%00) is no tenant's: PostgreSQL had refused it in
    the tenant's lookup, a 500 anyone could cause without a signature."""
    slug, tenant_id, crypto = corp
    body, params = crypto.encrypt_callback(add_event(crypto.receive_id, "wmNul"))
    r = httpx.post(f"{siyu}/wecom/callback/{slug}%00x", params=params, content=body)
    assert r.status_code == 404, (r.status_code, r.text[:200])
    r = httpx.get(f"{siyu}/wecom/callback/{slug}%00x/archive", params={**params, "echostr": "abc"})
    assert r.status_code == 404, (r.status_code, r.text[:200])
