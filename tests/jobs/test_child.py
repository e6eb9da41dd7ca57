"""`siyu serve`'s embedded worker process: started again when it stops, and /healthz says
so meanwhile (a server had gone on answering WeCom with nothing taking up the work)."""

from __future__ import annotations

import time

import httpx

from siyu.app import create_app
from siyu.db import Database
from siyu.jobs import child
from siyu.runtime import Runtime
from tests.support.servers import serve
from tests.support.stack import wait_for


def test_the_embedded_worker_is_started_again_when_it_stops(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(child.Keeper, "CHECK_S", 0.1)
    monkeypatch.setattr(child.Keeper, "FIRST_PAUSE_S", 1.5)
    # a database of its own and a WeCom that is not there: the worker touches nobody's tenants
    own = settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'own.db'}",
            "wecom_base_url": "http://127.0.0.1:9",
            "embedded_worker": True,
            "worker_process": True,
        }
    )
    db = Database(own.database_url)
    db.migrate()
    app = create_app(own, Runtime.create(own, db))
    with serve(app) as url:
        assert httpx.get(f"{url}/healthz").json() == {"ok": True, "worker": "running"}
        keeper = app.state.worker_child
        first = keeper.proc
        first.kill()  # as the OOM killer would
        # still 200: the server takes callbacks meanwhile, a load balancer must keep it
        down = wait_for(lambda: (r := httpx.get(f"{url}/healthz")).json().get("worker") == "restarting" and r)
        assert down.status_code == 200
        wait_for(lambda: keeper.alive and keeper.proc is not first)
        time.sleep(3)  # past its start: a child that died while starting would show here
        assert keeper.alive and keeper.restarts == 1
        assert httpx.get(f"{url}/healthz").json() == {"ok": True, "worker": "running"}
        second = keeper.proc
    wait_for(lambda: second.poll() is not None, timeout=20)  # stopped with the server
    db.dispose()


def test_healthz_says_when_the_database_does_not_answer(settings, tmp_path):
    gone = Database(f"sqlite:///{tmp_path / 'no-such-folder' / 'siyu.db'}")
    app = create_app(settings, Runtime.create(settings, gone))
    with serve(app) as url:
        r = httpx.get(f"{url}/healthz")
    assert r.status_code == 503 and r.json() == {"ok": False, "problems": ["the database does not answer"]}
