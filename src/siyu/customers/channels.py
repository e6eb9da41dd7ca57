"""Channels: "contact me" codes. Creating, editing and disabling one talks to WeCom first
(add/update/del_contact_way) and records the result only when WeCom said yes."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.models import Channel, Follow
from siyu.tenancy.models import Tenant


class ChannelError(ValueError):
    pass


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

    def check(self) -> None:
        if not self.name.strip():
            raise ChannelError("渠道名称不能为空 / a channel needs a name")
        if len(self.name) > 100:
            raise ChannelError("渠道名称最多 100 字 / name too long")
        if not self.staff_userids and not self.department_ids:
            raise ChannelError("请选择至少一位成员或一个部门 / choose staff or a department")
        if len(self.welcome_text) > 2000:
            raise ChannelError("欢迎语最多 2000 字 / welcome text too long")
        url = self.welcome_link.get("url", "")
        if url and not re.match(r"https?://", url):
            raise ChannelError("欢迎语链接需以 http:// 或 https:// 开头 / link must be http(s)")

    @property
    def way_type(self) -> int:
        # WeCom: 1 = a single member, 2 = several members and/or departments
        return 1 if len(self.staff_userids) == 1 and not self.department_ids else 2


def new_state() -> str:
    """The `state` WeCom echoes back on every add through this code (≤30 characters)."""
    return "ch_" + secrets.token_hex(6)


def _apply(channel: Channel, spec: ChannelSpec) -> None:
    channel.name = spec.name.strip()
    channel.staff_userids = list(spec.staff_userids)
    channel.department_ids = list(spec.department_ids)
    channel.skip_verify = spec.skip_verify
    channel.tag_ids = list(spec.tag_ids)
    channel.welcome_text = spec.welcome_text
    channel.welcome_link = {k: v for k, v in spec.welcome_link.items() if v}
    channel.welcome_image_url = spec.welcome_image_url


async def create_channel(rt, tenant_id: int, spec: ChannelSpec) -> int:
    spec.check()
    state = new_state()
    answer = await rt.clients.get(tenant_id).contact.add_contact_way(
        spec.way_type,
        2,
        user=spec.staff_userids or None,
        party=spec.department_ids or None,
        state=state,
        skip_verify=spec.skip_verify,
        remark=spec.name[:30],
    )
    with rt.db.tenant_session(tenant_id) as s:
        channel = Channel(state=state, config_id=answer["config_id"], qr_code=answer.get("qr_code", ""))
        _apply(channel, spec)
        s.add(channel)
        s.flush()
        return channel.id


async def update_channel(rt, tenant_id: int, channel_id: int, spec: ChannelSpec) -> None:
    spec.check()
    with rt.db.tenant_session(tenant_id) as s:
        channel = s.get(Channel, channel_id)
        if channel is None:
            raise LookupError(channel_id)
        config_id, old_type = (
            channel.config_id,
            1 if len(channel.staff_userids) == 1 and not channel.department_ids else 2,
        )
    if old_type != spec.way_type:
        raise ChannelError(
            "单人码和多人码不能互相转换，请新建渠道 / a single-member code cannot become a multi-member one"
        )
    await rt.clients.get(tenant_id).contact.update_contact_way(
        config_id,
        user=spec.staff_userids or [],
        party=spec.department_ids or [],
        skip_verify=spec.skip_verify,
        remark=spec.name[:30],
    )
    with rt.db.tenant_session(tenant_id) as s:
        _apply(s.get(Channel, channel_id), spec)


async def disable_channel(rt, tenant_id: int, channel_id: int) -> None:
    """Delete the code in WeCom (scans stop working); the channel and its history stay."""
    with rt.db.tenant_session(tenant_id) as s:
        channel = s.get(Channel, channel_id)
        if channel is None:
            raise LookupError(channel_id)
        config_id, enabled = channel.config_id, channel.enabled
    if enabled and config_id:
        await rt.clients.get(tenant_id).contact.del_contact_way(config_id)
    with rt.db.tenant_session(tenant_id) as s:
        s.get(Channel, channel_id).enabled = False


def daily_stats(
    session: Session, channel_id: int | None, days: int = 30, today: date | None = None
) -> list[dict]:
    """Adds, losses and net per day in the tenant's time zone (losses = customer removed the staff)."""
    tenant = session.scalar(select(Tenant).where(Tenant.id == session.info.get("siyu_tenant_id")))
    tz = ZoneInfo(tenant.timezone if tenant else "Asia/Shanghai")
    today = today or datetime.now(tz).date()
    start = today - timedelta(days=days - 1)
    since = datetime.combine(start, datetime.min.time(), tz)
    q = select(Follow.added_at, Follow.ended_at, Follow.status)
    q = (
        q.where(Follow.channel_id == channel_id)
        if channel_id is not None
        else q.where(Follow.channel_id.is_not(None))
    )
    rows = session.execute(q.where((Follow.added_at >= since) | (Follow.ended_at >= since)))
    table = {start + timedelta(days=i): {"adds": 0, "losses": 0} for i in range(days)}
    for added_at, ended_at, status in rows:
        day = added_at.astimezone(tz).date()
        if day in table:
            table[day]["adds"] += 1
        if ended_at is not None and status == "lost":
            day = ended_at.astimezone(tz).date()
            if day in table:
                table[day]["losses"] += 1
    return [{"day": d.isoformat(), **v, "net": v["adds"] - v["losses"]} for d, v in sorted(table.items())]


def totals(session: Session) -> dict[int, dict]:
    """Per channel: customers added, lost, and still active."""
    q = select(Follow.channel_id, Follow.status, func.count()).where(Follow.channel_id.is_not(None))
    result: dict[int, dict] = {}
    for channel_id, status, n in session.execute(q.group_by(Follow.channel_id, Follow.status)):
        entry = result.setdefault(channel_id, {"adds": 0, "losses": 0, "active": 0})
        entry["adds"] += n
        if status == "lost":
            entry["losses"] += n
        if status in ("active", "half"):
            entry["active"] += n
    for entry in result.values():
        entry["net"] = entry["adds"] - entry["losses"]
    return result
