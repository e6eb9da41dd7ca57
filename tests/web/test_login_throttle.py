"""Wrong passwords: counted where every server process sees them, and per login and client
address, so that a stranger who knows a login locks out only themselves.

Siyu runs under uvicorn, which takes the client's address from X-Forwarded-For when the
connection comes from a proxy it trusts (127.0.0.1 by default), as the tests' clients do:
each actor here sends the address a reverse proxy would have sent for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from siyu.db import utcnow
from siyu.tenancy import login_throttle
from siyu.tenancy import service as tenancy
from siyu.tenancy.login_throttle import FAILURE_WINDOW_S, LOGIN_MAX_FAILURES, MAX_FAILURES
from siyu.tenancy.models import LoginThrottle
from tests.support.servers import free_port
from tests.support.stack import wait_for
from tests.web.conftest import PASSWORD
from tests.web.test_auth import CSRF


class Visitor:
    """A browser at one address, posting the login form."""

    def __init__(self, base_url: str, address: str):
        self.client = httpx.Client(base_url=base_url, headers={"X-Forwarded-For": address}, timeout=10)
        self.token = CSRF.search(self.client.get("/login").text).group(1)

    def sign_in(self, login: str, password: str) -> int:
        data = {"login": login, "password": password, "csrf_token": self.token}
        return self.client.post("/login", data=data).status_code

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def visitor():
    opened: list[Visitor] = []

    def make(base_url: str, address: str) -> Visitor:
        opened.append(Visitor(base_url, address))
        return opened[-1]

    yield make
    for v in opened:
        v.close()


def _person(db, tenant_id: int, staff_userid: str | None = None) -> str:
    name = f"owner-{uuid.uuid4().hex[:8]}"
    with db.tenant_session(tenant_id) as s:
        tenancy.add_person(s, name, "账号主人", "agent", PASSWORD, staff_userid)
    return name


@pytest.fixture
def second_server(web_settings):
    """Another `siyu serve` on the same database, in a process of its own (as a second
    uvicorn worker or a second machine runs)."""
    port = free_port()
    env = {**os.environ, **{f"SIYU_{k.upper()}": str(v) for k, v in web_settings.model_dump().items()}}
    server = subprocess.Popen(
        [sys.executable, "-m", "siyu.cli", "serve", "--port", str(port)], env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz").status_code == 200
        except httpx.TransportError:
            assert server.poll() is None, "the second server stopped"
            return False

    try:
        wait_for(up, timeout=60, interval=0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_every_server_process_counts_the_same_wrong_passwords(siyu, second_server, world, db, visitor):
    """With two server processes a guesser had ten tries on each."""
    name = _person(db, world.a.id)
    here = "198.51.100.31"
    for url in (siyu, second_server):
        guesser = visitor(url, here)
        for n in range(MAX_FAILURES // 2):
            assert guesser.sign_in(name, f"guess-{url}-{n}") == 401
    for url in (siyu, second_server):  # ten wrong in all: neither checks an eleventh
        assert visitor(url, here).sign_in(name, PASSWORD) == 429


def test_a_strangers_wrong_passwords_lock_out_the_stranger_not_the_owner(siyu, world, db, visitor):
    name = _person(db, world.a.id)
    stranger = visitor(siyu, "203.0.113.7")
    for n in range(MAX_FAILURES):
        assert stranger.sign_in(name, f"guess-{n}") == 401
    assert stranger.sign_in(name, PASSWORD) == 429  # not even the right one, from there
    owner = visitor(siyu, "192.0.2.44")  # never signed in before, from anywhere
    assert owner.sign_in(name, PASSWORD) == 303
    me = owner.client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["display_name"] == "账号主人"
    assert stranger.sign_in(name, PASSWORD) == 429  # the owner's sign-in frees only the owner


def test_a_guesser_on_many_addresses_is_stopped_and_the_owner_still_signs_in(siyu, world, db, visitor):
    """Ten tries an address would let a guesser with many addresses try without end: past
    LOGIN_MAX_FAILURES from addresses the login never signed in from, no such address is
    tried. The owner signs in where they did before, and through WeCom anywhere."""
    name = _person(db, world.b.id, "zhaoliu")
    owner = visitor(siyu, "192.0.2.55")
    assert owner.sign_in(name, PASSWORD) == 303
    for i in range(LOGIN_MAX_FAILURES // MAX_FAILURES):
        guesser = visitor(siyu, f"203.0.113.{100 + i}")
        for n in range(MAX_FAILURES):
            assert guesser.sign_in(name, f"guess-{i}-{n}") == 401
    newcomer = visitor(siyu, "203.0.113.200")
    assert newcomer.sign_in(name, PASSWORD) == 429
    assert visitor(siyu, "192.0.2.55").sign_in(name, PASSWORD) == 303
    # 赵六 of 乙 through WeCom, at the address refused: signed in as the same person
    corp_id = world.b.corp["corp_id"]
    link = f"{siyu}/auth/wecom/{world.b.slug}?next=/"
    with httpx.Client(follow_redirects=True, timeout=10, headers={"X-Forwarded-For": "203.0.113.200"}) as c:
        r = c.get(f"{world.emu_url}/_emulator/oauth/as/{corp_id}/zhaoliu", params={"next": link})
        assert r.status_code == 200 and str(r.url.copy_with(fragment=None)) == f"{siyu}/"
        assert c.get(f"{siyu}/api/v1/me").json()["display_name"] == "账号主人"


def test_a_locked_out_address_may_try_again_once_its_window_has_passed(siyu, world, db, visitor):
    name = _person(db, world.a.id)
    here = visitor(siyu, "198.51.100.47")
    for n in range(MAX_FAILURES):
        assert here.sign_in(name, f"guess-{n}") == 401
    assert here.sign_in(name, PASSWORD) == 429
    with db.system_session() as s:  # fifteen minutes later
        rows = s.scalars(select(LoginThrottle).where(LoginThrottle.key.endswith(f"|{name}"))).all()
        assert rows
        for row in rows:
            row.expires_at -= timedelta(seconds=FAILURE_WINDOW_S)
    assert here.sign_in(name, PASSWORD) == 303


def test_tries_are_counted_by_login_however_typed_and_by_address(db):
    login, here, there, start = f"X-{uuid.uuid4().hex}", "198.51.100.60", "198.51.100.61", utcnow()
    gone = f"gone-{uuid.uuid4().hex}"
    with db.system_session() as s:
        assert login_throttle.take_try(s, gone, there, now=start)
        for n in range(MAX_FAILURES):
            typed = login.lower() if n % 2 else login
            assert login_throttle.take_try(s, typed, here, now=start + timedelta(seconds=n))
        assert not login_throttle.take_try(s, login, here, now=start + timedelta(seconds=60))
        assert login_throttle.take_try(s, login, there, now=start + timedelta(seconds=60))
        # the window counts from the first try: once it has passed, ten more
        assert login_throttle.take_try(s, login, here, now=start + timedelta(seconds=FAILURE_WINDOW_S))
        # a count started afresh deletes the rows that have expired, whatever login they count
        assert s.scalar(select(func.count()).where(LoginThrottle.key.endswith(f"|{gone}"))) == 0
        # a right password forgets its address's tries
        login_throttle.signed_in(s, login, here, now=start + timedelta(seconds=FAILURE_WINDOW_S + 1))
        later = start + timedelta(seconds=FAILURE_WINDOW_S + 2)
        assert all(login_throttle.take_try(s, login, here, now=later) for _ in range(MAX_FAILURES))
        assert not login_throttle.take_try(s, login, here, now=later)


def test_an_ipv6_client_is_counted_by_its_64():
    """One subscriber picks from a whole /64: by single address, ten tries each without end."""
    address = login_throttle.client_address
    assert address("2001:db8:1:2::1") == address("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address("2001:db8:1:3::1") != address("2001:db8:1:2::1")
    assert address("::ffff:192.0.2.1") == address("192.0.2.1") == "192.0.2.1"
    assert address(None) == "unknown"
