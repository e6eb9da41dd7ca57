"""Tenants, staff, departments and people: the only writer of these tables."""

from __future__ import annotations

import contextlib
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import locks, utcnow
from siyu.db.crypto import SecretBox, masked
from siyu.db.renames import renamed
from siyu.db.versions import version_of
from siyu.tenancy import timezones
from siyu.tenancy.models import (
    STAFF_LEFT,
    STAFF_NOT_ACTIVATED,
    Department,
    MemberRename,
    Person,
    Staff,
    Tenant,
)
from siyu.tenancy.queries import members_left
from siyu.visible_names import tidy_name
from siyu.wecom import finance_sdk
from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import new_encoding_aes_key
from siyu.wecom.errors import WeComBusy, WeComFailure, WeComRateLimited, WeComTransportError

ROLES = ("admin", "supervisor", "agent")
_hasher = PasswordHasher()


class ConnectError(ValueError):
    """WeCom refused the credentials; the message says which and what to do."""


@dataclass
class CorpCredentials:
    corp_id: str
    agent_id: int
    agent_secret: str
    contact_secret: str
    token: str
    encoding_aes_key: str

    @classmethod
    def of_emulator_corp(cls, corp: dict) -> CorpCredentials:
        """The credentials of a corp as the emulator's POST /_emulator/corps answers it (the
        demo's corp, the tests')."""
        keys = ("corp_id", "agent_id", "agent_secret", "contact_secret", "token", "encoding_aes_key")
        return cls(**{key: int(corp[key]) if key == "agent_id" else corp[key] for key in keys})

    def problems(self) -> list[str]:
        found = []
        if not re.fullmatch(r"[A-Za-z0-9]{8,64}", self.corp_id or ""):
            found.append(
                "企业ID 格式不对，见 我的企业 → 企业信息，例如 ww1234567890abcdef"
                " / the corp id looks wrong: it is shown under 我的企业 → 企业信息"
            )
        if not 0 < self.agent_id < 2**31:
            found.append("AgentId 应为正整数，见应用管理 → 自建应用 / the AgentId is a positive number")
        if not self.agent_secret:
            found.append("缺少自建应用的 Secret / the self-built app's Secret is missing")
        if not self.contact_secret:
            found.append("缺少客户联系 Secret / the 客户联系 Secret is missing")
        found.extend(callback_pair_problems(self.token, self.encoding_aes_key))
        return found


def callback_pair_problems(token: str, encoding_aes_key: str) -> list[str]:
    """What is wrong with a callback Token / EncodingAESKey pair, as WeCom's console checks."""
    found = []
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", token or ""):
        found.append("Token 应为 1-32 位字母或数字 / Token must be 1-32 letters or digits")
    if not re.fullmatch(r"[A-Za-z0-9]{43}", encoding_aes_key or ""):
        found.append(
            "EncodingAESKey 应为 43 位字母或数字 / EncodingAESKey must be exactly 43 letters or digits"
        )
    return found


async def check_credentials(creds: CorpCredentials, base_url: str) -> None:
    """Fetch a token with each secret; raise ConnectError naming what WeCom refused."""
    problems = creds.problems()
    if problems:
        raise ConnectError("; ".join(problems))
    for label, secret in (
        ("应用 Secret (app secret)", creds.agent_secret),
        ("客户联系 Secret", creds.contact_secret),
    ):
        async with WeComClient(creds.corp_id, secret, base_url=base_url) as client:
            try:
                await client.get_token()
                if secret is creds.contact_secret:
                    # a token alone proves little: the archive's secret gives one too, and then
                    # every customer call would be refused
                    await _may_read_customers(client)
            except WeComFailure as exc:
                raise ConnectError(f"{label}: {exc.describe()}") from exc


async def _may_read_customers(client: WeComClient) -> None:
    """Raises WeComFailure where the secret may not read customers. WeCom busy or limiting the
    call, or not answering, says nothing of the secret (its token came): right credentials had
    been refused for WeCom's frequency limit."""
    with contextlib.suppress(WeComRateLimited, WeComBusy, WeComTransportError):
        await client.get_follow_user_list()


def sealed_elsewhere(session: Session, box: SecretBox) -> tuple[list[str], int]:
    """The slugs of tenants whose secrets this key does not open (sealed with another
    SIYU_SECRET_KEY, or another data folder's generated key), and how many tenants have
    secrets at all."""
    out, sealed_count = [], 0
    for tenant in session.scalars(select(Tenant).order_by(Tenant.id)):
        if not tenant.agent_secret_sealed:
            continue
        sealed_count += 1
        if not opens(box, tenant):
            out.append(tenant.slug)
    return out, sealed_count


def opens(box: SecretBox, tenant: Tenant) -> bool:
    """Whether the key opens the tenant's secrets (True for one with none sealed yet)."""
    if not tenant.agent_secret_sealed:
        return True
    try:
        box.open(tenant.agent_secret_sealed)
    except ValueError:
        return False
    return True


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40] or "corp"


def save_tenant(
    session: Session, box: SecretBox, name: str, creds: CorpCredentials, slug: str | None = None
) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.corp_id == creds.corp_id))
    if tenant is None:
        slug = slug or slugify(name) or creds.corp_id.lower()
        if session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
            slug = f"{slug}-{secrets.token_hex(2)}"
        tenant = Tenant(slug=slug, corp_id=creds.corp_id)
        session.add(tenant)
    tenant.name = name
    tenant.agent_id = creds.agent_id
    tenant.agent_secret_sealed = box.seal(creds.agent_secret)
    tenant.contact_secret_sealed = box.seal(creds.contact_secret)
    tenant.callback_token_sealed = box.seal(creds.token)
    tenant.encoding_aes_key_sealed = box.seal(creds.encoding_aes_key)
    tenant.verified_at = utcnow()
    session.flush()
    return tenant


class CredentialsChanged(Exception):
    """Another admin saved the company's credentials after this form was drawn."""


def credentials_version(tenant: Tenant) -> str:
    """What /setup's credentials form was drawn from (db.versions), of the sealed secrets: a
    page's source must not carry anything a short secret could be guessed back from."""
    sealed = [
        tenant.agent_secret_sealed,
        tenant.contact_secret_sealed,
        tenant.callback_token_sealed,
        tenant.encoding_aes_key_sealed,
    ]
    return version_of({"name": tenant.name, "agent_id": tenant.agent_id, "sealed": sealed})


def save_credentials(
    session: Session, box: SecretBox, tenant_id: int, name: str, creds: CorpCredentials, drawn: str | None
) -> Tenant:
    """/setup's save, made to the version its form was drawn from (`drawn`; None: a form of
    before versions, saved as it is). Refused (CredentialsChanged) when someone saved since,
    unless this save leaves everything as it is now (a double click: the first click saved
    this very form), as an old form's name and AgentId would undo the other admin's."""
    locks.sqlite_writer(session, "tenants")
    tenant = session.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
    if drawn is not None and drawn != credentials_version(tenant):
        stored = (
            tenant.name,
            tenant.agent_id,
            box.open(tenant.agent_secret_sealed),
            box.open(tenant.contact_secret_sealed),
            box.open(tenant.callback_token_sealed),
            box.open(tenant.encoding_aes_key_sealed),
        )
        typed = (
            name,
            creds.agent_id,
            creds.agent_secret,
            creds.contact_secret,
            creds.token,
            creds.encoding_aes_key,
        )
        if typed != stored:
            raise CredentialsChanged
    return save_tenant(session, box, name, creds, tenant.slug)


ARCHIVE_MODES = ("off", "sdk", "http")


def save_archive_settings(
    session: Session,
    box: SecretBox,
    tenant: Tenant,
    mode: str,
    secret: str = "",
    sdk_path: str = "",
    check_file: bool = True,
) -> None:
    """The conversation archive (会话存档): its own secret, and how messages are fetched and
    decrypted: WeCom's finance SDK at `sdk_path`, or the emulator's archive over HTTP."""
    if mode not in ARCHIVE_MODES:
        raise ValueError(
            f"存档方式应为 {'、'.join(ARCHIVE_MODES)} 之一"
            f" / archive mode must be one of {', '.join(ARCHIVE_MODES)}"
        )
    if mode != "off" and not (secret or tenant.archive_secret_sealed):
        raise ValueError(
            "请填写会话存档 Secret：读取存档要用它 / the 会话存档 Secret is needed to read the archive"
        )
    if mode == "sdk" and not sdk_path:
        raise ValueError(
            "SDK 方式需要填写 libWeWorkFinanceSdk_C.so 的路径"
            " / the path of libWeWorkFinanceSdk_C.so is needed in sdk mode"
        )
    if mode == "sdk":  # the SDK's and a full path: nor a probe of other files
        finance_sdk.check_path(sdk_path, here=check_file)
    # (where workers run on other machines, the library is theirs to have: `check_file` off)
    if mode == "sdk" and check_file and not Path(sdk_path).is_file():  # else every pull fails to load it
        raise ValueError(
            f"本服务器上没有 {sdk_path} 这个文件 / there is no file {sdk_path} on this server: the path"
            " of libWeWorkFinanceSdk_C.so (WeCom's finance SDK for Linux, from 会话内容存档's docs)"
        )
    tenant.archive_mode = mode
    if secret:
        tenant.archive_secret_sealed = box.seal(secret)
    tenant.archive_sdk_path = sdk_path
    if mode != "off" and not has_archive_callback(tenant):
        save_archive_callback(session, box, tenant)


def has_archive_callback(tenant: Tenant) -> bool:
    """Whether the tenant has the 会话存档 app's own callback Token and EncodingAESKey."""
    return bool(tenant.archive_callback_token_sealed and tenant.archive_encoding_aes_key_sealed)


def new_callback_token() -> str:
    """A random Token like the one WeCom's console's 随机获取 makes (letters and digits)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def save_archive_callback(
    session: Session, box: SecretBox, tenant: Tenant, token: str = "", encoding_aes_key: str = ""
) -> tuple[str, str]:
    """The 会话存档 app's own callback pair (its 接收事件服务器 Token and EncodingAESKey): the
    admin's, or, when both are blank, a new random pair. Both sealed; returns them in clear.
    ValueError (readable) if an entered value is not what WeCom accepts."""
    if not token and not encoding_aes_key:
        token, encoding_aes_key = new_callback_token(), new_encoding_aes_key()
    elif not (token and encoding_aes_key):
        raise ValueError(
            "Token 和 EncodingAESKey 请都填写，或都留空以生成新的一对"
            " / give both the Token and the EncodingAESKey, or neither for a new pair"
        )
    problems = callback_pair_problems(token, encoding_aes_key)
    if problems:
        raise ValueError("; ".join(problems))
    tenant.archive_callback_token_sealed = box.seal(token)
    tenant.archive_encoding_aes_key_sealed = box.seal(encoding_aes_key)
    session.flush()
    return token, encoding_aes_key


def archive_callback_pair(tenant: Tenant, box: SecretBox) -> tuple[str, str] | None:
    """The archive callback's (Token, EncodingAESKey) in clear, or None when not set."""
    if not has_archive_callback(tenant):
        return None
    return box.open(tenant.archive_callback_token_sealed), box.open(tenant.archive_encoding_aes_key_sealed)


def tenant_summary(
    tenant: Tenant, box: SecretBox, callback_url: str, archive_callback_url: str | None = None
) -> dict:
    """What the setup page and `siyu tenant show` display: secrets masked, never in full.
    With `archive_callback_url`, also the 会话存档 app's own callback (when it has one)."""
    summary = {
        "slug": tenant.slug,
        "name": tenant.name,
        "corp_id": tenant.corp_id,
        "agent_id": tenant.agent_id,
        "timezone": tenant.timezone or timezones.DEFAULT,
        "agent_secret": masked(box.open(tenant.agent_secret_sealed)),
        "contact_secret": masked(box.open(tenant.contact_secret_sealed)),
        "token": masked(box.open(tenant.callback_token_sealed)),
        "encoding_aes_key": masked(box.open(tenant.encoding_aes_key_sealed)),
        "callback_url": callback_url,
    }
    if archive_callback_url is not None:
        pair = archive_callback_pair(tenant, box)
        summary.update(
            archive_callback_url=archive_callback_url if pair else "",
            archive_token=masked(pair[0]) if pair else "",
            archive_encoding_aes_key=masked(pair[1]) if pair else "",
        )
    return summary


# ---------------------------------------------------------------- staff sync


def save_directory(session: Session, departments: list[dict], users: list[dict]) -> dict:
    """Mirror WeCom's departments and members; members no longer listed become inactive, and
    departments no longer listed go (dissolved in WeCom, they had stayed on the policy pages and
    their heads counted as leaders, signing in as supervisors of nobody)."""
    now = utcnow()
    depts = {d.wecom_id: d for d in session.scalars(select(Department))}
    listed = {item["id"] for item in departments}
    for wecom_id, dept in list(depts.items()):
        if wecom_id not in listed:
            session.delete(dept)
            del depts[wecom_id]
    for item in departments:
        dept = depts.get(item["id"])
        if dept is None:
            dept = Department(wecom_id=item["id"], name=item.get("name", ""))
            session.add(dept)
            depts[dept.wecom_id] = dept
        dept.name = item.get("name", dept.name)
        dept.parent_wecom_id = item.get("parentid", 0)
        dept.leaders = item.get("department_leader", []) or []
    staff = {s.userid: s for s in session.scalars(select(Staff))}
    seen, renamed = set(), {}
    for item in users:
        seen.add(item["userid"])
        member = staff.get(item["userid"])
        if member is None:
            member = Staff(userid=item["userid"], name=item.get("name", item["userid"]))
            session.add(member)
        if item.get("name", member.name) != member.name:
            renamed[member.userid] = item["name"]
        member.name = item.get("name", member.name)
        member.departments = item.get("department", []) or []
        member.main_department = item.get("main_department") or (
            member.departments[0] if member.departments else None
        )
        member.direct_leaders = item.get("direct_leader", []) or []
        member.mobile = item.get("mobile", member.mobile or "") or ""
        member.position = item.get("position", member.position or "") or ""
        member.wecom_status = item.get("status", 1)
        member.active = member.wecom_status in (1, STAFF_NOT_ACTIVATED)
        member.synced_at = now
    for userid, member in staff.items():
        if userid not in seen:
            # WeCom lists no member who left (nor one outside the app's visible range, which
            # it does not tell apart): taken as left, what 离职继承 in WeCom calls them too
            member.active, member.wecom_status = False, STAFF_LEFT
    # a member renamed in WeCom is renamed on their login too (what they do from a card is
    # told by it): a name an admin gave the login stands until WeCom renames the member
    for person in session.scalars(select(Person).where(Person.staff_userid.in_(sorted(renamed)))):
        if tidy_name(renamed[person.staff_userid]):  # (nor to a name that shows nothing)
            person.display_name = renamed[person.staff_userid]
    session.flush()
    return {"departments": len(departments), "staff": len(seen)}


async def fetch_directory(client: WeComClient) -> tuple[list[dict], list[dict]]:
    departments = (await client.department_list()).get("department", [])
    users: dict[str, dict] = {}
    for dept in departments:
        for user in (await client.user_list(dept["id"])).get("userlist", []):
            users.setdefault(user["userid"], user)
    return departments, list(users.values())


# ---------------------------------------------------------------- people and passwords


class UnknownStaff(LookupError):
    """No member of the corp has this userid."""


def mainland_mobile(phone: str) -> str:
    """A mainland China mobile number as 11 digits (spaces, dashes, +86 allowed); ValueError
    saying so otherwise. Typed in full width (１３８…, an input method's) it is the same number;
    other scripts' digits are no number a provider rings."""
    digits = re.sub(r"[\s\-()（）]", "", unicodedata.normalize("NFKC", phone))
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == 11 + len(prefix):
            digits = digits[len(prefix) :]
    if not re.fullmatch(r"1[3-9][0-9]{9}", digits):
        raise ValueError(f"不是中国大陆手机号：{phone[:40]} / not a mainland China mobile number")
    return digits


def rings(phone: str) -> bool:
    """Whether an escalation call can ring this number (a WeCom mobile abroad cannot)."""
    try:
        return bool(mainland_mobile(phone))
    except ValueError:
        return False


def set_call_phone(session: Session, userid: str, phone: str) -> str:
    """The number escalation calls ring for this member (empty: WeCom's, if WeCom gives one).
    Returns it as stored; UnknownStaff, or ValueError for a number that is no mobile."""
    member = session.scalar(select(Staff).where(Staff.userid == userid))
    if member is None:
        raise UnknownStaff(userid)
    member.call_phone = mainland_mobile(phone) if phone.strip() else ""
    return member.call_phone


def visible_staff(session: Session, role: str, userid: str | None) -> frozenset[str] | None:
    """Whose customers a person sees: None = everyone's (admin); an agent their own; a
    supervisor their own, their direct reports' and everyone's in the departments they
    lead, sub-departments included."""
    if role == "admin":
        return None
    if not userid:
        return frozenset()
    if role != "supervisor":
        return frozenset({userid})
    departments = list(session.scalars(select(Department)))
    children: dict[int, list[int]] = {}
    for d in departments:
        children.setdefault(d.parent_wecom_id, []).append(d.wecom_id)
    led = [d.wecom_id for d in departments if userid in (d.leaders or [])]
    team_depts: set[int] = set()
    while led:
        dept = led.pop()
        if dept not in team_depts:
            team_depts.add(dept)
            led.extend(children.get(dept, []))
    visible = {userid}
    for s in session.scalars(select(Staff)):
        if userid in (s.direct_leaders or []) or team_depts.intersection(s.departments or []):
            visible.add(s.userid)
    return frozenset(visible)


def has_left(session: Session, person: Person) -> bool:
    """A WeCom member the staff sync found gone or disabled: no access, signed in or by a
    token. A login made by hand names no member, and nothing in WeCom ends it."""
    return bool(members_left(session, [person.staff_userid or ""]))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(person: Person | None, password: str) -> bool:
    if person is None or not person.password_hash:
        _hasher.hash(password)  # same cost whether or not the login exists
        return False
    try:
        return _hasher.verify(person.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def _hold_logins(session: Session) -> None:
    """No other login made, in any tenant, between the check and the write until this
    transaction ends: two admins adding Wang and wang at once had each found no login alike.
    No unique index on lower(login) can say it, as logins alike made before the check would
    break it. SQLite: its single write lock, taken by a write that changes nothing; PostgreSQL:
    a lock of every tenant's logins for the transaction."""
    locks.hold(session, "siyu.logins", "people")


def login_spelt_alike(session: Session, login: str) -> str | None:
    """Another tenant's or this one's login spelt as `login` but for case, if any: sign-in takes a
    login typed with capitals as the one spelt so (siyu.web.auth), so two such logins would make
    each other's capitals fail. Logins are unique across tenants, which a tenant's session does
    not see: read from the table itself. ASCII only, as sign-in folds it.

    Holds every tenant's logins until the session's transaction ends, so the login checked is
    made before anyone else's check can read the table (_hold_logins)."""
    if not login.isascii():
        return None
    _hold_logins(session)
    people = Person.__table__
    found = select(people.c.login).where(func.lower(people.c.login) == login.lower(), people.c.login != login)
    return session.connection().execute(found.limit(1)).scalar()


def add_person(
    session: Session,
    login: str,
    display_name: str,
    role: str,
    password: str | None = None,
    staff_userid: str | None = None,
) -> Person:
    if role not in ROLES:
        raise ValueError(f"角色应为 {'、'.join(ROLES)} 之一 / role must be one of {', '.join(ROLES)}")
    person = Person(
        login=login,
        display_name=display_name,
        role=role,
        staff_userid=staff_userid,
        password_hash=hash_password(password) if password else None,
    )
    session.add(person)
    session.flush()
    return person


def leaders(session: Session) -> set[str]:
    """The userids of department leaders and of members' direct leaders: who signs in as a
    supervisor (person_for_staff), and whom the token page offers as one."""
    out: set[str] = set()
    for named in session.scalars(select(Department.leaders)):
        out.update(named or [])
    for userid, named in session.execute(select(Staff.userid, Staff.direct_leaders)):
        # (one WeCom lists as their own 直属上级 leads nobody, as escalation reads it)
        out.update(leader for leader in named or [] if leader != userid)
    return out


# What the staff sync writes of a member (save_directory); the rest is Siyu's own.
_SYNCED = (
    "name", "departments", "main_department", "direct_leaders", "mobile", "position",
    "wecom_status", "active", "synced_at",
)  # fmt: skip


def rename_member(session: Session, old: str, new: str, at: datetime) -> bool:
    """WeCom changed a member's userid at `at` (change_contact update_user with NewUserID;
    allowed once): the same member, their Siyu-only fields (the number calls ring, their login
    and role) kept under the new one. A row the sync made for the new userid meanwhile gives
    way. Lists of leaders follow, and what names `old` from before `at`, pulled or handled
    later, is theirs (`Renames`). False when done already (the event retried). A member no
    sync read under `old` (created and renamed before one ran) has no row to move, and what
    names `old` is theirs all the same: a customer they added had stayed with a userid nobody
    has."""
    _hold_renames(session, shared=False)
    done = select(MemberRename.id).where(
        MemberRename.old_userid == old, MemberRename.new_userid == new, MemberRename.renamed_at == at
    )
    if session.scalar(done) is not None:  # (the event retried after `old` went to a new member)
        return False
    session.add(MemberRename(old_userid=old, new_userid=new, renamed_at=at))
    member = session.scalar(select(Staff).where(Staff.userid == old))
    if member is None:
        session.flush()
        return True
    made = session.scalar(select(Staff).where(Staff.userid == new))
    if made is not None:  # (WeCom's directory as the sync read it since: the member as they are)
        for field in _SYNCED:
            setattr(member, field, getattr(made, field))
        session.delete(made)
        session.flush()
    member.userid = new
    for other in session.scalars(select(Staff)):
        if old in (other.direct_leaders or []):
            other.direct_leaders = renamed(other.direct_leaders, old, new)
    for dept in session.scalars(select(Department)):
        if old in (dept.leaders or []):
            dept.leaders = renamed(dept.leaders, old, new)
    slug = session.get(Tenant, session.info["siyu_tenant_id"]).slug
    person = session.scalar(select(Person).where(Person.staff_userid == old))
    fresh = session.scalar(select(Person).where(Person.staff_userid == new))
    if person is not None and fresh is not None:
        # a WeCom sign-in under the new userid since a sync read it made a login of its own: the
        # member's (their role, password, the tokens they made) is kept, that one goes
        session.delete(fresh)
        session.flush()
    if person is not None:
        person.staff_userid = new
        taken = session.scalar(select(Person.id).where(Person.login == f"{slug}/{new}"))
        if person.login == f"{slug}/{old}" and taken is None:  # (a login WeCom sign-in made)
            person.login = f"{slug}/{new}"
    session.flush()
    return True


class Renames:
    """Who a userid named then is now: the member it was renamed to, for what was sent or done
    before the rename (a message pulled, an event handled, after it)."""

    def __init__(self, rows) -> None:
        self._by_old: dict[str, list[tuple[datetime, str]]] = {}
        for old, new, at in sorted(rows, key=lambda row: row[2]):
            # CreateTime counts whole seconds: a message of the rename's second, under the old
            # userid, was sent before it
            self._by_old.setdefault(old, []).append((at + timedelta(seconds=1), new))

    def __bool__(self) -> bool:
        return bool(self._by_old)

    def now(self, userid: str, then: datetime) -> str:
        for _ in range(len(self._by_old)):  # (WeCom allows one rename a member: a chain ends)
            # the first rename after `then`: a userid freed by one may be a new member's since
            later = next((new for at, new in self._by_old.get(userid, ()) if then < at), None)
            if later is None:
                break
            userid = later
        return userid


def renames(session: Session) -> Renames:
    """The tenant's renames, held (shared) to the end of the transaction: a rename handled
    meanwhile waits for what is stored under them, and renames that too (PostgreSQL: a batch's
    new chats under the old userid had been left beside the renamed ones)."""
    _hold_renames(session, shared=True)
    return renames_as_read(session)


def renames_as_read(session: Session) -> Renames:
    """The tenant's renames, not held: for what only reads (on SQLite the hold is the write lock)."""
    rows = session.execute(select(MemberRename.old_userid, MemberRename.new_userid, MemberRename.renamed_at))
    return Renames(rows.all())


def _hold_renames(session: Session, shared: bool) -> None:
    tenant_id = session.info.get("siyu_tenant_id")
    locks.hold(session, f"siyu.member_renames:{tenant_id}", "member_renames", shared=shared)


def person_for_staff(session: Session, tenant: Tenant, userid: str) -> Person | None:
    """The person who signs in as this WeCom member through OAuth; made on first sign-in.

    Department leaders and members' direct leaders are supervisors, other members agents (an
    agent made a leader later is a supervisor from their next sign-in, unless an admin chose
    their role); admins are named by hand."""
    staff = session.scalar(select(Staff).where(Staff.userid == userid, Staff.active.is_(True)))
    if staff is None:  # unknown, or has left the corp: no sign-in, whatever existed before
        return None
    person = session.scalar(select(Person).where(Person.staff_userid == userid))
    leads = userid in leaders(session)
    if person is not None:
        if person.role == "agent" and leads and not person.role_set_by_hand:  # a leader since: sees the team
            person.role = "supervisor"
        return person
    return add_person(
        session,
        f"{tenant.slug}/{userid}",
        staff.name,
        "supervisor" if leads else "agent",
        staff_userid=userid,
    )
