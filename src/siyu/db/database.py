"""One Database object per process: the engine and its two kinds of sessions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from siyu.config import DatabaseTimeouts
from siyu.db import bulk, scoping

if TYPE_CHECKING:
    from siyu.db.postgres import Patience

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
FOREIGN_KEYS_OFF = "siyu_foreign_keys_off"  # a SQLite connection's, till it is back in the pool
log = logging.getLogger(__name__)


AFTER_COMMIT = "siyu_after_commit"


def after_commit(session: Session, work: Callable[[Session], object]) -> None:
    """`work(session)` in a transaction of its own once this tenant_session's has committed
    (not if it rolls back): for what must see what another transaction commits meanwhile."""
    session.info.setdefault(AFTER_COMMIT, []).append(work)


def retry_deadlocks(run: Callable[[], T], tries: int = 3) -> T:
    """`run()`, a transaction of its own, run again where PostgreSQL ended it as a deadlock's
    victim (a person's "no reply needed" meeting a step that fires: the step's worker locks
    the step, then the wait and the conversation; the person's action the other way round).
    The other transaction goes on, and this one after it, instead of a 500."""
    for attempt in range(tries):
        try:
            return run()
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == tries - 1:
                raise
            log.info("deadlock: ran again (%d)", attempt + 1)
    raise AssertionError("unreachable")  # (the loop returns or raises)


@contextmanager
def sqlite_foreign_keys_off(connection) -> Iterator[list]:
    """For a migration on SQLite. A batch operation copies a table and drops the old one, and
    with foreign keys on, that DROP deletes every row that cascades from the table (a person's
    API tokens, a conversation's messages). Off for the migration, checked after it where a
    revision was applied (the caller adds to the list it is given; the check reads the whole
    database, and a start with nothing to migrate need not), back on once the connection is
    back in the pool (inside a transaction SQLite ignores the pragma)."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.connection.info[FOREIGN_KEYS_OFF] = True
    applied: list = []
    yield applied
    if not applied:
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"the migration left rows that refer to rows no longer there: {broken[:5]}")


def make_engine(
    url: str, timeouts: DatabaseTimeouts = DatabaseTimeouts(), patience: Patience | None = None, **kw
) -> Engine:
    """`timeouts`: PostgreSQL's (siyu.db.postgres), and `patience` (by default one of their
    own) for its connections; SQLite waits up to 30 s for a lock."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Checkpoint the WAL every ~40 MB rather than every 4 MB: pages that every batch of
            # an archive import touches again (index interiors) are copied back once, not per
            # checkpoint (ingest at 100,000 messages: 9,200-10,100/s -> 10,300-10,900/s).
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.close()

        @event.listens_for(engine, "checkin")
        def _foreign_keys_back_on(conn, record):
            if record.info.pop(FOREIGN_KEYS_OFF, False):
                conn.execute("PRAGMA foreign_keys=ON")

        return engine
    # psycopg prepares statements server-side after a few runs; PostgreSQL's generic plans
    # for them measured 3-10x slower than custom ones on our skewed indexes.
    on_psycopg = "+psycopg" in url
    connect_args = {}
    if on_psycopg:
        from siyu.db import postgres

        given = set(make_url(url).query)  # a parameter in the URL is the operator's word
        connect_args = {"prepare_threshold": None, **postgres.connect_args(timeouts, given)}
    engine = create_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, connect_args=connect_args, **kw
    )
    if on_psycopg:
        event.listen(engine, "do_connect", postgres.connector(patience or _patience(url, timeouts)))
        event.listen(engine, "connect", postgres.session_settings(timeouts))

        @event.listens_for(engine, "connect")
        def _binary_lists(conn, _record):
            from psycopg.types.array import ListBinaryDumper

            conn.adapters.register_dumper(bulk.BinaryList, ListBinaryDumper)

    return engine


def _patience(url: str, timeouts: DatabaseTimeouts) -> Patience | None:
    """How long PostgreSQL's connections wait on a silent server (siyu.db.postgres: imported
    where PostgreSQL is used only, as psycopg is slow to import)."""
    if "+psycopg" not in url:
        return None
    from siyu.db import postgres

    return postgres.Patience(timeouts)


# SQLite's statistics are refreshed after this many rows written in bulk (see `wrote`).
STATISTICS_EVERY = 20_000
# Tables never analyzed are, once this many are written (PostgreSQL: where autovacuum is off).
FIRST_ANALYSIS = 2_000


def _autovacuum(conn) -> bool:
    return conn.exec_driver_sql("SHOW autovacuum").scalar() == "on"


def _analyze_the_never_analyzed(conn) -> None:
    if _autovacuum(conn):
        return
    never = conn.exec_driver_sql(
        "SELECT string_agg(quote_ident(relname), ', ') FROM pg_class WHERE relkind = 'r'"
        " AND relnamespace = current_schema()::regnamespace AND reltuples < 0"
    ).scalar()
    if never:
        conn.exec_driver_sql(f"ANALYZE {never}")


class SchemaAhead(ValueError):
    """The database was migrated by a newer Siyu than this one."""


class Database:
    def __init__(self, url: str, timeouts: DatabaseTimeouts = DatabaseTimeouts()):
        self.url = url
        self.timeouts = timeouts
        self.patience = _patience(url, timeouts)
        self.engine = make_engine(url, timeouts, self.patience)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._written = 0
        self._first_analysis_done = False  # PostgreSQL (see `wrote`)
        self._written_lock = threading.Lock()

    def wrote(self, rows: int) -> None:
        """Count rows a bulk writer (the archive ingest) committed. A planner without
        statistics takes the tenant condition every scoped query has for a selective one.
        SQLite plans so until something runs ANALYZE: a key lookup became a scan of the
        tenant's rows (a batch's recall UPDATE: 6 ms at 60,000 messages, 0.14 ms with
        statistics); its statistics are taken once FIRST_ANALYSIS rows are written (a new
        database's first import: the recall UPDATEs of 20,000 messages 41 ms -> under 19 ms)
        and refreshed every STATISTICS_EVERY rows, approximately (analysis_limit: a few ms
        whatever the size). PostgreSQL's autovacuum keeps its own;
        where it is off (see `tidy`) nothing ever would, and ingest's updates by id hashed
        the tenant's rows (closing a batch's 212 waits read all 24,000 at 100,000 messages).
        There, once FIRST_ANALYSIS rows are written, the tables never analyzed are analyzed,
        once: statistics taken while they are small still tell the planner what a tenant
        condition selects as they grow (ingest of 100,000 messages: +8 % in the median of
        three alternating runs; analyzing everything again at 20,000 rows cost 0.3 s)."""
        with self._written_lock:
            self._written += rows
            if not self._first_analysis_done and self._written >= FIRST_ANALYSIS:
                self._first_analysis_done = True
            elif self.is_postgres or self._written < STATISTICS_EVERY:
                return
            else:
                self._written = 0
        try:
            with self.engine.begin() as conn:
                if self.is_postgres:
                    _analyze_the_never_analyzed(conn)
                else:
                    conn.exec_driver_sql("PRAGMA analysis_limit=400")
                    conn.exec_driver_sql("ANALYZE")
        except OperationalError as exc:  # best effort: the rows are stored, statistics only speed up
            log.warning("refreshing the database's statistics failed: %s", exc)

    def tidy(self, tables: tuple[str, ...]) -> bool:
        """Vacuum and analyze these tables, on PostgreSQL when its autovacuum is off (some
        test and CI servers run so; nothing else would then ever do it). For queue tables:
        every row is updated two or three times and then left, and until a VACUUM their
        indexes keep an entry for every version: at 80,000 sent app messages a claim of the
        pending ones read 150,000 index entries (65-117 ms), and without statistics the
        planner takes the tables for empty. Returns whether it ran."""
        if not self.is_postgres:
            return False
        # VACUUM cannot run in a transaction
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if _autovacuum(conn):
                return False
            # SKIP_LOCKED: another worker's VACUUM of the same table is as good as ours
            conn.exec_driver_sql(f"VACUUM (ANALYZE, SKIP_LOCKED) {', '.join(tables)}")
        return True

    def stopping(self) -> None:
        """The process is stopping: a PostgreSQL that has gone silent is given up on within a
        few seconds rather than at its limits (siyu.db.postgres)."""
        if self.patience is not None:
            self.patience.stop()

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def tenant_session(self, tenant_id: int) -> Iterator[Session]:
        """A session that sees one tenant's rows; commits on success, rolls back on error."""
        with self._sessions() as session:
            session.info[scoping.TENANT] = tenant_id
            with session.begin():
                yield session
            then = session.info.pop(AFTER_COMMIT, [])
        for work in then:
            try:
                with self.tenant_session(tenant_id) as later:
                    work(later)
            except Exception:  # noqa: BLE001 - what was committed stands; the work is a repair
                log.exception("work after tenant %s's commit failed", tenant_id)

    @contextmanager
    def tenant_snapshot(self, tenant_id: int) -> Iterator[Session]:
        """A tenant_session whose reads all see the database as it was at the first of them:
        figures read in several statements (the SLA board) agree with each other however much
        is stored meanwhile. A wait answered between its two reads had dropped out of both."""
        with self.tenant_session(tenant_id) as session:
            if self.is_postgres:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            else:  # (pysqlite begins a transaction only before a write: each read had its own)
                session.connection().exec_driver_sql("BEGIN")
            yield session

    @contextmanager
    def system_session(self) -> Iterator[Session]:
        """A session that sees every tenant: for intake, the worker and the CLI."""
        with self._sessions() as session:
            session.info[scoping.SYSTEM] = True
            with session.begin():
                yield session

    def _alembic(self, conn):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    def migrate(self) -> tuple[str | None, str]:
        """Bring the schema to the newest migration (safe to repeat); the revisions before
        and after."""
        from alembic import command

        with self._unhurried() as engine:
            # (reading the revision may wait on a lock too: a migration elsewhere, an open DDL)
            before, head = self.schema_revisions(engine)
            with engine.begin() as conn:
                if self.is_postgres:
                    # one migration at a time (two replicas started together with
                    # SIYU_AUTO_MIGRATE on: the second failed on the tables the first had just
                    # made); the second then finds the schema at head
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('siyu.migrate', 0))"))
                command.upgrade(self._alembic(conn), "head")
        return before, head

    @contextmanager
    def _unhurried(self) -> Iterator[Engine]:
        """An engine whose statements, and pauses between them, have no time limit: a
        migration's take what they take (rewriting a large table, Python run in between)."""
        if not self.is_postgres:
            yield self.engine
            return
        engine = make_engine(self.url, self.timeouts.unhurried(migrating=True))
        try:
            yield engine
        finally:
            engine.dispose()

    def schema_revisions(self, engine: Engine | None = None) -> tuple[str | None, str]:
        """The schema's migration revision (None: never migrated) and the newest this code has;
        SchemaAhead when the schema is at a revision this code does not know."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with (engine or self.engine).connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            scripts = ScriptDirectory.from_config(self._alembic(conn))
        if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
            raise SchemaAhead(
                f"the database schema is at {current}, which this Siyu does not know (it was migrated by a"
                " newer one): run that Siyu or a newer one"
            )
        return current, scripts.get_current_head()

    def new_migration(self, message: str) -> None:
        """For developers: write a migration from the difference between models and schema."""
        from alembic import command

        with self._unhurried() as engine, engine.begin() as conn:
            command.revision(self._alembic(conn), message=message, autogenerate=True)

    def dispose(self) -> None:
        self.engine.dispose()
