"""An admin gives a new password because the old one leaked: whoever knew it is signed out
everywhere (README: a new password signs them out everywhere). A sign-in with the old password
that was being checked at that moment got its session after the reset, and kept it."""

from __future__ import annotations

import re
import threading
import time
import uuid

import httpx
from sqlalchemy import select

from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Person
from tests.web.conftest import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_no_session_signed_in_with_the_old_password_outlives_a_new_password(siyu, world, db, as_role):
    name = f"leaked-{uuid.uuid4().hex[:8]}"
    with db.tenant_session(world.a.id) as s:
        tenancy.add_person(s, name, "泄露者", "agent", PASSWORD)
        person_id = s.scalar(select(Person.id).where(Person.login == name))
    admin = as_role("admin")
    stop = threading.Event()
    sessions: list[str] = []

    def keep_signing_in() -> None:  # whoever holds the leaked password, signing in again and again
        while not stop.is_set():
            with httpx.Client(base_url=siyu, timeout=20) as c:
                token = CSRF.search(c.get("/login").text).group(1)
                r = c.post("/login", data={"login": name, "password": PASSWORD, "csrf_token": token})
                if r.status_code == 303:
                    sessions.append(c.cookies["siyu_session"])
                elif r.status_code != 401:
                    return

    threads = [threading.Thread(target=keep_signing_in) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    r = admin.post(
        f"/api/v1/people/{person_id}/password",
        json={"password": "a-brand-new-one-42"},
        headers={"X-CSRF-Token": admin.csrf},
    )
    assert r.status_code == 200, r.text
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert sessions, "nobody signed in before the reset"
    still = [
        tok for tok in sessions
        if httpx.get(f"{siyu}/api/v1/me", cookies={"siyu_session": tok}).status_code == 200
    ]  # fmt: skip
    assert not still, (
        f"{len(still)} of {len(sessions)} sessions signed in with the old password still work after"
        " the admin gave a new one"
    )
