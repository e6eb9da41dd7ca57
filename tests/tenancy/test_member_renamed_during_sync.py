"""A staff sync that read WeCom's directory before a member's userid was changed, and saves it
after Siyu handled the rename (change_contact update_user with NewUserID)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, select, text

from siyu.intake.models import CallbackEvent
from siyu.tenancy.models import MemberRename, Staff
from tests.support.stack import wait_for

OLD, NEW = "zhangsan", "zhangsan01"


def _calls(st, path: str) -> int:
    return sum(c["path"] == path for c in st.control("GET", st.corp_path("/calls")))


def test_a_sync_read_before_a_rename_and_saved_after_it_leaves_one_member(stack, database_url):
    """The scheduled sync (a large corp: its reads take minutes) read the directory while 张三 was
    still `zhangsan`; the admin changed his 账号 meanwhile, and Siyu handled the callback. The
    scheduled sync's save comes after: it must not bring back a second 张三."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the sync's save waits on the tenant's row: PostgreSQL")
    stack.sync()
    engine = create_engine(database_url)
    holder = engine.connect()
    tx = holder.begin()
    # another sync's save holds the tenant's row (siyu.tenancy.tasks.sync_staff): S's save waits
    holder.execute(text("SELECT id FROM tenants WHERE id = :t FOR NO KEY UPDATE"), {"t": stack.tenant_id})
    lists_before = _calls(stack, "/cgi-bin/user/list")
    problems: list[BaseException] = []

    def meanwhile() -> None:
        try:
            # S has read every department's members (2 departments), 张三 as zhangsan
            wait_for(lambda: _calls(stack, "/cgi-bin/user/list") >= lists_before + 2, timeout=20)
            dept_lists = _calls(stack, "/cgi-bin/department/list")
            stack.control(
                "POST", stack.corp_path(f"/staff/{OLD}/rename"), json={"new_userid": NEW, "wait": True}
            )

            def renamed() -> bool:
                with stack.session() as s:
                    return s.scalar(select(MemberRename.id)) is not None

            wait_for(renamed, timeout=20)
            # the rename's own sync (sync_after) has read the directory too, its save waiting
            wait_for(lambda: _calls(stack, "/cgi-bin/department/list") > dept_lists, timeout=20)
        except BaseException as exc:  # noqa: BLE001
            problems.append(exc)
        finally:
            tx.rollback()
            holder.close()

    thread = threading.Thread(target=meanwhile)
    thread.start()
    try:
        stack.sync()  # S: read before the rename, saved after it
    finally:
        thread.join()
        engine.dispose()
    assert not problems, problems

    def handled():
        with stack.session() as s:
            q = select(CallbackEvent.status).where(CallbackEvent.kind == "change_contact/update_user")
            return s.scalar(q)

    assert wait_for(lambda: handled() in ("done", "failed") and handled(), timeout=20) == "done"
    with stack.session() as s:
        rows = sorted(
            (m.userid, m.active, m.wecom_status) for m in s.scalars(select(Staff).where(Staff.name == "张三"))
        )
    # the 成员 page: 张三 once, in the company (README: the member "stays one member under the
    # new userid"), not a 张三（已离职） beside him
    assert rows == [(NEW, True, 1)]
