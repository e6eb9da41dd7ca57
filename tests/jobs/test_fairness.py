"""Two companies on one worker: one company's WeCom answering slowly (its corp's own trouble:
a frequency block, a slow answer) with a backlog of its messages holds up no other company's
message, which its WeCom takes at once."""

from __future__ import annotations

import asyncio
import threading
import time

from sqlalchemy import select

from siyu.jobs.worker import Worker
from siyu.notify.models import OutboxMessage
from tests.notify.test_recording import queue
from tests.support.stack import forget_pending, second_tenant, stack, wait_for

FLOOD = 300  # more than the worker runs at once (4 claims of 64)


def _status(db, ids):
    with db.system_session() as s:
        return dict(
            s.execute(select(OutboxMessage.id, OutboxMessage.status).where(OutboxMessage.id.in_(ids))).all()
        )


def test_one_companys_slow_wecom_and_backlog_hold_up_no_other_companys_message(settings, db):
    quick = settings.model_copy(update={"wecom_timeout_s": 1.0})
    with stack(quick, db, serve_siyu=False) as st:
        b_id, _, b_corp = second_tenant(st, "另一家公司")
        try:
            # tenant A's corp: WeCom answers message/send only after 3 s (the client gives up at 1 s)
            slow = {"corp_id": st.corp_id, "path": "/cgi-bin/message/send", "delay_s": 3.0, "times": 100000}
            st.control("POST", "/faults", json=slow)
            a_ids = queue(db, st.tenant_id, [f"a{i}" for i in range(FLOOD)])
            [b_msg] = queue(db, b_id, ["zhangsan"])
            queued_at = time.monotonic()

            worker = Worker(st.rt)
            loop = asyncio.new_event_loop()

            def run() -> None:
                try:
                    loop.run_until_complete(worker.run())
                finally:
                    loop.run_until_complete(st.rt.clients.aclose())

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            try:
                wait_for(lambda: _status(db, [b_msg])[b_msg] == "sent", timeout=120, interval=0.1)
                late = time.monotonic() - queued_at
            finally:
                loop.call_soon_threadsafe(worker.stop)
                thread.join(30)
            # (it had waited 30 s and more, until the claims of A's before it had all timed out;
            # 10 s leaves room for a busy machine)
            assert late < 10.0, f"tenant B's message waited {late:.1f} s behind tenant A's"
            assert "sent" not in _status(db, a_ids).values()
        finally:
            forget_pending(db, b_id)
