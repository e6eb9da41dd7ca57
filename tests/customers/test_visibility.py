"""Who is listed to whom: a customer is read through a follow of someone the reader sees, and
that is worked out once for a list, not once for each customer of the tenant."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import pytest
from sqlalchemy import event, select

from siyu.customers import queries
from siyu.customers.models import Customer, Follow
from siyu.db import Database
from tests.support import new_tenant

# customer: (staff_userid, status, remark) of each follow
FOLLOWED = {
    "两人的客户": [("zhangsan", "active", ""), ("lisi", "active", "李四的备注ZZ")],
    "李四的客户": [("lisi", "active", "")],
    "张三流失的客户": [("zhangsan", "lost", "")],
    "赵六的客户": [("zhaoliu", "active", "")],
}


def _tenant(db: Database) -> int:
    tid = new_tenant(db)
    with db.tenant_session(tid) as s:
        for name, follows in FOLLOWED.items():
            customer = Customer(external_userid="wm" + secrets.token_hex(6), name=name)
            s.add(customer)
            s.flush()
            for userid, status, remark in follows:
                s.add(Follow(customer_id=customer.id, staff_userid=userid, status=status, remark=remark))
    return tid


def _viewer(tenant_id: int, visible_staff) -> SimpleNamespace:
    return SimpleNamespace(tenant_id=tenant_id, visible_staff=visible_staff, timezone="Asia/Shanghai")


def _listed(db: Database, viewer, **filters) -> tuple[list[str], int]:
    with db.tenant_session(viewer.tenant_id) as s:
        page = queries.list_customers(s, viewer, queries.CustomerFilter(**filters), per_page=100)
    return sorted(c["name"] for c in page.items), page.total


def test_a_customer_two_of_the_team_follow_is_listed_once_and_only_through_follows_one_sees(db):
    tid = _tenant(db)
    agent = _viewer(tid, frozenset({"zhangsan"}))
    assert _listed(db, agent) == (["两人的客户", "张三流失的客户"], 2)  # a lost follow still shows them
    assert _listed(db, agent, status="lost") == (["张三流失的客户"], 1)
    assert _listed(db, agent, staff_userid="lisi") == ([], 0)  # a colleague's follow is not theirs
    assert _listed(db, agent, q="ZZ") == ([], 0)  # nor is what the colleague wrote in its remark
    team = _viewer(tid, frozenset({"zhangsan", "lisi"}))
    assert _listed(db, team) == (["两人的客户", "张三流失的客户", "李四的客户"], 3)
    assert _listed(db, team, q="ZZ") == (["两人的客户"], 1)
    assert _listed(db, team, q="赵六") == ([], 0)
    assert _listed(db, _viewer(tid, frozenset())) == ([], 0)
    assert _listed(db, _viewer(tid, None))[1] == 4
    with db.tenant_session(tid) as s:
        shared = s.scalar(select(Customer.id).where(Customer.name == "两人的客户"))
        assert queries.get_customer(s, agent, shared) is not None
        assert [f["staff_userid"] for f in queries.profile(s, agent, shared)["follows"]] == ["zhangsan"]
        followed_by_zhaoliu = s.scalar(select(Customer.id).where(Customer.name == "赵六的客户"))
        assert queries.get_customer(s, team, followed_by_zhaoliu) is None


def test_a_list_reads_the_follows_once_whether_or_not_sqlite_has_statistics(db, tmp_path):
    """SQLite without statistics (a tenant whose customers came from contact sync, never
    analyzed) ran a condition on each customer's follows as a scan of all the tenant's follows
    for each customer: an agent's list took seconds at 3,000 customers. The follows are
    selected once, uncorrelated, whatever the planner knows."""
    if db.is_postgres:
        pytest.skip("SQLite's planner; PostgreSQL turns either form into the same semi-join")
    fresh = Database(f"sqlite:///{tmp_path / 'synced.db'}")  # never analyzed
    fresh.migrate()
    ran: list[tuple[str, tuple]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM customers" in statement and not statement.startswith("EXPLAIN"):
            ran.append((statement, parameters))

    try:
        tid = _tenant(fresh)
        event.listen(fresh.engine, "before_cursor_execute", record)
        for visible in ({"zhangsan"}, {"zhangsan", "lisi"}):
            viewer = _viewer(tid, frozenset(visible))
            assert _listed(fresh, viewer)[0]
            _listed(fresh, viewer, q="客户")
        event.remove(fresh.engine, "before_cursor_execute", record)
        assert len(ran) >= 4  # the counts and the pages
        with fresh.engine.connect() as conn:
            assert not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").all()
            for statement, parameters in ran:
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plan = "\n".join(str(row[-1]) for row in rows)
                assert "CORRELATED" not in plan, f"{statement}\n{plan}"
    finally:
        fresh.dispose()
