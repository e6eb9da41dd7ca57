"""A callback event that fails because of how Siyu is set up (a secret WeCom refuses, a
permission missing) waits for the admin to mend it, rather than being given up within minutes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from siyu.customers.models import Customer
from siyu.db import utcnow
from siyu.intake import tasks as intake
from siyu.intake.models import CallbackEvent
from siyu.jobs.claim import claim
from tests.support.stack import stack


def _run(st, event_id: int, attempts_before: int, received_ago: timedelta) -> CallbackEvent:
    """The event's next try, after `attempts_before` tries, received `received_ago`."""
    with st.session() as s:
        s.execute(
            update(CallbackEvent)
            .where(CallbackEvent.id == event_id)
            .values(attempts=attempts_before, due_at=utcnow(), received_at=utcnow() - received_ago)
        )
    [row] = claim(st.rt.db, CallbackEvent, 10, where=(CallbackEvent.id == event_id,))
    asyncio.run(intake.process(st.rt, row))
    with st.session() as s:
        return s.get(CallbackEvent, event_id)


def test_an_add_event_failing_for_want_of_a_permission_is_kept_until_the_admin_mends_it(settings, db):
    """The add events of the minutes an admin spends mending a permission (60011) or a secret
    had been given up after ten tries, about 17 minutes: those customers never appeared,
    though WeCom answered for them once it was mended. They are tried for a day."""
    with stack(settings, db, serve_siyu=False) as st:
        no_permission = {"corp_id": st.corp_id, "path": "/cgi-bin/externalcontact/get", "errcode": 60011}
        st.control("POST", "/faults", json={**no_permission, "times": 100})
        event_id = st.added_event("wmRetryLater")
        tried = _run(st, event_id, attempts_before=10, received_ago=timedelta(minutes=20))
        assert tried.status == "pending" and "无权限" in tried.last_error  # tried again later

        st.control("DELETE", "/faults")  # the admin grants the permission
        done = _run(st, event_id, attempts_before=11, received_ago=timedelta(minutes=40))
        assert done.status == "done"
        with st.session() as s:
            assert s.scalar(select(Customer.id).where(Customer.external_userid == "wmRetryLater"))

        st.control("POST", "/faults", json={**no_permission, "times": 100})
        stale = st.added_event("wmGivenUp")
        given_up = _run(st, stale, attempts_before=30, received_ago=timedelta(days=2))
        assert given_up.status == "failed" and "无权限" in given_up.last_error
