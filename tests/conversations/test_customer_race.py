"""A customer becoming known (the add event, the customer sync) while a pull stores their chat."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from siyu.conversations import service, tasks
from siyu.conversations.models import Conversation
from siyu.customers import service as customers
from siyu.customers.models import Customer
from siyu.wecom.archive import ArchivedMessage
from tests.conversations.test_import_file import text_message
from tests.conversations.test_ingest import tenant_id  # noqa: F401 - fixture

T = 1764036000000  # 2025-11-25 10:00 in Shanghai, in ms


def _hello(msgid: str, customer: str) -> ArchivedMessage:
    """The customer's first 你好 to 张三, as the pull brings it."""
    return ArchivedMessage(1, msgid, text_message(msgid, customer, "zhangsan", "你好，在吗？", T))


def test_a_chat_stored_while_its_customer_is_added_is_theirs(db, tenant_id):  # noqa: F811
    """The customer's first 你好 is pulled (a backlog store, seconds long) while the add event
    (or `siyu sync customers`) stores the customer. upsert_customer links the chats the archive
    brought before (link_customer), but the pull's new conversation is not committed yet, so it
    links none; the pull had looked the customer up before it was committed, so it stores the
    chat with no customer. The chat is then nobody's for good: not on the customer's page, no
    name in the list."""
    if not db.is_postgres:
        pytest.skip("SQLite has one writer: the two never overlap")
    hello = _hello("race-hello", "wmRaceNew")
    added: dict = {}

    def add_customer() -> None:  # the add event's handler, in its own transaction
        with db.tenant_session(tenant_id) as s:
            customer, _ = customers.upsert_customer(
                s, {"external_userid": "wmRaceNew", "name": "新客户"}, datetime.now(UTC)
            )
            added["id"] = customer.id

    with db.tenant_session(tenant_id) as s:  # the pull's store, still under way
        service.ingest(s, [hello], tasks.classifier().classify)
        adding = threading.Thread(target=add_customer)
        adding.start()
        adding.join(timeout=30)
        assert not adding.is_alive(), "the add waited for the pull's transaction"
    with db.tenant_session(tenant_id) as s:
        chat = s.scalar(select(Conversation).where(Conversation.external_userid == "wmRaceNew"))
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == "wmRaceNew"))
    assert customer_id == added["id"]
    assert chat.customer_id == customer_id, (
        "the chat pulled while its customer was added belongs to no customer "
        f"(customer_id {chat.customer_id}, customer {customer_id})"
    )


def test_a_chat_stored_while_its_customer_is_being_added_is_theirs(db, tenant_id):  # noqa: F811
    """The other order: the add event's transaction has stored the customer and looked for their
    chats (none yet) when the pull stores and commits their first 你好, before the add commits.
    The pull cannot see the uncommitted customer either."""
    if not db.is_postgres:
        pytest.skip("SQLite has one writer: the two never overlap")
    hello = _hello("race-hello-2", "wmRaceLate")
    failed: list[Exception] = []

    def pull() -> None:  # the pull's store, in its own transaction
        try:
            with db.tenant_session(tenant_id) as s:
                service.ingest(s, [hello], tasks.classifier().classify)
        except Exception as exc:  # noqa: BLE001 - asserted below
            failed.append(exc)

    with db.tenant_session(tenant_id) as s:  # the add event's transaction, still under way
        customer, _ = customers.upsert_customer(
            s, {"external_userid": "wmRaceLate", "name": "新客户"}, datetime.now(UTC)
        )
        added = customer.id
        pulling = threading.Thread(target=pull)
        pulling.start()
        pulling.join(timeout=30)
        assert not pulling.is_alive(), "the pull waited for the add's transaction"
    assert not failed, failed
    with db.tenant_session(tenant_id) as s:
        chat = s.scalar(select(Conversation).where(Conversation.external_userid == "wmRaceLate"))
    assert chat.customer_id == added, f"the chat belongs to customer {chat.customer_id}, not {added}"
