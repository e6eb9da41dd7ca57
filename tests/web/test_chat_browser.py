"""An open chat in a real browser (Debian's Chromium, phone viewport): it opens at the newest
message when WeCom's OAuth leaves #wechat_redirect in the address, and it shows what the
archive brings in meanwhile without a reload by hand."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete, select

from siyu.conversations.models import Conversation
from siyu.customers.models import Customer, Follow, TimelineEvent
from siyu.tenancy.models import Tenant
from siyu.web import templating
from tests.conversations.conftest import Archive, store
from tests.web.conftest import CHROMIUM, _add, fits_the_phone, remove_customers, sign_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing")
# 王五's chats, opened by the admin: the other tests count 张三's and 李四's answers of the day
STAFF = "wangwu"


def long_chat(db, world) -> tuple[str, int]:
    """A customer of 王五's who asked 30 questions (more than a phone screen): their id and the chat's."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    for i in range(30):
        arc.text(ext, STAFF, f"第 {i} 个问题：这款还有货吗？", 600 - i)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        return ext, s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))


def archived(db, world, sender: str, to: str, text: str) -> None:
    """One more message, as the next pull of the archive brings it."""
    arc = Archive()
    arc.text(sender, to, text, 0.5)
    store(db, world.a.id, arc.items)


def test_an_open_chat_starts_at_the_newest_message_and_follows_the_archive(page, siyu, world, db):
    ext, cid = long_chat(db, world)
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.clock.install()
    page.goto(f"{siyu}/conversations/{cid}#wechat_redirect")  # where a pushed card's link lands
    expect(page.locator(".waitbar")).to_be_visible()
    expect(page.locator("#messages > li:last-child")).to_be_in_viewport()
    fits_the_phone(page)

    archived(db, world, STAFF, ext, "有的，今天下单明天到")  # answered on his phone
    page.clock.fast_forward(16_000)
    expect(page.get_by_text("有的，今天下单明天到")).to_be_visible()
    expect(page.locator(".waitbar")).to_have_count(0)
    expect(page.locator("#messages > li:last-child")).to_be_in_viewport()  # not where it was before
    archived(db, world, ext, STAFF, "那我下单了")  # and the next change is followed too
    page.clock.fast_forward(16_000)
    expect(page.get_by_text("那我下单了")).to_be_in_viewport()


def test_a_chat_read_higher_up_offers_the_reload_instead(page, siyu, world, db):
    ext, cid = long_chat(db, world)
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.clock.install()
    page.goto(f"{siyu}/conversations/{cid}")
    page.evaluate("window.scrollTo(0, 0)")  # reading the first questions
    archived(db, world, ext, STAFF, "还在吗？")
    page.clock.fast_forward(16_000)
    expect(page.locator("#live-notice")).to_be_in_viewport()  # in sight where the agent reads
    assert page.evaluate("window.scrollY") == 0  # not moved
    expect(page.get_by_text("还在吗？")).to_have_count(0)


def test_a_room_known_only_by_its_long_id_fits_the_phone(page, siyu, world, db):
    arc = Archive()
    room = f"wrUNKNOWNROOM{arc.sfx}{'x' * 30}"
    arc.text(STAFF, "", "大家好", 5, roomid=room)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.roomid == room))
    sign_in(page, siyu, world.a.logins["admin"], f"/conversations/{cid}")
    expect(page.get_by_role("heading", name=f"群聊 {room}")).to_be_visible()
    fits_the_phone(page)  # the title had made the page 507 px wide


def test_the_list_keeps_a_search_typed_and_not_yet_sent(page, siyu, world):
    sign_in(page, siyu, world.a.logins["admin"], "/conversations")
    page.clock.install()
    page.goto(f"{siyu}/conversations")
    page.get_by_role("searchbox").fill("发货")
    page.locator("h1").click()  # the phone's keyboard closed: the box loses the focus
    page.clock.fast_forward(31_000)
    expect(page.get_by_role("searchbox")).to_have_value("发货")  # the reload had emptied it


def test_wait_counters_keep_ticking_on_the_chat_the_list_and_the_board(page, siyu, world, db):
    ext, cid = long_chat(db, world)  # waiting since its first question, 10 minutes ago
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.clock.install()
    for path, counter, prefix in (
        (f"/conversations/{cid}", ".waitbar [data-waited]", "等待 "),
        (f"/conversations?staff={STAFF}", f"a[href='/conversations/{cid}'] [data-waited]", "等待 "),
        ("/sla", f"li[data-conversation='{cid}'] [data-waited]", ""),
    ):
        page.goto(f"{siyu}{path}")
        shown = page.locator(counter)
        before = shown.inner_text()
        page.clock.fast_forward(20_000)  # short of the list's and the board's own reload
        after = shown.inner_text()
        assert after != before, path
        assert re.fullmatch(rf"{prefix}1\d 分 \d+ 秒", after), after  # in the words the server writes


def test_an_open_chat_shows_a_recall_without_a_reload_by_hand(page, siyu, world, db):
    arc = Archive()
    ext = f"wm{arc.sfx}"
    question = arc.text(ext, STAFF, "我的手机号是13800001234", 120)
    arc.text(STAFF, ext, "收到，稍后联系您", 90)  # answered: the recall closes no wait
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.clock.install()
    page.goto(f"{siyu}/conversations/{cid}")
    later = Archive()
    later.recall(ext, STAFF, question, 30)
    store(db, world.a.id, later.items)
    page.clock.fast_forward(16_000)
    expect(page.locator("#messages").get_by_text("已撤回")).to_be_visible()


def test_the_home_page_follows_who_waits(page, siyu, world, db):
    """The home page is where the app opens in WeCom: left open, its 'N 位客户在等待回复'
    and the menu's count follow the customers who start waiting, as the list does."""
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.clock.install()
    page.goto(f"{siyu}/")
    alert = page.locator("#home-waiting")
    before = int(re.match(r"\d+", alert.inner_text()).group()) if alert.count() else 0
    arc = Archive()
    ext = f"wm{arc.sfx}"
    arc.text(ext, STAFF, "请问今天能发货吗？", 5)
    store(db, world.a.id, arc.items)
    # 30 s pass on the page; on the server, the 15 s the menu's count is kept have passed too
    templating._waiting_seen.clear()
    page.clock.fast_forward(31_000)
    expect(alert).to_contain_text(f"{before + 1} 位客户在等待回复")
    expect(page.locator("#nav-waiting")).to_have_text(str(before + 1))
    archived(db, world, STAFF, ext, "今天就发")  # answered: no wait left at the top of the lists


def test_the_wait_on_a_customers_profile_keeps_ticking(page, siyu, world, db):
    """The profile lists the customer's chats, a waiting one with how long: that figure ticks
    as on the chat, the list and the board, rather than standing still at the page's load."""
    customer_id = world.a.customers["刘总"]  # writing to 王五 too, whose chats these tests open
    with db.tenant_session(world.a.id) as s:
        ext = s.get(Customer, customer_id).external_userid
    arc = Archive()
    arc.text(ext, STAFF, "请问有现货吗？", 600)
    store(db, world.a.id, arc.items)
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.clock.install()
    page.goto(f"{siyu}/customers/{customer_id}")
    shown = page.locator("#conversations [data-waited]")
    before = shown.inner_text()
    page.clock.fast_forward(20_000)
    after = shown.inner_text()
    assert after != before and re.fullmatch(r"等待 1\d 分 \d+ 秒", after), (before, after)
    archived(db, world, STAFF, ext, "有的")  # answered: no wait left at the top of the lists


def test_a_long_name_and_a_long_question_fit_a_customers_profile(page, siyu, world, db):
    """A customer named in latin letters with no break, waiting on a question of a thousand
    characters: their profile ran 438 px wide on a 390 px phone, and its chat row quoted the
    whole question, a screen and more, where the conversation list keeps it to one line."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    name = "上海某某连锁超市采购部王先生ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    with db.tenant_session(world.a.id) as s:
        customer_id = _add(s, s.get(Tenant, world.a.id), ext, name, STAFF, int(time.time()) - 900)
    try:
        arc.text(ext, STAFF, "很长的消息" * 200, 300)
        store(db, world.a.id, arc.items)
        sign_in(page, siyu, world.a.logins["admin"], f"/customers/{customer_id}")
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        fits_the_phone(page)
        row = page.locator("#conversations li").first
        expect(row).to_contain_text("等待")
        assert row.bounding_box()["height"] < 80, row.bounding_box()
        archived(db, world, STAFF, ext, "有的")  # answered: no wait left at the top of the lists
    finally:  # the customer lists' tests count the world's customers (王五's are the supervisor's)
        with db.tenant_session(world.a.id) as s:
            for table in (TimelineEvent, Follow):
                s.execute(delete(table).where(table.customer_id == customer_id))
            s.execute(delete(Customer).where(Customer.id == customer_id))


def test_a_long_latin_name_fits_the_waiting_list_and_the_chat(page, siyu, world, db):
    """A name in latin letters with no break (62 characters) ran the waiting list, filtered to
    the customer, 594 px wide on a 390 px phone (its row's title and the 客户 chip), and the chat
    441 px (the sender line over each of their messages); the profile already wrapped it."""
    arc = Archive()
    ext = f"wm{arc.sfx}"
    name = "Shanghai" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 2 + "Li"
    assert len(name) == 62 and " " not in name
    with db.tenant_session(world.a.id) as s:
        customer_id = _add(s, s.get(Tenant, world.a.id), ext, name, STAFF, int(time.time()) - 900)
    try:
        arc.text(ext, STAFF, "请问这个还有货吗", 300)
        store(db, world.a.id, arc.items)
        with db.tenant_session(world.a.id) as s:
            cid = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
        sign_in(page, siyu, world.a.logins["admin"], "/")
        page.goto(f"{siyu}/conversations?waiting=1&customer={customer_id}")
        expect(page.locator("#conversations li")).to_have_count(1)
        expect(page.locator(".chip", has_text="客户：")).to_contain_text(name)
        fits_the_phone(page)
        page.goto(f"{siyu}/conversations/{cid}")
        expect(page.locator("#messages .msg.in .who").first).to_contain_text(name)
        fits_the_phone(page)
        archived(db, world, STAFF, ext, "有的")  # answered: no wait left at the top of the lists
    finally:  # the customer lists' tests count the world's customers
        with db.tenant_session(world.a.id) as s:
            for table in (TimelineEvent, Follow):
                s.execute(delete(table).where(table.customer_id == customer_id))
            s.execute(delete(Customer).where(Customer.id == customer_id))


@pytest.mark.parametrize("screen", [{"width": 390, "height": 844}, {"width": 1280, "height": 800}])
def test_the_wait_bar_stays_in_sight_in_a_long_chat(page, siyu, world, db, screen):
    """A long chat opens at its newest message, which had scrolled the red wait bar (the
    question, 标记无需回复, 暂缓提醒) out of sight: the agent who came from a card had to scroll
    up to act. It stays in sight under the page's header, wherever the agent reads."""
    page.set_viewport_size(screen)
    _, cid = long_chat(db, world)
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.goto(f"{siyu}/conversations/{cid}#wechat_redirect")
    bar = page.locator(".waitbar")
    expect(page.locator("#messages > li:last-child")).to_be_in_viewport()
    for where in ("newest", "middle"):
        if where == "middle":
            page.locator("#messages > li").nth(15).scroll_into_view_if_needed()
        expect(bar).to_be_in_viewport()
        expect(bar.get_by_role("button", name="标记无需回复")).to_be_in_viewport()
        header = page.locator("header.top").bounding_box()
        box = bar.bounding_box()
        assert box["y"] >= header["y"] + header["height"] - 1, (box, header)  # not under the header
    if screen["width"] == 390:
        fits_the_phone(page)


def test_what_the_wait_bar_s_buttons_did_is_said_in_sight_in_a_long_chat(page, siyu, world, db):
    """A long chat comes back at its newest message after 标记无需回复 or 暂缓, which left what
    the button did at the top of the page, out of sight: refused because the customer wrote
    meanwhile, the agent saw the same red bar again and nothing else, as if the tap were lost."""
    ext, cid = long_chat(db, world)
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.goto(f"{siyu}/conversations/{cid}")
    archived(db, world, ext, STAFF, "还在吗？")  # after the page was drawn
    page.on("dialog", lambda dialog: dialog.accept())  # 标记为无需回复？
    page.get_by_role("button", name="标记无需回复").click()
    done = page.locator("#done")
    expect(done).to_contain_text("又发了消息「还在吗？」")
    expect(done).to_be_in_viewport()
    expect(page.get_by_text("还在吗？", exact=True)).to_be_in_viewport()  # the message it speaks of
    page.get_by_role("button", name="标记无需回复").click()
    expect(done).to_have_text("已标记为无需回复。")
    expect(done).to_be_in_viewport()
    fits_the_phone(page)


def test_the_wait_bar_s_buttons_are_thumb_sized_and_no_reply_needed_asks_first(page, siyu, world, db):
    """On a phone the wait bar's buttons were 32 px tall, 标记无需回复 right beside the 暂缓 ones,
    and it went at a tap: a thumb meant for 暂缓 ended the wait of a real question. Each is 44 px
    tall (the size a finger hits), and 标记无需回复 asks first; declined, the customer still waits."""
    _, cid = long_chat(db, world)
    sign_in(page, siyu, world.a.logins["admin"], "/")
    page.goto(f"{siyu}/conversations/{cid}")
    bar = page.locator(".waitbar")
    buttons = bar.get_by_role("button")
    assert buttons.count() >= 2  # 标记无需回复 and the 暂缓 ones
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box["height"] >= 44, (buttons.nth(i).inner_text(), box)
    fits_the_phone(page)
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    bar.get_by_role("button", name="标记无需回复").click()
    expect(bar).to_be_visible()
    assert asked and "不能撤销" in asked[0], asked
    expect(page.locator("#done")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    bar.get_by_role("button", name="标记无需回复").click()
    expect(page.locator("#done")).to_have_text("已标记为无需回复。")
    expect(page.locator(".waitbar")).to_have_count(0)


@pytest.fixture
def blank_nickname(db, world):
    """A customer whose WeChat nickname is the Braille blank ⠀ (shows nothing; Siyu stores it as
    ""), who asks 张三 something: (customer id, conversation id, external userid)."""
    ext = "wmBlank" + uuid.uuid4().hex[:10]
    with db.tenant_session(world.a.id) as s:
        cid = _add(s, s.get(Tenant, world.a.id), ext, "\u2800", "zhangsan", int(time.time()) - 600)
    arc = Archive()
    arc.text(ext, "zhangsan", "请问还有货吗", 120)
    store(db, world.a.id, arc.items)
    with db.tenant_session(world.a.id) as s:
        conv = s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))
    yield cid, conv, ext
    remove_customers(db, world.a.id, [cid])


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing")
def test_a_customer_with_a_blank_nickname_is_not_named_by_their_wecom_id(page, siyu, world, blank_nickname):
    """The customer page calls them （未命名）; the chat, its wait bar and the conversation list
    named them by WeCom's external userid (wmBlank…), an id the agent finds nowhere in WeCom,
    and told them 在企业微信里回复 wmBlank…."""
    cid, conv, ext = blank_nickname
    sign_in(page, siyu, world.a.logins["agent"], f"/customers/{cid}")
    expect(page.get_by_role("heading", level=1)).to_have_text("（未命名）")
    page.goto(f"{siyu}/conversations/{conv}")
    expect(page.locator(".waitbar")).to_be_visible()
    assert ext not in page.locator("h1").inner_text()
    assert ext not in page.locator(".waitbar").inner_text()
    page.goto(f"{siyu}/conversations?waiting=1")
    row = page.locator(f'#conversations a[href="/conversations/{conv}"]')
    expect(row).to_have_count(1)
    assert ext not in row.inner_text()
