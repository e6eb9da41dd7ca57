"""SLA tables: policies, the admin's calendar days, waits, escalation steps and voice calls.

Time-driven work lives here as rows: one `SlaEscalation` per (wait, step) with a due time,
claimed by workers with a lease and fired exactly once (siyu.sla.tasks). All times are UTC
and on Siyu's clock (`rt.now()`), never the wall clock of whoever writes the row."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db.base import Base, BigId, TenantOwned, utcnow

DEFAULT_STEPS = [
    {"delay_s": 120, "action": "app_message", "target": "agent"},
    {"delay_s": 300, "action": "app_message", "target": "leader"},
    {"delay_s": 600, "action": "voice_call", "target": "agent"},
]
DEFAULT_SHIFTS = [["09:00", "12:00"], ["13:30", "18:00"]]
DEFAULT_QUIET_HOURS = ["21:00", "08:00"]


class SlaPolicy(TenantOwned, Base):
    """How long a customer may wait, and who hears about it when. One per tenant
    (department_wecom_id 0) and optionally one per department (its members and the members
    of its sub-departments that have none of their own)."""

    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "department_wecom_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    department_wecom_id: Mapped[int] = mapped_column(default=0)  # 0: the whole tenant
    name: Mapped[str] = mapped_column(String(200), default="默认")
    enabled: Mapped[bool] = mapped_column(default=True)
    # [{delay_s, action: app_message | voice_call, target: agent | leader | contact}], by delay
    steps: Mapped[list] = mapped_column(default=lambda: [dict(s) for s in DEFAULT_STEPS])
    # Delays count business time only (shifts on workdays, in the tenant's time zone).
    business_hours_only: Mapped[bool] = mapped_column(default=False)
    shifts: Mapped[list] = mapped_column(default=lambda: [list(s) for s in DEFAULT_SHIFTS])
    public_holidays: Mapped[bool] = mapped_column(default=True)  # mainland China holidays and 调休
    escalation_contact: Mapped[str] = mapped_column(String(64), default="")  # userid, last resort
    merge_window_s: Mapped[float] = mapped_column(default=5.0)  # app messages to one person: one card
    call_cooldown_s: Mapped[int] = mapped_column(default=900)  # one call covers all of an agent's waits
    quiet_hours: Mapped[list] = mapped_column(default=lambda: list(DEFAULT_QUIET_HOURS))  # no calls
    stale_after_s: Mapped[int] = mapped_column(default=6 * 3600)  # older steps are skipped, not sent
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # who saved it last, by the name they were signed in as (a token: the person it acts as), so
    # that a form refused as stale can say whose save it missed; "" for a save by Siyu itself
    # (the command line, the demo) or one made before this was kept
    updated_by: Mapped[str] = mapped_column(String(200), default="", server_default="")


class SlaPolicyVersion(TenantOwned, Base):
    """What a policy measured waits by from `valid_from` on: its steps and its clock as they
    were saved then. The board measures a wait by the version in force when the wait ended,
    so that editing a policy, or deleting a department's, leaves past days' on-time shares
    as they were. `policy_id` has no foreign key: a deleted policy's versions stay."""

    __tablename__ = "sla_policy_versions"
    __table_args__ = (Index("ix_sla_policy_versions_tenant_policy", "tenant_id", "policy_id", "valid_from"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(BigId)
    valid_from: Mapped[datetime]
    steps: Mapped[list]
    business_hours_only: Mapped[bool]
    shifts: Mapped[list]
    public_holidays: Mapped[bool]


class SlaCalendarDay(TenantOwned, Base):
    """A date the admin set: a holiday (no business hours) or a workday (e.g. a 调休 make-up
    day the calendar package does not know, or a company event). Wins over the package."""

    __tablename__ = "sla_calendar_days"
    __table_args__ = (UniqueConstraint("tenant_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date]
    kind: Mapped[str] = mapped_column(String(8))  # holiday | workday
    note: Mapped[str] = mapped_column(String(200), default="")
    # who added it, or last changed its kind or note (the name they were signed in as; "" for
    # Siyu itself or before this was kept), and when (Siyu's clock; None: before it was kept):
    # the page says so beside it, so that a date nobody remembers adding can be asked about
    added_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    added_at: Mapped[datetime | None]


class SlaCalendarChange(TenantOwned, Base):
    """A special date set (its kind) or taken back (kind "") at `changed_at`, Siyu's clock: the
    board measures a wait that ended at T by the dates in force at T, so that a 上班 Saturday
    added on Monday leaves last week's on-time shares as they were. Waits still open are timed
    by the dates as they stand (SlaCalendarDay), whatever this says."""

    __tablename__ = "sla_calendar_changes"
    __table_args__ = (Index("ix_sla_calendar_changes_tenant_changed", "tenant_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date]
    kind: Mapped[str] = mapped_column(String(8))  # holiday | workday | "" (taken back)
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(200), default="", server_default="")  # as added_by


class SlaWait(TenantOwned, Base):
    """One customer message waiting for a reply, from its msgtime until it was answered,
    recalled or dismissed: the unit of first-response time."""

    __tablename__ = "sla_waits"
    __table_args__ = (
        UniqueConstraint("tenant_id", "conversation_id", "msgid"),
        Index("ix_sla_waits_tenant_started", "tenant_id", "started_at"),
        Index("ix_sla_waits_tenant_conversation_closed", "tenant_id", "conversation_id", "closed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    msgid: Mapped[str] = mapped_column(String(128))
    staff_userid: Mapped[str] = mapped_column(String(64), default="")
    customer_id: Mapped[int | None] = mapped_column(BigId)
    policy_id: Mapped[int | None] = mapped_column(BigId)
    started_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    # replied | recalled | dismissed | declined (archiving) | lost / removed / transferred (the follow)
    close_reason: Mapped[str] = mapped_column(String(16), default="")
    # who marked it "no reply needed", by the name they were signed in as ("" for Siyu itself)
    closed_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    response_s: Mapped[float | None]  # closed by a reply: how long it took
    breached_step: Mapped[int] = mapped_column(default=-1)  # the last step that fired
    snoozed_until: Mapped[datetime | None]
    # who held its reminders back (the name they were signed in as, as closed_by) and when
    snoozed_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # and their person (people.id): whether a shorter snooze is theirs to make is decided by it,
    # not by the name (two of the same name, a rename). None for snoozes made before it was kept.
    # No foreign key: the record stays as it was when the account goes.
    snoozed_by_id: Mapped[int | None] = mapped_column(BigId)
    snoozed_at: Mapped[datetime | None]
    # each person's latest snooze still running ({key: {until, by, by_id, at}}, ISO times): the
    # one in force (snoozed_*) is the longest, so one person shortening their own never cuts
    # another's (siyu.sla.service.snooze)
    snoozes: Mapped[dict] = mapped_column(default=dict, server_default="{}")
    # how it had ended ({at, reason, by}) before a reply pulled late answered it (a reply sent
    # before what settled the chat: siyu.sla.service._store_replied_before_settled); a recall
    # of that reply puts it back
    settled: Mapped[dict | None]


class SlaEscalation(TenantOwned, Base):
    """One step of one wait: due at `due_at`, fired exactly once (or cancelled/skipped)."""

    __tablename__ = "sla_escalations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "wait_id", "step"),
        # Only pending steps are looked for by due time, a tenant's at a time (each has its
        # turn): fired ones leave this index.
        Index(
            "ix_sla_escalations_tenant_pending_due",
            "tenant_id",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_sla_escalations_tenant_fired", "tenant_id", "fired_at"),
        # who was told about a conversation may open it (conversations.queries.get_conversation)
        Index("ix_sla_escalations_tenant_conversation", "tenant_id", "conversation_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wait_id: Mapped[int] = mapped_column(BigId, ForeignKey("sla_waits.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    step: Mapped[int]
    action: Mapped[str] = mapped_column(String(16))  # app_message | voice_call
    target: Mapped[str] = mapped_column(String(16))  # agent | leader | contact
    # the step's delay as scheduled, from the wait's start: it keeps it under another clock or
    # policy (None: scheduled before it was kept)
    delay_s: Mapped[int | None]
    agent_userid: Mapped[str] = mapped_column(String(64), default="")
    recipient: Mapped[str] = mapped_column(String(64), default="")  # resolved when it fires
    due_at: Mapped[datetime]
    # pending | fired | cancelled (the wait closed first) | skipped (nobody to tell, stale ...)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    fired_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaCall(TenantOwned, Base):
    """A voice call to a staff member: placed once per cooldown, covering all their waits."""

    __tablename__ = "sla_calls"
    __table_args__ = (Index("ix_sla_calls_tenant_callee_at", "tenant_id", "callee_userid", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    callee_userid: Mapped[str] = mapped_column(String(64))
    escalation_id: Mapped[int | None] = mapped_column(BigId)
    # queued | placed | skipped | failed | never (its policy's shifts all lie in its quiet hours)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    # the provider it was handed to, set before it rings: a queued call with one was handed over
    # by a try that got no answer, and may have rung (siyu.sla.tasks._call_hold)
    provider: Mapped[str] = mapped_column(String(16), default="")
    call_id: Mapped[str] = mapped_column(String(128), default="")
    waits: Mapped[int] = mapped_column(default=0)  # how many waits the call was about
    # and which (sla_waits ids), as last planned: None for a call not planned yet, or planned
    # before this was kept
    told_waits: Mapped[list | None]
    created_at: Mapped[datetime]  # Siyu's clock: the cooldown counts from here
    placed_at: Mapped[datetime | None]
    error: Mapped[str] = mapped_column(Text, default="")
