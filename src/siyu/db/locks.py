"""Locks held to the end of a transaction, for a check and the write it allows that no other
transaction may come between (a channel name still free, a login unlike any other, a policy
saved over the special dates its waits were timed by).

PostgreSQL: an advisory lock on a name, so that what is locked need not have a row yet.
SQLite lets one transaction write at a time: its write lock, taken by a write to `table` that
changes nothing, is held as long and covers every name at once."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def hold(session: Session, name: str, table: str, *, shared: bool = False) -> None:
    """Wait for, then hold until the transaction ends, the lock called `name`; `shared`: with
    others who hold it shared too (PostgreSQL; SQLite's write lock is never shared)."""
    if sqlite_writer(session, table):
        return
    lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    session.execute(text(f"SELECT {lock}(hashtextextended(:name, 0))"), {"name": name})


def sqlite_writer(session: Session, table: str) -> bool:
    """On SQLite, make this transaction the writer now, before it reads what it will decide on
    (a write to `table` that changes nothing), and say so; on PostgreSQL do nothing (False)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    session.connection().exec_driver_sql(f"UPDATE {table} SET id = id WHERE 0")
    return True
