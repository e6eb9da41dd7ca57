"""API tokens for integrations: the only writer of ApiToken.

A token acts as one person of the tenant, so every rule of who sees what applies to it
unchanged: an admin picks whom (themselves, a supervisor, a staff member), and the token
reads what that person would, with the role they have at each call. The secret is
`siyu_` and 40 letters and digits (about 238 bits; 202 past the 6 the page's form chose,
see form_once): shown once, kept only as its sha256,
and found by that hash, so no comparison of secrets runs at all. The prefix makes a
leaked one easy to find in code and logs (`siyu_[A-Za-z0-9]{40}`).

A token is its maker's reach, and must not outlast it under a colleague's name: it answers
only while the admin who made it is one, in the company (`vouched_for`), and it may act as
no other admin (`acting_person`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import ApiToken, Person, Staff, Tenant
from siyu.tenancy.queries import member_userid, members_left

PREFIX = "siyu_"
SECRET_CHARS = 40
SHOWN_CHARS = len(PREFIX) + 6  # of the secret, in lists: enough to tell a tenant's tokens apart
NAME_CHARS = 100
# last_used_at is written at most this often a token: a script calling many times a second
# would otherwise write a row on every call
USED_EVERY = timedelta(minutes=1)
# an expiry further off is no expiry: and year 9999 overflowed showing it in +08:00
MAX_EXPIRY_DAYS = 3653
TOO_FAR = "到期时间最多 10 年 / the expiry is at most 10 years ahead"
_ALPHABET = string.ascii_letters + string.digits
ONCE_CHARS = SHOWN_CHARS - len(PREFIX)
_ONCE = re.compile(f"[A-Za-z0-9]{{{ONCE_CHARS}}}")
ALREADY_MADE = "这个令牌已经创建过，密钥只显示一次 / already created; the secret is shown only once"


class TokenRefused(ValueError):
    """A token cannot be made so; the message says why, in both languages."""


@dataclass(frozen=True)
class TokenUse:
    """Whom a valid secret acts as."""

    token_id: int
    tenant_id: int
    person_id: int
    name: str
    created_by_id: int | None = None


def hashed(secret: str) -> str:
    return hashlib.sha256(secret.encode(errors="surrogatepass")).hexdigest()


def new_secret(start: str = "") -> str:
    return PREFIX + start + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARS - len(start)))


def form_once() -> str:
    """A value for the page's form that makes what it posts the same token however often it
    is posted (a reload re-posts it): it becomes the secret's shown start, so the token row
    itself remembers the form and no other record is kept."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(ONCE_CHARS))


def made_from_form(session: Session, once: str, created_by: int) -> ApiToken | None:
    """The token this admin already made from the form carrying `once`, if any. Two posts of
    the form at the same moment may both find none: the unique index on (tenant, maker,
    prefix) lets only one of them store its token (the other's `create` raises IntegrityError)."""
    if not _ONCE.fullmatch(once):
        return None
    return session.scalar(
        select(ApiToken).where(ApiToken.prefix == PREFIX + once, ApiToken.created_by_id == created_by)
    )


def status(token: ApiToken, now: datetime | None = None) -> str:
    """active | expired | revoked (`described` also tells "suspended": refused while the
    person it acts as, or the admin who made it, has left or is no admin)."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def expires_in(days: int | None) -> datetime | None:
    """The expiry `days` from now (None: never); TokenRefused beyond MAX_EXPIRY_DAYS."""
    if days is None:
        return None
    if days > MAX_EXPIRY_DAYS:
        raise TokenRefused(TOO_FAR)
    return utcnow() + timedelta(days=days)


def handle(person: Person | dict) -> str:
    """How a person is named beside their name, on the page and the command line: a WeCom
    member by their userid, as before they signed in (their login, `tenant/userid`, is Siyu's
    own), a person made by hand by their login."""
    if isinstance(person, dict):
        return person["staff_userid"] or person["login"]
    return person.staff_userid or person.login


def acting_choices(session: Session, maker_id: int) -> list[tuple[str, str]]:
    """Whom a token the admin `maker_id` makes may act as, as (value, label): themselves,
    every person of the tenant who is no admin, and every active staff member who has not
    signed in yet (made a person when chosen, as their first WeCom sign-in would, with the
    role it would give). Values: `p:<person id>` or `s:<userid>`."""
    names = {"admin": "管理员", "supervisor": "主管", "agent": "成员"}
    people = list(session.scalars(select(Person).order_by(Person.role, Person.display_name)))
    active = {m.userid: m for m in session.scalars(select(Staff).where(Staff.active.is_(True)))}
    left = {p.staff_userid for p in people if p.staff_userid} - set(active)
    out = [
        (f"p:{p.id}", f"{p.display_name}（{handle(p)} · {names.get(p.role, p.role)}）")
        for p in people
        if p.staff_userid not in left and p.disabled_at is None and (p.role != "admin" or p.id == maker_id)
    ]
    taken = {p.staff_userid for p in people if p.staff_userid}
    # the role their person is made with (person_for_staff): a leader acts as a supervisor
    leading = tenancy.leaders(session)
    for member in sorted(active.values(), key=lambda m: m.name):
        if member.userid not in taken:
            role = names["supervisor" if member.userid in leading else "agent"]
            out.append((f"s:{member.userid}", f"{member.name}（{member.userid} · {role}，尚未登录过）"))
    return out


OTHER_ADMIN = (
    "不能以其他管理员的身份创建令牌：请选自己，或一位主管、成员"
    " / a token may act as yourself or as a supervisor or member, not as another admin"
)


def acting_person(session: Session, tenant_id: int, choice: str, made_by: int | None) -> Person:
    """The person a choice from acting_choices names (made for a staff member who has none:
    a caller refused later must not commit); TokenRefused for one that is not of this tenant
    or has left, or for another admin than `made_by`. None for `made_by` is the operator's
    command line, which may name anyone: it runs with the database's own rights."""
    kind, _, value = choice.partition(":")
    person = None
    if kind == "p" and value.isascii() and value.isdigit():  # (² is a digit int() refuses)
        person = session.get(Person, int(value))
    elif kind == "s" and value:
        value = member_userid(session, value) or value  # ZhangSan is zhangsan: WeCom ignores case
        person = session.scalar(select(Person).where(Person.staff_userid == value))
        if person is None:
            person = tenancy.person_for_staff(session, session.get(Tenant, tenant_id), value)
    if person is None:
        # a member who left has no sign-in made for them: said so, as for one who had one
        gone = session.scalar(select(Staff.name).where(Staff.userid == value)) if kind == "s" else None
        if gone is not None:
            raise TokenRefused(_left(gone))
        raise TokenRefused("找不到这个账号 / no such person in this company")
    if person.disabled_at is not None or tenancy.has_left(session, person):
        raise TokenRefused(_left(person.display_name))  # (a disabled login's token is suspended from birth)
    if made_by is not None and person.role == "admin" and person.id != made_by:
        raise TokenRefused(OTHER_ADMIN)
    return person


def _left(name: str) -> str:
    return f"{name} 已离职或停用 / {name} has left the company"


def create(
    session: Session,
    name: str,
    acting: Person,
    created_by: int | None,
    expires_at: datetime | None = None,
    once: str = "",
) -> tuple[ApiToken, str]:
    """A new token acting as `acting` (in a tenant session); returns it and its secret, which
    is nowhere else from here on. `once`, from form_once, starts the secret."""
    name = " ".join(name.split())
    if not name:
        raise TokenRefused("请填写用途，例如「CRM 同步」 / give the token a name: what it is for")
    if len(name) > NAME_CHARS:
        raise TokenRefused(f"用途最多 {NAME_CHARS} 个字 / the name is over {NAME_CHARS} characters")
    if expires_at is not None and expires_at <= utcnow():
        raise TokenRefused("到期时间已过 / the expiry is in the past")
    if expires_at is not None and expires_at > utcnow() + timedelta(days=MAX_EXPIRY_DAYS):
        raise TokenRefused(TOO_FAR)
    secret = new_secret(once if _ONCE.fullmatch(once) else "")
    token = ApiToken(
        name=name,
        person_id=acting.id,
        created_by_id=created_by,
        prefix=secret[:SHOWN_CHARS],
        token_hash=hashed(secret),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, secret


def listed(session: Session) -> list[ApiToken]:
    """The tenant's tokens, newest first, revoked ones too (they say when they were)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke(session: Session, token_id: int) -> ApiToken | None:
    """Revoke a token of this tenant (again: no change); None when there is no such token."""
    token = session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


def use(session: Session, secret: str) -> TokenUse | None:
    """Whom `secret` acts as, or None for one that is unknown, revoked or expired (in a
    system session: the tenant is what the token tells). Notes the use, once a minute."""
    if not secret.startswith(PREFIX) or len(secret) != len(PREFIX) + SECRET_CHARS:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hashed(secret)))
    now = utcnow()
    if token is None or status(token, now) != "active":
        return None
    if token.last_used_at is None or token.last_used_at <= now - USED_EVERY:
        # conditional, so that processes answering the same token at once write it once
        session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token.id,
                or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - USED_EVERY),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return TokenUse(token.id, token.tenant_id, token.person_id, token.name, token.created_by_id)


def _gone(session: Session, people) -> set[int]:
    """The ids of `people` who have left the company (tenancy.has_left, for a list at once)."""
    by_userid = {p.staff_userid: p.id for p in people if p.staff_userid}
    return {by_userid[userid] for userid in members_left(session, by_userid)}


def _still_admin(maker: Person | None, left: set[int]) -> bool:
    return maker is not None and maker.role == "admin" and maker.id not in left


def vouched_for(session: Session, token: TokenUse) -> bool:
    """Whether the admin who made the token still is one, in the company (in its tenant's
    session): a token is refused from the day its maker leaves, as their own sign-in is,
    whoever it acts as; and while it acts as another admin (made before that was refused, or
    its person made admin since). One from the command line (no maker) answers to the operator."""
    if token.created_by_id is None:
        return True
    maker = session.get(Person, token.created_by_id)
    if maker is None or maker.role != "admin" or maker.disabled_at is not None:
        return False
    if tenancy.has_left(session, maker):
        return False
    return not _another_admin(session.get(Person, token.person_id), token.created_by_id)


def _another_admin(acting: Person | None, maker_id: int | None) -> bool:
    return acting is not None and maker_id is not None and acting.role == "admin" and acting.id != maker_id


def described(session: Session, tokens: list[ApiToken]) -> list[dict]:
    """Tokens as the API, the page and the command line show them: who each acts as and
    who made it, never a secret."""
    ids = {t.person_id for t in tokens} | {t.created_by_id for t in tokens if t.created_by_id}
    people = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))} if ids else {}
    now = utcnow()
    out = []
    # a login an admin disabled is refused as one who left is (siyu.web.auth)
    left = _gone(session, people.values()) | {p.id for p in people.values() if p.disabled_at}
    for t in tokens:
        acting, maker = people[t.person_id], people.get(t.created_by_id)
        state = status(t, now)
        refused = acting.id in left or _another_admin(acting, t.created_by_id)
        if state == "active" and (refused or (t.created_by_id and not _still_admin(maker, left))):
            state = "suspended"
        out.append(
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "acts_as": {
                    "person_id": acting.id,
                    "display_name": acting.display_name,
                    "login": acting.login,
                    "role": acting.role,
                    "staff_userid": acting.staff_userid,
                },
                "created_by": maker.display_name if maker else None,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
                "status": state,
            }
        )
    return out
