"""Jinja2 templates for the web UI: the environment, filters and `render()`."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from datetime import date, datetime
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from siyu import __version__
from siyu.tenancy import timezones
from siyu.visible_names import UNNAMED, tidy_name

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

# Explicit direction marks a value may open (LRE RLE LRO RLO; LRI RLI FSI) and what closes them
_OPENS = {"\u202a": "\u202c", "\u202b": "\u202c", "\u202d": "\u202c", "\u202e": "\u202c"}
_ISOLATES = {"\u2066", "\u2067", "\u2068"}
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def closed_bidi(value):
    """Every value a page prints, with the direction marks it opened closed at its end. A WeChat
    nickname holding a right-to-left override (U+202E, the "reversed name" trick, which WeCom
    passes on) turned round all Siyu wrote after it on the line: the time of its messages
    (10:05 read 50:01), the wait beside it on the list. The name itself reads as WeChat shows it."""
    if not isinstance(value, str) or isinstance(value, Markup) or not _BIDI.search(value):
        return value
    open_: list[str] = []
    for c in value:
        if c in _OPENS:
            open_.append(_OPENS[c])
        elif c in _ISOLATES:
            open_.append("\u2069")
        elif c == "\u202c" and open_ and open_[-1] == "\u202c":
            open_.pop()
        elif c == "\u2069" and "\u2069" in open_:  # (closes the embeddings opened inside it too)
            del open_[len(open_) - 1 - open_[::-1].index("\u2069") :]
    return value + "".join(reversed(open_))


templates.env.finalize = closed_bidi


def static_version() -> str:
    """What pages put after `?v=` on the style and script: a digest of their contents, so a
    browser fetches them anew exactly when they changed. The package version stayed 0.1.0
    through every change, and browsers kept old style for a while after an upgrade."""
    digest = hashlib.sha256()
    for name in ("siyu.css", "siyu.js"):
        digest.update((HERE / "static" / name).read_bytes())
    return digest.hexdigest()[:12]


STATUS_NAMES = {
    "active": "跟进中",
    "half": "待通过",
    "lost": "已流失",
    "deleted": "已删除",
    "transferred": "已转接",
}


def local_time(value: datetime | date | None, tz: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        try:
            return timezones.wall_clock(value, tz, fmt)
        except (OverflowError, ValueError):
            # a time at the end of the calendar (year 9999, stored before anything refused it)
            # has no local time past it: shown in UTC rather than failing the page
            return value.strftime(fmt) + " UTC"
    return value.strftime("%Y-%m-%d")


@pass_context
def local(ctx, value: datetime | date | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`{{ at|local }}`: a UTC datetime shown in the tenant's time zone."""
    return local_time(value, ctx.get("tz"), fmt)


def soon(value: datetime, zone: str | None, now: datetime) -> str:
    """A time to come as every page says it: HH:MM when it falls on the tenant's today, MM-DD
    HH:MM on another day (the chat said 12-07 01:49 of the time the board beside it said 01:49)."""
    return of_the_day(timezones.upcoming(value), zone, now)


def of_the_day(at: datetime, zone: str | None, now: datetime) -> str:
    """HH:MM when `at` falls on the tenant's today, else MM-DD HH:MM (soon's rule, to the
    minute it reads: a time past, such as a call placed)."""
    try:
        return timezones.of_the_day(at, zone, now)
    except (OverflowError, ValueError):  # (local_time's year 9999)
        return local_time(at, zone, "%m-%d %H:%M")


@pass_context
def when(ctx, value: datetime | None) -> str:
    """`{{ at|when }}`: a time to come (a step, a snooze's end, a call) by `soon`'s rule, never
    before it comes, today read from Siyu's clock."""
    if value is None:
        return ""
    return soon(value, ctx.get("tz"), ctx["request"].app.state.rt.now())


@pass_context
def past(ctx, value: datetime | None) -> str:
    """`{{ at|past }}`: a time gone by near now (a snooze made): HH:MM today, else MM-DD HH:MM
    (a 24-hour snooze made yesterday at 01:34 had read as made a minute ago)."""
    if value is None:
        return ""
    return of_the_day(value, ctx.get("tz"), ctx["request"].app.state.rt.now())


@pass_context
def dated(ctx, value: datetime, clock: str = " %H:%M") -> str:
    """`{{ at|dated }}`: a time past on a list of many years (a customer's timeline): MM-DD HH:MM
    in the tenant's current year, YYYY-MM-DD HH:MM in another (last year's add and this year's
    tag of the same day read the same). `{{ at|dated("") }}`: the day alone (the customer list)."""
    zone = ctx.get("tz")
    this_year = local_time(ctx["request"].app.state.rt.now(), zone, "%Y")
    shown = local_time(value, zone, "%Y-%m-%d" + clock)
    return shown[5:] if shown.startswith(this_year + "-") else shown


def named(name: str | None, unnamed: str = UNNAMED) -> str:
    """`{{ c.name|named }}`: a customer's name as it shows, or （未命名） where it shows nothing (none
    given, or only spaces and invisible characters: the Braille blank many WeChat users take)."""
    return tidy_name(name or "") or unnamed


def percent(share: float | None) -> str:
    """A share as the board shows it: 100% and 0% only when exactly so (199 of 200 on time
    rounded to "100%" beside a late answer), else to a tenth of a percent."""
    if share is None:
        return "—"
    if share in (0, 1):
        return f"{share * 100:.0f}%"
    return f"{min(99.9, max(0.1, round(share * 100, 1))):.1f}%"


# An http(s) address as a chat writes it: the characters a URL may hold (RFC 3986), so one
# written flush against Chinese (订单在这里https://…，谢谢) ends where the Chinese starts.
_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)
_CLOSING = {")": "(", "]": "["}


def _address(found: str) -> str:
    """A matched address less the punctuation that ends the sentence around it (…/x. or
    (见 https://a.cn/x)), keeping a bracket the address opened itself (wiki/A_(b))."""
    while found:
        last = found[-1]
        if last in ".,;:!?'*" or (last in _CLOSING and found.count(_CLOSING[last]) < found.count(last)):
            found = found[:-1]
        else:
            break
    return found


def linked(text: str) -> Markup:
    """`{{ m.text|linked }}`: a message's text, escaped, its http(s) addresses links an agent
    can tap on a phone, opened apart from the chat, telling the site neither the chat's address
    (noreferrer) nor a vote for it (nofollow). Nothing else becomes markup."""
    parts, at = [], 0
    for match in _URL.finditer(text):
        url = _address(match.group())
        if url.endswith("//"):  # a scheme and nothing after it
            continue
        parts.append(escape(text[at : match.start()]))
        parts.append(
            Markup('<a href="{0}" rel="noopener noreferrer nofollow" target="_blank">{0}</a>').format(url)
        )
        at = match.start() + len(url)
    parts.append(escape(text[at:]))
    return Markup("").join(parts)


templates.env.filters["local"] = local
templates.env.filters["linked"] = linked
templates.env.filters["when"] = when
templates.env.filters["past"] = past
templates.env.filters["dated"] = dated
templates.env.filters["percent"] = percent
templates.env.filters["named"] = named
templates.env.globals["STATUS_NAMES"] = STATUS_NAMES
STATIC_VERSION = static_version()
templates.env.globals["static_version"] = STATIC_VERSION
# the footer's: the release running (not `version`: form pages pass one of their own, a form's)
templates.env.globals["siyu_release"] = __version__


# A form sent after the session ended saved nothing (siyu.web.auth): this cookie says what it
# was until a page is shown signed in again, which tells the person and forgets it.
UNSAVED_COOKIE = "siyu_unsaved"
UNSAVED = {"snooze": "暂缓提醒", "dismiss": "无需回复的标记"}  # by the form action's last part


def unsaved_notice(request: Request, viewer) -> str | None:
    """What the cookie says was not saved; signed in, only to the person whose session had
    ended (sealed in it by siyu.web.auth.note_unsaved; none sealed: no session was sent, as
    after signing out in another tab, and whoever signs in is told)."""
    value = request.cookies.get(UNSAVED_COOKIE)
    if value is None:
        return None
    what, _, sealed = value.partition(".")
    if sealed and viewer is not None:
        try:
            owner = request.app.state.rt.box.open(sealed)
        except ValueError:
            return None
        if owner != f"{viewer.tenant_id}:{viewer.person_id}":
            return None  # another's: kept for them, should they sign in here within the hour
    if what in UNSAVED:
        return f"登录已过期，{UNSAVED[what]}没有保存，请再点一次。"
    return "登录已过期，刚才提交的内容没有保存，请再提交一次。"


def render(request: Request, name: str, context: dict | None = None, status_code: int = 200):
    ctx = {"viewer": getattr(request.state, "viewer", None), "path": request.url.path}
    ctx.update(context or {})
    viewer = ctx["viewer"]
    ctx.setdefault("tz", viewer.timezone if viewer else "Asia/Shanghai")
    if viewer is not None and "nav_waiting" not in ctx:
        ctx["nav_waiting"] = _waiting_for(request, viewer)
    ctx["unsaved"] = unsaved_notice(request, viewer)
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    if ctx["unsaved"] and viewer is not None:  # told, signed in again: once is enough
        response.delete_cookie(UNSAVED_COOKIE, path="/")
    return response


_WAITING_TTL_S = 15.0
_waiting_seen: dict[tuple, tuple[float, int]] = {}


def _waiting_for(request: Request, viewer) -> int | None:
    """How many of the viewer's customers wait for a reply now: the menu shows it on every
    page. Counted at most every 15 s per person, and never on the event loop (pages rendered
    there, error pages among them, show the last count or none: the loop answers WeCom's
    callbacks, which a slow database must not hold up)."""
    from sqlalchemy.exc import SQLAlchemyError

    from siyu.conversations.queries import waiting_count

    key = _waiting_key(viewer)
    seen = _waiting_seen.get(key)
    if seen is not None and time.monotonic() - seen[0] < _WAITING_TTL_S:
        return seen[1]
    try:
        asyncio.get_running_loop()
        return seen[1] if seen else None
    except RuntimeError:  # a worker thread: sync routes run there
        pass
    try:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            count = waiting_count(s, viewer)
    except SQLAlchemyError:
        return None
    note_waiting(viewer, count)
    return count


def _waiting_key(viewer) -> tuple:
    return viewer.tenant_id, viewer.person_id, viewer.role, viewer.visible_staff


def forget_waiting(viewer) -> None:
    """The viewer just changed what waits (marked a chat 无需回复): their menu counts afresh."""
    _waiting_seen.pop(_waiting_key(viewer), None)


def note_waiting(viewer, count: int) -> None:
    """A count just made elsewhere (the conversation list counts it anyway): the menu shows it."""
    if len(_waiting_seen) > 10_000:  # people come and go: keep it from growing without end
        _waiting_seen.clear()
    _waiting_seen[_waiting_key(viewer)] = (time.monotonic(), count)


def wecom_message(exc) -> str:
    """WeComFailure.describe(), with the errcode appended so an admin can look it up."""
    text = exc.describe()
    errcode = getattr(exc, "errcode", None)
    if errcode is not None and str(errcode) not in text:
        text = f"{text} (errcode {errcode})"
    return text
