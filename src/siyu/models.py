"""Every table, imported in one place so metadata and migrations see them all."""

from siyu.conversations.models import ArchiveCursor, ArchiveKey, Conversation, GroupChat, GroupMember, Message
from siyu.conversations.search import MessageSearch
from siyu.customers.models import Channel, Customer, Follow, FollowTag, Tag, TimelineEvent
from siyu.db.base import Base
from siyu.intake.models import CallbackEvent
from siyu.notify.models import OutboxMessage
from siyu.sla.models import (
    SlaCalendarChange,
    SlaCalendarDay,
    SlaCall,
    SlaEscalation,
    SlaPolicy,
    SlaPolicyVersion,
    SlaWait,
)
from siyu.tenancy.models import (
    ApiToken,
    Department,
    LoginThrottle,
    Person,
    SettingChange,
    Staff,
    Tenant,
    WebSession,
)

__all__ = [
    "ApiToken",
    "ArchiveCursor",
    "ArchiveKey",
    "Base",
    "CallbackEvent",
    "Channel",
    "Conversation",
    "Customer",
    "Department",
    "Follow",
    "FollowTag",
    "GroupChat",
    "GroupMember",
    "LoginThrottle",
    "Message",
    "MessageSearch",
    "OutboxMessage",
    "Person",
    "SettingChange",
    "SlaCalendarChange",
    "SlaCalendarDay",
    "SlaCall",
    "SlaEscalation",
    "SlaPolicy",
    "SlaPolicyVersion",
    "SlaWait",
    "Staff",
    "Tag",
    "Tenant",
    "TimelineEvent",
    "WebSession",
]
