"""What an open chat polls (GET /api/v1/conversations/{id}'s `version`, siyu.js every 15 s):
every change the chat page shows must move it, or the page stays stale until a manual reload."""

from __future__ import annotations

import time

from sqlalchemy import delete, select, update

from siyu.conversations.models import Conversation, GroupChat
from siyu.customers import service as customers
from siyu.customers.models import Customer
from siyu.tenancy.models import Staff, Tenant
from tests.conversations.conftest import Archive, Item, store
from tests.web.conftest import _add, remove_customers


def _version(client, cid: int) -> str:
    r = client.get(f"/api/v1/conversations/{cid}")
    assert r.status_code == 200, r.text
    return r.json()["version"]


def _page_version(client, cid: int) -> str:
    import re

    page = client.get(f"/conversations/{cid}").text
    return re.search(r'data-live-version="([^"]*)"', page).group(1)


def _cid(db, world, ext: str) -> int:
    with db.tenant_session(world.a.id) as s:
        return s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))


def _customers_chat(db, world, name: str) -> tuple[str, int, int]:
    """A customer of 张三's, added an hour ago, whose 好的谢谢 waits for nothing: (external
    userid, chat, now in seconds). _forget_customer takes them away again."""
    arc, now = Archive(), int(time.time())
    ext = f"wm{arc.sfx}"
    with db.tenant_session(world.a.id) as s:
        _add(s, s.get(Tenant, world.a.id), ext, name, "zhangsan", now - 3600)
    arc.text(ext, "zhangsan", "好的谢谢", 60)
    store(db, world.a.id, arc.items)
    return ext, _cid(db, world, ext), now


def _forget_customer(db, world, ext: str) -> None:
    """A customer a test added to the world, gone again (their chat then titled by "wm…", as
    the other tests leave out)."""
    with db.tenant_session(world.a.id) as s:
        ids = list(s.scalars(select(Customer.id).where(Customer.external_userid == ext)))
    remove_customers(db, world.a.id, ids)


def test_a_recall_pulled_after_a_newer_message_changes_the_version(as_role, db, world):
    """The customer said 好的 (no reply needed) and took it back 20 s later; the staff member wrote
    after that. The recall comes in a later pull than the staff message (an import beside the live
    pull, a re-pull): the chat shows 已撤回 after a reload, but the version the open page polls
    stays the same, so it keeps showing 好的 as said."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    ok = arc.text(ext, "zhangsan", "好的", 300)
    arc.text("zhangsan", ext, "那我这就给您安排", 100)
    store(db, world.a.id, arc.items)
    cid = _cid(db, world, ext)
    admin = as_role("admin")
    before = _page_version(admin, cid)
    assert before == _version(admin, cid)

    late = Archive()
    late.sfx, late.now_ms, late.seq = arc.sfx, arc.now_ms, arc.seq
    late.recall(ext, "zhangsan", ok, 280)
    store(db, world.a.id, late.items)
    msgs = admin.get(f"/api/v1/conversations/{cid}/messages").json()["items"]
    assert [m["recalled"] for m in msgs if m["msgid"] == ok] == [True]  # the chat shows it taken back
    assert _version(admin, cid) != before, "the open page is never told the message was recalled"


def test_a_colleague_snoozing_the_wait_changes_the_version(as_role, new_waiting):
    """张三 has the waiting chat open; his supervisor snoozes its reminders from the SLA board.
    张三's page keeps offering 暂缓提醒 with no word of the snooze (提醒已暂缓至 …（王五 … 暂缓）)."""
    cid = new_waiting("zhangsan")
    agent, supervisor = as_role("agent"), as_role("supervisor")
    before = _version(agent, cid)
    r = supervisor.post(
        f"/conversations/{cid}/snooze", data={"csrf_token": supervisor.csrf, "minutes": "30", "next": "/sla"}
    )
    assert r.status_code == 303, r.text
    assert agent.get(f"/api/v1/conversations/{cid}").json()["snooze"] is not None
    assert _version(agent, cid) != before, "the open chat still shows the wait as not snoozed"


def test_the_contact_ending_changes_the_version(as_role, db, world):
    """The customer deletes 张三 while no question waits: the chat page says 不再是联系人 after a
    reload, but the open page is not told."""
    ext, cid, now = _customers_chat(db, world, "周先生")
    admin = as_role("admin")
    before = _version(admin, cid)
    with db.tenant_session(world.a.id) as s:
        customers.record_follow_ended(
            s, {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": now}, "lost"
        )
    try:
        assert admin.get(f"/api/v1/conversations/{cid}").json()["contact_ended"] is not None
        assert _version(admin, cid) != before, "the open chat is not told the customer deleted the member"
    finally:
        _forget_customer(db, world, ext)


def test_a_remark_edited_changes_the_version(as_role, db, world):
    ext, cid, now = _customers_chat(db, world, "吴女士")
    admin = as_role("admin")
    before = _version(admin, cid)
    from tests.web.conftest import _contact

    with db.tenant_session(world.a.id) as s:
        customers.record_edited(
            s,
            {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": now},
            _contact(ext, "吴女士", "zhangsan", now - 3600, remark="吴姐-VIP"),
        )
    try:
        assert admin.get(f"/api/v1/conversations/{cid}").json()["remark"] == "吴姐-VIP"
        assert _version(admin, cid) != before
    finally:
        _forget_customer(db, world, ext)


def test_nothing_unchanged_moves_the_version(as_role, chats, new_waiting):
    admin = as_role("admin")
    for cid in [*chats.a.values(), new_waiting("zhangsan")]:
        first = _page_version(admin, cid)
        time.sleep(0.01)
        assert _version(admin, cid) == first == _version(admin, cid)


def test_a_group_dismissed_changes_the_version(as_role, db, world):
    """A customer's question waits in a group (群内有客户等待回复); the owner dismisses the group.
    After a reload the bar is gone and the header says 已解散; the open page keeps the bar."""
    from datetime import UTC, datetime

    from siyu.conversations import groups

    arc = Archive()
    room = f"wrDIS{arc.sfx}"
    arc.text("zhangsan", "", "大家好", 120, roomid=room)
    arc.text(f"wm{arc.sfx}", "", "这个团购什么时候到？", 60, roomid=room)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.roomid == room))
    admin = as_role("admin")
    assert admin.get(f"/api/v1/conversations/{cid}").json()["group_wait"] is not None
    before = _version(admin, cid)
    try:
        with db.tenant_session(world.a.id) as s:
            groups.record_dismissed(s, room, datetime.now(UTC))
        assert admin.get(f"/api/v1/conversations/{cid}").json()["group_wait"] is None
        assert _version(admin, cid) != before, "the open group chat keeps its wait bar"
    finally:  # (the other tests count the world's group chats)
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(Conversation).where(Conversation.roomid == room))
            s.execute(delete(GroupChat).where(GroupChat.chat_id == room))


def test_the_member_taken_off_the_archive_changes_the_version(as_role, db, world):
    """No question waits; 张三 is taken off the archive's permit list. After a reload the chat says
    张三已不在会话存档范围内; the open page is not told."""
    from datetime import UTC, datetime

    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhangsan", "好的谢谢", 60)
    store(db, world.a.id, arc.items)
    cid = _cid(db, world, ext)
    admin = as_role("admin")
    before = _version(admin, cid)
    off = update(Staff).where(Staff.userid == "zhangsan")  # (as settle_unarchived marks him; the
    # world's other chats of his are left waiting: the other tests count them)
    with db.tenant_session(world.a.id) as s:
        s.execute(off.values(unarchived_since=datetime.now(UTC)))
    try:
        assert admin.get(f"/api/v1/conversations/{cid}").json()["member_unarchived_since"] is not None
        assert _version(admin, cid) != before
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(off.values(unarchived_since=None))


def test_the_last_reminder_fired_changes_the_version(as_role, db, world, web_settings, new_waiting):
    """Every step of the wait fires while 张三 has the chat open: after a reload the bar says
    提醒已全部发出，没有可暂缓的了 (or, in quiet hours, 提醒已发出，电话 … 拨打); the open page keeps
    showing the bar as before the reminders went, and is never told."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from siyu.conversations.models import ArchiveCursor
    from siyu.runtime import Runtime
    from siyu.sla.models import SlaEscalation, SlaWait
    from siyu.sla.tasks import fire_one

    cid = new_waiting("zhangsan")
    agent = as_role("agent")
    page = agent.get(f"/conversations/{cid}").text
    assert "暂缓提醒" in page and 'id="no-reminders-left"' not in page
    before = _version(agent, cid)
    rt = Runtime.create(web_settings, db)
    outcomes = []
    for _ in range(6):  # each step, made due now, fired as the worker does
        now = datetime.now(UTC)
        with db.tenant_session(world.a.id) as s:
            wait = s.scalar(
                select(SlaWait.id).where(SlaWait.conversation_id == cid, SlaWait.closed_at.is_(None))
            )
            pending = SlaEscalation.status == "pending"
            ids = list(s.scalars(select(SlaEscalation.id).where(SlaEscalation.wait_id == wait, pending)))
            s.execute(
                update(SlaEscalation)
                .where(SlaEscalation.wait_id == wait, pending)
                .values(due_at=now - timedelta(seconds=1))
            )
            cursor = s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive"))
            if cursor is None:
                s.add(ArchiveCursor(source="archive", seq=0, pulled_until=now))
            else:
                cursor.pulled_until = now
        if not ids:
            break
        outcomes += [fire_one(rt, world.a.id, i) for i in ids]
    page = agent.get(f"/conversations/{cid}").text
    import re

    bar = re.search(r"<section class=\"waitbar\".*?</section>", page, re.S).group(0)
    assert "已全部发出" in bar or "提醒已发出" in bar, (outcomes, bar)
    assert _version(agent, cid) != before, "the open chat still offers to snooze reminders all sent"


def _next(arc: Archive) -> Archive:
    later = Archive()
    later.sfx, later.seq = arc.sfx, arc.seq
    return later


def test_messages_waits_recalls_and_consent_in_order_each_move_the_version(as_role, db, world):
    admin = as_role("admin")
    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhangsan", "好的", 300)
    store(db, world.a.id, arc.items)
    cid = _cid(db, world, ext)
    seen = {_version(admin, cid)}

    def step(make) -> None:
        nonlocal arc
        arc = _next(arc)
        make(arc)
        store(db, world.a.id, arc.items)
        v = _version(admin, cid)
        assert v not in seen, v
        seen.add(v)
        assert _version(admin, cid) == v  # and it stays put while nothing changes

    asked = {}
    step(lambda a: asked.setdefault("q", a.text(ext, "zhangsan", "这款什么时候有货？", 200)))  # wait opens
    step(lambda a: a.text("zhangsan", ext, "明天到货", 150))  # closed by a reply
    step(lambda a: a.recall(ext, "zhangsan", asked["q"], 140))  # a recall, in order
    step(lambda a: a.text(ext, "zhangsan", "那还有别的颜色吗？", 100))  # a new wait

    def consent(a: Archive) -> None:
        a.seq += 1
        msgid = f"c{a.seq}-{a.sfx}"
        body = {
            "msgid": msgid, "action": "send", "from": ext, "tolist": ["zhangsan"], "roomid": "",
            "msgtime": a.now_ms - 50_000, "msgtype": "disagree",
            "disagree": {"userid": ext, "disagree_time": a.now_ms - 50_000},
        }  # fmt: skip
        a.items.append(Item(a.seq, msgid, body))

    step(consent)  # declined: the wait closes, and the notice shows
    assert admin.get(f"/api/v1/conversations/{cid}").json()["archiving"] == "declined"


def test_a_colleague_marking_no_reply_needed_moves_the_version(as_role, new_waiting):
    cid = new_waiting("zhangsan")
    agent, supervisor = as_role("agent"), as_role("supervisor")
    before = _version(agent, cid)
    r = supervisor.post(f"/conversations/{cid}/dismiss", data={"csrf_token": supervisor.csrf})
    assert r.status_code == 303
    assert _version(agent, cid) != before
