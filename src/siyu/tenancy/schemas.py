"""Response shapes of the tenancy API (/api/v1/me, /api/v1/staff)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, field_validator

from siyu.tenancy import people
from siyu.web.api_errors import BodyId

# tenancy.models.STAFF_STATUS: whether a follow's or a chat's member is still with the corp
StaffStatus = Literal["active", "left", "disabled", "left_or_disabled"]
STAFF_STATUS_TEXT = (
    "active: with the corp (or not synced yet); left: left the corp (已离职); disabled: disabled in WeCom"
    " (已禁用); left_or_disabled: one of the two, inactive since before Siyu kept WeCom's status. A member"
    " not active answers nobody: hand their customers over in WeCom (离职继承, or 在职继承 for one disabled)"
)


class ZoneChange(BaseModel):
    previous: str = Field(description="the zone before the change")
    timezone: str = Field(description="the zone it was changed to")
    changed_by: str = Field(
        description="who changed it: the person's name (`… · API 令牌「…」` through a token), or 命令行"
        " for `siyu tenant set-timezone`"
    )
    changed_at: AwareDatetime


class TenantBrief(BaseModel):
    id: int
    slug: str
    name: str
    timezone: str = Field(
        description="the IANA zone its days, business hours and the SLA board's `day` are in"
    )
    timezone_changed: ZoneChange | None = Field(
        description="the zone's last change; null if it was not changed since Siyu keeps who changed it."
        " Past days (a board `day` before the change too) are read in `timezone` as it is now"
    )


class MeOut(BaseModel):
    person_id: int
    display_name: str
    role: Literal["admin", "supervisor", "agent"]
    staff_userid: str | None
    tenant: TenantBrief
    visible_staff: list[str] | None = Field(
        description="userids whose customers you see; null means all of the tenant (admin)"
    )
    csrf_token: str = Field(
        description="send as the X-CSRF-Token header on POST/PATCH/DELETE; empty with an API token"
        " (it needs none)"
    )


class StaffOut(BaseModel):
    userid: str
    name: str
    departments: list[int]
    main_department: int | None
    direct_leaders: list[str]
    position: str = ""
    active: bool
    status: StaffStatus = Field(
        description="as `staff_status` of a follow or a chat says it, where `active` is only true or"
        " false. " + STAFF_STATUS_TEXT
    )
    synced_at: datetime
    call_phone: str | None = Field(
        description="the number set in Siyu that escalation calls ring (yours, or anyone's for an admin;"
        " null where not yours to see); empty: WeCom's"
    )
    has_call_phone: bool = Field(description="a call to them has a number to ring (Siyu's or WeCom's)")


class CallPhoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: StrictStr = Field(max_length=40, description="a mainland China mobile number; empty to clear")


class CallPhoneOut(BaseModel):
    userid: str
    call_phone: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(max_length=100, description="what the token is for, e.g. CRM 同步")
    # Strict, as every id a body carries (a channel's department_ids): "1" or true, read as
    # person 1, would make a token acting as whoever that is
    person_id: BodyId | None = Field(
        default=None,
        description="the person it acts as (their role and scope): yourself, a supervisor or a member, not"
        " another admin (422); leave out for yourself",
    )
    staff_userid: StrictStr | None = Field(
        default=None,
        max_length=64,
        description="or a staff member it acts as (userid, in any case), who need not have signed in yet"
        " (in place of person_id)",
    )
    expires_at: AwareDatetime | None = Field(default=None, description="when it stops working; null: never")


class TokenPerson(BaseModel):
    person_id: int
    display_name: str
    login: str = Field(
        description="Siyu's own sign-in name (a WeCom member's is `tenant/userid`): show staff_userid"
    )
    role: Literal["admin", "supervisor", "agent"]
    staff_userid: str | None = Field(
        description="the WeCom userid, as the page and `siyu token list` show it; null: made by hand"
    )


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the secret's first characters, to tell tokens apart")
    acts_as: TokenPerson
    created_by: str | None = Field(description="the admin who made it; null from the command line")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="noted at most once a minute")
    revoked_at: datetime | None
    status: Literal["active", "suspended", "expired", "revoked"] = Field(
        description="suspended: refused (401) while the person it acts as, or the admin who made it,"
        " has left the company, while its maker is no longer an admin, or while it acts as another"
        " admin; active again once that is no longer so"
    )


class TokenCreated(TokenOut):
    token: str = Field(description="the secret, shown this once: send it as `Authorization: Bearer …`")


# ---------------------------------------------------------------- people (/api/v1/people)

Role = Literal["admin", "supervisor", "agent"]


class PersonOut(BaseModel):
    id: int
    login: str = Field(description="the sign-in name; a WeCom member's own is `tenant/userid`")
    display_name: str
    staff_userid: str | None = Field(description="the WeCom member this login is; null: made by hand")
    role: Role
    has_password: bool = Field(
        description="may sign in with a password (a WeCom member also may through WeCom)"
    )
    signed_in_at: datetime | None = Field(description="their newest open session began; null: none open")
    left: bool = Field(description="a WeCom member who left the company: refused, as a disabled login is")
    disabled_at: datetime | None = Field(description="an admin ended the login; null: it may sign in")
    created_at: datetime
    updated_by: str | None = Field(
        description="who last made or changed the login; a change made with an API token names the token"
    )
    updated_at: datetime | None


class PersonChanged(PersonOut):
    password: str | None = Field(
        description="the password Siyu made, shown this once (it keeps only a hash); null when you gave one"
    )


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: StrictStr = Field(max_length=120, description="unique across Siyu; no spaces, no `/`")
    display_name: StrictStr = Field(max_length=200)
    role: Role
    staff_userid: StrictStr | None = Field(
        default=None,
        max_length=64,
        description="the active WeCom member this login is (userid, in any case), if any",
    )
    password: StrictStr | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="at least 8 characters; left out, Siyu makes one and answers it once (a WeCom"
        " member's login is made without one: they sign in through WeCom)",
    )

    @field_validator("display_name")
    @classmethod
    def _named(cls, v: str) -> str:
        if not people.named(v):  # refused here to name the field, as people.add refuses it
            raise ValueError(people.NO_NAME)
        return v

    @field_validator("staff_userid")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        # "" is how a sync (or a form's empty choice) says "no member", not a member named ""
        return v.strip() or None if v is not None else None


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: StrictStr | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="at least 8 characters; left out, Siyu makes one and answers it once",
    )
