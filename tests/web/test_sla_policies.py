"""Departments' own SLA policies over real HTTP: GET/PUT/DELETE /api/v1/sla/policies/{dept}
and the pages under /sla/policy/departments; admin only, CSRF, tenant isolation, and a
member of the department getting its steps (service.policy_for).

The seeded directory (tests/web/conftest.py): 总部 (1) > 销售部 (2) > 销售一组 (3, 张三);
总部 > 客服部 (4, 李四 赵六). Both tenants have the same department ids."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import delete, update

from siyu.conversations import service as conversations
from siyu.insights.needs_reply import default_classifier
from siyu.runtime import Runtime
from siyu.sla import service
from siyu.sla.models import SlaEscalation, SlaPolicy
from siyu.tenancy import service as tenancy
from tests.support.board import whole_board
from tests.web.conftest import DEPARTMENTS, PASSWORD, STAFF, _make_tenant, login

LEADER_1MIN = [{"delay_s": 60, "action": "app_message", "target": "leader"}]


@pytest.fixture(autouse=True)
def no_department_policies(db, world):
    """Each test starts and ends without department policies (the tenant's is left alone)."""

    def clear():
        for t in (world.a, world.b):
            with db.tenant_session(t.id) as s:
                s.execute(delete(SlaPolicy).where(SlaPolicy.department_wecom_id != 0))

    clear()
    yield
    clear()


def steps_of(db, tenant_id: int, userid: str) -> list[tuple]:
    with db.tenant_session(tenant_id) as s:
        return [(x.delay_s, x.action, x.target) for x in service.policy_for(s, userid).steps]


def tenant_steps(db, tenant_id: int) -> list[tuple]:
    with db.tenant_session(tenant_id) as s:
        return [(x.delay_s, x.action, x.target) for x in service.policy_for(s, "").steps]


def test_create_update_delete_a_department_policy_and_its_members_follow_it(as_role, world, db):
    admin = as_role("admin")
    headers = {"X-CSRF-Token": admin.csrf}
    listed = admin.get("/api/v1/sla/policies").json()
    assert [p["department_wecom_id"] for p in listed["policies"]] == [0]
    assert [(d["wecom_id"], d["name"], d["depth"]) for d in listed["departments"]] == [
        (1, "总部", 0),
        (2, "销售部", 1),
        (3, "销售一组", 2),
        (4, "客服部", 1),
    ]
    assert {d["policy"] for d in listed["departments"]} <= {"tenant", "default"}
    before = tenant_steps(db, world.a.id)

    # 销售部 gets its own: 张三 (销售一组, under 销售部) follows it; 李四 (客服部) does not.
    r = admin.put("/api/v1/sla/policies/2", json={"steps": LEADER_1MIN}, headers=headers)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["department_wecom_id"] == 2 and got["department_name"] == "销售部"
    assert got["steps"] == LEADER_1MIN and got["is_default"] is False
    assert steps_of(db, world.a.id, "zhangsan") == [(60, "app_message", "leader")]
    assert steps_of(db, world.a.id, "lisi") == before
    assert admin.get("/api/v1/sla/policies/2").json() == got
    listed = admin.get("/api/v1/sla/policies").json()
    assert [p["department_wecom_id"] for p in listed["policies"]] == [0, 2]
    applies = {d["wecom_id"]: d for d in listed["departments"]}
    assert applies[2]["policy"] == "own"
    assert (applies[3]["policy"], applies[3]["policy_department_wecom_id"]) == ("inherited", 2)
    assert applies[3]["policy_department_name"] == "销售部"
    assert applies[4]["policy"] in ("tenant", "default")

    # An update changes only what it names.
    r = admin.put(
        "/api/v1/sla/policies/2", json={"quiet_hours": [], "escalation_contact": "wangwu"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["steps"] == LEADER_1MIN and r.json()["quiet_hours"] == []
    assert r.json()["escalation_contact"] == "wangwu"
    # the policy page's department list names the contact as the form's choices do
    page = admin.get("/sla/policy").text
    assert "升级联系人 王五" in page and "升级联系人 wangwu" not in page
    # ... and its form has the tenant policy's steps and two blank rows, five at least
    tenant = len(admin.get("/api/v1/sla/policy").json()["steps"])
    assert page.count('name="step_delay_min"') == max(tenant + 2, 5)

    # 销售一组 gets one too, starting from 销售部's.
    r = admin.put("/api/v1/sla/policies/3", json={"business_hours_only": True}, headers=headers)
    assert (
        r.status_code == 201
        and r.json()["steps"] == LEADER_1MIN
        and r.json()["escalation_contact"] == "wangwu"
    )
    with db.tenant_session(world.a.id) as s:
        assert service.policy_for(s, "zhangsan").department_wecom_id == 3

    # Removing: 张三 falls back to 销售部's, then to the tenant's.
    assert admin.delete("/api/v1/sla/policies/3", headers=headers).status_code == 204
    with db.tenant_session(world.a.id) as s:
        assert service.policy_for(s, "zhangsan").department_wecom_id == 2
    r = admin.delete("/api/v1/sla/policies/3", headers=headers)
    assert r.status_code == 404 and "没有自己的策略" in r.json()["detail"]
    r = admin.get("/api/v1/sla/policies/3")
    assert r.status_code == 404 and "没有自己的策略" in r.json()["detail"]
    assert admin.delete("/api/v1/sla/policies/2", headers=headers).status_code == 204
    assert steps_of(db, world.a.id, "zhangsan") == before

    # The tenant's cannot be removed; department 0 is the tenant's.
    r = admin.delete("/api/v1/sla/policies/0", headers=headers)
    assert r.status_code == 409 and "cannot be deleted" in r.json()["detail"]
    assert admin.get("/api/v1/sla/policies/0").json()["department_wecom_id"] == 0

    # Unknown departments.
    for method in ("get", "put", "delete"):
        kw = {"json": {"steps": LEADER_1MIN}} if method == "put" else {}
        for unknown in ("99", "-1"):
            r = getattr(admin, method)(f"/api/v1/sla/policies/{unknown}", headers=headers, **kw)
            assert r.status_code == 404, (method, r.text)
            assert "没有这个部门" in r.json()["detail"] and unknown in r.json()["detail"]
    with db.tenant_session(world.a.id) as s:
        assert s.query(SlaPolicy).filter(SlaPolicy.department_wecom_id != 0).count() == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"steps": [{"delay_s": 60, "action": "sms", "target": "agent"}]}, "action"),
        ({"steps": [{"delay_s": -1, "action": "app_message", "target": "agent"}]}, "delay_s"),
        ({"steps": [{"delay_s": 60, "action": "app_message"}] * 11}, "steps"),
        ({"shifts": [["09:00", "12:00"], ["11:00", "18:00"]]}, "shifts"),
        ({"quiet_hours": ["21:00"]}, "quiet_hours"),
        ({"calendar_days": []}, "calendar_days"),  # the tenant's dates apply to every department
    ],
)
def test_department_policy_validation_answers_422_naming_the_field(as_role, world, db, body, where):
    admin = as_role("admin")
    r = admin.put("/api/v1/sla/policies/4", json=body, headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 422, r.text
    assert any(where in [str(x) for x in e["loc"]] for e in r.json()["detail"]), r.json()
    assert admin.get("/api/v1/sla/policies/4").status_code == 404  # nothing was created


def test_the_rules_refusal_is_a_clear_422_and_nothing_is_saved(as_role):
    admin = as_role("admin")
    headers = {"X-CSRF-Token": admin.csrf}
    r = admin.put("/api/v1/sla/policies/4", json={"escalation_contact": "sunba"}, headers=headers)
    assert r.status_code == 422 and "不是在职成员" in r.json()["detail"]  # 孙八 left
    assert admin.get("/api/v1/sla/policies/4").status_code == 404


def test_an_escalation_contact_sent_in_another_case_is_saved_as_the_members_userid(as_role):
    """WeCom's userids are case-insensitive: WangWu for wangwu was refused, 升级联系人 WangWu
    不是在职成员. It is saved as wangwu, whom the steps then reach; SunBa has still left."""
    admin = as_role("admin")
    h = {"X-CSRF-Token": admin.csrf}
    api = "/api/v1/sla/policy"
    kept = admin.get(api).json()["escalation_contact"]
    try:
        r = admin.put(api, json={"escalation_contact": "WangWu"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["escalation_contact"] == "wangwu" == admin.get(api).json()["escalation_contact"]
        r = admin.put("/api/v1/sla/policies/4", json={"escalation_contact": " ZHAOLIU "}, headers=h)
        assert r.status_code == 201, r.text
        assert admin.get("/api/v1/sla/policies/4").json()["escalation_contact"] == "zhaoliu"
        r = admin.put("/api/v1/sla/policies/4", json={"escalation_contact": "SunBa"}, headers=h)
        assert r.status_code == 422 and "升级联系人 sunba 不是在职成员" in r.json()["detail"], r.text
    finally:
        admin.put(api, json={"escalation_contact": kept}, headers=h)


def test_department_policies_are_admin_only_and_need_csrf(as_role):
    admin = as_role("admin")
    assert admin.put("/api/v1/sla/policies/4", json={"steps": LEADER_1MIN}).status_code == 403  # CSRF
    assert (
        admin.put("/api/v1/sla/policies/4", json={}, headers={"X-CSRF-Token": admin.csrf}).status_code == 201
    )
    assert admin.delete("/api/v1/sla/policies/4").status_code == 403  # CSRF
    for role in ("supervisor", "agent"):
        c = as_role(role)
        headers = {"X-CSRF-Token": c.csrf}
        assert c.get("/api/v1/sla/policies").status_code == 403
        assert c.get("/api/v1/sla/policies/4").status_code == 403
        assert (
            c.put("/api/v1/sla/policies/4", json={"steps": LEADER_1MIN}, headers=headers).status_code == 403
        )
        assert c.delete("/api/v1/sla/policies/4", headers=headers).status_code == 403
        assert c.get("/sla/policy/departments/4").status_code == 403
        form = {"csrf_token": c.csrf, "step_delay_min": ["1"], "step_action": ["app_message"]}
        assert c.post("/sla/policy/departments/4", data={**form, "step_target": ["agent"]}).status_code == 403
        assert c.post("/sla/policy/departments/4/remove", data={"csrf_token": c.csrf}).status_code == 403
    assert admin.get("/api/v1/sla/policies/4").json()["steps"] != LEADER_1MIN  # untouched
    assert as_role("admin").get("/api/v1/sla/policies").status_code == 200


def test_another_tenant_cannot_see_or_change_a_department_policy(as_role, world, db):
    a, b = as_role("admin"), as_role("admin", "b")
    assert (
        a.put(
            "/api/v1/sla/policies/2", json={"steps": LEADER_1MIN}, headers={"X-CSRF-Token": a.csrf}
        ).status_code
        == 201
    )
    # B has a 销售部 with the same WeCom id, but not A's policy.
    assert [p["department_wecom_id"] for p in b.get("/api/v1/sla/policies").json()["policies"]] == [0]
    assert b.get("/api/v1/sla/policies/2").status_code == 404
    assert b.delete("/api/v1/sla/policies/2", headers={"X-CSRF-Token": b.csrf}).status_code == 404
    assert b.get("/sla/policy").text.count("自有策略") == 0
    assert b.post("/sla/policy/departments/2/remove", data={"csrf_token": b.csrf}).status_code == 404
    # B's own 销售部 policy is B's alone.
    mine = [{"delay_s": 900, "action": "voice_call", "target": "agent"}]
    r = b.put("/api/v1/sla/policies/2", json={"steps": mine}, headers={"X-CSRF-Token": b.csrf})
    assert r.status_code == 201
    assert a.get("/api/v1/sla/policies/2").json()["steps"] == LEADER_1MIN
    assert steps_of(db, world.a.id, "zhangsan") == [(60, "app_message", "leader")]
    assert steps_of(db, world.b.id, "zhangsan") == [(900, "voice_call", "agent")]


def test_an_admin_adds_a_department_policy_through_the_form(as_role, world, db):
    admin = as_role("admin")
    page = admin.get("/sla/policy")
    assert page.status_code == 200 and 'id="departments"' in page.text and "客服部" in page.text
    assert 'action="/sla/policy/departments"' in page.text  # the 添加 form lists departments
    r = admin.get("/sla/policy/departments", params={"department": "4"})
    assert r.status_code == 303 and r.headers["location"] == "/sla/policy/departments/4"
    page = admin.get("/sla/policy/departments/4")
    assert page.status_code == 200 and "客服部" in page.text and "还没有自己的策略" in page.text
    assert 'action="/sla/policy/departments/4"' in page.text and "添加部门策略" in page.text
    form = {
        "csrf_token": admin.csrf,
        "enabled": "1",
        "step_delay_min": ["1", "", "8"],
        "step_action": ["app_message", "app_message", "voice_call"],
        "step_target": ["agent", "agent", "leader"],
        "business_hours_only": "1",
        "shifts": "09:00-12:00\n13:30-18:00",
        "public_holidays": "1",
        "escalation_contact": "",
        "quiet_start": "",
        "quiet_end": "",
    }
    bad = admin.post("/sla/policy/departments/4", data={**form, "shifts": "09:00-12:00\n11:00-18:00"})
    assert bad.status_code == 422 and "班次" in bad.text and "11:00-18:00" in bad.text
    assert admin.get("/api/v1/sla/policies/4").status_code == 404
    assert (
        admin.post(
            "/sla/policy/departments/4", data={k: v for k, v in form.items() if k != "csrf_token"}
        ).status_code
        == 403
    )
    r = admin.post("/sla/policy/departments/4", data=form)
    # which case the banner tells depends on the tenant's policy, which other tests set
    assert r.status_code == 303 and r.headers["location"].startswith("/sla/policy?done=department_")
    # 李四 (客服部) now gets the department's steps; 张三 (销售一组) does not.
    assert steps_of(db, world.a.id, "lisi") == [(60, "app_message", "agent"), (480, "voice_call", "leader")]
    assert steps_of(db, world.a.id, "zhangsan") == tenant_steps(db, world.a.id)
    page = admin.get("/sla/policy?done=department_saved")
    assert "部门策略已保存" in page.text and "自有策略" in page.text
    assert 'href="/sla/policy/departments/4"' in page.text and "1 分钟 提醒卡片→负责成员" in page.text
    assert "只计算工作时间（09:00-12:00、13:30-18:00）" in page.text  # what else it does, in the list
    assert 'data-confirm="删除「客服部」的部门策略？' in page.text  # removing it asks first
    page = admin.get("/sla/policy/departments/4")
    assert "保存部门策略" in page.text and "删除部门策略" in page.text and "还没有自己的策略" not in page.text
    # Unknown departments; removing it.
    assert admin.get("/sla/policy/departments/99").status_code == 404
    assert admin.post("/sla/policy/departments/99", data=form).status_code == 404
    r = admin.post("/sla/policy/departments/4/remove", data={"csrf_token": admin.csrf})
    assert r.status_code == 303 and r.headers["location"] == "/sla/policy?done=department_removed#departments"
    assert steps_of(db, world.a.id, "lisi") == tenant_steps(db, world.a.id)
    # what happens to waits already running is said, as when a policy is saved
    assert "已排好的下一步不变" in admin.get("/sla/policy", params={"done": "department_removed"}).text
    again = admin.post("/sla/policy/departments/4/remove", data={"csrf_token": admin.csrf})
    assert again.status_code == 404 and "这个部门没有自己的策略" in again.text  # removed twice: says so


def test_the_tenant_policy_says_when_a_top_department_policy_covers_everyone(as_role):
    admin = as_role("admin")
    assert 'id="tenant-overridden"' not in admin.get("/sla/policy").text
    form = {
        "csrf_token": admin.csrf,
        "enabled": "1",
        "step_delay_min": ["3"],
        "step_action": ["app_message"],
        "step_target": ["agent"],
        "shifts": "",
        "escalation_contact": "",
        "quiet_start": "",
        "quiet_end": "",
    }
    assert admin.post("/sla/policy/departments/1", data=form).status_code == 303
    page = admin.get("/sla/policy").text
    notice = page.split('id="tenant-overridden"', 1)[1].split("</p>", 1)[0]
    assert "「总部」有自己的策略" in notice and "只对不在任何已同步部门的成员生效" in notice


def test_a_contact_who_left_is_named_on_the_policy_pages(as_role, world, db):
    with db.tenant_session(world.a.id) as s:  # named while a member, gone since
        service.save_policy(s, 2, steps=LEADER_1MIN, escalation_contact="gone-member")
    admin = as_role("admin")
    page = admin.get("/sla/policy/departments/2").text
    assert 'id="contact-gone"' in page and "原升级联系人 gone-member 已不是在职成员" in page
    assert "升级联系人 gone-member（已不在职）" in admin.get("/sla/policy").text  # the departments' list


class _Waits:
    """A tenant of its own, with the seeded directory and an admin signed in (`admin`), where
    customers ask 张三 questions half a minute old (`ask`) and the board says when each one's
    next step is due (`next_step`)."""

    def __init__(self, db, siyu, web_settings, emu_url, label: str) -> None:
        self.db, self.sfx, self.seq = db, uuid.uuid4().hex[:6], iter(range(1, 100))
        with httpx.Client(base_url=emu_url, timeout=10) as emu:
            self.tenant = _make_tenant(db, Runtime.create(web_settings, db), emu, label)
        with db.tenant_session(self.tenant.id) as s:
            tenancy.save_directory(s, DEPARTMENTS, STAFF)
            tenancy.add_person(s, f"admin-{label}-{self.sfx}", "管理员", "admin", PASSWORD)
        self.admin = login(siyu, f"admin-{label}-{self.sfx}")
        self.headers = {"X-CSRF-Token": self.admin.csrf}

    def ask(self, ext: str, text: str) -> None:
        n = next(self.seq)
        msgid = f"bh{n}-{self.sfx}"
        message = {
            "msgid": msgid,
            "action": "send",
            "from": ext + self.sfx,
            "tolist": ["zhangsan"],
            "roomid": "",
            "msgtime": int((time.time() - 30) * 1000),
            "msgtype": "text",
            "text": {"content": text},
        }
        with self.db.tenant_session(self.tenant.id) as s:
            conversations.ingest(
                s, [SimpleNamespace(seq=n, msgid=msgid, message=message)], default_classifier().classify
            )

    def next_step(self, text: str) -> datetime:
        waiting = whole_board(self.admin)["waiting"]
        (row,) = [w for w in waiting if w["message"] == text]
        return datetime.fromisoformat(row["next_step_at"])

    def save_policy(self, **fields) -> None:
        r = self.admin.put("/api/v1/sla/policy", json=fields, headers=self.headers)
        assert r.status_code == 200, r.text

    def close(self) -> None:
        self.admin.close()
        with self.db.tenant_session(self.tenant.id) as s:
            s.execute(
                update(SlaEscalation).where(SlaEscalation.status == "pending").values(status="cancelled")
            )


def _no_shift_on_now() -> dict:
    """A policy counting business hours only, with one shift, an hour long, starting six hours
    from now: none is on now."""
    start = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=6)
    shift = [start.strftime("%H:%M"), (start + timedelta(hours=1)).strftime("%H:%M")]
    return {"business_hours_only": True, "shifts": [shift], "quiet_hours": []}


def test_turning_on_business_hours_moves_the_next_step_of_waits_already_running(
    db, siyu, web_settings, emu_url
):
    """A customer waits under the wall clock; the admin then has the policy count business
    hours only while no shift is on (a Saturday evening, say). The wait's next step goes to
    the next shift, as a calendar edit moves it: left 2 minutes after the question, it went out
    with a card telling the leader the customer had waited "0 秒（工作时间）"."""
    w = _Waits(db, siyu, web_settings, emu_url, "bing")
    try:
        # the built-in default until the first save: the next step 2 minutes after the question
        w.ask("wmbh1", f"周六有人吗 {w.sfx}")
        soon = datetime.now(ZoneInfo("UTC")) + timedelta(minutes=5)
        assert w.next_step(f"周六有人吗 {w.sfx}") < soon
        w.save_policy(**_no_shift_on_now())
        later = datetime.now(ZoneInfo("UTC")) + timedelta(hours=5)
        assert w.next_step(f"周六有人吗 {w.sfx}") > later

        # a saved policy switched from the wall clock to business hours: the same
        w.save_policy(business_hours_only=False)
        w.ask("wmbh2", f"还在吗 {w.sfx}")
        assert w.next_step(f"还在吗 {w.sfx}") < soon
        w.save_policy(business_hours_only=True)
        assert w.next_step(f"还在吗 {w.sfx}") > later
        said = w.admin.get("/sla/policy", params={"done": "saved_hours"}).text
        assert "改为只计工作时间：正在等待的客户，下一步提醒按工作时间重排" in said
    finally:
        w.close()


def test_turning_business_hours_off_brings_the_next_step_of_waits_back_to_the_wall_clock(
    db, siyu, web_settings, emu_url
):
    """The admin tries 'count business hours only' on a Saturday evening and turns it off
    again: the customers who asked in between waited by the wall clock again, their next step
    2 minutes after the question. It had stayed on Monday morning's shift, so nobody was told
    about them all weekend, though the board counted them late."""
    w = _Waits(db, siyu, web_settings, emu_url, "ding")
    try:
        w.save_policy(**_no_shift_on_now())
        w.ask("wmbh1", f"周末有人吗 {w.sfx}")
        assert w.next_step(f"周末有人吗 {w.sfx}") > datetime.now(ZoneInfo("UTC")) + timedelta(hours=5)
        w.save_policy(business_hours_only=False)
        assert w.next_step(f"周末有人吗 {w.sfx}") < datetime.now(ZoneInfo("UTC")) + timedelta(minutes=5)
        said = w.admin.get("/sla/policy", params={"done": "saved_wallclock"}).text
        assert "改回按自然时间计：正在等待的客户，下一步提醒按自然时间重排" in said
    finally:
        w.close()


def test_saving_a_department_policy_says_only_what_happened_to_its_members_waiting(
    db, siyu, web_settings, emu_url
):
    """Saving a department's policy printed every case at once (改为只计工作时间…改回按自然时间计…),
    as the tenant's did: it says the one that applies, and a department's first policy, while
    its members follow the tenant's, says their waits keep that one (they do)."""
    w = _Waits(db, siyu, web_settings, emu_url, "wu")
    night = _no_shift_on_now()["shifts"][0]
    form = {
        "csrf_token": w.admin.csrf,
        "enabled": "1",
        "step_delay_min": ["3"],
        "step_action": ["app_message"],
        "step_target": ["agent"],
        "business_hours_only": "1",
        "shifts": "-".join(night),
        "public_holidays": "1",
        "escalation_contact": "",
        "quiet_start": "",
        "quiet_end": "",
    }
    every = (
        "之后各步按新策略",
        "仍按原来的策略提醒",
        "班次或节假日已改",
        "改回按自然时间计",
        "改为只计工作时间",
    )

    def banner(department: int, changed: dict, done: str) -> str:
        r = w.admin.post(f"/sla/policy/departments/{department}", data={**form, **changed})
        assert r.status_code == 303 and r.headers["location"] == f"/sla/policy?done={done}#departments", (
            changed,
            r.headers.get("location"),
        )
        [said] = re.findall(
            r'<p class="ok" role="status">([^<]*)</p>', w.admin.get(r.headers["location"]).text
        )
        assert said.startswith("部门策略已保存") and len([x for x in every if x in said]) == 1, said
        return said

    try:
        # the tenant on the built-in default (the wall clock): its members' waits take the
        # department's first policy, and its clock
        assert "改为只计工作时间" in banner(4, {}, "department_saved_hours")
        w.save_policy(business_hours_only=False)
        w.ask("wmdp1", f"在吗 {w.sfx}")
        soon = datetime.now(ZoneInfo("UTC")) + timedelta(minutes=5)
        assert w.next_step(f"在吗 {w.sfx}") < soon
        # 销售一组's first policy, 张三 waited on by the tenant's: that wait keeps it
        assert "仍按原来的策略提醒" in banner(3, {}, "department_added")
        assert w.next_step(f"在吗 {w.sfx}") < soon
        assert "之后各步按新策略" in banner(3, {"step_delay_min": ["4"]}, "department_saved")
        assert "改回按自然时间计" in banner(3, {"business_hours_only": ""}, "department_saved_wallclock")
        assert "改为只计工作时间" in banner(3, {}, "department_saved_hours")
        assert "班次或节假日已改" in banner(3, {"public_holidays": ""}, "department_saved_shifts")
        two_steps = {
            "step_delay_min": ["5", "1"],
            "step_action": ["app_message"] * 2,
            "step_target": ["agent"] * 2,
        }
        reordered = w.admin.post("/sla/policy/departments/3", data={**form, **two_steps})
        assert (
            reordered.headers["location"] == "/sla/policy?done=department_saved_shifts&sorted=1#departments"
        )
    finally:
        w.close()


def test_the_snooze_operation_is_listed_once_under_sla_in_the_api_docs(as_role):
    """Its tags were ["sla", "sla"]: Swagger listed the operation twice under the same heading."""
    spec = as_role("admin").get("/api/v1/openapi.json").json()
    assert spec["paths"]["/api/v1/conversations/{conversation_id}/snooze"]["post"]["tags"] == ["sla"]


def test_every_problem_of_a_policy_is_told_at_once(as_role, db, world):
    """A step's delay "abc" and quiet hours 21:00-21:00 sent together were told one at a time:
    the step first, then, once fixed, the quiet hours. The forms (the tenant's, a department's)
    and the API tell both at once, and save nothing."""
    admin = as_role("admin")
    before = tenant_steps(db, world.a.id)
    form = {
        "csrf_token": admin.csrf,
        "enabled": "1",
        "step_delay_min": ["abc"],
        "step_action": ["app_message"],
        "step_target": ["agent"],
        "shifts": "09:00-18:00",
        "public_holidays": "1",
        "escalation_contact": "",
        "quiet_start": "21:00",
        "quiet_end": "21:00",
    }
    for url in ("/sla/policy", "/sla/policy/departments/4"):
        r = admin.post(url, data=form)
        assert r.status_code == 422, r.text
        [told] = re.findall(r'<p class="alert" role="alert" id="policy-error">(.*?)</p>', r.text, re.S)
        assert "第 1 步" in told and "请填写分钟数" in told, told
        assert "免打扰时段" in told and "开始和结束不能相同" in told, told
        assert 'value="abc"' in r.text and 'value="21:00"' in r.text  # what was typed stays
    assert tenant_steps(db, world.a.id) == before
    assert admin.get("/api/v1/sla/policies/4").status_code == 404
    body = {"steps": [{"delay_s": "abc", "action": "app_message"}], "quiet_hours": ["21:00", "21:00"]}
    for url in ("/api/v1/sla/policy", "/api/v1/sla/policies/4"):
        r = admin.put(url, json=body, headers={"X-CSRF-Token": admin.csrf})
        assert r.status_code == 422, r.text
        said = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}
        assert ("body", "steps", 0, "delay_s") in said, said
        assert "开始和结束不能相同" in said[("body", "quiet_hours")], said
    # the rules that weigh fields together (a step to nobody, business hours with no shift) too
    rules = {**form, "step_delay_min": ["2"], "step_target": ["contact"], "business_hours_only": "1"}
    rules |= {"shifts": "", "quiet_start": "", "quiet_end": ""}
    for url in ("/sla/policy", "/sla/policy/departments/4"):
        r = admin.post(url, data=rules)
        assert r.status_code == 422, r.text
        assert "请先设置升级联系人" in r.text and "需要至少一个班次" in r.text, r.text
    body = {"steps": [{"delay_s": 120, "action": "app_message", "target": "contact"}]}
    body |= {"escalation_contact": "", "business_hours_only": True, "shifts": []}
    r = admin.put("/api/v1/sla/policies/4", json=body, headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 422 and "请先设置升级联系人" in r.json()["detail"], r.text
    assert "需要至少一个班次" in r.json()["detail"]
    assert tenant_steps(db, world.a.id) == before


def test_a_call_step_that_can_never_ring_under_the_policy_is_refused_saying_which(as_role, db, world):
    """Business hours only, one night shift 22:00-06:00, quiet hours 21:00-08:00: a call held
    by quiet hours waits for the next shift, which they hold again. Saved, the call never
    rang, and the board kept promising 22:00."""
    admin = as_role("admin")
    before = tenant_steps(db, world.a.id)
    form = {
        "csrf_token": admin.csrf,
        "enabled": "1",
        "step_delay_min": ["2", "10"],
        "step_action": ["app_message", "voice_call"],
        "step_target": ["agent", "agent"],
        "business_hours_only": "1",
        "shifts": "22:00-06:00",
        "public_holidays": "1",
        "escalation_contact": "",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
    }
    r = admin.post("/sla/policy", data=form)
    assert r.status_code == 422, r.text
    [told] = re.findall(r'<p class="alert" role="alert" id="policy-error">(.*?)</p>', r.text, re.S)
    assert "第 2 步（语音电话打给负责成员）永远不会拨打" in told and "免打扰时段" in told, told
    body = {
        "steps": [{"delay_s": 600, "action": "voice_call", "target": "leader"}],
        "business_hours_only": True,
        "shifts": [["22:00", "06:00"]],
        "quiet_hours": ["21:00", "08:00"],
    }
    r = admin.put("/api/v1/sla/policy", json=body, headers={"X-CSRF-Token": admin.csrf})
    assert r.status_code == 422 and "第 1 步（语音电话打给上级）永远不会拨打" in r.json()["detail"], r.text
    assert tenant_steps(db, world.a.id) == before


STALE_FORM = {
    "enabled": "1",
    "step_delay_min": ["2"],
    "step_action": ["app_message"],
    "step_target": ["agent"],
    "shifts": "09:00-18:00",
    "public_holidays": "1",
    "escalation_contact": "",
    "quiet_start": "",
    "quiet_end": "",
}


def _stale_input(page: str) -> str:
    [value] = re.findall(r'<input name="stale_after_h" inputmode="decimal" size="6" value="([^"]*)">', page)
    return value


def test_the_stale_limit_is_shown_and_changed_in_hours_on_the_policy_pages(as_role):
    """How long after its due time a step is still sent (the policy's stale_after_s: 6 hours,
    past which a step whose turn comes late, the archive or Siyu having been down, is skipped
    as 过期未发) had no input on the policy pages: it stood at 6 hours for good. The tenant's
    page and a department's show it in hours and save it; a value out of bounds is refused
    naming 过期不发, with the form's other problems, and shown again as typed."""
    admin = as_role("admin")
    api = "/api/v1/sla/policy"
    kept = admin.get(api).json()
    form = {**STALE_FORM, "csrf_token": admin.csrf}
    try:
        assert _stale_input(admin.get("/sla/policy").text) == f"{kept['stale_after_s'] / 3600:g}"
        assert "过期不发 <input" in admin.get("/sla/policy").text
        r = admin.post("/sla/policy", data={**form, "stale_after_h": "2"})
        assert r.status_code == 303, r.text
        assert admin.get(api).json()["stale_after_s"] == 7200
        assert _stale_input(admin.get("/sla/policy").text) == "2"
        r = admin.post("/sla/policy", data={**form, "stale_after_h": "30分钟"})  # minutes, said so
        assert r.status_code == 303 and admin.get(api).json()["stale_after_s"] == 1800
        assert _stale_input(admin.get("/sla/policy").text) == "0.5"
        for typed, shown in (("20分钟", "20分钟"), ("100分钟", "100分钟"), ("1.25", "1.25")):  # not 0.3333
            r = admin.post("/sla/policy", data={**form, "stale_after_h": typed})
            assert r.status_code == 303 and _stale_input(admin.get("/sla/policy").text) == shown, typed
        r = admin.post("/sla/policy", data={**form, "stale_after_h": "1.5小时"})
        assert r.status_code == 303 and admin.get(api).json()["stale_after_s"] == 5400
        for typed in ("0", "abc", "-1", "10分钟", "169", "99999999999999"):
            bad = admin.post("/sla/policy", data={**form, "stale_after_h": typed, "quiet_start": "21:00"})
            assert bad.status_code == 422, (typed, bad.text)
            [told] = re.findall(r'<p class="alert" role="alert" id="policy-error">(.*?)</p>', bad.text, re.S)
            assert "过期不发：请填写 0.25 到 168 之间的小时数（15 分钟到 7 天）" in told, (typed, told)
            assert "免打扰时段" in told, told  # told together with the form's other problem
            assert _stale_input(bad.text) == typed
        assert admin.get(api).json()["stale_after_s"] == 5400  # nothing lost
        r = admin.post("/sla/policy", data=form)  # left empty: kept as it is
        assert r.status_code == 303 and admin.get(api).json()["stale_after_s"] == 5400

        # a department's own: a new one starts from the tenant's, and takes what was typed
        page = admin.get("/sla/policy/departments/4").text
        assert _stale_input(page) == "1.5"
        bad = admin.post("/sla/policy/departments/4", data={**form, "stale_after_h": "200"})
        assert bad.status_code == 422 and "过期不发：请填写 0.25 到 168" in bad.text
        assert _stale_input(bad.text) == "200"
        assert admin.get("/api/v1/sla/policies/4").status_code == 404
        r = admin.post(
            "/sla/policy/departments/4", data={**form, "stale_after_h": "12", "call_cooldown_min": "20"}
        )
        assert r.status_code == 303, r.text
        # as its cooldown, not the default either (the list named the one and not the other)
        assert "两次电话至少间隔 20 分钟" in admin.get("/sla/policy").text
        assert admin.get("/api/v1/sla/policies/4").json()["stale_after_s"] == 12 * 3600
        assert _stale_input(admin.get("/sla/policy/departments/4").text) == "12"
        assert "过期不发 12 小时" in admin.get("/sla/policy").text  # the list names what is not the default
        assert admin.get(api).json()["stale_after_s"] == 5400  # the tenant's untouched
        r = admin.post("/sla/policy/departments/4", data={**form, "stale_after_h": "100分钟"})
        assert (
            r.status_code == 303 and "过期不发 100 分钟" in admin.get("/sla/policy").text
        )  # not 100分钟 小时
    finally:
        admin.put(api, json={"stale_after_s": kept["stale_after_s"]}, headers={"X-CSRF-Token": admin.csrf})


def test_the_stale_limit_is_read_and_changed_through_the_policy_api(as_role):
    """GET /api/v1/sla/policy and /sla/policies/{dept} give stale_after_s, their PUT changes it
    (PUT said "extra inputs are not permitted"), within the same bounds as the page (422 naming
    the field), and a change of it changes the ETag: a PUT with the ETag read before is refused."""
    admin = as_role("admin")
    h = {"X-CSRF-Token": admin.csrf}
    api = "/api/v1/sla/policy"
    got = admin.get(api)
    kept, etag = got.json()["stale_after_s"], got.headers["ETag"]
    try:
        r = admin.put(api, json={"stale_after_s": 3600}, headers={**h, "If-Match": etag})
        assert r.status_code == 200, r.text
        assert r.json()["stale_after_s"] == 3600 and admin.get(api).json()["stale_after_s"] == 3600
        assert r.headers["ETag"] != etag and admin.get(api).headers["ETag"] == r.headers["ETag"]
        late = admin.put(api, json={"stale_after_s": 7200}, headers={**h, "If-Match": etag})
        assert late.status_code == 412, late.text
        for wrong in (0, 60, 899, 7 * 86400 + 1, "3600", 3600.5, -1):
            for url in (api, "/api/v1/sla/policies/4"):
                r = admin.put(url, json={"stale_after_s": wrong}, headers=h)
                assert r.status_code == 422, (wrong, r.text)
                assert [e["loc"] for e in r.json()["detail"]] == [["body", "stale_after_s"]], r.json()
        assert admin.get(api).json()["stale_after_s"] == 3600
        assert admin.get("/api/v1/sla/policies/4").status_code == 404  # nothing created
        for bound in (900, 7 * 86400):
            assert admin.put(api, json={"stale_after_s": bound}, headers=h).json()["stale_after_s"] == bound

        # a department's: created from the tenant's, then its own
        r = admin.put("/api/v1/sla/policies/4", json={}, headers=h)
        assert r.status_code == 201 and r.json()["stale_after_s"] == 7 * 86400
        dept = admin.get("/api/v1/sla/policies/4")
        r = admin.put("/api/v1/sla/policies/4", json={"stale_after_s": 1800}, headers=h)
        assert r.status_code == 200 and r.json()["stale_after_s"] == 1800
        assert r.headers["ETag"] != dept.headers["ETag"]
        listed = admin.get("/api/v1/sla/policies").json()["policies"]
        assert [(p["department_wecom_id"], p["stale_after_s"]) for p in listed] == [(0, 7 * 86400), (4, 1800)]
        read_before = {**h, "If-Match": dept.headers["ETag"]}
        stale = admin.put("/api/v1/sla/policies/4", json={"stale_after_s": 900}, headers=read_before)
        assert stale.status_code == 412
        assert admin.get("/api/v1/sla/policies/4").json()["stale_after_s"] == 1800

        # documented where clients read the fields
        spec = admin.get("/api/v1/openapi.json").json()["components"]["schemas"]
        for name in ("PolicyIn", "DepartmentPolicyIn"):
            field = spec[name]["properties"]["stale_after_s"]
            assert "过期未发" in field["description"], field
            assert (field["anyOf"][0]["minimum"], field["anyOf"][0]["maximum"]) == (900, 7 * 86400), field
        for name in ("PolicyOut", "DepartmentPolicyOut"):
            assert "stale_after_s" in spec[name]["required"]
            assert "过期未发" in spec[name]["properties"]["stale_after_s"]["description"]
    finally:
        admin.put(api, json={"stale_after_s": kept}, headers=h)
