"""SLA test helpers: drive waits through conversations.service.ingest with REFERENCE 11.3
message dicts and explicit msgtimes, move Siyu's clock and the archive cursor, fire."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from siyu import sla  # noqa: F401 - registers the wait listener and the senders
from siyu.conversations import service as conversations
from siyu.conversations.models import ArchiveCursor, Conversation
from siyu.customers.models import Customer
from siyu.db.crypto import SecretBox
from siyu.insights.needs_reply import default_classifier
from siyu.notify.models import OutboxMessage
from siyu.runtime import Runtime
from siyu.sla import service, tasks
from siyu.sla.models import SlaEscalation, SlaWait
from siyu.tenancy.models import Department, Staff
from siyu.tenancy.service import CorpCredentials, save_tenant
from siyu.wecom.crypto import new_encoding_aes_key
from tests.support import TEST_SECRET_KEY
from tests.support.stack import forget_pending

SEQ = itertools.count(1)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class Wait:
    """A tenant's conversations as a test script: customers say things at given times."""

    rt: Runtime
    tenant_id: int
    t0: datetime

    def session(self):
        return self.rt.db.tenant_session(self.tenant_id)

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def ingest(self, *messages: dict) -> dict:
        @dataclass
        class Item:
            seq: int
            msgid: str
            message: dict

        items = [Item(next(SEQ), m["msgid"], m) for m in messages]
        with self.session() as s:
            return conversations.ingest(s, items, default_classifier().classify)

    def _message(self, sender: str, to: str, text: str, at: float, msgid: str | None) -> dict:
        return {
            "msgid": msgid or "m" + secrets.token_hex(8),
            "action": "send",
            "from": sender,
            "tolist": [to],
            "roomid": "",
            "msgtime": ms(self.at(at)),
            "msgtype": "text",
            "text": {"content": text},
        }

    def say(self, text: str, at: float, ext: str = "wmcustomer1", staff: str = "zhangsan", msgid=None) -> str:
        message = self._message(ext, staff, text, at, msgid)
        self.ingest(message)
        return message["msgid"]

    def reply(self, text: str, at: float, ext: str = "wmcustomer1", staff: str = "zhangsan") -> str:
        message = self._message(staff, ext, text, at, None)
        self.ingest(message)
        return message["msgid"]

    def recall(self, msgid: str, at: float, ext: str = "wmcustomer1", staff: str = "zhangsan") -> None:
        self.ingest(
            {
                "msgid": "r" + secrets.token_hex(8),
                "action": "recall",
                "from": ext,
                "tolist": [staff],
                "roomid": "",
                "msgtime": ms(self.at(at)),
                "msgtype": "revoke",
                "revoke": {"pre_msgid": msgid},
            }
        )

    def customer(self, ext: str, name: str) -> None:
        with self.session() as s:
            s.add(Customer(external_userid=ext, name=name))

    def pulled(self, seconds: float) -> None:
        """The archive is complete up to t0 + seconds."""
        with self.session() as s:
            cursor = s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive"))
            if cursor is None:
                cursor = ArchiveCursor(source="archive", seq=0)
                s.add(cursor)
            cursor.pulled_until = self.at(seconds)

    def clock(self, seconds: float) -> None:
        """Siyu's clock to t0 + seconds."""
        self.rt.clock.advance((self.at(seconds) - self.rt.now()).total_seconds())

    def fired(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).where(SlaEscalation.status == "fired"))

    def fire(self) -> int:
        """Run the worker's SLA pass (for every tenant: the database is shared); returns how
        many of this tenant's steps fired."""
        before = self.fired()
        asyncio.run(tasks.fire_due(self.rt))
        return self.fired() - before

    def conversation(self, ext: str = "wmcustomer1", staff: str = "zhangsan") -> Conversation:
        with self.session() as s:
            return s.scalar(select(Conversation).where(Conversation.key == f"single:{ext}:{staff}"))

    def outbox(self, kind: str = "sla_notice") -> list[OutboxMessage]:
        """What this tenant's firing queued to send, oldest first."""
        with self.session() as s:
            return list(
                s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id))
            )

    def policy(self, **fields) -> None:
        """Save the tenant's policy, without quiet hours (calls may go at any time)."""
        with self.session() as s:
            service.save_policy(s, quiet_hours=[], **fields)

    def steps(self, ext: str = "wmcustomer1", staff: str = "zhangsan") -> list[tuple]:
        conversation = self.conversation(ext, staff)
        with self.session() as s:
            return [
                (e.step, e.status, e.recipient)
                for e in s.scalars(
                    select(SlaEscalation)
                    .where(SlaEscalation.conversation_id == conversation.id)
                    .order_by(SlaEscalation.wait_id, SlaEscalation.step)
                )
            ]

    def waits(self, ext: str = "wmcustomer1", staff: str = "zhangsan") -> list[SlaWait]:
        conversation = self.conversation(ext, staff)
        with self.session() as s:
            return list(
                s.scalars(
                    select(SlaWait).where(SlaWait.conversation_id == conversation.id).order_by(SlaWait.id)
                )
            )


def items(*messages: dict) -> list:
    """Archived messages (`Wait._message`'s) as a pull hands them to ingest."""
    return [SimpleNamespace(seq=next(SEQ), msgid=m["msgid"], message=m) for m in messages]


def now_ms(rt: Runtime) -> datetime:
    now = rt.now()
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def local_tenant(db, settings) -> tuple[Runtime, int]:
    """A tenant with the stack's directory, without WeCom (for worker-level tests)."""
    rt = Runtime.create(settings, db)
    creds = CorpCredentials("ww" + secrets.token_hex(8), 1000002, "a", "c", "t", new_encoding_aes_key())
    with db.system_session() as s:
        tenant_id = save_tenant(
            s, SecretBox(TEST_SECRET_KEY), "示例", creds, slug="s" + secrets.token_hex(4)
        ).id
    with db.tenant_session(tenant_id) as s:
        s.add(Department(wecom_id=1, name="总部", parent_wecom_id=0, leaders=["boss"]))
        s.add(Department(wecom_id=2, name="销售一部", parent_wecom_id=1, leaders=["lisi"]))
        for userid, name, leaders, mobile in [
            ("boss", "王总", [], "13800000000"),
            ("lisi", "李四", ["boss"], "13800000001"),
            ("zhangsan", "张三", ["lisi"], "13800000002"),
            ("wangwu", "王五", [], "13800000003"),
        ]:
            dept = 1 if userid == "boss" else 2
            s.add(
                Staff(
                    userid=userid,
                    name=name,
                    departments=[dept],
                    main_department=dept,
                    direct_leaders=leaders,
                    mobile=mobile,
                )
            )
    return rt, tenant_id


@pytest.fixture
def local(db, settings) -> Iterator[Wait]:
    rt, tenant_id = local_tenant(db, settings)
    yield Wait(rt, tenant_id, now_ms(rt))
    forget_pending(db, tenant_id)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)
