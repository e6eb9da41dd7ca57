"""Fixtures: a real database (a SQLite file, or a fresh PostgreSQL database when
SIYU_TEST_DATABASE_URL names a server), the app under real HTTP, the WeCom emulator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from siyu.config import Settings
from siyu.db import Database
from tests.support import TEST_SECRET_KEY, new_tenant, postgres_database

PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """One migrated database per test run; tests isolate themselves by tenant."""
    if not PG_URL:
        path = tmp_path_factory.mktemp("db") / "siyu-test.db"
        yield f"sqlite:///{path}"
        return
    with postgres_database(PG_URL, "siyu_test") as url:
        yield url


@pytest.fixture(scope="session")
def db(database_url) -> Database:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def tenants_retired_after_the_test(request):
    """The tenants a test made (it or its function-scoped fixtures: fixtures of wider scope are
    set up before this one) have nothing left to do once it is over."""
    if "db" not in request.fixturenames:
        yield
        return
    from tests.support.stack import newest_tenant, retire_tenants_after

    db = request.getfixturevalue("db")
    newest = newest_tenant(db)
    yield
    retire_tenants_after(db, newest)


@pytest.fixture
def fresh_tenant(db) -> int:
    """The id of a tenant of this test's own in the shared database (tests.support.new_tenant)."""
    return new_tenant(db)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        public_url="http://127.0.0.1:8000",
        auto_migrate=False,
        staff_sync_interval_s=0,
        wecom_rate_limit_pause_s=1.0,
        worker_process=False,
        archive_poll_s=0.5,  # tests run the worker inline; the benchmark and demo use the child
    )


@pytest.fixture
def stack(settings, db):
    """Siyu + the WeCom emulator on real ports, one fresh corp/tenant per test."""
    from tests.support.stack import stack as make_stack

    with make_stack(settings, db) as running:
        yield running
