"""A member whose WeCom userid is changed (the console allows it once): WeCom calls back
change_contact / update_user with UserID (the old) and NewUserID, and from then on its lists,
follow_user, the archive and OAuth name the member by the new userid. Siyu keeps one member:
their login and role, their customers, chats, open waits and the number calls ring. (The sync
alone had taken them for a member who left and a blank newcomer.)"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from siyu.conversations.models import Conversation
from siyu.customers.models import Customer, Follow
from siyu.db import utcnow
from siyu.intake.models import CallbackEvent
from siyu.intake.tasks import _renamed
from siyu.notify.models import OutboxMessage
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
            _renamed(s, OLD, NEW, utcnow())
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
        _renamed(s, OLD, NEW, utcnow())  # raised IntegrityError: uq (tenant_id, staff_userid)
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
            _renamed(s, OLD, NEW, utcnow())
        with stack.session() as s:
            pending = s.scalars(
                select(OutboxMessage.payload).where(
                    OutboxMessage.kind == "mark_tag", OutboxMessage.status == "pending"
                )
            ).all()
    finally:
        stack.control("DELETE", "/faults")
    assert [p["userid"] for p in pending] == [NEW]


# ---- what WeCom sent before the rename, pulled or handled after it


def test_a_message_sent_before_the_rename_and_pulled_after_waits_on_the_member(stack):
    """冯女士 asks 张三 just before the admin changes his userid; the archive is pulled after the
    rename was handled (the archive lists a message some time after it was sent). Its record
    names 张三 by the old userid. His reply (under the new userid) must answer it, and the
    card must reach him: not a second chat with a member Siyu no longer has."""
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        save_policy(s, quiet_hours=[])
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "冯女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.chat(ext, OLD, "请问这个型号多少钱？有现货吗")  # in WeCom's archive, not yet pulled
    renamed(stack, OLD, NEW)
    stack.enable_archive()  # now Siyu pulls

    def chats():
        with stack.session() as s:
            q = select(Conversation.key, Conversation.awaiting_since).where(
                Conversation.external_userid == ext
            )
            return s.execute(q).all()

    wait_for(lambda: any(a for _, a in chats()), timeout=20)
    with stack.session() as s:
        waits = s.scalars(select(SlaWait.staff_userid).where(SlaWait.closed_at.is_(None))).all()
    assert ([k for k, _ in chats()], waits) == ([f"single:{ext}:{NEW}"], [NEW])


def test_a_group_members_invitor_keeps_the_members_name_after_the_rename(stack):
    """冯女士 joined 张三's group, invited by 张三. After his userid changes her profile's
    groups must still say 邀请人 张三, not the raw old userid."""
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "冯女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    made = stack.control(
        "POST", stack.corp_path("/group_chats"), json={"owner": OLD, "name": "VIP群", "wait": True}
    )
    chat_id = made["group_chat"]["chat_id"]
    stack.control(
        "POST",
        stack.corp_path(f"/group_chats/{chat_id}/members"),
        json={"members": [ext], "join_scene": 1, "invitor": OLD, "wait": True},
    )
    with stack.session() as s:
        cid = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
    admin = SignedIn(stack.rt, stack.tenant_id, "admin")

    def groups():
        return admin("GET", f"/api/v1/customers/{cid}").json().get("groups") or []

    wait_for(lambda: groups(), timeout=20)
    assert groups()[0]["invitor_name"] == "张三"
    renamed(stack, OLD, NEW)
    g = groups()[0]
    assert (g["owner_name"], g["invitor_userid"], g["invitor_name"]) == ("张三", NEW, "张三")


def _deliver_late(st, xml: str, kind: str = "change_contact/update_user") -> None:
    with st.session() as s:
        event = CallbackEvent(kind=kind, digest=hashlib.sha256(xml.encode()).hexdigest(), xml=xml)
        s.add(event)
        s.flush()
        event_id = event.id
    st.rt.wake()
    assert wait_for(
        lambda: st.event_statuses([event_id]) != ["pending"] and st.event_statuses([event_id]), timeout=20
    ) == ["done"]


def test_a_loss_from_before_the_rename_handled_after_it_ends_the_members_follow(stack):
    """冯女士 deletes 张三 a moment before his userid is changed; that del_follow_user (naming
    him by the old userid) is handled only after the rename (held back, retried). 冯女士 must
    be 张三's lost customer and 张三 alerted: not still his active customer beside a
    second, departed 'zhangsan' who lost her."""
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "冯女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    url = stack.rt.settings.callback_url(stack.slug)
    stack.control("PATCH", stack.corp_path(""), json={"callback_url": ""})
    lost = stack.control("POST", stack.corp_path(f"/customers/{ext}/remove_staff"), json={"userid": OLD})
    stack.control("PATCH", stack.corp_path(""), json={"callback_url": url})
    renamed(stack, OLD, NEW)
    _deliver_late(stack, lost["inner_xml"], "change_external_contact/del_follow_user")
    with stack.session() as s:
        rows = s.execute(
            select(Follow.staff_userid, Follow.status)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Customer.external_userid == ext)
        ).all()
    time.sleep(2)
    alerts = [m["recipients"] for m in stack.app_messages() if "客户流失提醒" in str(m["payload"])]
    # now: [('zhangsan01', 'active'), ('zhangsan', 'lost')] and no alert to 张三
    assert (sorted(rows), NEW in sum(alerts, [])) == ([(NEW, "lost")], True), alerts


def test_a_userid_is_the_renamed_members_only_for_what_was_sent_before_the_rename():
    """WeCom frees the old userid: a new member may get it. What was sent under it after the
    rename is the new member's; a second rename chains."""
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    renames = tenancy.Renames([(OLD, NEW, at), ("zhangsan01", "zs", at + timedelta(days=30))])
    assert renames.now(OLD, at - timedelta(minutes=1)) == "zs"  # (a message lost for a month)
    assert renames.now(OLD, at + timedelta(milliseconds=500)) == "zs"  # the same second as the event
    assert renames.now(OLD, at + timedelta(minutes=1)) == OLD  # the new 张三
    assert renames.now(NEW, at + timedelta(days=1)) == "zs"
    assert renames.now("lisi", at - timedelta(minutes=1)) == "lisi"
    assert not tenancy.Renames([])


def test_a_card_sent_before_the_rename_still_opens_for_the_renamed_member(stack):
    """张三 got a card about 冯女士; then his 账号 is changed in WeCom. The card's row keeps the
    old userid, and its link had opened for nobody: 找不到，或你无权查看."""
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        save_policy(s, quiet_hours=[])
    stack.enable_archive()
    channel = make_channel(stack)
    _, chat = customer_of_zhangsan(stack, channel, "冯女士", "请问这个型号多少钱？有现货吗")
    stack.rt.clock.advance(130)  # the 2-minute card goes to 张三, still zhangsan
    wait_for(lambda: cards_about(stack, "冯女士"), timeout=20)

    def card_id():
        with stack.session() as s:
            q = select(OutboxMessage.id).where(
                OutboxMessage.kind == "sla_notice",
                OutboxMessage.recipient == OLD,
                OutboxMessage.status == "sent",
            )
            return s.scalar(q)

    card = wait_for(card_id, timeout=10)
    renamed(stack, OLD, NEW)
    him = SignedIn(stack.rt, stack.tenant_id, "agent", staff=NEW)
    r = him("GET", f"/api/v1/conversations?card={card}")
    assert r.status_code == 200, (
        f"张三 (now {NEW}) taps the card he got before the rename: {r.status_code} {r.text[:200]}"
    )
    assert [c["id"] for c in r.json()["items"]] == [chat]
