"""Customer acquisition end to end: Siyu and the WeCom emulator over real HTTP."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time

from sqlalchemy import func, select

from siyu.customers.channels import ChannelSpec, create_channel
from siyu.customers.models import Channel, Customer, Follow, FollowTag, Tag, TimelineEvent
from siyu.notify.models import OutboxMessage
from siyu.tenancy.tasks import sync_staff
from tests.support.stack import wait_for


def run(coro):
    """Run a coroutine to the end, also from a thread that already runs a loop (Playwright's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def make_channel(stack, name="官网海报", staff=("zhangsan",), **kw) -> Channel:
    spec = ChannelSpec(
        name=name, staff_userids=list(staff), welcome_text="{name}您好，我是您的专属顾问", **kw
    )
    channel_id = run(create_channel(stack.rt, stack.tenant_id, spec))
    with stack.session() as s:
        return s.get(Channel, channel_id)


def corp_tag(stack, name="官网") -> str:
    groups = stack.control(
        "POST",
        stack.corp_path("/console/tags"),
        json={"action": "create", "group_name": "来源", "tag": [{"name": name}]},
    )
    del groups
    tags = stack.control("GET", stack.corp_path("/tags"))
    return next(t["id"] for g in tags for t in g["tag"] if t["name"] == name)


def customer(stack, external_userid: str):
    with stack.session() as s:
        return s.scalar(select(Customer).where(Customer.external_userid == external_userid))


def follow_of(stack, external_userid: str, userid: str = "zhangsan") -> Follow | None:
    with stack.session() as s:
        return s.scalar(
            select(Follow)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Customer.external_userid == external_userid, Follow.staff_userid == userid)
        )


def counts(stack) -> dict:
    with stack.session() as s:
        return {
            "customers": s.scalar(select(func.count()).select_from(Customer)),
            "timeline": s.scalar(select(func.count()).select_from(TimelineEvent)),
            "welcomes": len(stack.welcome_messages()),
        }


def test_a_scan_creates_the_customer_with_channel_tags_and_welcome(stack):
    tag_id = corp_tag(stack)
    channel = make_channel(stack, tag_ids=[tag_id])
    assert channel.config_id and channel.qr_code
    scan = stack.scan(channel.config_id, "王女士")
    ext = scan["external_userid"]

    welcome = wait_for(lambda: stack.welcome_messages())
    assert welcome[0]["payload"]["text"]["content"] == "王女士您好，我是您的专属顾问"
    assert welcome[0]["welcome_code"] == scan["welcome_code"]
    follow = wait_for(lambda: follow_of(stack, ext))
    assert follow.channel_id == channel.id and follow.status == "active"
    assert customer(stack, ext).name == "王女士"
    with stack.session() as s:
        tags = s.scalars(
            select(Tag.wecom_id)
            .join(FollowTag, FollowTag.tag_id == Tag.id)
            .where(FollowTag.follow_id == follow.id)
        ).all()
        kinds = s.scalars(
            select(TimelineEvent.kind).where(TimelineEvent.customer_id == follow.customer_id)
        ).all()
    assert tags == [tag_id]

    # mark_tag reached WeCom too: the emulator's record of the relation carries the tag
    def tagged_in_wecom():
        rel = [
            c
            for c in stack.control("GET", stack.corp_path("/customers"))
            if c["external_contact"]["external_userid"] == ext
        ]
        return rel and tag_id in rel[0]["follow_info"].get("tag_id", [])

    wait_for(tagged_in_wecom)
    wait_for(lambda: "welcome_sent" in [e.kind for e in _timeline(stack, follow.customer_id)])
    assert {"added", "channel", "tagged"} <= set(kinds)


def test_the_default_welcome_set_on_the_setup_page_greets_a_channel_without_its_own(stack):
    """A channel left without a welcome text said it would use 企业默认欢迎语, which nothing
    let an admin set: its customers got no welcome at all. 设置 → 默认欢迎语 sets it."""
    from siyu.tenancy import service as tenancy
    from tests.web.conftest import PASSWORD, login

    with stack.session() as s:
        tenancy.add_person(s, f"admin-{stack.slug}", "管理员", "admin", PASSWORD)
    admin = login(stack.siyu, f"admin-{stack.slug}")
    r = admin.post("/setup/welcome", data={"csrf_token": admin.csrf, "welcome_text": "{nickname}您好"})
    assert r.status_code == 422 and "{nickname} 不是可用的占位符" in r.text
    assert "{nickname}您好</textarea>" in r.text  # what was typed is kept
    r = admin.post(
        "/setup/welcome", data={"csrf_token": admin.csrf, "welcome_text": " {客户名}您好，欢迎关注示例科技 "}
    )
    assert r.status_code == 303 and "默认欢迎语已保存" in admin.get(r.headers["location"]).text
    assert "{客户名}您好，欢迎关注示例科技</textarea>" in admin.get("/setup").text
    admin.close()

    spec = ChannelSpec(name="无欢迎语", staff_userids=["zhangsan"])
    channel_id = run(create_channel(stack.rt, stack.tenant_id, spec))
    with stack.session() as s:
        config_id = s.get(Channel, channel_id).config_id
    stack.scan(config_id, "李先生")
    welcome = wait_for(lambda: stack.welcome_messages())
    assert welcome[0]["payload"]["text"]["content"] == "李先生您好，欢迎关注示例科技"


def _timeline(stack, customer_id):
    with stack.session() as s:
        return s.scalars(select(TimelineEvent).where(TimelineEvent.customer_id == customer_id)).all()


def welcome_statuses(stack) -> list[str]:
    with stack.session() as s:
        return list(s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "welcome")))


def test_a_retried_delivery_changes_nothing_and_same_second_scans_both_count(stack):
    channel = make_channel(stack)
    at = int(time.time())
    first = stack.scan(channel.config_id, "客户甲", at=at)
    second = stack.scan(channel.config_id, "客户乙", at=at)
    wait_for(lambda: len(stack.welcome_messages()) == 2)
    wait_for(
        lambda: follow_of(stack, first["external_userid"]) and follow_of(stack, second["external_userid"])
    )
    # and both welcomes recorded (their 欢迎语已发送 on the timeline): WeCom has them a moment
    # before Siyu writes so, and counted in between, the timeline grew after `before`
    wait_for(lambda: welcome_statuses(stack) == ["sent", "sent"])
    before = counts(stack)
    stack.control("POST", f"/redeliver/{first['delivery_id']}")
    wait_for(lambda: stack.control("GET", f"/deliveries/{first['delivery_id']}")["status"] == "delivered")
    time.sleep(0.5)
    assert counts(stack) == before == {**before, "customers": 2, "welcomes": 2}


def test_a_customer_who_deletes_the_staff_member_is_lost_and_alerts_go_out(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "赵先生")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.control(
        "POST", stack.corp_path(f"/customers/{ext}/remove_staff"), json={"userid": "zhangsan", "wait": True}
    )
    follow = wait_for(lambda: (f := follow_of(stack, ext)) and f.status == "lost" and f)
    assert follow.ended_at is not None
    messages = wait_for(lambda: (m := stack.app_messages()) and len(m) >= 2 and m)
    recipients = {r for m in messages for r in m["recipients"]}
    assert {"zhangsan", "lisi"} <= recipients  # the agent and their direct leader
    assert any("赵先生" in m["payload"]["text"]["content"] for m in messages)
    [to_leader] = [m["payload"]["text"]["content"] for m in messages if m["recipients"] == ["lisi"]]
    # whom and when, as the agent's own alert says
    assert re.fullmatch(
        r"客户流失提醒：赵先生 已将你团队的 张三 从联系人中删除（.+\d\d:\d\d:\d\d，渠道「官网海报」）。"
        r'<a href="http://127\.0\.0\.1:\d+/auth/wecom/\w+\?next=/customers/\d+&lost=\d+">查看客户</a>',
        to_leader,
    )


def test_a_customers_name_puts_no_link_into_the_lost_customer_alerts(stack):
    """WeCom shows <a href> in an app message's text as a link: a customer named so had put
    a link of their choosing into the alert the company's own app sends the agent and their
    leader (and the staff member's own name into the leader's)."""
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack)
    name = '<a href="https://evil.example/login">账号异常，点此核验</a>'
    ext = stack.scan(channel.config_id, name)["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.control(
        "POST", stack.corp_path(f"/customers/{ext}/remove_staff"), json={"userid": "zhangsan", "wait": True}
    )
    messages = wait_for(lambda: (m := stack.app_messages()) and len(m) >= 2 and m)
    texts = [m["payload"]["text"]["content"] for m in messages]
    assert len(texts) == 2
    for text in texts:
        assert text.count("<a") == 1 and 'href="http://127.0.0.1' in text  # Siyu's own link only
        assert "&lt;a href=&quot;https://evil.example/login&quot;&gt;账号异常，点此核验&lt;/a&gt;" in text


def _alerts(stack, userid: str) -> list[str]:
    """The alerts the member got (WeCom's duplicate check drops a send equal to one before)."""
    return [m["payload"]["text"]["content"] for m in stack.app_messages() if userid in m["recipients"]]


def alert_statuses(stack) -> list[str]:
    with stack.session() as s:
        return list(s.scalars(select(OutboxMessage.status).where(OutboxMessage.kind == "app_message")))


def test_two_customers_of_one_name_who_leave_in_the_same_minute_are_two_alerts(stack):
    """Every app message asks for WeCom's duplicate check, which drops a text equal to one of
    the last 4 hours: two 赵先生 without a remark deleting the member in one minute had made
    one alert of two. Sent again (its outcome not recorded), an alert still arrives once."""
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack, name="展会")
    exts = [stack.scan(channel.config_id, "赵先生")["external_userid"] for _ in range(2)]
    for ext in exts:
        wait_for(lambda ext=ext: follow_of(stack, ext))
    now = stack.control("GET", "/clock")["now"]
    stack.control("POST", "/clock", json={"advance_s": 60 - now % 60 + 0.01})  # both within a minute
    for ext in exts:
        stack.control(
            "POST",
            stack.corp_path(f"/customers/{ext}/remove_staff"),
            json={"userid": "zhangsan", "wait": True},
        )
    to_agent = wait_for(lambda: len(a := _alerts(stack, "zhangsan")) == 2 and a)
    to_leader = wait_for(lambda: len(a := _alerts(stack, "lisi")) == 2 and a)
    for alerts in (to_agent, to_leader):
        assert alerts[0] != alerts[1]
        for alert in alerts:  # when to the second, the channel, and the customer's own page
            assert re.search(r"（\d\d-\d\d \d\d:\d\d:\d\d，渠道「展会」）", alert), alert
            assert f"{stack.rt.settings.public_url}/auth/wecom/{stack.slug}?next=/customers/" in alert
    # recorded: WeCom has them a moment before Siyu records so, and a row made pending before
    # then was recorded sent over it, never to go again
    wait_for(lambda: alert_statuses(stack) == ["sent"] * 4)
    with stack.session() as s:
        [first, *_] = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "app_message").order_by(OutboxMessage.id)
        )
        first.status = "pending"  # as if its outcome was never recorded: the worker sends it again
        first_id, touser = first.id, first.payload["touser"]
    wait_for(lambda: len(stack.app_messages()) == 5)
    assert stack.app_messages()[-1]["recipients"] == []  # dropped by WeCom's duplicate check
    assert len(_alerts(stack, touser)) == 2

    def recorded() -> bool:  # (WeCom has answered: the worker records it a moment later)
        with stack.session() as s:
            return s.get(OutboxMessage, first_id).status == "sent"

    wait_for(recorded)


def test_token_expiry_and_rate_limits_are_survived(stack):
    channel = make_channel(stack)
    stack.control("POST", stack.corp_path("/expire_tokens"))
    stack.control(
        "POST",
        "/faults",
        json={"corp_id": stack.corp_id, "path": "/cgi-bin/externalcontact/get", "errcode": 45009, "times": 2},
    )
    stack.control(
        "POST",
        "/faults",
        json={
            "corp_id": stack.corp_id,
            "path": "/cgi-bin/externalcontact/mark_tag",
            "errcode": -1,
            "times": 2,
        },
    )
    ext = stack.scan(channel.config_id, "钱女士")["external_userid"]
    wait_for(lambda: stack.welcome_messages(), timeout=20)
    wait_for(lambda: (c := customer(stack, ext)) and c.name == "钱女士", timeout=20)


def test_tagging_a_customer_who_is_gone_gives_up_after_a_few_tries(stack):
    tag_id = corp_tag(stack)
    channel = make_channel(stack, tag_ids=[tag_id])
    stack.control(
        "POST",
        "/faults",
        json={
            "corp_id": stack.corp_id,
            "path": "/cgi-bin/externalcontact/mark_tag",
            "errcode": 84061,
            "times": 50,
        },
    )
    stack.scan(channel.config_id, "孙先生")

    def dead():
        with stack.session() as s:
            row = s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "mark_tag"))
            return row if row is not None and row.status == "dead" else None

    row = wait_for(dead, timeout=20)
    assert row.attempts == 3 and "84061" in row.last_error and "客户不是该成员的联系人" in row.last_error


def test_welcome_goes_out_in_time_while_wecom_rate_limits(stack):
    channel = make_channel(stack)
    stack.control(
        "POST",
        "/faults",
        json={
            "corp_id": stack.corp_id,
            "path": "/cgi-bin/externalcontact/send_welcome_msg",
            "errcode": 45009,
            "times": 3,
        },
    )
    stack.control(
        "POST",
        "/faults",
        json={
            "corp_id": stack.corp_id,
            "path": "/cgi-bin/externalcontact/get",
            "errcode": 45009,
            "times": 1000,
        },
    )
    scan = stack.scan(channel.config_id, "孙先生")
    welcome = wait_for(lambda: stack.welcome_messages(), timeout=20)[0]
    assert welcome["welcome_code"] == scan["welcome_code"]
    # the contact could not be fetched, so the welcome went out without the name, in time
    assert welcome["payload"]["text"]["content"] == "您好，我是您的专属顾问"


def test_remark_edits_and_console_tag_deletion_are_reflected(stack):
    tag_id = corp_tag(stack, "展会")
    channel = make_channel(stack, tag_ids=[tag_id])
    ext = stack.scan(channel.config_id, "周女士")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.control(
        "POST",
        stack.corp_path("/remark"),
        json={"userid": "zhangsan", "external_userid": ext, "remark": "周女士-大客户", "wait": True},
    )
    wait_for(lambda: follow_of(stack, ext).remark == "周女士-大客户")
    stack.control(
        "POST", stack.corp_path("/console/tags"), json={"action": "delete", "tag_id": [tag_id], "wait": True}
    )

    def channel_notice():
        with stack.session() as s:
            return s.get(Channel, channel.id).notice

    assert "展会" in wait_for(channel_notice)
    with stack.session() as s:
        assert s.scalar(select(Tag).where(Tag.wecom_id == tag_id)).deleted


def test_a_worker_forgets_the_welcomes_it_read_for_link_states_once_stale(db, settings, monkeypatch):
    """A 获客链接 brings its sharer's customer_channel as the add's state: any string, often one
    per ad click. The welcome read for each must not stay in the worker's memory for good."""
    from siyu.customers import welcome
    from tests.sla.conftest import local_tenant

    monkeypatch.setattr(welcome, "TEMPLATE_TTL_S", 0.05)
    rt, tenant_id = local_tenant(db, settings)
    clicks = 1500

    async def read_them() -> None:
        for i in range(clicks):
            await welcome._template(rt, tenant_id, f"ad-click-{i}")

    asyncio.run(read_them())
    assert len(welcome._templates) < clicks


def test_two_admins_making_a_channel_of_one_name_at_once_make_one_and_unmake_the_others_code(stack):
    """The second admin's check ran before the first's channel was committed, and both were
    made: two 官网海报 in the list, scans split between them. The second's save now waits for the
    first's, is refused, and the code WeCom made for it is deleted again."""
    import threading

    from siyu.customers import channels

    spec = ChannelSpec(name="双人同时建", staff_userids=["zhangsan"])
    refused: list[str] = []
    done = threading.Event()

    def second_admin_creates() -> None:
        try:
            run(create_channel(stack.rt, stack.tenant_id, spec))
        except channels.ChannelNameTaken as exc:
            refused.append(str(exc))
        done.set()

    with stack.session() as s:  # the first admin's save, not committed yet
        channels._hold_names(s)
        channels.check_name_free(s, spec.name)
        s.add(Channel(state=channels.new_state(), config_id="first-admins", name=spec.name))
        s.flush()
        other = threading.Thread(target=second_admin_creates)
        other.start()
        done.wait(timeout=3)
    other.join(timeout=60)
    assert done.is_set() and len(refused) == 1, refused
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(Channel).where(Channel.name == spec.name)) == 1
    assert stack.control("GET", stack.corp_path("/contact_ways")) == []


async def _delete_in_wecom(stack, config_id: str) -> None:
    contact = (await stack.rt.clients.get(stack.tenant_id)).contact
    await contact.del_contact_way(config_id)


def test_a_channel_whose_code_is_gone_from_wecom_can_still_be_disabled(stack):
    """The code was deleted in WeCom already (a 停用 that deleted it and then failed to save,
    another app of the corp): every 停用 had been a 502, and the channel stayed enabled, handing
    out a QR code that no longer works."""
    from siyu.tenancy import service as tenancy
    from tests.web.conftest import PASSWORD, login

    channel = make_channel(stack, name="旧海报")
    run(_delete_in_wecom(stack, channel.config_id))
    with stack.session() as s:
        tenancy.add_person(s, f"admin-{stack.slug}", "管理员", "admin", PASSWORD)
    admin = login(stack.siyu, f"admin-{stack.slug}")
    r = admin.post(f"/api/v1/channels/{channel.id}/disable", headers={"X-CSRF-Token": admin.csrf})
    admin.close()
    with stack.session() as s:
        enabled = s.get(Channel, channel.id).enabled
    assert (r.status_code, enabled) == (200, False), r.text
