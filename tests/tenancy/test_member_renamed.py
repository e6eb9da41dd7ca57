"""A member whose WeCom userid is changed (the console allows it once): WeCom calls back
change_contact / update_user with UserID (the old) and NewUserID, and from then on its lists,
follow_user, the archive and OAuth name the member by the new userid. Siyu keeps one member:
their login and role, their customers, chats, open waits and the number calls ring. (The sync
alone had taken them for a member who left and a blank newcomer.)"""

from __future__ import annotations

import time

from sqlalchemy import select

from siyu.conversations.models import Conversation
from siyu.customers.models import Customer, Follow
from siyu.intake.models import CallbackEvent
from siyu.intake.tasks import _renamed
from siyu.sla.models import SlaWait
from siyu.sla.service import save_policy
from siyu.tenancy import api_tokens
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Person, Staff, Tenant
from siyu.tenancy.queries import members_left
from siyu.tenancy.tasks import sync_staff
from siyu.web.auth import load_token_viewer
from tests.customers.test_acquisition import follow_of, make_channel, run
from tests.support.signed_in import SignedIn
from tests.support.stack import wait_for

OLD, NEW = "zhangsan", "zhangsan01"


def renamed(st, old: str, new: str) -> None:
    """The admin changes the member's 账号 in WeCom's console; Siyu handles the callback."""
    st.control("POST", st.corp_path(f"/staff/{old}/rename"), json={"new_userid": new, "wait": True})

    def handled():
        with st.session() as s:
            query = select(CallbackEvent.status).where(CallbackEvent.kind == "change_contact/update_user")
            return s.scalar(query.order_by(CallbackEvent.id.desc()))

    assert wait_for(lambda: handled() in ("done", "failed") and handled(), timeout=20) == "done"


def cards_about(st, name: str) -> list[dict]:
    return [m for m in st.app_messages() if m["msgtype"] == "textcard" and name in str(m["payload"])]


def customer_of_zhangsan(st, channel, name: str, asks: str = "") -> tuple[str, int | None]:
    """A customer of 张三's by `channel`, waiting on `asks` if given: (external userid, chat)."""
    ext = st.scan(channel.config_id, name)["external_userid"]
    wait_for(lambda: follow_of(st, ext))
    if not asks:
        return ext, None
    st.chat(ext, OLD, asks)

    def waiting():
        with st.session() as s:
            query = select(Conversation.id).where(Conversation.external_userid == ext)
            return s.scalar(query.where(Conversation.awaiting_since.is_not(None)))

    return ext, wait_for(waiting, timeout=15)


def test_the_member_stays_one_member_with_the_number_calls_ring(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        tenancy.set_call_phone(s, OLD, "13911112222")
    renamed(stack, OLD, NEW)
    with stack.session() as s:
        rows = [
            (m.userid, m.active, m.call_phone) for m in s.scalars(select(Staff).where(Staff.name == "张三"))
        ]
        leader_of_zhaoliu = s.scalar(select(Staff.direct_leaders).where(Staff.userid == "zhaoliu"))
    # the 成员 page: 张三 once, in the company; not 张三（已离职） beside a blank 张三
    assert rows == [(NEW, True, "13911112222")]
    assert OLD not in (leader_of_zhaoliu or [])


def test_the_members_login_role_and_the_tokens_an_admin_made_survive(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:  # 张三 signed in through WeCom before; an admin made him admin
        tenant = s.get(Tenant, stack.tenant_id)
        person = tenancy.person_for_staff(s, tenant, OLD)
        person.role, person.role_set_by_hand = "admin", True
        agent = tenancy.person_for_staff(s, tenant, "wangwu")
        person_id, (_, secret) = person.id, api_tokens.create(s, "CRM 同步", agent, created_by=person.id)
    renamed(stack, OLD, NEW)
    with stack.session() as s:
        locked_out = tenancy.has_left(s, s.get(Person, person_id))
        again = tenancy.person_for_staff(s, s.get(Tenant, stack.tenant_id), NEW)  # OAuth names NEW
        assert (locked_out, again.id, again.role, again.login) == (
            False,
            person_id,
            "admin",
            f"{stack.slug}/{NEW}",
        )
    # the integration's calls go on: the admin who made its token has not left
    assert not isinstance(load_token_viewer(stack.rt, secret), str)


def test_the_customers_and_channels_stay_the_members(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack)
    ext, _ = customer_of_zhangsan(stack, channel, "冯女士")
    renamed(stack, OLD, NEW)
    with stack.session() as s:
        query = select(Follow.staff_userid).join(Customer, Customer.id == Follow.customer_id)
        follows = s.scalars(query.where(Customer.external_userid == ext)).all()
        assert (follows, members_left(s, follows)) == ([NEW], set())
    # no ⚠ 接待成员 张三 已离职或停用 on a channel WeCom goes on handing scans to him by
    admin = SignedIn(stack.rt, stack.tenant_id, "admin")
    assert not admin("GET", f"/api/v1/channels/{channel.id}").json().get("notice")
    mine = SignedIn(stack.rt, stack.tenant_id, "agent", staff=NEW)  # his own list
    assert [c["name"] for c in mine("GET", "/api/v1/customers").json()["items"]] == ["冯女士"]


def test_a_waiting_customer_is_answered_and_escalated_as_before(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        save_policy(s, quiet_hours=[])
    stack.enable_archive()
    channel = make_channel(stack)
    ext, chat = customer_of_zhangsan(stack, channel, "冯女士", "请问这个型号多少钱？有现货吗")
    other, _ = customer_of_zhangsan(stack, channel, "褚先生", "发票什么时候能开？")
    renamed(stack, OLD, NEW)
    stack.rt.clock.advance(130)  # past the 2-minute step: the card goes to him by the new userid
    wait_for(lambda: cards_about(stack, "冯女士"), timeout=20)
    assert all(NEW in m["recipients"] for m in cards_about(stack, "冯女士"))
    stack.chat(NEW, ext, "有现货，今天下单明天到")  # the archive names him by the new userid

    def answered():
        with stack.session() as s:
            return s.get(Conversation, chat).awaiting_since is None

    wait_for(answered, timeout=15)
    with stack.session() as s:
        chats = s.scalars(select(Conversation.key).where(Conversation.external_userid == ext)).all()
        open_waits = s.scalars(
            select(SlaWait.id).where(SlaWait.conversation_id == chat, SlaWait.closed_at.is_(None))
        )
        assert (chats, open_waits.all()) == ([f"single:{ext}:{NEW}"], [])
    assert other  # (褚先生 still waits on him: not answered by 冯女士's reply)


def test_a_policys_escalation_contact_renamed_still_gets_the_card(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        steps = [{"delay_s": 120, "action": "app_message", "target": "contact"}]
        save_policy(s, quiet_hours=[], escalation_contact="wangwu", steps=steps)
    stack.enable_archive()
    renamed(stack, "wangwu", "wangwu01")
    customer_of_zhangsan(stack, make_channel(stack), "冯女士", "请问这个型号多少钱？有现货吗")
    stack.rt.clock.advance(130)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not cards_about(stack, "冯女士"):
        time.sleep(0.2)
    assert [m["recipients"] for m in cards_about(stack, "冯女士")] == [["wangwu01"]]


def test_a_rename_handled_after_a_sync_read_the_new_userid_keeps_one_member(stack):
    """A directory sync ran between the change and its callback: it found 张三 gone (status 5)
    and made a blank member of the new userid. The rename takes that one's WeCom fields and
    keeps 张三's own; handled again (WeCom retries), it changes nothing."""
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        tenancy.set_call_phone(s, OLD, "13911112222")
        old = s.scalar(select(Staff).where(Staff.userid == OLD))
        old.active, old.wecom_status = False, 5
        s.add(Staff(userid=NEW, name="张三", active=True, wecom_status=1, departments=[2], main_department=2))
    for _ in range(2):
        with stack.session() as s:
            _renamed(s, OLD, NEW)
    with stack.session() as s:
        rows = [
            (m.userid, m.active, m.wecom_status, m.call_phone)
            for m in s.scalars(select(Staff).where(Staff.name == "张三"))
        ]
    assert rows == [(NEW, True, 1, "13911112222")]


def test_rename_after_the_member_signed_in_under_the_new_userid_keeps_their_login(stack):
    """A sync ran between the change and its callback (every 5 minutes the permit-list read
    runs one when the list names someone Siyu does not know as archived): it made a member of
    the new userid, and 张三 opened Siyu from WeCom, whose OAuth names him by it: a Person for
    the new userid was made. The callback then must still keep 张三 one member, his admin role
    with him, and not fail on (tenant_id, staff_userid)."""
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        tenant = s.get(Tenant, stack.tenant_id)
        admin = tenancy.person_for_staff(s, tenant, OLD)
        admin.role, admin.role_set_by_hand = "admin", True
        admin_id = admin.id
        old = s.scalar(select(Staff).where(Staff.userid == OLD))
        old.active, old.wecom_status = False, 5  # the sync: gone from WeCom's lists
        s.add(Staff(userid=NEW, name="张三", active=True, wecom_status=1, departments=[2], main_department=2))
    with stack.session() as s:  # he signs in through WeCom: OAuth names NEW
        tenancy.person_for_staff(s, s.get(Tenant, stack.tenant_id), NEW)
    with stack.session() as s:
        _renamed(s, OLD, NEW)  # raised IntegrityError: uq (tenant_id, staff_userid)
    with stack.session() as s:
        again = tenancy.person_for_staff(s, s.get(Tenant, stack.tenant_id), NEW)
        assert (again.id, again.role) == (admin_id, "admin")


def test_a_channels_tags_still_to_go_to_wecom_follow_the_renamed_member(stack):
    """A customer of 张三's came by a tagged channel; WeCom was busy, the channel's mark_tag is
    still to go when 张三's userid is changed. WeCom knows the relation by the new userid only:
    the mark_tag must name him by it (named by the old it fails for good, the tag never in WeCom,
    and the tag_failed note cannot find the follow either)."""
    from siyu.notify.models import OutboxMessage
    from tests.customers.test_acquisition import corp_tag

    run(sync_staff(stack.rt, stack.tenant_id))
    tag_id = corp_tag(stack)
    fault = {
        "corp_id": stack.corp_id,
        "path": "/cgi-bin/externalcontact/mark_tag",
        "errcode": -1,
        "times": 1000,
    }
    stack.control("POST", "/faults", json=fault)
    try:
        channel = make_channel(stack, tag_ids=[tag_id])
        ext = stack.scan(channel.config_id, "冯女士")["external_userid"]
        wait_for(lambda: follow_of(stack, ext))
        with stack.session() as s:
            _renamed(s, OLD, NEW)
        with stack.session() as s:
            pending = s.scalars(
                select(OutboxMessage.payload).where(
                    OutboxMessage.kind == "mark_tag", OutboxMessage.status == "pending"
                )
            ).all()
    finally:
        stack.control("DELETE", "/faults")
    assert [p["userid"] for p in pending] == [NEW]
