"""The notice beside a form refused as stale (the SLA policy forms, the channel edit form):
whose save it missed. Where that save was the viewer's own, from another tab or page opened on
the same form, it says so: "已被「王五」修改" read by 王五 themselves was taken for someone else's
doing ("I didn't change anything?"). The refusal stands all the same: this page was drawn
before that save, and saving it would undo what was saved there. The pages that show who did
something (账号, 设置, the special dates, a chat's 暂缓 and 无需回复, a closed card, the board's
暂缓, a token's maker) say 你 the same way (named_for); the API keeps the name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.tenancy.models import Person
from siyu.web.auth import Viewer
from siyu.web.templating import local_time


def saved_by_viewer(session: Session, viewer: Viewer, by: str) -> bool:
    """Whether `by`, the name a save was recorded under, is the viewer's own as their pages
    record it. Not where another person of the tenant goes by the same name (two admins both
    called 管理员): the save may be theirs; nor for a save made with an API token, whose name
    says so (Viewer.signature)."""
    if not by or viewer.via_token or by != viewer.display_name[:200]:
        return False
    others = select(func.count()).where(Person.display_name == by, Person.id != viewer.person_id)
    return not session.scalar(others)


def named_for(session: Session, viewer: Viewer) -> Callable[[str | None], str | None]:
    """Who changed something (最近由 王五 修改), as the viewer is to read it: 你 for their own
    change, as saved_by_viewer tells it; read by 王五, their own name was taken for another
    王五's. Asked once a page, not once a row."""
    own = viewer.display_name[:200]
    if not saved_by_viewer(session, viewer, own):
        return lambda by: by
    return lambda by: "你" if by == own else by


def changed_since(
    what: str, by: str, mine: bool, at: datetime | None, tz: str, outcome: str, outcome_en: str
) -> str:
    """这份策略在你打开后已被「王五」于 10:05 修改，<outcome>, or, the viewer's own save (`mine`):
    你刚才在另一个页面保存过这份策略（10:05）…; `by` "": saved before who saved was kept."""
    when = local_time(at, tz, "%H:%M") if at is not None else ""
    if mine:
        return (
            f"你刚才在另一个页面保存过{what}{f'（{when}）' if when else ''}，这个页面是在那之前打开的，"
            f"{outcome} / you saved this in another tab or page{f' at {when}' if when else ''} after"
            f" this page was opened; {outcome_en}"
        )
    who = f"「{by}」" if by else "其他管理员"  # quoted, with no role word: a name may be one (管理员)
    return (
        f"{what}在你打开后已被{who}{f'于 {when} ' if when else ''}修改，{outcome} / {what_en(what)} was"
        f" changed by {by or 'someone else'} since you opened it; {outcome_en}"
    )


def what_en(what: str) -> str:
    return {"这份策略": "this policy", "这个渠道": "this channel"}.get(what, "it")
