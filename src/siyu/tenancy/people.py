"""Managing logins after they are made (设置 → 账号, `siyu person ...`): a person's role,
a new password, and ending a login. The only writer of Person's role, password and
disabled_at after add_person.

An admin may neither demote nor disable themselves, and a tenant keeps at least one admin
who may sign in: otherwise no one is left to undo it. A role change or a disabled login
holds from the person's next request, as the session and the token read the person anew
each time (siyu.web.auth)."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Person, Staff, WebSession

MIN_PASSWORD = 8


class PersonRefused(ValueError):
    """The change is refused; the message says why, in both languages."""


def listed(session: Session) -> list[dict]:
    """The tenant's people, admins first, with when each last signed in (their newest open
    session; None when none is open) and whether they have left or are disabled."""
    people = list(session.scalars(select(Person).order_by(Person.role, Person.display_name, Person.id)))
    newest_of = select(WebSession.person_id, func.max(WebSession.created_at)).group_by(WebSession.person_id)
    newest = {person_id: at for person_id, at in session.execute(newest_of)}
    gone = set(session.scalars(select(Staff.userid).where(Staff.active.is_(False))))
    return [
        {
            "id": p.id,
            "login": p.login,
            "display_name": p.display_name,
            "staff_userid": p.staff_userid,
            "role": p.role,
            "has_password": bool(p.password_hash),
            "signed_in_at": newest.get(p.id),
            "left": bool(p.staff_userid) and p.staff_userid in gone,
            "disabled_at": p.disabled_at,
        }
        for p in people
    ]


def may_sign_in(session: Session, person: Person) -> bool:
    return person.disabled_at is None and not tenancy.has_left(session, person)


def _person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise PersonRefused("找不到这个账号 / no such person in this company")
    return person


def _keeps_an_admin(session: Session, person: Person, by: int | None) -> None:
    """Refuses taking `person` out of the admins who may sign in: themselves (`by`), or the last."""
    if person.role != "admin" or not may_sign_in(session, person):
        return
    if by is not None and person.id == by:
        raise PersonRefused(
            "不能降低或停用自己的账号，请让另一位管理员操作 / you cannot demote or disable yourself"
        )
    # every admin locked, in one order: two admins demoting each other at once had each seen
    # the other still there, and left none
    every_admin = select(Person).where(Person.role == "admin").order_by(Person.id).with_for_update()
    admins = session.scalars(every_admin)
    if not any(may_sign_in(session, p) for p in admins if p.id != person.id):
        raise PersonRefused(
            f"{person.display_name} 是唯一可以登录的管理员，不能降级或停用：请先设另一位管理员"
            " / the last active admin cannot be demoted or disabled: make another admin first"
        )


def set_role(session: Session, person_id: int, role: str, by: int | None = None) -> Person:
    """`by`: the admin asking (None: the operator's command line)."""
    if role not in tenancy.ROLES:
        raise PersonRefused("角色应为管理员、主管或成员 / role must be admin, supervisor or agent")
    person = _person(session, person_id)
    if role != "admin":
        _keeps_an_admin(session, person, by)
    person.role = role
    session.flush()
    return person


def reset_password(session: Session, person_id: int, password: str) -> Person:
    """A new password; the person's open sessions end (whoever knew the old one is signed out)."""
    if len(password) < MIN_PASSWORD:
        raise PersonRefused(
            f"密码至少 {MIN_PASSWORD} 位 / the password needs at least {MIN_PASSWORD} characters"
        )
    person = _person(session, person_id)
    person.password_hash = tenancy.hash_password(password)
    session.execute(delete(WebSession).where(WebSession.person_id == person.id))
    session.flush()
    return person


def disable(session: Session, person_id: int, by: int | None = None) -> Person:
    """Ends the login: signed out everywhere, refused from now on (its tokens too) until enabled."""
    person = _person(session, person_id)
    _keeps_an_admin(session, person, by)
    if person.disabled_at is None:
        person.disabled_at = utcnow()
    session.execute(delete(WebSession).where(WebSession.person_id == person.id))
    session.flush()
    return person


def enable(session: Session, person_id: int) -> Person:
    person = _person(session, person_id)
    person.disabled_at = None
    session.flush()
    return person
