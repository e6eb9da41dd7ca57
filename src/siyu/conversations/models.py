from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, TenantOwned, utcnow


class Conversation(TenantOwned, Base):
    """A 1:1 chat between a customer and a staff member, or a group chat (roomid)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key"),
        Index("ix_conversations_tenant_awaiting", "tenant_id", "awaiting_since"),
        Index("ix_conversations_tenant_staff_last", "tenant_id", "staff_userid", "last_message_at"),
        Index("ix_conversations_tenant_external", "tenant_id", "external_userid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))  # single:<external_userid>:<userid> | group:<roomid>
    kind: Mapped[str] = mapped_column(String(8))  # single | group
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customers.id", ondelete="SET NULL"))
    external_userid: Mapped[str] = mapped_column(String(64), default="")
    staff_userid: Mapped[str] = mapped_column(String(64), default="")
    roomid: Mapped[str] = mapped_column(String(64), default="")
    last_message_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    last_outbound_at: Mapped[datetime | None]
    # What the staff last wrote: what the customer's next message is read against (needs-reply).
    # None where unknown (that message was recalled, or came before this was kept): looked up.
    last_outbound_text: Mapped[str | None] = mapped_column(Text)
    # The customer message that is still waiting for a reply, and since when (its msgtime).
    awaiting_since: Mapped[datetime | None]
    awaiting_msgid: Mapped[str] = mapped_column(String(128), default="")
    # What the customer said until then needs no reply: a wait closed without one (marked "no
    # reply needed", archiving declined, the follow ended). A recall never brings it back.
    settled_until: Mapped[datetime | None]
    message_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupChat(TenantOwned, Base):
    """A customer group's name and owner, as WeCom's groupchat/get tells them: the archive's
    messages carry only the roomid (its chat_id). status: active, dismissed, internal (a
    group of staff only, told by the archive's msgaudit/groupchat/get), or unknown (WeCom
    told nothing of it)."""

    __tablename__ = "group_chats"
    __table_args__ = (UniqueConstraint("tenant_id", "chat_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256), default="")
    owner_userid: Mapped[str] = mapped_column(String(64), default="")
    member_count: Mapped[int] = mapped_column(default=0)  # staff and customers
    customer_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(12), default="active")
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)  # when WeCom was last asked
    problem: Mapped[str] = mapped_column(String(300), default="")  # why the last lookup failed
    # when groupchat/get's member list was last kept (GroupMember); None: never (a group stored
    # before Siyu kept members, read again by the worker: siyu.conversations.groups)
    members_read_at: Mapped[datetime | None]
    # what groupchat/get names its external members, by external userid (their nickname in the
    # group first): those who are nobody's contact here are named by it on the chat
    member_names: Mapped[dict] = mapped_column(default=dict, server_default="{}")


class GroupMember(TenantOwned, Base):
    """An external member of a customer group (a customer of ours, or one nobody here follows
    yet: customer_id NULL till they become one): since when and how they joined, and when and
    how they left (left_at set; joined_at None where only the leave was ever seen). Staff
    members are not kept. join_scene: groupchat/get's (1 invited by a member, 2 by a member's
    link, 3 by the group's QR code, 0 unknown); left_how: quit | removed (by the owner or an
    admin) | dismissed | "" (unknown)."""

    __tablename__ = "group_members"
    __table_args__ = (
        UniqueConstraint("tenant_id", "chat_id", "external_userid"),
        Index("ix_group_members_tenant_customer", "tenant_id", "customer_id"),
        Index("ix_group_members_tenant_external", "tenant_id", "external_userid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64), default="", server_default="")
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    joined_at: Mapped[datetime | None]
    join_scene: Mapped[int] = mapped_column(default=0)
    invitor: Mapped[str] = mapped_column(String(64), default="")
    left_at: Mapped[datetime | None]
    left_how: Mapped[str] = mapped_column(String(12), default="")


class Message(TenantOwned, Base):
    """One archived message, stored once (unique on tenant + msgid)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "msgid"),
        Index("ix_messages_tenant_conversation_sent", "tenant_id", "conversation_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msgid: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(BigId, default=0)  # WeCom's is unsigned 64-bit
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    action: Mapped[str] = mapped_column(String(8), default="send")  # send | recall | switch
    sender: Mapped[str] = mapped_column(String(64), default="")
    direction: Mapped[str] = mapped_column(String(8), default="in")  # in | out | internal
    sent_at: Mapped[datetime]
    msgtype: Mapped[str] = mapped_column(String(32), default="")
    text: Mapped[str] = mapped_column(Text, default="")  # a readable rendering, for people and search
    body: Mapped[dict] = mapped_column(default=dict)  # WeCom's decrypted message as it came
    recalled: Mapped[bool] = mapped_column(default=False)
    needs_reply: Mapped[bool | None]  # inbound only: False for a closing remark
    reply_score: Mapped[float | None]
    by_siyu: Mapped[bool] = mapped_column(default=False)  # sent by Siyu for the staff (welcome ...)


class ArchiveCursor(TenantOwned, Base):
    """How far a tenant's archive has been pulled: the last seq stored, and the newest msgtime
    among everything pulled (an escalation may fire only once the archive is past its due time)."""

    __tablename__ = "archive_cursors"
    __table_args__ = (UniqueConstraint("tenant_id", "source"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), default="archive")
    seq: Mapped[int] = mapped_column(BigId, default=0)
    pulled_until: Mapped[datetime | None]
    pulled_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")


class ArchiveKey(TenantOwned, Base):
    """A key pair for the archive: WeCom encrypts each message's key with the public key of
    the version set in its console; the private key (sealed at rest) decrypts it."""

    __tablename__ = "archive_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int]
    public_pem: Mapped[str] = mapped_column(Text)
    private_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # when it first decrypted a pulled message (None: never): such a key is kept, its private
    # half the only copy (siyu.conversations.service.remove_archive_key)
    used_at: Mapped[datetime | None]


class EarlyRecall(TenantOwned, Base):
    """A recall stored before the message it takes back (an import file listing them out of
    order, or two files imported newest first): the message is stored recalled when it comes,
    and never waits for a reply nor answers one."""

    __tablename__ = "early_recalls"
    __table_args__ = (UniqueConstraint("tenant_id", "msgid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msgid: Mapped[str] = mapped_column(String(128))  # the message taken back, not stored yet
    recall_msgid: Mapped[str] = mapped_column(String(128))
    recalled_at: Mapped[datetime]
