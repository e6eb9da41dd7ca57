"""标记无需回复 closes a wait only as far as the person saw it: the customer's later question
in the same wait (no reply between) is never silenced by a page or a client that did not show
it, while a closing remark after what they saw (好的 谢谢) does not stand in the way."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from sqlalchemy import select

from siyu.conversations.models import Conversation, Message
from tests.conversations.conftest import Archive, store
from tests.support import days

_FORM = re.compile(r'<form method="post" action="(/conversations/\d+/dismiss)"[^>]*>(.*?)</form>', re.S)
_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _waiting(db, world, *texts: str) -> tuple[Archive, str, int, list[str]]:
    """A customer of zhangsan's whose questions `texts` wait, one a second apart."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    ids = [arc.text(ext, "zhangsan", text, 300 - i) for i, text in enumerate(texts)]
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    return arc, ext, cid, ids


def _customer_writes(db, world, ext: str, text: str, ago: float) -> str:
    later = Archive()
    msgid = later.text(ext, "zhangsan", text, ago)
    store(db, world.a.id, later.items)
    return msgid


def _imported(db, world, arc: Archive, ext: str, text: str, ago: float) -> str:
    """A question stored now with a time `ago` seconds before `arc`'s (an import, a re-pull)."""
    arc.items.clear()
    msgid = arc.text(ext, "zhangsan", text, ago)
    store(db, world.a.id, arc.items)
    return msgid


def _local_time(db, world, msgid: str) -> str:
    """When the message was sent, as the tenant's clock reads it: HH:MM, the day too when it was
    not today (a minute before midnight in Shanghai, read just after it)."""
    with db.tenant_session(world.a.id) as s:
        sent = s.scalar(select(Message.sent_at).where(Message.msgid == msgid))
    local = sent.astimezone(ZoneInfo("Asia/Shanghai"))
    return local.strftime("%H:%M" if local.date() == days.today() else "%Y-%m-%d %H:%M")


def test_the_409_quotes_a_long_message_shortened(as_role, db, world):
    _, ext, cid, [question] = _waiting(db, world, "能开发票吗？")
    agent = as_role("agent")
    long = "我想问一下" + "这个订单的发票" * 20
    newest = _customer_writes(db, world, ext, long, 60)
    r = agent.post(
        f"/api/v1/conversations/{cid}/dismiss", json={"msgid": question}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert r.status_code == 409 and r.json()["newest_msgid"] == newest
    assert "「我想问一下这个订单的发票" in r.json()["detail"] and long not in r.json()["detail"]
    assert "…」" in r.json()["detail"], r.text


def _banner(html: str) -> str:
    """What the chat says of its 无需回复 (its status line)."""
    return re.search(r'<p class="\w+" role="status" id="done">(.*?)</p>', html, re.S).group(1)


def _name(agent, cid: int) -> str:
    """Who the chat names: the customer, or their WeCom id while unnamed."""
    c = agent.get(f"/api/v1/conversations/{cid}").json()
    return (c["customer"] or {}).get("name") or c["external_userid"]


def _page_form(agent, cid: int) -> tuple[str, dict]:
    action, fields = _FORM.search(agent.get(f"/conversations/{cid}").text).groups()
    return action, dict(_FIELD.findall(fields))


def test_the_page_does_not_silence_a_question_that_joined_the_wait_after_it_was_drawn(as_role, db, world):
    """能开发票吗？ waits; the agent opens the chat; the customer adds 另外，我要退货 (no reply
    between: the same wait). 标记无需回复 on the page left open said 已标记为无需回复 and closed
    the wait, 另外，我要退货 with it, never seen and never escalated."""
    _, ext, cid, [question] = _waiting(db, world, "能开发票吗？")
    agent = as_role("agent")
    action, form = _page_form(agent, cid)
    refund = _customer_writes(db, world, ext, "另外，我要退货", 60)

    r = agent.post(action, data=form, follow_redirects=True)
    assert "已标记为无需回复" not in r.text
    # who wrote, what and when, as the board and the API say it: not just that someone did
    assert _banner(r.text) == (
        f"{_name(agent, cid)} 在你打开页面后又发了消息「另外，我要退货」"
        f"（{_local_time(db, world, refund)}），没有标记：请看过新消息再决定。"
    )
    assert "另外，我要退货" in r.text  # the page drawn again shows it
    after = agent.get(f"/api/v1/conversations/{cid}").json()
    assert after["waiting"] is True and after["awaiting_msgid"] == question
    assert after["waiting_newest_msgid"] == refund

    action, form = _page_form(agent, cid)  # now seen: the button marks it
    r = agent.post(action, data=form, follow_redirects=True)
    assert "已标记为无需回复" in r.text
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is False


def test_the_api_refuses_with_409_when_the_customer_wrote_again_after_the_message_named(as_role, db, world):
    """A client names what it showed; one that names the wait's first message (awaiting_msgid,
    as before) while a later question waits too is told the customer wrote again."""
    _, ext, cid, [question] = _waiting(db, world, "能开发票吗？")
    agent = as_role("agent")
    headers = {"X-CSRF-Token": agent.csrf}
    seen = agent.get(f"/api/v1/conversations/{cid}").json()
    refund = _customer_writes(db, world, ext, "另外，我要退货", 60)

    url = f"/api/v1/conversations/{cid}/dismiss"
    r = agent.post(url, json={"msgid": question}, headers=headers)
    assert r.status_code == 409, r.text
    # what the customer wrote and when, in words; the msgid apart, for the client
    assert r.json()["newest_msgid"] == refund and refund not in r.json()["detail"], r.text
    assert "客户又发了消息「另外，我要退货」" in r.json()["detail"], r.text
    assert f"（{_local_time(db, world, refund)}）" in r.json()["detail"], r.text
    now = agent.get(f"/api/v1/conversations/{cid}").json()
    assert now["waiting"] is True  # nothing marked
    assert seen["waiting_newest_msgid"] == question and now["waiting_newest_msgid"] == refund

    r = agent.post(url, json={"msgid": refund}, headers=headers)  # having shown it
    assert r.status_code == 200 and r.json()["dismissed"] is True
    assert r.json()["conversation"]["waiting"] is False


def test_what_the_page_showed_is_marked_a_wait_of_several_questions_included(as_role, db, world):
    _, _, cid, ids = _waiting(db, world, "在吗", "能开发票吗？", "另外，我要退货")
    agent = as_role("agent")
    action, form = _page_form(agent, cid)
    assert form["msgid"] == ids[-1]  # the newest it shows, not the wait's first
    r = agent.post(action, data=form, follow_redirects=True)
    assert "已标记为无需回复" in r.text
    after = agent.get(f"/api/v1/conversations/{cid}").json()
    assert after["waiting"] is False

    _, _, cid, ids = _waiting(db, world, "在吗", "能开发票吗？")
    r = agent.post(
        f"/api/v1/conversations/{cid}/dismiss", json={"msgid": ids[-1]}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert r.status_code == 200 and r.json()["dismissed"] is True


def test_a_closing_remark_after_what_was_seen_does_not_block_the_mark(as_role, db, world):
    """The customer's 好的 谢谢 after the question the agent saw needs no reply: marking the
    wait still works, on the page and in the API."""
    agent = as_role("agent")
    _, ext, cid, _ = _waiting(db, world, "能开发票吗？")
    action, form = _page_form(agent, cid)
    _customer_writes(db, world, ext, "好的 谢谢", 60)
    r = agent.post(action, data=form, follow_redirects=True)
    assert "已标记为无需回复" in r.text
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is False

    _, ext, cid, [question] = _waiting(db, world, "能开发票吗？")
    _customer_writes(db, world, ext, "好的 谢谢", 60)
    r = agent.post(
        f"/api/v1/conversations/{cid}/dismiss", json={"msgid": question}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert r.status_code == 200 and r.json()["dismissed"] is True


def test_a_question_stored_after_the_page_with_an_older_time_is_not_silenced(as_role, db, world):
    """能开发票吗？ waits (300 s ago); the agent opens the chat; an import then stores 另外，我要退货
    with an older time (400 s ago, no reply between: the same wait, now begun with it). The
    page's button compared times: the page named 能开发票吗？, newer than 另外，我要退货, so it said
    已标记为无需回复 and silenced a question the agent never saw."""
    arc, ext, cid, [question] = _waiting(db, world, "能开发票吗？")
    agent = as_role("agent")
    action, form = _page_form(agent, cid)
    assert form["msgid"] == question
    refund = _imported(db, world, arc, ext, "另外，我要退货", 400)

    r = agent.post(action, data=form, follow_redirects=True)
    assert "已标记为无需回复" not in r.text
    assert "又发了消息「另外，我要退货」" in _banner(r.text)
    after = agent.get(f"/api/v1/conversations/{cid}").json()
    assert after["waiting"] is True and after["awaiting_msgid"] == refund  # the wait begins with it
    assert after["waiting_newest_msgid"] == refund  # what was stored last, not what is newest

    action, form = _page_form(agent, cid)  # the page drawn again names it: the button marks
    r = agent.post(action, data=form, follow_redirects=True)
    assert "已标记为无需回复" in r.text
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is False


def test_the_api_refuses_a_question_stored_after_the_one_named_whatever_its_time(as_role, db, world):
    """Two questions wait (300 s and 299 s ago); the client shows them and names the newest.
    An import then stores one between them (299.5 s ago). The API compared times and marked
    the wait, the imported question with it."""
    arc, ext, cid, [_, shown] = _waiting(db, world, "在吗", "能开发票吗？")
    agent = as_role("agent")
    headers = {"X-CSRF-Token": agent.csrf}
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting_newest_msgid"] == shown
    between = _imported(db, world, arc, ext, "另外，我要退货", 299.5)

    url = f"/api/v1/conversations/{cid}/dismiss"
    r = agent.post(url, json={"msgid": shown}, headers=headers)
    assert r.status_code == 409, r.text
    assert r.json()["newest_msgid"] == between and "「另外，我要退货」" in r.json()["detail"]
    now = agent.get(f"/api/v1/conversations/{cid}").json()
    assert now["waiting"] is True and now["waiting_newest_msgid"] == between

    r = agent.post(url, json={"msgid": between}, headers=headers)  # having shown it
    assert r.status_code == 200 and r.json()["dismissed"] is True


def test_the_api_says_422_not_409_for_a_msgid_that_is_no_message_of_the_chat(as_role, db, world):
    """A client naming a msgid it made up, an empty one, or another chat's question was told
    409 客户又发了消息 (the customer wrote again), which was not so: it is the client's mistake,
    and nothing is marked."""
    _, _, other_cid, [other_question] = _waiting(db, world, "发票抬头写什么？")
    _, _, cid, [question] = _waiting(db, world, "能开发票吗？")
    agent = as_role("agent")
    url = f"/api/v1/conversations/{cid}/dismiss"
    headers = {"X-CSRF-Token": agent.csrf}

    for named in ("nonexistent", other_question):
        r = agent.post(url, json={"msgid": named}, headers=headers)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            f"不是这个会话的消息：{named} / not a message of this conversation: {named}"
        )
    r = agent.post(url, json={"msgid": ""}, headers=headers)  # leave it out to mark whatever waits
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "msgid"]
    for c in (cid, other_cid):
        assert agent.get(f"/api/v1/conversations/{c}").json()["waiting"] is True  # nothing marked

    r = agent.post(url, json={"msgid": question}, headers=headers)
    assert r.status_code == 200 and r.json()["dismissed"] is True
    r = agent.post(url, json={"msgid": "nonexistent"}, headers=headers)  # nothing waits: still a mistake
    assert r.status_code == 422, r.text
    # (the other chat waits no more: the conversation lists' tests count who waits longest)
    other_url = f"/api/v1/conversations/{other_cid}/dismiss"
    r = agent.post(other_url, json={"msgid": other_question}, headers=headers)
    assert r.status_code == 200


def test_the_api_still_says_409_for_a_question_of_an_older_wait_of_the_chat(as_role, db, world):
    """The client showed 在吗; the agent answered and the customer asked something new. Naming
    在吗 is a screen behind, not a mistake: 409 names the new question."""
    _, ext, cid, [old_question] = _waiting(db, world, "在吗")
    agent = as_role("agent")
    later = Archive()
    later.text("zhangsan", ext, "在的，您请说", 120)
    new_question = later.text(ext, "zhangsan", "退款什么时候到账？", 60)
    store(db, world.a.id, later.items)

    url = f"/api/v1/conversations/{cid}/dismiss"
    r = agent.post(url, json={"msgid": old_question}, headers={"X-CSRF-Token": agent.csrf})
    assert r.status_code == 409, r.text
    assert "客户又发了消息「退款什么时候到账？」" in r.json()["detail"], r.text
    assert r.json()["newest_msgid"] == new_question and new_question not in r.json()["detail"]
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is True
    r = agent.post(url, json={"msgid": new_question}, headers={"X-CSRF-Token": agent.csrf})
    assert r.status_code == 200  # (waiting no more: the conversation lists' tests count who waits longest)
