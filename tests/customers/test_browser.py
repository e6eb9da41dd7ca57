"""In a real browser: a customer who scanned a channel's code in WeCom (the emulator) is
found by the staff member who logs in to Siyu, with channel, tags and welcome on the timeline."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from siyu.tenancy.service import add_person
from tests.customers.test_acquisition import corp_tag, follow_of, make_channel
from tests.support.stack import wait_for
from tests.web.conftest import (  # noqa: F401 - fixtures
    CHROMIUM,
    browser,
    browser_context_args,
    browser_type,
    browser_type_launch_args,
    launch_browser,
    playwright,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing")


def test_log_in_and_find_the_customer_who_just_scanned(page, stack):
    tag_id = corp_tag(stack, "官网")
    channel = make_channel(stack, name="官网首页", tag_ids=[tag_id])
    ext = stack.scan(channel.config_id, "欧阳女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    wait_for(lambda: stack.welcome_messages())
    login = f"zhangsan-{stack.slug}"
    with stack.session() as s:
        add_person(s, login, "张三", "agent", "pw-browser-1", staff_userid="zhangsan")

    page.goto(f"{stack.siyu}/login")
    page.get_by_label("账号").fill(login)
    page.get_by_label("密码").fill("pw-browser-1")
    page.get_by_role("button", name="登录").click()
    page.goto(f"{stack.siyu}/customers")
    page.get_by_label("搜索").fill("欧阳")
    page.get_by_role("button", name="搜索").click()
    items = page.locator("#customers li")
    expect(items).to_have_count(1)
    items.first.click()
    expect(page.get_by_role("heading", name="欧阳女士")).to_be_visible()
    expect(page.get_by_text("通过渠道「官网首页」添加")).to_be_visible()
    expect(page.get_by_text("官网").first).to_be_visible()
