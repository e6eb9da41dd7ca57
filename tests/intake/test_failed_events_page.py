"""Events given up run again from 设置 → 未处理的回调事件 or the API, and the worker then
handles them: before, only `siyu events retry` on the server did."""

from __future__ import annotations

import uuid
from contextlib import closing

from sqlalchemy import select

from siyu.customers.models import Customer
from siyu.tenancy import service as tenancy
from tests.support.stack import wait_for
from tests.web.conftest import PASSWORD, login


def test_an_admin_runs_given_up_events_again_from_the_page_and_the_api_once_the_cause_is_mended(stack):
    admin_login = f"admin-{uuid.uuid4().hex[:6]}"
    with stack.session() as s:
        tenancy.add_person(s, admin_login, "管理员", "admin", PASSWORD)
    ids = stack.given_up_events("wmPage1", "wmApi2")

    with closing(login(stack.siyu, admin_login)) as admin:
        assert "2 个企业微信回调事件多次处理失败" in admin.get("/").text
        page = admin.get("/setup/events").text
        assert f'id="event-{ids[0]}"' in page and "客户添加" in page and "无权限" in page, page

        stack.control("DELETE", "/faults")  # the admin grants the permission
        r = admin.post(f"/setup/events/{ids[0]}/retry", data={"csrf_token": admin.csrf})
        assert r.status_code == 303 and "已重新排队 1 个事件" in admin.get(r.headers["location"]).text
        r = admin.post("/api/v1/events/retry-failed", headers={"X-CSRF-Token": admin.csrf})
        assert r.json() == {"queued": 1}, r.text

        wait_for(lambda: stack.event_statuses(ids) == ["done", "done"])  # the running worker took them up
        with stack.session() as s:
            found = s.scalars(
                select(Customer.external_userid).where(Customer.external_userid.in_(["wmPage1", "wmApi2"]))
            )
            assert sorted(found) == ["wmApi2", "wmPage1"]
        assert "没有处理失败的回调事件" in admin.get("/setup/events").text
        assert "回调事件多次处理失败" not in admin.get("/").text
