"""How many passwords the login form checks: counted in the database, so every server
process sees the same count (the only writer of LoginThrottle).

Anyone may post the login form; without a limit a password is guessed as fast as the
servers can hash. But a limit per login alone hands whoever knows a login the power to
keep its owner out by typing wrong passwords. So, as AD FS's Extranet Smart Lockout and
django-axes's login-and-address lockout do it, tries are counted twice:

- per login and client address: MAX_FAILURES tries within FAILURE_WINDOW_S of the first,
  and that address is refused for that login until the window ends. A stranger locks out
  only their own address; a right password forgets its address's tries.
- per login, from addresses it has not signed in from within FAMILIAR_S: LOGIN_MAX_FAILURES
  tries in a window (several addresses' worth) and every such address is refused until the
  window ends. This bounds a guesser spread over many addresses; the owner, at an address
  they signed in from before, is not held to it, and elsewhere can still use WeCom.

A try is counted before its password is checked, in one statement per count, so requests
sent at once cannot all slip in under the limit. Addresses are the client's IP, an IPv6
client's /64 (one subscriber has a whole /64 to pick from). Each count is one row keyed by
what it counts; rows that have expired are deleted when a count starts afresh.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.tenancy.models import LoginThrottle

MAX_FAILURES = 10
LOGIN_MAX_FAILURES = 50
FAILURE_WINDOW_S = 15 * 60
FAMILIAR_S = 30 * 86400
PRUNE_BATCH = 1000


def client_address(host: str | None) -> str:
    """What tries from `host` (the request's client, as the server took it) are counted by."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # not an IP (a proxy named a host): as given, without the key's separator
        return host[:64].replace("|", "?")
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _key(kind: str, address: str, login: str) -> str:
    # the address never holds "|", so no two (address, login) give one key
    return f"{kind}|{address}|{login.casefold()[:200]}"


def take_try(session: Session, login: str, address: str, now: datetime | None = None) -> bool:
    """Count a try at `login`'s password from `address`, before it is checked: False when it
    is refused (and not to be checked)."""
    now = now or utcnow()
    if _count(session, _key("tries", address, login), now) > MAX_FAILURES:
        return False
    if familiar(session, login, address, now):
        return True
    return _count(session, _key("tries", "", login), now) <= LOGIN_MAX_FAILURES


def familiar(session: Session, login: str, address: str, now: datetime | None = None) -> bool:
    """Whether `login` signed in from `address` within FAMILIAR_S."""
    now = now or utcnow()
    key = _key("signed-in", address, login)
    found = select(LoginThrottle.key).where(LoginThrottle.key == key, LoginThrottle.expires_at > now)
    return session.scalar(found) is not None


def signed_in(session: Session, login: str, address: str, now: datetime | None = None) -> None:
    """The right password from `address`: its tries are forgotten and it becomes familiar.
    From unfamiliar addresses only this try is taken back: a guesser elsewhere has not stopped."""
    now = now or utcnow()
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == _key("tries", address, login)))
    if not familiar(session, login, address, now):
        everywhere = _key("tries", "", login)
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == everywhere, LoginThrottle.tries > 0, LoginThrottle.expires_at > now)
            .values(tries=LoginThrottle.tries - 1)
        )
    until = now + timedelta(seconds=FAMILIAR_S)
    stmt = _insert(session).values(key=_key("signed-in", address, login), tries=1, expires_at=until)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"expires_at": until}))


def _insert(session: Session):
    return (sqlite if session.get_bind().dialect.name == "sqlite" else postgresql).insert(LoginThrottle)


def _count(session: Session, key: str, now: datetime) -> int:
    """One more try for `key`; the tries in its window, this one included."""
    ends = literal(now + timedelta(seconds=FAILURE_WINDOW_S), LoginThrottle.expires_at.type)
    over = LoginThrottle.expires_at <= now
    stmt = _insert(session).values(key=key, tries=1, expires_at=ends)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "tries": case((over, 1), else_=LoginThrottle.tries + 1),
            "expires_at": case((over, ends), else_=LoginThrottle.expires_at),
        },
    ).returning(LoginThrottle.tries)
    tries = session.execute(stmt).scalar_one()
    if tries == 1:
        _prune(session, now)
    return tries


def _prune(session: Session, now: datetime) -> None:
    expired = select(LoginThrottle.key).where(LoginThrottle.expires_at <= now).limit(PRUNE_BATCH)
    if session.get_bind().dialect.name != "sqlite":
        # rows another login's request holds are left for next time: it never waits on them
        expired = expired.with_for_update(skip_locked=True)
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(expired)))
