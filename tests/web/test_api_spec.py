"""/api/v1 as an integration partner reads it: every answer, errors included, fits what
/api/v1/openapi.json declares for its status, so a client generated from the spec reads it."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sqlalchemy import select

from siyu.conversations.models import Conversation
from siyu.web.auth import NOT_SIGNED_IN
from siyu.web.input_guard import NUL_REFUSED
from tests.conversations.conftest import Archive, new_waiting, store  # noqa: F401
from tests.support.openapi import problems, response_schema


def _fits(spec: dict, path: str, method: str, r: httpx.Response) -> list[str]:
    try:
        schema = response_schema(spec, path, method, r.status_code)
    except AssertionError as exc:
        return [str(exc)]
    return problems(spec, schema, r.json())


def test_every_answer_and_every_error_fits_the_schema_the_spec_declares_for_it(
    as_role,
    siyu,
    world,
    db,
    new_waiting,  # noqa: F811
):
    """A client generated from the spec reads each answer by the schema of its status. The
    spec declared 422 as a list of validation errors, but half the 422s carry a sentence
    (added_from after added_to, a cursor the list did not hand out, a policy refused), and it
    declared no body at all for 404 and nothing for 401 (signed out), 403 (no CSRF token, not
    an admin) or 413 (too large): each of those answers failed to parse in such a client."""
    admin, agent = as_role("admin"), as_role("agent")
    spec = admin.get("/api/v1/openapi.json").json()
    # 赵六's chats (the board tests count 张三's waits); another tenant's chat, answered by staff
    cid = new_waiting("zhaoliu", "在吗？")
    arc = Archive()
    arc.text("zhangsan", f"wm{arc.sfx}", "您好", 10)
    store(db, world.b.id, arc.items)
    foreign = as_role("admin", "b").get("/api/v1/conversations").json()["items"][0]["id"]
    arc = Archive()  # two questions of 赵六's customer, the client naming the first: 409
    first = arc.text(f"wm{arc.sfx}", "zhaoliu", "在吗", 40)
    arc.text(f"wm{arc.sfx}", "zhaoliu", "发货了吗", 30)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        asked_twice = s.scalar(select(Conversation.id).where(Conversation.external_userid == f"wm{arc.sfx}"))
    cust, chan = world.a.customers["王女士"], world.a.channels["门店海报"]
    h, ah = {"X-CSRF-Token": admin.csrf}, {"X-CSRF-Token": agent.csrf}
    anon = httpx.Client(base_url=siyu, timeout=10)
    calls = [  # (client, method, spec path, url, kwargs, status expected)
        (admin, "GET", "/api/v1/me", "/api/v1/me", {}, 200),
        (admin, "GET", "/api/v1/staff", "/api/v1/staff", {}, 200),
        (admin, "GET", "/api/v1/customers", "/api/v1/customers", {}, 200),
        (admin, "GET", "/api/v1/customers/{customer_id}", f"/api/v1/customers/{cust}", {}, 200),
        (
            admin,
            "GET",
            "/api/v1/customers/{customer_id}/timeline",
            f"/api/v1/customers/{cust}/timeline",
            {},
            200,
        ),
        (admin, "GET", "/api/v1/tags", "/api/v1/tags", {}, 200),
        (admin, "GET", "/api/v1/channels", "/api/v1/channels", {}, 200),
        (admin, "GET", "/api/v1/channels/{channel_id}", f"/api/v1/channels/{chan}", {}, 200),
        (admin, "GET", "/api/v1/channels/{channel_id}/stats", f"/api/v1/channels/{chan}/stats", {}, 200),
        (
            admin,
            "GET",
            "/api/v1/channels/{channel_id}/tag_failures",
            f"/api/v1/channels/{chan}/tag_failures",
            {},
            200,
        ),
        (admin, "GET", "/api/v1/conversations", "/api/v1/conversations", {}, 200),
        (admin, "GET", "/api/v1/conversations/{conversation_id}", f"/api/v1/conversations/{cid}", {}, 200),
        (
            admin,
            "GET",
            "/api/v1/conversations/{conversation_id}/messages",
            f"/api/v1/conversations/{cid}/messages",
            {},
            200,
        ),
        (admin, "GET", "/api/v1/messages/search", "/api/v1/messages/search?q=在吗", {}, 200),
        (admin, "GET", "/api/v1/sla/board", "/api/v1/sla/board", {}, 200),
        (admin, "GET", "/api/v1/sla/policy", "/api/v1/sla/policy", {}, 200),
        (admin, "GET", "/api/v1/sla/policies", "/api/v1/sla/policies", {}, 200),
        (admin, "GET", "/api/v1/sla/policies/{department_wecom_id}", "/api/v1/sla/policies/0", {}, 200),
        (
            admin,
            "POST",
            "/api/v1/conversations/{conversation_id}/snooze",
            f"/api/v1/conversations/{cid}/snooze",
            {"json": {"minutes": 15}, "headers": h},
            200,
        ),
        (
            agent,
            "PUT",
            "/api/v1/staff/{userid}/call-phone",
            "/api/v1/staff/zhangsan/call-phone",
            {"json": {"phone": ""}, "headers": ah},
            200,
        ),
        # what goes wrong
        (anon, "GET", "/api/v1/customers", "/api/v1/customers", {}, 401),
        (anon, "GET", "/api/v1/me", "/api/v1/me", {}, 401),
        (
            admin,
            "POST",
            "/api/v1/conversations/{conversation_id}/snooze",
            f"/api/v1/conversations/{cid}/snooze",
            {"json": {"minutes": 15}},
            403,
        ),
        (agent, "GET", "/api/v1/sla/policy", "/api/v1/sla/policy", {}, 403),
        (agent, "POST", "/api/v1/channels", "/api/v1/channels", {"json": {"name": "x"}, "headers": ah}, 403),
        (
            agent,
            "PUT",
            "/api/v1/staff/{userid}/call-phone",
            "/api/v1/staff/lisi/call-phone",
            {"json": {"phone": ""}, "headers": ah},
            403,
        ),
        (admin, "GET", "/api/v1/customers/{customer_id}", "/api/v1/customers/999999999", {}, 404),
        (
            admin,
            "GET",
            "/api/v1/conversations/{conversation_id}",
            f"/api/v1/conversations/{foreign}",
            {},
            404,
        ),
        (admin, "GET", "/api/v1/sla/policies/{department_wecom_id}", "/api/v1/sla/policies/999", {}, 404),
        (
            admin,
            "DELETE",
            "/api/v1/sla/policies/{department_wecom_id}",
            "/api/v1/sla/policies/0",
            {"headers": h},
            409,
        ),
        (
            admin,
            "POST",
            "/api/v1/conversations/{conversation_id}/snooze",
            f"/api/v1/conversations/{cid}/snooze",
            {"content": json.dumps({"minutes": 15, "x": "x" * 2_000_000}), "headers": h},
            413,
        ),
        (admin, "GET", "/api/v1/customers", "/api/v1/customers?per_page=1000", {}, 422),
        (
            admin,
            "GET",
            "/api/v1/customers",
            "/api/v1/customers?added_from=2026-02-01&added_to=2026-01-01",
            {},
            422,
        ),
        (admin, "GET", "/api/v1/conversations", "/api/v1/conversations?after=nonsense", {}, 422),
        (admin, "GET", "/api/v1/conversations", "/api/v1/conversations?card=987654321", {}, 404),
        (admin, "GET", "/api/v1/sla/board", "/api/v1/sla/board?limit=1", {}, 200),
        (admin, "GET", "/api/v1/sla/board", "/api/v1/sla/board?limit=201", {}, 422),
        (admin, "GET", "/api/v1/sla/board", "/api/v1/sla/board?after=nonsense", {}, 422),
        (admin, "GET", "/api/v1/sla/board", "/api/v1/sla/board?day=2026-02-30", {}, 422),
        (admin, "GET", "/api/v1/sla/board", "/api/v1/sla/board?day=2099-01-01", {}, 422),
        (
            admin,
            "PUT",
            "/api/v1/sla/policy",
            "/api/v1/sla/policy",
            {
                "json": {"steps": [{"delay_s": 60, "action": "app_message", "target": "contact"}]},
                "headers": h,
            },
            422,
        ),
        (
            admin,
            "POST",
            "/api/v1/conversations/{conversation_id}/snooze",
            f"/api/v1/conversations/{cid}/snooze",
            {"content": "{minutes: 15", "headers": {**h, "content-type": "application/json"}},
            422,
        ),
        (
            admin,
            "POST",
            "/api/v1/conversations/{conversation_id}/dismiss",
            f"/api/v1/conversations/{asked_twice}/dismiss",
            {"json": {"msgid": first}, "headers": h},
            409,
        ),
        (
            admin,
            "POST",
            "/api/v1/conversations/{conversation_id}/dismiss",
            f"/api/v1/conversations/{cid}/dismiss",
            {"headers": h},
            200,
        ),
    ]
    wrong = []
    try:
        for client, method, path, url, kw, status in calls:
            r = client.request(method, url, **kw)
            assert r.status_code == status, (method, url, r.status_code, r.text[:300])
            if found := _fits(spec, path, method, r):
                wrong.append((method, url, status, found[:3]))
    finally:
        anon.close()
        admin.post(f"/api/v1/conversations/{cid}/dismiss", headers=h)  # (no wait left for the board tests)
        admin.post(f"/api/v1/conversations/{asked_twice}/dismiss", headers=h)
    assert not wrong, "\n".join(map(str, wrong))


def test_who_may_call_is_answered_before_what_is_wrong_with_the_body(as_role, siyu):
    """A script whose session ended, or that forgot X-CSRF-Token, is told so whatever it
    sent: 401 / 403, as for a well-formed body. A body that was not JSON was answered 422
    "JSON decode error" instead, and a script fixing its JSON then met the 401 it had been
    owed from the start (FastAPI reads the body before it asks who calls)."""
    agent = as_role("agent")
    url = "/api/v1/conversations/1/snooze"  # (who calls, and the body, are read before the id)
    broken = {"content": "{minutes: 15", "headers": {"content-type": "application/json"}}
    with httpx.Client(base_url=siyu, timeout=10) as signed_out:
        r = signed_out.post(url, **broken)
        assert r.status_code == 401, r.text
        assert r.json() == {"detail": NOT_SIGNED_IN}
        assert signed_out.post(url, json={"minutes": 15}).status_code == 401  # (as with a good body)
    r = agent.post(url, **broken)  # no CSRF token
    assert r.status_code == 403, r.text
    assert r.json() == agent.post(url, json={"minutes": 15}).json()
    r = agent.post(url, content=broken["content"], headers={**broken["headers"], "X-CSRF-Token": agent.csrf})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_a_body_not_in_utf8_is_a_clear_422_after_who_may_call(as_role, siyu):
    """A JSON body in GBK (a Windows script's default for Chinese) was a 400 "There was an
    error parsing the body": a status the spec declares on no such route, English only, and
    before the 401 / 403 the caller was owed. It is a 422 saying what to send, as JSON that
    does not parse is."""
    admin = as_role("admin")
    gbk = {
        "content": '{"name": "展会渠道", "staff_userids": ["zhangsan"]}'.encode("gbk"),
        "headers": {"content-type": "application/json; charset=gbk"},
    }
    with httpx.Client(base_url=siyu, timeout=10) as signed_out:
        r = signed_out.post("/api/v1/channels", **gbk)
        assert (r.status_code, r.json()) == (401, {"detail": NOT_SIGNED_IN})
    assert admin.post("/api/v1/channels", **gbk).status_code == 403  # no CSRF token
    r = admin.post(
        "/api/v1/channels", content=gbk["content"], headers={**gbk["headers"], "X-CSRF-Token": admin.csrf}
    )
    assert r.status_code == 422 and r.json() == {
        "detail": "请求体不是 UTF-8 编码的 JSON / the body is not JSON in UTF-8"
    }, r.text
    spec = admin.get("/api/v1/openapi.json").json()
    assert problems(spec, response_schema(spec, "/api/v1/channels", "post", 422), r.json()) == []
    assert "展会渠道" not in admin.get("/api/v1/channels").text


def test_json_nested_too_deeply_is_a_422_saying_so_not_that_it_is_not_utf8(as_role, siyu):
    """100,000 `[` (json.loads gives up on them) were told 请求体不是 UTF-8 编码的 JSON, sending
    the caller to look at an encoding that was fine."""
    admin = as_role("admin")
    deep = '{"name": "深渠道", "staff_userids": ["zhangsan"], "x": '.encode() + b"[" * 100_000
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=siyu, timeout=10) as signed_out:  # who may call first, as for any body
        assert signed_out.post("/api/v1/channels", content=deep, headers=headers).status_code == 401
    r = admin.post("/api/v1/channels", content=deep, headers={**headers, "X-CSRF-Token": admin.csrf})
    assert r.status_code == 422 and r.json() == {
        "detail": "请求体的 JSON 嵌套太深 / the JSON in the body is nested too deeply"
    }, r.text
    spec = admin.get("/api/v1/openapi.json").json()
    assert problems(spec, response_schema(spec, "/api/v1/channels", "post", 422), r.json()) == []
    assert "深渠道" not in admin.get("/api/v1/channels").text


def test_a_number_of_too_many_digits_is_a_422_saying_so_not_that_it_is_not_utf8(as_role):
    """A UTF-8 body holding an integer of 5,000 digits (Python's json takes at most 4,300) had been
    told 请求体不是 UTF-8 编码的 JSON, sending the caller to look for a charset problem."""
    admin = as_role("admin")
    body = ('{"minutes": ' + "1" * 5000 + "}").encode()
    headers = {"X-CSRF-Token": admin.csrf, "Content-Type": "application/json"}
    r = admin.post("/api/v1/conversations/1/snooze", content=body, headers=headers)
    assert r.status_code == 422 and r.json() == {
        "detail": "请求体的 JSON 里有个数字太长 / a number in the JSON body has too many digits"
    }, r.text


def test_a_body_not_sent_as_json_is_a_415_saying_what_to_send(as_role, siyu):
    """curl's `-d '{"minutes": 15}'` sends the JSON with a form's Content-Type, and FastAPI
    read it as text: 422 "Input should be a valid dictionary or object to extract fields
    from", the body repeated, which tells a partner nothing of the header they forgot. It is a
    415 saying to send Content-Type: application/json, after who may call, and declared by the
    spec on every operation that takes a body."""
    agent = as_role("agent")
    url = "/api/v1/conversations/1/snooze"  # (who calls, and the body, are read before the id)
    h = {"X-CSRF-Token": agent.csrf}
    for kind, named in (
        ("application/x-www-form-urlencoded", "这次是 application/x-www-form-urlencoded"),
        ("text/plain; charset=utf-8", "这次是 text/plain"),
        (None, "这次没有"),
    ):
        headers = {**h, "Content-Type": kind} if kind else h
        r = agent.post(url, content=b'{"minutes": 15}', headers=headers)
        assert r.status_code == 415, (kind, r.text)
        assert "Content-Type: application/json" in r.json()["detail"] and named in r.json()["detail"], r.text
        assert "minutes" not in r.text
    with httpx.Client(base_url=siyu, timeout=10) as signed_out:
        r = signed_out.post(url, content=b'{"minutes": 15}', headers={"Content-Type": "text/plain"})
        assert (r.status_code, r.json()) == (401, {"detail": NOT_SIGNED_IN})
    r = agent.post(url, content=b'{"minutes": 15}', headers={"Content-Type": "text/plain"})  # no CSRF
    assert r.status_code == 403, r.text
    assert agent.post(url, headers=h).status_code == 422  # no body at all: the body is missing
    r = agent.post(url, content=b'{"minutes": 15}', headers={**h, "Content-Type": "text/plain"})
    spec = agent.get("/api/v1/openapi.json").json()
    assert _fits(spec, "/api/v1/conversations/{conversation_id}/snooze", "post", r) == []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert ("415" in operation["responses"]) == ("requestBody" in operation), (method, path)


def test_who_may_call_is_answered_before_a_nul_in_the_body_or_the_query(as_role, siyu):
    """A NUL is refused for every route before the route reads anything, and that came before
    the sign-in check: a signed-out script was told 422 where any other bad body gets 401."""
    agent = as_role("agent")
    url = "/api/v1/conversations/1/snooze"
    with httpx.Client(base_url=siyu, timeout=10) as signed_out:
        r = signed_out.post(url, json={"minutes": 15, "note": "a\x00b"})
        assert (r.status_code, r.json()) == (401, {"detail": NOT_SIGNED_IN}), r.text
        r = signed_out.get("/api/v1/conversations", params={"staff": "a\x00b"})
        assert (r.status_code, r.json()) == (401, {"detail": NOT_SIGNED_IN}), r.text
    r = agent.post(url, json={"minutes": 15, "note": "a\x00b"})  # no CSRF token
    assert r.status_code == 403 and r.json() == agent.post(url, json={"minutes": 15}).json()
    r = agent.post(url, json={"minutes": 15, "note": "a\x00b"}, headers={"X-CSRF-Token": agent.csrf})
    assert (r.status_code, r.json()) == (422, {"detail": NUL_REFUSED})


def test_times_are_written_in_utc_whatever_time_zone_the_postgresql_server_keeps(
    as_role,
    siyu,
    world,
    new_waiting,  # noqa: F811
    web_settings,
    database_url,
):
    """A PostgreSQL server set to the corp's zone (`timezone = 'Asia/Shanghai'` in
    postgresql.conf is common in China) handed Siyu its times at +08:00: the API wrote
    `2026-12-05T22:08:55+08:00` where on SQLite, and for times Siyu computes itself (the
    board's `now`, a snooze's `until`), it writes `2026-12-05T14:08:55Z`. Every time leaves
    in UTC, whichever database and however it is set up."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps no time zone of its own")
    from siyu.app import create_app
    from siyu.db import Database
    from siyu.runtime import Runtime
    from tests.support.servers import serve
    from tests.web.conftest import login

    admin = as_role("admin")
    cid = new_waiting("zhaoliu", "在吗？")  # marked no reply needed: its times no longer tick
    assert admin.post(f"/api/v1/conversations/{cid}/dismiss", headers={"X-CSRF-Token": admin.csrf}).json()[
        "dismissed"
    ]
    paths = (
        f"/api/v1/customers/{world.a.customers['王女士']}",
        f"/api/v1/conversations/{cid}",
        f"/api/v1/conversations/{cid}/messages",
    )
    in_utc = [admin.get(p).json() for p in paths]
    sep = "&" if "?" in database_url else "?"
    shanghai = Database(f"{database_url}{sep}options=-c%20TimeZone%3DAsia%2FShanghai")
    try:
        with serve(create_app(web_settings, Runtime.create(web_settings, shanghai))) as url:
            client = login(url, world.a.logins["admin"])
            try:
                answers = [client.get(p).json() for p in paths]
            finally:
                client.close()
    finally:
        shanghai.dispose()
    assert answers[0]["first_added_at"].endswith("Z"), answers[0]["first_added_at"]
    assert answers[2]["items"][0]["dismissed_at"].endswith("Z"), answers[2]["items"][0]
    assert answers == in_utc


def test_the_spec_names_the_values_of_every_field_that_takes_a_fixed_few(as_role):
    """A client generated from the spec gets an enum for each field that takes a fixed few
    values, and can switch on them: the timeline's kind, a breach's action and a skipped
    step's reason were plain strings (listed in prose, if at all), and a channel's daily
    figures gave their day as any string, not a date."""
    schemas = as_role("admin").get("/api/v1/openapi.json").json()["components"]["schemas"]

    def prop(model: str, field: str) -> dict:
        found = schemas[model]["properties"][field]
        return schemas[found["$ref"].rsplit("/", 1)[1]] if "$ref" in found else found

    from siyu.customers.queries import EVENT_TEXT  # (every kind the timeline words)

    assert set(prop("TimelineEventOut", "kind")["enum"]) == set(EVENT_TEXT)
    assert prop("StepBreaches", "action")["enum"] == ["app_message", "voice_call"]
    assert prop("SkippedStep", "reason")["enum"] == ["stale", "nobody"]
    # a board row's next step: what it does and to whom, null when none is to come
    row = schemas["WaitingRow"]["properties"]
    assert {"enum": ["app_message", "voice_call"], "type": "string"} in row["next_step_action"]["anyOf"]
    assert {"enum": ["agent", "leader", "contact"], "type": "string"} in row["next_step_target"]["anyOf"]
    assert {"$ref": "#/components/schemas/StepPerson"} in row["next_step_to"]["anyOf"]
    assert set(schemas["StepPerson"]["required"]) == {"userid", "name"}
    assert prop("StatsDay", "day")["format"] == "date"


def test_the_spec_declares_413_only_where_a_body_is_taken(as_role):
    """DELETE /api/v1/sla/policies/{id} takes no body, yet the spec listed a 413 (body too
    large) for it, as for every write: a client would handle an answer that cannot come."""
    spec = as_role("admin").get("/api/v1/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            takes_body = "requestBody" in operation
            assert ("413" in operation["responses"]) == takes_body, (method, path)
    assert "413" not in spec["paths"]["/api/v1/sla/policies/{department_wecom_id}"]["delete"]["responses"]


def test_the_spec_tells_every_way_a_fired_step_went(as_role):
    """The board's fired steps say 已暂缓，未打 (snoozed), 等待已结束，未打 (ended) and 不会拨打
    (never) for calls that did not ring; the spec still said a snoozed call reads skipped and
    named none of them, so a client switching on `delivery` met values it was never told of."""
    from siyu.sla.names import DELIVERY_NAMES

    schemas = as_role("admin").get("/api/v1/openapi.json").json()["components"]["schemas"]
    said = schemas["FiredStep"]["properties"]["delivery"]["description"]
    named = set(re.findall(r"[a-z_]+", said))
    # nobody and stale are a skipped step's reason (SkippedStep), never a fired one's delivery
    assert set(DELIVERY_NAMES) - {"nobody", "stale"} <= named, said
    assert "skipped (also a call still to ring whose wait was snoozed" not in said, said
