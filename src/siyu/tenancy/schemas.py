"""Response shapes of the tenancy API (/api/v1/me, /api/v1/staff)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class TenantBrief(BaseModel):
    id: int
    slug: str
    name: str


class MeOut(BaseModel):
    person_id: int
    display_name: str
    role: Literal["admin", "supervisor", "agent"]
    staff_userid: str | None
    tenant: TenantBrief
    visible_staff: list[str] | None = Field(
        description="userids whose customers you see; null means all of the tenant (admin)"
    )
    csrf_token: str = Field(description="send as the X-CSRF-Token header on POST/PATCH/DELETE")


class StaffOut(BaseModel):
    userid: str
    name: str
    departments: list[int]
    main_department: int | None
    direct_leaders: list[str]
    position: str = ""
    active: bool
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
