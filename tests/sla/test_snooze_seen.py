# ruff: noqa: F811 - the fixtures imported from test_delivery are test parameters
"""A snooze from a page drawn before the customer asked again: refused as 无需回复 is, on the
chat opened from a card and in the API."""

from __future__ import annotations

import re

import httpx

from tests.sla.test_delivery import cards, gateway, w  # noqa: F401 - fixtures
from tests.support.signed_in import SignedIn
from tests.support.stack import wait_for


def test_a_snooze_from_a_chat_opened_before_the_customer_asked_again_does_not_hold_the_new_question(w):
    """张三 taps his card (王女士 waits, question 1) and leaves the chat open. He answers in
    WeCom; 王女士 asks something new. Back on the page opened before, he taps 暂缓 60 分钟:
    the new question, which that page never showed him, had its reminders held for an hour,
    where 标记无需回复 on the same page is refused (the form names the message it showed). The
    snooze form names it too now, and is refused alike."""
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    conversation = w.conversation()
    w.clock(120)
    assert w.fire() == 1
    [card] = wait_for(lambda: cards(w, "zhangsan"))
    with httpx.Client(follow_redirects=True, timeout=10) as phone:
        corp = w.stack.corp_id
        page = phone.get(
            f"{w.stack.emulator}/_emulator/oauth/as/{corp}/zhangsan", params={"next": card["url"]}
        )
        assert page.url.path == f"/conversations/{conversation.id}" and "套餐多少钱" in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
        snooze_form = page.text.split(f'action="/conversations/{conversation.id}/snooze">', 1)[1].split(
            "</form>"
        )[0]
        shown = re.search(r'name="msgid" value="([^"]+)"', snooze_form)[1]  # what the page showed
        base = f"{page.url.scheme}://{page.url.netloc.decode()}"

        w.reply("您好，套餐 199 元一个月", at=150)
        w.say("那我明天能上门安装吗？", at=160)  # a new wait, never shown on the open page
        w.pulled(3600)
        [_, new] = w.waits()
        assert new.closed_at is None and new.snoozed_until is None

        r = phone.post(
            f"{base}/conversations/{conversation.id}/snooze",
            data={
                "csrf_token": csrf,
                "minutes": "60",
                "next": f"/conversations/{conversation.id}",
                "msgid": shown,
            },
        )
        assert r.status_code == 200 and "没有暂缓" in r.text, r.url
    [_, new] = w.waits()
    assert new.snoozed_until is None, (
        f"the new question's reminders were held until {new.snoozed_until} by a snooze sent from a"
        " page that showed only the question answered before (done=" + r.url.params.get("done", "") + ")"
    )


def test_the_api_refuses_a_snooze_naming_a_message_before_the_newest_question(local):
    w = local  # (the SLA tests' scene, not test_delivery's)
    first = w.say("你好，这个套餐多少钱？", at=0)
    w.reply("您好，套餐 199 元一个月", at=30)
    second = w.say("那我明天能上门安装吗？", at=40)
    w.pulled(3600)
    chat = w.conversation().id
    api = SignedIn(w.rt, w.tenant_id, "agent", staff="zhangsan")
    r = api("POST", f"/api/v1/conversations/{chat}/snooze", json={"minutes": 30, "msgid": first})
    assert (r.status_code, r.json().get("newest_msgid")) == (409, second), r.text
    assert w.waits()[-1].snoozed_until is None
    r = api("POST", f"/api/v1/conversations/{chat}/snooze", json={"minutes": 30, "msgid": second})
    assert r.status_code == 200 and r.json()["snoozed"], r.text
