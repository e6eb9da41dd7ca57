"""Request and response shapes of the SLA API (/api/v1/sla, snooze): Pydantic, with messages
an admin can act on (Chinese first) when a policy is refused with 422."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from siyu.sla.calendar import DAY, check_day, parse_day, parse_hhmm, parse_shifts
from siyu.sla.service import MAX_DAY_NOTE, MAX_STEPS

Action = Literal["app_message", "voice_call"]
Target = Literal["agent", "leader", "contact"]
MAX_DELAY_S = 30 * 86400
MAX_SNOOZE_MIN = 24 * 60
MAX_CALL_COOLDOWN_S = 86400  # a day at most: longer, an agent's new waits would go unphoned for days
# A step whose turn comes this long after it was due is not sent (siyu.sla.firing). Under a
# quarter of an hour, a restart or a short outage of the archive would drop reminders that
# were still worth sending; over a week, a card would tell of a wait from long ago.
MIN_STALE_AFTER_S = 15 * 60
MAX_STALE_AFTER_S = 7 * 86400
STALE_AFTER_TEXT = (
    "a step whose turn comes more than this many seconds after it was due (Siyu or the conversation"
    " archive was down, the messages were imported) is not sent but recorded as skipped, stale"
    f" (过期未发); from {MIN_STALE_AFTER_S} (15 minutes) to {MAX_STALE_AFTER_S} (7 days), 21600"
    " (6 hours) by default. A change applies to steps firing from then on, those of waits already open too"
)


def _day_only(value):
    """A calendar day is a date, or text YYYY-MM-DD (see parse_day), from FIRST_DAY to LAST_DAY."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return check_day(value)
    if isinstance(value, str):
        return parse_day(value)  # its ValueError says what is wrong
    raise ValueError("日期应写作 YYYY-MM-DD / a day is written YYYY-MM-DD")


CalendarDay = Annotated[date, BeforeValidator(_day_only)]


def _hhmm(value: str) -> str:
    """A checked time of day as HH:MM (9:00 is stored as 09:00)."""
    minutes = parse_hhmm(value)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class StepIn(BaseModel):
    model_config = {"extra": "forbid"}

    delay_s: StrictInt = Field(ge=0, le=MAX_DELAY_S, description="seconds after the customer's message")
    action: Action = Field(description="app_message: a WeCom card; voice_call: a phone call")
    target: Target = Field("agent", description="agent, their leader, or the escalation contact")


class TakenBackAsGot(BaseModel):
    """A body GET's answer, changed, may be sent back as: what GET gives beside the fields and
    no PUT sets (`read_only`) is dropped, a field misspelt is still refused."""

    read_only: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _as_got(cls, data):
        if isinstance(data, dict) and cls.read_only:
            return {k: v for k, v in data.items() if k not in cls.read_only}
        return data


class CalendarDayIn(TakenBackAsGot):
    day: CalendarDay
    kind: Literal["holiday", "workday"]
    note: str = Field("", description=f"at most {MAX_DAY_NOTE} characters")

    model_config = {"extra": "forbid"}  # "notes" had been dropped without a word

    # who added a date is not the PUT's to set (it is who sends it, where the date changes)
    read_only: ClassVar[frozenset[str]] = frozenset({"added_by", "added_at"})

    @field_validator("note")
    @classmethod
    def _note_fits(cls, v: str) -> str:
        if len(v) > MAX_DAY_NOTE:  # said in both languages, as the page says it
            raise ValueError(f"备注最多 {MAX_DAY_NOTE} 字 / the note is at most {MAX_DAY_NOTE} characters")
        return v


class PolicyFieldsIn(TakenBackAsGot):
    """A policy's fields (a department's policy has no dates of its own: the tenant's
    calendar applies). Fields left out keep their current value."""

    # Strict: "yes" or 1 for a switch is more likely a mistake than a choice.
    enabled: StrictBool | None = None
    steps: list[StepIn] | None = Field(None, max_length=MAX_STEPS)
    business_hours_only: StrictBool | None = None
    shifts: list[list[str]] | None = Field(
        None, max_length=12, description='local shifts, e.g. [["09:00","12:00"],["13:30","18:00"]]'
    )
    public_holidays: StrictBool | None = Field(None, description="follow mainland China's holidays and 调休")
    escalation_contact: str | None = Field(
        None, max_length=64, description="a staff userid, in any case, or empty"
    )
    quiet_hours: list[str] | None = Field(
        None, description='no voice calls in this daily window, e.g. ["21:00","08:00"]; [] for none'
    )
    call_cooldown_s: StrictInt | None = Field(
        None,
        ge=60,
        le=MAX_CALL_COOLDOWN_S,
        description="after a call, none to the same member for this long: one call covers all their waits",
    )
    merge_window_s: StrictFloat | None = Field(
        None, ge=0, le=600, description="cards due to one person within this many seconds go as one"
    )
    stale_after_s: StrictInt | None = Field(
        None, ge=MIN_STALE_AFTER_S, le=MAX_STALE_AFTER_S, description=STALE_AFTER_TEXT
    )

    model_config = {"extra": "forbid"}

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, value: list[list[str]] | None):
        if value is None:
            return value
        for shift in value:
            if len(shift) != 2:
                raise ValueError("每个班次是 [开始, 结束] / each shift is [start, end]")
        try:
            parse_shifts(value)
        except ValueError as exc:
            raise ValueError(f"班次无效 / invalid shifts: {exc}") from None
        return [[_hhmm(a), _hhmm(b)] for a, b in value]

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: list[str] | None):
        if not value or (len(value) == 2 and all(isinstance(v, str) and not v.strip() for v in value)):
            return [] if value is not None else None  # both left empty: no quiet hours
        if len(value) != 2:
            raise ValueError("免打扰时段是 [开始, 结束] 或 [] / quiet_hours is [start, end] or []")
        if sum(not str(v).strip() for v in value) == 1:
            missing = "开始" if not str(value[0]).strip() else "结束"
            raise ValueError(
                f"免打扰时段缺少{missing}时间：两个都填（如 22:00 到 08:00），或都留空表示不设免打扰"
                " / quiet hours need both a start and an end, or neither"
            )
        try:
            start, end = (parse_hhmm(v) for v in value)
        except ValueError as exc:
            raise ValueError(f"免打扰时段无效 / invalid quiet hours: {exc}") from None
        if start % 1440 == end % 1440:  # (the rules refuse it too; here it is told with the rest)
            raise ValueError(
                "免打扰时段的开始和结束不能相同 / quiet hours must start and end at different times"
            )
        if start == DAY:  # 24:00 ends a day: a window from it starts at 00:00, as a shift would
            raise ValueError(
                "免打扰时段不能从 24:00 开始，请写 00:00 / quiet hours cannot start at 24:00: write 00:00"
            )
        return [_hhmm(v) for v in value]

    @field_validator("steps")
    @classmethod
    def _sorted(cls, value: list[StepIn] | None):
        return sorted(value, key=lambda s: s.delay_s) if value is not None else value


class PolicyIn(PolicyFieldsIn):
    """The tenant's policy. Fields left out keep their current value; `calendar_days`, when
    given, replaces the tenant's extra dates. What GET gives and PUT does not set
    (`is_default`, `official_calendar_through`, `updated_at`) may be sent back as it is."""

    read_only: ClassVar[frozenset[str]] = frozenset({"is_default", "official_calendar_through", "updated_at"})

    calendar_days: list[CalendarDayIn] | None = Field(None, max_length=400)

    @field_validator("calendar_days")
    @classmethod
    def _unique_days(cls, value: list[CalendarDayIn] | None):
        if value is not None and len({d.day for d in value}) != len(value):
            raise ValueError("同一日期只能出现一次 / each date at most once")
        return value


class CalendarDayOut(CalendarDayIn):
    read_only: ClassVar[frozenset[str]] = frozenset()  # (an answer says who added it)

    added_by: str = Field(
        "", description='who added the date or last changed its kind or note ("": Siyu itself, or not kept)'
    )
    added_at: datetime | None = Field(None, description="when (null: not kept)")


class PolicyFieldsOut(BaseModel):
    """What a policy is, as GET gives it (the tenant's or a department's)."""

    enabled: bool
    steps: list[StepIn]
    business_hours_only: bool
    shifts: list[list[str]]
    public_holidays: bool
    escalation_contact: str
    quiet_hours: list[str]
    call_cooldown_s: int
    merge_window_s: float
    stale_after_s: int = Field(description=STALE_AFTER_TEXT)


class PolicyOut(PolicyFieldsOut):
    is_default: bool = Field(description="no policy saved yet: the built-in default applies")
    calendar_days: list[CalendarDayOut]
    official_calendar_through: int | None = Field(
        description="the last year whose public holidays and 调休 Siyu knows; later years count "
        "Monday to Friday as workdays unless calendar_days say otherwise"
    )
    updated_at: datetime | None


class DepartmentPolicyIn(PolicyFieldsIn):
    """A department's own policy. Created from the policy its members follow until then (an
    ancestor department's, the tenant's or the default); fields left out keep that value.
    What GET gives and PUT does not set (`department_wecom_id`, `department_name`,
    `is_default`, `updated_at`) may be sent back as it is: the department is the path's."""

    read_only: ClassVar[frozenset[str]] = frozenset(
        {"department_wecom_id", "department_name", "is_default", "updated_at"}
    )


class DepartmentPolicyOut(PolicyFieldsOut):
    department_wecom_id: int = Field(description="0: the tenant's policy")
    department_name: str = Field(description="empty for the tenant; the synced department's name")
    is_default: bool = Field(description="only for the tenant: none saved, the built-in default applies")
    updated_at: datetime | None


class DepartmentApplies(BaseModel):
    wecom_id: int
    name: str
    parent_wecom_id: int
    depth: int = Field(description="0 for a top department (the list is in tree order)")
    policy: Literal["own", "inherited", "tenant", "default"] = Field(
        description="own policy; an ancestor department's; the tenant's; the built-in default"
    )
    policy_department_wecom_id: int | None = Field(
        description="the department whose policy applies; 0 the tenant's; null the built-in default"
    )
    policy_department_name: str


class PoliciesOut(BaseModel):
    policies: list[DepartmentPolicyOut] = Field(description="the tenant's first, then each department's")
    departments: list[DepartmentApplies] = Field(description="every synced department and what applies")


class SnoozeIn(BaseModel):
    minutes: StrictInt = Field(
        ge=1, le=MAX_SNOOZE_MIN, description="quiet for this many minutes (15, 30, 60 ...)"
    )
    msgid: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="the customer message of the wait the client showed stored last"
        " (waiting_newest_msgid): refused with 409 when one that needs a reply was stored after it,"
        " as for dismiss, so that a stale screen never holds back the reminders of a question it did"
        " not show. Without it, whatever waits is snoozed.",
    )

    model_config = {"extra": "forbid"}


class SnoozeOut(BaseModel):
    snoozed: bool = Field(description="False: the conversation is not waiting for a reply")
    until: datetime | None
    by: str = Field("", description='who snoozed it: the name the caller is signed in as ("": not waiting)')
    moved_steps: int = Field(
        description="pending steps moved (a wait has one at a time; the later ones keep their spacing)"
    )
    kept_until: datetime | None = Field(
        None,
        description="already snoozed longer by someone else (`by`) until then: nothing changed "
        "(a snooze never brings another's reminders back earlier)",
    )


class FiredStep(BaseModel):
    step: int = Field(description="0-based: step 0 is the page's 第 1 步")
    action: Action
    target: Target
    fired_at: datetime | None
    delivery: str = Field(
        "",
        description="card: queued | sent | retrying | given_up | skipped (answered meanwhile); "
        "call: queued | retrying | placed | skipped (not placed, delivery_error says why) | failed | "
        "covered (the agent was called within the policy's cooldown, about another customer, and not "
        "called again) | never (the policy's shifts all lie in its quiet hours: the call is not placed, "
        "and not later either once the policy is changed); either: snoozed (its wait was snoozed "
        "since the step fired, before the card was built or the call rang, however short the snooze: "
        "it did not, or will not, speak of this customer; said as soon as it is snoozed) | ended (the "
        "wait was answered or closed first)",
    )
    delivery_error: str = Field("", description="what WeCom or the voice provider answered, when it failed")
    held_until: datetime | None = Field(
        None, description="a queued call held back by the policy's quiet hours: when it will ring"
    )


class SkippedStep(BaseModel):
    step: int = Field(description="0-based: step 0 is the page's 第 1 步")
    action: Action
    target: Target
    skipped_at: datetime | None
    reason: Literal["stale", "nobody"] = Field(
        description="stale: due longer ago than the policy's stale_after_s when its turn came; "
        "nobody: nobody to tell (listed with why among the day's delivery_problems)"
    )


class StepPerson(BaseModel):
    userid: str = Field(description="the staff member's WeCom userid")
    name: str = Field(description="their name, as the board shows it")


class WaitingRow(BaseModel):
    conversation_id: int
    customer: str
    remark: str | None = Field(
        None,
        description="the waited-for member's remark (备注) on the customer, as WeCom lists the chat on"
        " their phone; null if none",
    )
    staff_userid: str
    staff_name: str
    message: str = Field(description="the customer message that waits")
    since: datetime
    waited_s: int
    waited_text: str
    waited_business_s: int | None = Field(
        None, description="under a policy that counts business hours only: the wait by that clock"
    )
    fired: list[FiredStep]
    skipped: list[SkippedStep] = Field([], description="steps not sent at all")
    next_step_at: datetime | None = Field(
        description="when the next step comes due, or for a call quiet hours will hold back "
        "(next_step_after_quiet_hours) when it will ring; null when no step is to come"
    )
    next_step_due_at: datetime | None = Field(
        None,
        description="when the next step comes due: it fires then, and counts as a breach, though "
        "quiet hours hold its call until next_step_at; null when no step is to come",
    )
    next_step_action: Action | None = Field(
        None,
        description="what the next step does: app_message, a WeCom card; voice_call, a phone call "
        "(null when no step is to come)",
    )
    next_step_target: Target | None = Field(
        None,
        description="who the policy sends it to: agent (the staff member the customer waits for), "
        "leader (their leader, else the escalation contact) or contact (the policy's escalation "
        "contact); null when no step is to come",
    )
    next_step_to: StepPerson | None = Field(
        None,
        description="who it will reach, resolved as it will be when it fires; null when nobody can be "
        "reached (no leader and no escalation contact with the corp) or no step is to come",
    )
    next_step_after_quiet_hours: bool = Field(
        False, description="the next step is a call held back until the policy's quiet hours end"
    )
    next_step_called_at: datetime | None = Field(
        None,
        description="the next step is a call to next_step_to, who was called at this time, lately enough "
        "that the policy's call_cooldown_s still runs when the step fires: it will not ring them again "
        "(its delivery will read covered); null otherwise",
    )
    next_step_queued_call_at: datetime | None = Field(
        None,
        description="the next step is a call to next_step_to, for whom a call is queued, still to ring "
        "(held by quiet hours, or being retried), at this time: at or after next_step_due_at the step "
        "joins it, and that call speaks of this wait too; before it, within the policy's "
        "call_cooldown_s, that call will have rung and the cooldown covers the step; either way no "
        "second call; null otherwise",
    )
    next_step_queued_call_why: Literal["quiet_hours", "retrying"] | None = Field(
        None,
        description="why that call rings then, not at once: quiet_hours, the policy's quiet hours hold "
        "it; retrying, the voice provider refused it and it is tried again then; null otherwise",
    )
    snoozed_until: datetime | None = Field(
        None, description="until when its reminders are held back; null when not snoozed, or no longer"
    )
    snoozed_by: str = Field(
        "",
        description='who snoozed it, by the name they were signed in as ("": not snoozed now, or before'
        " Siyu kept it)",
    )
    snoozed_at: datetime | None = Field(None, description="when it was snoozed (null: not snoozed now)")


class StepBreaches(BaseModel):
    step: int = Field(description="0-based: step 0 is the page's 第 1 步")
    action: Action
    count: int


class AgentBreaches(BaseModel):
    staff_userid: str
    staff_name: str
    count: int


class Summary(BaseModel):
    count: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None


class WithinStep(BaseModel):
    step: int = Field(description="0-based: step 0 is the page's 第 1 步")
    delay_s: int = Field(description="the tenant policy's delay for the step (else the shortest)")
    delays_s: list[int] = Field(
        default_factory=list,
        description="every delay the step has in the policies the day's waits ran under (the tenant's on a"
        " day without waits)",
    )
    answered: int = Field(
        description="the day's waits answered within the step's delay, each measured by the policy it ran"
        " under with the steps, clock and special dates (holidays, make-up workdays) in force when the wait"
        " ended, so later edits leave past days as they were (business time where it counts only business"
        " hours)"
    )
    answered_late: int = Field(0, description="the day's waits answered, but after the step's delay")
    outlived: int = Field(
        0,
        description="waits of the day that ran past the delay unanswered: still open, or closed without"
        " a reply (marked no reply needed, the contact ended, archiving declined) only after it",
    )
    share: float | None = Field(description="answered / (answered + answered_late + outlived)")


class AgentResponse(Summary):
    staff_userid: str
    staff_name: str
    business: Summary | None = Field(
        description="the same by each wait's policy's clock (business time where it counts only that);"
        " null when no wait of the day ran under such a policy"
    )


class TeamFigures(BaseModel):
    department: int | None = Field(
        description="the WeCom department id of the team: each agent counted in their main department"
        " (else their first) as it is now; null for agents in none"
    )
    department_name: str
    waiting: int | None = Field(
        description="the team's customers waiting now; null on a past day's board, which lists the teams"
        " whose waits began or whose steps fired that day"
    )
    breaches: int = Field(description="escalation steps fired that day on the team's waits")
    first_response: Summary
    first_response_business: Summary | None = Field(
        None,
        description="the same by each wait's policy's clock (business time where it counts only that);"
        " null when no wait of the day ran under such a policy",
    )
    first_step_share: float | None = Field(
        description="the share of the team's waits of the day answered within the first step"
        " (as within_steps)"
    )


class ProblemCustomer(BaseModel):
    conversation_id: int
    name: str = Field(description="as the board names them: the customer's name, else their external userid")


class DeliveryProblem(BaseModel):
    kind: Literal["card", "call", "step"] = Field(
        description="step: a step that found nobody to tell, or was skipped as due too long ago"
    )
    recipient: str = Field(description="whom it was sent to; for a step, the agent whose customer waited")
    target: str = Field("", description="for a step: whom it was for (leader, contact)")
    recipient_name: str
    at: datetime
    status: str = Field(
        description="card: retrying | given_up; call: skipped | failed | never (its policy's shifts all"
        " lie in its quiet hours: it did not ring); step: nobody | stale (due longer"
        " ago than the policy's stale_after_s when its turn came: not sent)"
    )
    attempts: int | None
    next_try_at: datetime | None
    error: str
    customers: list[ProblemCustomer] = Field(
        description="the customers it was about (a card or a call may tell of several), longest waiting"
        " first: those whose chat the caller may open"
    )
    customers_total: int = Field(description="how many customers it was about, the caller's or not")


class BoardOut(BaseModel):
    now: datetime
    waiting: list[WaitingRow] = Field(
        description="`limit` of those waiting now, longest first (the first page, or the one `after` /"
        " `before` asked for)"
    )
    waiting_total: int = Field(description="how many wait now, all of them (the viewer's scope)")
    next: str | None = Field(
        description="pass as `after` for the waiting after this page; null on the last page"
    )
    prev: str | None = Field(description="pass as `before` for the waiting before it; null on the first")
    breaches_by_step: list[StepBreaches]
    breaches_by_agent: list[AgentBreaches]
    breaches_total: int
    first_response: Summary = Field(description="in wall time, nights and holidays included")
    first_response_business: Summary | None = Field(
        description="by each wait's policy's clock: business time where it counts only that (a Friday"
        " 17:59 question answered Monday 09:01 took 2 minutes), else wall time; null when no answered"
        " wait of the day ran under such a policy"
    )
    first_response_by_agent: list[AgentResponse]
    within_steps: list[WithinStep] = Field(
        description="one per step of the policies the day's waits ran under (the tenant's steps on a day"
        " without waits): a team under a department's one-step policy has one"
    )
    by_team: list[TeamFigures] = Field(
        description="the same figures per team, busiest first (`waiting` counts all, not this page)"
    )
    day: date = Field(description="the day the breaches, responses and deliveries are of")
    delivery_problems: list[DeliveryProblem] = Field(
        description="escalations that did not reach their person that day, the newest 100, newest first"
    )
    delivery_problems_by_status: dict[str, int] = Field(
        description="how many of the day's delivery problems there are of each status: all of them,"
        " listed or not"
    )
    calls_held: list[datetime] = Field(
        description="when each call that quiet hours hold back now will be placed, soonest first: its"
        " step fired (and counts in breaches_by_step), nobody has been rung yet"
    )
