"""The channel service with a member who left the company (WeCom's directory, then the staff
sync): what scans do, and what a change of the code keeps, drops and refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from siyu.customers.channels import ChannelError, ChannelSpec, update_channel
from siyu.customers.models import Channel
from siyu.tenancy.models import Staff
from siyu.tenancy.tasks import sync_staff
from tests.customers.test_acquisition import follow_of, make_channel, run
from tests.support.stack import wait_for


def leaves(stack, userid: str) -> None:
    stack.control("DELETE", stack.corp_path(f"/staff/{userid}"))
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        assert s.query(Staff).filter_by(userid=userid).one().active is False


def way(stack, channel: Channel) -> dict:
    return next(
        w
        for w in stack.control("GET", stack.corp_path("/contact_ways"))
        if w["config_id"] == channel.config_id
    )


def spec_of(channel: Channel, **changes) -> ChannelSpec:
    spec = ChannelSpec(
        name=channel.name, staff_userids=list(channel.staff_userids), skip_verify=channel.skip_verify
    )
    return replace(spec, **changes)


def update(stack, channel: Channel, **changes) -> Channel:
    run(update_channel(stack.rt, stack.tenant_id, channel.id, spec_of(channel, **changes)))
    with stack.session() as s:
        return s.get(Channel, channel.id)


def test_a_two_member_code_hands_scans_to_the_other_member_and_can_drop_the_leaver(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack, "两人海报", staff=("zhangsan", "lisi"))
    assert way(stack, channel)["type"] == 2
    leaves(stack, "lisi")
    scans = [stack.scan(channel.config_id, name) for name in ("甲先生", "乙女士")]
    assert [scan["userid"] for scan in scans] == ["zhangsan", "zhangsan"]  # never the leaver
    assert wait_for(lambda: follow_of(stack, scans[1]["external_userid"])).channel_id == channel.id

    channel = update(stack, channel, name="两人海报改名")  # the members as they are: not sent
    assert channel.name == "两人海报改名" and channel.staff_userids == ["zhangsan", "lisi"]
    assert way(stack, channel)["remark"] == "两人海报改名" and way(stack, channel)["user"] == [
        "zhangsan",
        "lisi",
    ]

    channel = update(stack, channel, staff_userids=["zhangsan"])
    assert channel.staff_userids == ["zhangsan"]
    assert way(stack, channel)["user"] == ["zhangsan"] and way(stack, channel)["type"] == 2
    channel = update(stack, channel, staff_userids=["zhangsan", "wangwu"])
    assert way(stack, channel)["user"] == ["zhangsan", "wangwu"]


def test_a_single_member_code_whose_member_left_takes_no_scan_until_a_member_replaces_them(stack):
    run(sync_staff(stack.rt, stack.tenant_id))
    channel = make_channel(stack, "李四的海报", staff=("lisi",))
    assert way(stack, channel)["type"] == 1
    leaves(stack, "lisi")
    refused = stack.emu.post(
        f"/_emulator{stack.corp_path('/scan')}",
        json={"config_id": channel.config_id, "customer": {"name": "丙先生"}, "wait": True},
    )
    assert refused.status_code == 400 and "no active member" in refused.text

    channel = update(stack, channel, welcome_text="欢迎光临")  # saved: the scans still reach nobody
    assert channel.welcome_text == "欢迎光临" and channel.staff_userids == ["lisi"]
    with pytest.raises(ChannelError, match="请选择至少一位成员"):
        update(stack, channel, staff_userids=[])
    with pytest.raises(ChannelError, match="单人码不能改为多人码"):
        update(stack, channel, staff_userids=["zhangsan", "wangwu"])

    channel = update(stack, channel, staff_userids=["wangwu"])
    assert way(stack, channel)["user"] == ["wangwu"]
    ext = stack.scan(channel.config_id, "丙先生")["external_userid"]
    assert wait_for(lambda: follow_of(stack, ext, "wangwu")).channel_id == channel.id
