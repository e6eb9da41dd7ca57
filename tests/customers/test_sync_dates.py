"""What `siyu sync customers` writes on the timeline, and when it says it happened."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from siyu.customers.sync import sync_customers
from tests.customers.test_acquisition import corp_tag, customer, make_channel, run
from tests.support.signed_in import SignedIn


def test_a_remark_and_tag_changed_while_siyu_was_down_are_dated_when_the_sync_saw_them(stack):
    """A customer added a month ago, imported by the sync. While Siyu is down the member sets the
    remark 王总-采购 and the tag 重点 in WeCom; the next sync picks both up, dated when it saw
    them: at the relation's createtime, 修改了备注 / 打上标签 had sat a month back on the newest
    first timeline, below everything since."""
    vip = corp_tag(stack, "重点")
    channel = make_channel(stack)
    stack.control("PATCH", f"/corps/{stack.corp_id}", json={"callback_url": ""})  # Siyu not connected
    month_ago = int(time.time()) - 30 * 86400
    ext = stack.scan(channel.config_id, "王先生", at=month_ago)["external_userid"]
    run(sync_customers(stack.rt, stack.tenant_id))
    edit = {"userid": "zhangsan", "external_userid": ext, "remark": "王总-采购", "add_tags": [vip]}
    stack.control("POST", stack.corp_path("/remark"), json=edit)
    synced_at = datetime.now(UTC)
    run(sync_customers(stack.rt, stack.tenant_id))

    api = SignedIn(stack.rt, stack.tenant_id)
    r = api("GET", f"/api/v1/customers/{customer(stack, ext).id}/timeline")
    assert r.status_code == 200, r.text
    entries: dict[str, str] = {}
    for e in r.json():  # newest first: each kind's newest
        entries.setdefault(e["kind"], e["at"])
    assert {"remark", "tagged"} <= set(entries), entries
    dated = {k: datetime.fromisoformat(entries[k].replace("Z", "+00:00")) for k in ("remark", "tagged")}
    dated = {k: (v if v.tzinfo else v.replace(tzinfo=UTC)) for k, v in dated.items()}
    assert all(v >= synced_at - timedelta(minutes=1) for v in dated.values()), (dated, entries)
