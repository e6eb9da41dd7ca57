"""/healthz through a database outage: a load balancer asks every second or so, and every
failed check logged a traceback, a screenful a second for as long as the outage lasted. Now
the first says why (with its traceback) and the next line is the database answering again;
the answers themselves are unchanged."""

from __future__ import annotations

import logging

import httpx
import pytest

from siyu.app import create_app
from siyu.config import DatabaseTimeouts
from siyu.db import Database
from siyu.runtime import Runtime
from tests.support.proxy import BlackHoleProxy
from tests.support.servers import serve
from tests.test_database_timeouts import upstream

# each failed check waits these out (libpq waits 2 s at least to connect)
SHORT = DatabaseTimeouts(connect_s=1, dead_peer_s=1, statement_s=1, idle_in_transaction_s=1)
DOWN = {"ok": False, "problems": ["the database does not answer"]}


def health_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("siyu.web")]


def check(url: str) -> httpx.Response:
    return httpx.get(f"{url}/healthz", timeout=30)


def test_a_database_outage_is_logged_when_it_begins_and_when_it_ends(settings, database_url, db, caplog):
    if not db.is_postgres:
        pytest.skip("a database gone silent and back: PostgreSQL behind a proxy (SIYU_TEST_DATABASE_URL)")
    caplog.set_level(logging.INFO)
    quiet = settings.model_copy(update={"embedded_worker": False})  # its loops log outages their own way
    with BlackHoleProxy(upstream(database_url)) as proxy:
        ours = Database(proxy.url(database_url), SHORT)
        try:
            with serve(create_app(quiet, Runtime.create(quiet, ours))) as url:
                assert check(url).json() == {"ok": True}
                proxy.black_hole()  # the database host loses power: packets go nowhere
                for _ in range(3):
                    r = check(url)
                    assert (r.status_code, r.json()) == (503, DOWN)
                [down] = health_lines(caplog)
                assert down.levelno == logging.ERROR and down.exc_info  # why, once
                assert "the database does not answer" in down.getMessage()
                proxy.resume()  # back
                assert check(url).json() == {"ok": True}
                assert check(url).json() == {"ok": True}
                lines = health_lines(caplog)
                assert len(lines) == 2 and lines[1].levelno == logging.WARNING and not lines[1].exc_info
                assert "answers again" in lines[1].getMessage() and "3 failed checks" in lines[1].getMessage()
                caplog.clear()  # a second outage is told again
                proxy.black_hole()
                assert check(url).status_code == 503
                assert [r.levelno for r in health_lines(caplog)] == [logging.ERROR]
                proxy.resume()
        finally:
            ours.dispose()


def test_a_database_that_never_answers_is_logged_once_however_often_it_is_asked(settings, tmp_path, caplog):
    gone = Database(f"sqlite:///{tmp_path / 'no-such-folder' / 'siyu.db'}")
    quiet = settings.model_copy(update={"embedded_worker": False})
    app = create_app(quiet, Runtime.create(quiet, gone))
    with serve(app) as url:
        answers = [check(url) for _ in range(5)]
    assert {(r.status_code, str(r.json())) for r in answers} == {(503, str(DOWN))}
    [line] = health_lines(caplog)
    assert line.levelno == logging.ERROR and line.exc_info
