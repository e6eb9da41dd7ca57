"""Work being done stays its worker's while the work lasts, and no longer than a lease after
that worker dies: the next worker takes it up within a minute, not five (a card being sent)
and never while it is still being done (a callback event held up by WeCom's limits)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

import siyu
from siyu.intake.models import CallbackEvent
from siyu.jobs.claim import claim
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from tests.support import TEST_SECRET_KEY
from tests.support.stack import stack, wait_for

# Renewed every third of it: a worker starved for up to two thirds of a lease (a loaded
# machine) still holds its rows. 3 s had left 2 s, and a test's claim made while the worker
# process stood still for 3.5 s took the row from it.
LEASE_S = 8.0
# How long WeCom takes to answer: past the two leases the test waits with room to spare
# (the worker's call, and its WeCom timeout below, must still be under way when it looks).
SLOW_S = 2 * LEASE_S + 20.0

# A worker in a process of its own, so that the test can kill it mid-run as the OOM killer
# would: it claims the one row and runs it as `siyu worker` does.
WORKER = """
import asyncio, sys
from siyu.config import Settings
from siyu.db import Database
from siyu.intake import tasks as intake
from siyu.intake.models import CallbackEvent
from siyu.jobs.claim import claim
from siyu.notify import tasks as notify
from siyu.notify.models import OutboxMessage
from siyu.runtime import Runtime

settings = Settings()
rt = Runtime.create(settings, Database(settings.sqlalchemy_url))
model = OutboxMessage if sys.argv[1] == "outbox" else CallbackEvent
rows = claim(rt.db, model, 10, where=(model.id == int(sys.argv[2]),), lease=settings.work_lease)
assert rows, "nothing to claim"
asyncio.run(notify.send_batch(rt, rows) if model is OutboxMessage else intake.process(rt, rows[0]))
"""


def claimed(db, model, row_id: int) -> list:
    return claim(db, model, 10, where=(model.id == row_id,))


def run_slowly_then_kill(st, tmp_path, model, row_id: int, path: str) -> object:
    """Run the row in a worker process while WeCom answers `path` slowly (its limits, a slow
    network): the work lasts longer than a lease. Check it is held for two leases, kill the
    worker, and return the row as the next worker claims it."""
    slow = {"corp_id": st.corp_id, "path": path, "delay_s": SLOW_S}
    st.control("POST", "/faults", json=slow)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(siyu.__file__).parents[1]),
        "SIYU_DATABASE_URL": st.rt.settings.sqlalchemy_url,
        "SIYU_SECRET_KEY": TEST_SECRET_KEY,
        "SIYU_WECOM_BASE_URL": st.emulator,
        "SIYU_DATA_DIR": str(tmp_path),
        "SIYU_WORK_LEASE_S": str(LEASE_S),
        # waits out the slow answer: a 10 s timeout had ended the work 4 s after the test's
        # two leases, and a test held back that long found the worker done (or the event run)
        "SIYU_WECOM_TIMEOUT_S": str(SLOW_S + 30),
    }
    kind = "outbox" if model is OutboxMessage else "event"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, kind, str(row_id)], env=env, cwd=tmp_path)
    db = st.rt.db
    try:
        wait_for(lambda: st.control("GET", "/faults") == [], timeout=60)  # the call is under way
        time.sleep(2 * LEASE_S)
        assert worker.poll() is None, "the worker stopped"
        assert claimed(db, model, row_id) == []  # two leases on, the live worker still holds it
        worker.kill()
        worker.wait()
        [again] = wait_for(lambda: claimed(db, model, row_id), timeout=4 * LEASE_S)
    finally:
        worker.kill()
    return again


def test_a_card_in_flight_is_held_while_sent_and_taken_up_a_lease_after_its_worker_dies(
    settings, db, tmp_path
):
    with stack(settings, db, serve_siyu=False) as st:
        with st.session() as s:
            body = {"touser": "zhangsan", "msgtype": "text", "text": {"content": "客户在等您回复"}}
            outbox.enqueue(s, "app_message", "lease:in-flight", body)
            row_id = s.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == "lease:in-flight"))
        again = run_slowly_then_kill(st, tmp_path, OutboxMessage, row_id, "/cgi-bin/message/send")
    assert again.attempts == 2 and again.status == "pending"


def test_a_callback_event_held_up_by_wecom_is_not_run_twice_and_comes_back_if_its_worker_dies(
    settings, db, tmp_path
):
    with stack(settings, db, serve_siyu=False) as st:
        xml = (
            f"<xml><ToUserName>{st.corp_id}</ToUserName><FromUserName>sys</FromUserName>"
            "<CreateTime>1700000000</CreateTime><MsgType>event</MsgType>"
            "<Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType>"
            "<UserID>zhangsan</UserID><ExternalUserID>wmLeaseTest</ExternalUserID></xml>"
        )
        event_id = st.stored_event(xml)
        again = run_slowly_then_kill(st, tmp_path, CallbackEvent, event_id, "/cgi-bin/externalcontact/get")
    assert again.attempts == 2 and again.status == "pending"
