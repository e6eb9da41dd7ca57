from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, TenantOwned, utcnow


class Tenant(Base):
    """One WeCom corp. Secrets are sealed with siyu.db.crypto.SecretBox."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    corp_id: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int]
    agent_secret_sealed: Mapped[str] = mapped_column(String(500))
    contact_secret_sealed: Mapped[str] = mapped_column(String(500))
    callback_token_sealed: Mapped[str] = mapped_column(String(500))
    encoding_aes_key_sealed: Mapped[str] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    welcome_text: Mapped[str] = mapped_column(String(2000), default="")
    # 会话存档: off | sdk (WeCom's finance SDK at archive_sdk_path) | http (the emulator's archive)
    archive_mode: Mapped[str] = mapped_column(String(8), default="off")
    archive_secret_sealed: Mapped[str] = mapped_column(String(500), default="")
    archive_sdk_path: Mapped[str] = mapped_column(String(500), default="")
    # The 会话存档 app's own callback (its msgaudit_notify): Token and EncodingAESKey, both
    # sealed; empty until archiving is set up (or on tenants from before 0002).
    archive_callback_token_sealed: Mapped[str] = mapped_column(String(500), default="")
    archive_encoding_aes_key_sealed: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None]
    staff_synced_at: Mapped[datetime | None]


class SettingChange(TenantOwned, Base):
    """A company setting of 设置 (the default welcome text, the time zone) changed: from what to
    what, by whom (Viewer.signature, or setting_changes.COMMAND_LINE) and when, Siyu's clock.
    Any admin may change them, and the zone changes how past days are read: a reader of the
    page tells who did it, and which zone the figures were in before."""

    __tablename__ = "setting_changes"
    __table_args__ = (Index("ix_setting_changes_tenant_setting", "tenant_id", "setting", "changed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    setting: Mapped[str] = mapped_column(String(32))  # welcome_text | timezone
    old_value: Mapped[str] = mapped_column(String(2000))
    new_value: Mapped[str] = mapped_column(String(2000))
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime]


class Department(TenantOwned, Base):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("tenant_id", "wecom_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wecom_id: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    parent_wecom_id: Mapped[int] = mapped_column(default=0)
    leaders: Mapped[list] = mapped_column(default=list)


class Staff(TenantOwned, Base):
    """A WeCom member of the corp."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("tenant_id", "userid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    departments: Mapped[list] = mapped_column(default=list)
    main_department: Mapped[int | None]
    direct_leaders: Mapped[list] = mapped_column(default=list)
    mobile: Mapped[str] = mapped_column(String(32), default="")  # WeCom's, as the sync brings it
    # The number escalation calls ring, set in Siyu by the member or an admin; WeCom's `mobile`
    # where empty (WeCom gives apps made since mid-2022 no mobile at all). The sync leaves it be.
    call_phone: Mapped[str] = mapped_column(String(32), default="")
    position: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    # WeCom's user status at the last sync (1 active, 2 disabled, 4 not activated, 5 left; one
    # no longer listed: 5): says why a member is inactive. None: not synced since it was kept.
    wecom_status: Mapped[int | None]
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Since when the member is off 会话存档's permit list, as Siyu last read it (None: on it, or
    # not read): their replies are not archived, so their chats owe nothing from then
    # (siyu.conversations.service.settle_unarchived).
    unarchived_since: Mapped[datetime | None]


class MemberRename(TenantOwned, Base):
    """A member's userid WeCom changed (update_user with NewUserID), and when: the archive's
    messages and the events sent before then name the old one, and are pulled or handled after
    (siyu.tenancy.service.Renames). The old userid may later be another member's."""

    __tablename__ = "member_renames"
    __table_args__ = (Index("ix_member_renames_tenant_old", "tenant_id", "old_userid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    old_userid: Mapped[str] = mapped_column(String(64))
    new_userid: Mapped[str] = mapped_column(String(64))
    renamed_at: Mapped[datetime]  # the event's CreateTime: WeCom's clock, as msgtime is
    # when Siyu handled it, on its own clock (None: before 0041): a staff sync begun before
    # then read the directory as it may have been before the rename (siyu.tenancy.tasks)
    recorded_at: Mapped[datetime | None] = mapped_column(default=utcnow)


class Person(TenantOwned, Base):
    """Someone who logs in to Siyu's web UI: an admin, supervisor or agent.

    `login` is unique across tenants, so the login form needs no corp selector."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))  # admin | supervisor | agent
    # an admin chose the role (adding the login, or changing it): a WeCom sign-in keeps it
    # (siyu.tenancy.service.person_for_staff makes a new leader a supervisor otherwise)
    role_set_by_hand: Mapped[bool] = mapped_column(default=False, server_default=false())
    staff_userid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # set by an admin (siyu.tenancy.people): refused, signed in or by a token, until enabled
    disabled_at: Mapped[datetime | None]
    # who last made or changed this login (role, password, disabled), as siyu.web.auth's
    # Viewer.signature names them: a change through an API token names the token too; ""
    # from the command line or from before this was kept
    updated_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    updated_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("tenant_id", "staff_userid"),)


class WebSession(TenantOwned, Base):
    """A signed-in browser. The cookie holds a random token; only its hash is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_tenant_person", "tenant_id", "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(BigId, ForeignKey("people.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ApiToken(TenantOwned, Base):
    """A bearer token an admin made for an integration (siyu.tenancy.api_tokens). It acts as
    one person of the tenant, with their role and scope as they stand at each call. Only
    sha256(secret) is stored; `prefix` is the secret's start, to tell tokens apart."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_tenant_created", "tenant_id", "created_at"),
        # one token per admin and prefix: the page's form makes the prefix from its `once`
        # (api_tokens.form_once), so two posts of one form at the same moment (a double click),
        # which both find no token yet, cannot both make one
        Index("ix_api_tokens_made_from", "tenant_id", "created_by_id", "prefix", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    person_id: Mapped[int] = mapped_column(BigId, ForeignKey("people.id", ondelete="CASCADE"))
    # who made it: None from the command line, or once that person is gone
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("people.id", ondelete="SET NULL"))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Password tries counted for the login form, where every server process sees them
    (siyu.tenancy.login_throttle). Not tenant-owned: logins are unique across tenants and
    the form is posted before any tenant is known. `key` names what is counted: a login from
    one address, a login from every address, or an address the login signed in from."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    tries: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


# WeCom's user status (user/get, user/list); a member inactive in Siyu for a status not known
# (synced before Siyu kept it) reads GONE_OTHERWISE.
STAFF_DISABLED, STAFF_NOT_ACTIVATED, STAFF_LEFT = 2, 4, 5
GONE_OTHERWISE = "已离职或停用"


def gone_word(active: bool, wecom_status: int | None) -> str:
    """How a member no longer with the corp is marked on the pages: 已离职, 已禁用; "" while active."""
    if active:
        return ""
    return {STAFF_LEFT: "已离职", STAFF_DISABLED: "已禁用"}.get(wecom_status, GONE_OTHERWISE)


# The same, as the API says it (staff_status): by gone_word's word, "" while with the corp.
STAFF_STATUS = {"": "active", "已离职": "left", "已禁用": "disabled", GONE_OTHERWISE: "left_or_disabled"}
