"""Every table, imported in one place so metadata and migrations see them all."""

from siyu.customers.models import Channel, Customer, Follow, FollowTag, Tag, TimelineEvent
from siyu.db.base import Base
from siyu.intake.models import CallbackEvent
from siyu.notify.models import OutboxMessage
from siyu.tenancy.models import Department, Person, Staff, Tenant, WebSession

__all__ = [
    "Base",
    "CallbackEvent",
    "Channel",
    "Customer",
    "Department",
    "Follow",
    "FollowTag",
    "OutboxMessage",
    "Person",
    "Staff",
    "Tag",
    "Tenant",
    "TimelineEvent",
    "WebSession",
]
