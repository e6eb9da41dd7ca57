"""A database outage as the callers that keep asking meet it: a worker's loops fail on it at
every tick, and a load balancer's health checks every second or so. Each failure had logged
a traceback (a screenful a second for as long as it lasted); now it is one error when it
begins and one line when the database answers again."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import DBAPIError, OperationalError

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
    """Whether the database is down, and since when, as some callers see it (a worker's
    loops; a server's health checks, several at once in the thread pool). `down` is logged to
    `log` as an error when an outage begins ({what}: the caller's words, {reason}: the
    driver's first line; with the traceback where `traceback`), `back` as a warning once it
    ends ({down_s}, {failures}). `any_error`: every failure counts (a health check's answer
    is 503 whatever failed); else only the database being unreachable does (`unreachable`)."""

    def __init__(
        self, log: logging.Logger, down: str, back: str, traceback: bool = False, any_error: bool = False
    ) -> None:
        self.log, self.down, self.back = log, down, back
        self.traceback, self.any_error = traceback, any_error
        self._lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0
        self.ended: float | None = None  # when the last outage ended (monotonic)

    def failed(self, exc: BaseException, what: str = "", asked_at: float | None = None) -> bool:
        """A failure, of a call begun at `asked_at` (monotonic): True (logged once per outage)
        if it is the database being down. One begun before the last outage ended belongs to
        that outage: a connect sent into the silence, timing out just after another loop got
        through, had begun a second outage in the log."""
        if not (self.any_error or unreachable(exc)):
            return False
        with self._lock:
            if self.since is None and None not in (asked_at, self.ended) and asked_at < self.ended:
                return True
            first = self.since is None
            if first:
                self.since = time.monotonic()
            self.failures += 1
        if first:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            self.log.error(
                self.down.format(what=what, reason=reason), exc_info=exc if self.traceback else None
            )
        return True

    def answered(self, asked_at: float | None = None) -> None:
        """A caller got through to the database, with a call begun at `asked_at` (monotonic).
        One begun before the outage did says nothing of now: a claim answered just before the
        database went silent, whose thread ran late, had ended the outage it failed into, and
        every loop's next failure logged it again."""
        if self.since is None:  # (the usual case, every tick: no lock needed to see it)
            return
        with self._lock:
            if self.since is None or (asked_at is not None and asked_at < self.since):
                return
            self.ended = time.monotonic()
            down_s, failures = self.ended - self.since, self.failures
            self.since, self.failures = None, 0
        self.log.warning(self.back.format(down_s=down_s, failures=failures))
