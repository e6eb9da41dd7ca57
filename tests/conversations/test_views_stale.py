"""The chat and the board when things change under a page left open: a newer question after
the page was drawn, a recall under a snooze, a customer who becomes known, the menu's count."""

from __future__ import annotations

import re

from sqlalchemy import select

from siyu.conversations.models import Conversation
from siyu.sla.models import SlaEscalation, SlaWait
from tests.conversations.conftest import Archive, store
from tests.support.board import whole_board

_FORM = re.compile(r'<form method="post" action="(/conversations/\d+/dismiss)"[^>]*>(.*?)</form>', re.S)
_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _conversation(db, tenant_id: int, ext: str) -> int:
    with db.tenant_session(tenant_id) as s:
        return s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))


def test_a_dismiss_from_a_chat_page_left_open_does_not_silence_a_question_it_never_showed(as_role, db, world):
    """The agent opened the chat while 在吗 waited, answered it on the phone, and the customer
    asked something new; the page still shows the old wait bar with its 标记无需回复 button.
    Pressing it marked the new question, which the agent never saw, as needing no reply."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhangsan", "在吗", 300)
    store(db, world.a.id, arc.items)
    cid = _conversation(db, world.a.id, ext)
    agent = as_role("agent")
    shown = agent.get(f"/conversations/{cid}").text
    action, fields = _FORM.search(shown).groups()
    form = dict(_FIELD.findall(fields))  # what the page's button sends

    later = Archive()  # meanwhile: the agent answers, the customer asks something new
    later.text("zhangsan", ext, "在的，您请说", 120)
    new_question = later.text(ext, "zhangsan", "退款什么时候到账？", 60)
    store(db, world.a.id, later.items)
    now = agent.get(f"/api/v1/conversations/{cid}").json()
    assert now["waiting"] and now["awaiting_msgid"] == new_question

    r = agent.post(action, data=form, follow_redirects=True)  # the button on the page left open
    assert "又发了消息「退款什么时候到账？」" in r.text and "没有标记" in r.text
    after = agent.get(f"/api/v1/conversations/{cid}").json()
    assert after["waiting"] is True and after["awaiting_msgid"] == new_question, (
        "the stale 标记无需回复 button dismissed a question the page never showed"
    )


def test_the_api_dismisses_only_the_message_it_names_while_it_waits(as_role, new_waiting):
    agent = as_role("agent")
    cid = new_waiting("zhangsan")
    waiting = agent.get(f"/api/v1/conversations/{cid}").json()["awaiting_msgid"]
    headers = {"X-CSRF-Token": agent.csrf}
    stale = agent.post(f"/api/v1/conversations/{cid}/dismiss", json={"msgid": "gone-by-now"}, headers=headers)
    assert stale.status_code == 422 and "不是这个会话的消息" in stale.json()["detail"]  # no message of it
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is True  # nothing marked
    r = agent.post(f"/api/v1/conversations/{cid}/dismiss", json={"msgid": waiting}, headers=headers)
    assert r.status_code == 200 and r.json()["dismissed"] is True
    assert r.json()["conversation"]["waiting"] is False
    again = agent.post(f"/api/v1/conversations/{cid}/dismiss", json={"msgid": waiting}, headers=headers)
    assert again.status_code == 200 and again.json()["dismissed"] is False  # nothing waits: nothing to refuse


def test_a_snooze_holds_when_the_customer_recalls_the_message_the_wait_began_with(as_role, db, world):
    """在吗 then 价格多少？; the agent snoozes the chat for an hour; the customer recalls 在吗 and
    the wait moves on to 价格多少？ (the same customer, still unanswered). The snooze was lost:
    the chat no longer says 提醒已暂缓至 and the step is due at once, not after the hour."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    first = arc.text(ext, "zhangsan", "在吗", 100)
    arc.text(ext, "zhangsan", "价格多少？", 90)
    store(db, world.a.id, arc.items)
    cid = _conversation(db, world.a.id, ext)
    agent = as_role("agent")
    r = agent.post(
        f"/conversations/{cid}/snooze",
        data={"csrf_token": agent.csrf, "minutes": "60", "next": f"/conversations/{cid}"},
        follow_redirects=False,
    )
    assert r.headers["location"] == f"/conversations/{cid}?done=snoozed"
    with db.tenant_session(world.a.id) as s:
        until = s.scalar(
            select(SlaWait.snoozed_until).where(SlaWait.conversation_id == cid, SlaWait.closed_at.is_(None))
        )
    assert until is not None

    later = Archive()
    later.recall(ext, "zhangsan", first, 10)
    store(db, world.a.id, later.items)
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is True  # 价格多少？ still waits

    page = agent.get(f"/conversations/{cid}").text
    with db.tenant_session(world.a.id) as s:
        due = s.scalars(
            select(SlaEscalation.due_at).where(
                SlaEscalation.conversation_id == cid, SlaEscalation.status == "pending"
            )
        ).all()
    assert "提醒已暂缓至" in page and due and min(due) >= until, (
        f"escalation due {min(due) if due else None}, snoozed until {until}"
    )
    me = agent.get("/api/v1/me").json()["display_name"]
    assert agent.get(f"/api/v1/conversations/{cid}").json()["snooze"]["by"] == me  # and whose it is


def test_a_wait_that_began_before_its_customer_was_known_is_named_on_the_board_once_they_are(
    as_role, db, world
):
    """The archive is often pulled before the add event: the first 你好 opens a wait for a
    customer Siyu does not know yet. Once the add event names them, the conversation list and
    the chat say 周女士, but the SLA board (and its API) kept showing the 32-character
    external id for as long as the wait ran."""
    import time

    from siyu.customers import service as customers
    from tests.web.conftest import _contact

    arc = Archive()
    ext = f"wm{arc.sfx}PENDINGADD{arc.sfx}"
    name = f"wm周女士{arc.sfx[:4]}"
    arc.text(ext, "zhangsan", f"你好，想咨询一下 {arc.sfx}", 60)
    store(db, world.a.id, arc.items)
    cid = _conversation(db, world.a.id, ext)
    with db.tenant_session(world.a.id) as s:  # the add event, handled after the pull
        now = int(time.time())
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": now, "State": ""}
        # (named "wm…" only so that test_views.py's seeded() leaves her out of its lists)
        customers.record_added(s, fields, _contact(ext, name, "zhangsan", now))
    agent = as_role("agent")
    assert agent.get(f"/api/v1/conversations/{cid}").json()["title"] == name  # the chat knows her
    [row] = [w for w in whole_board(agent)["waiting"] if w["conversation_id"] == cid]
    assert row["customer"] == name, f"the board names her {row['customer']!r}"
    board = agent.get("/sla").text
    assert ext not in board


def test_the_menu_stops_counting_a_customer_as_soon_as_the_agent_marks_them_no_reply_needed(
    as_role, new_waiting
):
    """The agent looks at the list (the menu counts who waits), opens a waiting chat and marks
    it 标记无需回复. The page that says 已标记为无需回复 still counts that customer on the menu's
    会话, and so does the home page's "N 位客户在等待回复", although the list no longer does."""
    agent = as_role("agent")
    cid = new_waiting("zhangsan")
    badge = re.compile(r'id="nav-waiting"[^>]*>(\d+)<')

    def shown(html: str) -> int:
        found = badge.search(html)
        return int(found[1]) if found else 0

    before = shown(agent.get("/conversations").text)
    assert before == agent.get("/api/v1/conversations", params={"waiting": 1}).json()["total"] >= 1
    r = agent.post(f"/conversations/{cid}/dismiss", data={"csrf_token": agent.csrf}, follow_redirects=True)
    assert "已标记为无需回复" in r.text
    now = agent.get("/api/v1/conversations", params={"waiting": 1}).json()["total"]
    assert now == before - 1
    assert shown(r.text) == now, f"the menu says {shown(r.text)} wait, the list {now}"
    home = re.search(r"(\d+) 位客户在等待回复", agent.get("/").text)
    assert (int(home[1]) if home else 0) == now


def test_the_board_and_its_menu_count_the_same_customers_waiting(as_role, new_waiting):
    """The agent looks at the list (the menu counts who waits), a customer asks something, and
    the agent opens the SLA board: its heading says one more customer waits than the menu's
    会话 badge on the same page (the menu kept the count it had made moments before)."""
    agent = as_role("agent")
    badge = re.compile(r'id="nav-waiting"[^>]*>(\d+)<')
    agent.get("/conversations")  # the menu's count, made now
    new_waiting("zhangsan")
    board = agent.get("/sla").text
    heading = re.search(r"(\d+) 位客户等待回复", board)
    menu = badge.search(board)
    assert heading and menu, "the board and its menu both count who waits"
    assert int(menu[1]) == int(heading[1]), f"the board says {heading[1]} wait, its menu {menu[1]}"
