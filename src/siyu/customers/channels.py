"""Channels: "contact me" codes. Creating, editing and disabling one talks to WeCom first
(add/update/del_contact_way) and records the result only when WeCom said yes. Their reads and
writes run in threads (siyu.db.threads), not on the event loop the server's other requests
share (a database gone silent would hold them all up)."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.models import Channel, Follow
from siyu.customers.queries import Reader, visible_follow
from siyu.customers.welcome import placeholder_problem, size_problem
from siyu.db import locks
from siyu.db.threads import in_tenant
from siyu.db.versions import version_of
from siyu.tenancy.models import Tenant
from siyu.visible_names import name_key, tidy_name
from siyu.wecom.errors import WeComError, WeComFailure

log = logging.getLogger(__name__)


class ChannelError(ValueError):
    status = 422


class ChannelNameTaken(ChannelError):
    """Two enabled codes under one name: nobody can tell which poster brought whom."""

    status = 409

    def __init__(self, name: str):
        super().__init__(
            f"已有启用中的渠道叫「{name}」，请换一个名称 / an enabled channel is already named {name!r}"
        )


class ChannelChanged(ChannelError):
    """The channel was saved by someone else after the edit was drawn from it; `by`: who saved
    it last ("" where unknown: saved before that was kept)."""

    status = 409

    def __init__(self, by: str = ""):
        self.by = by
        super().__init__(
            # quoted, with no role word: a display name may be one itself (管理员 管理员)
            f"这个渠道在你打开后已被{f'「{by}」' if by else '其他管理员'}修改，你的修改没有保存；"
            f"下面是你填写的内容，请核对后再保存 / this channel was changed by {by or 'someone else'}"
            " since you opened it; your change was not saved"
        )


@dataclass
class ChannelSpec:
    """What an ops manager fills in. Exactly one of staff (one or several) or departments."""

    name: str
    staff_userids: list[str] = field(default_factory=list)
    department_ids: list[int] = field(default_factory=list)
    skip_verify: bool = True
    tag_ids: list[str] = field(default_factory=list)
    welcome_text: str = ""
    welcome_link: dict = field(default_factory=dict)
    welcome_image_url: str = ""

    def __post_init__(self) -> None:
        self.name = tidy_name(self.name)
        # one member named twice is still one: two would make a multi-member code (way_type)
        self.staff_userids = list(dict.fromkeys(self.staff_userids))
        self.department_ids = list(dict.fromkeys(self.department_ids))
        self.tag_ids = list(dict.fromkeys(self.tag_ids))

    def check(self) -> None:
        if not self.name:
            raise ChannelError("渠道名称不能为空 / a channel needs a name")
        if len(self.name) > 100:
            raise ChannelError("渠道名称最多 100 字 / name too long")
        if not self.staff_userids and not self.department_ids:
            raise ChannelError("请选择至少一位成员或一个部门 / choose staff or a department")
        if len(self.welcome_text) > 2000:
            raise ChannelError("欢迎语最多 2000 字 / welcome text too long")
        problem = size_problem(self.welcome_text) or placeholder_problem(self.welcome_text)
        if problem:
            raise ChannelError(problem)
        url = self.welcome_link.get("url", "")
        if url and not re.match(r"https?://", url):
            raise ChannelError("欢迎语链接需以 http:// 或 https:// 开头 / link must be http(s)")
        problem = link_problem(self.welcome_link)
        if problem:
            raise ChannelError(problem)

    @property
    def way_type(self) -> int:
        # WeCom: 1 = a single member, 2 = several members and/or departments
        return 1 if len(self.staff_userids) == 1 and not self.department_ids else 2


LINK_NEEDS_URL = "填写了链接标题，请填写链接地址 / a link title needs a link URL"
LINK_NEEDS_TITLE = "填写了链接地址，请填写链接标题 / a link URL needs a link title"
LINK_NEEDS_URL_AND_TITLE = (
    "填写了链接描述，请填写链接地址和标题 / a link description needs a link URL and title"
)


def link_problem(link: dict) -> str:
    """WeCom sends a welcome's link only with both its title and its URL: one without the
    other was saved and never sent (or sent titled by its bare URL)."""
    url, rest = link.get("url"), [v for k, v in link.items() if k != "url" and v]
    if url and not link.get("title"):
        return LINK_NEEDS_TITLE
    if link.get("title") and not url:
        return LINK_NEEDS_URL
    if rest and not url:
        return LINK_NEEDS_URL_AND_TITLE
    return ""


def new_state() -> str:
    """The `state` WeCom echoes back on every add through this code (≤30 characters)."""
    return "ch_" + secrets.token_hex(6)


EDITED = (
    "name",
    "staff_userids",
    "department_ids",
    "skip_verify",
    "tag_ids",
    "welcome_text",
    "welcome_link",
    "welcome_image_url",
)


def channel_version(channel: Channel | ChannelSpec | dict) -> str:
    """The version of what an edit changes (db.versions), of a channel, a spec or the API's
    dict of one: the same for a spec and the channel it was saved as."""
    get = channel.get if isinstance(channel, dict) else lambda name: getattr(channel, name)
    values = {name: get(name) for name in EDITED}
    values["name"] = tidy_name(values["name"] or "")
    values["welcome_link"] = {k: v for k, v in (values["welcome_link"] or {}).items() if v}
    for name in ("staff_userids", "department_ids", "tag_ids"):
        values[name] = list(values[name] or [])
    return version_of(values)


def _apply(channel: Channel, spec: ChannelSpec, by: str) -> None:
    channel.updated_by = by[:200]
    channel.name = tidy_name(spec.name)
    channel.staff_userids = list(spec.staff_userids)
    channel.department_ids = list(spec.department_ids)
    channel.skip_verify = spec.skip_verify
    if list(spec.tag_ids) != list(channel.tag_ids or []):
        channel.notice = ""  # (of tags deleted in WeCom: the admin has chosen its tags again)
    channel.tag_ids = list(spec.tag_ids)
    channel.welcome_text = spec.welcome_text
    channel.welcome_link = {k: v for k, v in spec.welcome_link.items() if v}
    channel.welcome_image_url = spec.welcome_image_url


def _hold_names(session: Session) -> None:
    """No other create or rename of this tenant's channels between the check and the write.
    SQLite: its single write lock, taken by a write that changes nothing; PostgreSQL: a lock
    of this tenant's channel names for the transaction."""
    locks.hold(session, f"siyu.channel_names:{session.info.get('siyu_tenant_id')}", "channels")


def check_name_free(session: Session, name: str, channel_id: int | None = None) -> None:
    """Refuses a name an enabled channel of the tenant has, other than `channel_id` itself. A
    channel keeping its own name is not refused: channels named alike before names were
    checked could otherwise not be edited at all without a rename."""
    key = name_key(name)
    enabled = session.execute(select(Channel.id, Channel.name).where(Channel.enabled.is_(True))).all()
    if any(other_id == channel_id and name_key(other) == key for other_id, other in enabled):
        return
    for other_id, other in enabled:
        if other_id != channel_id and name_key(other) == key:
            raise ChannelNameTaken(other)


async def create_channel(rt, tenant_id: int, spec: ChannelSpec, by: str = "") -> int:
    """`by`: who makes it (the name they are signed in as), as for update_channel."""
    spec.check()
    await in_tenant(rt.db, tenant_id, check_name_free, spec.name)
    state = new_state()
    contact = (await rt.clients.get(tenant_id)).contact
    answer = await contact.add_contact_way(
        spec.way_type,
        2,
        user=spec.staff_userids or None,
        party=spec.department_ids or None,
        state=state,
        skip_verify=spec.skip_verify,
        remark=spec.name[:30],
    )

    def save(s) -> int:
        _hold_names(s)
        check_name_free(s, spec.name)
        channel = Channel(
            state=state,
            config_id=answer["config_id"],
            qr_code=answer.get("qr_code", ""),
            way_type=spec.way_type,
        )
        _apply(channel, spec, by)
        s.add(channel)
        s.flush()
        return channel.id

    try:
        return await in_tenant(rt.db, tenant_id, save)
    except ChannelNameTaken:
        # another admin's channel of that name was saved while WeCom made this code: unmake it
        await contact.del_contact_way(answer["config_id"])
        raise


async def update_channel(
    rt, tenant_id: int, channel_id: int, spec: ChannelSpec, drawn: str | None = None, by: str = ""
) -> None:
    """`drawn`: the version (channel_version) the change was made to; ChannelChanged when the
    channel is no longer at it, before WeCom is asked, or after (someone saved it while WeCom
    changed the code: the code goes back to what they saved). None: the last save wins.
    `by`: who saves it (the name they are signed in as; "" for Siyu itself), named to the next
    admin whose edit it makes stale."""
    spec.check()

    def check(s) -> tuple[str, int]:
        channel = s.get(Channel, channel_id)
        if channel is None:
            raise LookupError(channel_id)
        if drawn is not None and channel_version(channel) != drawn:
            raise ChannelChanged(channel.updated_by)
        check_name_free(s, spec.name, channel_id)
        return channel.config_id, channel.way_type, _same_members(channel, spec)

    config_id, way_type, same = await in_tenant(rt.db, tenant_id, check)
    # WeCom fixes a code's type when it is made. A multi-member code takes one member as well (a
    # two-member code whose other member left can drop them); a single-member one takes no more.
    if way_type == 1 and spec.way_type != 1:
        raise ChannelError(
            "单人码不能改为多人码（多位成员或部门），请新建渠道 / a single-member code cannot become a "
            "multi-member one: create a new channel"
        )
    contact = (await rt.clients.get(tenant_id)).contact
    await contact.update_contact_way(config_id, **_way_fields(spec, members=not same))

    def save(s) -> tuple[ChannelError, dict] | None:
        _hold_names(s)
        channel = s.get(Channel, channel_id)
        try:
            if drawn is not None and channel_version(channel) not in (drawn, channel_version(spec)):
                raise ChannelChanged(channel.updated_by)
            check_name_free(s, spec.name, channel_id)
        except ChannelError as exc:
            return exc, _way_fields(_spec_of(channel), members=not same)
        # members not sent: WeCom kept those stored now, also where another admin changed them
        # while WeCom answered (last save wins), and so does Siyu rather than part from WeCom
        saved = spec if not same else replace(spec, **_members_of(channel))
        _apply(channel, saved, by)
        return None

    refused = await in_tenant(rt.db, tenant_id, save)
    if refused is None:
        return
    taken, kept = refused
    # Another admin's channel took the name, or another admin saved this one, while WeCom changed
    # this code (both are checked under the lock only after WeCom's answer: holding the lock
    # across a WeCom call would stop every other write of the tenant's channels, and on SQLite
    # every write). The channel keeps what it has, so the code in WeCom goes back to it too:
    # left, WeCom's 备注 named the other channel while Siyu kept the old name.
    try:
        await contact.update_contact_way(config_id, **kept)
    except WeComFailure:
        log.warning("channel %s: WeCom kept the refused change (remark %r)", channel_id, spec.name)
    raise taken


def _way_fields(spec: ChannelSpec, members: bool = True) -> dict:
    """What update_contact_way sets from a channel. `members`: send its members and departments
    (None leaves them out): WeCom takes any of the fields, and members left unchanged are not
    sent, so that a channel whose member has left can still be renamed or have its welcome changed."""
    return {
        "user": (spec.staff_userids or []) if members else None,
        "party": (spec.department_ids or []) if members else None,
        "skip_verify": spec.skip_verify,
        "remark": spec.name[:30],
    }


def _members_of(channel: Channel) -> dict:
    return {
        "staff_userids": list(channel.staff_userids or []),
        "department_ids": list(channel.department_ids or []),
    }


def _same_members(channel: Channel, spec: ChannelSpec) -> bool:
    return list(channel.staff_userids or []) == list(spec.staff_userids or []) and sorted(
        channel.department_ids or []
    ) == sorted(spec.department_ids or [])


def _spec_of(channel: Channel) -> ChannelSpec:
    return ChannelSpec(
        name=channel.name,
        staff_userids=list(channel.staff_userids or []),
        department_ids=list(channel.department_ids or []),
        skip_verify=channel.skip_verify,
    )


async def disable_channel(rt, tenant_id: int, channel_id: int) -> None:
    """Delete the code in WeCom (scans stop working); the channel and its history stay."""

    def read(s) -> tuple[str, bool]:
        channel = s.get(Channel, channel_id)
        if channel is None:
            raise LookupError(channel_id)
        return channel.config_id, channel.enabled

    def save(s) -> None:
        s.get(Channel, channel_id).enabled = False

    config_id, enabled = await in_tenant(rt.db, tenant_id, read)
    if enabled and config_id:
        contact = (await rt.clients.get(tenant_id)).contact
        try:
            await contact.del_contact_way(config_id)
        except WeComError:
            # gone from WeCom already (a 停用 that deleted it and failed to save, another app of
            # the corp): the channel had stayed enabled for good, every 停用 a 502. WeCom's
            # errcode for an unknown code is not documented: whether it has it is asked apart.
            if await _in_wecom(contact, config_id):
                raise
    await in_tenant(rt.db, tenant_id, save)


# get_contact_way's answer for a config_id WeCom does not have: 参数不合法 (the emulator's, and
# what is known of WeCom's; a refusal for want of rights, 48001 or 60011, says nothing of the code)
_NO_SUCH_CODE = frozenset({40035})


async def _in_wecom(contact, config_id: str) -> bool:
    """Whether WeCom may still have the code: no only where it says there is no such code."""
    try:
        await contact.get_contact_way(config_id)
    except WeComError as exc:
        return exc.errcode not in _NO_SUCH_CODE
    except WeComFailure:
        return True
    return True


def daily_stats(
    session: Session, channel_id: int | None, viewer: Reader, today: date, days: int = 30
) -> list[dict]:
    """Per day in the tenant's time zone, of the follows the viewer may see: adds, losses
    (the customer removed the member), deleted (the member removed the customer) and net = adds
    − losses − deleted (a follow handed to another member keeps its customer: no loss), for the
    `days` up to `today` (siyu.tenancy.timezones.today: Siyu's clock, not the machine's)."""
    tenant = session.scalar(select(Tenant).where(Tenant.id == session.info.get("siyu_tenant_id")))
    tz = ZoneInfo(tenant.timezone if tenant else "Asia/Shanghai")
    start = today - timedelta(days=days - 1)
    since = datetime.combine(start, datetime.min.time(), tz)
    q = select(Follow.added_at, Follow.ended_at, Follow.status).where(visible_follow(viewer))
    q = (
        q.where(Follow.channel_id == channel_id)
        if channel_id is not None
        else q.where(Follow.channel_id.is_not(None))
    )
    rows = session.execute(q.where((Follow.added_at >= since) | (Follow.ended_at >= since)))
    table = {start + timedelta(days=i): {"adds": 0, "losses": 0, "deleted": 0} for i in range(days)}
    for added_at, ended_at, status in rows:
        day = added_at.astimezone(tz).date()
        if day in table:
            table[day]["adds"] += 1
        if ended_at is not None and status in ENDINGS:
            day = ended_at.astimezone(tz).date()
            if day in table:
                table[day][ENDINGS[status]] += 1
    return [
        {"day": d.isoformat(), **v, "net": v["adds"] - v["losses"] - v["deleted"]}
        for d, v in sorted(table.items())
    ]


# The follows that ended and took the customer away, by status: the figure each counts in.
ENDINGS = {"lost": "losses", "deleted": "deleted"}
# Every follow is in exactly one of these, so adds = active + losses + deleted + transferred.
_FIGURE_OF = {"active": "active", "half": "active", "transferred": "transferred", **ENDINGS}


def empty_totals(viewer: Reader) -> dict:
    return {
        "adds": 0,
        "active": 0,
        "losses": 0,
        "deleted": 0,
        "transferred": 0,
        "net": 0,
        "scope": "tenant" if viewer.visible_staff is None else "visible_staff",
    }


def totals(session: Session, viewer: Reader) -> dict[int, dict]:
    """Per channel, of the follows the viewer may see: added, still followed, lost (the
    customer removed the member), deleted (the member removed the customer), handed over to
    another member, and net = added − lost − deleted."""
    q = select(Follow.channel_id, Follow.status, func.count()).where(
        Follow.channel_id.is_not(None), visible_follow(viewer)
    )
    result: dict[int, dict] = {}
    for channel_id, status, n in session.execute(q.group_by(Follow.channel_id, Follow.status)):
        entry = result.setdefault(channel_id, empty_totals(viewer))
        entry["adds"] += n
        if status in _FIGURE_OF:
            entry[_FIGURE_OF[status]] += n
    for entry in result.values():
        entry["net"] = entry["adds"] - entry["losses"] - entry["deleted"]
    return result
