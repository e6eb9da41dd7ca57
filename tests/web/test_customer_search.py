"""Finding customers as people type and WeCom stores: phone numbers however written, no match
for JSON's punctuation, a filter by a tag deleted in WeCom, a nickname that shows nothing.

Tenant A of the web tests' world: 王女士 is zhangsan's, her remark phone number 13800001111."""

from __future__ import annotations

import re

import pytest

from tests.support.seeded_customers import seeded


def api_names(client, **params) -> list[str]:
    r = client.get("/api/v1/customers", params=params)
    assert r.status_code == 200, r.text
    return [c["name"] for c in r.json()["items"]]


def page_names(client, **params) -> list[str]:
    r = client.get("/customers", params=params)
    assert r.status_code == 200, r.text
    if 'id="customers"' not in r.text:
        return []
    return [n.strip() for n in re.findall(r'<span class="name">([^<]*)', r.text.split('id="customers"')[1])]


# ---------------------------------------------------------------- search by phone number


@pytest.mark.parametrize(
    "typed",
    [
        "138 0000 1111",  # as phones and business cards space it
        "138-0000-1111",
        "+86 13800001111",  # as copied from a contact card
        "+8613800001111",
        "１３８００００１１１１",  # full width, as a Chinese input method types it
        "86 138 0000 1111",
    ],
)
def test_a_phone_number_typed_with_spaces_dashes_or_86_finds_the_customer(as_role, typed):
    """The search box says 姓名、备注或手机号; 13800001111 finds 王女士, the same number written
    as people write phone numbers finds nobody, on the page and in the API."""
    admin = as_role("admin")
    assert api_names(admin, q=typed) == ["王女士"]
    assert page_names(admin, q=typed) == ["王女士"]


def test_a_remark_phone_number_stored_with_spaces_is_found_by_its_digits(as_role, world, db):
    """WeCom keeps remark_mobiles as the member typed them (139 1234 5678): searching the
    number as digits finds nobody."""
    with seeded(db, world.a.id) as add:
        add("空格号码客户", [dict(staff_userid="lisi", remark_mobiles=["139 1234 5678"])])
        admin = as_role("admin")
        assert api_names(admin, q="13912345678") == ["空格号码客户"]
        assert page_names(admin, q="13912345678") == ["空格号码客户"]


@pytest.mark.parametrize("typed", ["[", "]", "[]", '"'])
def test_searching_json_punctuation_does_not_list_customers_who_do_not_have_it(as_role, typed):
    """The phone search runs LIKE over the JSON text of remark_mobiles (["13800001111"]), so a
    search for [ or ] lists every customer and " everyone with a remark phone number, though
    no name, remark or phone number holds it."""
    admin = as_role("admin")
    assert api_names(admin, q=typed) == []
    assert page_names(admin, q=typed) == []


# ---------------------------------------------------------------- a tag deleted in WeCom


def test_a_list_filtered_by_a_tag_deleted_in_wecom_names_the_tag_in_its_filter(as_role, world, db):
    """Customers keep a tag deleted in WeCom's console (shown struck through), and the list
    filtered by it (?tag=N, a link or bookmark from before) lists them: but the 标签 filter
    offers live tags only, so it reads 全部 over a filtered list (共 1 位 of 5), and 搜索 from
    the form drops the filter. The 渠道 filter keeps a disabled channel, marked （已停用）."""
    with seeded(db, world.a.id) as add:
        gone = add.tag("老客户", deleted=True)
        add("旧标签客户", [dict(staff_userid="lisi", tag_ids=[gone])])
        admin = as_role("admin")
        assert api_names(admin, tag=gone) == ["旧标签客户"]
        page = admin.get("/customers", params={"tag": gone}).text
        assert page_names(admin, tag=gone) == ["旧标签客户"]
        tag_select = page[page.index('<select name="tag">') :]
        tag_select = tag_select[: tag_select.index("</select>")]
        assert re.search(rf'<option value="{gone}"[^>]*selected', tag_select), tag_select


# ---------------------------------------------------------------- a customer with no visible name


@pytest.mark.parametrize("nickname", ["\u2800", " ", "\u200b"])
def test_a_customer_whose_nickname_shows_nothing_is_shown_as_unnamed(as_role, world, db, nickname):
    """WeCom gives no name: the list and the profile say （未命名）. A WeChat nickname of the
    Braille blank (U+2800, WeChat's usual invisible nickname: siyu.visible_names), a space or a
    zero-width space is as good as none, yet the row and the profile's heading are blank."""
    with seeded(db, world.a.id) as add:
        cid = add(nickname, [dict(staff_userid="lisi", remark="隐形昵称")])
        admin = as_role("admin")
        assert page_names(admin, q="隐形昵称") == ["（未命名）"]
        profile = admin.get(f"/customers/{cid}").text
        assert "<h1>（未命名）</h1>" in profile
