"""Request and response shapes of the customers / channels / tags API (/api/v1)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from siyu.customers.channels import link_problem
from siyu.tenancy.schemas import STAFF_STATUS_TEXT, StaffStatus
from siyu.visible_names import tidy_name
from siyu.web.api_errors import BodyId
from siyu.web.api_paging import ListPage

HttpUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^https?://[^\s]+$", max_length=500)
]
# (or none at all: a link left out, its title still asked for below)
HttpUrlOrBlank = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^(https?://[^\s]+)?$", max_length=500)
]
FollowStatus = Literal["active", "half", "lost", "deleted", "transferred"]
# What customers.service.timeline (and the welcome's outcome) record; queries.EVENT_TEXT words each.
TimelineKind = Literal[
    "added",
    "channel",
    "tagged",
    "untagged",
    "remark",
    "lost",
    "removed",
    "transferred",
    "transfer_failed",
    "welcome_sent",
    "welcome_failed",
    "welcome_unknown",
    "tag_failed",
    "group_joined",
    "group_left",
    "group_dismissed",
    "wait",  # not stored: a wait of the customer's conversations (siyu.sla.history)
]


class TagOut(BaseModel):
    id: int
    wecom_id: str
    name: str
    group_name: str = ""
    deleted: bool = False


class ChannelRef(BaseModel):
    id: int
    name: str


class TagSyncOut(BaseModel):
    """The channel's tags did not reach WeCom (yet): the customer carries them in Siyu only."""

    state: Literal["failed", "retrying"] = Field(
        description="failed: given up on; retrying: WeCom refused so far"
    )
    error: str = Field(description="WeCom's answer, in words")
    tags: list[str] = Field(description="the names of the tags not marked in WeCom")
    since: datetime = Field(description="when the tags were queued for WeCom (the add)")
    text: str = Field(description="a one-line Chinese notice")


class ChannelTagFailure(TagSyncOut):
    customer_id: int
    customer_name: str
    staff_userid: str
    staff_name: str
    added_at: datetime


class ChannelTagFailures(BaseModel):
    days: int
    customers: int = Field(description="how many customers added in these days are concerned")
    failed: int = Field(description="follows whose tags were given up on")
    retrying: int = Field(description="follows whose tags are being retried")
    items: list[ChannelTagFailure] = Field(description="the newest, at most 50")


class FollowOut(BaseModel):
    """A customer as one staff member has them (WeCom keeps remarks and tags per member)."""

    id: int
    staff_userid: str
    staff_name: str
    staff_status: StaffStatus = Field(description=STAFF_STATUS_TEXT)
    status: FollowStatus
    remark: str = ""
    description: str = ""
    remark_mobiles: list[str] = []
    remark_corp_name: str = ""
    add_way: int = Field(
        0, description="WeCom's add_way: 1 scanned a QR code, 2 searched a phone number, 3 a shared card, ..."
    )
    added_at: datetime
    ended_at: datetime | None = None
    channel: ChannelRef | None = None
    tags: list[TagOut] = []
    tag_sync: TagSyncOut | None = Field(
        default=None,
        description="null when the channel's tags reached WeCom (or there were none to mark)",
    )


class CustomerOut(BaseModel):
    id: int
    external_userid: str
    name: str
    type: int = Field(description="1 WeChat user, 2 WeCom user")
    gender: int = Field(description="0 unknown, 1 male, 2 female")
    avatar: str = ""
    corp_name: str = ""
    position: str = ""
    first_added_at: datetime
    follows: list[FollowOut] = Field(description="the follow relations the caller may see")
    tags: list[TagOut] = []


class CustomerGroupOut(BaseModel):
    """A customer group (客户群) the customer is in now."""

    chat_id: str = Field(description="WeCom's chat_id (the archive's roomid)")
    name: str = Field(description="as WeCom last told it; empty for an unnamed group")
    owner_userid: str
    owner_name: str
    owner_status: StaffStatus | None = Field(
        description="whether the owner is still with the corp, as `staff_status` says it (one who left"
        " looks after the group no more: hand it over in WeCom, 离职继承); null while WeCom told no owner"
        " (owner_userid empty). " + STAFF_STATUS_TEXT
    )
    joined_at: datetime | None = Field(description="when they joined, as WeCom tells it")
    join_scene: int = Field(
        description="1 invited by a member, 2 by a member's link, 3 scanned the group's QR code, 0 unknown"
    )
    joined_how: str = Field(description="join_scene in words")
    invitor_userid: str = Field(description="the member who invited them, if WeCom says")
    invitor_name: str


class CustomerProfile(CustomerOut):
    unattended: Literal["", "已离职", "已禁用", "已离职或停用"] = Field(
        description="the page's 无人跟进 notice: where every member still following the customer (all"
        " follows, whoever asks) left the corp, how they are gone (已离职, 已禁用, or 已离职或停用 for a mix"
        " or one gone before Siyu kept WeCom's status): nobody answers the customer until they are handed"
        " over in WeCom (离职继承, or 在职继承 for one disabled). Empty otherwise"
    )
    channels: list[ChannelRef] = []
    groups: list[CustomerGroupOut] = Field(
        default=[],
        description="the customer groups they are in now (for an agent: the groups of members they see)",
    )


class CustomerPage(ListPage):
    items: list[CustomerOut] = Field(description="newest first")


class TimelineEventOut(BaseModel):
    id: int = Field(description="the event's id; a wait's entry: its wait's id negated (`before` takes both)")
    at: datetime = Field(description="when it happened; a wait: when the customer wrote")
    kind: TimelineKind = Field(
        description="lost: the customer deleted the staff member; removed: the staff member deleted the"
        " customer; transferred: handed over to another member; group_joined / group_left /"
        " group_dismissed: joined or left a customer group, or it was dismissed (data: group, chat_id,"
        " how, join_unknown: true where they joined before Siyu knew the group; staff_userid: the"
        " group's owner); wait: the customer wrote and waited"
        " for a reply (data: conversation_id, quote, state waiting | replied | dismissed | recalled |"
        " declined | lost | removed | transferred | unarchived (the member was taken off the archive's permit"
        " list) | merged, closed_at, response_s (wall time, nights and"
        " holidays included), response_business_s (the same by the wait's policy's clock, as the SLA"
        " board's first_response_business: a Friday 17:59 question answered Monday 09:01 took 120; null"
        " unless the wait was answered under a policy that counts business hours only, within 14 days),"
        " replied_by, closed_by, snoozed_until, snoozed_by, escalations: each step that fired, with"
        " delivery, the SLA board's status or held (a call quiet hours hold), and delivery_text, how it"
        " went in words)"
    )
    staff_userid: str = ""
    staff_name: str = ""
    staff_status: StaffStatus | None = Field(
        None,
        description="whether the entry's member (staff_userid: a group entry's owner, a wait's chat's"
        " member) is still with the corp; null for an entry naming no member. " + STAFF_STATUS_TEXT,
    )
    data: dict = {}
    text: str = Field(description="a one-line Chinese description")


class WelcomeLink(BaseModel):
    """WeCom sends a link only with both its title and its URL."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrlOrBlank = ""
    # (validated after url, and when left out too: a URL without a title is refused here)
    title: str = Field(default="", max_length=128, validate_default=True)
    desc: str = Field(default="", max_length=512)
    picurl: HttpUrl | None = None

    @field_validator("title")
    @classmethod
    def _title_with_url(cls, v: str, info: ValidationInfo) -> str:
        if "url" not in info.data:  # refused already: its own error says why
            return v
        problem = link_problem({"url": info.data["url"], "title": v.strip()})
        if problem:
            raise ValueError(problem)
        return v.strip()

    @model_validator(mode="after")
    def _rest_with_url(self):
        problem = link_problem(self.model_dump(exclude_none=True))
        if problem:
            raise ValueError(problem)
        return self


class ChannelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # (at most 100 of each: a contact-me code for more is no channel anyone runs, and the
    # lists went into queries and error messages whole)
    staff_userids: list[str] = Field(
        default=[], max_length=100, description="WeCom userids who receive the customers, in any case"
    )
    # Strict, as the SLA policy's: true for a department id read as 1 (总部, the whole corp),
    # "no" for a switch, are more likely a script's mistake than a choice.
    department_ids: list[BodyId] = Field(default=[], max_length=100, description="WeCom department ids")
    skip_verify: StrictBool = Field(default=True, description="add without the staff member confirming")
    tag_ids: list[str] = Field(
        default=[], max_length=100, description="WeCom tag ids (`wecom_id` of /api/v1/tags)"
    )
    welcome_text: str = Field(
        default="",
        max_length=2000,
        description="`{name}` or `{客户名}` becomes the customer's name; any other `{…}`, or a `{`"
        " not closed, is a 422",
    )
    welcome_link: WelcomeLink | None = None
    welcome_image_url: HttpUrl | None = Field(
        default=None, description="an image URL from WeCom's media/uploadimg"
    )


class ChannelCreate(ChannelFields):
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, v: str) -> str:
        if not tidy_name(v):  # a no-break space or a zero-width one alike: no name
            raise ValueError("渠道名称不能为空 / a channel needs a name")
        return tidy_name(v)


class ChannelPatch(BaseModel):
    """Only the fields given change; null clears a list or a text."""

    model_config = ConfigDict(extra="forbid")

    # a name and a switch cannot be cleared: null is refused (it was a 500, and turned 免验证
    # off); left out, they stay (the default is never validated)
    name: str = Field(default=None, min_length=1, max_length=100)
    staff_userids: list[str] | None = Field(default=None, max_length=100)
    department_ids: list[BodyId] | None = Field(default=None, max_length=100)
    skip_verify: StrictBool = None
    tag_ids: list[str] | None = Field(default=None, max_length=100)
    welcome_text: str | None = Field(default=None, max_length=2000)
    welcome_link: WelcomeLink | None = None
    welcome_image_url: HttpUrl | None = None


class ChannelTotals(BaseModel):
    """Of the follows the caller may see (`scope`). Each follow is in one of active, losses,
    deleted and transferred, which add up to adds; net = adds − losses − deleted."""

    adds: int = Field(0, description="follows added through the channel (新增)")
    active: int = Field(0, description="still followed (跟进中), unconfirmed adds included")
    losses: int = Field(0, description="the customer removed the member (流失：客户删除了成员)")
    deleted: int = Field(0, description="the member removed the customer (已删除：成员删除了客户)")
    transferred: int = Field(
        0, description="handed over to another member (已转接): still the company's customer, so in net"
    )
    net: int = Field(0, description="adds − losses − deleted (净增)")
    scope: Literal["tenant", "visible_staff"] = Field(
        "tenant",
        description="tenant: the whole tenant's (an admin); visible_staff: only the follows of the"
        " members the caller may see (an agent's own, a supervisor's team)",
    )


class ChannelOut(BaseModel):
    id: int
    name: str
    state: str
    enabled: bool
    staff_userids: list[str]
    department_ids: list[int]
    way_type: Literal[1, 2] = Field(
        description="WeCom's type of the code, fixed when it is made: 1 a single-member code (it takes no "
        "second member: make a new channel), 2 a multi-member one (one member or more, or departments)"
    )
    skip_verify: bool
    tag_ids: list[str]
    welcome_text: str
    welcome_link: dict = Field(description="{} for none; else its url, title, desc and picurl")
    welcome_image_url: str
    notice: str = Field(description="a warning to show, e.g. a tag deleted in WeCom")
    created_at: datetime
    qr_url: str | None = Field(
        description="this API's proxy of the QR code image; null for a disabled channel (its code is deleted)"
    )
    totals: ChannelTotals


class StatsDay(BaseModel):
    day: date = Field(description="in the tenant's time zone")
    adds: int
    losses: int = Field(description="the customer removed the member that day")
    deleted: int = Field(description="the member removed the customer that day")
    net: int = Field(description="adds − losses − deleted")


class ChannelStats(BaseModel):
    channel_id: int
    totals: ChannelTotals
    days: list[StatsDay]
