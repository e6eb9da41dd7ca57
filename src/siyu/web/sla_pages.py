"""The SLA pages: the board (/sla: who waits, today's breaches, first-response figures; an
agent sees their own waits, a supervisor their team's), snoozing a wait, the tenant's
policy (/sla/policy, admins: steps, business hours, holidays, extra dates, escalation
contact) and departments' own policies (the list and which policy each department follows
on /sla/policy; /sla/policy/departments/{id} to add, edit or remove one, admins).
Server-rendered, Chinese first; every form carries the CSRF token."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from siyu.conversations import queries as conversation_queries
from siyu.conversations import service as conversation_service
from siyu.conversations.queries import customer_title, wait_text
from siyu.customers import queries as customer_queries
from siyu.customers.models import Customer
from siyu.db.database import retry_deadlocks
from siyu.db.versions import ABSENT, FORM_NOT_DRAWN, version_of, well_formed
from siyu.sla import service
from siyu.sla.api import (
    PROBLEMS_LISTED,
    FutureDay,
    apply_department_policy,
    apply_policy,
    board_for,
    department_policy_out,
    policies_out,
    policy_out,
    snooze_for,
)
from siyu.sla.calendar import official_calendar_gap, parse_day
from siyu.sla.models import SlaCalendarChange, SlaCalendarDay, SlaPolicy, SlaWait
from siyu.sla.names import (
    ACTION_NAMES,
    DELIVERY_NAMES,
    TARGET_NAMES,
    delivery_name,
    step_phrase,
    whole_seconds,
)
from siyu.sla.schemas import (
    MAX_SNOOZE_MIN,
    MAX_STALE_AFTER_S,
    MIN_STALE_AFTER_S,
    DepartmentPolicyIn,
    PolicyIn,
)
from siyu.tenancy import timezones
from siyu.web.api_errors import ClearNotFound
from siyu.web.auth import PageViewer, Viewer, require_admin, safe_next
from siyu.web.stale_notice import changed_since, named_for, saved_by_viewer
from siyu.web.templating import note_waiting, of_the_day, render, soon

router = APIRouter(include_in_schema=False)

SNOOZE_CHOICES = (15, 30, 60)
DONE = {
    "snoozed": "已暂缓提醒。",
    "not_waiting": "这个会话已经不在等待回复了。",
    # a row's 无需回复, said as the chat says it (siyu.web.conversation_pages)
    "dismissed": "已标记为无需回复。",
    "changed": "客户在你打开页面后又发了消息，没有标记：请看过新消息再决定。",
    "snooze_changed": "客户在你打开页面后又发了消息，没有暂缓：请看过新消息再决定。",
    "not_its_message": "表单里的消息不是这个会话的，没有标记：请看过页面再点一次。",
    # the tenant's policy saved: what it means for those waiting, in the one case that applies
    "saved": "策略已保存：新的等待按它计时；正在等待的，已排好的下一步不变，之后各步按新策略。",
    "saved_hours": "策略已保存，改为只计工作时间：正在等待的客户，下一步提醒按工作时间重排。",
    "saved_shifts": "策略已保存，班次或节假日已改：正在等待的客户，下一步提醒按新的工作时间重排。",
    "saved_wallclock": "策略已保存，改回按自然时间计：正在等待的客户，下一步提醒按自然时间重排。",
    "day_added": "日期已保存。按工作时间计时、正在等待的客户，下一步提醒已按新日历重排。",
    "days_added": "这些日期已保存。按工作时间计时、正在等待的客户，下一步提醒已按新日历重排。",
    "day_now_workday": "已改为上班（原是放假）。按工作时间计时、正在等待的客户，下一步提醒已按新日历重排。",
    "day_now_holiday": "已改为放假（原是上班）。按工作时间计时、正在等待的客户，下一步提醒已按新日历重排。",
    "day_removed": "日期已删除。按工作时间计时、正在等待的客户，下一步提醒已按新日历重排。",
    # a department's policy saved: the same cases, for its members' waits
    "department_saved": (
        "部门策略已保存：其成员新的等待按它计时；正在等待的，已排好的下一步不变，之后各步按新策略。"
    ),
    "department_saved_hours": (
        "部门策略已保存，改为只计工作时间：其成员正在等待的客户，下一步提醒按工作时间重排。"
    ),
    "department_saved_shifts": (
        "部门策略已保存，班次或节假日已改：其成员正在等待的客户，下一步提醒按新的工作时间重排。"
    ),
    "department_saved_wallclock": (
        "部门策略已保存，改回按自然时间计：其成员正在等待的客户，下一步提醒按自然时间重排。"
    ),
    # its first own policy, while its members followed an ancestor's or the tenant's: their
    # waits keep that one to the end
    "department_added": "部门策略已保存：其成员新的等待按它计时；正在等待的，仍按原来的策略提醒。",
    "department_removed": (
        "部门策略已删除，其成员改用上级部门或全公司的策略；正在等待的，已排好的下一步不变，之后各步按新策略；"
        "新策略的计时方式（是否只计工作时间、班次、节假日）不同的，下一步按它重排。"
    ),
}
# Said after "saved" when the steps were typed out of order (they run in order of their delays).
REORDERED = "步骤已按分钟数从少到多排列。"
# A delay above 0 that rounds to no whole second (0.001 minutes): refused with this, not as
# "not a number".
_UNDER_A_SECOND = -2
_NEGATIVE = -3  # a delay typed with a minus: said so, not "not a number"


def _duration(seconds: float | None) -> str:
    """The board's durations in words (3 分 12 秒, 1 小时 5 分): "23:20" beside the clock
    times on the same page read as a time of day. Whole seconds rounded up (whole_seconds)."""
    return "—" if seconds is None else wait_text(whole_seconds(seconds))


def _minutes(seconds: int) -> str:
    """A delay in minutes for the policy form, exactly enough that saving it unchanged keeps
    its seconds (four decimals: 100 s is 1.6667, 600,010 s is 10000.1667)."""
    return f"{seconds / 60:.4f}".rstrip("0").rstrip(".")


def _hours(seconds: int) -> str:
    """The stale limit for the policy form's field, in hours where two decimals say it (6, 0.5,
    1.25), else in minutes, said so (20分钟: it read 0.3333), else in hours exactly enough that
    saving it unchanged keeps its seconds (four decimals: within 0.18 s, which rounding takes back)."""
    if (seconds * 100) % 3600 == 0:
        return f"{seconds / 3600:.2f}".rstrip("0").rstrip(".")
    if seconds % 60 == 0:
        return f"{seconds // 60}分钟"
    return f"{seconds / 3600:.4f}".rstrip("0").rstrip(".")


def _stale_text(seconds: int) -> str:
    """The stale limit in words, in the unit the form asks for (hours; 30 分钟 under one)."""
    shown = _hours(seconds)
    if shown.endswith("分钟") or (seconds < 3600 and seconds % 60 == 0):
        return f"{seconds // 60} 分钟"  # (not 100分钟 小时)
    return f"{shown} 小时"


def _delay(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600} 小时"
    if seconds % 60 == 0:
        return f"{seconds // 60} 分钟"
    return f"{seconds} 秒"


# ---------------------------------------------------------------- the board


# The board lists this many waiting customers (the longest waits); the rest are counted.
BOARD_ROWS = 200
MAX_DAYS_AT_ONCE = 31  # a holiday, with the weekends around it, in one go
DELIVERED = DELIVERY_NAMES


@router.get("/sla", response_class=HTMLResponse)
def sla_board(request: Request, viewer: PageViewer):
    rt = request.app.state.rt
    try:
        day = parse_day(request.query_params["day"]) if request.query_params.get("day") else None
    except ValueError as exc:
        raise HTTPException(422, f"日期无效：{exc}") from None
    now = rt.now()
    with rt.db.tenant_snapshot(viewer.tenant_id) as s:
        try:
            board = board_for(s, viewer, now, day, limit=BOARD_ROWS, problems=PROBLEMS_LISTED)
        except FutureDay as exc:
            raise HTTPException(422, f"日期无效：{exc}") from None
        zone = service.tenant_timezone(s)
        tz = ZoneInfo(zone)
        snoozed = _just_snoozed(s, viewer, request, now)
        dismissed = _just_dismissed(s, viewer, request, now, str(tz))
        who = named_for(s, viewer)  # who snoozed a row: 你 for the viewer's own
    refused = dismissed and request.query_params.get("done") == "changed"  # the row stays: said in it
    today = timezones.today(zone, now)

    def when(at: datetime) -> str:  # (every time the board gives is one to come, but rang's)
        return soon(at, zone, now)

    def rang(at: datetime) -> str:  # a call placed: HH:MM today, else MM-DD HH:MM
        return of_the_day(at, zone, now)

    # the menu's 会话 count, fresh: the same as the heading's (it kept a count up to 15 s old)
    note_waiting(viewer, board["waiting_total"])
    is_today = board["day"] == today
    # another year's: say which. A date is set off by a space from the words after it (12-06 超时,
    # 12-06 才回复), as 今日 is not; the template puts the one before it (不是 12-06 的)
    day_format = "%m-%d " if board["day"].year == today.year else "%Y-%m-%d "
    return render(
        request,
        "sla_board.html",
        {
            "b": board,
            "delivered": DELIVERED,
            "went": delivery_name,  # a fired step's, by its action: a card 未发, a call 未打
            "trouble": ("retrying", "given_up", "failed", "skipped", "never"),
            "calm": ("snoozed", "ended"),
            "when": when,
            "rang": rang,
            "is_today": is_today,
            "day_name": "今日" if is_today else board["day"].strftime(day_format),
            "today_iso": today.isoformat(),
            "snooze_choices": SNOOZE_CHOICES,
            "actions": ACTION_NAMES,
            "targets": TARGET_NAMES,
            "step_phrase": step_phrase,
            "duration": _duration,
            "delay": _delay,
            "who": who,
            "done": _snoozed_note(request, snoozed, when) if snoozed else dismissed or _done(request),
            # said in the row snoozed, where the page comes back to (at the top, on a phone, it
            # was out of sight); at the top where the row is not on the board
            "done_row": _on_board(request, board, "snoozed" if snoozed else "dismissed" if refused else ""),
            # a row marked 无需回复 leaves the board: said where it was, above the row after it
            # and so does one answered meanwhile (a snooze or 无需回复 on it was too late)
            "done_before": _on_board(request, board, "gone")
            if (dismissed and not refused) or request.query_params.get("done") == "not_waiting"
            else None,
            "done_warns": request.query_params.get("done") in _UNCHANGED,
        },
    )


_UNCHANGED = (
    "not_waiting",
    "snooze_kept",
    "changed",
    "snooze_changed",
    "not_its_message",
)  # said as a warning


def _on_board(request: Request, board: dict, param: str) -> int | None:
    """The row of the board the address names (?snoozed=, ?dismissed=, ?gone=: a conversation),
    None when it names none listed."""
    typed = request.query_params.get(param, "") if param else ""
    return next((w["conversation_id"] for w in board["waiting"] if str(w["conversation_id"]) == typed), None)


def _snoozed_note(request: Request, snoozed: tuple[str, datetime, str], when) -> str:
    name, until, by = snoozed
    if request.query_params.get("done") == "snooze_kept":  # another's longer snooze stands
        return f"{name} 的提醒已由 {by or '他人'} 暂缓至 {when(until)}，比你选的更久，保持不变。"
    return f"已暂缓 {name} 的提醒至 {when(until)}。"


def _just_snoozed(s, viewer: Viewer, request: Request, now: datetime) -> tuple[str, datetime, str] | None:
    """Whose reminders a snooze from the board just held back, and until when (?snoozed=, the
    conversation): the banner names them. None when the viewer may not read it, or it no
    longer waits."""
    if request.query_params.get("done") not in ("snoozed", "snooze_kept"):
        return None
    named = _named(s, viewer, request.query_params.get("snoozed", ""))
    until = named and service.snoozed_until(s, named[0].id, now)
    if not until:
        return None
    by = s.scalar(
        select(SlaWait.snoozed_by).where(SlaWait.conversation_id == named[0].id, SlaWait.closed_at.is_(None))
    )
    return named[1], until, by or ""


def _just_dismissed(s, viewer: Viewer, request: Request, now: datetime, tz: str) -> str | None:
    """What a row's 无需回复 just did, naming the customer (?dismissed=, the conversation) and,
    refused as they wrote again since the board was drawn, quoting what (?newest=, its msgid).
    None when the viewer may not read it: the banner then says it without them."""
    done = request.query_params.get("done")
    if done not in ("dismissed", "changed"):
        return None
    named = _named(s, viewer, request.query_params.get("dismissed", ""))
    if named is None:
        return None
    conversation, name = named
    if done == "dismissed":
        return f"已将 {name} 的消息标记为无需回复。"
    said = conversation_queries.message_said(s, conversation.id, request.query_params.get("newest", ""))
    return wrote_again(name, said, tz, now)


def wrote_again(name: str, said: tuple[str, datetime] | None, tz: str, now: datetime) -> str:
    """A refused 无需回复, on the board and in the chat: who wrote again, what (message_said's,
    quoted) and when, so the agent knows what to read before deciding."""
    if said is None:  # (an address typed or cut short: the message is not found)
        return f"{name} 在你打开页面后又发了消息，没有标记：请看过新消息再决定。"
    quote, when = conversation_queries.said_quote(said, tz, now)
    return f"{name} 在你打开页面后又发了消息「{quote}」（{when}），没有标记：请看过新消息再决定。"


def _named(s, viewer: Viewer, typed: str):
    """The conversation an address names (by id) and its customer as its row named them, the
    member's remark beside the name (王女士（备注：王姐-报价）: the chat on their phone), when the
    viewer may read it; None otherwise."""
    # (² and ① are digits int() refuses; past 2**63, a number the database would refuse)
    if not (typed.isascii() and typed.isdigit()) or int(typed) >= 2**63:
        return None
    conversation = conversation_queries.get_conversation(s, viewer, int(typed))
    if conversation is None:
        return None
    customer = s.get(Customer, conversation.customer_id) if conversation.customer_id else None
    name = customer_title(customer, conversation.external_userid)
    remarks = customer_queries.remarks_on(s, {customer.id}) if customer else {}
    return conversation, remarked(name, remarks.get((conversation.customer_id, conversation.staff_userid)))


def remarked(name: str, remark: str | None) -> str:
    """The customer as a notice names them: with the member's remark, as their chat's header
    does (the chat on the member's phone)."""
    return f"{name}（备注：{remark}）" if remark else name


def board_dismissed(back: str, gone: str, conversation_id: int, done: str, newest: str) -> str:
    """Where a row's 无需回复 comes back to on the board (`back`, with the row's #anchor), and
    what the board then says: marked, its row is gone: said where it was, above the row after
    it (`gone`, that row's #anchor); refused, in its row (the customer wrote again) or at the top."""
    back, _, row = back.partition("#")
    sep = "&" if "?" in back else "?"
    if done == "not_waiting":  # answered meanwhile: its row is gone too, said where it was
        return _said_where_it_was(f"{back}{sep}done={done}", gone)
    said = f"{back}{sep}done={done}&dismissed={conversation_id}"
    if done == "dismissed":
        return _said_where_it_was(said, gone)
    if newest:
        said += "&" + urlencode({"newest": newest})
    # refused: in its row where the board tells it there (the customer wrote again), else at the
    # top: the page comes back to where it is said, not to a row that says nothing
    return f"{said}#w{conversation_id}" if done == "changed" else f"{said}#done"


def _said_where_it_was(address: str, gone: str) -> str:
    """The board's address for a row that left it (marked 无需回复, or answered meanwhile): the
    notice above the row after it (`gone`, its #anchor), else at the top (the page had come back
    to the next row, the notice out of sight at the top of the board)."""
    after = gone[2:] if re.fullmatch(r"#w\d{1,19}", gone) else ""
    return f"{address}{f'&gone={after}' if after else ''}#done"


@router.post("/conversations/{conversation_id}/snooze")
async def snooze_page(request: Request, viewer: PageViewer, conversation_id: int):
    """The 暂缓 buttons (15/30/60 min) on the board; the form carries the CSRF token."""
    form = await request.form()
    try:
        minutes = int(str(form.get("minutes", "")))
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= MAX_SNOOZE_MIN:
        raise HTTPException(422, "暂缓时长无效 / invalid snooze minutes")
    back, _, row = safe_next(str(form.get("next", "")), "/sla").partition("#")
    gone = str(form.get("gone", ""))
    shown = str(form.get("msgid", "")).strip()[:128] or None  # (a form from before it was carried: none)
    rt = request.app.state.rt

    def run() -> dict | None:
        with rt.db.tenant_session(viewer.tenant_id) as s:
            return snooze_for(s, viewer, conversation_id, minutes, rt.now(), shown)

    sep = "&" if "?" in back else "?"
    try:
        found = await run_in_threadpool(retry_deadlocks, run)
    except (conversation_service.WroteAgain, conversation_service.NotItsMessage) as refused:
        # the customer wrote again since the page was drawn: nothing held back, said in the
        # row (the board) or atop the chat, whose new message shows now
        done = "snooze_changed" if isinstance(refused, conversation_service.WroteAgain) else "not_its_message"
        return RedirectResponse(f"{back}{sep}done={done}#w{conversation_id}", 303)
    if found is None:
        raise HTTPException(404, "not found")
    done = ("snooze_kept" if found["kept_until"] else "snoozed") if found["snoozed"] else "not_waiting"
    if found["snoozed"] and urlsplit(back).path == "/sla":  # the board's banner says whose; the chat shows it
        done += f"&snoozed={conversation_id}"
    # back at the row snoozed (the top of a 200-row board was far from it); answered meanwhile,
    # its row is gone: said where it was, on the board
    if not found["snoozed"] and urlsplit(back).path == "/sla":
        return RedirectResponse(_said_where_it_was(f"{back}{sep}done={done}", gone), 303)
    anchor = f"#{row}" if _ANCHOR.fullmatch(f"#{row}") else ""
    return RedirectResponse(f"{back}{sep}done={done}{anchor}", 303)


_ANCHOR = re.compile(r"#[A-Za-z][\w-]{0,40}")


# ---------------------------------------------------------------- the policy


def _policy_page(
    request: Request,
    viewer: Viewer,
    error: str = "",
    form: dict | None = None,
    status=200,
    day_error: str = "",
    day_form: dict | None = None,
    version: str | None = None,
    stale: _Stale | None = None,
):
    """The policy page; `error` and `form` for the policy form refused, `day_error` and
    `day_form` (day, kind, note as typed) for the special-date form, shown beside it.
    `version`: the one the refused form was drawn from (kept, so that fixing a typo does not
    take in a save made meanwhile unseen); `stale`: the form was refused for one."""
    now = request.app.state.rt.now()
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        current = policy_out(s)
        today = timezones.today(service.tenant_timezone(s), now)
        staff = [(m.userid, m.name) for m in customer_queries.active_staff(s)]
        listed = policies_out(s)
        removed = _days_removed(s, {d["day"] for d in current["calendar_days"]})
        who = named_for(s, viewer)
    synced = {d["wecom_id"] for d in listed["departments"]}
    contact_gone = _contact_gone(current, staff)
    top = [d for d in listed["departments"] if d["depth"] == 0]
    own = {p["department_wecom_id"]: _policy_text(p, dict(staff)) for p in listed["policies"][1:]}
    # what each 删除 beside it deletes: one another admin changed since is not deleted unseen
    versions = {p["department_wecom_id"]: _policy_version(p) for p in listed["policies"][1:]}
    shown = form or {
        **current,
        "shifts_text": "\n".join(f"{a}-{b}" for a, b in current["shifts"]),
    }
    # at least five rows, two of them blank (a policy whose steps were all cleared had come back
    # with two rows only)
    blank = {"delay_s": None, "action": "app_message", "target": "agent"}
    steps = list(shown["steps"]) + [blank] * max(2, 5 - len(shown["steps"]))
    return render(
        request,
        "sla_policy.html",
        {
            "p": current,
            "never_rings": service.calls_never_placed_in(current),
            "f": shown,
            "minutes": _minutes,
            "hours": _hours,
            "steps": steps[: service.MAX_STEPS],
            "staff": staff,
            "contact_gone": contact_gone,
            "actions": ACTION_NAMES,
            "targets": TARGET_NAMES,
            "error": error,
            **_drawn_from(current, version, stale, dict(staff)),
            "done": _done(request),
            "done_at": _done_at(request),
            "today": today.isoformat(),  # the tenant's, not the server's
            "day_error": day_error,
            "day_form": day_form or {"day": today.isoformat(), "until": "", "kind": "holiday", "note": ""},
            "calendar_gap": official_calendar_gap(today),
            "days_removed": removed,
            "who": who,
            "depts": listed["departments"],
            "own": own,
            "versions": versions,
            "orphans": [p for p in listed["policies"][1:] if p["department_wecom_id"] not in synced],
            "addable": [d for d in listed["departments"] if d["policy"] != "own"],
            # top-level departments with their own policy: the tenant's covers none of their members
            "top_own": [d["name"] for d in top if d["policy"] == "own"],
            "tenant_unused": bool(top) and all(d["policy"] == "own" for d in top),
        },
        status_code=status,
    )


DAYS_REMOVED_SHOWN = 5


def _days_removed(s, days_now: set) -> list[SlaCalendarChange]:
    """The special dates removed last (and not set again since), newest first, with who
    removed them: a date gone from the list is otherwise a mystery to the admin who added it."""
    c = SlaCalendarChange
    newest = select(c.day, func.max(c.id).label("last")).group_by(c.day).subquery()  # each date's last
    last_removals = select(c).join(newest, c.id == newest.c.last).where(c.kind == "")
    rows = s.scalars(last_removals.order_by(c.changed_at.desc(), c.id.desc()).limit(DAYS_REMOVED_SHOWN))
    return [r for r in rows if r.day not in days_now]  # (one set again has a later change)


def _contact_gone(policy: dict, staff: list[tuple[str, str]]) -> str:
    """The policy's escalation contact when they are no longer an active member (they left the
    corp or the app's visible range): reached no more, which the form says, before the admin
    wonders why it shows 无 and refuses a contact step."""
    contact = policy.get("escalation_contact") or ""
    return contact if contact and contact not in {userid for userid, _ in staff} else ""


DEFAULT_COOLDOWN_S = service.PolicyView.call_cooldown_s  # (the list names what is not the default)


def _policy_text(p: dict, names: dict[str, str], full: bool = False) -> str:
    """A policy in a line: its steps, and what else differs from a plain clock (people by
    name, as the form's choices show them). `full`: every field the form edits, for the
    policy as stored beside a refused form (saving the form again sets each of them)."""
    enabled = p.get("enabled", True)
    parts = [_steps_text(p["steps"]) or "无提醒步骤"] if enabled else ["已关闭提醒"]
    if full and not enabled:
        parts.append(f"步骤 {_steps_text(p['steps']) or '无'}")
    if p.get("business_hours_only"):
        parts.append("只计算工作时间（" + "、".join(f"{a}-{b}" for a, b in p.get("shifts", [])) + "）")
    if full:
        parts.append("按国家法定节假日和调休" if p["public_holidays"] else "不按国家法定节假日和调休")
    if p.get("quiet_hours"):
        parts.append(f"免打扰 {p['quiet_hours'][0]}-{p['quiet_hours'][1]}")
    if p.get("escalation_contact"):
        contact = p["escalation_contact"]
        parts.append(f"升级联系人 {names.get(contact, f'{contact}（已不在职）')}")
    if full or p.get("call_cooldown_s", DEFAULT_COOLDOWN_S) != DEFAULT_COOLDOWN_S:
        parts.append(f"两次电话至少间隔 {_minutes(p['call_cooldown_s'])} 分钟")
    if full or p.get("stale_after_s", service.DEFAULT_STALE_AFTER_S) != service.DEFAULT_STALE_AFTER_S:
        parts.append(f"过期不发 {_stale_text(p['stale_after_s'])}")
    return " · ".join(parts)


def _steps_text(steps: list[dict]) -> str:
    """A policy's steps in a line: 2 分钟 提醒卡片→负责成员；10 分钟 语音电话→负责成员."""
    return "；".join(
        f"{_delay(s['delay_s'])} {ACTION_NAMES.get(s['action'], s['action'])}→"
        f"{TARGET_NAMES.get(s['target'], s['target'])}"
        for s in steps
    )


@router.get("/sla/policy", response_class=HTMLResponse)
def policy_page(request: Request, viewer: PageViewer):
    require_admin(viewer)
    return _policy_page(request, viewer)


# Pydantic's own words, for an admin filling in the form (the API keeps Pydantic's).
_PLAIN = {
    "greater_than_equal": "请填写 0 或以上的数字 / must be 0 or more",
    "less_than_equal": "超出允许的上限 / too large",
    "int_type": "请填写数字 / must be a number",
    "int_parsing": "请填写数字 / must be a number",
    "literal_error": "取值无效 / not one of the choices",
    "too_long": "太多了 / too many",
}


def _problems(exc: ValidationError) -> str:
    names = {
        "steps": "提醒步骤",
        "shifts": "班次",
        "quiet_hours": "免打扰时段",
        "escalation_contact": "升级联系人",
        "call_cooldown_s": "两次电话至少间隔",
        "stale_after_s": "过期不发",
    }
    out = []
    for err in exc.errors():
        where = names.get(str(err["loc"][0]), str(err["loc"][0])) if err["loc"] else ""
        if len(err["loc"]) > 1 and err["loc"][0] == "steps":
            where += f" 第 {int(err['loc'][1]) + 1} 步"
        msg = _PLAIN.get(err["type"], str(err["msg"]).removeprefix("Value error, "))
        # the validator names the field too (班次：班次无效 / invalid shifts: ...): once is enough
        msg = _NAMED_AGAIN.sub("", msg)
        if err["loc"] and err["loc"][-1] == "delay_s":  # the form asks for minutes
            if err["type"] == "less_than_equal":
                most = err["ctx"]["le"] / 60
                msg = f"最多 {most:g} 分钟（{most / 1440:g} 天）/ at most {most:g} minutes"
            elif err["type"] == "greater_than_equal" and err.get("input") == _UNDER_A_SECOND:
                msg = "不足 1 秒：填 0 表示立即，或至少 0.02 分钟 / under a second: 0 for at once, or 0.02+"
            elif err["type"] == "greater_than_equal" and err.get("input") == _NEGATIVE:
                msg = "不能为负数 / cannot be negative"
            elif err["type"] == "greater_than_equal":
                msg = "请填写分钟数，如 2 或 0.5 / minutes as a number, such as 2 or 0.5"
        if err["loc"] and err["loc"][0] == "call_cooldown_s":  # the form asks for minutes
            msg = "请填写 1 到 1440 之间的分钟数 / minutes from 1 to 1440"
        if err["loc"] and err["loc"][0] == "stale_after_s":  # the form asks for hours
            msg = STALE_BOUNDS
        out.append(f"{where}：{msg}" if where and not msg.startswith(where) else msg)
    return "；".join(out)


STALE_BOUNDS = (
    f"请填写 {MIN_STALE_AFTER_S / 3600:g} 到 {MAX_STALE_AFTER_S // 3600} 之间的小时数"
    f"（{MIN_STALE_AFTER_S // 60} 分钟到 {MAX_STALE_AFTER_S // 86400} 天），如 6 或 0.5，也可写 30分钟"
    f" / hours from {MIN_STALE_AFTER_S / 3600:g} to {MAX_STALE_AFTER_S // 3600}"
)
_NAMED_AGAIN = re.compile(r"^(?:班次无效 / invalid shifts|免打扰时段无效 / invalid quiet hours): ")
_MINUTES = re.compile(r"(?=\.?[0-9])[0-9]{0,12}(\.[0-9]{0,6})?")
_TOO_MANY_MINUTES = 10**13  # (more digits than that: refused as over the limit, not as "not a number")
_TOO_MANY_DIGITS = re.compile(r"[0-9]{13,}(\.[0-9]*)?")
_MINUTE_UNIT = re.compile(r"\s*(?:分钟|分|min|mins|minutes?)$")
_HOUR_UNIT = re.compile(r"\s*(?:小时|个小时|时|h|hrs?|hours?)$", re.I)


def _form_text(value) -> str:
    """What an admin typed, as the policy reads it: an input method's full-width digits and
    colons (９：００) in ASCII."""
    return unicodedata.normalize("NFKC", str(value or "")).strip()


# A shift as people type it: 09:00-12:00, 9:00～12:00, 09:00 至 12:00, 0900-1200; shifts apart by
# lines, spaces, commas, 、 or ；
_A_SHIFT = re.compile(r"(\d{1,2}:\d{2}|\d{4})\s*(?:-|~|—|–|至|到)\s*(\d{1,2}:\d{2}|\d{4})")
_BETWEEN_SHIFTS = re.compile(r"[\s,;、]*")


def _hh_mm(typed: str) -> str:
    return typed if ":" in typed else f"{typed[:2]}:{typed[2:]}"


def _read_shifts(text: str) -> list[list[str]]:
    """The shifts typed in the form. What is not a shift is kept as one, for the policy's own
    check to refuse it by name."""
    shifts, at = [], 0
    for found in _A_SHIFT.finditer(text):
        if not _BETWEEN_SHIFTS.fullmatch(text[at : found.start()]):
            shifts.append([text[at : found.start()].strip(" ,;、"), ""])
        shifts.append([_hh_mm(found[1]), _hh_mm(found[2])])
        at = found.end()
    if not _BETWEEN_SHIFTS.fullmatch(text[at:]):
        shifts.append([text[at:].strip(" ,;、"), ""])
    return shifts


def _read_policy_form(form) -> tuple[dict, dict]:
    """The form as shown again on error, and the PolicyIn fields."""
    steps, shown_steps = [], []
    for delay, action, target in zip(
        form.getlist("step_delay_min"), form.getlist("step_action"), form.getlist("step_target"), strict=False
    ):
        typed = str(delay).strip()
        if not typed:
            continue
        # minutes as people write them (2, 0.5, .5, ２, 2分钟); not 1e3, inf or NaN, which float() takes
        delay = _MINUTE_UNIT.sub("", _form_text(typed).replace("。", "."))
        delay_s = -1  # refused below, naming the step
        if _MINUTES.fullmatch(delay):
            minutes = float(delay)
            seconds = round(minutes * 60)
            delay_s = seconds if seconds > 0 or minutes == 0 else _UNDER_A_SECOND  # 0.001 is not "at once"
        elif _TOO_MANY_DIGITS.fullmatch(delay):
            delay_s = _TOO_MANY_MINUTES * 60
        elif delay.startswith("-") and _MINUTES.fullmatch(delay[1:].strip()):
            delay_s = _NEGATIVE
        steps.append({"delay_s": delay_s, "action": str(action), "target": str(target)})
        # shown again as typed, so that a refused step is not emptied
        shown_steps.append(
            {"delay_s": delay_s if delay_s >= 0 else None, "typed": typed, "action": action, "target": target}
        )
    shifts_text = _form_text(form.get("shifts", ""))
    shifts = _read_shifts(shifts_text)
    quiet = [_form_text(form.get("quiet_start", "")), _form_text(form.get("quiet_end", ""))]
    cooldown = _form_text(form.get("call_cooldown_min", ""))
    stale = _form_text(form.get("stale_after_h", ""))
    fields = {
        "enabled": form.get("enabled") == "1",
        "steps": steps,
        "business_hours_only": form.get("business_hours_only") == "1",
        "shifts": shifts,
        "public_holidays": form.get("public_holidays") == "1",
        "escalation_contact": str(form.get("escalation_contact", "")).strip(),
        "quiet_hours": quiet if any(quiet) else [],
    }
    if cooldown:  # (left empty: kept as it is)
        minutes = _MINUTE_UNIT.sub("", cooldown)
        fields["call_cooldown_s"] = round(float(minutes) * 60) if _MINUTES.fullmatch(minutes) else -1
    if stale:  # (left empty: kept as it is)
        fields["stale_after_s"] = _stale_seconds(stale)
    shown = {
        **fields,
        "steps": shown_steps,
        "shifts_text": shifts_text,
        "call_cooldown_typed": cooldown,
        "stale_after_typed": stale,
    }
    return shown, fields


def _stale_seconds(typed: str) -> int:
    """The stale limit typed in hours (6, 0.5, 6小时) or, with the unit, in minutes (30分钟);
    -1 for what is no number, for PolicyIn to refuse naming the field."""
    number = _HOUR_UNIT.sub("", typed.replace("。", "."))
    per = 3600
    if _MINUTE_UNIT.search(number):
        number, per = _MINUTE_UNIT.sub("", number), 60
    if _TOO_MANY_DIGITS.fullmatch(number):
        return MAX_STALE_AFTER_S + 1
    return round(float(number) * per) if _MINUTES.fullmatch(number) else -1


@router.post("/sla/policy")
async def policy_submit(request: Request, viewer: PageViewer):
    require_admin(viewer)
    form = await request.form()
    shown, fields = _read_policy_form(form)
    drawn = _drawn_version(form)
    if drawn is not None and not well_formed(drawn):
        return await run_in_threadpool(
            _policy_page, request, viewer, FORM_NOT_DRAWN, shown, 400, version=drawn
        )
    try:
        body = PolicyIn(**fields)
    except ValidationError as exc:
        problem = _problems(exc)
        return await run_in_threadpool(_policy_page, request, viewer, problem, shown, 422, version=drawn)
    rt = request.app.state.rt

    def save() -> tuple[str, str]:
        try:
            with rt.db.tenant_session(viewer.tenant_id) as s:
                service.hold_policy(s, 0)
                was = policy_out(s)
                apply_policy(s, body, rt.now(), viewer.display_name)
                became = policy_out(s)
                _check_drawn_from(s, viewer, drawn, was, became)  # (raising rolls the save back)
        except service.PolicyError as exc:
            return str(exc), ""
        return "", _clock_change(_clock(was), _clock(became))

    try:
        problem, done = await run_in_threadpool(save)
    except _Stale as exc:
        return await run_in_threadpool(_policy_page, request, viewer, "", shown, 409, stale=exc)
    if problem:
        return await run_in_threadpool(_policy_page, request, viewer, problem, shown, 422, version=drawn)
    return RedirectResponse(f"/sla/policy?done={done}{_reordered(fields)}", 303)


# ---------------------------------------------------------------- a form drawn before another save

# What the form edits, by the label it shows each under, in its order.
_FORM_FIELDS = {
    "enabled": "启用超时提醒",
    "steps": "提醒步骤",
    "business_hours_only": "只计算工作时间",
    "shifts": "班次",
    "public_holidays": "按国家法定节假日和调休",
    "escalation_contact": "升级联系人",
    "quiet_hours": "免打扰时段",
    "call_cooldown_s": "两次电话至少间隔",
    "stale_after_s": "过期不发",
}


class _Stale(Exception):
    """A form refused: the policy was saved or removed by someone else since it was drawn.
    `was`: the policy as stored then (None: removed); `became`: what saving the form would
    have made of it (None for a removal refused)."""

    def __init__(self, kind: str, was: dict | None, became: dict | None = None, version: str | None = None):
        super().__init__(kind)
        self.kind = kind  # changed | removed | not_removed (a removal refused)
        self.was, self.became = was, became
        self.version = version  # what the refused form is drawn again with (default: was's)
        self.mine, self.tz = False, ""  # (set by whose(): the viewer's own save, and their zone)

    def whose(self, session, viewer: Viewer) -> _Stale:
        """Whether the save it missed was the viewer's own (from another tab), told apart while
        the session that refused it is open."""
        self.mine = self.was is not None and saved_by_viewer(session, viewer, self.was["updated_by"])
        self.tz = viewer.timezone  # (the zone the pages show times in)
        return self


def _policy_version(policy: dict | None) -> str:
    """The version of what the form edits (fields it has no input for, set through the API,
    are not the form's to undo)."""
    return version_of(None if policy is None else {k: policy[k] for k in _FORM_FIELDS})


def _drawn_version(form) -> str | None:
    """The version the submitted form was drawn from; None from a client that sends none (a
    script posting the form): saved as before, the last save wins."""
    typed = str(form.get("version", "")).strip()
    return typed[:40] or None


def _check_drawn_from(s, viewer: Viewer, drawn: str | None, was: dict | None, became: dict | None) -> None:
    """Raises _Stale when the policy was saved by someone else after the form was drawn and
    this save would change it again. A save that leaves it as it is now is let through: a
    double click on 保存 (the first click saved this very form) or the same change made by
    two admins at once; refusing it would say "not saved" of what is saved."""
    if drawn is None or drawn == _policy_version(was):
        return
    if was is not None and became is not None and _policy_version(became) == _policy_version(was):
        return
    raise _Stale("removed" if was is None else "changed", was, became).whose(s, viewer)


def _following_version(source: int, policy: dict) -> str:
    """The version of a department's form filled in from the policy it follows (`source`: the
    department whose, 0 the tenant's): a change of that policy, or of which one applies, since
    the form was drawn is a save it would undo (a copy of the old one made its own)."""
    return version_of({"follows": source, **{k: policy[k] for k in _FORM_FIELDS}})


def _placed(s, wecom_id: int) -> service.DepartmentPolicy | None:
    """The department among the policies (service.department_policies); None if not synced."""
    return next((d for d in service.department_policies(s) if d.wecom_id == wecom_id), None)


def _followed(s, here: service.DepartmentPolicy | None) -> tuple[int, dict] | None:
    """(source, policy) a department without a policy of its own follows now; None if it has one."""
    if here is None or here.own:
        return None
    source = here.policy_from or 0
    return source, department_policy_out(s, source)


def _check_drawn_following(
    s, viewer: Viewer, drawn: str | None, followed: tuple[int, dict], became: dict, following: bool
) -> None:
    """_check_drawn_from for a department with no policy of its own: a form filled in from
    the one it follows (`following`: the page says so) is stale once that one changed; any
    other was drawn from its own, removed since."""
    now = _following_version(*followed)
    if drawn is None or drawn in (now, ABSENT):  # (ABSENT: drawn before forms told what they followed)
        return
    if following:
        raise _Stale("changed", followed[1], became, version=now).whose(s, viewer)
    raise _Stale("removed", None, became).whose(s, viewer)


def _drawn_from(
    stored: dict | None, version: str | None, stale: _Stale | None, names: dict[str, str]
) -> dict:
    """The form's version and, when it was refused as stale, what is stored now, whole, and
    each field saving the form would change: the other admin's changes it would undo. A
    refused form is drawn again with the version those were read at, so that saving it after
    a look saves (and one saved meanwhile again is refused again)."""
    if stale is None:
        version = version or _policy_version(stored)
        return {
            "version": version,
            "stale": "",
            "stale_notice": "",
            "stored_now": "",
            "stale_fields": [],
        }
    was, became = stale.was, stale.became
    return {
        "version": stale.version or _policy_version(was),
        "stale": stale.kind,
        "stale_notice": _stale_notice(stale),
        "stored_now": _policy_text(was, names, full=True) if was is not None else "",
        "stale_fields": _differences(was, became, names) if was is not None and became is not None else [],
    }


def _stale_notice(stale: _Stale) -> str:
    """Whose save the refused form missed (the viewer's own, from another tab, said so), and
    what became of it."""
    if stale.was is None:
        return ""  # removed: the template says so, naming nobody (who removed it is not kept)
    if stale.kind == "not_removed":
        outcome = "策略没有删除；下面是现在保存的策略，确认仍要删除请再点删除", "it was not deleted"
    else:
        outcome = "你的修改没有保存；下面是你填写的内容，请核对后再保存", "your change was not saved"
    by = stale.was["updated_by"]  # "": saved before who saved was kept
    return changed_since("这份策略", by, stale.mine, stale.was["updated_at"], stale.tz, *outcome)


def _differences(stored: dict, typed: dict, names: dict[str, str]) -> list[str]:
    """现在保存的是 X，你填写的是 Y, for each field of the form where the two differ."""
    return [
        f"{label}：现在保存的是 {_field_text(name, stored[name], names)}，"
        f"你填写的是 {_field_text(name, typed[name], names)}"
        for name, label in _FORM_FIELDS.items()
        if stored[name] != typed[name]
    ]


def _field_text(name: str, value, names: dict[str, str]) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if name == "steps":
        return _steps_text(value) or "无"
    if name == "call_cooldown_s":
        return f"{_minutes(value)} 分钟"
    if name == "stale_after_s":
        return _stale_text(value)
    if name == "escalation_contact":
        return names.get(value, f"{value}（已不在职）") if value else "无"
    if name == "quiet_hours":
        return f"{value[0]}-{value[1]}" if value else "无"
    return "、".join(f"{a}-{b}" for a, b in value) or "无"  # shifts


def _clock(policy: dict) -> tuple:
    """What a policy times waits by: the wall clock (), or its shifts and holidays."""
    if not policy["business_hours_only"]:
        return ()
    return tuple(tuple(shift) for shift in policy["shifts"]), bool(policy["public_holidays"])


def _clock_change(was: tuple, became: tuple) -> str:
    """The "saved" banner for what saving did to the clock, and so to the steps of those waiting."""
    if was == became:
        return "saved"
    return "saved_hours" if not was else "saved_wallclock" if not became else "saved_shifts"


def _done(request: Request) -> str | None:
    """The "saved" banner the address asks for (?done=), with REORDERED where it says so."""
    text = DONE.get(request.query_params.get("done") or "")
    if text and request.query_params.get("sorted") == "1":
        text = f"{text}{REORDERED}"
    return text


def _done_at(request: Request) -> str:
    """The section of the policy page a "saved" banner shows in: the one its redirect lands at
    (#days, #departments), below the long policy form; at the page's top it was out of sight."""
    done = request.query_params.get("done") or ""
    return "days" if done.startswith("day") else "departments" if done.startswith("department") else ""


def _reordered(fields: dict) -> str:
    """ "&sorted=1" when the steps were typed out of the order they run in."""
    delays = [step["delay_s"] for step in fields.get("steps") or []]
    return "&sorted=1" if delays != sorted(delays) else ""


@router.post("/sla/policy/days")
async def policy_day_add(request: Request, viewer: PageViewer):
    require_admin(viewer)
    form = await request.form()
    typed = {k: str(form.get(k, "")) for k in ("day", "until", "kind", "note")}

    def refused(message: str):
        # beside the special-date form, with what was typed (it had gone to the page's top, the
        # note lost and the date back to today)
        return run_in_threadpool(_policy_page, request, viewer, "", None, 422, message, typed)

    try:
        day = parse_day(_form_text(typed["day"]))
        until = parse_day(_form_text(typed["until"])) if _form_text(typed["until"]) else day
    except ValueError as exc:
        return await refused(str(exc))
    if until < day:
        return await refused("“到”的日期应不早于开始日期 / the last day comes before the first")
    if (until - day).days >= MAX_DAYS_AT_ONCE:
        return await refused(f"一次最多添加 {MAX_DAYS_AT_ONCE} 天 / at most {MAX_DAYS_AT_ONCE} days at once")
    kind = typed["kind"]
    if kind not in ("holiday", "workday"):
        return await refused("请选择放假或上班 / choose holiday or workday")
    note = typed["note"].strip()
    if len(note) > service.MAX_DAY_NOTE:  # (cut short, the rest was lost without a word)
        return await refused(
            f"备注最多 {service.MAX_DAY_NOTE} 字 / the note is at most {service.MAX_DAY_NOTE} characters"
        )
    days = [day + timedelta(days=n) for n in range((until - day).days + 1)]

    def save() -> str:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            service.hold_calendar(s)  # (a policy saved meanwhile would time the waits without it)
            were = set(s.scalars(select(SlaCalendarDay.kind).where(SlaCalendarDay.day.in_(days))))
            now = request.app.state.rt.now()
            for d in days:
                service.set_calendar_day(s, d, kind, note, now, viewer.display_name)
            service.follow_the_calendar(s, now)
        if were - {kind}:  # a date that was the other kind: say it changed, not only "saved"
            return f"day_now_{kind}"
        return "day_added" if len(days) == 1 else "days_added"

    done = await run_in_threadpool(save)
    return RedirectResponse(f"/sla/policy?done={done}#days", 303)


@router.post("/sla/policy/days/{day}/remove")
def policy_day_remove(request: Request, viewer: PageViewer, day: str):
    require_admin(viewer)
    try:
        when = parse_day(day)
    except ValueError:
        raise HTTPException(404, "not found") from None
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        service.hold_calendar(s)
        if s.scalar(select(SlaCalendarDay.id).where(SlaCalendarDay.day == when)) is None:
            raise ClearNotFound(f"{when} 不在特殊日期里（可能已删除） / {when} is not a special day")
        now = request.app.state.rt.now()
        service.remove_calendar_day(s, when, now, viewer.display_name)
        service.follow_the_calendar(s, now)
    return RedirectResponse("/sla/policy?done=day_removed#days", 303)


# ---------------------------------------------------------------- department policies


def _department_page(
    request: Request,
    viewer: Viewer,
    wecom_id: int,
    error: str = "",
    form: dict | None = None,
    status=200,
    version: str | None = None,
    stale: _Stale | None = None,
):
    """A department's policy form: its own policy, or (to add one) the policy it follows
    now, filled in. 404 for a department that is neither synced nor has a policy.
    `version` and `stale` as for _policy_page."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        listed = policies_out(s)
        staff = [(m.userid, m.name) for m in customer_queries.active_staff(s)]
        stored = next((p for p in listed["policies"] if p["department_wecom_id"] == wecom_id), None)
        synced = next((d for d in listed["departments"] if d["wecom_id"] == wecom_id), None)
        if wecom_id <= 0 or (stored is None and synced is None):
            raise HTTPException(404, "没有这个部门 / no such department")
        follows, following_version = "", None
        if stored is None:  # to add one: what applies now
            source = synced["policy_department_wecom_id"] or 0
            stored_source = department_policy_out(s, source)
            following_version = _following_version(source, stored_source)
            follows = (
                f"「{synced['policy_department_name']}」的策略"
                if synced["policy"] == "inherited"
                else "全公司策略"
                if synced["policy"] == "tenant"
                else "默认策略"
            )
    current = stored or stored_source
    shown = form or {**current, "shifts_text": "\n".join(f"{a}-{b}" for a, b in current["shifts"])}
    contact_gone = _contact_gone(current, staff)
    # at least five rows, two of them blank (a policy whose steps were all cleared had come back
    # with two rows only)
    blank = {"delay_s": None, "action": "app_message", "target": "agent"}
    steps = list(shown["steps"]) + [blank] * max(2, 5 - len(shown["steps"]))
    dept = {
        "wecom_id": wecom_id,
        "name": synced["name"] if synced else stored["department_name"],
        "own": stored is not None,
        "follows": follows,
        "updated_at": stored["updated_at"] if stored else None,
    }
    return render(
        request,
        "sla_department_policy.html",
        {
            "dept": dept,
            "never_rings": service.calls_never_placed_in(stored) if stored else "",
            "f": shown,
            "minutes": _minutes,
            "hours": _hours,
            "steps": steps[: service.MAX_STEPS],
            "staff": staff,
            "contact_gone": contact_gone,
            "actions": ACTION_NAMES,
            "targets": TARGET_NAMES,
            "error": error,
            **_drawn_from(stored, version or following_version, stale, dict(staff)),
            "done": _done(request),
            "typed": form is not None,  # the form shows what was typed, not a policy filled in
        },
        status_code=status,
    )


@router.get("/sla/policy/departments")
def department_pick(request: Request, viewer: PageViewer):
    """The 添加 form on /sla/policy: to the chosen department's policy form."""
    require_admin(viewer)
    try:
        wecom_id = int(request.query_params.get("department", ""))
    except ValueError:
        return RedirectResponse("/sla/policy#departments", 303)
    return RedirectResponse(f"/sla/policy/departments/{wecom_id}", 303)


@router.get("/sla/policy/departments/{wecom_id}", response_class=HTMLResponse)
def department_policy_page(request: Request, viewer: PageViewer, wecom_id: int):
    require_admin(viewer)
    return _department_page(request, viewer, wecom_id)


@router.post("/sla/policy/departments/{wecom_id}")
async def department_policy_submit(request: Request, viewer: PageViewer, wecom_id: int):
    require_admin(viewer)
    if wecom_id <= 0:
        raise HTTPException(404, "没有这个部门 / no such department")
    form = await request.form()
    shown, fields = _read_policy_form(form)
    drawn = _drawn_version(form)
    following = form.get("follows") is not None  # filled in from the policy it follows
    if drawn is not None and not well_formed(drawn):
        page = _department_page
        return await run_in_threadpool(page, request, viewer, wecom_id, FORM_NOT_DRAWN, shown, 400, drawn)
    try:
        body = DepartmentPolicyIn(**fields)
    except ValidationError as exc:
        return await run_in_threadpool(
            _department_page, request, viewer, wecom_id, _problems(exc), shown, 422, drawn
        )
    rt = request.app.state.rt

    def save() -> tuple[str, str]:
        try:
            with rt.db.tenant_session(viewer.tenant_id) as s:
                service.hold_policy(s, wecom_id)
                stored = _own_policy(s, wecom_id)
                here = _placed(s, wecom_id)
                followed = _followed(s, here) if stored is None else None
                was = _members_clock(s, wecom_id, here)
                apply_department_policy(s, wecom_id, body, rt.now(), viewer.display_name)
                saved = department_policy_out(s, wecom_id)
                if followed is not None:
                    _check_drawn_following(s, viewer, drawn, followed, saved, following)
                else:
                    _check_drawn_from(s, viewer, drawn, stored, saved)
                if was is None:
                    return "", "department_added"
                became = _clock(department_policy_out(s, wecom_id))
        except service.PolicyError as exc:
            return str(exc), ""
        return "", f"department_{_clock_change(was, became)}"

    try:
        problem, done = await run_in_threadpool(save)  # an unknown department: HTTPException 404
    except _Stale as exc:
        return await run_in_threadpool(_department_page, request, viewer, wecom_id, "", shown, 409, stale=exc)
    if problem:
        page = _department_page
        return await run_in_threadpool(page, request, viewer, wecom_id, problem, shown, 422, drawn)
    return RedirectResponse(f"/sla/policy?done={done}{_reordered(fields)}#departments", 303)


def _own_policy(s, wecom_id: int) -> dict | None:
    """The department's own policy as the form shows it, None when it has none."""
    if s.scalar(select(SlaPolicy.id).where(SlaPolicy.department_wecom_id == wecom_id)) is None:
        return None
    return department_policy_out(s, wecom_id)


def _members_clock(s, wecom_id: int, here: service.DepartmentPolicy | None) -> tuple | None:
    """The clock the department's members' open waits run by before its policy is saved, or
    None when saving leaves those waits on the policy they have: a first policy of its own
    while they follow an ancestor's or the tenant's (service.save_policy moves only waits that
    ran under no saved policy, the built-in default, or under this one). `here`: _placed."""
    if here is None or here.own:  # a removed department's policy is its own too
        own = s.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == wecom_id))
        return _clock(department_policy_out(s, wecom_id)) if own is not None else None
    return _clock(policy_out(s)) if here.policy_from is None else None


@router.post("/sla/policy/departments/{wecom_id}/remove")
async def department_policy_remove(request: Request, viewer: PageViewer, wecom_id: int):
    """Removes the policy the page showed: one saved by someone else since is not removed
    (the admin meant to delete what they saw), the page comes back with it."""
    require_admin(viewer)
    if wecom_id <= 0:
        raise HTTPException(404, "not found")
    drawn = _drawn_version(await request.form())
    if drawn is not None and not well_formed(drawn):
        return await run_in_threadpool(_department_page, request, viewer, wecom_id, FORM_NOT_DRAWN, None, 400)
    rt = request.app.state.rt

    def remove() -> None:
        with rt.db.tenant_session(viewer.tenant_id) as s:
            service.hold_policy(s, wecom_id)
            stored = _own_policy(s, wecom_id)
            if stored is not None and drawn is not None and drawn != _policy_version(stored):
                raise _Stale("not_removed", stored).whose(s, viewer)
            if not service.delete_policy(s, wecom_id, rt.now()):
                raise ClearNotFound("这个部门没有自己的策略（可能已删除） / no policy of its own")

    try:
        await run_in_threadpool(remove)
    except _Stale as exc:
        return await run_in_threadpool(_department_page, request, viewer, wecom_id, "", None, 409, stale=exc)
    return RedirectResponse("/sla/policy?done=department_removed#departments", 303)
