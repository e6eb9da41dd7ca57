"""A reminder card sent through the outbox keeps the waits it spoke of (CARD_TOLD)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import httpx
from sqlalchemy import update

from siyu import sla  # noqa: F401 - registers the senders
from siyu.db import utcnow
from siyu.db.crypto import SecretBox
from siyu.emulator.app import create_emulator_app
from siyu.jobs.claim import claim
from siyu.notify.models import OutboxMessage
from siyu.notify.tasks import send_batch
from siyu.runtime import Runtime
from siyu.sla import queries as sla_queries
from siyu.tenancy.models import Department, Staff
from siyu.tenancy.service import CorpCredentials, save_tenant
from tests.sla.conftest import Wait, now_ms
from tests.sla.test_told import _board, _snooze, card_to_four_two_left_out
from tests.support import TEST_SECRET_KEY
from tests.support.servers import bound_socket, port_of, serve
from tests.support.stack import DEPARTMENTS, STAFF, forget_pending


def _emulated_tenant(db, settings, emu_url):
    corp = (
        httpx.post(
            emu_url + "/_emulator/corps", json={"name": "示例", "departments": DEPARTMENTS, "staff": STAFF}
        )
        .raise_for_status()
        .json()
    )
    rt = Runtime.create(settings.model_copy(update={"wecom_base_url": emu_url}), db)
    with db.system_session() as s:
        tenant_id = save_tenant(
            s,
            SecretBox(TEST_SECRET_KEY),
            "示例",
            CorpCredentials.of_emulator_corp(corp),
            slug="h" + secrets.token_hex(4),
        ).id
    with db.tenant_session(tenant_id) as s:
        s.add(Department(wecom_id=1, name="总部", parent_wecom_id=0, leaders=["boss"]))
        s.add(Department(wecom_id=2, name="销售一部", parent_wecom_id=1, leaders=["lisi"]))
        for userid, name, leaders in [
            ("boss", "王总", []),
            ("lisi", "李四", ["boss"]),
            ("zhangsan", "张三", ["lisi"]),
        ]:
            dept = 1 if userid == "boss" else 2
            s.add(
                Staff(
                    userid=userid, name=name, departments=[dept], main_department=dept, direct_leaders=leaders
                )
            )
    return rt, tenant_id, corp


def test_a_card_sent_by_the_worker_keeps_the_waits_it_spoke_of(db, settings):
    """张三 snoozes 马强 and answers 赵先生 before the card goes, and the worker sends it. Recording
    it as sent wrote back the payload as claimed, before the card was built: the card forgot
    whom it named, and once 马强 was snoozed again, the board said it had reached him (已送达)."""
    sock = bound_socket()
    emu_url = f"http://127.0.0.1:{port_of(sock)}"
    with serve(create_emulator_app(public_url=emu_url, retry_delay_s=0.05), sock):
        rt, tenant_id, corp = _emulated_tenant(db, settings, emu_url)
        w = Wait(rt, tenant_id, now_ms(rt))
        try:
            message = card_to_four_two_left_out(w)
            with w.session() as s:  # due by the database's clock too (Siyu's is moved on)
                s.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == message.id)
                    .values(due_at=utcnow() - timedelta(seconds=1))
                )
            rows = claim(db, OutboxMessage, 10, where=(OutboxMessage.id == message.id,))
            assert [r.id for r in rows] == [message.id]

            async def go():
                try:
                    await send_batch(rt, rows)
                finally:
                    await rt.clients.aclose()

            asyncio.run(go())
            sent = httpx.get(f"{emu_url}/_emulator/corps/{corp['corp_id']}/app_messages").json()
            assert len(sent) == 1 and sent[0]["payload"]["textcard"]["title"].startswith("2 位客户等待回复")
            with w.session() as s:
                card = s.get(OutboxMessage, message.id)
                assert card.status == "sent"
                told = card.payload.get(sla_queries.CARD_TOLD)
            w.clock(90 + 16 * 60)  # his first snooze over, 马强 still waiting, snoozed again
            _snooze(w, "wmB")
            assert _board(w) == {"王女士": ["sent"], "马强": ["snoozed"], "钱女士": ["sent"]}, told
        finally:
            forget_pending(db, tenant_id)
