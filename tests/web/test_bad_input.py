"""What no field can hold is refused with a clear 422 on every route and on both databases
(PostgreSQL refuses a NUL in text deep in a query, which had answered 500; SQLite stored it),
and a refused value comes back in the answer only as JSON can carry it."""

from __future__ import annotations

import json

from siyu.sla import service
from siyu.web import input_guard
from siyu.web.input_guard import NUL_REFUSED


def _policy_contact(db, tenant_id: int) -> str:
    with db.tenant_session(tenant_id) as s:
        return service.policy_for(s, "").escalation_contact


def test_a_nul_in_the_query_is_refused_on_list_and_search(as_role):
    agent = as_role("agent")
    for path, params in [
        ("/api/v1/conversations", {"staff": "\x00"}),
        ("/api/v1/conversations", {"staff": "a\x00b"}),
        ("/api/v1/messages/search", {"q": "便宜", "staff": "\x00"}),
        ("/api/v1/messages/search", {"q": "\x00"}),
    ]:
        r = agent.get(path, params=params)
        assert r.status_code == 422 and r.json()["detail"] == NUL_REFUSED, (path, params, r.text)
    # a page says it in words, in the page's frame
    page = agent.get("/conversations", params={"q": "a\x00"})
    assert page.status_code == 422 and "空字符" in page.text and "<html" in page.text


def test_a_nul_in_a_json_body_is_refused_and_nothing_is_saved(as_role, db, world):
    admin = as_role("admin")
    before = _policy_contact(db, world.a.id)
    for body in (
        '{"escalation_contact": "zhang\\u0000san"}',
        '{"calendar_days": [{"day": "2026-12-25", "kind": "holiday", "note": "圣\\u0000诞"}]}',
        '{"escalation_contact": "x\\\\\\u0000"}',  # an escaped backslash, then the NUL
    ):
        r = admin.put(
            "/api/v1/sla/policy",
            content=body.encode(),
            headers={"X-CSRF-Token": admin.csrf, "Content-Type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["detail"] == NUL_REFUSED, (body, r.text)
    assert _policy_contact(db, world.a.id) == before


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul():
    assert input_guard.JSON_NUL.search(rb'{"note": "C:\\u0000"}') is None  # the six characters
    assert input_guard.JSON_NUL.search(rb'{"note": "C:\\\u0000"}')  # a backslash, then a NUL
    assert input_guard.JSON_NUL.search(rb'"\u0000"')


def test_a_nul_in_a_form_is_refused(as_role, db, world):
    admin = as_role("admin")
    r = admin.post(
        "/setup/archive", data={"csrf_token": admin.csrf, "mode": "sdk", "sdk_path": "/opt/a\x00.so"}
    )
    assert r.status_code == 422 and "空字符" in r.text


def test_a_lone_surrogate_or_a_huge_value_answers_422_not_500(as_role):
    admin, agent = as_role("admin"), as_role("agent")
    headers = {"X-CSRF-Token": admin.csrf, "Content-Type": "application/json"}
    for raw in ('{"escalation_contact": "\\ud800"}', '{"shifts": [["09:00", "\\udfff"]]}', '{"\\ud800": 1}'):
        r = admin.put("/api/v1/sla/policy", content=raw.encode(), headers=headers)
        assert r.status_code == 422, (raw, r.text)
        json.dumps(r.json())  # JSON, whatever was echoed
    r = agent.post(  # the body is read before the conversation is looked for
        "/api/v1/conversations/1/snooze",
        content=b'{"minutes": "\\ud800"}',
        headers={"X-CSRF-Token": agent.csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    # a 5 MB value is not sent back whole
    r = admin.put("/api/v1/sla/policy", json={"escalation_contact": "x" * 5_000_000}, headers=headers)
    assert r.status_code == 422 and len(r.content) < 10_000
