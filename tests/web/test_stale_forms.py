"""A form opened before another admin saved: the SLA policy forms (/sla/policy, a department's)
and the channel edit form (/channels/{id}/edit) carry the version they were drawn from; a
stale one is not saved, the form comes back with what was typed, a notice and what is stored
now, naming the admin who saved it (where known). The same form sent twice (a double click)
is saved, not refused as stale.

A tenant of its own with two admins (甲 and 乙): the policies changed here are nobody else's."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import delete, update

from siyu.runtime import Runtime
from siyu.sla import service as sla_service
from siyu.sla.models import SlaPolicy
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Person
from tests.web.conftest import DEPARTMENTS, PASSWORD, STAFF, _make_tenant, login

_VERSION = re.compile(r'name="version" value="([^"]+)"')
STALE_NOTICE = "在你打开后已被其他管理员"  # who saved it is not known
# 乙 saved it, at a time of day
BY_YI_AT = re.compile(r"在你打开后已被「yi管理员」于 \d\d:\d\d 修改")
NOT_SAVED = "你的修改没有保存"


@pytest.fixture(scope="module")
def admins(db, siyu, web_settings, emu_url):
    sfx = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=emu_url, timeout=10) as emu:
        tenant = _make_tenant(db, Runtime.create(web_settings, db), emu, "bing")
    with db.tenant_session(tenant.id) as s:
        tenancy.save_directory(s, DEPARTMENTS, STAFF)
        for who in ("jia", "yi"):
            tenancy.add_person(s, f"admin-{who}-{sfx}", f"{who}管理员", "admin", PASSWORD)
    first, second = login(siyu, f"admin-jia-{sfx}"), login(siyu, f"admin-yi-{sfx}")
    first.tenant_id = second.tenant_id = tenant.id
    yield first, second
    first.close()
    second.close()


def drawn(client: httpx.Client, path: str) -> str:
    """The version the form at `path` is drawn from, as a browser opening it gets it."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = _VERSION.search(page.text)
    return found.group(1) if found else ""


def policy_form(
    client: httpx.Client, version: str, first_step_min: str, cooldown_min: str = "15", holidays: bool = True
) -> dict:
    return {
        "csrf_token": client.csrf,
        "version": version,
        "enabled": "1",
        "step_delay_min": [first_step_min, "10"],
        "step_action": ["app_message", "voice_call"],
        "step_target": ["agent", "agent"],
        "shifts": "09:00-18:00",
        "public_holidays": "1" if holidays else "",
        "escalation_contact": "",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
        "call_cooldown_min": cooldown_min,
    }


def first_step(client: httpx.Client, path: str = "/api/v1/sla/policy") -> int:
    return client.get(path).json()["steps"][0]["delay_s"]


def test_a_stale_policy_form_is_not_saved_and_says_so_and_a_fresh_one_saves(admins):
    jia, yi = admins
    version = drawn(jia, "/sla/policy")
    r = yi.post("/sla/policy", data=policy_form(yi, version, "3"))
    assert r.status_code == 303, r.text

    # 甲's form was drawn before 乙 saved: not saved, 乙's 3 minutes stay
    r = jia.post("/sla/policy", data=policy_form(jia, version, "7", cooldown_min="20"))
    assert r.status_code == 409
    assert BY_YI_AT.search(r.text) and NOT_SAVED in r.text and "changed by yi管理员" in r.text
    assert 'value="7"' in r.text and 'value="20"' in r.text  # what 甲 typed is kept
    assert re.search(r'id="stored-now">现在保存的是：3 分钟 提醒卡片→负责成员', r.text)
    assert first_step(jia) == 180

    # saved again from that page (after a look), it saves: it carries what is stored now
    again = _VERSION.search(r.text)[1]
    r = jia.post("/sla/policy", data=policy_form(jia, again, "7", cooldown_min="20"))
    assert r.status_code == 303, r.text
    assert first_step(jia) == 420


def test_a_department_form_filled_in_from_the_policy_it_follows_is_stale_once_that_one_changes(admins, db):
    """销售一组 has no policy of its own: its form is filled in with the one it follows. 乙
    changes that one (the tenant's), then gives 销售部 above it a policy of its own; 甲's form,
    drawn before, had been saved as 销售一组's own copy of the old tenant policy, undoing for
    its members what 乙 had done, with no word."""
    jia, yi = admins
    with db.tenant_session(jia.tenant_id) as s:
        s.execute(delete(SlaPolicy).where(SlaPolicy.department_wecom_id.in_([2, 3])))
    path = "/sla/policy/departments/3"
    page = jia.get(path).text
    assert 'name="follows"' in page
    form = {**policy_form(jia, _VERSION.search(page)[1], "6"), "follows": "1"}
    r = yi.post("/sla/policy", data=policy_form(yi, drawn(yi, "/sla/policy"), "3"))
    assert r.status_code == 303, r.text

    r = jia.post(path, data=form)
    assert r.status_code == 409 and BY_YI_AT.search(r.text) and NOT_SAVED in r.text
    assert "现在保存的是：3 分钟" in r.text and 'value="6"' in r.text
    assert jia.get("/api/v1/sla/policies/3").status_code == 404  # nothing saved
    again = {**form, "version": _VERSION.search(r.text)[1]}
    r = yi.put("/api/v1/sla/policies/2", json={"steps": [{"delay_s": 240, "action": "app_message",
               "target": "agent"}]}, headers={"X-CSRF-Token": yi.csrf})  # fmt: skip
    assert r.status_code == 201, r.text
    r = jia.post(path, data=again)  # what it follows now is 销售部's
    assert r.status_code == 409 and "现在保存的是：4 分钟" in r.text
    r = jia.post(path, data={**form, "version": _VERSION.search(r.text)[1]})  # after a look: saved
    assert r.status_code == 303, r.text
    assert first_step(jia, "/api/v1/sla/policies/3") == 360
    with db.tenant_session(jia.tenant_id) as s:
        s.execute(delete(SlaPolicy).where(SlaPolicy.department_wecom_id.in_([2, 3])))


def test_the_same_policy_form_sent_twice_is_saved_not_refused_as_stale(admins):
    """A double click on 保存: the second request carries the version the first replaced, but
    it asks for what is now stored; "your change was not saved" would be untrue."""
    jia, _ = admins
    form = policy_form(jia, drawn(jia, "/sla/policy"), "4")
    for _ in range(2):
        r = jia.post("/sla/policy", data=form)
        assert r.status_code == 303, r.text
        assert NOT_SAVED not in jia.get(r.headers["location"]).text
    assert first_step(jia) == 240


def test_a_stale_department_policy_form_keeps_the_other_admins_policy(admins):
    jia, yi = admins
    path = "/sla/policy/departments/4"  # 客服部: none of its own yet, the add form
    version = drawn(jia, path)
    r = yi.post(path, data=policy_form(yi, drawn(yi, path), "5"))
    assert r.status_code == 303, r.text

    r = jia.post(path, data=policy_form(jia, version, "6"))
    assert r.status_code == 409
    assert BY_YI_AT.search(r.text) and NOT_SAVED in r.text and 'value="6"' in r.text
    assert "现在保存的是：5 分钟" in r.text
    assert first_step(jia, "/api/v1/sla/policies/4") == 300

    # deleted meanwhile: said so, not saved either
    version = drawn(jia, path)
    r = yi.post(f"{path}/remove", data={"csrf_token": yi.csrf})
    assert r.status_code == 303
    r = jia.post(path, data=policy_form(jia, version, "6"))
    assert r.status_code == 409 and "已被删除" in r.text and NOT_SAVED in r.text
    assert jia.get("/api/v1/sla/policies/4").status_code == 404
    # the form shows what 甲 typed: the add page's "filled in from the policy it follows" is untrue
    assert "下面是你填写的内容" in r.text and "下面已按该策略填好" not in r.text


def channel_form(client: httpx.Client, version: str, name: str, welcome: str, **link: str) -> dict:
    return {
        "csrf_token": client.csrf,
        "version": version,
        "name": name,
        "staff_userids": ["zhangsan", "lisi"],
        "skip_verify": "1",
        "welcome_text": welcome,
        **link,
    }


@pytest.fixture
def channel(admins):
    jia, _ = admins
    name = f"海报-{uuid.uuid4().hex[:6]}"
    made = jia.post(
        "/api/v1/channels",
        json={"name": name, "staff_userids": ["zhangsan", "lisi"], "welcome_text": "你好"},
        headers={"X-CSRF-Token": jia.csrf},
    )
    assert made.status_code == 201, made.text
    yield made.json()["id"], name
    jia.post(f"/channels/{made.json()['id']}/disable", data={"csrf_token": jia.csrf})


def test_a_stale_channel_form_is_not_saved_and_the_other_admins_change_stays(admins, channel):
    jia, yi = admins
    channel_id, name = channel
    path = f"/channels/{channel_id}/edit"
    version = drawn(jia, path)
    r = yi.post(path, data=channel_form(yi, drawn(yi, path), f"{name}-乙改", "你好"))
    assert r.status_code == 303, r.text

    # 甲 changes the welcome text on the form drawn before: it would put back the old name
    r = jia.post(path, data=channel_form(jia, version, name, "甲的新欢迎语"))
    assert r.status_code == 409
    assert "在你打开后已被「yi管理员」修改" in r.text and NOT_SAVED in r.text
    assert "changed by yi管理员" in r.text
    assert "甲的新欢迎语</textarea>" in r.text
    assert f"现在保存的是：名称「{name}-乙改」" in r.text
    stored = jia.get(f"/api/v1/channels/{channel_id}").json()
    assert (stored["name"], stored["welcome_text"]) == (f"{name}-乙改", "你好")

    # saved again from the refused page, it saves
    again = _VERSION.search(r.text)[1]
    r = jia.post(path, data=channel_form(jia, again, f"{name}-乙改", "甲的新欢迎语"))
    assert r.status_code == 303, r.text
    stored = jia.get(f"/api/v1/channels/{channel_id}").json()
    assert (stored["name"], stored["welcome_text"]) == (f"{name}-乙改", "甲的新欢迎语")


def test_the_same_channel_form_sent_twice_is_saved_not_refused_as_stale(admins, channel):
    jia, _ = admins
    channel_id, name = channel
    path = f"/channels/{channel_id}/edit"
    form = channel_form(jia, drawn(jia, path), f"{name}-新", "双击")
    for _ in range(2):
        r = jia.post(path, data=form)
        assert r.status_code == 303, r.text
    stored = jia.get(f"/api/v1/channels/{channel_id}").json()
    assert (stored["name"], stored["welcome_text"]) == (f"{name}-新", "双击")


def test_the_api_refuses_a_channel_patch_whose_if_match_is_stale(admins, channel):
    """PATCH /api/v1/channels/{id} with If-Match: the ETag its GET gave; without it, the last
    change wins (as before)."""
    jia, yi = admins
    channel_id, name = channel
    url = f"/api/v1/channels/{channel_id}"
    etag = jia.get(url).headers["ETag"]
    r = yi.patch(url, json={"name": f"{name}-乙"}, headers={"X-CSRF-Token": yi.csrf})
    assert r.status_code == 200, r.text

    r = jia.patch(url, json={"welcome_text": "甲"}, headers={"X-CSRF-Token": jia.csrf, "If-Match": etag})
    assert r.status_code == 412
    assert r.json()["detail"] == (
        "渠道已被「yi管理员」修改，请重新读取后再改 / yi管理员 changed the channel since the ETag you"
        " sent; read it again"
    )
    assert jia.get(url).json()["welcome_text"] == "你好"

    etag = jia.get(url).headers["ETag"]
    r = jia.patch(url, json={"welcome_text": "甲"}, headers={"X-CSRF-Token": jia.csrf, "If-Match": etag})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["welcome_text"]) == (f"{name}-乙", "甲")
    assert r.headers["ETag"] not in ("", etag)  # the version it is at now


NONE_TO_MATCH = "部门「客服部」没有自己的策略（可能已被删除）：要新建请不带 If-Match"
STEP_9MIN = [{"delay_s": 540, "action": "app_message", "target": "agent"}]


_CHANGED_BY = re.compile(
    r"(策略|特殊日期)已被「([^」]+)」于 (\d{4}-\d\d-\d\d \d\d:\d\d) 修改，请重新读取后再改 /"
    r" \2 changed the (?:policy|special dates) at \3 \(Asia/Shanghai\) since the ETag you sent; read it again"
)


def _changed_by(r: httpx.Response) -> tuple[str, str] | None:
    """What the 412 says was changed, and by whom (with when, in the tenant's time zone)."""
    found = _CHANGED_BY.fullmatch(r.json()["detail"])
    return (found[1], found[2]) if found else None


def test_a_412_for_a_policy_saved_by_nobody_recorded_says_when_it_changed_in_plain_chinese(db, fresh_tenant):
    """A policy saved before savers were kept (or by Siyu itself) names nobody: the 412 had read
    策略已被于 … 修改, a 被 with nobody after it."""
    from datetime import UTC, datetime

    from siyu.sla.api import tenant_policy_changed

    with db.tenant_session(fresh_tenant) as s:
        sla_service.save_policy(s, 0, now=datetime(2031, 5, 6, 1, 2, tzinfo=UTC), by="", stale_after_s=3600)
        assert tenant_policy_changed(s) == (
            "策略已于 2031-05-06 09:02 被修改，请重新读取后再改 / someone changed the policy at"
            " 2031-05-06 09:02 (Asia/Shanghai) since the ETag you sent; read it again"
        )


def test_the_api_refuses_a_tenant_policy_put_whose_if_match_is_stale(admins):
    """PUT /api/v1/sla/policy with If-Match: the ETag its GET gave. 乙's save on the page, or a
    special date added there, makes it stale; without If-Match the last save wins (as before)."""
    jia, yi = admins
    url = "/api/v1/sla/policy"
    write = {"X-CSRF-Token": jia.csrf}
    etag = jia.get(url).headers["ETag"]
    r = yi.post("/sla/policy", data=policy_form(yi, drawn(yi, "/sla/policy"), "3"))
    assert r.status_code == 303, r.text

    r = jia.put(url, json={"steps": STEP_9MIN}, headers={**write, "If-Match": etag})
    assert r.status_code == 412
    assert _changed_by(r) == ("策略", "yi管理员"), r.text
    assert first_step(jia) == 180

    etag = jia.get(url).headers["ETag"]
    r = jia.put(url, json={"steps": STEP_9MIN}, headers={**write, "If-Match": etag})
    assert r.status_code == 200, r.text
    assert first_step(jia) == 540
    assert r.headers["ETag"] not in ("", etag) and r.headers["ETag"] == jia.get(url).headers["ETag"]

    # a special date is part of what PUT replaces (calendar_days): one added on the page since
    etag = r.headers["ETag"]
    day = {"csrf_token": yi.csrf, "day": "2031-03-03", "until": "", "kind": "holiday", "note": "乙加的"}
    assert yi.post("/sla/policy/days", data=day).status_code == 303
    r = jia.put(url, json={"calendar_days": []}, headers={**write, "If-Match": etag})
    assert r.status_code == 412
    assert "2031-03-03" in [str(d["day"]) for d in jia.get(url).json()["calendar_days"]]
    # 甲 saved the policy last, but 乙's date moved the version since: the 412 names 乙 (it named
    # 甲, who had changed nothing since, as the one who saved the policy last)
    assert _changed_by(r) == ("特殊日期", "yi管理员"), r.text
    # a date taken back moves it as well: 甲's, after 乙 added another
    assert yi.post("/sla/policy/days", data={**day, "day": "2031-04-04"}).status_code == 303
    assert jia.post("/sla/policy/days/2031-03-03/remove", data={"csrf_token": jia.csrf}).status_code == 303
    r = jia.put(url, json={"calendar_days": []}, headers={**write, "If-Match": etag})
    assert r.status_code == 412 and _changed_by(r) == ("特殊日期", "jia管理员"), r.text

    r = jia.put(url, json={"calendar_days": []}, headers=write)  # no If-Match: the last save wins
    assert r.status_code == 200, r.text
    assert jia.get(url).json()["calendar_days"] == []


def test_the_api_refuses_a_department_policy_put_whose_if_match_is_stale_or_has_nothing_to_match(admins):
    """PUT /api/v1/sla/policies/{department} with If-Match: a stale ETag is a 412 naming who
    saved since; one that creates the policy (none to match, RFC 9110) is a 412 and creates
    nothing; a bogus one is a 400 naming nobody."""
    jia, yi = admins
    url = "/api/v1/sla/policies/4"  # 客服部
    write = {"X-CSRF-Token": jia.csrf}
    jia.delete(url, headers=write)
    for sent in ('"0123456789abcdef0123"', "*"):
        r = jia.put(url, json={"steps": STEP_9MIN}, headers={**write, "If-Match": sent})
        assert r.status_code == 412, (sent, r.text)
        assert r.json()["detail"].startswith(NONE_TO_MATCH)
        assert jia.get(url).status_code == 404  # nothing was created

    r = jia.put(url, json={"steps": STEP_9MIN}, headers=write)
    assert r.status_code == 201, r.text
    etag = r.headers["ETag"]
    assert etag and jia.get(url).headers["ETag"] == etag
    r = yi.put(url, json={"merge_window_s": 90.0}, headers={"X-CSRF-Token": yi.csrf})  # no field of the form
    assert r.status_code == 200, r.text

    r = jia.put(url, json={"merge_window_s": 30.0}, headers={**write, "If-Match": etag})
    assert r.status_code == 412
    assert r.json()["detail"] == (
        "策略已被「yi管理员」修改，请重新读取后再改 / yi管理员 changed the policy since the ETag you sent;"
        " read it again"
    )
    # an empty ETag ('""': a script's ETag variable left unset) is one Siyu never gave, not none sent
    for bogus in ('"bogus"', "bogus", 'W/"1"', '""', 'W/""', ","):
        r = jia.put(url, json={"merge_window_s": 30.0}, headers={**write, "If-Match": bogus})
        assert r.status_code == 400, (bogus, r.text)
        assert r.json()["detail"] == (
            "If-Match 不是 Siyu 给出的版本：请用 GET 该策略时响应头里的 ETag / If-Match is not a version"
            " Siyu gave: send the ETag header of GET /api/v1/sla/policies/{department}"
        )
    assert jia.get(url).json()["merge_window_s"] == 90.0

    etag = jia.get(url).headers["ETag"]
    r = jia.put(url, json={"merge_window_s": 30.0}, headers={**write, "If-Match": f'"zzz", {etag}'})
    assert r.status_code == 200, r.text
    assert jia.get(url).json()["merge_window_s"] == 30.0
    jia.delete(url, headers=write)


def test_a_policy_put_that_changes_nothing_leaves_who_saved_it_and_when(admins, db):
    """A script sending back the policy as GET gave it (a sync run every hour) moved updated_at,
    the page's 上次保存 and who saved it last: a 412 then sent whoever was refused to ask 乙, who
    had changed nothing. Unchanged, they stay as they were (the ETag too); a change moves them."""
    jia, yi = admins
    for url, page, department in (
        ("/api/v1/sla/policy", "/sla/policy", 0),
        ("/api/v1/sla/policies/4", "/sla/policy/departments/4", 4),
    ):
        write, write_yi = {"X-CSRF-Token": jia.csrf}, {"X-CSRF-Token": yi.csrf}
        if department:
            jia.delete(url, headers=write)
            assert jia.put(url, json={}, headers=write).status_code == 201
        got = jia.get(url)
        before_jia, cooldown = got.headers["ETag"], got.json()["call_cooldown_s"]
        r = jia.put(url, json={"call_cooldown_s": 600 if cooldown != 600 else 1200}, headers=write)
        assert r.status_code == 200, r.text
        saved = jia.get(url)

        r = yi.put(url, json=saved.json(), headers={**write_yi, "If-Match": saved.headers["ETag"]})
        assert r.status_code == 200, r.text
        assert r.headers["ETag"] == saved.headers["ETag"]
        assert r.json()["updated_at"] == saved.json()["updated_at"] == jia.get(url).json()["updated_at"]
        r = yi.put(url, json={"call_cooldown_s": cooldown}, headers={**write_yi, "If-Match": before_jia})
        assert r.status_code == 412 and "「jia管理员」" in r.json()["detail"], (url, r.text)

        # saved a while ago: the page's 上次保存 says so after a save that changes nothing
        with db.tenant_session(jia.tenant_id) as s:
            s.execute(
                update(SlaPolicy)
                .where(SlaPolicy.department_wecom_id == department)
                .values(updated_at=datetime(2025, 1, 2, 3, 4, tzinfo=UTC))
            )
        assert yi.put(url, json=yi.get(url).json(), headers=write_yi).status_code == 200
        assert "上次保存：2025-01-02 11:04" in jia.get(page).text, url

        r = yi.put(url, json={"call_cooldown_s": cooldown}, headers=write_yi)
        assert r.status_code == 200, r.text
        was, now = (datetime.fromisoformat(x.json()["updated_at"]) for x in (saved, r))
        assert now > was, r.text
        assert r.headers["ETag"] != saved.headers["ETag"]
        assert "上次保存：2025-01-02 11:04" not in jia.get(page).text, url
        r = jia.put(url, json={"call_cooldown_s": 600}, headers={**write, "If-Match": saved.headers["ETag"]})
        assert r.status_code == 412 and "「yi管理员」" in r.json()["detail"], (url, r.text)
        if department:
            jia.delete(url, headers=write)


def test_a_department_policy_delete_with_a_stale_if_match_removes_nothing(admins):
    """DELETE /api/v1/sla/policies/{department} with If-Match: 乙's change since 甲 read it
    keeps the policy (412 naming 乙); at the current ETag it is removed; once removed, the
    same If-Match is a 412, not a 404 that would read as "already done"."""
    jia, yi = admins
    url = "/api/v1/sla/policies/4"  # 客服部
    write = {"X-CSRF-Token": jia.csrf}
    jia.delete(url, headers=write)
    assert jia.put(url, json={"steps": STEP_9MIN}, headers=write).status_code == 201
    etag = jia.get(url).headers["ETag"]
    assert yi.put(url, json={"merge_window_s": 90.0}, headers={"X-CSRF-Token": yi.csrf}).status_code == 200

    r = jia.delete(url, headers={**write, "If-Match": etag})
    assert r.status_code == 412, r.text
    assert r.json()["detail"].startswith("策略已被「yi管理员」修改")
    assert jia.get(url).json()["merge_window_s"] == 90.0  # still there, as 乙 left it
    assert jia.delete(url, headers={**write, "If-Match": '"bogus"'}).status_code == 400

    etag = jia.get(url).headers["ETag"]
    assert jia.delete(url, headers={**write, "If-Match": etag}).status_code == 204
    assert jia.get(url).status_code == 404
    r = jia.delete(url, headers={**write, "If-Match": etag})  # (told it is gone, not how to create one)
    assert r.status_code == 412 and r.json()["detail"].startswith("部门「客服部」的策略已被删除或从未设置")
    delete = jia.get("/api/v1/openapi.json").json()["paths"]["/api/v1/sla/policies/{department_wecom_id}"][
        "delete"
    ]
    assert any(p["in"] == "header" and p["name"].lower() == "if-match" for p in delete["parameters"])


def test_the_policy_puts_declare_if_match_and_their_400_and_412(admins):
    jia, _ = admins
    paths = jia.get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/sla/policy", "/api/v1/sla/policies/{department_wecom_id}"):
        put = paths[path]["put"]
        header = next(p for p in put["parameters"] if p["in"] == "header" and p["name"].lower() == "if-match")
        assert not header.get("required")
        assert {"400", "412"} <= set(put["responses"]), path


def stale_fields(page: str) -> list[str]:
    """The refused form's list of what saving it would overwrite, one line a field."""
    found = re.search(r'<ul[^>]*id="stale-fields"[^>]*>(.*?)</ul>', page, re.S)
    assert found, "no list of the fields that differ"
    return [re.sub(r"<[^>]+>", "", li).strip() for li in re.findall(r"<li>(.*?)</li>", found[1], re.S)]


def test_a_stale_policy_form_lists_each_field_it_would_overwrite_by_name(admins):
    """乙 changed only the call spacing and the holidays: 甲's refused form says so field by
    field (they were in no summary), so that saving it again undoes nothing unseen."""
    jia, yi = admins
    yi.post("/sla/policy", data=policy_form(yi, drawn(yi, "/sla/policy"), "3"))  # a known start
    version = drawn(jia, "/sla/policy")
    r = yi.post("/sla/policy", data=policy_form(yi, version, "3", cooldown_min="25", holidays=False))
    assert r.status_code == 303, r.text

    r = jia.post("/sla/policy", data=policy_form(jia, version, "3", cooldown_min="15"))
    assert r.status_code == 409 and NOT_SAVED in r.text
    assert stale_fields(r.text) == [
        "按国家法定节假日和调休：现在保存的是 否，你填写的是 是",
        "两次电话至少间隔：现在保存的是 25 分钟，你填写的是 15 分钟",
    ]
    assert "两次电话至少间隔 25 分钟" in r.text  # the summary has it too
    api = jia.get("/api/v1/sla/policy").json()
    assert (api["call_cooldown_s"], api["public_holidays"]) == (1500, False)


def remove_version(page: str) -> str:
    found = re.search(r'action="[^"]*/remove".*?name="version" value="([^"]+)"', page, re.S)
    assert found, "the remove form carries no version"
    return found[1]


def test_a_department_policy_is_not_deleted_from_a_page_drawn_before_another_admin_changed_it(admins):
    jia, yi = admins
    path = "/sla/policy/departments/3"  # 销售一组
    r = yi.post(path, data=policy_form(yi, drawn(yi, path), "5"))
    assert r.status_code == 303, r.text
    version = remove_version(jia.get(path).text)
    r = yi.post(path, data=policy_form(yi, drawn(yi, path), "8"))
    assert r.status_code == 303, r.text

    # 甲 deletes what they saw (5 minutes); 乙's 8 minutes is not what they meant to delete
    r = jia.post(f"{path}/remove", data={"csrf_token": jia.csrf, "version": version})
    assert r.status_code == 409
    assert BY_YI_AT.search(r.text) and "没有删除" in r.text and "现在保存的是：8 分钟" in r.text
    assert first_step(jia, "/api/v1/sla/policies/3") == 480

    # deleted from the refused page (after a look), it is deleted
    r = jia.post(f"{path}/remove", data={"csrf_token": jia.csrf, "version": remove_version(r.text)})
    assert r.status_code == 303, r.text
    assert jia.get("/api/v1/sla/policies/3").status_code == 404


def test_a_stale_channel_form_lists_the_other_admins_welcome_and_link_in_full(admins, channel):
    jia, yi = admins
    channel_id, name = channel
    path = f"/channels/{channel_id}/edit"
    version = drawn(jia, path)
    welcome = "欢迎光临本店，" * 8 + "结尾"  # longer than the 40 characters a summary kept
    link = {"link_url": "https://example.com/a", "link_title": "乙的标题", "link_desc": "乙的描述"}
    r = yi.post(path, data=channel_form(yi, drawn(yi, path), name, welcome, **link))
    assert r.status_code == 303, r.text

    mine = {"link_url": "https://example.com/a", "link_title": "甲的标题"}
    r = jia.post(path, data=channel_form(jia, version, name, "你好", **mine))
    assert r.status_code == 409 and NOT_SAVED in r.text
    assert stale_fields(r.text) == [
        f"欢迎语：现在保存的是 「{welcome}」，你填写的是 「你好」",
        "链接标题：现在保存的是 「乙的标题」，你填写的是 「甲的标题」",
        "链接描述：现在保存的是 「乙的描述」，你填写的是 （空）",
    ]
    stored_now = re.search(r'id="stored-now">(.*?)</p>', r.text, re.S)[1]
    assert welcome in stored_now and "乙的标题" in stored_now and "乙的描述" in stored_now


def test_if_match_is_a_declared_header_and_any_etag_it_lists_may_match(admins, channel):
    jia, yi = admins
    channel_id, name = channel
    url = f"/api/v1/channels/{channel_id}"
    spec = jia.get("/api/v1/openapi.json").json()
    params = spec["paths"]["/api/v1/channels/{channel_id}"]["patch"]["parameters"]
    header = next(p for p in params if p["in"] == "header" and p["name"].lower() == "if-match")
    assert not header.get("required")

    headers = {"X-CSRF-Token": jia.csrf}
    etag = jia.get(url).headers["ETag"]
    r = jia.patch(url, json={"welcome_text": "一"}, headers={**headers, "If-Match": f'"zzz", {etag}'})
    assert r.status_code == 200, r.text  # RFC 9110: one of the listed ETags matching is enough
    r = jia.patch(url, json={"welcome_text": "二"}, headers={**headers, "If-Match": "*"})
    assert r.status_code == 200, r.text  # * : any version of a channel that exists
    r = jia.patch(url, json={"welcome_text": "三"}, headers={**headers, "If-Match": f'"zzz", {etag}'})
    assert r.status_code == 412  # neither is the version it is at now
    assert jia.get(url).json()["welcome_text"] == "二"


def test_an_if_match_siyu_never_gave_is_refused_as_such_naming_nobody(admins, channel):
    """If-Match: "bogus" was a 412 saying the last admin to save had changed the channel since:
    a typo or a mangled header blamed someone. It is a 400 saying to send the ETag of GET, and
    nothing changes; an ETag of the right shape that is no longer current is still a 412."""
    jia, yi = admins
    channel_id, name = channel
    url = f"/api/v1/channels/{channel_id}"
    r = yi.patch(url, json={"welcome_text": "乙"}, headers={"X-CSRF-Token": yi.csrf})
    assert r.status_code == 200, r.text
    for bogus in ('"bogus"', "bogus", 'W/"1"', '"zzz", "abc"', '""', 'W/""', ","):
        r = jia.patch(url, json={"welcome_text": "甲"}, headers={"X-CSRF-Token": jia.csrf, "If-Match": bogus})
        assert r.status_code == 400, (bogus, r.text)
        assert r.json()["detail"] == (
            "If-Match 不是 Siyu 给出的版本：请用 GET 该渠道时响应头里的 ETag / If-Match is not a version"
            " Siyu gave: send the ETag header of GET /api/v1/channels/{id}"
        )
        assert "yi管理员" not in r.text
    assert jia.get(url).json()["welcome_text"] == "乙"
    r = jia.patch(
        url,
        json={"welcome_text": "甲"},
        headers={"X-CSRF-Token": jia.csrf, "If-Match": '"0123456789abcdef0123"'},
    )
    assert r.status_code == 412 and "yi管理员" in r.json()["detail"]


FORM_NOT_DRAWN = "这个表单带的版本不是 Siyu 给出的，没有保存：请重新打开本页再改"


def test_a_form_whose_version_siyu_never_gave_is_not_saved_and_names_nobody(admins, channel):
    """A form posted with version=bogus (a script, a tampered page) was refused as stale, 409
    naming the admin who saved last as having changed it: it is a 400 saying to open the page
    again, and nothing is saved or removed (the channel form, the policy forms)."""
    jia, yi = admins
    channel_id, name = channel
    yi.patch(f"/api/v1/channels/{channel_id}", json={"welcome_text": "乙"}, headers={"X-CSRF-Token": yi.csrf})
    r = jia.post(f"/channels/{channel_id}/edit", data=channel_form(jia, "bogus", name, "甲"))
    assert r.status_code == 400 and FORM_NOT_DRAWN in r.text and "yi管理员" not in r.text
    assert jia.get(f"/api/v1/channels/{channel_id}").json()["welcome_text"] == "乙"

    path = "/sla/policy/departments/3"
    r = yi.post(path, data=policy_form(yi, drawn(yi, path), "5"))
    assert r.status_code == 303, r.text
    yi.post("/sla/policy", data=policy_form(yi, drawn(yi, "/sla/policy"), "3"))
    for form_path in ("/sla/policy", path):
        r = jia.post(form_path, data=policy_form(jia, "bogus", "9"))
        assert r.status_code == 400 and FORM_NOT_DRAWN in r.text and "yi管理员" not in r.text, r.text
    assert (first_step(jia), first_step(jia, "/api/v1/sla/policies/3")) == (180, 300)
    r = jia.post(f"{path}/remove", data={"csrf_token": jia.csrf, "version": "bogus"})
    assert r.status_code == 400 and FORM_NOT_DRAWN in r.text and "yi管理员" not in r.text
    assert jia.get("/api/v1/sla/policies/3").status_code == 200


def test_a_policy_saved_where_no_one_is_signed_in_is_said_changed_by_another_admin(admins, db):
    """Saved by Siyu itself (the command line, the demo), or before who saved it was kept: the
    notice keeps its words, naming no one, rather than the admin who saved before."""
    jia, yi = admins
    yi.post("/sla/policy", data=policy_form(yi, drawn(yi, "/sla/policy"), "3"))
    version = drawn(jia, "/sla/policy")
    with db.tenant_session(jia.tenant_id) as s:
        sla_service.save_policy(s, 0, steps=[{"delay_s": 540, "action": "app_message", "target": "agent"}])

    r = jia.post("/sla/policy", data=policy_form(jia, version, "7"))
    assert r.status_code == 409
    assert STALE_NOTICE in r.text and "yi管理员" not in r.text and "changed by someone else" in r.text


def test_an_api_save_is_named_to_the_admin_whose_form_it_made_stale(admins):
    """The API saves as the signed-in person too (a token as its person and the token)."""
    jia, yi = admins
    path = "/sla/policy/departments/3"
    yi.post(path, data=policy_form(yi, drawn(yi, path), "5"))
    version = drawn(jia, path)
    body = {"steps": [{"delay_s": 600, "action": "app_message", "target": "agent"}]}
    r = yi.put("/api/v1/sla/policies/3", json=body, headers={"X-CSRF-Token": yi.csrf})
    assert r.status_code == 200, r.text

    r = jia.post(path, data=policy_form(jia, version, "6"))
    assert r.status_code == 409 and BY_YI_AT.search(r.text)


def test_a_save_made_with_an_api_token_is_named_with_the_token(admins, channel):
    """A channel or a policy an integration saved with 乙's token was said saved by 乙 himself:
    the admin whose form it made stale went to ask 乙, who had done nothing. It names the token
    too, as what a token marks 无需回复 or snoozes does (Viewer.signature)."""
    jia, yi = admins
    made = yi.post("/api/v1/tokens", json={"name": "CRM 同步"}, headers={"X-CSRF-Token": yi.csrf}).json()
    signed = "yi管理员 · API 令牌「CRM 同步」"
    channel_id, name = channel
    url = f"/api/v1/channels/{channel_id}"
    etag = jia.get(url).headers["ETag"]
    path = "/sla/policy/departments/3"
    version = drawn(jia, path)
    with httpx.Client(
        base_url=str(yi.base_url), headers={"Authorization": f"Bearer {made['token']}"}
    ) as token:
        assert token.patch(url, json={"name": f"{name}-令牌"}).status_code == 200
        body = {"steps": [{"delay_s": 420, "action": "app_message", "target": "agent"}]}
        assert token.put("/api/v1/sla/policies/3", json=body).status_code in (200, 201)

    r = jia.patch(url, json={"welcome_text": "甲"}, headers={"X-CSRF-Token": jia.csrf, "If-Match": etag})
    assert r.status_code == 412 and f"渠道已被「{signed}」修改" in r.json()["detail"], r.text
    r = jia.post(path, data=policy_form(jia, version, "6"))
    assert r.status_code == 409 and f"在你打开后已被「{signed}」于" in r.text, r.text[:300]


# 甲's own save, from another tab: said as theirs, at a time of day, and still refused
OWN_SAVE = re.compile(r"你刚才在另一个页面保存过这份策略（\d\d:\d\d），这个页面是在那之前打开的，")


def test_a_policy_form_made_stale_by_the_admins_own_save_in_another_tab_says_it_was_theirs(admins):
    """甲 opens the policy in two tabs and saves in the first: the second is refused (saving it
    would undo the first tab's change), but said to have been changed by 「甲」 themselves it
    read as someone else's doing ("I didn't change anything?")."""
    jia, _ = admins
    jia.post("/sla/policy", data=policy_form(jia, drawn(jia, "/sla/policy"), "3"))  # a known start
    tab_a, tab_b = drawn(jia, "/sla/policy"), drawn(jia, "/sla/policy")
    assert jia.post("/sla/policy", data=policy_form(jia, tab_a, "4")).status_code == 303

    r = jia.post("/sla/policy", data=policy_form(jia, tab_b, "3", cooldown_min="20"))
    assert r.status_code == 409
    assert OWN_SAVE.search(r.text) and NOT_SAVED in r.text, r.text
    assert "已被「jia管理员」" not in r.text and "you saved this in another tab or page at" in r.text
    assert stale_fields(r.text) == [
        "提醒步骤：现在保存的是 4 分钟 提醒卡片→负责成员；10 分钟 语音电话→负责成员，"
        "你填写的是 3 分钟 提醒卡片→负责成员；10 分钟 语音电话→负责成员",
        "两次电话至少间隔：现在保存的是 15 分钟，你填写的是 20 分钟",
    ]
    assert first_step(jia) == 240  # the first tab's save stands


def test_a_department_policy_deleted_from_a_tab_drawn_before_the_admins_own_save_says_it_was_theirs(admins):
    jia, _ = admins
    path = "/sla/policy/departments/3"
    assert jia.post(path, data=policy_form(jia, drawn(jia, path), "5")).status_code == 303
    tab_b = remove_version(jia.get(path).text)
    assert jia.post(path, data=policy_form(jia, drawn(jia, path), "8")).status_code == 303

    r = jia.post(f"{path}/remove", data={"csrf_token": jia.csrf, "version": tab_b})
    assert r.status_code == 409
    assert OWN_SAVE.search(r.text) and "策略没有删除" in r.text and "现在保存的是：8 分钟" in r.text
    assert "已被「jia管理员」" not in r.text
    assert first_step(jia, "/api/v1/sla/policies/3") == 480


def test_a_channel_form_made_stale_by_the_admins_own_save_in_another_tab_says_it_was_theirs(admins, channel):
    jia, _ = admins
    channel_id, name = channel
    path = f"/channels/{channel_id}/edit"
    tab_a, tab_b = drawn(jia, path), drawn(jia, path)
    assert jia.post(path, data=channel_form(jia, tab_a, f"{name}-甲改", "你好")).status_code == 303

    r = jia.post(path, data=channel_form(jia, tab_b, name, "甲的新欢迎语"))
    assert r.status_code == 409
    assert "你刚才在另一个页面保存过这个渠道，这个页面是在那之前打开的，你的修改没有保存" in r.text, r.text
    assert "已被「jia管理员」" not in r.text
    assert f"现在保存的是：名称「{name}-甲改」" in r.text
    assert jia.get(f"/api/v1/channels/{channel_id}").json()["name"] == f"{name}-甲改"


def test_a_save_by_a_namesake_is_not_said_to_be_the_viewers_own(admins, db):
    """Two people of the tenant by one name (both 管理员): the save may be the other's, so the
    notice names the name as before rather than tell 甲 it was theirs."""
    jia, _ = admins
    with db.tenant_session(jia.tenant_id) as s:
        namesake = tenancy.add_person(s, f"namesake-{uuid.uuid4().hex[:6]}", "jia管理员", "agent", PASSWORD)
    try:
        tab_a, tab_b = drawn(jia, "/sla/policy"), drawn(jia, "/sla/policy")
        assert jia.post("/sla/policy", data=policy_form(jia, tab_a, "6")).status_code == 303

        r = jia.post("/sla/policy", data=policy_form(jia, tab_b, "2"))
        assert r.status_code == 409
        assert re.search(r"在你打开后已被「jia管理员」于 \d\d:\d\d 修改", r.text) and not OWN_SAVE.search(
            r.text
        )
        # the special dates' names as well (stale_notice.named_for)
        day = {"csrf_token": jia.csrf, "day": "2032-04-04", "until": "", "kind": "holiday", "note": "同名"}
        assert jia.post("/sla/policy/days", data=day).status_code == 303
        page = jia.get("/sla/policy").text
        assert re.search(r"同名\s*<small[^>]*>jia管理员 [-\d: ]+ 添加</small>", page), page
        assert (
            jia.post("/sla/policy/days/2032-04-04/remove", data={"csrf_token": jia.csrf}).status_code == 303
        )
    finally:  # the other tests' jia is the only one so named
        with db.tenant_session(jia.tenant_id) as s:
            s.delete(s.get(Person, namesake.id))


ADDED_BY = re.compile(
    r"2032-05-05 · 放假 · 乙加的\s*<small[^>]*>yi管理员 \d{4}-\d\d-\d\d \d\d:\d\d 添加</small>"
)


def test_each_special_date_says_who_added_it_and_when_and_a_removed_one_who_removed_it(admins):
    """A holiday nobody remembered adding, or one gone from the list, could not be traced to
    anyone: the dates kept no name."""
    jia, yi = admins
    day = {"csrf_token": yi.csrf, "day": "2032-05-05", "until": "", "kind": "holiday", "note": "乙加的"}
    assert yi.post("/sla/policy/days", data=day).status_code == 303
    assert ADDED_BY.search(jia.get("/sla/policy").text)
    assert re.search(
        r"2032-05-05 · 放假 · 乙加的\s*<small[^>]*>你 [-\d: ]+ 添加</small>", yi.get("/sla/policy").text
    )
    listed = jia.get("/api/v1/sla/policy").json()["calendar_days"]
    got = next(d for d in listed if d["day"] == "2032-05-05")
    assert got["added_by"] == "yi管理员" and got["added_at"]

    # the API's PUT takes the dates back as GET gave them; unchanged, they keep who added them
    r = jia.put("/api/v1/sla/policy", json={"calendar_days": listed}, headers={"X-CSRF-Token": jia.csrf})
    assert r.status_code == 200, r.text
    assert ADDED_BY.search(jia.get("/sla/policy").text)

    r = jia.post("/sla/policy/days/2032-05-05/remove", data={"csrf_token": jia.csrf})
    assert r.status_code == 303
    page = yi.get("/sla/policy").text
    assert re.search(r"最近删除：2032-05-05（jia管理员 \d{4}-\d\d-\d\d \d\d:\d\d 删除）", page), page
    assert not ADDED_BY.search(page)
    # read by who removed it, the removal is theirs (their own name read as someone else's)
    page = jia.get("/sla/policy").text
    assert re.search(r"最近删除：2032-05-05（你 \d{4}-\d\d-\d\d \d\d:\d\d 删除）", page), page


def test_a_date_added_in_one_tab_stays_when_the_policy_is_saved_from_a_tab_opened_before(admins):
    """The policy form carries no dates: saving it, drawn before a date was added in another
    tab, is neither refused for that date nor takes it away."""
    jia, _ = admins
    tab_a = drawn(jia, "/sla/policy")
    day = {"csrf_token": jia.csrf, "day": "2032-06-06", "until": "", "kind": "workday", "note": "补班"}
    assert jia.post("/sla/policy/days", data=day).status_code == 303

    r = jia.post("/sla/policy", data=policy_form(jia, tab_a, "5"))
    assert r.status_code == 303, r.text
    assert first_step(jia) == 300
    page = jia.get("/sla/policy").text
    assert re.search(r"2032-06-06 · 上班 · 补班\s*<small[^>]*>你 [-\d: ]+ 添加</small>", page), page
    assert {"day": "2032-06-06", "kind": "workday", "note": "补班"}.items() <= next(
        d for d in jia.get("/api/v1/sla/policy").json()["calendar_days"] if d["day"] == "2032-06-06"
    ).items()


def test_a_date_added_while_a_policy_is_being_saved_waits_for_that_save_and_the_other_way_round(admins, db):
    """A policy save times the open waits' next steps by the special dates, and a date added
    moves them by the policy: at the same moment, each read what the other had not committed,
    and the later commit left the steps due as if the date, or the new clock, were not there."""
    import threading

    if not db.is_postgres:
        pytest.skip("SQLite has one writer at a time (SIYU_TEST_DATABASE_URL)")
    jia, _ = admins
    answers: list[int] = []

    def add_a_date(on: str) -> None:
        day = {"csrf_token": jia.csrf, "day": on, "until": "", "kind": "holiday", "note": ""}
        answers.append(jia.post("/sla/policy/days", data=day).status_code)

    with db.tenant_session(jia.tenant_id) as s:  # a policy save, not committed yet
        sla_service.hold_policy(s, 3)
        sla_service.save_policy(s, 3, steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}])
        other = threading.Thread(target=add_a_date, args=("2032-07-07",))
        other.start()
        other.join(timeout=1.5)
        assert not answers, "the date was added while the policy save was under way"
    other.join(timeout=30)
    assert answers == [303]

    path = "/sla/policy/departments/3"
    version = drawn(jia, path)
    saved: list[int] = []
    with db.tenant_session(jia.tenant_id) as s:  # a date added, not committed yet
        sla_service.hold_calendar(s)
        sla_service.set_calendar_day(s, date(2032, 8, 8), "holiday")
        other = threading.Thread(
            target=lambda: saved.append(jia.post(path, data=policy_form(jia, version, "2")).status_code)
        )
        other.start()
        other.join(timeout=1.5)
        assert not saved, "the policy was saved while a date was being added"
    other.join(timeout=30)
    assert saved == [303]


def test_deleting_a_department_policy_from_the_policy_pages_list_respects_another_admins_change(admins):
    """/sla/policy lists each department's own policy in a line (1 分钟 …) with a 删除 button.
    甲 opens the page and sees 销售一组's 5 minutes; 乙 then changes it to 8 minutes. 甲 clicks
    删除 beside the 5 minutes he saw: as from the department's page, 乙's policy is not deleted
    unseen (409). The list's form had carried no version, and it was deleted."""
    jia, yi = admins
    path = "/sla/policy/departments/3"  # 销售一组
    r = yi.post(path, data=policy_form(yi, drawn(yi, path), "5"))
    assert r.status_code == 303, r.text
    listed = jia.get("/sla/policy").text
    row = re.search(r'<li data-dept="3".*?</li>', listed, re.S)[0]
    assert "5 分钟" in row
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', row.split("/remove")[1]))
    r = yi.post(path, data=policy_form(yi, drawn(yi, path), "8"))
    assert r.status_code == 303, r.text

    r = jia.post(f"{path}/remove", data=form)  # the list's 删除, as the browser posts it
    still = jia.get("/api/v1/sla/policies/3")
    assert still.status_code == 200 and first_step(jia, "/api/v1/sla/policies/3") == 480, (
        f"list form fields {sorted(form)}; remove answered {r.status_code}; policy now {still.status_code}"
    )
    assert r.status_code == 409
