"""The customer's timeline tells who was told about a wait: the cards the escalation steps
sent and the call, on the wait's entry (read from the steps that fired)."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from siyu.customers import queries
from siyu.customers.models import Customer


def test_a_waits_entry_names_the_cards_and_the_call_its_steps_sent(local):
    w = local
    w.policy()
    w.customer("wmcustomer1", "马强")
    w.say("你好，这个套餐多少钱？", at=0)
    w.pulled(3600)
    for at in (120, 300, 600):
        w.clock(at)
        assert w.fire() == 1
    w.reply("您好，199 元", at=700)
    admin = SimpleNamespace(tenant_id=w.tenant_id, visible_staff=None, timezone="Asia/Shanghai")
    with w.session() as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == "wmcustomer1"))
        [entry] = queries.timeline(s, admin, customer_id)
    assert entry["kind"] == "wait" and entry["data"]["state"] == "replied"
    assert entry["text"] == (
        "客户发来消息等待回复：「你好，这个套餐多少钱？」；张三 回复，用时 11 分 40 秒"
        "；已升级：提醒卡片给负责成员 张三、提醒卡片给上级 李四、语音电话给负责成员 张三"
    )
    assert [e["recipient_name"] for e in entry["data"]["escalations"]] == ["张三", "李四", "张三"]
