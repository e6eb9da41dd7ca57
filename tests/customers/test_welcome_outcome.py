"""A welcome's outcome on the customer's timeline when the customer's add and the welcome's send
are recorded at the same moment, each in its own transaction (the worker runs both in threads)."""

from __future__ import annotations

import secrets
import threading

import pytest
from sqlalchemy import select

from siyu.customers import service, welcome
from siyu.customers.models import Customer, TimelineEvent
from siyu.notify.models import OutboxMessage


def test_a_welcome_sent_while_the_add_is_recorded_is_on_the_timeline(db, fresh_tenant):
    """The send's record looked for the customer (not committed yet) and the add's record looked
    at the welcome (not marked sent yet): neither wrote 已发送欢迎语, and it never showed."""
    if not db.is_postgres:
        pytest.skip("row locks: SQLite has one writer at a time (SIYU_TEST_DATABASE_URL)")
    tid = fresh_tenant
    ext, code = "wm" + secrets.token_hex(6), "code-" + secrets.token_hex(4)
    fields = {
        "ChangeType": "add_external_contact",
        "UserID": "zhangsan",
        "ExternalUserID": ext,
        "WelcomeCode": code,
        "CreateTime": "1764900000",
    }
    with db.tenant_session(tid) as s:
        s.connection().execute(OutboxMessage.__table__.insert(), [welcome.queued_welcome(tid, fields)])
    contact = {"external_contact": {"external_userid": ext, "name": "王女士"}, "follow_user": []}
    added = threading.Event()

    def record_the_add() -> None:
        with db.tenant_session(tid) as s:
            service.record_added(s, fields, contact)
        added.set()

    with db.tenant_session(tid) as s:  # the welcome's send being recorded, as notify.tasks does
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == f"welcome:{code}"))
        row.status = "sent"
        s.flush()
        welcome._record(s, row, "welcome_sent")  # the send's own record: no customer yet
        adding = threading.Thread(target=record_the_add)
        adding.start()
        added.wait(timeout=3)  # it waits for this transaction now; it had gone on without it
    adding.join(timeout=30)
    assert added.is_set()
    with db.tenant_session(tid) as s:
        kinds = s.scalars(
            select(TimelineEvent.kind)
            .join(Customer, Customer.id == TimelineEvent.customer_id)
            .where(Customer.external_userid == ext)
        ).all()
    assert "welcome_sent" in kinds, kinds
