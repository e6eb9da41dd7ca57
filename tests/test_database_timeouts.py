"""PostgreSQL gone silent, and statements that run on: a query fails with a clear error
instead of waiting forever (a database host that loses power, a network cut: nothing tells
the client), a statement past its limit is cancelled and its locks go, and commands a
person runs and migrations are not cut short by the limits a server and worker keep."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import DatabaseTimeouts, get_settings
from siyu.db import Database
from siyu.runtime import Runtime
from tests.support import TEST_SECRET_KEY
from tests.support.proxy import BlackHoleProxy

SHORT = DatabaseTimeouts(connect_s=2, dead_peer_s=2, statement_s=2, idle_in_transaction_s=2)
GUARD_S = 60  # far past SHORT's limits: a wait this long is one that would never end


@pytest.fixture
def pg_url(database_url, db) -> str:  # (db: the database migrated)
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's timeouts (SIYU_TEST_DATABASE_URL)")
    return database_url


def upstream(url: str) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


def outcome_of(fn) -> BaseException | object:
    """What `fn` raised (or returned), run in a thread of its own; fails the test if it still
    waits after GUARD_S (the test's sockets are closed then, which ends the wait)."""
    box: list = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    assert box, f"still waiting after {GUARD_S} s: it would have waited forever"
    return box[0]


def test_a_query_to_a_database_gone_silent_fails_and_the_next_connects_once_it_is_back(pg_url):
    with BlackHoleProxy(upstream(pg_url)) as proxy:
        db = Database(proxy.url(pg_url), SHORT)

        def query_across_the_cut():
            with db.engine.connect() as conn:
                conn.scalar(text("SELECT 1"))
                proxy.black_hole()  # the host loses power mid-session: packets go nowhere, no RST
                return conn.scalar(text("SELECT 2"))

        try:
            error = outcome_of(query_across_the_cut)
            assert isinstance(error, OperationalError), error
            assert "PostgreSQL did not answer" in str(error)
            # a new connection meanwhile: refused in time, not waited for
            error = outcome_of(lambda: db.engine.connect().close())
            assert isinstance(error, OperationalError) and "connection timeout expired" in str(error)
            proxy.resume()  # the host is back (what was connected before is not)
            with db.engine.connect() as conn:
                assert conn.scalar(text("SELECT 3")) == 3
        finally:
            db.dispose()


def test_once_the_process_stops_a_silent_database_is_given_up_on_in_seconds(pg_url):
    """`systemctl stop` during an outage: a query under way and a connect begun after end
    within seconds, not at limits far longer (a worker had waited them out before stopping)."""
    long = DatabaseTimeouts(connect_s=2 * GUARD_S, dead_peer_s=GUARD_S, statement_s=GUARD_S)
    with BlackHoleProxy(upstream(pg_url)) as proxy:
        db = Database(proxy.url(pg_url), long)

        def query_across_the_cut():
            with db.engine.connect() as conn:
                conn.scalar(text("SELECT 1"))
                proxy.black_hole()
                threading.Timer(0.5, db.stopping).start()  # the signal comes mid-query
                return conn.scalar(text("SELECT 2"))

        try:
            error = outcome_of(query_across_the_cut)
            assert isinstance(error, OperationalError), error
            assert "did not answer for 3 s while Siyu stops" in str(error)
            error = outcome_of(lambda: db.engine.connect().close())
            assert isinstance(error, OperationalError) and "connecting is given up" in str(error)
        finally:
            db.dispose()


def test_a_statement_past_its_limit_is_cancelled_with_a_clear_error(pg_url):
    db = Database(pg_url, SHORT)

    def sleep_past_the_limit():
        with db.engine.connect() as conn:
            try:
                return conn.execute(text("SELECT pg_sleep(20)"))
            finally:
                conn.rollback()
                assert conn.scalar(text("SELECT 1")) == 1  # the connection itself is fine

    try:
        error = outcome_of(sleep_past_the_limit)
        assert isinstance(error, OperationalError), error
        assert "canceling statement due to statement timeout" in str(error)
    finally:
        db.dispose()


def test_a_transaction_left_open_gives_its_locks_back(pg_url):
    """A process stuck mid-transaction (a hung thread, a client cut off) holds its locks
    until PostgreSQL ends its session; another session then gets them."""
    db = Database(pg_url, SHORT)
    other = create_engine(pg_url, poolclass=NullPool)  # the test's own: no limits
    key = 7_340_001
    stuck = db.engine.connect()
    try:
        stuck.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})  # and then nothing

        def take_the_lock():
            with other.connect() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

        taken = outcome_of(take_the_lock)
        assert not isinstance(taken, BaseException), taken
        error = outcome_of(lambda: stuck.scalar(text("SELECT 1")))
        assert isinstance(error, DBAPIError) and "idle-in-transaction timeout" in str(error)
        stuck.invalidate()  # (its server process has ended)
    finally:
        stuck.close()
        db.dispose()
        other.dispose()


class Lock:
    """A table locked by another session (a migration elsewhere, a long report), held until
    `release_after_a_wait`: once some session has waited `seconds` on it, or GUARD_S."""

    def __init__(self, url: str, table: str):
        self.engine = create_engine(url, poolclass=NullPool)
        self.holder = self.engine.connect()
        self.holder.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        self.waited = False
        self._releaser: threading.Thread | None = None

    def _waiter(self, seconds: float) -> bool:
        with self.engine.connect() as conn:
            return bool(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND now() - query_start > make_interval(secs => :s)"
                    ),
                    {"s": seconds},
                )
            )

    def release_after_a_wait(self, seconds: float) -> None:
        def release() -> None:
            deadline = time.monotonic() + GUARD_S
            while not (waited := self._waiter(seconds)) and time.monotonic() < deadline:
                time.sleep(0.2)
            self.waited = waited
            self.holder.rollback()

        self._releaser = threading.Thread(target=release, daemon=True)
        self._releaser.start()

    def close(self) -> None:
        if self._releaser is not None:
            self._releaser.join()
        self.holder.close()
        self.engine.dispose()


def siyu_command(*args: str) -> tuple[int, str]:
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("table", "command"), [("tenants", ("tenant", "list")), ("alembic_version", ("migrate",))]
)
def test_a_command_waits_out_a_lock_the_server_would_give_up_on(
    pg_url, tmp_path, monkeypatch, table, command
):
    """A server or worker stops waiting at its statement limit; a command a person runs
    (an import, a sync) and a migration wait for as long as it takes."""
    for name, value in {
        "DATABASE_URL": pg_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "DATA_DIR": str(tmp_path),
        "AUTO_MIGRATE": "false",
        "DATABASE_STATEMENT_TIMEOUT_S": "1",
    }.items():
        monkeypatch.setenv(f"SIYU_{name}", value)
    lock = Lock(pg_url, table)
    served = Runtime.create(get_settings()).db  # as `siyu serve` and `siyu worker` make it
    try:

        def read_the_table():
            with served.engine.connect() as conn:
                return conn.execute(text(f"SELECT count(*) FROM {table}"))

        error = outcome_of(read_the_table)
        assert isinstance(error, OperationalError) and "statement timeout" in str(error)
        lock.release_after_a_wait(2.0)  # twice the limit
        code, out = siyu_command(*command)
        assert code == 0, out
    finally:
        lock.close()
        served.dispose()
    assert lock.waited  # the command had waited past its statement limit
