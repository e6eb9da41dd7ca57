"""A message being sent stays its worker's while the send lasts, and no longer than a lease
after that worker dies: the next worker takes it up within a minute, not five."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

import siyu
from siyu.jobs.claim import claim
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from tests.support import TEST_SECRET_KEY
from tests.support.stack import stack, wait_for

# A worker in a process of its own, so that the test can kill it mid-send as the OOM killer
# would: it claims the one message and sends it.
SENDER = """
import asyncio, sys
from siyu.config import Settings
from siyu.db import Database
from siyu.jobs.claim import claim
from siyu.notify import tasks
from siyu.notify.models import OutboxMessage
from siyu.runtime import Runtime

settings = Settings()
rt = Runtime.create(settings, Database(settings.sqlalchemy_url))
rows = claim(rt.db, OutboxMessage, 10, where=(OutboxMessage.id == int(sys.argv[1]),))
assert rows, "nothing to claim"
asyncio.run(tasks.send_batch(rt, rows))
"""


def claimed(db, row_id: int) -> list:
    return claim(db, OutboxMessage, 10, where=(OutboxMessage.id == row_id,))


def test_a_message_in_flight_is_held_while_sent_and_taken_up_a_lease_after_its_worker_dies(
    settings, db, tmp_path
):
    lease_s = 3.0
    with stack(settings, db, serve_siyu=False) as st:
        with st.session() as s:
            body = {"touser": "zhangsan", "msgtype": "text", "text": {"content": "客户在等您回复"}}
            outbox.enqueue(s, "app_message", "lease:in-flight", body)
            row_id = s.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == "lease:in-flight"))
        # WeCom answers slowly (its limits, a slow network): the send lasts longer than a lease
        slow = {"corp_id": st.corp_id, "path": "/cgi-bin/message/send", "delay_s": 10.0}
        st.control("POST", "/faults", json=slow)
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(siyu.__file__).parents[1]),
            "SIYU_DATABASE_URL": st.rt.settings.sqlalchemy_url,
            "SIYU_SECRET_KEY": TEST_SECRET_KEY,
            "SIYU_WECOM_BASE_URL": st.emulator,
            "SIYU_DATA_DIR": str(tmp_path),
            "SIYU_OUTBOX_LEASE_S": str(lease_s),
        }
        worker = subprocess.Popen([sys.executable, "-c", SENDER, str(row_id)], env=env, cwd=tmp_path)
        try:
            wait_for(lambda: st.control("GET", "/faults") == [], timeout=60)  # the send is under way
            time.sleep(2 * lease_s)
            assert worker.poll() is None, "the sending worker stopped"
            assert claimed(db, row_id) == []  # two leases on, the live send still holds it
            worker.kill()
            worker.wait()
            [again] = wait_for(lambda: claimed(db, row_id), timeout=4 * lease_s)
        finally:
            worker.kill()
    assert again.attempts == 2 and again.status == "pending"
