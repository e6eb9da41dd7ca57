"""Members who left the company (WeCom status 5, 已退出企业) or were disabled (status 2, 已禁用),
as the staff page, a customer's page, the lists' member filter and the loss alerts tell them.
All in tenant B: no other test counts its customers, and its staff are put back after each."""

from __future__ import annotations

import re
import time
import uuid
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import delete, select

from siyu.conversations.models import Conversation
from siyu.customers import service as customers
from siyu.customers.models import Customer, Follow, FollowTag, TimelineEvent
from siyu.notify.models import OutboxMessage
from siyu.tenancy.models import Staff
from tests.conversations.conftest import Archive, store
from tests.support.statements import statements_matching
from tests.web.conftest import _contact


@contextmanager
def left(db, world, userid: str):
    """The member leaves tenant B's corp: WeCom's directory, then the staff sync's verdict."""
    corp = f"{world.emu_url}/_emulator/corps/{world.b.corp['corp_id']}"
    with db.tenant_session(world.b.id) as s:
        member = s.scalar(select(Staff).where(Staff.userid == userid))
        back = {"userid": userid, "name": member.name, "department": member.departments}
        back["direct_leader"] = member.direct_leaders
        member.active, member.wecom_status = False, 5
    assert httpx.delete(f"{corp}/staff/{userid}").status_code == 200
    try:
        yield
    finally:
        assert httpx.post(f"{corp}/staff", json=back).status_code == 201
        with db.tenant_session(world.b.id) as s:
            member = s.scalar(select(Staff).where(Staff.userid == userid))
            member.active, member.wecom_status = True, 1


@pytest.fixture
def add_customer(db, world):
    """Adds a customer of tenant B followed by these members; gone again after the test (one
    test counts B's customers)."""
    made: list[int] = []

    def add(name: str, *userids: str) -> int:
        ext, now = f"wmL{uuid.uuid4().hex[:10]}", int(time.time())
        with db.tenant_session(world.b.id) as s:
            for userid in userids:
                fields = {"UserID": userid, "ExternalUserID": ext, "CreateTime": now - 600, "State": ""}
                customer_id = customers.record_added(s, fields, _contact(ext, name, userid, now - 600)).id
        made.append(customer_id)
        return customer_id

    yield add
    with db.tenant_session(world.b.id) as s:
        follows = select(Follow.id).where(Follow.customer_id.in_(made))
        s.execute(delete(FollowTag).where(FollowTag.follow_id.in_(follows)))
        s.execute(delete(TimelineEvent).where(TimelineEvent.customer_id.in_(made)))
        s.execute(delete(Follow).where(Follow.customer_id.in_(made)))
        s.execute(delete(Customer).where(Customer.id.in_(made)))


def _badge(page: str, userid: str) -> str:
    row = re.search(rf"<small class=\"muted\">{userid}</small>(.*?)<small", page, re.S).group(1)
    return re.sub(r"<[^>]+>", "", row).strip()


def test_the_staff_page_says_who_left_and_who_was_disabled_as_wecom_does(as_role, world, db):
    """A member who left (WeCom's status 5) read 已停用 on /staff, as one disabled (status 2)."""
    corp = f"{world.emu_url}/_emulator/corps/{world.b.corp['corp_id']}"
    admin = as_role("admin", "b")
    assert httpx.delete(f"{corp}/staff/sunba").status_code == 200  # gone from WeCom's lists
    assert httpx.delete(f"{corp}/staff/zhaoliu").status_code == 200
    disabled = {"userid": "zhaoliu", "name": "赵六", "department": [4], "status": 2}
    assert httpx.post(f"{corp}/staff", json=disabled).status_code == 201
    try:
        assert admin.post("/staff/sync", data={"csrf_token": admin.csrf}).status_code == 303
        page = admin.get("/staff").text
        assert _badge(page, "sunba") == "已离职"
        assert _badge(page, "zhaoliu") == "已禁用"
        assert _badge(page, "lisi") == "" and "已停用" not in page
    finally:
        assert httpx.delete(f"{corp}/staff/zhaoliu").status_code == 200
        for userid, name in (("sunba", "孙八"), ("zhaoliu", "赵六")):
            member = {"userid": userid, "name": name, "department": [4]}
            assert httpx.post(f"{corp}/staff", json=member).status_code == 201
        assert admin.post("/staff/sync", data={"csrf_token": admin.csrf}).status_code == 303
    with db.tenant_session(world.b.id) as s:
        assert all(m.active and m.wecom_status == 1 for m in s.scalars(select(Staff)))


def test_a_customer_followed_only_by_a_member_who_left_says_nobody_follows_them(
    as_role, world, db, add_customer
):
    """刘先生's page read 跟进成员 赵六 跟进中, nothing saying 赵六 had left: nobody answers him."""
    sfx = uuid.uuid4().hex[:6]
    alone = add_customer(f"刘先生{sfx}", "zhaoliu")
    shared = add_customer(f"何女士{sfx}", "zhaoliu", "lisi")
    admin = as_role("admin", "b")
    with left(db, world, "zhaoliu"):
        page = admin.get(f"/customers/{alone}").text
        assert "<b>赵六（已离职）</b>" in page
        assert "跟进这位客户的成员都已离职，客户现在无人跟进" in page
        assert "可在企业微信管理后台分配离职成员的客户" in page
        page = admin.get(f"/customers/{shared}").text  # 李四 still follows her
        assert "<b>赵六（已离职）</b>" in page and "<b>李四</b>" in page and 'id="unattended"' not in page
        listed = admin.get("/customers", params={"q": f"刘先生{sfx}"}).text
        assert "赵六（已离职）" in listed
    page = admin.get(f"/customers/{alone}").text  # back with the company: as before
    assert "<b>赵六</b>" in page and 'id="unattended"' not in page
    # disabled, not gone: still employed, so not 离职继承 (which WeCom offers for leavers only)
    with db.tenant_session(world.b.id) as s:
        s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).active = False
        s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).wecom_status = 2
    try:
        page = admin.get(f"/customers/{alone}").text
        assert "跟进这位客户的成员都已禁用" in page and "重新启用该成员" in page and "离职继承" not in page
    finally:
        with db.tenant_session(world.b.id) as s:
            member = s.scalar(select(Staff).where(Staff.userid == "zhaoliu"))
            member.active, member.wecom_status = True, 1


def test_the_lists_filtered_by_a_member_who_left_name_them_so(as_role, world, db):
    """/customers?staff=zhaoliu showed 全部 in the member select and no chip; /conversations
    showed the chip 成员：zhaoliu, the userid."""
    admin = as_role("admin", "b")
    with left(db, world, "zhaoliu"):
        page = admin.get("/customers", params={"staff": "zhaoliu"}).text
        assert '<option value="zhaoliu" selected>赵六（已离职）</option>' in page
        assert re.search(r'id="staff-chip">成员：赵六（已离职） <a href="/customers"', page)
        page = admin.get("/conversations", params={"staff": "zhaoliu"}).text
        assert '<option value="zhaoliu" selected>赵六（已离职）</option>' in page
        assert "成员：赵六（已离职）" in page and "成员：zhaoliu" not in page
        # not offered unasked: only the one filtered by
        assert '<option value="zhaoliu"' not in admin.get("/customers").text
    page = admin.get("/customers", params={"staff": "zhaoliu"}).text
    assert '<option value="zhaoliu" selected>赵六</option>' in page and "成员：赵六 <a" in page


def test_no_loss_alert_goes_to_a_member_who_left(as_role, world, db, add_customer):
    """The customer of 李四, who had left, deleting him queued 客户流失提醒 to 李四, which WeCom
    refused (消息接收人全部无效). His leader 王五 is told, and the timeline says why 李四 was not."""
    sfx = uuid.uuid4().hex[:6]
    customer_id = add_customer(f"钱先生{sfx}", "lisi")
    with left(db, world, "lisi"):
        with db.tenant_session(world.b.id) as s:
            last = s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(1)) or 0
            external_userid = s.get(Customer, customer_id).external_userid
            fields = {"UserID": "lisi", "ExternalUserID": external_userid, "CreateTime": int(time.time())}
            customers.record_follow_ended(s, fields, "lost", "http://siyu.example")
        with db.tenant_session(world.b.id) as s:
            queued = [
                m.payload
                for m in s.scalars(select(OutboxMessage).where(OutboxMessage.id > last))
                if m.kind == "app_message"
            ]
        assert [p["touser"] for p in queued] == ["wangwu"]
        assert f"钱先生{sfx} 已将你团队的 李四（已离职） 从联系人中删除" in queued[0]["text"]["content"]
        page = as_role("admin", "b").get(f"/customers/{customer_id}").text
        assert "<b>李四（已离职）</b> 被客户删除（流失）；成员已离职，流失提醒没有发给本人" in page
    with db.tenant_session(world.b.id) as s:  # not to be sent by a later test's worker
        s.execute(delete(OutboxMessage).where(OutboxMessage.id > last))


def leavers_read(db):
    """How many times the list of members who left (tenancy.queries.staff_gone) is read."""
    return statements_matching(db.engine, r"^SELECT staff\.userid, staff\.wecom_status\s+FROM staff")


def test_the_customer_page_reads_who_left_once(as_role, world, db, add_customer):
    """Its follows and its 无人跟进 notice each read every member who left."""
    customer_id = add_customer(f"吴先生{uuid.uuid4().hex[:6]}", "zhaoliu")
    admin = as_role("admin", "b")
    with left(db, world, "zhaoliu"), leavers_read(db) as reads:
        page = admin.get(f"/customers/{customer_id}").text
    assert "<b>赵六（已离职）</b>" in page and 'id="unattended"' in page
    assert len(reads) == 1


def test_the_api_says_whether_a_follows_member_left(as_role, world, db, add_customer):
    """The API's follows read 赵六 as any member: a client could not tell nobody answers the customer."""
    name = f"郑女士{uuid.uuid4().hex[:6]}"
    customer_id = add_customer(name, "zhaoliu", "lisi")
    admin = as_role("admin", "b")

    def statuses() -> tuple[dict, dict]:
        one = admin.get(f"/api/v1/customers/{customer_id}").json()["follows"]
        (listed,) = admin.get("/api/v1/customers", params={"q": name}).json()["items"]
        return (
            {f["staff_userid"]: f["staff_status"] for f in one},
            {f["staff_userid"]: f["staff_status"] for f in listed["follows"]},
        )

    assert statuses() == ({"zhaoliu": "active", "lisi": "active"},) * 2
    with left(db, world, "zhaoliu"):
        assert statuses() == ({"zhaoliu": "left", "lisi": "active"},) * 2
        for wecom_status, said in ((2, "disabled"), (None, "left_or_disabled")):
            with db.tenant_session(world.b.id) as s:
                s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).wecom_status = wecom_status
            assert statuses() == ({"zhaoliu": said, "lisi": "active"},) * 2


@pytest.fixture
def chat_with(db, world):
    """A customer of tenant B waits in a chat with a member (the conversation gone after the test)."""
    made: list[int] = []

    def chat(customer_id: int, userid: str, text: str) -> int:
        with db.tenant_session(world.b.id) as s:
            ext = s.get(Customer, customer_id).external_userid
        arc = Archive()
        arc.text(ext, userid, text, 30)
        store(db, world.b.id, arc.items)
        with db.tenant_session(world.b.id) as s:
            made.append(s.scalar(select(Conversation.id).where(Conversation.external_userid == ext)))
        return made[-1]

    yield chat
    with db.tenant_session(world.b.id) as s:
        s.execute(delete(Conversation).where(Conversation.id.in_(made)))


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_a_chat_whose_member_left_says_so(as_role, world, db, add_customer, chat_with):
    """The chat list, its search, the chat and the customer's chats read 赵六, as a member
    still there: the customer's wait looked in hand, and the wait bar said 请 赵六 在企业微信里回复."""
    sfx = uuid.uuid4().hex[:6]
    customer_id = add_customer(f"冯先生{sfx}", "zhaoliu")
    chat_id = chat_with(customer_id, "zhaoliu", f"报价单发我{sfx}")
    admin = as_role("admin", "b")
    with left(db, world, "zhaoliu"):
        listed = _text(admin.get("/conversations", params={"staff": "zhaoliu"}).text)
        assert "单聊 · 赵六（已离职） · 1 条" in listed
        found = _text(admin.get("/conversations", params={"q": f"报价单发我{sfx}"}).text)
        assert f"冯先生{sfx} · 赵六（已离职）" in found
        page = admin.get(f"/conversations/{chat_id}").text
        assert "单聊 · 成员 赵六（已离职） ·" in page
        reply_where = _text(re.search(r'id="reply-where">(.*?)</small>', page, re.S).group(1))
        handed = "可在企业微信管理后台把客户分配给在职的成员（离职继承）"
        assert reply_where == f"赵六已离职，这里没人会回复：{handed}"
        with leavers_read(db) as reads:
            page = admin.get(f"/customers/{customer_id}").text
        assert re.search(r'<span class="name">赵六（已离职） <span class="badge st-lost"', page)
        assert len(reads) == 1  # its follows and its chats alike
        one = admin.get(f"/api/v1/conversations/{chat_id}").json()
        assert (one["staff_name"], one["staff_status"]) == ("赵六", "left")
        (item,) = admin.get("/api/v1/conversations", params={"staff": "zhaoliu"}).json()["items"]
        assert item["staff_status"] == "left"
        (hit,) = admin.get("/api/v1/messages/search", params={"q": f"报价单发我{sfx}"}).json()["items"]
        assert hit["conversation"]["staff_status"] == "left"
    page = admin.get(f"/conversations/{chat_id}").text  # back with the company: as before
    assert "单聊 · 成员 赵六 ·" in page and "请 赵六 在企业微信里回复" in page
    assert admin.get(f"/api/v1/conversations/{chat_id}").json()["staff_status"] == "active"


def test_a_chat_whose_contact_ended_marks_a_member_who_left(as_role, world, db, add_customer, chat_with):
    """The chat's header read 成员 赵六（已离职） above a notice saying 赵六于 … 删除了客户, unmarked."""
    sfx = uuid.uuid4().hex[:6]
    customer_id = add_customer(f"蒋先生{sfx}", "zhaoliu")
    chat_id = chat_with(customer_id, "zhaoliu", f"还在吗{sfx}")
    with db.tenant_session(world.b.id) as s:
        follow = s.scalar(select(Follow).where(Follow.customer_id == customer_id))
        follow.status, follow.ended_at = "deleted", None  # (no time: the notice says none)
    admin = as_role("admin", "b")

    def ended() -> str:
        page = admin.get(f"/conversations/{chat_id}").text
        return _text(re.search(r'id="contact-ended">(.*?)</p>', page, re.S).group(1))

    with left(db, world, "zhaoliu"):
        assert ended().startswith("赵六（已离职）删除了客户：")
        with db.tenant_session(world.b.id) as s:
            s.scalar(select(Follow).where(Follow.customer_id == customer_id)).status = "lost"
        assert ended().startswith("客户删除了赵六（已离职）：")
    assert ended().startswith("客户删除了赵六：")  # back with the company: as before


def test_a_group_owner_a_sender_and_the_timeline_mark_a_member_who_left(
    as_role, world, db, add_customer, chat_with
):
    """The customer's groups, the group chat's 群主, the messages 赵六 sent and the timeline's
    entries naming him read 赵六, as a member still there, once he had left."""
    from siyu.conversations import groups
    from siyu.conversations.models import GroupChat, GroupMember
    from siyu.db.base import utcnow

    sfx = uuid.uuid4().hex[:6]
    customer_id = add_customer(f"陈先生{sfx}", "zhaoliu")
    chat_id = chat_with(customer_id, "zhaoliu", f"发票开好了吗{sfx}")
    room = f"wrLeft{sfx}"
    with db.tenant_session(world.b.id) as s:
        ext = s.get(Customer, customer_id).external_userid
        listed = [{"userid": ext, "type": 2, "join_time": int(time.time()) - 300, "join_scene": 1}]
        chat = {"chat_id": room, "name": f"老客户群{sfx}", "owner": "zhaoliu", "member_list": listed}
        groups.record(s, chat, utcnow())
    arc = Archive()
    arc.text("zhaoliu", ext, f"开好了，已发邮箱{sfx}", 20)  # his reply ends the wait
    arc.text("zhaoliu", "", f"欢迎各位{sfx}", 10, roomid=room)
    store(db, world.b.id, arc.items)
    with db.tenant_session(world.b.id) as s:
        group_chat = s.scalar(select(Conversation.id).where(Conversation.roomid == room))
    admin = as_role("admin", "b")
    try:
        with left(db, world, "zhaoliu"):
            with leavers_read(db) as reads:
                page = admin.get(f"/customers/{customer_id}").text
            assert len(reads) == 1
            groups_shown = _text(re.search(r'<section id="groups">(.*?)</section>', page, re.S).group(1))
            assert f"在客户群「老客户群{sfx}」里" in groups_shown and "群主 赵六（已离职））" in groups_shown
            assert "<b>赵六（已离职）</b> 添加了客户" in page
            assert "；赵六（已离职） 回复，用时" in page
            with leavers_read(db) as reads:
                chat = admin.get(f"/conversations/{chat_id}").text
            assert len(reads) == 1
            assert re.search(r'<span class="who">赵六（已离职） · <time', chat)
            in_group = admin.get(f"/conversations/{group_chat}").text
            assert "· 群主 赵六（已离职） ·" in in_group
            assert re.search(r'<span class="who">赵六（已离职） · <time', in_group)
            listed = _text(admin.get("/conversations", params={"kind": "group"}).text)
            assert "群主 赵六（已离职）" in listed
            found = _text(admin.get("/conversations", params={"q": f"已发邮箱{sfx}"}).text)
            assert "赵六（已离职）：开好了" in found
        page = admin.get(f"/customers/{customer_id}").text  # back with the company: as before
        assert "群主 赵六）" in _text(page) and "<b>赵六</b> 添加了客户" in page and "已离职" not in page
        assert "已离职" not in admin.get(f"/conversations/{group_chat}").text
    finally:
        with db.tenant_session(world.b.id) as s:
            s.execute(delete(Conversation).where(Conversation.roomid == room))
            s.execute(delete(GroupMember).where(GroupMember.chat_id == room))
            s.execute(delete(GroupChat).where(GroupChat.chat_id == room))


def test_the_staff_api_says_how_a_member_is_gone_as_the_follows_do(as_role, world, db):
    """GET /api/v1/staff gave only active: false, for a member who left and one disabled alike,
    where a follow's staff_status told them apart."""
    admin = as_role("admin", "b")

    def status() -> tuple[bool, str]:
        members = admin.get("/api/v1/staff", params={"include_inactive": "true"}).json()
        lisi = next(m for m in members if m["userid"] == "lisi")
        assert (lisi["active"], lisi["status"]) == (True, "active")
        zhaoliu = next(m for m in members if m["userid"] == "zhaoliu")
        return zhaoliu["active"], zhaoliu["status"]

    assert status() == (True, "active")
    with left(db, world, "zhaoliu"):
        assert status() == (False, "left")
        for wecom_status, said in ((2, "disabled"), (None, "left_or_disabled")):
            with db.tenant_session(world.b.id) as s:
                s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).wecom_status = wecom_status
            assert status() == (False, said)


def test_the_customer_api_says_nobody_follows_a_customer_whose_members_all_left(
    as_role, world, db, add_customer
):
    """The page said 客户现在无人跟进 where only leavers follow; the API's profile did not say it."""
    sfx = uuid.uuid4().hex[:6]
    alone = add_customer(f"韩先生{sfx}", "zhaoliu")
    shared = add_customer(f"卫女士{sfx}", "zhaoliu", "lisi")
    admin = as_role("admin", "b")

    def unattended(customer_id: int) -> str:
        return admin.get(f"/api/v1/customers/{customer_id}").json()["unattended"]

    assert (unattended(alone), unattended(shared)) == ("", "")
    with left(db, world, "zhaoliu"):
        assert (unattended(alone), unattended(shared)) == ("已离职", "")  # 李四 still follows her
        with db.tenant_session(world.b.id) as s:
            s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).wecom_status = 2
        assert unattended(alone) == "已禁用"


@pytest.fixture
def owned_by_zhaoliu(db, world, add_customer, chat_with):
    """A customer of 赵六 and 李四 in 赵六's chat (he replied) and in 赵六's customer group (he
    wrote there): (customer, chat, group chat) ids; the group gone after the test."""
    from siyu.conversations import groups
    from siyu.conversations.models import GroupChat, GroupMember
    from siyu.db.base import utcnow

    sfx = uuid.uuid4().hex[:6]
    customer_id = add_customer(f"褚先生{sfx}", "zhaoliu", "lisi")
    chat_id = chat_with(customer_id, "zhaoliu", f"合同寄出了吗{sfx}")
    room = f"wrApi{sfx}"
    with db.tenant_session(world.b.id) as s:
        ext = s.get(Customer, customer_id).external_userid
        listed = [{"userid": ext, "type": 2, "join_time": int(time.time()) - 300, "join_scene": 1}]
        chat = {"chat_id": room, "name": f"售后群{sfx}", "owner": "zhaoliu", "member_list": listed}
        groups.record(s, chat, utcnow())
    arc = Archive()
    arc.text("zhaoliu", ext, f"寄出了{sfx}", 20)  # his reply ends the wait
    arc.text("zhaoliu", "", f"大家好{sfx}", 10, roomid=room)
    store(db, world.b.id, arc.items)
    with db.tenant_session(world.b.id) as s:
        group_chat = s.scalar(select(Conversation.id).where(Conversation.roomid == room))
    yield customer_id, chat_id, group_chat
    with db.tenant_session(world.b.id) as s:
        s.execute(delete(Conversation).where(Conversation.roomid == room))
        s.execute(delete(GroupMember).where(GroupMember.chat_id == room))
        s.execute(delete(GroupChat).where(GroupChat.chat_id == room))


def _read_once(db, admin, url: str) -> None:
    with leavers_read(db) as reads:
        assert admin.get(url).status_code == 200
    assert len(reads) == 1, url


def test_the_api_says_whether_a_messages_sender_left(as_role, world, db, owned_by_zhaoliu):
    """The API's messages named 赵六 as a member still there once he had left (the chat marked
    him): a client could not tell the reply had nobody behind it now."""
    customer_id, chat_id, group_chat = owned_by_zhaoliu
    admin = as_role("admin", "b")

    def senders(conversation_id: int) -> list[tuple]:
        items = admin.get(f"/api/v1/conversations/{conversation_id}/messages").json()["items"]
        return [(m["direction"], m["sender_name"], m["sender_status"]) for m in items]

    (customer,) = {name for d, name, _ in senders(chat_id) if d == "in"}
    assert senders(chat_id) == [("in", customer, None), ("out", "赵六", "active")]
    with left(db, world, "zhaoliu"):
        assert senders(chat_id) == [("in", customer, None), ("out", "赵六", "left")]
        assert senders(group_chat) == [("out", "赵六", "left")]
        hits = admin.get("/api/v1/messages/search", params={"q": f"大家好{customer[-6:]}"}).json()
        assert [h["message"]["sender_status"] for h in hits["items"]] == ["left"]
        _read_once(db, admin, f"/api/v1/conversations/{chat_id}/messages")
    assert senders(chat_id)[-1] == ("out", "赵六", "active")


def test_the_api_says_whether_a_groups_owner_left(as_role, world, db, owned_by_zhaoliu):
    """The customer's groups and the group chat named their 群主 赵六 plainly once he had left
    (the pages marked him): nobody looks after the group now."""
    customer_id, _, group_chat = owned_by_zhaoliu
    admin = as_role("admin", "b")

    def owners() -> tuple[str, str, str]:
        (group,) = admin.get(f"/api/v1/customers/{customer_id}").json()["groups"]
        one = admin.get(f"/api/v1/conversations/{group_chat}").json()["group"]
        params = {"kind": "group", "staff": "zhaoliu"}
        (listed,) = admin.get("/api/v1/conversations", params=params).json()["items"]
        assert group["owner_name"] == one["owner_name"] == listed["group"]["owner_name"] == "赵六"
        return group["owner_status"], one["owner_status"], listed["group"]["owner_status"]

    assert owners() == ("active",) * 3
    with left(db, world, "zhaoliu"):
        assert owners() == ("left",) * 3
        with db.tenant_session(world.b.id) as s:
            s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).wecom_status = 2
        assert owners() == ("disabled",) * 3
        _read_once(db, admin, f"/api/v1/conversations/{group_chat}")
        _read_once(db, admin, f"/api/v1/customers/{customer_id}")
    assert owners() == ("active",) * 3


def test_the_api_timeline_says_whether_an_entrys_member_left(as_role, world, db, owned_by_zhaoliu):
    """The API's timeline named 赵六 plainly in his entries once he had left (the page marked
    him 赵六（已离职）)."""
    customer_id, _, _ = owned_by_zhaoliu
    admin = as_role("admin", "b")

    def entries() -> set[tuple]:
        timeline = admin.get(f"/api/v1/customers/{customer_id}/timeline").json()
        return {(e["kind"], e["staff_name"], e["staff_status"]) for e in timeline}

    expected = {("added", "赵六", "active"), ("added", "李四", "active"), ("wait", "赵六", "active")}
    assert expected | {("group_joined", "赵六", "active")} == entries()
    with left(db, world, "zhaoliu"):
        # named plainly still (the status tells), as the API always named them
        expected = {("added", "赵六", "left"), ("added", "李四", "active"), ("wait", "赵六", "left")}
        assert expected | {("group_joined", "赵六", "left")} == entries()
        _read_once(db, admin, f"/api/v1/customers/{customer_id}/timeline")
