"""The worker through what a long-running process meets: its database connections dropped
under it (a failover, a restart of PostgreSQL, an idle timeout in a pooler)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from siyu.sla.service import save_policy
from siyu.tenancy.tasks import sync_staff
from tests.customers.test_acquisition import follow_of, make_channel, run
from tests.sla.test_e2e_emulator import cards_to
from tests.support.stack import wait_for


def drop_connections(database_url: str, seconds: float) -> int:
    """Terminate every other server process of this test run's database, again and again for
    `seconds`: whatever a worker loop is doing then fails on a dead connection."""
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    dropped = 0
    try:
        with engine.connect() as conn:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                dropped += conn.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                time.sleep(0.05)
    finally:
        engine.dispose()
    return dropped


def test_the_worker_carries_on_after_its_database_connections_are_dropped(stack, database_url):
    if not stack.rt.db.is_postgres:
        pytest.skip("dropping server connections is PostgreSQL's (SIYU_TEST_DATABASE_URL)")
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        save_policy(s, quiet_hours=[])
    stack.enable_archive()
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "卫先生")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.chat(ext, "zhangsan", "这个能便宜点吗？")
    busy = threading.Thread(target=drop_connections, args=(database_url, 3.0))
    busy.start()  # while the worker pulls the archive, fires steps and sends
    time.sleep(1.0)
    stack.rt.clock.advance(125)  # past the first step
    busy.join()
    # the question was pulled, its step fired and the agent's card sent: once
    card = wait_for(lambda: cards_to(stack, "zhangsan"), timeout=30)
    time.sleep(2)
    assert len(cards_to(stack, "zhangsan")) == len(card) == 1
    assert "卫先生" in str(card[0]["payload"])
