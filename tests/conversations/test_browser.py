"""In a real browser (Debian's Chromium, phone viewport): a link pushed to an agent in WeCom
opens the conversation signed in; the chat fits the phone; 无需回复 stops the wait."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import expect

# Playwright for this module only, as in the web browser tests (see tests/web/conftest.py why).
from tests.web.conftest import (  # noqa: F401 - fixtures
    CHROMIUM,
    PASSWORD,
    browser,
    browser_type,
    launch_browser,
    playwright,
    wecom_page,
)
from tests.web.conftest import fits_the_phone as _fits_the_phone

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing: apt-get install -y --no-install-recommends chromium "
    "fonts-liberation fonts-wqy-microhei",
)


def test_a_pushed_link_opens_the_conversation_and_dismiss_stops_the_wait(
    wecom_page,  # noqa: F811 - the fixture
    siyu,
    world,
    new_waiting,
):
    page = wecom_page
    cid = new_waiting("zhangsan", "请问这个型号还有货吗？我想今天下单，麻烦尽快回复一下，谢谢！" * 3)
    link = f"{siyu}/auth/wecom/{world.a.slug}?next=/conversations/{cid}"
    corp_id = world.a.corp["corp_id"]
    page.goto(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/zhangsan?next={quote(link, safe='')}")
    expect(page).to_have_url(f"{siyu}/conversations/{cid}#wechat_redirect")
    expect(page.locator(".waitbar .wait")).to_contain_text("等待")
    expect(page.locator("#messages .msg.in .bubble").first).to_contain_text("请问这个型号还有货吗")
    _fits_the_phone(page)
    page.once("dialog", lambda dialog: dialog.accept())  # 标记为无需回复？
    page.get_by_role("button", name="标记无需回复").click()
    expect(page.get_by_role("status")).to_contain_text("已标记为无需回复")
    expect(page.locator(".waitbar")).to_have_count(0)
    _fits_the_phone(page)


def test_waiting_list_and_search_on_a_phone(page, siyu, world, chats):
    page.goto(f"{siyu}/login?next=/conversations")
    page.get_by_label("账号").fill(world.a.logins["agent"])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{siyu}/conversations")
    first = page.locator("#conversations li").first
    expect(first).to_contain_text("孙小姐")
    expect(first.locator(".wait")).to_contain_text("等待 2 小时")
    _fits_the_phone(page)
    page.get_by_label("搜索聊天内容").fill("便宜点")
    page.get_by_role("button", name="搜索").click()
    expect(page.locator("#hits li")).to_have_count(1)
    expect(page.locator("#hits mark")).to_have_text("便宜点")
    _fits_the_phone(page)
    page.locator("#hits li a").first.click()
    expect(page.get_by_role("heading", name="王女士")).to_be_visible()
    expect(page.locator(".msg.out .bubble").first).to_be_visible()
    _fits_the_phone(page)
    page.get_by_role("link", name="查看客户资料 ›").click()
    expect(page.get_by_role("heading", name="王女士")).to_be_visible()
    expect(page.locator("#conversations a.more")).to_have_attribute(
        "href", f"/conversations?customer={world.a.customers['王女士']}"
    )


def test_the_list_waits_to_reload_while_its_filters_are_open(page, siyu, world, chats):
    """The list reloads itself every 30 s to stay current, unless the user is busy with it. A
    choice left as the page drew it is no change (the list had counted its filters' 全部 as a
    choice made, and never reloaded), and a 筛选 fold the user opened is (it closed again
    under their finger)."""
    page.goto(f"{siyu}/login?next=/conversations")
    page.get_by_label("账号").fill(world.a.logins["agent"])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{siyu}/conversations")

    def busy_after_looking_away() -> bool:
        page.locator("h1").click()
        return page.evaluate("siyuBusy()")

    fold = page.get_by_text("筛选", exact=True)
    assert busy_after_looking_away() is False  # as the page came
    fold.click()
    assert busy_after_looking_away() is True  # the fold stays open
    fold.click()
    assert busy_after_looking_away() is False  # folded again
    fold.click()
    page.get_by_label("类型").select_option(label="群聊")  # a filter chosen, not yet sent
    fold.click()
    assert busy_after_looking_away() is True


def test_a_card_about_several_customers_opens_them_on_a_phone(page, siyu, world, db, new_waiting):
    """A merged card's link, signed in through WeCom: the card's customers under a heading that
    says so, the way to the whole waiting list, all within a 390 px phone."""
    from siyu.sla.tasks import conversation_link
    from tests.conversations.test_views import _card

    earlier = new_waiting("zhangsan", "上次问的那个还没回")
    _card(db, world, "zhangsan", [(earlier, "zhangsan")])
    own = new_waiting("zhangsan", "请问这个型号还有货吗？我想今天下单，麻烦尽快回复一下，谢谢！")
    colleagues = new_waiting("zhaoliu", "发票开好了吗")
    card = _card(db, world, "zhangsan", [(own, "zhangsan"), (colleagues, "zhaoliu")])
    rt = type("Rt", (), {"settings": type("S", (), {"public_url": siyu})})
    link = conversation_link(rt, world.a.slug, None, card)
    corp_id = world.a.corp["corp_id"]
    page.goto(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/zhangsan?next={quote(link, safe='')}")
    expect(page.locator("#card-heading")).to_have_text("这张提醒里的 2 位客户等待回复")
    expect(page.locator("#conversations li")).to_have_count(2)
    expect(page.locator(f'#conversations a[href="/conversations/{earlier}"]')).to_have_count(0)
    _fits_the_phone(page)
    page.get_by_role("link", name="查看全部等待回复的客户 ›").click()
    expect(page.locator(f'#conversations a[href="/conversations/{earlier}"]')).to_have_count(1)
    expect(page.locator("#card-heading")).to_have_count(0)
