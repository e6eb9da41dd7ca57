"""GET /healthz, and what it last found of the database: a load balancer asks every second or
so, and during an outage each failed check logged a traceback (a screenful a second for as
long as it lasted). The first failure is logged, with its traceback, and then the database
answering again, in one line."""

from __future__ import annotations

import logging
import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
router = APIRouter()


class DatabaseHealth:
    """Whether this server's checks find the database down, and since when (checks run in
    the thread pool, several at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0

    def failed(self) -> None:
        """A check failed; call it while handling the exception."""
        with self._lock:
            first = self.since is None
            if first:
                self.since = time.monotonic()
            self.failures += 1
        if first:
            log.exception("health check: the database does not answer (logged again once it does)")

    def answered(self) -> None:
        with self._lock:
            if self.since is None:
                return
            down_s, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        log.warning(
            "health check: the database answers again after %.0f s (%d failed checks)", down_s, failures
        )


@router.get("/healthz", include_in_schema=False)
def healthz(request: Request):
    """503 when the database does not answer (this server can store nothing); 200 otherwise,
    with the embedded worker's state in the body: while it is started again this server
    still takes WeCom's callbacks, so a load balancer must keep sending them here."""
    health: DatabaseHealth = request.app.state.database_health
    try:
        with request.app.state.rt.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError:
        health.failed()
        # (the driver's words, with hosts and users, go to the log, not to whoever asks)
        return JSONResponse({"ok": False, "problems": ["the database does not answer"]}, status_code=503)
    health.answered()
    keeper = getattr(request.app.state, "worker_child", None)
    if keeper is None:
        return {"ok": True}
    return {"ok": True, "worker": "running" if keeper.alive else "restarting"}
