"""Two admins demoting (or disabling) each other at once leave one admin, on SQLite too, Siyu's
default database: each had read the other still an admin and gone on, leaving none."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import select

from siyu.tenancy import people
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Person

PASSWORD = "pass-word-123"


def _race(db, tid, first, second) -> tuple[dict, list[str]]:
    """`first` runs in a transaction not yet committed when `second` (another thread) runs."""
    refused: list[str] = []
    done = threading.Event()

    def other() -> None:
        try:
            with db.tenant_session(tid) as s:
                second(s)
        except people.PersonRefused as exc:
            refused.append(str(exc))
        done.set()

    with db.tenant_session(tid) as s:
        first(s)
        thread = threading.Thread(target=other)
        thread.start()
        done.wait(timeout=3)
    thread.join(timeout=60)
    assert done.is_set()
    return refused


def _two_admins(db, tid) -> tuple[int, int]:
    with db.tenant_session(tid) as s:
        return tuple(
            tenancy.add_person(s, f"hp-{uuid.uuid4().hex[:6]}", n, "admin", PASSWORD).id for n in "甲乙"
        )


def _admins_who_may_sign_in(db, tid, ids) -> list[int]:
    with db.tenant_session(tid) as s:
        return [
            p.id
            for p in s.scalars(select(Person).where(Person.id.in_(ids)))
            if p.role == "admin" and p.disabled_at is None
        ]


def test_two_admins_demoting_each_other_at_once_leave_one_admin_on_any_database(db, fresh_tenant):
    tid = fresh_tenant
    a, b = _two_admins(db, tid)
    refused = _race(
        db,
        tid,
        lambda s: people.set_role(s, b, "agent", by=a),
        lambda s: people.set_role(s, a, "agent", by=b),
    )
    left = _admins_who_may_sign_in(db, tid, [a, b])
    assert left == [a], f"admins left who may sign in: {left}; refused: {refused}"


def test_two_admins_disabling_each_other_at_once_leave_one_admin_on_any_database(db, fresh_tenant):
    tid = fresh_tenant
    a, b = _two_admins(db, tid)
    refused = _race(
        db,
        tid,
        lambda s: people.disable(s, b, by=a),
        lambda s: people.disable(s, a, by=b),
    )
    left = _admins_who_may_sign_in(db, tid, [a, b])
    assert left == [a], f"admins left who may sign in: {left}; refused: {refused}"
