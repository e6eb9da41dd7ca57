"""`siyu worker` stopped by a signal (systemctl stop, Ctrl-C, a deploy) or killed: it stops
soon and cleanly, and the next worker takes up the rest, losing and doubling nothing."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys

import httpx
from sqlalchemy import func, select

from siyu.conversations.models import ArchiveCursor, Message
from siyu.conversations.service import add_archive_key
from siyu.conversations.tasks import BATCH, BATCHES_PER_STORE
from siyu.emulator.app import create_emulator_app
from siyu.runtime import Runtime
from siyu.tenancy.models import Tenant
from siyu.tenancy.service import CorpCredentials, save_archive_settings, save_tenant
from siyu.wecom.archive import generate_key_pair
from tests.support.servers import serve
from tests.support.stack import STAFF, wait_for


def start_worker(settings) -> subprocess.Popen:
    """`siyu worker` in a process of its own, as an operator runs it."""
    env = {**os.environ, **{f"SIYU_{k.upper()}": str(v) for k, v in settings.model_dump().items()}}
    return subprocess.Popen(
        [sys.executable, "-m", "siyu.cli", "worker", "--concurrency", "4"],
        env=env,
        start_new_session=True,
    )


def archive_tenant(rt, emu: httpx.Client, corp: dict) -> int:
    """A tenant with 会话存档 on (http), pulled by the timer only (no notify callback set)."""
    creds = CorpCredentials(
        corp["corp_id"],
        int(corp["agent_id"]),
        corp["agent_secret"],
        corp["contact_secret"],
        "t",
        corp["encoding_aes_key"],
    )
    private_pem, public_pem = generate_key_pair()
    r = emu.post(
        f"/_emulator/corps/{corp['corp_id']}/archive/keys",
        json={"publickey_ver": 1, "public_key_pem": public_pem},
    )
    assert r.status_code < 300, r.text
    with rt.db.system_session() as s:
        tenant = save_tenant(s, rt.box, "示例", creds, slug="k" + secrets.token_hex(4))
        tenant_id = tenant.id
    with rt.db.tenant_session(tenant_id) as s:
        save_archive_settings(s, rt.box, s.get(Tenant, tenant_id), "http", corp["archive_secret"])
        add_archive_key(s, rt.box, 1, private_pem, public_pem)
    return tenant_id


def stored(rt, tenant_id: int) -> tuple[int, int, int]:
    """(messages stored, distinct msgids among them, the archive cursor's seq)."""
    with rt.db.tenant_session(tenant_id) as s:
        count, distinct = s.execute(select(func.count(), func.count(func.distinct(Message.msgid)))).one()
        seq = s.scalar(select(ArchiveCursor.seq).where(ArchiveCursor.source == "archive")) or 0
    return count, distinct, seq


def test_a_worker_killed_or_stopped_mid_backlog_leaves_the_rest_to_the_next_once(settings, db):
    emu_app = create_emulator_app(public_url="http://127.0.0.1")
    with serve(emu_app) as emu_url, httpx.Client(base_url=emu_url, timeout=120) as emu:
        department = {"id": 1, "name": "总部", "parentid": 0}
        r = emu.post(
            "/_emulator/corps",
            json={"name": "存档", "departments": [department], "staff": [{**STAFF[2], "department": [1]}]},
        )
        corp = r.json()
        ours = settings.model_copy(update={"wecom_base_url": emu_url, "archive_poll_s": 0.5})
        rt = Runtime.create(ours, db)
        tenant_id = archive_tenant(rt, emu, corp)
        store = BATCHES_PER_STORE * BATCH  # what a pull stores at a time
        # a backlog (a day of a busy corp, or a worker down for a while): a store done before
        # the kill, one before the stop, one begun just before the stop and finished by it, and
        # a batch still left for the last (a full fourth store had added a third to the time)
        total = 3 * store + BATCH
        for start in range(0, total, 2000):
            body = {
                "messages": [
                    {
                        "from": "zhangsan",
                        "tolist": [f"wmstop{i % 50}"],
                        "msgtype": "text",
                        "content": f"第{i}条",
                    }
                    for i in range(start, min(start + 2000, total))
                ]
            }
            assert (
                emu.post(f"/_emulator/corps/{corp['corp_id']}/archive/messages", json=body).status_code < 300
            )

        def stop_after(sig, seq: int) -> int:
            """Start a worker, signal it once the archive is stored past `seq`; its exit status."""
            worker = start_worker(ours)
            try:
                wait_for(lambda: stored(rt, tenant_id)[2] > seq, timeout=300, interval=0.01)
                worker.send_signal(sig)
                return worker.wait(timeout=120)
            finally:
                if worker.poll() is None:
                    worker.kill()

        assert stop_after(signal.SIGKILL, 0) == -signal.SIGKILL  # the OOM killer, mid-pull
        count, distinct, seq = stored(rt, tenant_id)
        assert count == distinct == seq < total
        # systemctl stop (Ctrl-C's SIGINT goes the same way): done within the store under way
        assert stop_after(signal.SIGTERM, seq) == 0
        count, distinct, seq = stored(rt, tenant_id)
        assert count == distinct == seq < total  # the rest is left to the next worker
        last = start_worker(ours)
        try:
            wait_for(lambda: stored(rt, tenant_id)[2] == total, timeout=300)
        finally:
            last.send_signal(signal.SIGTERM)
            assert last.wait(timeout=60) == 0
        assert stored(rt, tenant_id) == (total, total, total)  # every message, once
