"""`siyu serve`'s embedded worker process: started again when it stops, and /healthz says
so meanwhile (a server had gone on answering WeCom with nothing taking up the work)."""

from __future__ import annotations

import httpx

from siyu.app import create_app
from siyu.jobs import child
from siyu.runtime import Runtime
from tests.support.servers import serve
from tests.support.stack import wait_for


def test_the_embedded_worker_is_started_again_when_it_stops(settings, db, monkeypatch):
    monkeypatch.setattr(child.Keeper, "CHECK_S", 0.1)
    monkeypatch.setattr(child.Keeper, "FIRST_PAUSE_S", 1.5)
    s = settings.model_copy(update={"embedded_worker": True, "worker_process": True})
    app = create_app(s, Runtime.create(s, db))
    with serve(app) as url:
        assert httpx.get(f"{url}/healthz").json() == {"ok": True}
        keeper = app.state.worker_child
        first = keeper.proc
        first.kill()  # as the OOM killer would
        down = wait_for(lambda: (r := httpx.get(f"{url}/healthz")).status_code == 503 and r.json())
        assert down["ok"] is False and "embedded worker is not running" in down["problems"][0]
        wait_for(lambda: keeper.alive and keeper.proc is not first)
        assert keeper.restarts == 1 and httpx.get(f"{url}/healthz").json() == {"ok": True}
        second = keeper.proc
    wait_for(lambda: second.poll() is not None, timeout=20)  # stopped with the server


def test_healthz_says_when_the_database_does_not_answer(settings, tmp_path):
    from siyu.db import Database

    gone = Database(f"sqlite:///{tmp_path / 'no-such-folder' / 'siyu.db'}")
    app = create_app(settings, Runtime.create(settings, gone))
    with serve(app) as url:
        r = httpx.get(f"{url}/healthz")
    assert r.status_code == 503 and r.json()["problems"][0].startswith("database: ")
