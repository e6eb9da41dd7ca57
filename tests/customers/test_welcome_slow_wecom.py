"""Welcome messages under a slow WeCom, and a name holding a placeholder."""

from __future__ import annotations

from sqlalchemy import select

from siyu.customers.channels import ChannelSpec, create_channel
from siyu.customers.models import Channel, Customer, Follow, TimelineEvent
from siyu.intake.models import CallbackEvent
from siyu.notify.models import OutboxMessage
from tests.customers.test_acquisition import run
from tests.support.stack import wait_for


def _channel(stack, text: str, name: str = "海报") -> Channel:
    spec = ChannelSpec(name=name, staff_userids=["zhangsan"], welcome_text=text)
    channel_id = run(create_channel(stack.rt, stack.tenant_id, spec))
    with stack.session() as s:
        return s.get(Channel, channel_id)


def _slow(stack, path: str, delay_s: float, times: int) -> None:
    stack.control(
        "POST",
        "/faults",
        json={"corp_id": stack.corp_id, "path": path, "delay_s": delay_s, "times": times},
    )


def _welcome_rows(stack) -> list[OutboxMessage]:
    with stack.session() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "welcome")))


def test_a_slow_name_lookup_does_not_make_the_welcome_late(stack):
    """The add's event reaches the worker with 9 s of WeCom's 20 left (WeCom's callback retried
    after a slow ack, or a burst queued ahead of it), and WeCom's externalcontact/get hangs: the
    name lookup gives up after its 3 s and the welcome goes out without the name (the lookup had
    taken the client's whole timeout, and the code had expired)."""
    channel = _channel(stack, "{name}您好，我是您的专属顾问")
    _slow(stack, "/cgi-bin/externalcontact/get", 30, 20)
    now = stack.control("GET", "/clock")["now"]
    stack.scan(channel.config_id, "王女士", at=int(now) - 11)
    # WeCom issued the code with the add, 11 s ago (the emulator issued it at the scan: its
    # clock is moved to match the event's CreateTime)
    stack.control("POST", "/clock", json={"advance_s": now - int(now) + 11})
    wait_for(lambda: [r for r in _welcome_rows(stack) if r.status in ("sent", "dead")], timeout=25)
    statuses = [(r.status, r.last_error) for r in _welcome_rows(stack)]
    sent = stack.welcome_messages()
    assert len(sent) == 1, statuses
    assert sent[0]["payload"]["text"]["content"] == "您好，我是您的专属顾问"


def test_a_welcome_whose_answer_was_lost_is_not_recorded_as_failed(stack):
    """WeCom took 10.5 s to answer send_welcome_msg (slower than Siyu's 10 s read timeout) but
    sent the welcome. The customer got it once; Siyu's retry finds the code used (41051) by that
    try, and records the welcome sent, its words kept (it had read 欢迎语发送失败, and its archived
    copy, not known as Siyu's, as the agent's own reply)."""
    channel = _channel(stack, "您好，我是您的专属顾问")
    _slow(stack, "/cgi-bin/externalcontact/send_welcome_msg", 10.5, 1)
    ext = stack.scan(channel.config_id, "李先生")["external_userid"]
    wait_for(lambda: stack.welcome_messages(), timeout=15)
    wait_for(lambda: [r for r in _welcome_rows(stack) if r.status in ("sent", "dead")], timeout=40)
    assert len(stack.welcome_messages()) == 1  # the customer got it
    [row] = _welcome_rows(stack)
    with stack.session() as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
        kinds = list(s.scalars(select(TimelineEvent.kind).where(TimelineEvent.customer_id == customer_id)))
    assert (row.status, row.payload.get("sent_text"), "welcome_failed" in kinds) == (
        "sent",
        "您好，我是您的专属顾问",
        False,
    ), (row.last_error, kinds)


def test_a_name_holding_a_placeholder_is_put_in_whole(stack):
    """A customer whose WeChat name holds 「{客户名}」 has their name put in whole, not filled in
    again inside itself."""
    channel = _channel(stack, "{name}您好")
    stack.scan(channel.config_id, "小{客户名}")
    welcome = wait_for(lambda: stack.welcome_messages(), timeout=15)[0]
    assert welcome["payload"]["text"]["content"] == "小{客户名}您好"


def _all_done(stack) -> bool:
    with stack.session() as s:
        statuses = list(s.scalars(select(CallbackEvent.status)))
    return bool(statuses) and all(x == "done" for x in statuses)


def test_the_first_members_welcome_is_on_the_timeline_when_the_second_add_is_handled_first(stack):
    """王女士 scans 张三's 海报A, then 李四's 海报B. WeCom answers 张三's add slowly, so his welcome
    goes out first and 李四's add is handled first: its answer from WeCom lists 张三 too, which
    made 张三's follow. 张三's own add then found itself not the first, and his welcome, sent,
    never showed on her timeline."""
    a = _two("海报A", "zhangsan", stack)
    b = _two("海报B", "lisi", stack)
    # WeCom slow to answer the first add's externalcontact/get (its welcome goes out meanwhile)
    stack.control(
        "POST",
        "/faults",
        json={"corp_id": stack.corp_id, "path": "/cgi-bin/externalcontact/get", "delay_s": 4, "times": 1},
    )
    ext = stack.scan(a.config_id, "王女士")["external_userid"]
    wait_for(lambda: len(stack.welcome_messages()) == 1)
    stack.control(
        "POST",
        stack.corp_path("/scan"),
        json={"config_id": b.config_id, "customer": {"name": "王女士", "external_userid": ext}, "wait": True},
    )
    wait_for(lambda: len(stack.welcome_messages()) == 2)
    wait_for(lambda: _all_done(stack), timeout=20)
    with stack.session() as s:
        customer = s.scalar(select(Customer).where(Customer.external_userid == ext))
        follows = {
            f.staff_userid: f for f in s.scalars(select(Follow).where(Follow.customer_id == customer.id))
        }
        entries = [
            (e.staff_userid, e.kind)
            for e in s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.customer_id == customer.id)
                .order_by(TimelineEvent.id)
            )
        ]
    assert follows["zhangsan"].channel_id == a.id and follows["lisi"].channel_id == b.id, entries
    assert ("lisi", "welcome_sent") in entries, entries
    assert ("zhangsan", "welcome_sent") in entries, (
        f"张三's welcome went out but the customer's timeline never says so: {entries}"
    )


def _two(name: str, userid: str, stack) -> Channel:
    spec = ChannelSpec(name=name, staff_userids=[userid], welcome_text=f"您好，我是{name}的顾问")
    with stack.session() as s:
        return s.get(Channel, run(create_channel(stack.rt, stack.tenant_id, spec)))
