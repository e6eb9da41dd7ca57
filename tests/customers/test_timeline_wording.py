"""How the customer timeline words a cleared remark and a group WeCom never described."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

import pytest

from siyu.conversations import groups
from siyu.customers import service as customers
from tests.sla.conftest import local_tenant
from tests.support.signed_in import SignedIn


@pytest.fixture
def w(db, settings):
    return local_tenant(db, settings)


def _contact(ext: str, name: str, userid: str, at: int, remark: str = "") -> dict:
    return {
        "external_contact": {"external_userid": ext, "name": name, "type": 1, "gender": 1, "avatar": ""},
        "follow_user": [
            {
                "userid": userid,
                "remark": remark,
                "description": "",
                "createtime": at,
                "add_way": 1,
                "tags": [],
            }  # fmt: skip
        ],
    }


def _added(db, tid, name: str, remark: str = "") -> tuple[str, int, int]:
    ext = "wm" + secrets.token_hex(8)
    at = int(datetime(2026, 3, 2, 2, 0, tzinfo=UTC).timestamp())
    with db.tenant_session(tid) as s:
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": at}
        cid = customers.record_added(s, fields, _contact(ext, name, "zhangsan", at, remark)).id
    return ext, cid, at


def test_a_join_to_a_group_wecom_never_told_about_names_the_group_as_the_page_does(w, db):
    """groupchat/get refused (60011): the customer's page lists the group as 「群聊 <id>」, and
    the timeline's entry for the same join names it so (it had said only 加入客户群（扫描群二维码）)."""
    rt, tid = w
    ext, cid, at = _added(db, tid, "群里的客户")
    chat_id = "wrUnknown" + secrets.token_hex(4)
    change = {"UpdateDetail": "add_member", "MemChangeList": ext, "JoinScene": "3", "CreateTime": at + 60}
    with db.tenant_session(tid) as s:
        groups.record_event_only(s, chat_id, change, "60011", datetime.now(UTC))
    admin = SignedIn(rt, tid, "admin")
    profile = admin("GET", f"/api/v1/customers/{cid}").json()
    assert [g["name"] for g in profile["groups"]] == [f"群聊 {chat_id}"]  # the page's name for it
    timeline = admin("GET", f"/api/v1/customers/{cid}/timeline").json()
    joined = [e for e in timeline if e["kind"] == "group_joined"]
    assert len(joined) == 1
    # it had read 加入客户群（扫描群二维码）: no group named at all
    assert f"群聊 {chat_id}" in joined[0]["text"], joined[0]["text"]
    page = admin("GET", f"/customers/{cid}").text
    entry = re.search(r'<li class="ev ev-group_joined">(.*?)</li>', page, re.S).group(1)
    assert f"群聊 {chat_id}" in entry, entry


def test_a_remark_cleared_in_wecom_is_not_told_as_a_change_to_nothing(w, db):
    """The member clears the remark 王姐-报价 in WeCom (edit_external_contact): the timeline had
    read 张三 修改了备注： and then nothing, as if cut off."""
    rt, tid = w
    ext, cid, at = _added(db, tid, "王女士", remark="王姐-报价")
    with db.tenant_session(tid) as s:
        fields = {"UserID": "zhangsan", "ExternalUserID": ext, "CreateTime": at + 600}
        customers.record_edited(s, fields, _contact(ext, "王女士", "zhangsan", at, remark=""))
    events = SignedIn(rt, tid, "admin")("GET", f"/api/v1/customers/{cid}/timeline").json()
    remarks = [e["text"] for e in events if e["kind"] == "remark"]
    assert len(remarks) == 1
    assert remarks == ["清空了备注"]
