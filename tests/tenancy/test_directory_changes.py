"""The directory as WeCom changes it: a department dissolved, a member let go (change_contact
called back), two heads of one department."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from sqlalchemy import select

from siyu.customers.service import leader_of, leaders_of
from siyu.intake.models import CallbackEvent
from siyu.sla import service as sla
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Department, Person, Tenant
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.events import event_xml
from tests.support import stack as corp
from tests.support.stack import stack, wait_for


@pytest.fixture
def make_directory(settings, db):
    """A corp of these departments and staff in the emulator, its tenant connected (Siyu served,
    its worker taking callbacks, where `serve_siyu`)."""
    with contextlib.ExitStack() as stacks:
        yield lambda departments, staff, serve_siyu=False: stacks.enter_context(
            stack(settings, db, serve_siyu, departments, staff)
        )


DISSOLVED = [
    {"id": 1, "name": "总部", "parentid": 0, "department_leader": ["boss"]},
    {"id": 2, "name": "销售一部", "parentid": 1, "department_leader": ["lisi"]},
    {"id": 3, "name": "客服部", "parentid": 1, "department_leader": ["zhaoliu"]},
]
DISSOLVED_STAFF = [
    {"userid": "boss", "name": "王总", "department": [1]},
    {"userid": "lisi", "name": "李四", "department": [2]},
    {"userid": "zhaoliu", "name": "赵六", "department": [3], "is_leader_in_dept": [1]},
    {"userid": "wangwu", "name": "王五", "department": [3]},
]


def test_a_department_deleted_in_wecom_is_gone_from_siyu_and_its_leader_leads_nobody(make_directory):
    d = make_directory(DISSOLVED, DISSOLVED_STAFF)
    d.sync()
    # WeCom's admin console: 客服部 dissolved; its two members moved into 销售一部 first (WeCom
    # refuses to delete a department with members), zhaoliu no longer leads anything
    for userid, name in (("zhaoliu", "赵六"), ("wangwu", "王五")):
        d.control("DELETE", f"/corps/{d.corp_id}/staff/{userid}")
        d.control(
            "POST", f"/corps/{d.corp_id}/staff", json={"userid": userid, "name": name, "department": [2]}
        )
    del d.wecom.departments[3]
    d.sync()
    with d.session() as s:
        listed = [x.wecom_id for x in s.scalars(select(Department))]
        offered = [x.wecom_id for x in sla.department_policies(s)]  # the SLA policy pages' departments
        # zhaoliu's first sign-in through WeCom (siyu.web.auth's OAuth callback calls this)
        person = tenancy.person_for_staff(s, s.get(Tenant, d.tenant_id), "zhaoliu")
        role = person.role
    # 客服部 is no longer offered (an SLA policy for it, a channel's department: WeCom refuses
    # it, 60003), and zhaoliu, who leads no department and nobody, signs in as an agent
    assert (listed, offered, role) == ([1, 2], [1, 2], "agent")


TWO_HEADS = [
    {"id": 1, "name": "总部", "parentid": 0, "department_leader": ["boss"]},
    # 销售一部 has two heads
    {"id": 2, "name": "销售一部", "parentid": 1, "department_leader": ["lisi", "zhaoliu"]},
]
TWO_HEADS_STAFF = [
    {"userid": "boss", "name": "王总", "department": [1]},
    {"userid": "lisi", "name": "李四", "department": [2], "is_leader_in_dept": [1]},
    {"userid": "zhaoliu", "name": "赵六", "department": [2], "is_leader_in_dept": [1]},
    {"userid": "zhangsan", "name": "张三", "department": [2]},
]


def test_a_department_head_is_told_by_the_leader_above_not_by_a_fellow_head(make_directory):
    d = make_directory(TWO_HEADS, TWO_HEADS_STAFF)
    d.sync()
    with d.session() as s:
        policy = sla.policy_for(s, "lisi")
        got = (
            leader_of(s, "lisi"),
            leaders_of(s, ["lisi", "zhangsan"]),
            sla.recipient_for(s, "leader", "lisi", policy),
        )
    # lisi leads his main department himself: the card about his customer goes to the leader
    # of the department above (README: "a department's head is told by the leader above"),
    # not to zhaoliu, who heads 销售一部 beside him; zhangsan's goes to either head (the first)
    assert got == ("boss", {"lisi": "boss", "zhangsan": "lisi"}, "boss")


def test_a_member_wecom_deletes_loses_access_when_wecom_says_so(make_directory):
    d = make_directory(corp.DEPARTMENTS, corp.STAFF, serve_siyu=True)
    d.sync()
    with d.session() as s:  # lisi signed in through WeCom before: a supervisor, seeing his team
        person = tenancy.person_for_staff(s, s.get(Tenant, d.tenant_id), "lisi")
        person_id = person.id
    # WeCom's admin console: lisi is let go (离职); WeCom drops him from its lists and says so
    d.control("DELETE", f"/corps/{d.corp_id}/staff/lisi")
    crypto = WeComCrypto(d.corp["token"], d.corp["encoding_aes_key"], d.corp_id)
    xml = event_xml(
        {
            "ToUserName": d.corp_id, "FromUserName": "sys", "CreateTime": 1764036000,
            "MsgType": "event", "Event": "change_contact", "ChangeType": "delete_user", "UserID": "lisi",
        }
    )  # fmt: skip
    body, params = crypto.encrypt_callback(xml)
    assert httpx.post(f"{d.siyu}/wecom/callback/{d.slug}", params=params, content=body).status_code == 200

    def processed():
        with d.session() as s:
            return s.scalar(
                select(CallbackEvent.status).where(CallbackEvent.kind == "change_contact/delete_user")
            )

    assert wait_for(lambda: processed() in ("done", "failed") and processed()) == "done"
    with d.session() as s:
        # the next scheduled sync is up to SIYU_STAFF_SYNC_INTERVAL_S (6 h) away; meanwhile the
        # event Siyu took and marked done should have ended his access, his API tokens' and
        # the cards to him (README: members who left get nothing, have no access)
        locked_out = tenancy.has_left(s, s.get(Person, person_id))
        signs_in = tenancy.person_for_staff(s, s.get(Tenant, d.tenant_id), "lisi") is not None
    assert (locked_out, signs_in) == (True, False)


def test_a_burst_of_directory_changes_syncs_once(make_directory):
    """WeCom calls back once a change: a worker ran a burst's events at once, each finding no
    sync begun after it, and each fetched the whole directory."""
    import asyncio

    from siyu.db import utcnow
    from siyu.tenancy.tasks import sync_after

    d = make_directory(corp.DEPARTMENTS, corp.STAFF)
    changed_at = utcnow()

    async def burst() -> list[bool]:
        try:
            return await asyncio.gather(*(sync_after(d.rt, d.tenant_id, changed_at) for _ in range(5)))
        finally:
            await d.rt.clients.aclose()

    assert sorted(asyncio.run(burst())) == [False, False, False, False, True]
    calls = d.control("GET", f"/corps/{d.corp_id}/calls")
    assert sum(c["path"] == "/cgi-bin/department/list" for c in calls) == 1


def test_a_member_wecom_lists_as_their_own_direct_leader_signs_in_as_an_agent(db, fresh_tenant):
    """WeCom lists 张三 as his own 直属上级: he leads nobody, so he signs in as an agent (he had
    been a supervisor of a team of himself), as escalation reads it (his leader is the head)."""
    departments = [
        {"id": 1, "name": "总部", "parentid": 0, "department_leader": ["boss"]},
        {"id": 2, "name": "销售一部", "parentid": 1, "department_leader": []},
    ]
    users = [
        {"userid": "boss", "name": "王总", "department": [1], "status": 1},
        {"userid": "zhangsan", "name": "张三", "department": [2], "direct_leader": ["zhangsan"], "status": 1},
    ]
    with db.tenant_session(fresh_tenant) as s:
        tenancy.save_directory(s, departments, users)
    with db.tenant_session(fresh_tenant) as s:
        assert leader_of(s, "zhangsan") == "boss"
        person = tenancy.person_for_staff(s, s.get(Tenant, fresh_tenant), "zhangsan")
        assert person.role == "agent"
