"""Conversation list, detail and messages through the JSON API and the pages: order by who
waits longest, role scoping, tenant isolation, labels, and 无需回复 with CSRF."""

from __future__ import annotations

import base64
import html
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from siyu.conversations import groups, service
from siyu.conversations.models import Conversation
from siyu.conversations.queries import wait_text
from siyu.customers.models import Customer, Follow
from siyu.db.base import utcnow
from siyu.sla.models import SlaEscalation, SlaWait
from siyu.tenancy.models import Staff, Tenant
from siyu.web.api_errors import NOT_FOUND_TEXT
from tests.conversations.conftest import Archive, Item, classify, store
from tests.support.statements import statements_matching
from tests.web.conftest import zhaoliu_left


def seeded(items: list[dict]) -> list[dict]:
    """Leave out the conversations other tests add (customers not in the seed: "wm...")."""
    return [c for c in items if not c["title"].startswith("wm")]


def titles(resp) -> list[str]:
    """(Read with per_page=100: other tests' chats, newer, fill a first page of 20.)"""
    assert resp.status_code == 200, resp.text
    return [c["title"] for c in seeded(resp.json()["items"])]


# ---------------------------------------------------------------- list


def test_waiting_customers_come_first_longest_wait_first(as_role, chats):
    admin = as_role("admin")
    r = admin.get("/api/v1/conversations?per_page=100")
    items = seeded(r.json()["items"])
    assert [c["title"] for c in items][:3] == ["孙小姐", "王女士", "刘总"]
    assert all(c["waiting"] for c in items[:3]) and not any(c["waiting"] for c in items[3:])
    assert len(items) == 5
    sun, wang = items[0], items[1]
    since_seeding = time.time() - chats.seeded_at
    assert 7190 <= sun["waiting_seconds"] <= 7210 + since_seeding and sun["waiting_text"].startswith("2 小时")
    assert wang["waiting_message"]["text"] == "能便宜点吗 iPhone15"
    assert wang["waiting_message"]["msgid"] == chats.msgids["ask"]
    assert wang["staff_name"] == "张三" and wang["customer"]["name"] == "王女士"
    assert wang["last_message"] == "好的"
    # Not waiting: latest message first.
    rest = [c["title"] for c in items[3:]]
    assert rest == [f"群聊 {chats.room}", "陈先生"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"waiting": "true"}, ["孙小姐", "王女士", "刘总"]),
        ({"staff": "zhangsan"}, ["孙小姐", "王女士", "群聊"]),
        ({"staff": "lisi"}, ["陈先生"]),
        ({"kind": "group"}, ["群聊"]),
        ({"kind": "single", "waiting": "1"}, ["孙小姐", "王女士", "刘总"]),
    ],
)
def test_filters(as_role, chats, params, expected):
    got = [
        t.split(" ")[0]
        for t in titles(as_role("admin").get("/api/v1/conversations", params={**params, "per_page": 100}))
    ]
    assert got == expected


def test_filter_by_customer(as_role, chats, world):
    admin = as_role("admin")
    got = titles(admin.get("/api/v1/conversations", params={"customer": world.a.customers["陈先生"]}))
    assert got == ["陈先生"]


def test_paginated(as_role, chats):
    admin = as_role("admin")
    everything = admin.get("/api/v1/conversations", params={"per_page": 100}).json()
    first = admin.get("/api/v1/conversations", params={"per_page": 2}).json()
    assert first["total"] == everything["total"] >= 5
    assert first["pages"] == (everything["total"] + 1) // 2
    # (other tests' customers may wait longer: the seeded ones keep their order among them)
    assert [c["id"] for c in first["items"]] == [c["id"] for c in everything["items"][:2]]
    assert [c["title"] for c in seeded(everything["items"])][:2] == ["孙小姐", "王女士"]
    pages = [first] + [
        admin.get("/api/v1/conversations", params={"per_page": 2, "page": n}).json()
        for n in range(2, first["pages"] + 1)
    ]
    assert [c["id"] for p in pages for c in p["items"]] == [c["id"] for c in everything["items"]]


def test_paging_by_cursor_walks_the_list_both_ways(as_role, chats):
    admin = as_role("admin")
    everything = admin.get("/api/v1/conversations", params={"per_page": 100}).json()
    assert everything["total"] <= 100 and everything["prev"] is None and everything["next"] is None
    pages, params = [], {"per_page": 2}
    while True:
        got = admin.get("/api/v1/conversations", params=params).json()
        pages.append(got)
        if got["next"] is None:
            break
        params = {"per_page": 2, "after": got["next"]}
    assert [c["id"] for p in pages for c in p["items"]] == [c["id"] for c in everything["items"]]
    assert pages[0]["prev"] is None and pages[0]["page"] == 1 and pages[1]["page"] is None
    assert all(p["prev"] for p in pages[1:]) and len(pages) == pages[0]["pages"] >= 3
    # back from the third page: the second as it was; back from the second: the first, whole
    back = admin.get("/api/v1/conversations", params={"per_page": 2, "before": pages[2]["prev"]}).json()
    assert [c["id"] for c in back["items"]] == [c["id"] for c in pages[1]["items"]]
    top = admin.get("/api/v1/conversations", params={"per_page": 2, "before": back["prev"]}).json()
    assert [c["id"] for c in top["items"]] == [c["id"] for c in pages[0]["items"]]
    assert top["prev"] is None and top["page"] == 1


def test_a_conversation_answered_while_paging_skips_no_other(as_role, db, world):
    """Page numbers would skip the first chat of page 2 here: the answered one leaves page 1."""
    arc = Archive()  # tenant B, waiting far longer than anything other tests add: the top of B's list
    ext = [f"wmcur{i}{arc.sfx}" for i in range(21)]  # more than the page's 20
    for i, e in enumerate(ext):
        arc.text(e, "zhangsan", "请问几点营业", 30 * 86400 - i)
    store(db, world.b.id, arc.items)
    admin = as_role("admin", "b")
    first = admin.get("/api/v1/conversations", params={"per_page": 2}).json()
    assert [c["external_userid"] for c in first["items"]] == ext[:2]
    answer = Archive()
    answer.text("zhangsan", ext[0], "九点", 5)
    store(db, world.b.id, answer.items)
    by_cursor = admin.get("/api/v1/conversations", params={"per_page": 2, "after": first["next"]}).json()
    assert [c["external_userid"] for c in by_cursor["items"]] == ext[2:4]
    by_number = admin.get("/api/v1/conversations", params={"per_page": 2, "page": 2}).json()
    assert [c["external_userid"] for c in by_number["items"]] == ext[3:5]  # ext[2] skipped
    # the page does the same: its 下一页 link carries the cursor
    html = admin.get("/conversations").text
    link = re.search(r'href="(/conversations\?after=[^"]+)" rel="next"', html)
    assert link and f"共 {first['total']} 个会话" in html
    page_two = admin.get(link.group(1).replace("&amp;", "&")).text
    assert ext[20] in html and ext[20] not in page_two and 'rel="prev"' in page_two


def test_a_cursor_the_list_did_not_hand_out_is_refused(as_role, chats):
    admin = as_role("admin")
    good = admin.get("/api/v1/conversations", params={"per_page": 1}).json()["next"]
    for params in (
        {"after": "bm90IGEgY3Vyc29y"},
        {"after": "!!!"},
        {"before": "W1td"},
        {"after": good, "before": good},
        {"after": good, "page": 2},
        {"after": "x" * 201},
    ):
        r = admin.get("/api/v1/conversations", params=params)
        assert r.status_code == 422, (params, r.text)
    # in the page's address bar, a mangled cursor opens the top of the list
    assert "孙小姐" in admin.get("/conversations", params={"after": "garbage"}).text


def _token(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "path,params",
    [
        ("/api/v1/messages/search", {"q": "iphone"}),
        ("/api/v1/sla/board", {}),
        ("/api/v1/customers", {}),
    ],
)
def test_a_cursor_of_nulls_no_row_could_hold_is_a_422(as_role, chats, path, params):
    """A message's sent_at and id (a wait's started_at and id, a customer's id) are never null,
    so [null, null] is a position no row of these lists could hold. The conversation list
    refuses it (422, after 不是该列表给出的游标); search, the board and the customer list answered
    200: `after` an empty page whose `prev` leads back to the made-up cursor, `before` the first
    page, as if the cursor were one they had handed out."""
    admin = as_role("admin")
    nulls = _token([None, None])
    for way in ("after", "before"):
        r = admin.get(path, params={**params, way: nulls})
        told = f"{way} 不是该列表给出的游标 / {way} is not a cursor this list handed out"
        assert (r.status_code, r.json().get("detail")) == (422, told), (path, way, r.text[:200])


def test_a_conversation_cursor_waiting_without_a_time_or_not_waiting_with_one_is_a_422(as_role, chats):
    """The list's first key says whether a chat waits, its second since when: a cursor "waiting
    since nothing" or "not waiting, since 1 January" is a position no chat holds, and was taken
    (200, a page from there)."""
    from siyu.db.paging import encode

    admin = as_role("admin")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for made_up in ((0, None, at, 1), (1, at, at, 1)):
        for way in ("after", "before"):
            r = admin.get("/api/v1/conversations", params={way: encode(made_up)})
            told = f"{way} 不是该列表给出的游标 / {way} is not a cursor this list handed out"
            assert (r.status_code, r.json().get("detail")) == (422, told), (made_up, way, r.text[:200])


def test_a_search_hit_says_the_message_was_marked_no_reply_needed_as_the_chat_does(as_role, new_waiting):
    """An agent marks a question 无需回复; GET /conversations/{id}/messages then gives the
    message `dismissed_at`, `dismissed_by` and the label 已标记无需回复 (MessageOut declares all
    three). The same message found by GET /messages/search (whose hits are MessageOut too, and
    whose page shows `labels` as badges) said dismissed_at null, dismissed_by null and no label:
    a script (or the search page) reads a question someone settled as one nobody touched."""
    agent = as_role("agent")
    word = f"zq{uuid.uuid4().hex[:8]}"
    cid = new_waiting("zhangsan", f"发票 {word} 怎么开？")
    shown = agent.get(f"/api/v1/conversations/{cid}").json()["waiting_newest_msgid"]
    r = agent.post(
        f"/api/v1/conversations/{cid}/dismiss", json={"msgid": shown}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert r.status_code == 200 and r.json()["dismissed"] is True, r.text

    in_chat = next(
        m for m in agent.get(f"/api/v1/conversations/{cid}/messages").json()["items"] if m["msgid"] == shown
    )
    assert in_chat["dismissed_at"] is not None and "已标记无需回复" in in_chat["labels"]  # (the chat says so)

    hits = agent.get("/api/v1/messages/search", params={"q": word}).json()["items"]
    assert [h["message"]["msgid"] for h in hits] == [shown]
    found = hits[0]["message"]
    assert (found["dismissed_at"], found["dismissed_by"], found["labels"]) == (
        in_chat["dismissed_at"],
        in_chat["dismissed_by"],
        in_chat["labels"],
    )


def test_the_list_clears_only_what_was_set_and_says_when_a_page_address_went_stale(as_role, chats):
    """/conversations?waiting=1 showed 清除 beside an empty search box, and a mangled cursor
    (?after=garbage) or page (?page=abc) showed the first page without a word."""
    admin = as_role("admin")
    for params in ({}, {"waiting": 1}):
        page = admin.get("/conversations", params=params).text
        assert 'class="clear"' not in page and "翻页链接已失效" not in page, params
    for params in ({"waiting": 1, "kind": "single"}, {"q": "便宜"}):
        assert 'class="clear"' in admin.get("/conversations", params=params).text, params
    for params in (
        {"after": "garbage"},
        {"before": "W1td"},
        {"page": "abc"},
        {"q": "便宜", "after": "garbage"},
    ):
        page = admin.get("/conversations", params=params)
        assert page.status_code == 200 and "翻页链接已失效，已回到第一页" in page.text, params
    assert "孙小姐" in admin.get("/conversations", params={"after": "garbage"}).text


def test_a_search_page_past_the_last_opens_the_first_and_says_so(as_role, chats):
    """A search's page number typed past its results said 没有找到包含“便宜”的消息, as if
    nothing matched at all."""
    admin = as_role("admin")
    page = admin.get("/conversations", params={"q": "便宜", "page": 99}).text
    assert "翻页链接已失效，已回到第一页" in page and "没有找到" not in page and "<mark>便宜</mark>" in page
    nothing = admin.get("/conversations", params={"q": "没有这句话", "page": 2}).text
    assert "没有找到包含“没有这句话”的消息" in nothing and "翻页链接已失效" not in nothing
    # the list too, by number: it said 这一页之后没有会话了 under no chat at all; and page 0 is no
    # page either (it opened the first without a word, where -1 said so)
    for params in ({"page": 99}, {"page": 0}, {"q": "便宜", "page": 0}):
        page = admin.get("/conversations", params=params).text
        assert "翻页链接已失效，已回到第一页" in page and "没有会话了" not in page, params
    assert "孙小姐" in admin.get("/conversations", params={"page": 99}).text


def test_a_cursor_of_deeply_nested_brackets_opens_the_top_of_the_list_not_an_error(as_role, chats):
    """The page takes a cursor of any length from the address bar: one decoding to thousands of
    nested [ made the JSON reader give up with RecursionError, a 500 instead of the list."""
    import base64

    deep = base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("=")
    admin = as_role("admin")
    for params in ({"after": deep}, {"before": deep}, {"q": "能便宜", "after": deep}):
        r = admin.get("/conversations", params=params)
        assert r.status_code == 200, (params, r.status_code)
    assert "孙小姐" in admin.get("/conversations", params={"after": deep}).text


# ---------------------------------------------------------------- role scoping and tenants


def test_an_agent_sees_only_their_own_conversations(as_role, chats):
    agent = as_role("agent")  # 张三
    assert sorted(t.split(" ")[0] for t in titles(agent.get("/api/v1/conversations?per_page=100"))) == [
        "孙小姐",
        "王女士",
        "群聊",
    ]
    for other in ("陈先生", "刘总"):
        cid = chats.a[other]
        for path in (f"/api/v1/conversations/{cid}", f"/api/v1/conversations/{cid}/messages"):
            r = agent.get(path)
            assert r.status_code == 404 and r.json() == {"detail": NOT_FOUND_TEXT}
        r = agent.post(f"/api/v1/conversations/{cid}/dismiss", headers={"X-CSRF-Token": agent.csrf})
        assert r.status_code == 404
        assert agent.get(f"/conversations/{cid}").status_code == 404
    # Filtering by someone else's staff id finds nothing rather than leaking.
    assert titles(agent.get("/api/v1/conversations", params={"staff": "zhaoliu"})) == []


def test_whoever_an_escalation_card_went_to_may_open_its_conversation(as_role, new_waiting, db, world):
    from datetime import UTC, datetime

    from siyu.sla.models import SlaEscalation, SlaWait

    agent = as_role("agent")  # 张三: 赵六's customers are not his
    cid = new_waiting("zhaoliu")
    assert agent.get(f"/conversations/{cid}").status_code == 404
    with db.tenant_session(world.a.id) as s:  # as firing leaves it: a card to 张三 (the contact)
        wait_id = s.scalar(select(SlaWait.id).where(SlaWait.conversation_id == cid))
        s.add(
            SlaEscalation(
                wait_id=wait_id,
                conversation_id=cid,
                step=1,
                action="app_message",
                target="contact",
                agent_userid="zhaoliu",
                recipient="zhangsan",
                status="fired",
                due_at=datetime.now(UTC),
            )
        )
    assert agent.get(f"/conversations/{cid}").status_code == 200
    assert agent.get(f"/api/v1/conversations/{cid}").json()["staff_userid"] == "zhaoliu"
    assert cid not in [c["id"] for c in agent.get("/api/v1/conversations").json()["items"]]  # not his list
    assert as_role("admin", "b").get(f"/conversations/{cid}").status_code == 404  # nor another tenant's
    # a card of several waits opens the waiting ones its recipient was told of, a colleague's too
    told = agent.get("/conversations", params={"waiting": 1, "told": 1}).text
    assert f'href="/conversations/{cid}"' in told and "提醒过我的" in told
    found = agent.get("/conversations", params={"q": "在吗", "told": 1}).text  # searching among them
    assert f'href="/conversations/{cid}?at=' in found
    assert as_role("admin").get("/conversations", params={"told": 1}).status_code == 200  # no cards: none
    assert "没有符合筛选条件的" in as_role("admin").get("/conversations", params={"told": 1}).text


def _card(db, world, touser: str, told: list[tuple[int, str]]) -> int:
    """An escalation card as firing leaves it: a step fired to `touser` for each (conversation,
    its agent), and the outbox row that sent them; the card's id."""
    from datetime import UTC, datetime

    from siyu.notify.models import OutboxMessage
    from siyu.sla.models import SlaEscalation

    with db.tenant_session(world.a.id) as s:
        steps = []
        for cid, agent in told:
            wait_id = s.scalar(select(SlaWait.id).where(SlaWait.conversation_id == cid))
            step = SlaEscalation(
                wait_id=wait_id,
                conversation_id=cid,
                step=90 + len(steps),  # (firing made the wait's own steps)
                action="app_message",
                target="agent" if agent == touser else "contact",
                agent_userid=agent,
                recipient=touser,
                status="fired",
                due_at=datetime.now(UTC),
            )
            s.add(step)
            s.flush()
            steps.append(step.id)
        card = OutboxMessage(
            kind="sla_notice",
            dedupe_key=f"card-{uuid.uuid4().hex}",
            recipient=touser,
            payload={"touser": touser, "escalations": steps},
            status="sent",
        )
        s.add(card)
        s.flush()
        return card.id


def card_target(slug: str, card: int) -> str:
    """Where a card about several customers lands once signed in (the `next` of its link)."""
    from types import SimpleNamespace
    from urllib.parse import parse_qs, urlsplit

    from siyu.sla.tasks import conversation_link

    rt = SimpleNamespace(settings=SimpleNamespace(public_url="https://siyu.example"))
    return parse_qs(urlsplit(conversation_link(rt, slug, None, card)).query)["next"][0]


def listed(html: str) -> list[int]:
    found = re.search(r'<ul class="list convs" id="conversations">(.*?)</ul>', html, re.S)
    return [int(i) for i in re.findall(r'href="/conversations/(\d+)"', found.group(1))] if found else []


def test_a_card_about_several_customers_opens_those_customers(as_role, new_waiting, db, world):
    """A merged card ("2 位客户等待回复，最长 2 分钟") opened every waiting chat its recipient had
    ever been told of (7 in the demo, the card's two at the bottom) under "7 位客户等待回复",
    not saying it was filtered. It opens the card's customers, says so, and leads on to the
    whole waiting list; what the viewer may not see stays out."""
    earlier = [new_waiting("zhangsan") for _ in range(3)]
    _card(db, world, "zhangsan", [(cid, "zhangsan") for cid in earlier])  # older cards, still waiting
    own, colleagues = new_waiting("zhangsan"), new_waiting("zhaoliu")  # 赵六's: 张三 is the contact
    card = _card(db, world, "zhangsan", [(own, "zhangsan"), (colleagues, "zhaoliu")])
    target = card_target(world.a.slug, card)

    agent = as_role("agent")
    html = agent.get(target).text
    assert sorted(listed(html)) == sorted([own, colleagues])
    assert "这张提醒里的 2 位客户等待回复" in html
    assert 'href="/conversations?waiting=1"' in html  # the way to the whole waiting list
    # (by the API, a hundred a page: other tests' waiting chats may fill the page's twenty)
    whole = agent.get("/api/v1/conversations", params={"waiting": "true", "per_page": 100}).json()["items"]
    assert set(earlier) | {own} <= {c["id"] for c in whole}
    # 王五 leads 张三's team, not 赵六's: of the card's customers, he sees his team's
    assert listed(as_role("supervisor").get(target).text) == [own]
    # one of them answered: the card's other customer still waits, both are under 全部
    with db.tenant_session(world.a.id) as s:
        ext = s.scalar(select(Conversation.external_userid).where(Conversation.id == own))
    arc = Archive()
    arc.text("zhangsan", ext, "在的，您说", 1)
    store(db, world.a.id, arc.items)
    html = agent.get(target).text
    assert listed(html) == [colleagues] and "这张提醒里的 1 位客户等待回复" in html
    assert sorted(listed(agent.get(target.replace("waiting=1&", "")).text)) == sorted([own, colleagues])
    # a card that is not there (a link cut short, a tenant's card opened in another): the whole list
    # (its first twenty, as the API's first page: other tests' waiting chats may fill it)
    first_page = agent.get("/api/v1/conversations", params={"waiting": "true", "per_page": 20}).json()[
        "items"
    ]
    for bad in ("987654321", "x", "-1", "9" * 30):
        html = agent.get("/conversations", params={"waiting": 1, "card": bad}).text
        assert "找不到这张提醒" in html and listed(html) == [c["id"] for c in first_page]
    assert "找不到这张提醒" in as_role("admin", "b").get(target).text


def test_a_card_opened_by_someone_it_was_not_sent_to_does_not_say_its_customers_were_answered(
    as_role, new_waiting, db, world
):
    """王五's card about 李四's waiting customers, its link opened by 张三 (forwarded, say),
    said 这张提醒里的客户都已不在等待回复 while they still waited: he may not see them. The card
    is not found for him, as in the API (neither that it is a card nor how many of its
    customers wait is his to learn): his own waiting list, with a notice. An admin opening an
    agent's card is told it was not sent to them, and sees its customers."""
    waiting = [new_waiting("lisi"), new_waiting("lisi")]
    card = _card(db, world, "wangwu", [(cid, "lisi") for cid in waiting])
    target = card_target(world.a.slug, card)

    html = as_role("agent").get(target).text
    # (the card's count: the menu's badge may read 22 位客户在等待回复 in another order of the suite)
    assert "不在等待" not in html and "你看不到" not in html and "提醒里的 2 位" not in html
    assert "找不到这张提醒（链接可能不完整，或提醒不是发给你或你团队的）" in html
    assert not set(waiting) & set(listed(html))
    admin = as_role("admin").get(target).text
    assert sorted(listed(admin)) == sorted(waiting) and "这张提醒不是发给你的" in admin
    # to whom it was sent (王五 leads 李四): the card's customers, said as before
    mine = as_role("supervisor").get(target).text
    assert sorted(listed(mine)) == sorted(waiting) and "这张提醒里的 2 位客户等待回复" in mine
    assert "不是发给你的" not in mine
    # answered, to the one it was sent to: all of them no longer wait, as it said
    with db.tenant_session(world.a.id) as s:
        s.execute(update(Conversation).where(Conversation.id.in_(waiting)).values(awaiting_since=None))
    assert "这张提醒里的客户都已不在等待回复" in as_role("supervisor").get(target).text
    after = as_role("agent").get(target).text
    assert "都已不在等待" not in after and "找不到这张提醒" in after


def test_the_api_lists_a_cards_customers_and_those_told_of_as_the_page_does(as_role, new_waiting, db, world):
    """The page has ?card= and ?told=; GET /api/v1/conversations had neither, so a script could
    not list a card's customers. Both are there, in the spec; a card that is not there, or was
    sent to someone whose customers the caller may not see, is 404 as another's chat is."""
    own, colleagues = new_waiting("zhangsan"), new_waiting("zhaoliu")  # 赵六's: 张三 is the contact
    card = _card(db, world, "zhangsan", [(own, "zhangsan"), (colleagues, "zhaoliu")])
    agent = as_role("agent")

    def ids(client, **params) -> list[int]:
        r = client.get("/api/v1/conversations", params={"per_page": 100, **params})
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    got = ids(agent, card=card, waiting="true")
    assert (
        sorted(got)
        == sorted([own, colleagues])
        == sorted(listed(agent.get(card_target(world.a.slug, card)).text))
    )
    assert colleagues in ids(agent, told="true") and colleagues not in ids(agent)
    assert own not in ids(as_role("admin"), told="true")  # (told of nothing)
    assert ids(as_role("supervisor"), card=card) == [own]  # 张三's card: of it, what 王五 may see
    assert sorted(ids(as_role("admin"), card=card)) == sorted([own, colleagues])
    theirs = _card(db, world, "wangwu", [(new_waiting("lisi"), "lisi")])  # 王五's, about 李四's customer
    for client, bad in (
        (agent, theirs),
        (agent, 987654321),
        (agent, -1),
        (as_role("admin", "b"), card),
    ):
        r = client.get("/api/v1/conversations", params={"card": bad})
        assert r.status_code == 404 and r.json() == {"detail": NOT_FOUND_TEXT}, (bad, r.text)
    r = agent.get("/api/v1/conversations", params={"card": "9" * 30})  # no card's id, as no customer's
    assert (r.status_code, r.json()["detail"]) == (422, "card 超出了范围 / card is out of range")
    params = agent.get("/api/v1/openapi.json").json()["paths"]["/api/v1/conversations"]["get"]["parameters"]
    documented = {p["name"]: p for p in params}
    assert (
        "escalation card" in documented["card"]["description"]
        and documented["told"]["schema"]["type"] == "boolean"
    )


def test_the_list_keeps_its_filters_and_says_why_it_is_empty(as_role, chats):
    admin = as_role("admin")
    html = admin.get("/conversations", params={"staff": "zhangsan", "kind": "single"}).text
    assert 'href="/conversations?staff=zhangsan&amp;kind=single&amp;waiting=1"' in html  # the tab keeps them
    assert 'href="/conversations?staff=zhangsan&amp;kind=single"' in html
    assert "成员：张三" in html and "类型：" in html  # the filters show as chips, the box folded
    empty = admin.get("/conversations", params={"staff": "zhaoliu", "kind": "group"}).text
    assert "没有符合筛选条件的会话" in empty and "开启会话存档" not in empty
    assert "所选条件内没有客户在等待" in empty  # not "nobody waits" while others do
    # nor for a customer not found
    assert "所选条件内没有客户在等待" in admin.get("/conversations", params={"customer": 987654321}).text
    searched_groups = admin.get("/conversations", params={"q": "没有这句话", "group_waiting": 1}).text
    assert "在所选条件内没有找到包含“没有这句话”的消息" in searched_groups
    # a search from the 等待回复 tab looks among the waiting ones only, and says so
    searched = admin.get("/conversations", params={"q": "便宜", "waiting": 1}).text
    assert "只搜等待回复的会话" in searched and 'href="/conversations?q=%E4%BE%BF%E5%AE%9C"' in searched
    past = admin.get("/conversations", params={"page": 999}).text
    assert "回到第一页" in past and "开启会话存档" not in past

    # the header counts the waiting customers the filters show, not the whole team's
    def header_count(params) -> int:
        html = admin.get("/conversations", params=params).text
        found = re.search(r"(\d+) 位客户等待回复", html)
        return int(found.group(1)) if found else 0

    for staff in ("zhaoliu", "zhangsan"):
        api = admin.get("/api/v1/conversations", params={"waiting": 1, "staff": staff}).json()["total"]
        assert header_count({"staff": staff}) == header_count({"staff": staff, "waiting": 1}) == api > 0
    everyone = admin.get("/api/v1/conversations", params={"waiting": 1}).json()["total"]
    assert header_count({}) == everyone > header_count({"staff": "zhaoliu"})
    nothing = admin.get("/conversations", params={"q": "没有这句话", "staff": "zhaoliu"}).text
    assert "在所选条件内没有找到包含“没有这句话”的消息" in nothing


def test_a_supervisor_sees_their_team(as_role, chats):
    sup = as_role("supervisor")  # 王五: 张三 and 李四, not 赵六
    got = sorted(t.split(" ")[0] for t in titles(sup.get("/api/v1/conversations?per_page=100")))
    assert got == ["孙小姐", "王女士", "群聊", "陈先生"]
    assert sup.get(f"/api/v1/conversations/{chats.a['刘总']}").status_code == 404


def _staff_sent(page: str) -> str:
    """What a browser sends for the filter form's 成员 select: its selected option, else the first (全部)."""
    select = re.search(r'<select name="staff">(.*?)</select>', page, re.S)
    chosen = select and re.search(r'<option value="([^"]*)" selected>', select.group(1))
    return html.unescape(chosen.group(1)) if chosen else ""


def test_a_supervisor_filtering_by_a_member_outside_their_team_sees_the_name(as_role, chats, world, db):
    """王五 following a link filtered by 赵六, outside his team: the list stays empty for him (刘总
    is not his to see), but its chip said 成员：zhaoliu, the userid, where every other member is
    named. It names 赵六, on the customer list too. The 成员 select under it read 全部, so
    searching again from the form dropped the filter: it offers 赵六, chosen."""
    sup = as_role("supervisor")
    chat_list = sup.get("/conversations", params={"staff": "zhaoliu"}).text
    assert "成员：赵六 <a" in chat_list and "成员：zhaoliu" not in chat_list
    assert "刘总" not in chat_list and "没有符合筛选条件的会话" in chat_list
    assert '<option value="zhaoliu" selected>赵六</option>' in chat_list
    again = sup.get("/conversations", params={"q": "", "staff": _staff_sent(chat_list)}).text
    assert "成员：赵六 <a" in again and "刘总" not in again
    customer_list = sup.get("/customers", params={"staff": "zhaoliu"}).text
    assert "成员：赵六 <a" in customer_list and "成员：zhaoliu" not in customer_list
    assert "刘总" not in customer_list
    assert _staff_sent(customer_list) == "zhaoliu"
    # one who left is offered as the chip names them
    with zhaoliu_left(world, db):
        page = sup.get("/customers", params={"staff": "zhaoliu"}).text
        assert "成员：赵六（已离职或停用） <a" in page, page
        assert '<option value="zhaoliu" selected>赵六（已离职或停用）</option>' in page
    # a userid no member has is shown as typed, and kept
    nobody = sup.get("/conversations", params={"staff": "nobody-here"}).text
    assert "成员：nobody-here <a" in nobody and _staff_sent(nobody) == "nobody-here"
    # not offered unasked
    assert '<option value="zhaoliu"' not in sup.get("/conversations").text


def test_the_member_filter_takes_a_userid_in_any_case(as_role, chats, world, db):
    """WeCom's userids are case-insensitive (不区分大小写: ZhangSan is zhangsan), yet the list,
    its search and the API filtered by ZhangSan found nothing, under the chip 成员：ZhangSan."""
    admin, sup = as_role("admin"), as_role("supervisor")

    def listed(client, staff: str) -> list[str]:
        params = {"staff": staff, "per_page": 100}
        return sorted(t.split(" ")[0] for t in titles(client.get("/api/v1/conversations", params=params)))

    def searched(client, staff: str) -> list[str]:
        found = client.get("/api/v1/messages/search", params={"q": "发货", "staff": staff, "per_page": 100})
        return [h["message"]["text"] for h in found.json()["items"]]

    assert listed(admin, "ZhangSan") == listed(admin, "ZHANGSAN") == ["孙小姐", "王女士", "群聊"]
    assert "明天上午发货" in searched(admin, "LiSi") == searched(admin, "lisi")
    page = admin.get("/conversations", params={"staff": "ZhangSan"}).text
    assert "成员：张三 <a" in page and '<option value="zhangsan" selected>张三</option>' in page
    assert "王女士" in page and "陈先生" not in page
    page = admin.get("/conversations", params={"q": "发货", "staff": "LiSi"}).text
    assert "成员：李四 <a" in page and "明天上午<mark>发货</mark>" in page
    # still within the reader's scope: 赵六 is outside 王五's team, whatever the case
    assert listed(sup, "LiSi") == ["陈先生"] and listed(sup, "ZhaoLiu") == []
    page = sup.get("/conversations", params={"staff": "ZhaoLiu"}).text
    assert "成员：赵六 <a" in page and "刘总" not in page and "没有符合筛选条件的会话" in page
    assert listed(as_role("agent"), "ZhaoLiu") == []
    # a userid no member has finds nothing, named as asked
    page = admin.get("/conversations", params={"staff": "ZhangSan2"}).text
    assert "成员：ZhangSan2 <a" in page and "没有符合筛选条件的会话" in page
    # another tenant's members are never matched: B has a zhangsan too, and a 小美 A has not
    admin_b = as_role("admin", "b")
    assert listed(admin_b, "ZhangSan") == ["乙方客户"]
    with db.tenant_session(world.b.id) as s:
        s.add(Staff(userid="XiaoMei", name="小美", departments=[4], wecom_status=1))
    try:
        assert "成员：小美 <a" in admin_b.get("/conversations", params={"staff": "xiaomei"}).text
        page = admin.get("/conversations", params={"staff": "xiaomei"}).text
        assert "成员：xiaomei <a" in page and "小美" not in page
    finally:
        with db.tenant_session(world.b.id) as s:
            s.execute(delete(Staff).where(Staff.userid == "XiaoMei"))


def test_one_tenant_never_sees_another_tenants_conversations(as_role, chats):
    admin_a, admin_b = as_role("admin"), as_role("admin", "b")
    foreign = chats.b["乙方客户"]
    for path in (
        f"/api/v1/conversations/{foreign}",
        f"/api/v1/conversations/{foreign}/messages",
        "/api/v1/conversations/987654321",
    ):
        r = admin_a.get(path)
        assert r.status_code == 404 and r.json() == {"detail": NOT_FOUND_TEXT}
    r = admin_a.post(f"/api/v1/conversations/{foreign}/dismiss", headers={"X-CSRF-Token": admin_a.csrf})
    assert r.status_code == 404
    ui_foreign, ui_missing = admin_a.get(f"/conversations/{foreign}"), admin_a.get("/conversations/987654321")
    assert ui_foreign.status_code == ui_missing.status_code == 404
    assert "乙方" not in ui_foreign.text
    assert "乙方客户" not in admin_a.get("/conversations").text
    assert titles(admin_b.get("/api/v1/conversations", params={"per_page": 100})) == ["乙方客户"]
    assert admin_b.get(f"/api/v1/conversations/{chats.a['王女士']}").status_code == 404
    # B's conversation is still waiting: A's attempt changed nothing.
    assert admin_b.get(f"/api/v1/conversations/{foreign}").json()["waiting"] is True


def test_signed_out_api_answers_401(siyu, chats):
    import httpx

    with httpx.Client(base_url=siyu) as anon:
        assert anon.get("/api/v1/conversations").status_code == 401
        r = anon.get(f"/conversations/{chats.a['王女士']}", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next=%2Fconversations%2F{chats.a['王女士']}"


# ---------------------------------------------------------------- one conversation


def test_messages_are_chronological_with_labels(as_role, chats):
    admin = as_role("admin")
    wang = admin.get(f"/api/v1/conversations/{chats.a['王女士']}/messages").json()
    texts = [m["text"] for m in wang["items"]]
    assert texts == ["欢迎光临本店", "您好，iPhone15 现在有优惠活动", "能便宜点吗 iPhone15", "好的"]
    by_text = {m["text"]: m for m in wang["items"]}
    assert by_text["欢迎光临本店"]["by_siyu"] and by_text["欢迎光临本店"]["labels"] == ["自动发送"]
    assert by_text["能便宜点吗 iPhone15"]["waiting"] and by_text["能便宜点吗 iPhone15"]["labels"] == []
    assert by_text["好的"]["needs_reply"] is False and by_text["好的"]["labels"] == ["结束语"]
    assert [m["direction"] for m in wang["items"]] == ["out", "out", "in", "in"]
    assert by_text["好的"]["sender_name"] == "王女士" and by_text["欢迎光临本店"]["sender_name"] == "张三"
    assert wang["has_more"] is False and wang["before"] is None

    liu = admin.get(f"/api/v1/conversations/{chats.a['刘总']}/messages").json()["items"]
    recalled = [m for m in liu if m["msgid"] == chats.msgids["price"]][0]
    assert recalled["recalled"] and recalled["labels"] == ["已撤回"]
    assert all(m["msgtype"] != "revoke" for m in liu)  # the recall itself is not a bubble


def test_messages_page_from_the_newest(as_role, chats):
    admin = as_role("admin")
    url = f"/api/v1/conversations/{chats.a['王女士']}/messages"
    newest = admin.get(url, params={"limit": 3}).json()
    assert [m["text"] for m in newest["items"]] == [
        "您好，iPhone15 现在有优惠活动",
        "能便宜点吗 iPhone15",
        "好的",
    ]
    assert newest["has_more"] is True
    older = admin.get(url, params={"limit": 3, "before": newest["before"]}).json()
    assert [m["text"] for m in older["items"]] == ["欢迎光临本店"] and older["has_more"] is False
    # a message of another conversation, or none, is not a place to page from
    other = admin.get(f"/api/v1/conversations/{chats.a['陈先生']}/messages").json()["items"][0]["id"]
    for before in (other, -1):
        r = admin.get(url, params={"before": before})
        assert r.status_code == 422 and "before" in r.json()["detail"]
    assert admin.get(f"/conversations/{chats.a['王女士']}", params={"before": other}).status_code == 200


def test_the_conversation_page(as_role, chats, world):
    agent = as_role("agent")
    page = agent.get(f"/conversations/{chats.a['王女士']}")
    assert page.status_code == 200
    html = page.text
    assert "王女士" in html and re.search(r"等待 \d+ 分 \d+ 秒", html)
    assert "能便宜点吗 iPhone15" in html and "自动发送" in html and "结束语" in html
    assert f'href="/customers/{world.a.customers["王女士"]}"' in html
    assert 'class="msg in' in html and 'class="msg out' in html
    assert f'value="{agent.csrf}"' in html  # the 无需回复 form carries the CSRF token
    recalled = as_role("admin").get(f"/conversations/{chats.a['刘总']}").text
    assert "已撤回" in recalled


def test_the_list_page_shows_who_waits_how_long(as_role, chats):
    html = as_role("agent").get("/conversations").text
    assert re.search(
        r'王女士<span class="remark">（备注：王姐-报价）</span> <span class="wait"[^>]*>等待 \d+ 分 \d+ 秒',
        html,
    )
    assert "能便宜点吗 iPhone15" in html and "退款什么时候到账" in html
    assert html.index("孙小姐") < html.index("王女士")
    assert "陈先生" not in html and "刘总" not in html
    assert 'href="/conversations"' in html and "会话" in html  # the nav entry
    assert 'data-refresh="30"' in html  # who waits stays current (siyu.js reloads it)
    assert "data-refresh" not in as_role("agent").get("/conversations", params={"q": "能便宜点吗"}).text


def test_a_page_past_the_last_says_so_without_a_pager(as_role, db, world):
    from tests.conversations.conftest import store

    arc = Archive()  # more than a page of conversations (tenant B's, that A's lists stay as they are)
    for i in range(21):
        arc.text(f"wmpage{i}{arc.sfx}", "zhangsan", "好的谢谢", 60 + i)  # none waits
    store(db, world.b.id, arc.items)
    admin = as_role("admin", "b")
    assert 'class="pager"' in admin.get("/conversations").text
    # the first page, said so, as the customer list and search do (it had read 这一页之后没有会话了
    # under no chat at all); never a "999 / 2" pager
    past = admin.get("/conversations", params={"page": 999}).text
    assert (
        "翻页链接已失效，已回到第一页" in past and "这一页之后没有会话了" not in past and "999 /" not in past
    )


def test_the_customer_profile_links_to_conversations(as_role, world, chats):
    cid = world.a.customers["王女士"]
    html = as_role("agent").get(f"/customers/{cid}").text
    assert f'href="/conversations?customer={cid}"' in html
    # the chats themselves, with who waits how long (it had shown only a link)
    assert f'href="/conversations/{chats.a["王女士"]}"' in html
    assert re.search(r'<span class="badge st-lost"[^>]*>等待 \d+ 分', html)
    filtered = as_role("agent").get("/conversations", params={"customer": cid}).text
    assert "能便宜点吗 iPhone15" in filtered and "孙小姐" not in filtered


def test_a_link_in_a_message_opens_on_a_tap_and_nothing_else_becomes_markup(as_role, db, world):
    """A customer sending an order's address read it as text: on a phone it could be neither
    tapped nor copied whole. Its http(s) addresses are links, opened in a new tab, passing no
    referrer (the chat's address) and no ranking; the rest stays text (no tag, no javascript:
    link), and the search list still marks what was found, as text, within its row's link."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    url = f"https://shop.example.com/order?id={arc.sfx}&from=wecom"
    arc.text(
        ext, "zhangsan", f"订单在这里{url}，<b>急</b> javascript:alert(1) 还有 http://a.example.cn/x.", 30
    )
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    agent = as_role("agent")
    page = agent.get(f"/conversations/{cid}").text
    bubble = re.search(r'<div class="bubble">(.*?)</div>', page, re.S)[1]
    shown = html.escape(url)
    opens = 'rel="noopener noreferrer nofollow" target="_blank"'
    assert bubble == (
        f'订单在这里<a href="{shown}" {opens}>{shown}</a>，&lt;b&gt;急&lt;/b&gt; javascript:alert(1) 还有 '
        f'<a href="http://a.example.cn/x" {opens}>http://a.example.cn/x</a>.'
    ), bubble
    hits = agent.get("/conversations", params={"q": f"订单在这里 {arc.sfx}"}).text
    row = re.search(r'<span class="line">(.*?)</span>', hits, re.S)[1]
    assert "<mark>订单在这里</mark>" in row and "<a " not in row, row


def test_a_waiting_chat_on_the_customer_s_profile_reads_the_question_not_the_picture_after_it(
    as_role, db, world
):
    """A customer asked, then sent a picture: the chat's row on their profile read [图片], the
    newest message, where the conversation list reads the question they wait on."""
    from tests.web.conftest import _add, remove_customers

    arc = Archive()
    ext = f"wm{arc.sfx}"
    with db.tenant_session(world.a.id) as s:
        customer_id = _add(
            s, s.get(Tenant, world.a.id), ext, f"图{arc.sfx}", "wangwu", int(time.time()) - 900
        )
    try:
        arc.text(ext, "wangwu", f"这个型号有黑色吗 {arc.sfx}", 60)
        arc.text(ext, "wangwu", "", 50)
        photo = arc.items[-1].message
        photo.pop("text")
        photo.update({"msgtype": "image", "image": {"sdkfileid": "x"}})
        store(db, world.a.id, arc.items)
        admin = as_role("admin")
        page = admin.get(f"/customers/{customer_id}").text
        row = re.search(r'<section id="conversations">.*?<span class="meta clip">(.*?)</span>', page, re.S)[1]
        assert row.startswith(f"“这个型号有黑色吗 {arc.sfx}"), row
        assert (
            f"这个型号有黑色吗 {arc.sfx}"
            in admin.get("/conversations", params={"customer": customer_id}).text
        )
    finally:
        answered = Archive()
        answered.text("wangwu", ext, "有的", 1)  # no wait left at the top of the lists
        store(db, world.a.id, answered.items)
        remove_customers(db, world.a.id, [customer_id])


# ---------------------------------------------------------------- 无需回复


def test_dismiss_through_the_page_needs_the_csrf_token(as_role, new_waiting):
    agent = as_role("agent")
    cid = new_waiting("zhangsan")
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is True
    refused = agent.post(f"/conversations/{cid}/dismiss", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert agent.post(f"/conversations/{cid}/dismiss").status_code == 403
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting"] is True
    r = agent.post(f"/conversations/{cid}/dismiss", data={"csrf_token": agent.csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/conversations/{cid}?done=dismissed"
    after = agent.get(f"/api/v1/conversations/{cid}").json()
    assert after["waiting"] is False and after["awaiting_since"] is None
    assert "已标记为无需回复" in agent.get(r.headers["location"]).text
    # the chat keeps saying so, when, and who marked it, after the notice is gone
    items = agent.get(f"/api/v1/conversations/{cid}/messages").json()["items"]
    [marked] = [m for m in items if "已标记无需回复" in m["labels"]]
    me = agent.get("/api/v1/me").json()["display_name"]
    assert marked["direction"] == "in" and marked["dismissed_at"] and marked["dismissed_by"] == me
    page = agent.get(f"/conversations/{cid}").text  # their own mark: 你, not their name (another's?)
    assert re.search(r"已标记无需回复 \d\d-\d\d \d\d:\d\d · 你<", page), page
    assert not re.search(rf"已标记无需回复 [-\d: ]+ · {re.escape(me)}", page)
    # their second tap (a slow network, a form sent again) finds their own mark: it says so,
    # not that the chat "was no longer waiting", in amber, as if it had failed
    again = agent.post(
        f"/conversations/{cid}/dismiss", data={"csrf_token": agent.csrf}, follow_redirects=False
    )
    assert again.headers["location"].endswith("done=dismissed")
    colleague = as_role("admin")  # another's mark of a chat they had open
    later = colleague.post(
        f"/conversations/{cid}/dismiss", data={"csrf_token": colleague.csrf}, follow_redirects=False
    )
    assert later.headers["location"].endswith("done=not_waiting")


def test_marking_no_reply_needed_asks_first_and_snoozing_does_not(as_role, new_waiting):
    """标记无需回复 sat beside the 暂缓 buttons and went at a tap: a mis-tap on a phone ended the
    wait of a real question, with no undo. It asks first (siyu.js's data-confirm, as the other
    pages' buttons that cannot be undone); a snooze, which the customer's next message or its
    end undoes, still goes at one tap."""
    cid = new_waiting("zhangsan")
    page = as_role("agent").get(f"/conversations/{cid}").text
    [form] = re.findall(rf'<form method="post" action="/conversations/{cid}/dismiss"[^>]*>', page)
    assert re.search(r'data-confirm="[^"]*无需回复[^"]*不能撤销[^"]*"', form), form
    snoozes = re.findall(rf'<form method="post" action="/conversations/{cid}/snooze"[^>]*>', page)
    assert snoozes and not any("data-confirm" in f for f in snoozes)


def test_what_was_not_done_is_said_as_a_warning_not_as_success(as_role, new_waiting):
    """这个会话已经不在等待回复了 and 客户在你打开页面后又发了消息，没有标记 came in the green of
    已标记为无需回复: an agent read them as done. They come in the amber of a notice."""

    def banner(html: str) -> str:
        return re.search(r'<p class="(\w+)" role="status"[^>]*>', html).group(1)

    agent = as_role("agent")
    cid = new_waiting("zhangsan")
    marked = agent.post(
        f"/conversations/{cid}/dismiss", data={"csrf_token": agent.csrf}, follow_redirects=True
    )
    assert "已标记为无需回复" in marked.text and banner(marked.text) == "ok"
    admin = as_role("admin")  # (the agent's own second tap says it is marked)
    again = admin.post(
        f"/conversations/{cid}/dismiss", data={"csrf_token": admin.csrf}, follow_redirects=True
    )
    assert "这个会话已经不在等待回复了" in again.text and banner(again.text) == "notice"
    changed = agent.get(f"/conversations/{cid}", params={"done": "changed"}).text
    assert "又发了消息，没有标记" in changed and banner(changed) == "notice"
    # a snooze from the board of a wait answered meanwhile: nothing was snoozed
    gone = agent.post(
        f"/conversations/{cid}/snooze",
        data={"csrf_token": agent.csrf, "minutes": "15"},
        follow_redirects=True,
    )
    assert "这个会话已经不在等待回复了" in gone.text and banner(gone.text) == "notice"
    assert banner(agent.get("/sla", params={"done": "snoozed"}).text) == "ok"


def test_snooze_from_the_conversation_page_and_it_says_until_when(as_role, new_waiting):
    agent = as_role("agent")
    cid = new_waiting("zhangsan")
    page = agent.get(f"/conversations/{cid}").text
    assert f'action="/conversations/{cid}/snooze"' in page and "提醒已暂缓至" not in page
    r = agent.post(
        f"/conversations/{cid}/snooze",
        data={"csrf_token": agent.csrf, "minutes": "30", "next": f"/conversations/{cid}"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/conversations/{cid}?done=snoozed"
    after = agent.get(r.headers["location"]).text
    assert "已暂缓提醒" in after and "提醒已暂缓至" in after


def _from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_someone_shortening_their_own_snooze_does_not_cut_the_agents_longer_one_made_before(
    as_role, new_waiting, db, world
):
    """张三 snoozes his customer for 30 minutes (he is calling them). The admin then snoozes it for
    an hour, and thinks better of it: 15 minutes. The admin's own shorter snooze is allowed to
    replace the admin's hour, but it also wiped out 张三's 30 minutes, which was never the
    admin's: the reminders (张三's card, then his leader's) came back 15 minutes on, the chat and
    the API saying 暂缓至 +15 by the admin. Each person's latest snooze is kept now."""
    cid = new_waiting("zhangsan")
    agent, admin = as_role("agent"), as_role("admin")
    url = f"/api/v1/conversations/{cid}/snooze"

    def snooze(client, minutes: int) -> dict:
        r = client.post(url, json={"minutes": minutes}, headers={"X-CSRF-Token": client.csrf})
        assert r.status_code == 200, r.text
        return r.json()

    own = snooze(agent, 30)
    assert own["kept_until"] is None
    assert snooze(admin, 60)["kept_until"] is None  # longer: it holds now
    snooze(admin, 15)  # the admin's own hour, shortened
    held = _from_iso(agent.get(f"/api/v1/conversations/{cid}").json()["snooze"]["until"])
    with db.tenant_session(world.a.id) as s:
        due = s.scalar(
            select(SlaEscalation.due_at)
            .where(SlaEscalation.conversation_id == cid, SlaEscalation.status == "pending")
            .order_by(SlaEscalation.due_at)
        )
    agents_end = _from_iso(own["until"])
    # 张三's own 30 minutes still stand: nothing reminds him before they are over
    assert held >= agents_end - timedelta(seconds=1), (held, agents_end)
    assert due.replace(tzinfo=agents_end.tzinfo) >= agents_end - timedelta(seconds=1), (due, agents_end)


def test_a_snoozed_wait_says_until_when_in_the_conversation_list(as_role, new_waiting, db, world):
    """Back on the list after 暂缓, the chat showed as every other waiting one (等待 …, in red):
    the agent could not tell the chats they had put off from those nobody had looked at. Its
    row says until when, at the minute the chat says; the others' rows say nothing of it."""
    held, other = new_waiting("zhangsan"), new_waiting("zhangsan")
    card = _card(db, world, "zhangsan", [(held, "zhangsan"), (other, "zhangsan")])
    agent = as_role("agent")
    r = agent.post(
        f"/conversations/{held}/snooze",
        data={"csrf_token": agent.csrf, "minutes": "30", "next": f"/conversations/{held}"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    until = re.search(r"提醒已暂缓至 ((?:\d\d-\d\d )?\d\d:\d\d)", agent.get(f"/conversations/{held}").text)
    html = agent.get(card_target(world.a.slug, card)).text
    rows = dict(re.findall(r'<a href="/conversations/(\d+)">(.*?)</a>', html, re.S))
    assert until and f"提醒已暂缓至 {until[1]}" in rows[str(held)], rows[str(held)]
    assert "暂缓" not in rows[str(other)]


def test_the_chat_of_a_waiting_customer_says_where_to_reply(as_role, new_waiting):
    """The card's 去回复 opens the chat, which offers only 标记无需回复 and 暂缓: Siyu cannot send
    as the agent, and the page did not say where the reply is written."""
    cid = new_waiting("zhangsan")
    own = as_role("agent").get(f"/conversations/{cid}").text
    where = re.search(r'id="reply-where">(.*?)</small>', own, re.S)
    assert where and where[1].startswith("在企业微信里回复 ") and where[1].endswith("，回复后这里会自动更新")
    theirs = as_role("admin").get(f"/conversations/{cid}").text
    where = re.search(r'id="reply-where">(.*?)</small>', theirs, re.S)
    assert where and where[1].startswith("请 张三 在企业微信里回复"), where


# ---------------------------------------------------------------- the member's remark (备注)

# A remark as typed on a phone: spaces and a line break around it, and characters that are markup.
TYPED_REMARK = "  郑姐\n <i>报价</i> &  回访 "
SHOWN_REMARK = "郑姐 <i>报价</i> & 回访"


@pytest.fixture
def remarked(db, world):
    """Customers of 张三's waiting in their 1:1 chat, each with 张三's remark on them ("" none):
    {name: (customer id, conversation id)}. Answered and gone again afterwards."""
    from tests.web.conftest import _add, remove_customers

    arc = Archive()
    made: dict[str, tuple[int, int]] = {}

    def make(remarks: dict[str, str]) -> dict[str, tuple[int, int]]:
        now = int(time.time())
        with db.tenant_session(world.a.id) as s:
            tenant = s.get(Tenant, world.a.id)
            for i, (name, remark) in enumerate(remarks.items()):
                ext = f"wm{arc.sfx}r{i}"
                customer_id = _add(s, tenant, ext, name, "zhangsan", now - 86400, remark=remark)
                made[name] = (customer_id, 0)
                # waiting longer than the package's other chats: the top of the 等待回复 list
                arc.text(ext, "zhangsan", f"在吗 {arc.sfx}", 3 * 3600 + i)
        store(db, world.a.id, arc.items)
        with db.tenant_session(world.a.id) as s:
            customers = [cust for cust, _ in made.values()]
            ids = dict(
                s.execute(
                    select(Conversation.customer_id, Conversation.id).where(
                        Conversation.customer_id.in_(customers)
                    )
                ).all()
            )
        made.update({name: (cust, ids[cust]) for name, (cust, _) in made.items()})
        return made

    yield make
    answered = Archive()  # no wait left at the top of the lists
    for item in arc.items:
        answered.text("zhangsan", item.message["from"], "好的", 1)
    store(db, world.a.id, answered.items)
    remove_customers(db, world.a.id, [cust for cust, _ in made.values()])


def _text(fragment: str) -> str:
    """What a reader sees of a piece of the page: its text, tags left out, entities read."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def _h1(page: str) -> str:
    return _text(re.search(r"<h1>(.*?)</h1>", page, re.S)[1])


def _reply_where(page: str) -> str:
    return _text(re.search(r'id="reply-where">(.*?)</small>', page, re.S)[1])


def test_the_chat_names_the_customer_with_the_member_s_remark_where_to_reply(as_role, remarked, chats):
    """WeCom lists a chat on the agent's phone by their remark on the customer: the page said
    在企业微信里回复 郑女士, and the agent had to guess which chat that was."""
    sfx = uuid.uuid4().hex[:4]
    zheng, wu = f"郑女士{sfx}", f"吴先生{sfx}"
    made = remarked({zheng: TYPED_REMARK, wu: ""})
    agent, sup = as_role("agent"), as_role("supervisor")

    own = agent.get(f"/conversations/{made[zheng][1]}").text
    assert _h1(own) == f"{zheng}（备注：{SHOWN_REMARK}）"
    assert _reply_where(own) == f"在企业微信里回复 {zheng}（备注：{SHOWN_REMARK}），回复后这里会自动更新"
    assert "<i>报价" not in own and "郑姐 &lt;i&gt;报价&lt;/i&gt; &amp; 回访" in own
    # the leader asks 张三 to reply, in the chat 张三's phone lists by 张三's remark
    theirs = sup.get(f"/conversations/{made[zheng][1]}").text
    assert _h1(theirs) == f"{zheng}（备注：{SHOWN_REMARK}）"
    assert _reply_where(theirs).startswith(f"请 张三 在企业微信里回复 {zheng}（备注：{SHOWN_REMARK}），")

    plain = agent.get(f"/conversations/{made[wu][1]}").text  # no remark: the name alone
    assert _h1(plain) == wu
    assert _reply_where(plain) == f"在企业微信里回复 {wu}，回复后这里会自动更新"

    api = agent.get(f"/api/v1/conversations/{made[zheng][1]}").json()
    assert api["remark"] == SHOWN_REMARK and api["title"] == zheng
    assert agent.get(f"/api/v1/conversations/{made[wu][1]}").json()["remark"] is None
    admin = as_role("admin")  # a group chat: as it was
    assert admin.get(f"/api/v1/conversations/{chats.a['群聊']}").json()["remark"] is None
    assert "备注" not in _h1(admin.get(f"/conversations/{chats.a['群聊']}").text)


def test_the_wait_bar_and_the_wrote_again_notice_name_the_customer_with_the_member_s_remark(
    as_role, remarked
):
    """The chat's header read 郑女士（备注：郑姐…）, its wait bar just below 郑女士 alone, and so did
    "郑女士 在你打开页面后又发了消息": two names for one customer on one screen."""
    sfx = uuid.uuid4().hex[:4]
    zheng, wu = f"郑女士{sfx}", f"吴先生{sfx}"
    made = remarked({zheng: TYPED_REMARK, wu: ""})
    agent = as_role("agent")

    def bar(page: str) -> str:
        found = re.search(r'<section class="waitbar" aria-label="等待回复">\s*<p><b>(.*?)</b>', page, re.S)
        return _text(found[1])

    def notice(page: str) -> str:
        return _text(re.search(r'id="done">(.*?)</p>', page, re.S)[1])

    page = agent.get(f"/conversations/{made[zheng][1]}", params={"done": "changed"}).text
    assert bar(page) == f"{zheng}（备注：{SHOWN_REMARK}）"
    said = notice(page)
    assert said.startswith(f"{zheng}（备注：{SHOWN_REMARK}） 在你打开页面后又发了消息，"), said
    assert "<i>报价" not in page
    plain = agent.get(f"/conversations/{made[wu][1]}", params={"done": "changed"}).text  # no remark
    assert bar(plain) == wu and notice(plain).startswith(f"{wu} 在你打开页面后又发了消息，")


def remarks_read(db):
    """The statements that read members' remarks on customers."""
    return statements_matching(db.engine, r"follows\.remark\b")


def _named_rows(page: str) -> dict[int, str]:
    """Whom each row of the list of waiting chats names, by conversation id (the text before
    how long they wait)."""
    rows = re.findall(
        r'<a href="/conversations/(\d+)">.*?<span class="name">(.*?)<span class="wait"', page, re.S
    )
    return {int(cid): _text(name) for cid, name in rows}


def test_the_conversation_list_names_each_customer_with_the_member_s_remark_in_one_read(
    as_role, remarked, db
):
    """The list named 郑女士 alone, where 张三's phone lists the chat by 张三's remark on her."""
    sfx = uuid.uuid4().hex[:4]
    names = {f"郑女士{sfx}": TYPED_REMARK, f"冯女士{sfx}": "冯姐-复购", f"吴先生{sfx}": ""}
    made = remarked(names)
    for role in ("agent", "supervisor"):
        with remarks_read(db) as reads:
            page = as_role(role).get("/conversations", params={"waiting": 1}).text
        rows = _named_rows(page)
        for name, remark in names.items():
            shown = " ".join(remark.split())
            assert rows[made[name][1]] == (f"{name}（备注：{shown}）" if shown else name), role
        assert "<i>报价" not in page
        assert len(reads) == 1, reads  # one read for the page, not one a row
    api = as_role("agent").get("/api/v1/conversations", params={"waiting": "true", "per_page": 100}).json()
    by_id = {c["id"]: c["remark"] for c in api["items"]}
    assert [by_id[made[n][1]] for n in names] == [SHOWN_REMARK, "冯姐-复购", None]
    # the customer's page: the chat with 张三 reads 张三's remark on them
    profile = as_role("agent").get(f"/customers/{made[f'郑女士{sfx}'][0]}").text
    chats = re.search(r'<section id="conversations">(.*?)</section>', profile, re.S)[1]
    assert f"张三 · 备注：{SHOWN_REMARK}" in _text(chats) and "<i>报价" not in chats


def test_search_results_name_each_customer_with_the_member_s_remark_in_one_read(as_role, remarked, db):
    """A search's results named 郑女士 alone, page and API, where the list, the chat and the
    agent's phone name her by 张三's remark on her."""
    sfx = uuid.uuid4().hex[:4]
    names = {f"郑女士{sfx}": TYPED_REMARK, f"冯女士{sfx}": "冯姐-复购", f"吴先生{sfx}": ""}
    made = remarked(names)
    agent = as_role("agent")
    [asked] = agent.get(f"/api/v1/conversations/{made[f'郑女士{sfx}'][1]}/messages").json()["items"]
    word = asked["text"].split()[-1]  # the package's own: its three customers' questions alone
    with remarks_read(db) as reads:
        page = agent.get("/conversations", params={"q": word}).text
    hit = r'<a href="/conversations/(\d+)\?at=\d+#m\d+">.*?<span class="name">(.*?)<small'
    hits = re.findall(hit, page, re.S)
    by_id = {int(cid): _text(name) for cid, name in hits}
    for name, remark in names.items():
        shown = " ".join(remark.split())
        assert by_id[made[name][1]] == (f"{name}（备注：{shown}）" if shown else name)
    assert "<i>报价" not in page
    assert len(reads) == 1, reads  # one read for the page, not one a result
    api = agent.get("/api/v1/messages/search", params={"q": word}).json()["items"]
    remarks = {hit["conversation"]["id"]: hit["conversation"]["remark"] for hit in api}
    assert [remarks[made[n][1]] for n in names] == [SHOWN_REMARK, "冯姐-复购", None]
    spec = agent.get("/api/v1/openapi.json").json()["components"]["schemas"]["ConversationRef"]
    assert "备注" in spec["properties"]["remark"]["description"]


def test_a_chat_whose_member_is_off_the_archive_says_so(as_role, db, world):
    """Siyu read 张三 off 会话存档's permit list (conversations.tasks.read_permit_lists): his
    chats' pages tell that their messages are no longer archived nor escalated, as a declined
    customer's do; the API says since when."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhangsan", "你好", 60)
    off_at = utcnow()
    with db.tenant_session(world.a.id) as s:
        service.ingest(s, arc.items, classify)
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
        s.execute(update(Staff).where(Staff.userid == "zhangsan").values(unarchived_since=off_at))
    try:
        agent = as_role("agent")
        page = agent.get(f"/conversations/{cid}").text
        notice = re.search(r'id="member-unarchived">(.*?)</p>', page, re.S)[1]
        assert notice.startswith("张三已不在会话存档范围内") and "不会有超时提醒" in notice
        since = agent.get(f"/api/v1/conversations/{cid}").json()["member_unarchived_since"]
        assert datetime.fromisoformat(since) == off_at
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(update(Staff).where(Staff.userid == "zhangsan").values(unarchived_since=None))


def test_a_customer_who_declined_archiving_is_said_so_in_the_chat(as_role, db, world):
    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhangsan", "你好", 60)
    arc.text(ext, "zhangsan", "", 30)
    event = arc.items[-1].message
    event.pop("text")
    event.update({"msgtype": "disagree", "disagree": {"userid": "zhangsan", "disagree_time": 1}})
    with db.tenant_session(world.a.id) as s:
        service.ingest(s, arc.items, classify)
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    page = as_role("agent").get(f"/conversations/{cid}").text
    assert "客户已拒绝存档聊天内容" in page and 'class="event"' in page
    # the event line reads after the customer's name, not 汪雨涛 客户拒绝存档聊天内容
    line = re.search(r'<li class="event"[^>]*>(.*?)</li>', page, re.S)[1]
    assert re.sub(r"<[^>]+>", "", line).split(None, 1)[1].endswith(" 拒绝存档聊天内容"), line
    assert "客户拒绝" not in line
    assert as_role("agent").get(f"/api/v1/conversations/{cid}/messages").json()["items"][-1]["event"] is True


def test_a_page_address_that_is_not_valid_is_an_error_page(as_role):
    r = as_role("agent").get("/conversations/abc")
    assert r.status_code == 422 and "text/html" in r.headers["content-type"] and "无效" in r.text


def test_dismiss_through_the_api(as_role, new_waiting):
    sup = as_role("supervisor")
    cid = new_waiting("lisi")
    assert sup.post(f"/api/v1/conversations/{cid}/dismiss").status_code == 403  # no CSRF header
    r = sup.post(f"/api/v1/conversations/{cid}/dismiss", headers={"X-CSRF-Token": sup.csrf})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dismissed"] is True and body["conversation"]["waiting"] is False
    r = sup.post(f"/api/v1/conversations/{cid}/dismiss", headers={"X-CSRF-Token": sup.csrf})
    assert r.json()["dismissed"] is False
    [marked] = [
        m for m in sup.get(f"/api/v1/conversations/{cid}/messages").json()["items"] if m["dismissed_at"]
    ]
    assert marked["dismissed_by"] == "王五"  # the second, refused, mark changed nothing


def test_a_long_name_marks_no_reply_needed_as_well(db, world, new_waiting):
    cid = new_waiting("zhangsan")
    name = "名" * 200  # as long as a person's display name may be (PostgreSQL refused past 128)
    with db.tenant_session(world.a.id) as s:
        assert service.dismiss(s, cid, by=name)
    with db.tenant_session(world.a.id) as s:
        wait = s.scalar(
            select(SlaWait)
            .join(Conversation, Conversation.id == SlaWait.conversation_id)
            .where(Conversation.id == cid)
        )
        assert wait.closed_by == name


def test_the_agent_reads_who_marked_their_customer_no_reply_needed(as_role, new_waiting):
    cid = new_waiting("zhangsan")
    sup = as_role("supervisor")  # 王五 leads 张三's department
    assert sup.post(f"/api/v1/conversations/{cid}/dismiss", headers={"X-CSRF-Token": sup.csrf}).json()[
        "dismissed"
    ]
    agent = as_role("agent")
    [marked] = [
        m for m in agent.get(f"/api/v1/conversations/{cid}/messages").json()["items"] if m["dismissed_at"]
    ]
    assert marked["dismissed_by"] == "王五"
    assert re.search(r"已标记无需回复 \d\d-\d\d \d\d:\d\d · 王五", agent.get(f"/conversations/{cid}").text)
    # and 王五, who marked it, reads 你 (their own name was read as another 王五's)
    assert re.search(r"已标记无需回复 \d\d-\d\d \d\d:\d\d · 你<", sup.get(f"/conversations/{cid}").text)


def test_an_agent_cannot_dismiss_someone_elses_wait(as_role, new_waiting):
    agent = as_role("agent")
    cid = new_waiting("zhaoliu")
    r = agent.post(f"/api/v1/conversations/{cid}/dismiss", headers={"X-CSRF-Token": agent.csrf})
    assert r.status_code == 404
    assert agent.post(f"/conversations/{cid}/dismiss", data={"csrf_token": agent.csrf}).status_code == 404
    assert as_role("admin").get(f"/api/v1/conversations/{cid}").json()["waiting"] is True


def test_a_member_who_left_the_corp_reads_no_more_chats_with_the_session_they_had(
    siyu, as_role, db, world, new_waiting
):
    from siyu.tenancy import service as tenancy
    from siyu.tenancy.models import Staff
    from tests.web.conftest import PASSWORD, login

    userid = f"leaver{uuid.uuid4().hex[:6]}"
    with db.tenant_session(world.a.id) as s:
        s.add(Staff(userid=userid, name="周九", departments=[4], main_department=4))
        s.flush()
        tenancy.add_person(s, userid, "周九", "agent", PASSWORD, userid)
    cid = new_waiting(userid)
    leaver = login(siyu, userid)  # signed in while still with the corp
    try:
        assert leaver.get(f"/api/v1/conversations/{cid}").status_code == 200
        with db.tenant_session(world.a.id) as s:  # then they leave: the staff sync marks them so
            s.scalar(select(Staff).where(Staff.userid == userid)).active = False
        assert leaver.get(f"/api/v1/conversations/{cid}").status_code == 401
        assert leaver.get("/api/v1/conversations").status_code == 401
        assert leaver.get(f"/conversations/{cid}").status_code == 303  # to the login page
        r = leaver.post(f"/api/v1/conversations/{cid}/dismiss", headers={"X-CSRF-Token": leaver.csrf})
        assert r.status_code == 401
    finally:
        leaver.close()
    assert as_role("admin").get(f"/api/v1/conversations/{cid}").json()["waiting"] is True


def test_a_button_pressed_after_the_session_ended_leads_back_to_its_page_once_signed_in(
    siyu, as_role, world, new_waiting
):
    from urllib.parse import parse_qs, urlsplit

    import httpx

    from tests.web.conftest import _CSRF_FIELD, PASSWORD

    cid = new_waiting()
    chat, board = f"{siyu}/conversations/{cid}", f"{siyu}/sla"
    with httpx.Client(base_url=siyu, timeout=10) as browser:  # signed out meanwhile (another tab)
        for action, data, page, told in (
            (
                f"/conversations/{cid}/dismiss",
                {"msgid": "m1"},
                chat,
                "登录已过期，无需回复的标记没有保存，请再点一次。",
            ),
            (
                f"/conversations/{cid}/snooze",
                {"minutes": "15", "next": "/sla"},
                board,
                "登录已过期，暂缓提醒没有保存，请再点一次。",
            ),
            (
                "/staff/sync",
                {},
                f"{siyu}/conversations",
                "登录已过期，刚才提交的内容没有保存，请再提交一次。",
            ),
        ):
            r = browser.post(action, data=data, headers={"referer": page})
            assert r.status_code == 303 and r.headers["location"].startswith("/login?")
            back = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
            login_page = browser.get(r.headers["location"]).text
            assert told in login_page  # before signing in, and on the page after: nothing was saved
            form = _CSRF_FIELD.search(login_page).group(1)
            signed = browser.post(
                "/login",
                data={
                    "login": world.a.logins["agent"],
                    "password": PASSWORD,
                    "csrf_token": form,
                    "next": back,
                },
            )
            landed = browser.get(signed.headers["location"])
            assert landed.status_code == 200, landed.text  # the page again, not "Method Not Allowed"
            assert str(landed.url) == page
            assert told in landed.text
            assert told not in browser.get(page).text  # said once
            browser.cookies.clear()
        r = browser.post("/logout", headers={"referer": chat})  # signing out twice loses nothing
        assert r.status_code == 303 and "登录已过期" not in browser.get(r.headers["location"]).text
    assert (
        as_role("admin").get(f"/api/v1/conversations/{cid}").json()["waiting"] is True
    )  # nothing done unseen


def test_openapi_lists_the_routes(as_role):
    paths = as_role("admin").get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}",
        "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/conversations/{conversation_id}/dismiss",
        "/api/v1/messages/search",
    ):
        assert path in paths
    assert not any(p.startswith("/conversations") for p in paths)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 秒"),
        (59, "59 秒"),
        (192, "3 分 12 秒"),
        (3600, "1 小时"),
        (3900, "1 小时 5 分"),
        (90000, "1 天 1 小时"),
    ],
)
def test_wait_text(seconds, text):
    assert wait_text(seconds) == text


def test_every_page_tells_the_agent_how_many_customers_wait(as_role, chats):
    agent = as_role("agent")
    listed = re.search(r"(\d+) 位客户等待回复</small>", agent.get("/conversations").text)
    assert listed and int(listed[1]) >= 2
    for path in ("/", "/customers", "/sla"):
        html = agent.get(path).text
        badge = re.search(r'id="nav-waiting" title="(\d+) 位客户在等待回复">(\d+)<', html)
        assert badge and badge[1] == badge[2] == listed[1], path
    assert f"{listed[1]} 位客户在等待回复，去看看" in agent.get("/").text


def test_a_group_member_siyu_does_not_know_is_named_by_the_end_of_their_id(as_role, chats, db, world):
    arc = Archive()
    stranger = f"wmSTRANGER{arc.sfx}00000000000X{arc.sfx[:4]}"
    arc.text(stranger, "", "请问群里还有名额吗", 5, roomid=chats.room)
    store(db, world.a.id, arc.items)
    html = as_role("admin").get(f"/conversations/{chats.a['群聊']}").text
    assert f"未知联系人…{stranger[-4:]}" in html and stranger not in html  # not its 32 characters


def test_a_chat_whose_customer_deleted_the_agent_says_so(as_role, db, world):
    arc = Archive()
    ext = f"wm{arc.sfx}"
    with db.tenant_session(world.a.id) as s:
        customer = Customer(external_userid=ext, name="林女士")
        s.add(customer)
        s.flush()
        s.add(Follow(customer_id=customer.id, staff_userid="zhangsan", status="lost", ended_at=utcnow()))
    arc.text(ext, "zhangsan", "在吗", 30)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    admin = as_role("admin")
    html = admin.get(f"/conversations/{cid}").text  # its wait had just disappeared, unexplained
    assert 'id="contact-ended"' in html and "删除了张三" in html and "不会再有超时提醒" in html
    assert admin.get(f"/api/v1/conversations/{cid}").json()["contact_ended"]["status"] == "lost"
    still = chats_of(db, world)
    assert still is not None
    page = admin.get(f"/conversations/{still}")
    assert page.status_code == 200 and 'id="contact-ended"' not in page.text


def chats_of(db, world) -> int:
    """A conversation of a customer still in contact."""
    with db.tenant_session(world.a.id) as s:
        return s.scalar(
            select(Conversation.id)
            .join(
                Follow,
                (Follow.customer_id == Conversation.customer_id)
                & (Follow.staff_userid == Conversation.staff_userid),
            )
            .where(Follow.status == "active")
            .limit(1)
        )


def test_the_list_and_the_chat_quote_what_was_asked_after_the_greeting(as_role, db, world):
    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, "zhangsan", "在吗", 40)
    arc.text(ext, "zhangsan", f"报价单发我一下 {arc.sfx}", 30)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    agent = as_role("agent")
    line = f"“在吗 / 报价单发我一下 {arc.sfx}”"  # as the card says; it had been “在吗” alone
    assert line in agent.get(f"/conversations/{cid}").text
    assert agent.get(f"/api/v1/conversations/{cid}").json()["waiting_quote"] == line.strip("“”")


def test_the_board_and_the_chat_quote_the_start_of_a_long_first_question_before_the_nudges(
    as_role, db, world
):
    """A long first question then two short ones: the board and the chat quoted
    … / 还有一个问题：能开专票吗？ / 在吗？, a supervisor reading 在吗？ instead of the question."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    question = f"您好 {arc.sfx}，我想咨询一下贵公司的企业版套餐，我们公司有五十个人左右，需要开通客户管理"
    arc.text(ext, "zhangsan", question, 40)
    arc.text(ext, "zhangsan", "还有一个问题：能开专票吗？", 35)
    arc.text(ext, "zhangsan", "在吗？", 30)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    admin = as_role("admin")
    board = admin.get("/sla").text
    row = re.search(rf'<li class="cust conv" data-conversation="{cid}"[^>]*>.*?</li>', board, re.S)
    quote = re.search(r'<span class="line">“(.*?)”</span>', row[0])[1]
    assert quote.startswith(f"您好 {arc.sfx}，我想") and quote.endswith(
        " / 还有一个问题：能开专票吗？ / 在吗？"
    ), quote
    chat = admin.get(f"/conversations/{cid}").text
    quote = re.search(r'<span class="quote">“(.*?)”</span>', chat)[1]
    assert quote.startswith(f"您好 {arc.sfx}，我想") and quote.endswith(" / 在吗？"), quote


def test_a_customer_s_profile_and_chats_include_the_group_chats_they_wrote_in(as_role, chats, world):
    """王女士 asked in 张三's customer group as well as in her 1:1 chat: her profile, her chats
    (全部会话) and a search of her messages showed the 1:1 chat only, as if she had never said
    a word in the group."""
    wang, chen = world.a.customers["王女士"], world.a.customers["陈先生"]
    agent = as_role("agent")
    assert f'href="/conversations/{chats.a["群聊"]}"' in agent.get(f"/customers/{wang}").text

    def listed(who, customer_id: int) -> list[int]:
        r = who.get("/api/v1/conversations", params={"customer": customer_id})
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert listed(agent, wang) == [chats.a["王女士"], chats.a["群聊"]]  # waiting first, as always
    assert listed(as_role("admin"), chen) == [chats.a["陈先生"]]  # not in the group
    found = agent.get("/api/v1/messages/search", params={"q": "团购", "customer": wang}).json()["items"]
    assert [(h["message"]["text"], h["message"]["sender_name"]) for h in found] == [
        ("群里的团购价能便宜吗", "王女士")
    ]


def test_a_member_siyu_has_not_synced_yet_is_not_an_unknown_contact_in_a_group(as_role, chats, db, world):
    """A new member writes in the group before the staff sync knows them: their message is the
    staff's (on the staff side), named by their userid, not 未知联系人…, which says a customer."""
    arc = Archive()
    userid = f"newhire{arc.sfx}"
    arc.text(userid, "", "大家好，我是新来的客服", 4, roomid=chats.room)
    store(db, world.a.id, arc.items)
    r = as_role("admin").get(f"/api/v1/conversations/{chats.a['群聊']}/messages")
    (said,) = [m for m in r.json()["items"] if m["sender"] == userid]
    assert (said["direction"], said["sender_name"]) == ("out", userid)


def test_a_group_wecom_does_not_know_says_why_on_its_page_and_in_the_api(as_role, db, world):
    """A room WeCom's groupchat/get does not know stays 群聊 <roomid>: its page and the API say
    what WeCom answered and when, instead of leaving the admin to guess why it has no name."""
    from siyu.conversations import groups

    arc = Archive()
    room = f"wrUnknown{arc.sfx}"
    arc.text("zhangsan", "", "内部讨论：报价", 5, roomid=room)
    store(db, world.a.id, arc.items)
    why = "企业微信不认识这个客户群（40050）/ not a customer group"
    with db.tenant_session(world.a.id) as s:
        groups.record_unknown(s, room, why, utcnow())
        cid = s.scalar(select(Conversation.id).where(Conversation.roomid == room))
    admin = as_role("admin")
    told = admin.get(f"/api/v1/conversations/{cid}").json()
    assert told["title"] == f"群聊 {room}"
    assert (told["group"]["status"], told["group"]["problem"]) == ("unknown", why)
    page = admin.get(f"/conversations/{cid}").text
    assert 'id="group-unknown"' in page and "企业微信查不到这个群的名称和群主" in page and "40050" in page


def test_a_lost_session_notice_is_told_only_to_the_person_whose_session_ended(siyu, db, world, new_waiting):
    """王五's session ends and he presses 暂缓 on the board; then 张三 signs in on that browser
    and was told 暂缓提醒没有保存, about a press that was not his. Only 王五 is told."""
    from siyu.tenancy.models import WebSession
    from siyu.web.auth import SESSION_COOKIE, token_hash
    from tests.web.conftest import _CSRF_FIELD, PASSWORD, login

    cid = new_waiting()
    told = "登录已过期，暂缓提醒没有保存，请再点一次。"
    browser = login(siyu, world.a.logins["supervisor"])
    try:
        token = browser.cookies.get(SESSION_COOKIE)
        with db.tenant_session(world.a.id) as s:
            s.execute(
                update(WebSession)
                .where(WebSession.token_hash == token_hash(token))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        r = browser.post(
            f"/conversations/{cid}/snooze",
            data={"minutes": "15", "next": "/sla", "csrf_token": browser.csrf},
            headers={"referer": f"{siyu}/sla"},
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/login?")
        assert told in browser.get(r.headers["location"]).text  # said at the browser that pressed it

        def sign_in(role: str) -> str:
            form = _CSRF_FIELD.search(browser.get("/login").text).group(1)
            data = {"login": world.a.logins[role], "password": PASSWORD, "csrf_token": form, "next": "/sla"}
            signed = browser.post("/login", data=data)
            return browser.get(signed.headers["location"]).text

        assert told not in sign_in("agent")  # 张三 signs in next: not his
        browser.post("/logout", data={"csrf_token": browser.get("/api/v1/me").json()["csrf_token"]})
        assert told in sign_in("supervisor")  # 王五, once back
        assert told not in browser.get("/sla").text  # said once
    finally:
        browser.close()


def test_the_boards_waiting_rows_name_the_customer_with_the_member_s_remark(as_role, remarked):
    """The chat and the list read 郑女士（备注：郑姐…）; the board's row for the same wait read
    郑女士 alone, and its API gave no remark."""
    sfx = uuid.uuid4().hex[:4]
    zheng, wu = f"郑女士{sfx}", f"吴先生{sfx}"
    made = remarked({zheng: TYPED_REMARK, wu: ""})
    for role in ("agent", "supervisor"):
        board = as_role(role).get("/sla").text
        names = {}
        for name, (_, cid) in made.items():
            row = re.search(
                rf'data-conversation="{cid}".*?<span class="name">(.*?)<span class="wait"', board, re.S
            )
            assert row, (role, name)
            names[name] = _text(row[1]).strip()
        assert names == {zheng: f"{zheng}（备注：{SHOWN_REMARK}）", wu: wu}, role
        assert "<i>报价" not in board
    rows = {r["conversation_id"]: r for r in as_role("agent").get("/api/v1/sla/board").json()["waiting"]}
    assert rows[made[zheng][1]]["remark"] == SHOWN_REMARK and rows[made[wu][1]]["remark"] is None


def test_the_boards_snooze_and_no_reply_banners_name_the_customer_as_the_row_did(as_role, remarked):
    """The row read 郑女士（备注：郑姐…）; its 暂缓 and 标记无需回复 then said 已暂缓 郑女士 的提醒至 …
    and 已将 郑女士 的消息标记为无需回复, the name the agent's phone does not list the chat by."""
    sfx = uuid.uuid4().hex[:4]
    zheng, wu = f"郑女士{sfx}", f"吴先生{sfx}"
    made = remarked({zheng: TYPED_REMARK, wu: ""})
    agent = as_role("agent")

    def banner(cid: int, action: str, data: dict) -> str:
        """What the board says once the row's form is sent, as the browser sends it."""
        row = re.search(rf'data-conversation="{cid}".*?</li>', agent.get("/sla").text, re.S)[0]
        form = re.search(rf'action="/conversations/{cid}/{action}"[^>]*>(.*?)</form>', row, re.S)[1]
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
        r = agent.post(f"/conversations/{cid}/{action}", data={**fields, **data})
        assert r.status_code == 303, r.text
        page = agent.get(r.headers["location"].partition("#")[0]).text
        return _text(re.search(r'role="status" id="done">(.*?)</p>', page, re.S)[1])

    for name, named in ((zheng, f"{zheng}（备注：{SHOWN_REMARK}）"), (wu, wu)):
        cid = made[name][1]
        said = banner(cid, "snooze", {"minutes": "15"})
        assert said.startswith(f"已暂缓 {named} 的提醒至 "), said
        said = banner(cid, "dismiss", {})
        assert said == f"已将 {named} 的消息标记为无需回复。", said


def _asked_in_a_group(db, world, chats) -> tuple[int, str]:
    """张三's customer group 团购群 where 王女士 asks a question nobody answered: (its id, room)."""
    arc = Archive()
    room = f"wrGone{arc.sfx}"
    wang = chats.ext["王女士"]
    arc.text("zhangsan", "", "欢迎进群", 120, roomid=room)
    arc.text(wang, "", f"团购价什么时候开始？{arc.sfx}", 60, roomid=room)
    store(db, world.a.id, arc.items)
    joined = arc.now_ms // 1000 - 300  # (WeCom's listing gives each member's join_time)
    members = [{"userid": "zhangsan", "type": 1}, {"userid": wang, "type": 2, "join_time": joined}]
    with db.tenant_session(world.a.id) as s:
        groups.record(
            s,
            {"chat_id": room, "name": f"团购群{arc.sfx}", "owner": "zhangsan", "member_list": members},
            utcnow(),
        )
        cid = s.scalar(select(Conversation.id).where(Conversation.roomid == room))
    return cid, room


def test_a_dismissed_group_no_longer_says_a_customer_waits_for_a_reply_there(as_role, chats, db, world):
    """王女士 asked in 张三's customer group, then the group was dismissed (WeCom's
    change_external_chat dismiss). Nobody can answer there any more, and a group's wait has no
    无需回复 to clear it: yet the group stays listed under 群内有客户等待回复 for good, counted
    in the list's header and the board's link, its page saying 已解散 above 请在企业微信的群里回复
    (as a 1:1 chat's wait closes when the two stop being contacts or archiving is declined)."""
    cid, room = _asked_in_a_group(db, world, chats)
    agent = as_role("agent")
    assert agent.get(f"/api/v1/conversations/{cid}").json()["group_wait"] is not None  # shown while it lives

    with db.tenant_session(world.a.id) as s:  # what the change_external_chat dismiss event records
        groups.record_dismissed(s, room, utcnow())

    got = agent.get(f"/api/v1/conversations/{cid}").json()
    assert got["group"]["status"] == "dismissed"
    assert got["group_wait"] is None, f"a dismissed group still owes a reply: {got['group_wait']}"
    listed = agent.get("/api/v1/conversations", params={"group_waiting": 1, "per_page": 100}).json()
    assert cid not in [c["id"] for c in listed["items"]]
    page = agent.get(f"/conversations/{cid}").text
    assert "已解散" in page and "请在企业微信的群里回复" not in page


# ---------------------------------------------------------------- shared links


def _send_typed(arc: Archive, sender: str, to: str, msgtype: str, payload: dict, ago: float = 10) -> str:
    """A message of any type in the archive's shape (REFERENCE 11.3)."""
    arc.seq += 1
    msgid = f"h{arc.seq}-{arc.sfx}"
    message = {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": [to],
        "roomid": "",
        "msgtime": arc.now_ms - int(ago * 1000),
        "msgtype": msgtype,
        **payload,
    }
    arc.items.append(Item(arc.seq, msgid, message))
    return msgid


def _chat_with(db, tenant_id: int, ext: str) -> int:
    with db.tenant_session(tenant_id) as s:
        return s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))


def _message_item(page: str, message_id: int) -> str:
    """The chat page's item of one message: its bubble, and what goes with it."""
    found = re.search(rf'<li class="msg[^"]*" id="m{message_id}"[^>]*>(.*?)</li>', page, re.S)
    assert found, f"message {message_id} is not on the chat page"
    return found.group(1)


@pytest.mark.parametrize(
    ("msgtype", "payload", "url"),
    [
        (
            "link",
            {"link": {"title": "夏季新款连衣裙", "description": "限时 5 折",
                      "link_url": "https://item.example.com/item.htm?id=6453&sku=2",
                      "image_url": "https://img.example.com/a.jpg"}},
            "https://item.example.com/item.htm?id=6453&sku=2",
        ),
        (
            "docmsg",
            {"doc": {"title": "售后登记表", "link_url": "https://doc.weixin.qq.com/sheet/e3_AbCd",
                     "doc_creator": "wmCustomer"}},
            "https://doc.weixin.qq.com/sheet/e3_AbCd",
        ),
    ],
)  # fmt: skip
def test_a_link_the_customer_shares_can_be_opened_from_the_chat(db, world, as_role, msgtype, payload, url):
    """A customer shares a link card (a product page) or an online document: WeCom's payload
    carries its address (link_url, REFERENCE 11.3). The chat showed the card's title alone,
    [链接] 夏季新款连衣裙, and neither the page nor the API gave the address: the agent could not
    open what the customer asked about, though a typed http(s) address is a link."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    msgid = _send_typed(arc, ext, "zhangsan", msgtype, payload)
    store(db, world.a.id, arc.items)
    chat = _chat_with(db, world.a.id, ext)
    admin = as_role("admin")

    r = admin.get(f"/api/v1/conversations/{chat}/messages")
    assert r.status_code == 200, r.text
    item = next(m for m in r.json()["items"] if m["msgid"] == msgid)
    page = admin.get(f"/conversations/{chat}")
    assert page.status_code == 200, page.text
    shown = _message_item(page.text, item["id"])
    hrefs = [html.unescape(h) for h in re.findall(r'<a[^>]* href="([^"]+)"', shown)]
    bubble = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", shown)).strip()
    assert url in hrefs, f"the chat shows {bubble!r}: no link to {url}"
    assert url in str(item), f"the API gives {item['text']!r} and no address"


def _pending_due(db, world, cid):
    with db.tenant_session(world.a.id) as s:
        return s.scalar(
            select(SlaEscalation.due_at)
            .where(SlaEscalation.conversation_id == cid, SlaEscalation.status == "pending")
            .order_by(SlaEscalation.due_at)
        )


def test_shortening_ones_own_snooze_answers_the_step_it_moved(as_role, new_waiting, db, world):
    """张三 snoozes 30 min, the admin 60 min, then the admin thinks better of it: 15 min. The
    admin's hour goes, 张三's 30 minutes hold again, and the pending step comes back from +60 to
    +30: it moved. The answer said moved_steps 0 (and `kept_until`, "nothing changes"), so a
    script reading it believes its call changed nothing while the reminders now come 30 minutes
    earlier than before it."""
    cid = new_waiting("zhangsan")
    agent, admin = as_role("agent"), as_role("admin")
    url = f"/api/v1/conversations/{cid}/snooze"

    def snooze(client, minutes):
        r = client.post(url, json={"minutes": minutes}, headers={"X-CSRF-Token": client.csrf})
        assert r.status_code == 200, r.text
        return r.json()

    snooze(agent, 30)
    assert snooze(admin, 60)["moved_steps"] == 1
    before = _pending_due(db, world, cid)
    said = snooze(admin, 15)
    after = _pending_due(db, world, cid)
    assert after < before  # the step did come back (from +60 to 张三's +30)
    assert said["moved_steps"] == 1, said
