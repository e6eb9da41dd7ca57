"""GET /healthz, and what it last found of the database: a load balancer asks every second or
so, and during an outage each failed check logged a traceback (a screenful a second for as
long as it lasted). The first failure is logged, with its traceback, and then the database
answering again, in one line."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from siyu.db.outage import Outage

log = logging.getLogger(__name__)
router = APIRouter()


def database_health() -> Outage:
    """What this server's checks find of the database (they run in the thread pool, several
    at once): the first failure logged with its traceback, and the database answering again."""
    return Outage(
        log,
        down="health check: the database does not answer (logged again once it does)",
        back="health check: the database answers again after {down_s:.0f} s ({failures} failed checks)",
        traceback=True,
        any_error=True,
    )


@router.get("/healthz", include_in_schema=False)
def healthz(request: Request):
    """503 when the database does not answer (this server can store nothing); 200 otherwise,
    with the embedded worker's state in the body: while it is started again this server
    still takes WeCom's callbacks, so a load balancer must keep sending them here."""
    health: Outage = request.app.state.database_health
    asked_at = time.monotonic()
    try:
        with request.app.state.rt.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        health.failed(exc, asked_at=asked_at)
        # (the driver's words, with hosts and users, go to the log, not to whoever asks)
        return JSONResponse({"ok": False, "problems": ["the database does not answer"]}, status_code=503)
    health.answered(asked_at)
    keeper = getattr(request.app.state, "worker_child", None)
    if keeper is None:
        return {"ok": True}
    return {"ok": True, "worker": "running" if keeper.alive else "restarting"}
