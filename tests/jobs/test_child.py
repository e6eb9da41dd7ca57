"""`siyu serve`'s embedded worker process: started again when it stops, and /healthz says
so meanwhile (a server had gone on answering WeCom with nothing taking up the work)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
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
    # /healthz says "restarting" only during the pause: long enough that a test held back on a
    # loaded machine still sees it (1.5 s had been missed by a test thread held back 2 s)
    monkeypatch.setattr(child.Keeper, "FIRST_PAUSE_S", 8.0)
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
        wait_for(lambda: keeper.alive and keeper.proc is not first, timeout=30)
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


# A child whose event loop is held, as work waiting on a database gone silent holds it (until
# the connection's limits give up on the server: a minute and more): it never reads the pipe.
# Python's signal handler still runs between two of those waits, and stops it, as the
# worker's does (siyu.cli worker).
HELD_LOOP = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("started", flush=True)
time.sleep(600)
"""


def test_a_stop_does_not_wait_for_a_child_that_cannot_read_its_pipe(monkeypatch):
    """`siyu serve` stopped during a database outage had waited 15 s for the embedded worker
    to see its pipe close, then signalled it: about 18 s, or it was killed."""
    monkeypatch.setattr(child, "STOP_WAIT_S", 600.0)  # far longer than any stop should take
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", HELD_LOOP], pass_fds=(read_fd,), stdout=subprocess.PIPE, text=True
    )
    os.close(read_fd)
    try:
        assert proc.stdout.readline() == "started\n"  # its handler is in place
        stopping = threading.Thread(target=child.stop, args=(proc, write_fd), daemon=True)
        stopping.start()
        stopping.join(60)  # a guard only: a stop waiting on the pipe would take STOP_WAIT_S
        assert not stopping.is_alive() and proc.returncode == 0  # stopped by its own handler, not killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
