"""WeCom's callbacks during a database outage (PostgreSQL silent, not refusing): a callback
whose tenant's keys are not cached reads them in a thread. On the server's event loop, every
other request, WeCom's callbacks for every tenant included, waited until the connection's
limits gave up on the silent server."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from siyu.app import create_app
from siyu.config import DatabaseTimeouts
from siyu.db import Database
from siyu.runtime import Runtime
from tests.intake.test_callback import add_event, corp  # noqa: F401 - fixtures
from tests.support.proxy import BlackHoleProxy
from tests.support.servers import serve
from tests.test_database_timeouts import upstream

# libpq waits 2 s at least to connect; a query on a silent connection waits these out
LIMITS = DatabaseTimeouts(connect_s=3, dead_peer_s=3, statement_s=3, idle_in_transaction_s=3)


def test_a_callback_waiting_on_a_silent_database_holds_up_no_other_request(
    settings,
    database_url,
    db,
    corp,  # noqa: F811
):
    if not db.is_postgres:
        pytest.skip("a database gone silent is PostgreSQL's (SIYU_TEST_DATABASE_URL)")
    slug, _, crypto = corp
    quiet = settings.model_copy(update={"embedded_worker": False})
    with BlackHoleProxy(upstream(database_url)) as proxy:
        ours = Database(proxy.url(database_url), LIMITS)
        try:
            with serve(create_app(quiet, Runtime.create(quiet, ours))) as url:
                proxy.black_hole()  # the database host loses power: packets go nowhere
                body, params = crypto.encrypt_callback(add_event(crypto.receive_id, "wmOutage"))

                def deliver() -> None:  # WeCom's callback: its keys are not cached yet
                    with contextlib.suppress(httpx.HTTPError):  # (given up on: the test says why)
                        httpx.post(f"{url}/wecom/callback/{slug}", params=params, content=body, timeout=30)

                wecom = threading.Thread(target=deliver)
                wecom.start()
                time.sleep(0.5)  # the callback is waiting on the database by now
                # requests that need no database at all: a page's stylesheet, and a callback
                # missing its signature (refused before anything is read)
                began = time.monotonic()
                css = httpx.get(f"{url}/static/siyu.css", timeout=30)
                css_took = time.monotonic() - began
                began = time.monotonic()
                r = httpx.post(f"{url}/wecom/callback/{slug}", content=b"<xml/>", timeout=30)
                took = time.monotonic() - began
                wecom.join(30)
                proxy.resume()
        finally:
            ours.dispose()
    assert css.status_code == 200 and r.status_code == 400
    assert css_took < 1.0, f"the stylesheet waited {css_took:.1f} s behind a callback's read of the database"
    # it waited for the other callback's read of the silent database (the server's one loop)
    assert took < 1.0, f"a request needing no database waited {took:.1f} s behind a callback's read"
