"""Jinja2 templates for the web UI: the environment, filters and `render()`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from siyu import __version__

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

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
        return value.astimezone(ZoneInfo(tz or "Asia/Shanghai")).strftime(fmt)
    return value.strftime("%Y-%m-%d")


@pass_context
def local(ctx, value: datetime | date | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`{{ at|local }}`: a UTC datetime shown in the tenant's time zone."""
    return local_time(value, ctx.get("tz"), fmt)


templates.env.filters["local"] = local
templates.env.globals["STATUS_NAMES"] = STATUS_NAMES
templates.env.globals["version"] = __version__


def render(request: Request, name: str, context: dict | None = None, status_code: int = 200):
    ctx = {"viewer": getattr(request.state, "viewer", None), "path": request.url.path}
    ctx.update(context or {})
    viewer = ctx["viewer"]
    ctx.setdefault("tz", viewer.timezone if viewer else "Asia/Shanghai")
    if viewer is not None and "nav_waiting" not in ctx:
        ctx["nav_waiting"] = _waiting_for(request, viewer)
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


def _waiting_for(request: Request, viewer) -> int | None:
    """How many of the viewer's customers wait for a reply now: the menu shows it on every
    page, so an agent sees it wherever they are (None when the database does not answer:
    an error page must still render)."""
    from sqlalchemy.exc import SQLAlchemyError

    from siyu.conversations.queries import waiting_count

    try:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            return waiting_count(s, viewer)
    except SQLAlchemyError:
        return None


def wecom_message(exc) -> str:
    """WeComFailure.describe(), with the errcode appended so an admin can look it up."""
    text = exc.describe()
    errcode = getattr(exc, "errcode", None)
    if errcode is not None and str(errcode) not in text:
        text = f"{text} (errcode {errcode})"
    return text
