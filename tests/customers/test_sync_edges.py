"""`siyu sync customers` after events it came later than, a tag deleted in WeCom, a name
ending in an emoji."""

from __future__ import annotations

import time

from sqlalchemy import select

from siyu.customers.models import Customer, Tag, TimelineEvent
from siyu.customers.sync import sync_customers
from tests.customers.test_acquisition import corp_tag, follow_of, make_channel, run
from tests.support.signed_in import SignedIn
from tests.support.stack import wait_for


def _down(stack):
    stack.control("PATCH", f"/corps/{stack.corp_id}", json={"callback_url": ""})


def _up(stack):
    url = stack.rt.settings.callback_url(stack.slug)
    stack.control("PATCH", f"/corps/{stack.corp_id}", json={"callback_url": url})


def _kinds(stack, ext):
    with stack.session() as s:
        cid = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
        return [
            (e.kind, e.staff_userid)
            for e in s.scalars(
                select(TimelineEvent).where(TimelineEvent.customer_id == cid).order_by(TimelineEvent.id)
            )
        ]


def test_a_customer_from_before_siyu_edited_before_the_first_sync_gets_its_channel_and_add(stack):
    """A customer scanned 官网海报 a month before Siyu was connected. After connecting, before the
    admin runs `siyu sync customers`, 张三 edits the customer's remark in WeCom (an edit event).
    The sync must still attribute the channel (state) and put 添加了客户 on the timeline, as it
    does for every other customer it imports."""
    channel = make_channel(stack)
    _down(stack)
    month_ago = int(time.time()) - 30 * 86400
    ext = stack.scan(channel.config_id, "老客户", at=month_ago)["external_userid"]
    _up(stack)
    edit = {"userid": "zhangsan", "external_userid": ext, "remark": "老客户-备注", "wait": True}
    stack.control("POST", stack.corp_path("/remark"), json=edit)
    wait_for(lambda: follow_of(stack, ext) is not None and follow_of(stack, ext).remark == "老客户-备注")

    run(sync_customers(stack.rt, stack.tenant_id))

    follow = follow_of(stack, ext)
    kinds = _kinds(stack, ext)
    assert follow.channel_id == channel.id, (
        f"follow's channel after the sync: {follow.channel_id} (expected {channel.id}); timeline {kinds}"
    )
    assert ("added", "zhangsan") in kinds, f"no 添加了客户 on the timeline: {kinds}"


def _tags_known(stack, *ids) -> bool:
    with stack.session() as s:
        return len(list(s.scalars(select(Tag).where(Tag.wecom_id.in_(ids))))) == len(ids)


def test_a_tag_deleted_in_wecom_still_shows_struck_through_after_the_sync(stack):
    """展会 is on 王女士 (张三's follow). The admin deletes it in WeCom's console: Siyu marks it
    deleted, and the customer shows it struck through. The next `siyu sync customers` must not
    turn that into 张三 移除标签：展会 (张三 removed nothing) and drop it from the customer."""
    show = corp_tag(stack, "展会")
    wait_for(lambda: _tags_known(stack, show))
    a = make_channel(stack, name="展会码", tag_ids=[show])
    ext = stack.scan(a.config_id, "王女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext) is not None)

    def tagged_in_wecom():
        rel = stack.control("GET", stack.corp_path("/customers"))
        return any(c["follow_info"]["tag_id"] == [show] for c in rel)

    wait_for(tagged_in_wecom)
    stack.control("POST", stack.corp_path("/console/tags"), json={"action": "delete", "tag_id": [show]})

    def deleted():
        with stack.session() as s:
            return s.scalar(select(Tag.deleted).where(Tag.wecom_id == show))

    wait_for(deleted)
    run(sync_customers(stack.rt, stack.tenant_id))
    api = SignedIn(stack.rt, stack.tenant_id)
    with stack.session() as s:
        cid = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
    profile = api("GET", f"/api/v1/customers/{cid}").json()
    kinds = _kinds(stack, ext)
    assert [t["deleted"] for t in profile["tags"]] == [True] and ("untagged", "zhangsan") not in kinds, (
        profile["tags"],
        kinds,
    )


def test_a_customer_named_with_an_emoji_at_the_end_is_found_by_that_name(stack):
    """WeChat nickname 小美❤️ (U+2764 U+FE0F, as WeChat and a phone keyboard write the heart).
    Searching the list for 小美❤️, copied from WeChat, finds her: the U+FE0F had been cut as
    invisible, and the name stored as 小美❤."""
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "小美\u2764\ufe0f")["external_userid"]
    wait_for(lambda: follow_of(stack, ext) is not None)
    api = SignedIn(stack.rt, stack.tenant_id)
    r = api("GET", "/api/v1/customers", params={"q": "小美\u2764\ufe0f"})
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1, (
        "stored name",
        [c["name"] for c in api("GET", "/api/v1/customers").json()["items"]],
    )
