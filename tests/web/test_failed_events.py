"""设置 → 未处理的回调事件 (/setup/events) and /api/v1/events: the callback events Siyu gave
up on had been shown by `siyu events failed` on the server alone; an admin who uses no shell
never learnt that WeCom's events (a customer added) were lost, nor could run them again."""

from __future__ import annotations

import hashlib
import html
import uuid
from contextlib import contextmanager

from sqlalchemy import delete, select

from siyu.customers.models import Customer
from siyu.intake.models import CallbackEvent
from siyu.wecom.events import event_xml
from tests.support.openapi import problems, response_schema
from tests.web.conftest import fits_the_phone, sign_in

# as WeCom words it: a long link, which must wrap rather than widen the page past a phone's
LONG = (
    ", hint: [1796532523613803234688105], from ip: 127.0.0.1,"
    " more info at https://open.work.weixin.qq.com/devtool/query?e=60011"
)


def _event(db, tenant_id: int, error: str, status: str = "failed", **fields) -> int:
    xml = event_xml(
        {
            "ToUserName": "corp", "FromUserName": "sys", "CreateTime": 1764036000, "MsgType": "event",
            "Event": "change_external_contact", "ChangeType": "add_external_contact",
            "Nonce": uuid.uuid4().hex, **fields,
        }
    )  # fmt: skip
    kind = (
        f"{fields.get('Event', 'change_external_contact')}/{fields.get('ChangeType', 'add_external_contact')}"
    )
    with db.tenant_session(tenant_id) as s:
        event = CallbackEvent(
            kind=kind,
            digest=hashlib.sha256(xml.encode()).hexdigest(),
            xml=xml,
            status=status,
            attempts=34,
            last_error=error,
        )
        s.add(event)
        s.flush()
        return event.id


@contextmanager
def _failed_events(db, world):
    """An add event of 王女士 with 张三 and a group change given up in tenant 甲, one given up
    in 乙, and a pending one in 甲; all removed after (the world is shared)."""
    with db.tenant_session(world.a.id) as s:
        ext = s.scalar(select(Customer.external_userid).where(Customer.id == world.a.customers["王女士"]))
    ids = {
        "add": _event(
            db,
            world.a.id,
            f"客户联系 Secret 无权限 (errcode 60011){LONG}",
            UserID="zhangsan",
            ExternalUserID=ext,
        ),
        "group": _event(
            db,
            world.a.id,
            "群不存在 (errcode 40050)",
            Event="change_external_chat",
            ChangeType="update",
            ChatId="wrGone",
        ),  # fmt: skip
        "pending": _event(db, world.a.id, "", status="pending", UserID="lisi", ExternalUserID=ext),
        "foreign": _event(
            db, world.b.id, "乙的错误 (errcode 42001)", UserID="zhangsan", ExternalUserID="wmB"
        ),
    }
    try:
        yield ids
    finally:
        for tenant_id in (world.a.id, world.b.id):
            with db.tenant_session(tenant_id) as s:
                s.execute(delete(CallbackEvent).where(CallbackEvent.id.in_(ids.values())))


def _status(db, world, event_id: int) -> str:
    with db.tenant_session(world.a.id) as s:
        return s.scalar(select(CallbackEvent.status).where(CallbackEvent.id == event_id))


def test_an_admin_sees_the_tenants_failed_events_and_queues_them_again(as_role, db, world):
    admin, supervisor, agent = as_role("admin"), as_role("supervisor"), as_role("agent")
    with _failed_events(db, world) as ids:
        page = admin.get("/setup/events")
        assert page.status_code == 200, page.text
        text = html.unescape(page.text)
        row = text.split(f'id="event-{ids["add"]}"', 1)[1].split("</tr>", 1)[0]
        assert "客户添加" in row and "王女士" in row and "张三" in row, row
        assert "无权限 (errcode 60011)" in row and "34 次" in row, row
        group = text.split(f'id="event-{ids["group"]}"', 1)[1].split("</tr>", 1)[0]
        assert "客户群变更" in group and "wrGone" in group, group
        assert text.index(f'id="event-{ids["group"]}"') < text.index(
            f'id="event-{ids["add"]}"'
        )  # newest first
        assert "乙的错误" not in text and f'id="event-{ids["pending"]}"' not in text
        assert "全部重新处理（2 个）" in text
        # found from the home page and 设置, by admins
        assert "2 个企业微信回调事件多次处理失败" in admin.get("/").text
        assert 'href="/setup/events"' in admin.get("/setup").text
        assert "/setup/events" not in agent.get("/").text
        for other in (supervisor, agent):
            assert other.get("/setup/events").status_code == 403
            r = other.post(f"/setup/events/{ids['add']}/retry", data={"csrf_token": other.csrf})
            assert r.status_code == 403
            assert other.post("/setup/events/retry-all", data={"csrf_token": other.csrf}).status_code == 403
        assert _status(db, world, ids["add"]) == "failed"

        assert admin.post(f"/setup/events/{ids['add']}/retry").status_code == 403  # no CSRF token
        r = admin.post(f"/setup/events/{ids['add']}/retry", data={"csrf_token": admin.csrf})
        assert r.status_code == 303 and r.headers["location"] == "/setup/events?queued=1"
        assert "已重新排队 1 个事件" in admin.get(r.headers["location"]).text
        assert _status(db, world, ids["add"]) == "pending"
        r = admin.post(f"/setup/events/{ids['add']}/retry", data={"csrf_token": admin.csrf})
        assert "已不是失败状态" in admin.get(r.headers["location"]).text  # a second click
        r = admin.post(f"/setup/events/{ids['foreign']}/retry", data={"csrf_token": admin.csrf})
        assert r.status_code == 404 and "找不到这个回调事件" in r.text
        with db.tenant_session(world.b.id) as s:
            assert s.get(CallbackEvent, ids["foreign"]).status == "failed"

        r = admin.post("/setup/events/retry-all", data={"csrf_token": admin.csrf}, follow_redirects=True)
        assert "已重新排队 1 个事件" in r.text and "没有处理失败的回调事件" in r.text
        r = admin.post("/setup/events/retry-all", data={"csrf_token": admin.csrf}, follow_redirects=True)
        assert "没有处理失败的事件需要重新处理" in r.text
        assert _status(db, world, ids["group"]) == "pending"
        assert "回调事件多次处理失败" not in admin.get("/").text


def test_the_api_lists_and_queues_failed_events_and_hides_another_tenants(as_role, db, world):
    admin, agent = as_role("admin"), as_role("agent")
    spec = admin.get("/api/v1/openapi.json").json()
    h = {"X-CSRF-Token": admin.csrf}

    def fits(r, path: str, method: str) -> None:
        assert not problems(spec, response_schema(spec, path, method, r.status_code), r.json()), r.text

    with _failed_events(db, world) as ids:
        r = admin.get("/api/v1/events/failed", params={"per_page": 1})
        assert r.status_code == 200, r.text
        fits(r, "/api/v1/events/failed", "get")
        first = r.json()
        assert first["total"] == 2 and [e["id"] for e in first["items"]] == [ids["group"]]
        assert first["items"][0]["kind_name"] == "客户群变更" and first["items"][0]["chat_id"] == "wrGone"
        [add] = admin.get("/api/v1/events/failed", params={"after": first["next"]}).json()["items"]
        assert add["id"] == ids["add"] and add["kind_name"] == "客户添加"
        assert (add["customer_name"], add["staff_name"], add["attempts"]) == ("王女士", "张三", 34)
        assert "60011" in add["last_error"]
        assert agent.get("/api/v1/events/failed").status_code == 403
        r = agent.post(f"/api/v1/events/{ids['add']}/retry", headers={"X-CSRF-Token": agent.csrf})
        assert r.status_code == 403
        assert admin.post(f"/api/v1/events/{ids['add']}/retry").status_code == 403  # no CSRF header

        foreign = admin.post(f"/api/v1/events/{ids['foreign']}/retry", headers=h)
        missing = admin.post("/api/v1/events/999999999/retry", headers=h)
        assert foreign.status_code == missing.status_code == 404 and foreign.json() == missing.json()
        fits(foreign, "/api/v1/events/{event_id}/retry", "post")
        pending = admin.post(f"/api/v1/events/{ids['pending']}/retry", headers=h)
        assert pending.status_code == 409 and "not failed" in pending.json()["detail"], pending.text
        # its Chinese half says the status in Chinese, not WeCom-side English (（pending）)
        chinese = pending.json()["detail"].split(" / ")[0]
        assert chinese == "这个事件不是失败状态（等待处理），无需重新处理", chinese
        fits(pending, "/api/v1/events/{event_id}/retry", "post")

        r = admin.post(f"/api/v1/events/{ids['add']}/retry", headers=h)
        assert r.status_code == 200 and r.json() == {"queued": 1}, r.text
        fits(r, "/api/v1/events/{event_id}/retry", "post")
        r = admin.post("/api/v1/events/retry-failed", headers=h)
        assert r.status_code == 200 and r.json() == {"queued": 1}, r.text
        fits(r, "/api/v1/events/retry-failed", "post")
        assert admin.get("/api/v1/events/failed").json()["total"] == 0
        with db.tenant_session(world.b.id) as s:
            assert s.get(CallbackEvent, ids["foreign"]).status == "failed"


def test_the_page_fits_a_phone_and_a_desktop_and_its_button_queues_the_event(page, siyu, db, world):
    with _failed_events(db, world) as ids:
        sign_in(page, siyu, world.a.logins["admin"], "/setup/events")
        row = page.locator(f"#event-{ids['add']}")
        assert "客户添加" in row.inner_text() and "王女士" in row.inner_text()
        fits_the_phone(page)
        # on a desktop too, WeCom's long error wraps: the row's button is in sight, not scrolled off
        page.set_viewport_size({"width": 1280, "height": 800})
        button, table = row.get_by_role("button", name="重新处理").bounding_box(), page.locator(".table-wrap")
        assert button["x"] + button["width"] <= table.bounding_box()["x"] + table.bounding_box()["width"]
        page.set_viewport_size({"width": 390, "height": 844})
        row.get_by_role("button", name="重新处理").click()
        assert page.get_by_text("已重新排队 1 个事件", exact=False).count() == 1
        assert page.locator(f"#event-{ids['add']}").count() == 0
        assert _status(db, world, ids["add"]) == "pending"
