"""The worker through what a long-running process meets: its database connections dropped
under it (a failover, a restart of PostgreSQL, an idle timeout in a pooler), or its database
gone silent (a host that loses power, a network cut: nothing tells the worker)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import siyu
from siyu.config import DatabaseTimeouts
from siyu.conversations import tasks as conversation_tasks
from siyu.customers import channels, tag_sync
from siyu.customers import tasks as customer_tasks
from siyu.db import Database, utcnow
from siyu.intake import tasks as intake_tasks
from siyu.intake.models import CallbackEvent
from siyu.notify import outbox
from siyu.notify.models import OutboxMessage
from siyu.runtime import Runtime
from siyu.sla import tasks as _sla_tasks  # noqa: F401 - registers the SLA's senders
from siyu.sla.service import save_policy
from siyu.tenancy.models import Tenant
from siyu.tenancy.tasks import sync_due_staff, sync_staff
from tests.customers.test_acquisition import follow_of, make_channel, run
from tests.sla.test_e2e_emulator import cards_to
from tests.support.proxy import BlackHoleProxy
from tests.support.stack import stack, wait_for


def drop_connections(database_url: str, seconds: float) -> int:
    """Terminate every other server process of this test run's database, again and again for
    `seconds`: whatever a worker loop is doing then fails on a dead connection."""
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    dropped = 0
    try:
        with engine.connect() as conn:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                dropped += conn.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                time.sleep(0.05)
    finally:
        engine.dispose()
    return dropped


def test_the_worker_carries_on_after_its_database_connections_are_dropped(stack, database_url):
    if not stack.rt.db.is_postgres:
        pytest.skip("dropping server connections is PostgreSQL's (SIYU_TEST_DATABASE_URL)")
    run(sync_staff(stack.rt, stack.tenant_id))
    with stack.session() as s:
        save_policy(s, quiet_hours=[])
    stack.enable_archive()
    channel = make_channel(stack)
    ext = stack.scan(channel.config_id, "卫先生")["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.chat(ext, "zhangsan", "这个能便宜点吗？")
    busy = threading.Thread(target=drop_connections, args=(database_url, 3.0))
    busy.start()  # while the worker pulls the archive, fires steps and sends
    time.sleep(1.0)
    stack.rt.clock.advance(125)  # past the first step
    busy.join()
    # the question was pulled, its step fired and the agent's card sent: once (a pull that
    # failed on a dropped connection is tried again after its backoff, up to 32 s, and the
    # worker meanwhile retries other tests' tenants in this database: 30 s was not always enough)
    card = wait_for(lambda: cards_to(stack, "zhangsan"), timeout=90)
    time.sleep(2)
    assert len(cards_to(stack, "zhangsan")) == len(card) == 1
    assert "卫先生" in str(card[0]["payload"])


def card(st, text_: str) -> None:
    with st.session() as s:
        body = {"touser": "zhangsan", "msgtype": "text", "text": {"content": text_}}
        outbox.enqueue(s, "app_message", f"outage:{text_}", body)


def received(st, text_: str) -> int:
    """How many times `text_` reached WeCom."""
    return sum(text_ in str(m) for m in st.app_messages())


def worker_through(proxy, st, settings, database_url: str, log, **timeouts) -> subprocess.Popen:
    """`siyu worker`, as an operator runs it, reaching the database through `proxy`."""
    ours = settings.model_copy(
        update={"database_url": proxy.url(database_url), "wecom_base_url": st.emulator, **timeouts}
    )
    env = {
        **os.environ,
        **{f"SIYU_{k.upper()}": str(v) for k, v in ours.model_dump().items()},
        "PYTHONPATH": str(Path(siyu.__file__).parents[1]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "siyu.cli", "worker", "--concurrency", "4"],
        env=env,
        stderr=log,
        start_new_session=True,
    )


def end(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_a_worker_whose_database_goes_silent_says_so_once_and_goes_on_when_it_is_back(
    settings, db, database_url, tmp_path
):
    if not db.is_postgres:
        pytest.skip("PostgreSQL's timeouts (SIYU_TEST_DATABASE_URL)")
    pg = make_url(database_url)
    log_path = tmp_path / "worker.log"
    with (
        stack(settings, db, serve_siyu=False) as st,
        BlackHoleProxy((pg.host, pg.port or 5432)) as proxy,
        log_path.open("w") as log,
    ):
        worker = worker_through(
            proxy,
            st,
            settings,
            database_url,
            log,
            database_connect_timeout_s=2,
            database_dead_peer_s=2,
            database_statement_timeout_s=2,
        )
        try:
            card(st, "停电之前")
            wait_for(lambda: received(st, "停电之前"), timeout=60)  # its connections are up
            proxy.black_hole()  # the database host loses power: packets go nowhere, no RST
            card(st, "恢复之后")  # (stored straight into the database, as a web server would)
            lines = lambda: log_path.read_text().splitlines()  # noqa: E731
            wait_for(lambda: any("the database does not answer" in line for line in lines()), timeout=60)
            time.sleep(6)  # every loop fails again meanwhile, some several times
            assert not received(st, "恢复之后")
            proxy.resume()  # the host is back
            wait_for(lambda: received(st, "恢复之后"), timeout=60)
            wait_for(lambda: any("the database answers again" in line for line in lines()))
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    errors = [line for line in log_path.read_text().splitlines() if " ERROR " in line]
    # The worker's loops say it once in all (they had logged a traceback per loop per tick).
    # Work under way when the database went silent logs its own failure, once for what it held
    # (a card sent and not recorded, a lease not renewed, a tenant's search backlog): that is
    # not the loops', and how much of it there is depends on the moment of the cut.
    loops = [line for line in errors if " ERROR siyu.jobs.worker: " in line]
    assert len(loops) == 1 and "the database does not answer" in loops[0], errors
    assert sum("the database does not answer" in line for line in errors) == 1, errors


def test_a_worker_stopped_while_its_database_is_silent_stops_in_seconds_and_loses_nothing(
    settings, db, database_url, tmp_path
):
    if not db.is_postgres:
        pytest.skip("PostgreSQL's timeouts (SIYU_TEST_DATABASE_URL)")
    pg = make_url(database_url)
    # Limits far longer than the stop may take: a loop waiting on the silent database is not
    # left to wait them out (they had held `systemctl stop` for about 80 s by default).
    limits = {
        "database_connect_timeout_s": 60,
        "database_dead_peer_s": 60,
        "database_statement_timeout_s": 60,
    }
    with (
        stack(settings, db, serve_siyu=False) as st,
        BlackHoleProxy((pg.host, pg.port or 5432)) as proxy,
        (tmp_path / "worker.log").open("w") as log,
    ):
        worker = worker_through(proxy, st, settings, database_url, log, **limits)
        try:
            card(st, "停电之前")
            wait_for(lambda: received(st, "停电之前"), timeout=60)
            proxy.black_hole()
            card(st, "停电之时")
            time.sleep(2)  # the loops are waiting on the database by now
            os.killpg(worker.pid, signal.SIGTERM)  # systemctl stop
            assert worker.wait(timeout=30) == 0
        finally:
            end(worker)
        assert not received(st, "停电之时")
        proxy.resume()
        worker = worker_through(proxy, st, settings, database_url, log, **limits)
        try:
            wait_for(lambda: received(st, "停电之时"), timeout=60)
            time.sleep(1)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=30)
            end(worker)
        assert received(st, "停电之前") == received(st, "停电之时") == 1


# A callback event of a kind stored for the record only (nothing to ask WeCom first)
UNHANDLED = CallbackEvent(
    id=1,
    tenant_id=1,
    kind="change_contact/update_user",
    attempts=1,
    xml="<xml><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>update_user</ChangeType></xml>",
)


def message(kind: str, payload: dict) -> OutboxMessage:
    """An outbox row of tenant 1 as the worker claimed it (detached), due for an hour more."""
    deadline = utcnow() + timedelta(hours=1)
    return OutboxMessage(id=1, tenant_id=1, kind=kind, payload=payload, attempts=1, deadline_at=deadline)


def sent(kind: str, payload: dict, **prepared):
    """`kind`'s sender, as the worker calls it (`prepared`: what its batch read for it)."""
    return lambda rt: outbox.SENDERS[kind](rt, 1, message(kind, payload), **prepared)


CARD = {"touser": "zhangsan", "msgtype": "text", "text": {"content": "停电之时"}}
SLA_CARD = {"touser": "zhangsan", "escalations": [1]}
WELCOME = {"welcome_code": "WC1", "userid": "zhangsan", "external_userid": "wm-new", "state": "ch-outage"}


def rechecked(work):
    """`work` with the tenant's WeCom clients made already (a worker that has sent for the
    tenant before), and due to be checked against the credentials stored."""

    def run(rt):
        sealed = rt.box.seal("secret")
        rt.clients.for_tenant(
            Tenant(
                id=1,
                corp_id="ww-1",
                agent_id=1000002,
                agent_secret_sealed=sealed,
                contact_secret_sealed=sealed,
                verified_at=None,
            )
        )
        rt.clients.RECHECK_S = 0.0
        return work(rt)

    return run


# What the worker does with the database, each on its one event loop: the archive timer's
# round (which tenants to pull), naming new groups after a pull (and the archive's client for
# groups of staff only), reading the members of groups stored before they were kept, a group's
# dismissal, a callback event's outcome, a customer event's write and the staff sync's
# schedule; a channel disabled (the server's loop: every request waits on it too); and the
# senders of cards, SLA cards (their batch's reading failed, or not), calls, welcomes and tags,
# their tenant's WeCom clients not made yet (the worker just started) or due to be checked.
WORK = {
    "archive timer": lambda rt: conversation_tasks.pull_all(rt),
    "naming groups": lambda rt: conversation_tasks._name_new_groups(rt, 1),
    "archive client": lambda rt: conversation_tasks._archive_client(rt, 1),
    "reading group members": lambda rt: conversation_tasks.read_unread_members(rt),
    "group dismissed": lambda rt: conversation_tasks.on_group_changed(
        rt, 1, 1, {"ChatId": "wr-gone", "ChangeType": "dismiss"}
    ),
    "callback event": lambda rt: intake_tasks.process(rt, UNHANDLED),
    "customer lost": lambda rt: customer_tasks.on_lost(
        rt, 1, 1, {"UserID": "zhangsan", "ExternalUserID": "wm-gone"}
    ),
    "staff sync schedule": lambda rt: sync_due_staff(rt),
    "channel disabled": lambda rt: channels.disable_channel(rt, 1, 1),
    "customer added": lambda rt: customer_tasks.on_added(
        rt, 1, 1, {"UserID": "zhangsan", "ExternalUserID": "wm-new", "ChangeType": "add_external_contact"}
    ),
    "card": sent("app_message", CARD),
    "card, clients rechecked": rechecked(sent("app_message", CARD)),
    "SLA card": sent("sla_notice", SLA_CARD, prepared={"touser": "zhangsan"}),
    "SLA card, batch unread": sent("sla_notice", SLA_CARD),
    "call": sent("sla_call", {"callee": "zhangsan", "call": 1, "escalations": [1]}),
    "welcome": sent("welcome", WELCOME),
    "tag marked": sent(tag_sync.KIND, {"userid": "zhangsan", "external_userid": "wm-1", "add_tag": ["et-1"]}),
}


@pytest.mark.parametrize("work", WORK.values(), ids=WORK.keys())
def test_work_waiting_on_a_silent_database_holds_up_nothing_else_in_the_worker(
    settings, db, database_url, work
):
    """The archive timer, callback events, the staff sync and the senders (their tenant's
    WeCom clients, a welcome's text, a call's quiet hours) read and wrote the database on the
    event loop the worker's other loops share: during an outage each of their reads held
    every card and step due meanwhile until the connection's limits gave up on the silent
    server (80 s by default)."""
    if not db.is_postgres:
        pytest.skip("a database gone silent is PostgreSQL's (SIYU_TEST_DATABASE_URL)")
    pg = make_url(database_url)
    short = DatabaseTimeouts(connect_s=2, dead_peer_s=2, statement_s=2, idle_in_transaction_s=2)
    scheduled = settings.model_copy(update={"staff_sync_interval_s": 6 * 3600})  # as a worker runs
    with BlackHoleProxy((pg.host, pg.port or 5432)) as proxy:
        silent = Database(proxy.url(database_url), short)
        rt = Runtime.create(scheduled, silent)
        proxy.black_hole()  # the database host loses power: packets go nowhere, no RST

        async def meanwhile() -> tuple[bool, bool]:
            waiting = asyncio.create_task(work(rt))
            other = asyncio.create_task(asyncio.sleep(0))  # anything else the loop has to do
            done, _ = await asyncio.wait({waiting, other}, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.gather(waiting, return_exceptions=True)  # (it fails once the limits are out)
            return other in done, waiting in done

        try:
            went_on, work_done = asyncio.run(meanwhile())
        finally:
            silent.dispose()
    assert went_on and not work_done
