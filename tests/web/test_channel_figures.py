"""A channel's figures add up, within the viewer's scope, the same in the API as on the pages;
and no two enabled channels of a tenant share a name."""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import delete

from siyu.customers import service as customers
from siyu.customers.models import Channel, Customer, Follow, TimelineEvent
from tests.support import days
from tests.web.conftest import _add, remove_customers, wecom_fault

FIGURES = ("adds", "losses", "deleted", "transferred", "net", "active")
SLOW_PATH = "/cgi-bin/externalcontact/update_contact_way"


def _ways_named(world, tenant, name: str) -> list[dict]:
    r = httpx.get(f"{world.emu_url}/_emulator/corps/{tenant.corp['corp_id']}/contact_ways")
    return [w for w in r.json() if w["remark"] == name[:30]]


@pytest.fixture
def seeded(db, world):
    """Seeds with `_seed_channel`; then takes its customers away again, since the other modules
    count the world's customers."""
    made: list[int] = []
    yield lambda admin: _seed_channel(admin, world, db, made)
    remove_customers(db, world.a.id, made)


def _seed_channel(admin, world, db, made: list[int]) -> int:
    """A channel of 张三, 李四 and 赵六 with seven customers: three still followed, one who
    removed 张三 (流失), two whom their member removed (已删除), one handed over (已转接)."""
    sfx = uuid.uuid4().hex[:6]
    r = admin.post(
        "/api/v1/channels",
        json={"name": f"核对-{sfx}", "staff_userids": ["zhangsan", "lisi", "zhaoliu"]},
        headers={"X-CSRF-Token": admin.csrf},
    )
    assert r.status_code == 201, r.text
    channel_id = r.json()["id"]
    added, ended_at = days.today_at(600), days.today_at(60)  # today's, for the home page's figures
    ended = {"c2": "lost", "c3": "deleted", "c5": "transferred", "c7": "deleted"}
    who = {"c1": "zhangsan", "c2": "zhangsan", "c3": "zhangsan", "c4": "lisi", "c5": "lisi"}
    with db.tenant_session(world.a.id) as s:
        state = s.get(Channel, channel_id).state
        for key in ("c1", "c2", "c3", "c4", "c5", "c6", "c7"):
            userid = who.get(key, "zhaoliu")
            ext = f"wmF{key}{sfx}"
            made.append(_add(s, None, ext, f"核对客户{key}", userid, added, state=state))
            if key in ended:
                fields = {"UserID": userid, "ExternalUserID": ext, "CreateTime": ended_at}
                if ended[key] == "transferred":
                    fields["Source"] = "DELETE_BY_TRANSFER"
                customers.record_follow_ended(s, fields, ended[key])
    return channel_id


def _tiles(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-stat="(\w+)">(\d+)<', html)}


def _row(html: str, channel_id: int) -> dict[str, int]:
    row = re.search(rf'<tr data-channel="{channel_id}">(.*?)</tr>', html, re.S).group(1)
    return {k: int(v) for k, v in re.findall(r'<td data-stat="(\w+)">(\d+)</td>', row)}


def test_a_channels_figures_add_up_within_each_viewers_scope(as_role, seeded):
    """Customers a member deleted were counted nowhere: 新增 34, 流失 6, 净增 28 while only 27
    were still followed; and an agent's or a supervisor's channel page showed the whole tenant's
    figures over a customer list of their own."""
    admin = as_role("admin")
    channel_id = seeded(admin)
    expected = {
        # 张三 (c1 active, c2 lost, c3 deleted), 李四 (c4 active, c5 transferred), 赵六 (c6, c7 deleted)
        "admin": {"adds": 7, "losses": 1, "deleted": 2, "transferred": 1, "net": 4, "active": 3},
        "agent": {"adds": 3, "losses": 1, "deleted": 1, "transferred": 0, "net": 1, "active": 1},
        # 王五 sees 张三 (销售一组, under his 销售部) and 李四 (he is her direct leader), not 赵六
        "supervisor": {"adds": 5, "losses": 1, "deleted": 1, "transferred": 1, "net": 3, "active": 2},
    }
    scope_words = {"admin": "全公司", "agent": "我的客户", "supervisor": "我团队的客户"}
    for role, want in expected.items():
        client = admin if role == "admin" else as_role(role)
        assert want["adds"] == want["active"] + want["losses"] + want["deleted"] + want["transferred"]
        assert want["net"] == want["adds"] - want["losses"] - want["deleted"]
        one = client.get(f"/api/v1/channels/{channel_id}").json()
        assert {k: one["totals"][k] for k in FIGURES} == want, role
        assert one["totals"]["scope"] == ("tenant" if role == "admin" else "visible_staff")
        listed = {c["id"]: c for c in client.get("/api/v1/channels").json()}[channel_id]
        assert listed["totals"] == one["totals"], role
        stats = client.get(f"/api/v1/channels/{channel_id}/stats").json()
        assert stats["totals"] == one["totals"], role
        for k in ("adds", "losses", "deleted", "net"):
            assert sum(d[k] for d in stats["days"]) == want[k], (role, k)
        for d in stats["days"]:
            assert d["net"] == d["adds"] - d["losses"] - d["deleted"]

        page = client.get(f"/channels/{channel_id}").text
        assert {k: v for k, v in _tiles(page).items() if k in FIGURES} == want, role
        assert "客户删除了成员" in page and "成员删除了客户" in page
        assert scope_words[role] in page, role
        rows = re.findall(
            r"<tr[^>]*><td>\d{4}-\d\d-\d\d</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(-?\d+)</td>",
            page,
        )
        assert [sum(int(r[i]) for r in rows) for i in range(4)] == [
            want["adds"],
            want["losses"],
            want["deleted"],
            want["net"],
        ], role
        listing = client.get("/channels").text
        shown = _row(listing, channel_id)
        assert {k: shown[k] for k in ("adds", "losses", "deleted", "net", "active")} == {
            k: want[k] for k in ("adds", "losses", "deleted", "net", "active")
        }, role
        assert "客户删除了成员" in listing and "成员删除了客户" in listing
        assert scope_words[role] in listing, role


def test_the_home_page_counts_todays_deletions_apart_from_losses(as_role, seeded):
    """今日新增, 今日流失 and 跟进中 left out the customers a member deleted today."""
    days.clear_of_midnight(120)  # the figures before and after on one day
    agent, admin = as_role("agent"), as_role("admin")
    before = {who: _tiles(c.get("/").text) for who, c in (("agent", agent), ("admin", admin))}
    seeded(admin)
    after = {who: _tiles(c.get("/").text) for who, c in (("agent", agent), ("admin", admin))}
    grew = {who: {k: after[who][k] - before[who][k] for k in after[who]} for who in after}
    assert grew["agent"] == {"adds": 3, "losses": 1, "deleted": 1, "active": 1}
    assert grew["admin"] == {"adds": 7, "losses": 1, "deleted": 2, "active": 3}
    page = agent.get("/").text
    assert "客户删除了成员" in page and "成员删除了客户" in page


def test_the_home_page_counts_a_customer_awaiting_acceptance_apart_as_the_list_does(as_role, db, world):
    """A customer who added 张三 through a code that needs his acceptance (待通过) was counted
    among 跟进中 on the home page (125) while the customer list's 跟进中 showed 124. The home
    page counts them apart, and its line opens the list of those waiting."""
    agent = as_role("agent")

    def listed(status: str) -> int:
        return int(re.search(r"共 (\d+) 位", agent.get("/customers", params={"status": status}).text)[1])

    before = _tiles(agent.get("/").text)["active"]
    assert before == listed("active")
    ext = f"wmHalf{uuid.uuid4().hex[:6]}"
    with db.tenant_session(world.a.id) as s:
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": int(time.time()), "State": ""}
        customer_id = customers.record_added(
            s, fields, {"external_contact": {"external_userid": ext, "name": "待通过客户"}}, half=True
        ).id
    try:
        page = agent.get("/").text
        assert _tiles(page)["active"] == before == listed("active")
        waiting = re.search(
            r'<a href="/customers\?status=half" id="awaiting-acceptance">(\d+) 位待通过</a>', page
        )
        assert waiting and int(waiting[1]) == listed("half") >= 1
    finally:
        with db.tenant_session(world.a.id) as s:
            s.execute(delete(TimelineEvent).where(TimelineEvent.customer_id == customer_id))
            s.execute(delete(Follow).where(Follow.customer_id == customer_id))
            s.execute(delete(Customer).where(Customer.id == customer_id))


def test_a_channel_name_is_taken_while_an_enabled_channel_has_it(as_role, world):
    """POST /api/v1/channels {"name": "官网首页"} made a second 官网首页 beside the enabled one."""
    admin, admin_b = as_role("admin"), as_role("admin", "b")
    csrf = {"X-CSRF-Token": admin.csrf}
    name = f"Spring Sale {uuid.uuid4().hex[:6]}"
    first = admin.post("/api/v1/channels", json={"name": name, "staff_userids": ["zhangsan"]}, headers=csrf)
    assert first.status_code == 201, first.text
    count = len(admin.get("/api/v1/channels").json())
    ways = len(_ways_named(world, world.a, name))
    for same in (name, f"  {name.upper()} ", name.replace(" ", "\u3000"), name.replace(" ", "  ").lower()):
        r = admin.post("/api/v1/channels", json={"name": same, "staff_userids": ["lisi"]}, headers=csrf)
        assert r.status_code == 409, (same, r.text)
        assert "已有启用中的渠道" in r.json()["detail"] and name in r.json()["detail"]
    assert len(admin.get("/api/v1/channels").json()) == count
    assert len(_ways_named(world, world.a, name)) == ways  # no code was made in WeCom either

    # Renaming another channel to it is refused too; a channel keeps its own name in any case.
    other = admin.post(
        "/api/v1/channels", json={"name": f"{name} 二", "staff_userids": ["zhangsan"]}, headers=csrf
    ).json()
    r = admin.patch(f"/api/v1/channels/{other['id']}", json={"name": name.lower()}, headers=csrf)
    assert r.status_code == 409 and "已有启用中的渠道" in r.json()["detail"]
    assert admin.get(f"/api/v1/channels/{other['id']}").json()["name"] == f"{name} 二"
    r = admin.patch(f"/api/v1/channels/{first.json()['id']}", json={"name": name.upper()}, headers=csrf)
    assert r.status_code == 200 and r.json()["name"] == name.upper()

    # The pages say so and keep what was typed.
    r = admin.post(
        "/channels/new",
        data={"csrf_token": admin.csrf, "name": name, "staff_userids": ["lisi"], "welcome_text": "你好"},
    )
    assert r.status_code == 409 and "已有启用中的渠道" in r.text and 'value="' + name + '"' in r.text
    assert "你好</textarea>" in r.text
    r = admin.post(
        f"/channels/{other['id']}/edit",
        data={"csrf_token": admin.csrf, "name": name, "staff_userids": ["zhangsan"]},
    )
    assert r.status_code == 409 and "已有启用中的渠道" in r.text
    assert len(admin.get("/api/v1/channels").json()) == count + 1

    # Another tenant may use it; so may this one once the channel is disabled.
    r = admin_b.post(
        "/api/v1/channels",
        json={"name": name, "staff_userids": ["zhangsan"]},
        headers={"X-CSRF-Token": admin_b.csrf},
    )
    assert r.status_code == 201, r.text
    assert admin.post(f"/api/v1/channels/{first.json()['id']}/disable", headers=csrf).status_code == 200
    r = admin.post("/api/v1/channels", json={"name": name, "staff_userids": ["lisi"]}, headers=csrf)
    assert r.status_code == 201, r.text


def test_channels_created_at_once_under_one_name_make_one(as_role, world):
    """Four admins pressing 创建 together: one channel, three refusals, and no stray code in WeCom."""
    admin = as_role("admin")
    name = f"同时-{uuid.uuid4().hex[:6]}"

    def create(_):
        return admin.post(
            "/api/v1/channels",
            json={"name": name, "staff_userids": ["zhangsan"]},
            headers={"X-CSRF-Token": admin.csrf},
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(create, range(4)))
    assert codes == [201, 409, 409, 409]
    assert [c["name"] for c in admin.get("/api/v1/channels").json()].count(name) == 1
    assert len(_ways_named(world, world.a, name)) == 1


def test_a_rename_that_loses_the_name_to_another_admin_leaves_wecom_as_siyu_has_it(as_role, world, db):
    """Another admin took the name while WeCom changed this code (WeCom is slow to answer, here
    by 3 s): the rename is refused, and the code's 备注 in WeCom is its old name again, as
    Siyu's is. WeCom had kept the new remark, naming the other channel's poster."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    sfx = uuid.uuid4().hex[:6]
    ids = {}
    for made in ("甲", "乙"):
        r = admin.post(
            "/api/v1/channels", json={"name": f"{made}-{sfx}", "staff_userids": ["zhangsan"]}, headers=csrf
        )
        assert r.status_code == 201, r.text
        ids[made] = r.json()["id"]
    corp_id = world.a.corp["corp_id"]

    def rename(which: str) -> int:
        return admin.patch(
            f"/api/v1/channels/{ids[which]}", json={"name": f"丙-{sfx}"}, headers=csrf
        ).status_code

    with wecom_fault(world, SLOW_PATH, delay_s=3.0) as faults, ThreadPoolExecutor(1) as pool:
        first = pool.submit(rename, "甲")
        while httpx.get(faults).json():  # 甲's change is with WeCom, which takes its time
            time.sleep(0.05)
        codes = sorted([rename("乙"), first.result()])
    assert codes == [200, 409]
    names = {c["id"]: c["name"] for c in admin.get("/api/v1/channels").json()}
    renamed = [w for w, i in ids.items() if names[i] == f"丙-{sfx}"]
    kept = [w for w, i in ids.items() if names[i] == f"{w}-{sfx}"]
    assert len(renamed) == len(kept) == 1, names  # one took the name, the other kept its own
    with db.tenant_session(world.a.id) as s:
        config = {i: s.get(Channel, i).config_id for i in ids.values()}
    ways = {
        w["config_id"]: w for w in httpx.get(f"{world.emu_url}/_emulator/corps/{corp_id}/contact_ways").json()
    }
    for i in ids.values():  # each code's 备注 in WeCom is its channel's name in Siyu
        assert ways[config[i]]["remark"] == names[i][:30], (names[i], ways[config[i]]["remark"])
    assert len(_ways_named(world, world.a, f"丙-{sfx}")) == 1


def test_members_changed_while_wecom_changes_the_welcome_stay_as_wecom_has_them(as_role, world, db):
    """A change that leaves the members alone does not send them to WeCom; another admin's
    change of members saved while WeCom answers it stays, in Siyu as in WeCom, rather than
    Siyu going back to the members the first change was read with."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    r = admin.post(
        "/api/v1/channels",
        json={"name": f"慢-{uuid.uuid4().hex[:6]}", "staff_userids": ["zhangsan", "lisi"]},
        headers=csrf,
    )
    assert r.status_code == 201, r.text
    url = f"/api/v1/channels/{r.json()['id']}"
    corp_id = world.a.corp["corp_id"]
    with wecom_fault(world, SLOW_PATH, delay_s=3.0) as faults, ThreadPoolExecutor(1) as pool:
        welcome = pool.submit(admin.patch, url, json={"welcome_text": "慢慢来"}, headers=csrf)
        while httpx.get(faults).json():  # the welcome change is with WeCom, which takes its time
            time.sleep(0.05)
        members = admin.patch(url, json={"staff_userids": ["zhangsan", "lisi", "wangwu"]}, headers=csrf)
        assert members.status_code == 200, members.text
        assert welcome.result().status_code == 200, welcome.result().text
    stored = admin.get(url).json()
    assert stored["welcome_text"] == "慢慢来"
    assert stored["staff_userids"] == ["zhangsan", "lisi", "wangwu"]
    with db.tenant_session(world.a.id) as s:
        config_id = s.get(Channel, stored["id"]).config_id
    ways = httpx.get(f"{world.emu_url}/_emulator/corps/{corp_id}/contact_ways").json()
    assert next(w for w in ways if w["config_id"] == config_id)["user"] == ["zhangsan", "lisi", "wangwu"]
    admin.post(f"{url}/disable", headers=csrf)


def test_channels_that_shared_a_name_before_the_check_can_still_be_edited(as_role, world, db):
    """Two enabled channels named alike before names were checked (an upgrade keeps them):
    changing one's welcome text, its name untouched, was refused as a name taken (409), on the
    API and the page, so neither could be edited without a rename."""
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    name = f"老渠道-{uuid.uuid4().hex[:6]}"
    ids = []
    for made in (name, f"{name}-b"):
        r = admin.post("/api/v1/channels", json={"name": made, "staff_userids": ["zhangsan"]}, headers=csrf)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    with db.tenant_session(world.a.id) as s:  # as the data stands from before the check
        s.get(Channel, ids[1]).name = name
    r = admin.patch(f"/api/v1/channels/{ids[1]}", json={"welcome_text": "欢迎"}, headers=csrf)
    assert r.status_code == 200, r.text
    assert r.json()["welcome_text"] == "欢迎" and r.json()["name"] == name
    r = admin.post(
        f"/channels/{ids[0]}/edit",
        data={"csrf_token": admin.csrf, "name": name, "staff_userids": ["zhangsan"], "welcome_text": "你好"},
    )
    assert r.status_code == 303, r.text
    with db.tenant_session(world.a.id) as s:
        assert s.get(Channel, ids[0]).welcome_text == "你好"
    # a third channel still may not take the name
    r = admin.post("/api/v1/channels", json={"name": name, "staff_userids": ["lisi"]}, headers=csrf)
    assert r.status_code == 409, r.text
