"""What no field can hold is refused with a clear 422 on every route and on both databases
(PostgreSQL refuses a NUL in text deep in a query, which had answered 500; SQLite stored it),
and a refused value comes back in the answer only as JSON can carry it."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Form, Request

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


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(as_role):
    admin = as_role("admin")
    r = admin.put(  # the six characters \u0000, typed as text; refused for the steps alone
        "/api/v1/sla/policy",
        content=b'{"escalation_contact": "C:\\\\u0000", "steps": "none"}',
        headers={"X-CSRF-Token": admin.csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"] != NUL_REFUSED
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "steps"]]


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
    # a long value is not sent back whole (a 5 MB one had been; now over the body limit: 413)
    r = admin.put("/api/v1/sla/policy", json={"escalation_contact": "x" * 900_000}, headers=headers)
    assert r.status_code == 422 and len(r.content) < 10_000


def test_a_bad_cursor_is_a_422_naming_after_or_before_on_every_list_that_pages_by_cursor(as_role):
    """A script passing `next` and `prev` on was told 这个游标不是该列表给出的 and left to guess
    which of the two it had mangled."""
    admin = as_role("admin")
    for path, params in (
        ("/api/v1/customers", {}),
        ("/api/v1/conversations", {}),
        ("/api/v1/messages/search", {"q": "iphone"}),
        ("/api/v1/sla/board", {}),
        ("/api/v1/events/failed", {}),
    ):
        for way in ("after", "before"):
            r = admin.get(path, params={**params, way: "not-a-cursor"})
            told = f"{way} 不是该列表给出的游标 / {way} is not a cursor this list handed out"
            assert (r.status_code, r.json()) == (422, {"detail": told}), (path, r.text[:200])


def test_a_number_no_database_integer_holds_is_a_422_naming_it(as_role, world):
    """请求里有个数字超出了范围 named no number, and ?card= past 2^63 was a 404 where ?customer= was
    that 422: a partner was left to guess which of its ids it had mangled."""
    admin = as_role("admin")
    huge, below = str(2**63), str(-(2**63) - 1)
    for path, params, name in (
        ("/api/v1/conversations", {"customer": huge}, "customer"),
        ("/api/v1/conversations", {"card": huge}, "card"),
        ("/api/v1/conversations", {"customer": below}, "customer"),
        ("/api/v1/conversations", {"card": below}, "card"),
        (f"/api/v1/conversations/{huge}/messages", {}, "conversation_id"),
        (f"/api/v1/customers/{huge}", {}, "customer_id"),
    ):
        r = admin.get(path, params=params)
        told = f"{name} 超出了范围 / {name} is out of range"
        assert (r.status_code, r.json()) == (422, {"detail": told}), (path, params, r.text[:200])
    # a page whose rows no offset reaches, and ids in a body, by FastAPI's list of errors
    r = admin.get("/api/v1/conversations", params={"page": 2**62})
    assert r.status_code == 422 and [e["loc"] for e in r.json()["detail"]] == [["query", "page"]], r.text
    headers = {"X-CSRF-Token": admin.csrf}
    channel = world.a.channels["门店海报"]
    for method, path, body, loc in (
        (
            "POST",
            "/api/v1/channels",
            {"name": "远方", "department_ids": [2**63]},
            ["body", "department_ids", 0],
        ),
        (
            "PATCH",
            f"/api/v1/channels/{channel}",
            {"department_ids": [1, -(2**63) - 1]},
            ["body", "department_ids", 1],
        ),
        ("POST", "/api/v1/tokens", {"name": "远方", "person_id": 2**63}, ["body", "person_id"]),
    ):
        r = admin.request(method, path, json=body, headers=headers)
        assert r.status_code == 422 and [e["loc"] for e in r.json()["detail"]] == [loc], (path, r.text)
    assert "远方" not in admin.get("/api/v1/channels").text + admin.get("/api/v1/tokens").text
    # a page keeps saying it in words a person reads
    page = admin.get(f"/conversations/{huge}")
    assert page.status_code == 422 and "请求里有个数字超出了范围" in page.text


def test_a_nul_in_a_multipart_text_field_is_refused_before_wecom_is_asked(as_role, db, world):
    from sqlalchemy import select

    from siyu.customers.models import Channel

    admin = as_role("admin")
    r = admin.post(
        "/channels/new",
        data={"csrf_token": admin.csrf, "name": "海报\x00x", "staff_userids": ["zhangsan"]},
        files={"welcome_image": ("", b"", "application/octet-stream")},  # multipart, as the browser sends it
    )
    assert r.status_code == 422 and "空字符" in r.text
    with db.tenant_session(world.a.id) as s:  # (PostgreSQL had answered 500 after WeCom made the code)
        assert s.scalar(select(Channel).where(Channel.name.startswith("海报"))) is None


def test_json_by_another_name_is_checked_too(as_role):
    admin = as_role("admin")
    for kind in ("application/merge-patch+json", "Application/JSON; charset=utf-8"):
        r = admin.put(
            "/api/v1/sla/policy",
            content=b'{"escalation_contact": "zh\\u0000an"}',
            headers={"X-CSRF-Token": admin.csrf, "Content-Type": kind},
        )
        assert r.status_code == 422 and r.json()["detail"] == NUL_REFUSED, (kind, r.text)


def test_a_lone_surrogate_in_a_list_is_a_clear_422(as_role):
    admin = as_role("admin")
    r = admin.post(
        "/api/v1/channels",
        content=b'{"name": "x", "staff_userids": ["\\ud800"]}',
        headers={"X-CSRF-Token": admin.csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"] == input_guard.SURROGATE_REFUSED
    # a pair that makes one character (😀) is no lone surrogate
    r = admin.post(
        "/api/v1/channels",
        content=b'{"name": "x", "staff_userids": ["\\ud83d\\ude00"]}',
        headers={"X-CSRF-Token": admin.csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "😀" in r.text  # refused for naming no staff member


def test_a_body_too_large_for_any_form_is_refused_before_it_is_read(siyu, as_role):
    import httpx

    big = b"x" * (input_guard.MAX_BODY + 1)
    with httpx.Client(base_url=siyu, timeout=10) as anonymous:  # nobody signed in
        r = anonymous.post(
            "/login", content=b"login=" + big, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 413
        r = anonymous.post(  # sent in chunks, without a length
            "/logout",
            content=(big[i : i + 65536] for i in range(0, len(big), 65536)),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413
    admin = as_role("admin")
    r = admin.put(
        "/api/v1/sla/policy",
        content=b'{"escalation_contact": "' + big + b'"}',
        headers={"X-CSRF-Token": admin.csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["detail"] == input_guard.TOO_LARGE


def test_a_long_list_is_not_echoed_whole(as_role):
    admin = as_role("admin")
    r = admin.put(
        "/api/v1/sla/policy",
        json={"escalation_contact": ["x"] * 20_000},
        headers={"X-CSRF-Token": admin.csrf},
    )
    assert r.status_code == 422 and len(r.content) < 5_000


def test_the_guard_leaves_the_body_readable_however_a_route_reads_it():
    app = FastAPI(dependencies=[Depends(input_guard.refuse_nul)])

    # FastAPI parses a route's Form() fields before the guard runs (Annotated and Form are
    # imported at module level: with postponed annotations FastAPI looks them up there)
    @app.post("/fields")
    def fields(name: Annotated[str, Form()]):
        return {"name": name}

    @app.post("/raw")
    async def raw(request: Request):  # the guard reads it first; the route reads it again
        return {"bytes": len(await request.body()), "form": dict(await request.form())}

    async def calls() -> list:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://siyu.test") as client:
            return [
                await client.post("/fields", data={"name": "王"}),
                await client.post("/fields", data={"name": "a\x00"}),
                await client.post("/raw", data={"a": "b"}),
            ]

    named, nul, raw_read = asyncio.run(calls())
    assert named.json() == {"name": "王"} and nul.status_code == 422
    assert raw_read.json() == {"bytes": 3, "form": {"a": "b"}}
