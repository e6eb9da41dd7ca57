"""In a real browser (Debian's Chromium, phone viewport): sign in and find a customer; open a
link pushed to an agent in WeCom and land signed in on that customer."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.web.conftest import CHROMIUM, PASSWORD, fits_the_phone, sign_in

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing: apt-get install -y --no-install-recommends chromium "
    "fonts-liberation fonts-wqy-microhei",
)


def test_sign_in_and_find_a_customer(page, siyu, world):
    page.goto(f"{siyu}/customers")
    expect(page).to_have_url(f"{siyu}/login?next=%2Fcustomers")
    page.get_by_label("账号").fill(world.a.logins["agent"])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{siyu}/customers")
    expect(page.get_by_role("heading", name="客户")).to_be_visible()
    fits_the_phone(page)
    page.get_by_label("搜索").fill("13800001111")
    page.get_by_role("button", name="搜索").click()
    items = page.locator("#customers li")
    expect(items).to_have_count(1)
    items.first.click()
    expect(page.get_by_role("heading", name="王女士")).to_be_visible()
    expect(page.get_by_text("王姐-报价")).to_be_visible()
    expect(page.get_by_text("通过渠道「门店海报」添加")).to_be_visible()
    fits_the_phone(page)
    # Sign out through the header's form (it carries the CSRF token).
    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(f"{siyu}/login")
    # Back, on a shared computer or a phone passed round: the login page again, not the
    # customer's profile kept by the browser from before signing out
    page.go_back()
    expect(page).to_have_url(f"{siyu}/login?next=%2Fcustomers%2F{world.a.customers['王女士']}")
    expect(page.get_by_text("王姐-报价")).to_have_count(0)


def test_a_pushed_link_opens_signed_in_through_wecom_oauth(wecom_page, siyu, world):
    page = wecom_page
    cid = world.a.customers["王女士"]
    link = f"{siyu}/auth/wecom/{world.a.slug}?next=/customers/{cid}"
    # The emulator's way to say "this browser is signed in to WeCom as 张三", then the link.
    corp_id = world.a.corp["corp_id"]
    page.goto(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/zhangsan?next={quote(link, safe='')}")
    expect(page).to_have_url(f"{siyu}/customers/{cid}#wechat_redirect")
    expect(page.get_by_role("heading", name="王女士")).to_be_visible()
    expect(page.locator(".me .who")).to_contain_text("张三")
    fits_the_phone(page)


def test_channel_page_shows_the_qr_code(page, siyu, world):
    sign_in(page, siyu, world.a.logins["admin"], f"/channels/{world.a.channels['门店海报']}")
    qr = page.get_by_role("img", name="门店海报 的二维码")
    expect(qr).to_be_visible()
    # The browser loads the QR through Siyu's proxy: a real image, not a broken one.
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    expect(page.locator("#stats tbody tr")).to_have_count(30)
    fits_the_phone(page)
    for path in ("/setup", "/channels/new", "/staff", "/"):
        page.goto(f"{siyu}{path}")
        fits_the_phone(page)


def test_the_policy_form_on_a_phone_shows_whole_choices(page, siyu, world):
    sign_in(page, siyu, world.a.logins["admin"], "/sla/policy")
    expect(page.get_by_role("heading", name="提醒策略")).to_be_visible()
    fits_the_phone(page)
    # the admin's last menu item had been cut at the screen's edge, with nothing hinting at it
    box = page.get_by_role("navigation", name="主菜单").get_by_role("link", name="设置").bounding_box()
    assert box and box["x"] + box["width"] <= 390, box
    # a step's fields stack: 应用消息 / 负责成员 / 语音电话 were cut to 应用消 / 负责成 / 语音电
    widths = page.eval_on_selector_all(
        'select[name="step_action"], select[name="step_target"]',
        "els => els.map(e => e.getBoundingClientRect().width)",
    )
    assert widths and min(widths) >= 150, widths


def test_the_api_docs_page_works_without_a_way_out(page, siyu):
    """Swagger UI comes from Siyu itself: with every request off the machine refused, the docs
    page still lists the API's operations (it had loaded its script from jsDelivr)."""
    gone_out = []

    def only_siyu(route):
        if route.request.url.startswith(siyu):
            route.continue_()
        else:
            gone_out.append(route.request.url)
            route.abort()

    page.route("**/*", only_siyu)
    page.goto(f"{siyu}/api/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/me").first).to_be_visible()
    expect(page.get_by_role("heading", name="Siyu 私域 SCRM")).to_be_visible()
    assert gone_out == []


def test_what_saving_or_removing_a_department_policy_did_is_in_sight(page, siyu, world):
    """The page lands at the departments (#departments), far below the tenant's long policy
    form: the banner saying what happens to running waits sat at the page's top, out of sight
    on a phone (and on a desktop), so the admin never read it. Special dates likewise (#days)."""
    sign_in(page, siyu, world.a.logins["admin"], "/sla/policy/departments/4")
    page.get_by_role("button", name="添加部门策略").click()
    expect(page).to_have_url(f"{siyu}/sla/policy#departments")
    expect(page.get_by_role("status")).to_contain_text("部门策略已保存")
    expect(page.get_by_role("status")).to_be_in_viewport()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('#departments li[data-dept="4"]').get_by_role("button", name="删除").click()
    expect(page.get_by_role("status")).to_contain_text("正在等待的，已排好的下一步不变，之后各步按新策略")
    expect(page.get_by_role("status")).to_be_in_viewport()
    fits_the_phone(page)
    days = page.locator("#days form.inline")
    days.get_by_label("日期").fill("2031-05-06")
    days.get_by_label("备注").fill("公司年会")
    days.get_by_role("button", name="添加").click()
    expect(page.get_by_role("status")).to_contain_text("日期已保存")
    expect(page.get_by_role("status")).to_be_in_viewport()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#days li", has_text="2031-05-06").get_by_role("button", name="删除").click()
    expect(page.get_by_role("status")).to_contain_text("日期已删除")
    expect(page.get_by_role("status")).to_be_in_viewport()


def test_the_staff_pages_save_buttons_are_in_sight_on_a_desktop(page, siyu, world):
    """Each number's field took its cell's whole width and pushed 保存 past the table's edge:
    on a 1280 px screen only a sliver of it showed, the rest scrolled out of the table."""
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, siyu, world.a.logins["admin"], "/staff")
    expect(page.get_by_role("heading", name="成员")).to_be_visible()
    table = page.locator(".table-wrap").bounding_box()
    buttons = page.locator("#staff").get_by_role("button", name="保存")
    expect(buttons.first).to_be_visible()
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box and box["x"] + box["width"] <= table["x"] + table["width"], (box, table)
        field = page.locator("#staff td.call-phone").nth(i).locator("input[name=phone]").bounding_box()
        assert field and field["x"] + field["width"] <= box["x"], (field, box)  # side by side, whole


def test_on_a_phone_an_agent_sees_their_own_number_field_and_a_missing_number(page, siyu, world):
    """At 390 px the number column came fifth, past the table's edge: an agent's one thing to do
    on the page (their own number) and the red 未填写 flag were scrolled out of sight."""
    sign_in(page, siyu, world.a.logins["agent"], "/staff")
    expect(page.get_by_role("heading", name="成员")).to_be_visible()
    fits_the_phone(page)
    table = page.locator(".table-wrap").bounding_box()
    field = page.get_by_label("张三 接电话提醒的手机号")
    save = page.locator("#staff").get_by_role("button", name="保存")
    for shown in (field, save):
        box = shown.bounding_box()
        assert box and box["x"] + box["width"] <= table["x"] + table["width"], (box, table)
    expect(page.locator("#staff td.call-phone").first).to_be_in_viewport(ratio=1)


@pytest.fixture
def a_position(db, world):
    """张三 holds a position, as in the demo (销售顾问), for one test."""
    from sqlalchemy import update

    from siyu.tenancy.models import Staff

    def held(position: str) -> None:
        with db.tenant_session(world.a.id) as s:
            s.execute(update(Staff).where(Staff.userid == "zhangsan").values(position=position))

    held("销售顾问")
    yield
    held("")


def test_on_a_phone_a_members_department_and_role_break_between_them(page, siyu, world, a_position):
    """Under each name the department, position and role ran on as one line broken where the
    width ran out: 销售一部 · 销售顾问 · 私 / 域成员, a word torn in two. They break between the
    parts."""
    sign_in(page, siyu, world.a.logins["agent"], "/staff")
    expect(page.locator("#staff").get_by_text("销售顾问").first).to_be_visible()
    for width in range(320, 431, 10):  # phones from the smallest to the largest
        page.set_viewport_size({"width": width, "height": 844})
        lines = page.locator("#staff .under-name").evaluate_all(
            """smalls => smalls.map(el => {
                const tops = new Map(), walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
                for (let n = walk.nextNode(); n; n = walk.nextNode()) {
                    for (let i = 0; i < n.length; i++) {
                        const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
                        const top = Math.round(r.getBoundingClientRect().top);
                        tops.set(top, (tops.get(top) || "") + n.data[i]);
                    }
                }
                return [el.textContent, [...tops.values()]];
            })"""
        )
        assert lines
        for whole, shown in lines:
            parts = {p.strip() for p in whole.split("·")}
            for line in shown:
                assert {p.strip() for p in line.split("·") if p.strip()} <= parts, (width, whole, shown)


def test_the_channel_table_fits_the_phone_to_its_status_column(page, siyu, world, as_role):
    """Six short columns (渠道 with its 启用 badge under the name, 新增, 流失, 已删除, 净增, 跟进中):
    on a 390 px phone a channel named in five characters, as the demo's 售后服务卡, ran the table
    past its card, the 启用 badge cut at the edge with nothing hinting it scrolls. A name of one
    Latin word (Homepage2026Spring) did it again once 已删除 came: 跟进中 was cut at the edge."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    for name in ("售后服务卡", "Homepage2026Spring", "停用的WeChatOfficialAccount"):
        made = admin.post(
            "/api/v1/channels", json={"name": name, "staff_userids": ["zhangsan"]}, headers=csrf
        )
        assert made.status_code == 201, made.text
    assert admin.post(f"/api/v1/channels/{made.json()['id']}/disable", headers=csrf).status_code == 200
    sign_in(page, siyu, world.a.logins["admin"], "/channels")
    wrap = page.locator(".table-wrap")
    expect(wrap.get_by_text("启用").first).to_be_visible()
    overflow = wrap.evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0, f"the table is {overflow}px wider than its card"
    expect(wrap.get_by_role("columnheader", name="跟进中")).to_be_in_viewport(ratio=1)
    expect(wrap.get_by_text("已停用").first).to_be_in_viewport(ratio=1)
    fits_the_phone(page)


def test_the_boards_day_picker_sits_beside_its_button(page, siyu, world):
    """The board's 日期 field took the page's whole width (950 px on a 1280 px screen) and put
    查看 on a line of its own below it; on a phone too it ran the screen's width for ten characters."""
    sign_in(page, siyu, world.a.logins["supervisor"], "/sla")
    expect(page.get_by_role("heading", name="响应看板")).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        field = page.get_by_label("日期").bounding_box()
        button = page.get_by_role("button", name="查看").bounding_box()
        assert field["width"] <= 260, (width, field)
        assert button["x"] >= field["x"] + field["width"], (width, field, button)  # beside it, not below
        assert button["y"] < field["y"] + field["height"], (width, field, button)
    fits_the_phone(page)


def test_a_number_refused_on_the_staff_page_is_not_sent_again_by_a_reload(page, siyu, world):
    """Refused, the page had stayed at the form's address (/staff/zhangsan/call-phone), which is
    no page: a reload sent the number again."""
    sign_in(page, siyu, world.a.logins["agent"], "/staff")
    field = page.get_by_label("张三 接电话提醒的手机号")
    field.fill("0571-8888666")
    page.locator("#staff").get_by_role("button", name="保存").click()
    expect(page.get_by_role("alert")).to_contain_text("不是中国大陆手机号")
    expect(field).to_have_value("0571-8888666")  # what was typed, beside the refusal
    expect(page).to_have_url(f"{siyu}/staff")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if request.method == "POST" else None)
    page.reload()
    expect(page.get_by_role("heading", name="成员")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    assert sent == []
