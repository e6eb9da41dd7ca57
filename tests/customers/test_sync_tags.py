"""`siyu sync customers` after tags changed in WeCom while Siyu heard nothing."""

from __future__ import annotations

from sqlalchemy import select

from siyu.customers.models import Channel, Tag
from siyu.customers.sync import sync_customers
from tests.customers.test_acquisition import corp_tag, make_channel, run
from tests.support.stack import wait_for


def _known(stack, *ids) -> bool:
    with stack.session() as s:
        return len(list(s.scalars(select(Tag).where(Tag.wecom_id.in_(ids))))) == len(ids)


def test_sync_marks_tags_wecom_no_longer_has_as_deleted(stack):
    """展会 is deleted in WeCom's console while Siyu is down (its change_external_tag never
    arrives). `siyu sync customers` reads WeCom's whole tag list, 展会 gone from it: the tag is
    deleted, and the channel no longer applies it (WeCom refused the channel's whole mark_tag)."""
    doomed, kept = corp_tag(stack, "展会"), corp_tag(stack, "官网")
    wait_for(lambda: _known(stack, doomed, kept))
    channel = make_channel(stack, name="展会二维码", tag_ids=[doomed, kept])

    stack.control("PATCH", f"/corps/{stack.corp_id}", json={"callback_url": ""})  # Siyu down
    stack.control("POST", stack.corp_path("/console/tags"), json={"action": "delete", "tag_id": [doomed]})
    assert doomed not in {t["id"] for g in stack.control("GET", stack.corp_path("/tags")) for t in g["tag"]}

    run(sync_customers(stack.rt, stack.tenant_id))
    with stack.session() as s:
        tag = s.scalar(select(Tag).where(Tag.wecom_id == doomed))
        ch = s.get(Channel, channel.id)
        state = (tag.deleted, doomed in ch.tag_ids)
    assert state == (True, False), f"(tag deleted, channel still applies it) = {state}"


def test_a_tag_only_seen_on_a_customer_is_not_deleted_by_the_sync(stack):
    """A rule-group tag (规则组标签) comes on customers but never in get_corp_tag_list: the sync
    does not read its absence there as a deletion."""
    with stack.session() as s:
        s.add(Tag(wecom_id="stRULE1", name="高意向"))
    run(sync_customers(stack.rt, stack.tenant_id))
    with stack.session() as s:
        assert s.scalar(select(Tag.deleted).where(Tag.wecom_id == "stRULE1")) is False
