"""A database outage as a worker's loops meet it: each loop fails on it at every tick, and
that was a traceback per loop per tick (several a second) for as long as it lasted. Now it
is one error when it begins and one line when the database answers again."""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger("siyu.jobs.worker")
# The SQLSTATEs of a server that cannot be reached or is going away (class 08: connection
# exceptions; 57P01-03: shut down by an admin, crashed, not accepting connections yet).
UNREACHABLE = ("08", "57P01", "57P02", "57P03")


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or stopped answering, rather than
    that a statement failed (a statement timeout, a deadlock: those are logged each time)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # psycopg's own failures to connect or to hear back have no SQLSTATE; SQLite's errors
    # have none to look at (its file is there or the error is about a statement)
    sqlstate = getattr(exc.orig, "sqlstate", "")
    return isinstance(exc, OperationalError) and (sqlstate is None or str(sqlstate).startswith(UNREACHABLE))


class Outage:
    """Whether the database is down, as one worker's loops see it (they share one event loop)."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException, what: str) -> bool:
        """A loop's failure: True (logged once per outage) if the database is unreachable."""
        if not unreachable(exc):
            return False
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            log.error(
                "the database does not answer (%s: %s); the worker keeps trying and goes on once it does",
                what,
                reason,
            )
        return True

    def answered(self) -> None:
        """A loop got through to the database."""
        if self.since is None:
            return
        log.warning(
            "the database answers again after %.0f s (%d failed tries); the worker goes on",
            time.monotonic() - self.since,
            self.failures,
        )
        self.since, self.failures = None, 0
