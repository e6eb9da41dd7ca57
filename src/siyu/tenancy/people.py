"""Managing logins (设置 → 账号, `siyu person ...`, /api/v1/people): making one, a person's
role, a new password, and ending a login. The only writer of Person's role, password and
disabled_at after add_person. `by` names who did it (Viewer.signature: a token's deeds name
the token), kept as updated_by for the list to show.

An admin may neither demote nor disable themselves, and a tenant keeps at least one admin
who may sign in: otherwise no one is left to undo it. A role change or a disabled login
holds from the person's next request, as the session and the token read the person anew
each time (siyu.web.auth)."""

from __future__ import annotations

import secrets
import string

from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.db import locks, utcnow
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Person, Staff, WebSession, gone_word
from siyu.tenancy.queries import member_userid
from siyu.visible_names import tidy_name

MIN_PASSWORD = 8
GIVEN_PASSWORD = 16  # a password Siyu makes: ~95 bits from letters and digits
LOGIN_CHARS = 120
NAME_CHARS = 200
NO_NAME = (
    "姓名不能为空，也不能只有空格或不可见字符 / display_name is empty or only spaces and invisible characters"
)


def named(display_name: str) -> bool:
    """The name shows something: a zero-width space, a direction mark or a Hangul filler alone
    (as a channel's name: siyu.visible_names.tidy_name) is a login no list can tell apart."""
    return bool(tidy_name(display_name))


class PersonRefused(ValueError):
    """The change is refused; the message says why, in both languages."""


class PersonConflict(PersonRefused):
    """Refused for how things stand (the last admin, oneself, a login taken), not for what was asked."""


class NoSuchPerson(PersonRefused):
    """No such person in this tenant (nor told apart from another tenant's)."""


def new_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(GIVEN_PASSWORD))


def _changed(person: Person, by: str) -> None:
    person.updated_by = by[:200]
    person.updated_at = utcnow()


def listed(session: Session) -> list[dict]:
    """The tenant's people, admins first, with when each last signed in (their newest open
    session; None when none is open) and whether they have left or are disabled."""
    # (by the role's name, supervisors had come after every agent)
    admins_first = case((Person.role == "admin", 0), else_=1)
    people = list(session.scalars(select(Person).order_by(admins_first, Person.display_name, Person.id)))
    # an expired session is deleted only when its cookie comes back: one who never does had
    # been shown signed in for good
    newest_of = (
        select(WebSession.person_id, func.max(WebSession.created_at))
        .where(WebSession.expires_at > utcnow())
        .group_by(WebSession.person_id)
    )
    newest = {person_id: at for person_id, at in session.execute(newest_of)}
    # how each member gone from the corp is marked: 已离职, or 已禁用 (not said to have left)
    gone = {
        userid: gone_word(False, status)
        for userid, status in session.execute(
            select(Staff.userid, Staff.wecom_status).where(Staff.active.is_(False))
        )
    }
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
            "gone": gone.get(p.staff_userid, "") if p.staff_userid else "",
            "disabled_at": p.disabled_at,
            "created_at": p.created_at,
            "updated_by": p.updated_by or None,
            "updated_at": p.updated_at,
        }
        for p in people
    ]


def without_login(session: Session) -> list[tuple[str, str]]:
    """The active WeCom members who have no login yet, as (userid, name), by name."""
    taken = select(Person.staff_userid).where(Person.staff_userid.is_not(None))
    members = select(Staff.userid, Staff.name).where(Staff.active.is_(True), Staff.userid.not_in(taken))
    return [(userid, name) for userid, name in session.execute(members.order_by(Staff.name, Staff.userid))]


def one(session: Session, person_id: int) -> dict:
    """A person as listed (NoSuchPerson when not of this tenant)."""
    _person(session, person_id)
    return next(p for p in listed(session) if p["id"] == person_id)


def add(
    session: Session,
    login: str,
    display_name: str,
    role: str,
    password: str | None = None,
    staff_userid: str | None = None,
    by: str = "",
) -> Person:
    """A new login: by hand with a password, or for a WeCom member of the tenant (who may sign
    in through WeCom, and with a password if one is given)."""
    login, display_name = login.strip(), " ".join(display_name.split())
    if not login or not display_name:
        raise PersonRefused("请填写登录名和姓名 / give a login and a display name")
    if not named(display_name):
        raise PersonRefused(NO_NAME)
    if len(login) > LOGIN_CHARS or len(display_name) > NAME_CHARS:
        raise PersonRefused(
            f"登录名最多 {LOGIN_CHARS} 个字符，姓名最多 {NAME_CHARS} 个"
            f" / a login is at most {LOGIN_CHARS} characters, a name at most {NAME_CHARS}"
        )
    if any(c.isspace() for c in login) or "/" in login:
        # tenant/userid is how a WeCom member's own login is made (person_for_staff)
        raise PersonRefused("登录名不能含空格或 / / a login has no spaces and no /")
    if role not in tenancy.ROLES:
        raise PersonRefused("角色应为管理员、主管或成员 / role must be admin, supervisor or agent")
    if password is not None and len(password) < MIN_PASSWORD:
        raise _short()
    if staff_userid is not None:
        # LiSi is lisi (WeCom userids ignore case): the login is linked to the userid as stored
        staff_userid = member_userid(session, staff_userid) or staff_userid
        if session.scalar(select(Staff.active).where(Staff.userid == staff_userid)) is not True:
            raise PersonRefused(
                f"企业微信里没有在职成员 {staff_userid}：先同步通讯录，或检查 userid"
                f" / no active WeCom member {staff_userid}: sync the staff or check the userid"
            )
        if session.scalar(select(Person.login).where(Person.staff_userid == staff_userid)) is not None:
            raise PersonConflict(
                f"成员 {staff_userid} 已有账号，请在列表中修改 / {staff_userid} already has a login"
            )
    if alike := tenancy.login_spelt_alike(session, login):
        # (another company's login is not quoted: its spelling is theirs)
        if session.scalar(select(Person.id).where(Person.login == alike)) is None:
            raise PersonConflict(
                f"登录名 {login} 已被使用，请换一个 / the login {login} is taken: choose another"
            )
        raise PersonConflict(
            f"登录名 {login} 与已有的 {alike} 只差大小写，登录时不分大小写：请换一个"
            f" / the login {login} differs from {alike} only by case, which sign-in ignores: choose another"
        )
    try:
        with session.begin_nested():
            person = tenancy.add_person(session, login, display_name, role, password, staff_userid)
            person.role_set_by_hand = True
    except IntegrityError:
        # logins are unique across every tenant, which a tenant's session cannot look through
        raise PersonConflict(
            f"登录名 {login} 已被使用，请换一个 / the login {login} is taken: choose another"
        ) from None
    _changed(person, by)
    session.flush()
    return person


def _short() -> PersonRefused:
    return PersonRefused(
        f"密码至少 {MIN_PASSWORD} 位 / the password needs at least {MIN_PASSWORD} characters"
    )


def may_sign_in(session: Session, person: Person) -> bool:
    return person.disabled_at is None and not tenancy.has_left(session, person)


def _person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NoSuchPerson("找不到这个账号 / no such person in this company")
    return person


def _hold_admins(session: Session) -> None:
    """Before anything is read: changes that may take an admin away, one at a time. On SQLite,
    which ignores FOR UPDATE, two admins demoting each other at once had each read the other
    still there, and left none."""
    locks.hold(session, f"siyu.admins:{session.info['siyu_tenant_id']}", Person.__tablename__)


def _keeps_an_admin(session: Session, person: Person, by: int | None) -> None:
    """Refuses taking `person` out of the admins who may sign in: themselves (`by`), or the last."""
    if person.role != "admin" or not may_sign_in(session, person):
        return
    if by is not None and person.id == by:
        raise PersonConflict(
            "不能降低或停用自己的账号，请让另一位管理员操作 / you cannot demote or disable yourself"
        )
    # every admin locked, in one order: two admins demoting each other at once had each seen
    # the other still there, and left none
    every_admin = select(Person).where(Person.role == "admin").order_by(Person.id).with_for_update()
    admins = session.scalars(every_admin)
    if not any(may_sign_in(session, p) for p in admins if p.id != person.id):
        raise PersonConflict(
            f"{person.display_name} 是唯一可以登录的管理员，不能降级或停用：请先设另一位管理员"
            " / the last active admin cannot be demoted or disabled: make another admin first"
        )


def set_role(session: Session, person_id: int, role: str, by: int | None = None, signed: str = "") -> Person:
    """`by`: the admin asking (None: the operator's command line); `signed`: their signature."""
    if role not in tenancy.ROLES:
        raise PersonRefused("角色应为管理员、主管或成员 / role must be admin, supervisor or agent")
    if role != "admin":
        _hold_admins(session)
    person = _person(session, person_id)
    if role != "admin":
        _keeps_an_admin(session, person, by)
    person.role_set_by_hand = True  # (an agent pinned as one: made a leader, they stay an agent)
    if person.role != role:
        person.role = role
        _changed(person, signed)
    session.flush()
    return person


def reset_password(session: Session, person_id: int, password: str, signed: str = "") -> Person:
    """A new password; the person's open sessions end (whoever knew the old one is signed out)."""
    if len(password) < MIN_PASSWORD:
        raise _short()
    person = _person(session, person_id)
    person.password_hash = tenancy.hash_password(password)
    _changed(person, signed)
    session.execute(delete(WebSession).where(WebSession.person_id == person.id))
    session.flush()
    return person


def disable(session: Session, person_id: int, by: int | None = None, signed: str = "") -> Person:
    """Ends the login: signed out everywhere, refused from now on (its tokens too) until enabled."""
    _hold_admins(session)
    person = _person(session, person_id)
    _keeps_an_admin(session, person, by)
    if person.disabled_at is None:
        person.disabled_at = utcnow()
        _changed(person, signed)
    session.execute(delete(WebSession).where(WebSession.person_id == person.id))
    session.flush()
    return person


def enable(session: Session, person_id: int, signed: str = "") -> Person:
    person = _person(session, person_id)
    if person.disabled_at is not None:
        person.disabled_at = None
        _changed(person, signed)
    session.flush()
    return person
