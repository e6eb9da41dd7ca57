"""Channels whose members left the company (Staff.active False after a staff sync), edited from
the form as a browser sends it and through the API, against the WeCom emulator."""

from __future__ import annotations

import html
import re

import httpx

from siyu.customers.models import Channel
from tests.web.conftest import zhaoliu_left

_CHECKBOX = re.compile(r'<input type="checkbox" name="(\w+)" value="([^"]*)"\s*(checked)?')
_FIELD = re.compile(r'<input (?:type="hidden" )?name="(\w+)"(?: type="\w+")? value="([^"]*)"')


def browser_form(page: str, **changes) -> dict:
    """What a browser sends from the channel form in `page`: its fields as filled in, the ticked
    boxes, and `changes` over them."""
    form = page[page.index("<form method") :]
    sent: dict = {}
    for name, value in _FIELD.findall(form):
        sent[name] = html.unescape(value)
    for name, value, checked in _CHECKBOX.findall(form):
        if checked:
            sent.setdefault(name, []).append(html.unescape(value))
    welcome = re.search(r'<textarea name="welcome_text"[^>]*>(.*?)</textarea>', form, re.S)
    sent["welcome_text"] = html.unescape(welcome.group(1))
    sent["skip_verify"] = (sent.get("skip_verify") or [""])[0]
    sent.update(changes)
    return sent


def boxes(page: str) -> dict[str, bool]:
    """The member boxes of the form: userid → ticked."""
    return {v: bool(c) for n, v, c in _CHECKBOX.findall(page) if n == "staff_userids"}


def way_users(world, db, channel_id: int) -> list[str]:
    with db.tenant_session(world.a.id) as s:
        config_id = s.get(Channel, channel_id).config_id
    ways = httpx.get(f"{world.emu_url}/_emulator/corps/{world.a.corp['corp_id']}/contact_ways").json()
    return sorted(next(w for w in ways if w["config_id"] == config_id)["user"])


def saved(admin, channel_id: int, sent: dict) -> dict:
    """The edit form `sent`, taken (303): the channel as the API reads it then."""
    r = admin.post(f"/channels/{channel_id}/edit", data=sent)
    assert r.status_code == 303, r.text
    return admin.get(f"/api/v1/channels/{channel_id}").json()


def test_a_two_member_channel_with_a_leaver_saves_from_its_form_and_the_leaver_can_be_removed(
    as_role, new_channel, world, db
):
    """The form listed only members still in the company: 赵六, who left, was no box, so the
    browser sent 张三 alone, which Siyu took for a multi-member code cut to a single-member one
    and refused (多人码不能改为单人码…) whatever was changed; removing 赵六 could not be done
    either. WeCom keeps a code's type and takes one member in a multi-member code."""
    admin = as_role("admin")
    ch = new_channel(admin, "赵六和张三的易拉宝", ["zhangsan", "zhaoliu"])
    edit = f"/channels/{ch['id']}/edit"
    with zhaoliu_left(world, db):
        page = admin.get(edit).text
        assert boxes(page)["zhaoliu"] is True and boxes(page)["zhangsan"] is True
        assert "赵六（已离职或停用）" in page
        assert (
            "赵六 已离职或停用，扫码的客户只会加给其他接待成员。赵六仍勾选在下面："
            "取消勾选并保存即可移除；不移除也能保存其他修改。"
        ) in page

        # another change: saved, the members left as they are (not sent to WeCom)
        got = saved(admin, ch["id"], browser_form(page, name="易拉宝改名"))
        assert got["name"] == "易拉宝改名" and got["staff_userids"] == ["zhangsan", "zhaoliu"]
        assert got["notice"] == "赵六 已离职或停用，不再接待：可从接待成员中移除"
        assert way_users(world, db, ch["id"]) == ["zhangsan", "zhaoliu"]

        # unticked: removed, here and in WeCom; the code stays a multi-member one
        page = admin.get(edit).text
        sent = browser_form(page)
        sent["staff_userids"] = ["zhangsan"]
        got = saved(admin, ch["id"], sent)
        assert got["staff_userids"] == ["zhangsan"] and got["notice"] == ""
        assert way_users(world, db, ch["id"]) == ["zhangsan"]
        page = admin.get(edit).text
        assert "已离职" not in page and "zhaoliu" not in boxes(page)

        # …and can be given a second member again
        saved(admin, ch["id"], browser_form(page, staff_userids=["zhangsan", "lisi"]))
        assert way_users(world, db, ch["id"]) == ["lisi", "zhangsan"]


def test_a_leaver_kept_beside_a_new_member_is_refused_naming_them_and_the_form_keeps_the_box(
    as_role, new_channel, world, db
):
    admin = as_role("admin")
    ch = new_channel(admin, "赵六的三人码", ["zhangsan", "zhaoliu"])
    edit = f"/channels/{ch['id']}/edit"
    with zhaoliu_left(world, db):
        page = admin.get(edit).text
        r = admin.post(edit, data=browser_form(page, staff_userids=["zhangsan", "lisi", "zhaoliu"]))
        assert r.status_code == 422
        assert "「赵六」已离职或停用：请在成员中换人或移除后再保存" in r.text
        assert boxes(r.text) == {**boxes(r.text), "lisi": True, "zhaoliu": True}
        assert way_users(world, db, ch["id"]) == ["zhangsan", "zhaoliu"]
        # a refused form unticked: the leaver's box is still there to tick again
        r = admin.post(edit, data=browser_form(page, name="", staff_userids=["zhangsan"]))
        assert r.status_code == 422 and boxes(r.text)["zhaoliu"] is False


def test_a_single_member_channel_whose_member_left_says_scans_reach_nobody_and_takes_a_new_member(
    as_role, new_channel, world, db
):
    """Its other fields still save (the scans still reach nobody, and it still says so); left with
    no member it is refused; a member still in the company takes 赵六's place."""
    admin = as_role("admin")
    ch = new_channel(admin, "赵六的海报", ["zhaoliu"])
    edit = f"/channels/{ch['id']}/edit"
    with zhaoliu_left(world, db):
        page = admin.get(edit).text
        assert boxes(page)["zhaoliu"] is True
        assert (
            "赵六 已离职或停用，扫码的客户无人接待：请取消勾选赵六，另选一位在职的成员后保存"
            "（只改其他内容也能保存，但扫码仍无人接待）。"
        ) in page
        got = saved(admin, ch["id"], browser_form(page, welcome_text="欢迎光临"))
        assert got["welcome_text"] == "欢迎光临" and got["staff_userids"] == ["zhaoliu"]
        assert got["notice"] == "接待成员 赵六 已离职或停用，扫码的客户无人接待：请换一位成员"

        r = admin.post(edit, data=browser_form(page, staff_userids=[]))
        assert r.status_code == 422 and "请选择至少一位成员或一个部门" in r.text
        got = saved(admin, ch["id"], browser_form(admin.get(edit).text, staff_userids=["lisi"]))
        assert got["staff_userids"] == ["lisi"] and got["notice"] == ""
        assert way_users(world, db, ch["id"]) == ["lisi"]


def test_the_api_removes_a_leaver_from_a_two_member_channel_and_refuses_a_channel_left_with_none(
    as_role, new_channel, world, db
):
    admin = as_role("admin")
    csrf = {"X-CSRF-Token": admin.csrf}
    pair = new_channel(admin, "API 两人码", ["zhangsan", "zhaoliu"])
    alone = new_channel(admin, "API 赵六单人码", ["zhaoliu"])
    with zhaoliu_left(world, db):
        path = f"/api/v1/channels/{pair['id']}"
        r = admin.patch(path, json={"staff_userids": ["zhangsan"]}, headers=csrf)
        assert r.status_code == 200, r.text
        assert r.json()["staff_userids"] == ["zhangsan"] and r.json()["notice"] == ""
        assert (r.json()["way_type"], alone["way_type"]) == (2, 1)  # a multi-member code still
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
