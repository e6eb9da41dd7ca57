"""A customer's WeChat nickname holding a right-to-left override (U+202E, the old "reversed
name" trick; WeCom passes it on as it is) turns round nothing Siyu writes after the name on the
same line: the time of the customer's messages on the chat (10:05 had read 50:01), the wait
beside the name on the conversation list (等待 … had read backwards)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from siyu.app import create_app
from siyu.conversations import search
from siyu.conversations import service as conv_service
from siyu.conversations.models import Conversation
from siyu.customers import service as customers
from siyu.insights.needs_reply import default_classifier
from siyu.runtime import Runtime
from siyu.tenancy import service as tenancy
from siyu.web.auth import SESSION_COOKIE
from siyu.wecom.archive import ArchivedMessage
from tests.support import new_tenant
from tests.support.servers import serve
from tests.support.signed_in import SignedIn
from tests.web import conftest as web

pytestmark = pytest.mark.skipif(not web.CHROMIUM.exists(), reason="/usr/bin/chromium is missing")

NAME = "Lily\u202eYang"  # as WeChat hands it over: the override in the middle, kept by tidy_name

# the left edges of a text node's first and last characters, as drawn
EDGES = """(el) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  let t = walker.nextNode(); while (t && !t.data.trim()) t = walker.nextNode();
  const s = t.data.length - t.data.trimStart().length, e = t.data.trimEnd().length;
  const r = document.createRange();
  r.setStart(t, s); r.setEnd(t, s + 1); const first = r.getBoundingClientRect().left;
  r.setStart(t, e - 1); r.setEnd(t, e); const last = r.getBoundingClientRect().left;
  return [t.data.trim(), first, last];
}"""


@pytest.fixture
def site(settings, db):
    tid = new_tenant(db)
    rt = Runtime.create(settings, db)
    now = int(time.time())
    sfx = uuid.uuid4().hex[:6]
    ext = "wmR" + sfx
    with db.tenant_session(tid) as s:
        tenancy.save_directory(
            s,
            [{"id": 1, "name": "总部", "parentid": 0}],
            [{"userid": "zhangsan", "name": "张三", "department": [1]}],
        )
        contact = {
            "external_contact": {"external_userid": ext, "name": NAME, "type": 1, "gender": 2, "avatar": ""},
            "follow_user": [{"userid": "zhangsan", "remark": "", "createtime": now - 600, "tags": []}],
        }
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": now - 600, "State": ""}
        customers.record_added(s, fields, contact)
    msgid = "q-" + sfx
    question = {
        "msgid": msgid, "action": "send", "from": ext, "tolist": ["zhangsan"], "roomid": "",
        "msgtime": int(time.time() * 1000) - 300_000, "msgtype": "text",
        "text": {"content": "请问什么时候发货？"},
    }  # fmt: skip
    with db.tenant_session(tid) as s:
        conv_service.ingest(s, [ArchivedMessage(1, msgid, question)], default_classifier().classify)
        conversation = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    search.index_backlog(db, tid)
    with serve(create_app(settings, rt)) as url:
        yield rt, tid, url, conversation


def _page(browser, browser_context_args, rt, tid, url):
    who = SignedIn(rt, tid, "agent", staff="zhangsan", name="张三")
    context = browser.new_context(**browser_context_args)
    context.add_cookies([{"name": SESSION_COOKIE, "value": who.token, "url": url}])
    return context, context.new_page()


def test_a_reversed_nickname_does_not_turn_round_the_time_of_its_messages(
    site, browser, browser_context_args
):
    rt, tid, url, conversation = site
    context, page = _page(browser, browser_context_args, rt, tid, url)
    try:
        page.goto(f"{url}/conversations/{conversation}")
        text, first, last = page.locator(".msg.in .who time").first.evaluate(EDGES)
        # "10:05": its first digit is drawn left of its last, as every other message's time
        assert first < last, f"the message's time {text!r} is drawn backwards ({first} > {last})"
    finally:
        context.close()


def test_a_reversed_nickname_does_not_turn_round_the_wait_on_the_conversation_list(
    site, browser, browser_context_args
):
    rt, tid, url, conversation = site
    context, page = _page(browser, browser_context_args, rt, tid, url)
    try:
        page.goto(f"{url}/conversations")
        text, first, last = page.locator("#conversations .name .wait").first.evaluate(EDGES)
        # "等待 5 分钟": 等 drawn left of 钟
        assert first < last, f"the wait {text!r} beside the name is drawn backwards ({first} > {last})"
    finally:
        context.close()
