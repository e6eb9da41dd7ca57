"""The conversation and SLA parts of /api/v1 as a script calling them is owed: unknown fields
refused, the spec describing every answer, numbers typed as numbers."""

from __future__ import annotations

from tests.conversations.conftest import Archive, chats, new_waiting, store  # noqa: F401


def test_dismiss_refuses_an_unknown_field_rather_than_marking_whatever_waits(
    as_role,
    db,
    world,
    new_waiting,  # noqa: F811
):
    """POST /dismiss takes {"msgid"} so that a stale screen never silences a newer question.
    A misspelt key ({"msg_id": ...}, {"msgId": ...}) was dropped without a word, and the call
    then marked whatever waited by now: the guard the body exists for was gone. Snooze and the
    policies refuse a field they do not know (422, extra_forbidden); dismiss must too, and mark
    nothing."""
    agent = as_role("admin")  # (赵六's chat: the board tests count 张三's answers of today)
    cid = new_waiting("zhaoliu", "在吗？")
    seen = agent.get(f"/api/v1/conversations/{cid}").json()["awaiting_msgid"]
    ext = agent.get(f"/api/v1/conversations/{cid}").json()["external_userid"]
    arc = Archive()  # answered, then the customer asks again after the page was drawn
    arc.text("zhaoliu", ext, "在的，您说", 20)
    arc.text(ext, "zhaoliu", "我要退款，怎么操作？", 5)
    store(db, world.a.id, arc.items)
    newer = agent.get(f"/api/v1/conversations/{cid}").json()["awaiting_msgid"]
    assert newer and newer != seen  # (a newer question waits now)
    stale = agent.post(  # spelt right, the stale mark is refused
        f"/api/v1/conversations/{cid}/dismiss", json={"msgid": seen}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert stale.status_code == 409

    for key in ("msg_id", "msgId"):
        r = agent.post(
            f"/api/v1/conversations/{cid}/dismiss", json={key: seen}, headers={"X-CSRF-Token": agent.csrf}
        )
        assert r.status_code == 422, (key, r.status_code, r.text[:300])
        assert r.json()["detail"][0]["type"] == "extra_forbidden"
    after = agent.get(f"/api/v1/conversations/{cid}").json()
    assert after["waiting"] is True and after["awaiting_msgid"] == newer
    done = agent.post(  # (and no wait left for the board tests that share this world)
        f"/api/v1/conversations/{cid}/dismiss", json={"msgid": newer}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert done.json()["dismissed"] is True


def test_openapi_describes_the_body_of_a_department_policy_created_with_201(as_role):
    """PUT /api/v1/sla/policies/{department} answers 201 with the new policy in its body, but
    the spec advertised 201 with no content at all: a client generated from it reads nothing
    back (or refuses the body) exactly when a policy was created. The 201 must carry the same
    DepartmentPolicyOut schema as the 200."""
    admin = as_role("admin")
    paths = admin.get("/api/v1/openapi.json").json()["paths"]
    op = paths["/api/v1/sla/policies/{department_wecom_id}"]["put"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/DepartmentPolicyOut"}
    created = op["responses"]["201"]
    assert created.get("content", {}).get("application/json", {}).get("schema") == ok, created
    # and it does answer 201 with that body
    h = {"X-CSRF-Token": admin.csrf}
    admin.delete("/api/v1/sla/policies/4", headers=h)
    try:
        r = admin.put("/api/v1/sla/policies/4", json={"call_cooldown_s": 600}, headers=h)
        assert r.status_code == 201 and r.json()["department_wecom_id"] == 4
    finally:
        admin.delete("/api/v1/sla/policies/4", headers=h)


def test_put_takes_back_a_policy_as_get_gave_it(as_role):
    """A script reads a policy, changes a field and sends it back (as Swagger's 'Try it out'
    invites): PUT refused what GET itself gave, is_default, official_calendar_through and
    updated_at (a department's department_wecom_id and department_name too), as unknown
    fields, while it takes the special dates back as GET gave them, who added them included.
    They are taken back and left as they are; a field misspelt is still refused."""
    admin = as_role("admin")
    h = {"X-CSRF-Token": admin.csrf}
    got = admin.get("/api/v1/sla/policy").json()
    r = admin.put("/api/v1/sla/policy", json={**got, "call_cooldown_s": 1200}, headers=h)
    try:
        assert r.status_code == 200, r.text
        assert admin.get("/api/v1/sla/policy").json()["call_cooldown_s"] == 1200
    finally:
        admin.put("/api/v1/sla/policy", json={"call_cooldown_s": got["call_cooldown_s"]}, headers=h)
    r = admin.put("/api/v1/sla/policy", json={**got, "cooldown_s": 60}, headers=h)
    assert r.status_code == 422 and [e["loc"] for e in r.json()["detail"]] == [["body", "cooldown_s"]]

    admin.delete("/api/v1/sla/policies/4", headers=h)
    try:
        made = admin.put("/api/v1/sla/policies/4", json={}, headers=h).json()
        r = admin.put("/api/v1/sla/policies/4", json={**made, "stale_after_s": 3600}, headers=h)
        assert r.status_code == 200, r.text
        assert (r.json()["department_wecom_id"], r.json()["stale_after_s"]) == (4, 3600)
    finally:
        admin.delete("/api/v1/sla/policies/4", headers=h)


def test_merge_window_takes_a_number_only_as_the_other_policy_numbers_do(as_role):
    """The spec says merge_window_s is a number, and the policy's other numbers are strict
    (call_cooldown_s "600" or a step's delay_s "120" are refused with 422). merge_window_s took
    true as 1 second and "5" as 5 seconds, saved without a word: a script's mistake (a switch
    sent to the wrong field, a value read from a form as text) changed how cards are merged."""
    admin = as_role("admin")
    h = {"X-CSRF-Token": admin.csrf}
    assert admin.put("/api/v1/sla/policy", json={"call_cooldown_s": "600"}, headers=h).status_code == 422
    before = admin.get("/api/v1/sla/policy").json()["merge_window_s"]
    for value in (True, "5"):
        r = admin.put("/api/v1/sla/policy", json={"merge_window_s": value}, headers=h)
        assert r.status_code == 422, (value, r.status_code, r.json().get("merge_window_s"))
        assert admin.get("/api/v1/sla/policy").json()["merge_window_s"] == before
    for path in ("/api/v1/sla/policies/0", "/api/v1/sla/policies/4"):  # the department route alike
        r = admin.put(path, json={"merge_window_s": True}, headers=h)
        assert r.status_code == 422, (path, r.status_code)


def test_a_conversation_says_whether_its_customer_declined_archiving(as_role, db, world):
    """The chat page says 客户已拒绝存档聊天内容 (later messages are not archived, and no wait
    of theirs escalates), but the API dropped what the page read: a script watching the
    customer's SLA could not tell a quiet customer from one whose messages no longer come."""
    from sqlalchemy import select

    from siyu.conversations.models import Conversation

    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhaoliu", "", 30)  # (赵六's: the board tests count 张三's waits)
    event = arc.items[-1].message
    event.pop("text")
    event.update({"msgtype": "disagree", "disagree": {"userid": "zhaoliu", "disagree_time": 1}})
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    assert as_role("admin").get(f"/api/v1/conversations/{cid}").json()["archiving"] == "declined"


def test_a_method_a_path_does_not_take_is_a_405_in_both_languages_naming_the_ones_it_does(as_role, world):
    """DELETE on a channel answered `Method Not Allowed` in English only, the one refusal of the
    API that was not "中文 / English"."""
    admin = as_role("admin")
    channel = world.a.channels["门店海报"]
    r = admin.delete(f"/api/v1/channels/{channel}", headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, PATCH"
    assert r.json() == {
        "detail": "这个地址不支持 DELETE，可用：GET, HEAD, PATCH"
        " / DELETE is not allowed here: use GET, HEAD, PATCH"
    }
    assert admin.get(f"/api/v1/channels/{channel}").status_code == 200


def test_head_answers_as_get_would_without_the_body(as_role, siyu):
    """`curl -I` and uptime monitors ask with HEAD: every address answered 405 (/healthz
    included), as FastAPI's routes take only the methods they name."""
    admin = as_role("admin")
    for path in (
        "/healthz",
        "/api/v1/me",
        "/api/v1/sla/policy",
        "/api/v1/conversations/9223372036854775808",  # a refusal too, as GET has it
        "/api/v1/openapi.json",
        "/sla/policy",
        "/login",  # signed in: on to the home page
        "/static/siyu.css",
        "/no-such-page",
    ):
        got, head = admin.get(path), admin.head(path)
        assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
        for header in ("content-type", "content-length", "location", "cache-control"):
            assert head.headers.get(header) == got.headers.get(header), (path, header)
        assert head.content == b"", path
    # a path taking no GET takes no HEAD either; GET implies HEAD in what a 405 names
    r = admin.head("/api/v1/tokens/1/revoke")
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    r = admin.post("/api/v1/me", headers={"X-CSRF-Token": admin.csrf})
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
    # the spec has no HEAD twin of each GET
    spec = admin.get("/api/v1/openapi.json").json()
    assert not [path for path, ops in spec["paths"].items() if "head" in ops]


def test_a_405_outside_the_api_and_the_pages_names_head_beside_get(as_role):
    """A monitor POSTing /healthz was told Allow: GET, and a PUT on WeCom's callback address got
    GET, HEAD and POST in any order, where HEAD answers on both as GET does: the API's and the
    pages' 405s name GET, HEAD, then the rest."""
    admin = as_role("admin")
    r = admin.post("/healthz")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
    assert admin.head("/healthz").status_code == admin.get("/healthz").status_code
    r = admin.put("/wecom/callback/no-such-tenant")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD, POST")
