"""Department policies in the rules (siyu.sla.service): which policy each department
follows, a new department policy starting from the one it followed, and removing one."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from siyu.conversations import service as conversations
from siyu.insights.needs_reply import default_classifier
from siyu.sla import service
from siyu.sla.models import SlaPolicy, SlaWait
from siyu.tenancy.models import Department
from tests.conftest import PG_URL
from tests.sla.conftest import items

LEADER_30S = [{"delay_s": 30, "action": "app_message", "target": "leader"}]
AGENT_60S = [{"delay_s": 60, "action": "app_message", "target": "agent"}]
AGENT_120S = [{"delay_s": 120, "action": "app_message", "target": "agent"}]
LEADER_300S = [{"delay_s": 300, "action": "app_message", "target": "leader"}]
CALL_600S = [{"delay_s": 600, "action": "voice_call", "target": "agent"}]


def follows(w) -> dict[int, tuple]:
    with w.session() as s:
        return {d.wecom_id: (d.depth, d.own, d.policy_from) for d in service.department_policies(s)}


def test_which_policy_each_department_follows(local):
    w = local  # 总部 (1) > 销售一部 (2); 客服部 (3) added under 总部, 售后组 (4) under 客服部
    with w.session() as s:
        s.add(Department(wecom_id=3, name="客服部", parent_wecom_id=1, leaders=[]))
        s.add(Department(wecom_id=4, name="售后组", parent_wecom_id=3, leaders=[]))
    assert follows(w) == {1: (0, False, None), 2: (1, False, None), 3: (1, False, None), 4: (2, False, None)}
    with w.session() as s:
        service.save_policy(s, 0, quiet_hours=[])
        service.save_department_policy(s, 3, steps=LEADER_30S)
    assert follows(w) == {1: (0, False, 0), 2: (1, False, 0), 3: (1, True, 3), 4: (2, False, 3)}
    with w.session() as s:
        assert [d.wecom_id for d in service.department_policies(s)] == [1, 2, 3, 4]  # tree order


def test_a_new_department_policy_starts_from_the_one_it_followed(local):
    w = local
    with w.session() as s:
        service.save_policy(s, 0, quiet_hours=[], escalation_contact="wangwu", business_hours_only=True)
        service.save_department_policy(s, 1, steps=LEADER_30S)
        service.save_department_policy(s, 2, call_cooldown_s=60)  # follows 1's until now
        p2 = service.policy_for(s, "zhangsan")
        assert p2.department_wecom_id == 2 and p2.call_cooldown_s == 60
        assert [(x.delay_s, x.target) for x in p2.steps] == [(30, "leader")]  # from 1
        assert p2.escalation_contact == "wangwu" and p2.quiet_hours == () and p2.business_hours_only
        assert s.scalar(select(SlaPolicy.name).where(SlaPolicy.department_wecom_id == 2)) == "销售一部"
        with pytest.raises(service.UnknownDepartment):
            service.save_department_policy(s, 99, steps=LEADER_30S)
        with pytest.raises(service.PolicyError):
            service.save_department_policy(s, 2, steps=[{"delay_s": 5, "action": "sms", "target": "agent"}])


def test_removing_a_department_policy_its_members_follow_the_parent_then_the_tenant(local):
    w = local
    with w.session() as s:
        tenant = service.save_policy(s, 0, quiet_hours=[]).id
        parent = service.save_department_policy(s, 1, steps=LEADER_30S).id
        own = service.save_department_policy(s, 2, quiet_hours=["22:00", "07:00"]).id
    w.say("在吗？", at=0)  # zhangsan (department 2): the wait follows department 2's policy
    [wait] = w.waits()
    assert wait.policy_id == own
    with w.session() as s:
        assert service.delete_policy(s, 2) is True
        assert service.policy_for(s, "zhangsan").id == parent
        assert s.get(SlaWait, wait.id).policy_id == parent  # the open wait: what applies now
        assert service.delete_policy(s, 2) is False
        assert service.delete_policy(s, 1) is True
        assert service.policy_for(s, "zhangsan").id == tenant
        with pytest.raises(service.PolicyError):
            service.delete_policy(s, 0)
        assert s.scalar(select(SlaPolicy.id).where(SlaPolicy.department_wecom_id == 0)) == tenant


@pytest.mark.skipif(not PG_URL, reason="SQLite's one writer keeps ingest and the removal apart")
def test_a_wait_opened_as_its_department_policy_is_removed_follows_the_policy_that_applies(local):
    w = local
    with w.session() as s:
        tenant = service.save_policy(s, 0, quiet_hours=[], steps=AGENT_60S).id
        service.save_department_policy(s, 2, steps=[*AGENT_60S, *LEADER_300S, *CALL_600S])
    question = w._message("wmcustomer1", "zhangsan", "在吗？", 0, None)
    removing: dict = {}
    removed = threading.Thread(target=remove_policy, args=(w, 2, removing))
    with w.session() as pull:  # a pull opens zhangsan's wait under department 2's policy ...
        conversations.ingest(pull, items(question), default_classifier().classify)
        removed.start()  # ... as the admin removes that policy: both commit
        while removed.is_alive() and not waits_for_a_lock(w, removing.get("pid")):
            time.sleep(0.01)
    removed.join(30)
    assert removing["done"] is True
    w.pulled(7200)
    w.clock(61)
    assert w.fire() == 1  # its first step, as scheduled
    w.clock(3600)
    assert w.fire() == 0  # and no leader card nor call: the policy that applies now has none
    assert w.outbox("sla_call") == []
    assert [x.policy_id for x in w.waits()] == [tenant]


def remove_policy(w, department: int, out: dict) -> None:
    with w.session() as s:
        out["pid"] = s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        out["done"] = service.delete_policy(s, department)


def waits_for_a_lock(w, pid: int | None) -> bool:
    with w.rt.db.engine.connect() as conn:
        return bool(
            pid
            and conn.exec_driver_sql(
                f"SELECT count(*) FROM pg_locks WHERE pid = {int(pid)} AND NOT granted"
            ).scalar()
        )


def test_deleting_a_switched_off_department_policy_gives_its_waits_the_tenants_reminders(local):
    """销售一部 (2) switched its reminders off; a customer of 张三 (its member) waits. The admin
    deletes the department's policy: 张三 now follows the tenant's policy, whose reminders are on
    (a card after 2 minutes). As when a policy is switched back on, the waiting customer gets the
    tenant's step (the wait had had none, and nobody was ever told)."""
    w = local
    with w.session() as s:
        service.save_policy(s, 0, quiet_hours=[], steps=AGENT_120S)
        service.save_department_policy(s, 2, enabled=False, steps=AGENT_60S)
    w.say("在吗？我的订单还没发货", at=0)
    w.pulled(86400)
    assert w.steps() == []  # reminders off: no step
    w.clock(30)
    with w.session() as s:
        assert service.delete_policy(s, 2, w.rt.now())
    w.clock(600)
    assert w.fire() == 1, w.steps()
