from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, TenantOwned, utcnow


class Customer(TenantOwned, Base):
    """An external contact (外部联系人) of the corp."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_userid"),
        Index("ix_customers_tenant_added", "tenant_id", "first_added_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[int] = mapped_column(default=1)  # 1 WeChat user, 2 WeCom user
    gender: Mapped[int] = mapped_column(default=0)
    avatar: Mapped[str] = mapped_column(String(500), default="")
    unionid: Mapped[str] = mapped_column(String(64), default="")
    corp_name: Mapped[str] = mapped_column(String(200), default="")
    position: Mapped[str] = mapped_column(String(200), default="")
    first_added_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Follow(TenantOwned, Base):
    """The relation between a customer and one staff member who has them as a contact."""

    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "customer_id", "staff_userid"),
        Index("ix_follows_tenant_staff", "tenant_id", "staff_userid"),
        Index("ix_follows_tenant_channel_added", "tenant_id", "channel_id", "added_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    staff_userid: Mapped[str] = mapped_column(String(64))
    # active | half (added without verification, not yet confirmed) | lost (customer removed
    # the staff member) | deleted (staff removed the customer) | transferred
    status: Mapped[str] = mapped_column(String(16), default="active")
    remark: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    remark_mobiles: Mapped[list] = mapped_column(default=list)
    remark_corp_name: Mapped[str] = mapped_column(String(200), default="")
    add_way: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(64), default="")
    oper_userid: Mapped[str] = mapped_column(String(64), default="")
    channel_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("channels.id", ondelete="SET NULL"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class Tag(TenantOwned, Base):
    """An enterprise customer tag (企业客户标签), mirrored from WeCom."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("tenant_id", "wecom_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wecom_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    group_id: Mapped[str] = mapped_column(String(64), default="")
    group_name: Mapped[str] = mapped_column(String(200), default="")
    deleted: Mapped[bool] = mapped_column(default=False)


class FollowTag(TenantOwned, Base):
    """WeCom tags a follow relation (customer as seen by one staff member), not a customer."""

    __tablename__ = "follow_tags"
    __table_args__ = (UniqueConstraint("tenant_id", "follow_id", "tag_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follow_id: Mapped[int] = mapped_column(BigId, ForeignKey("follows.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(BigId, ForeignKey("tags.id", ondelete="CASCADE"))


class Channel(TenantOwned, Base):
    """An acquisition channel: a "contact me" code whose `state` names the channel."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("tenant_id", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(30))
    config_id: Mapped[str] = mapped_column(String(64), default="")
    qr_code: Mapped[str] = mapped_column(String(500), default="")
    staff_userids: Mapped[list] = mapped_column(default=list)
    department_ids: Mapped[list] = mapped_column(default=list)
    skip_verify: Mapped[bool] = mapped_column(default=True)
    tag_ids: Mapped[list] = mapped_column(default=list)  # WeCom tag ids applied on add
    welcome_text: Mapped[str] = mapped_column(String(2000), default="")
    welcome_link: Mapped[dict] = mapped_column(default=dict)  # {title, url, desc, picurl}
    welcome_image_url: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    notice: Mapped[str] = mapped_column(String(500), default="")
    # WeCom's type of the code, fixed when it is made: 1 one member, 2 one or more members and/or
    # departments (a multi-member code left with one member stays one)
    way_type: Mapped[int] = mapped_column(SmallInteger, default=2, server_default="2")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # who made or last edited it (the name they were signed in as), for an edit refused as stale
    # to say whose save it missed; "" where unknown (saved before this was kept)
    updated_by: Mapped[str] = mapped_column(String(200), default="", server_default="")


class TimelineEvent(TenantOwned, Base):
    """One thing that happened to a customer, for the profile's timeline."""

    __tablename__ = "timeline_events"
    __table_args__ = (Index("ix_timeline_tenant_customer_at", "tenant_id", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    staff_userid: Mapped[str] = mapped_column(String(64), default="")
    data: Mapped[dict] = mapped_column(default=dict)
