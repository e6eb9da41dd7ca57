"""Channels whose members left the company (Staff.active False after a staff sync), edited through
the API, against the WeCom emulator."""

from __future__ import annotations

from contextlib import contextmanager

import httpx
from sqlalchemy import select

from siyu.customers.models import Channel
from siyu.tenancy.models import Staff


@contextmanager
def zhaoliu_left(world, db):
    """赵六 leaves the company: WeCom's directory, then the staff sync marks him inactive."""
    corp = f"{world.emu_url}/_emulator/corps/{world.a.corp['corp_id']}"
    assert httpx.delete(f"{corp}/staff/zhaoliu").status_code == 200
    with db.tenant_session(world.a.id) as s:
        s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).active = False
    try:
        yield
    finally:
        zhaoliu = {"userid": "zhaoliu", "name": "赵六", "department": [4]}
        assert httpx.post(f"{corp}/staff", json=zhaoliu).status_code == 201
        with db.tenant_session(world.a.id) as s:
            s.scalar(select(Staff).where(Staff.userid == "zhaoliu")).active = True


def way_users(world, db, channel_id: int) -> list[str]:
    with db.tenant_session(world.a.id) as s:
        config_id = s.get(Channel, channel_id).config_id
    ways = httpx.get(f"{world.emu_url}/_emulator/corps/{world.a.corp['corp_id']}/contact_ways").json()
    return sorted(next(w for w in ways if w["config_id"] == config_id)["user"])


def test_the_api_removes_a_leaver_from_a_two_member_channel_and_refuses_a_channel_left_with_none(
    as_role, world, db
):
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    pair = admin.post(
        "/api/v1/channels",
        json={"name": "API 两人码", "staff_userids": ["zhangsan", "zhaoliu"]},
        headers=csrf,
    ).json()
    alone = admin.post(
        "/api/v1/channels", json={"name": "API 赵六单人码", "staff_userids": ["zhaoliu"]}, headers=csrf
    ).json()
    try:
        with zhaoliu_left(world, db):
            path = f"/api/v1/channels/{pair['id']}"
            r = admin.patch(path, json={"staff_userids": ["zhangsan"]}, headers=csrf)
            assert r.status_code == 200, r.text
            assert r.json()["staff_userids"] == ["zhangsan"] and r.json()["notice"] == ""
            assert way_users(world, db, pair["id"]) == ["zhangsan"]
            r = admin.patch(path, json={"staff_userids": ["zhangsan", "lisi"]}, headers=csrf)
            assert r.status_code == 200, r.text

            path = f"/api/v1/channels/{alone['id']}"
            r = admin.patch(path, json={"name": "API 赵六单人码改名"}, headers=csrf)
            assert r.status_code == 200 and r.json()["notice"].startswith("接待成员 赵六 已离职或停用")
            r = admin.patch(path, json={"staff_userids": []}, headers=csrf)
            assert r.status_code == 422 and "请选择至少一位成员或一个部门" in r.json()["detail"]
            r = admin.patch(path, json={"staff_userids": ["zhangsan", "lisi"]}, headers=csrf)
            assert r.status_code == 422 and r.json()["detail"].startswith("单人码不能改为多人码")
            r = admin.patch(path, json={"staff_userids": ["lisi"]}, headers=csrf)
            assert r.status_code == 200 and r.json()["notice"] == ""
            assert way_users(world, db, alone["id"]) == ["lisi"]
    finally:
        for ch in (pair, alone):
            admin.post(f"/api/v1/channels/{ch['id']}/disable", headers=csrf)
