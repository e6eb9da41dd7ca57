"""create_app(): the ASGI app with the WeCom callback, the JSON API and the web UI."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from siyu import __version__
from siyu.config import Settings, get_settings
from siyu.intake.api import routes as callback_routes
from siyu.intake.writer import EventWriter
from siyu.jobs import child as worker_child
from siyu.jobs.worker import Worker
from siyu.runtime import Runtime
from siyu.sla import service as _sla  # noqa: F401 - follows conversations' waits (dismissals here)

log = logging.getLogger(__name__)

API_DESCRIPTION = """Open API of Siyu, the open-source SCRM for WeCom.

**Signing in.** An integration sends an API token as `Authorization: Bearer siyu_…`: an admin
makes one on 设置 → API 令牌 (or `POST /api/v1/tokens`, or `siyu token add`), naming the person it
acts as; the secret is shown once. A token needs no CSRF header, and opens no web page. A script
may also call as a signed-in person: post the `/login` form (its `csrf_token` field with the
`siyu_login_csrf` cookie), keep the `siyu_session` cookie, and send `GET /api/v1/me`'s
`csrf_token` as the `X-CSRF-Token` header on every POST, PUT, PATCH and DELETE. An agent sees
their own customers, a supervisor their team's, an admin everyone's.

**Answers.** Ids are integers; times are ISO 8601 in UTC with the offset (`2026-12-05T14:08:55Z`);
days are `YYYY-MM-DD` in the tenant's time zone. A refusal is `{"detail": ...}`: 401 not signed
in (or the token is not valid, revoked or expired, or suspended: `detail` says which), 403 not
allowed (or the CSRF header missing), 404 not found (another tenant's or another agent's id reads
the same), 409 a conflict, 413 a body over 1 MB, 415 a body not sent as `Content-Type:
application/json`, 422 a request that is not valid (`detail` a sentence, or FastAPI's list of
errors per field), 502 WeCom failed.
"""


def create_app(settings: Settings | None = None, rt: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = app.state.rt
        if settings.auto_migrate:
            runtime.db.migrate()
        app.state.event_writer = EventWriter(runtime.intake.store)
        worker_task = keeper = None
        if settings.embedded_worker and settings.worker_process:
            app.state.worker_child = worker_child.Keeper(settings, runtime)
            keeper = asyncio.create_task(app.state.worker_child.keep())
        elif settings.embedded_worker:
            app.state.worker = Worker(runtime, scheduled=True)
            worker_task = asyncio.create_task(app.state.worker.run())
        try:
            yield
        finally:
            if worker_task is not None:
                app.state.worker.stop()
                await worker_task
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                app.state.worker_child.stop()
            app.state.event_writer.close()
            await runtime.clients.aclose()

    # Swagger UI's script and styles are served by Siyu itself: a server (or a browser inside
    # WeCom) without a way out to a CDN still gets a working docs page.
    app = FastAPIOffline(
        title="Siyu 私域 SCRM",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        static_url="/api/docs/static",
        openapi_url="/api/v1/openapi.json",
    )
    app.state.rt = rt or Runtime.create(settings)
    app.state.settings = settings
    app.router.routes.extend(callback_routes)
    _include_optional_routers(app)
    return app


def _include_optional_routers(app: FastAPI) -> None:
    from siyu.web.routes import install as install_web

    install_web(app)
