"""Reads of the corp's members, as the staff sync left them (siyu.tenancy.service writes them)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from siyu.db import bulk
from siyu.tenancy.models import Staff, gone_word


def staff_gone(session: Session, userids: Iterable[str] | None = None) -> dict[str, str]:
    """Members the staff sync found no longer with the corp (of `userids` if given), by userid,
    with how they are gone as the pages mark them (已离职, 已禁用). A member not synced yet is not
    among them: a message or a call to them is still tried. A page reads it once and hands it
    to whatever marks members (`gone=`)."""
    stmt = select(Staff.userid, Staff.wecom_status).where(~Staff.active)
    if userids is not None:
        wanted = set(userids) - {""}
        if not wanted:
            return {}
        stmt = stmt.where(bulk.among(session, Staff.userid, wanted))
    return {userid: gone_word(False, status) for userid, status in session.execute(stmt)}


def members_left(session: Session, userids: Iterable[str]) -> set[str]:
    """Those of `userids` no longer with the corp, in one read (a firing batch's agents: read
    one by one, they doubled firing's cost a step; a card's recipients)."""
    return set(staff_gone(session, userids))


def still_with_the_corp(session: Session, userid: str) -> bool:
    """Synced and active: unlike members_left, one not synced yet counts as gone (a policy's
    escalation contact must be a member the sync knows)."""
    return session.scalar(select(Staff.id).where(Staff.userid == userid, Staff.active.is_(True))) is not None


def member_userid(session: Session, userid: str) -> str | None:
    """The userid of the member `userid` names, as the staff sync stored it, whatever its case:
    WeCom's userids are case-insensitive (不区分大小写), so ZhangSan is zhangsan's. None where
    no member has it, or several do in different cases and none exactly so."""
    return _as_synced(session, [userid]).get(userid)


def members_as_stored(session: Session, userids: list[str]) -> list[str]:
    """Each of `userids` as member_userid finds it, in one read (a channel's members, up to
    100); one it finds no member for stays as given, for the caller to refuse."""
    synced = _as_synced(session, userids)
    return [synced.get(u, u) for u in userids]


def _as_synced(session: Session, userids: list[str]) -> dict[str, str]:
    """member_userid's answer for each of `userids` it finds a member for."""
    if not userids:
        return {}
    lowered = {u.lower() for u in userids}
    found = session.scalars(
        select(Staff.userid).where(or_(Staff.userid.in_(set(userids)), func.lower(Staff.userid).in_(lowered)))
    ).all()
    alike: dict[str, set[str]] = {}
    for stored in found:
        alike.setdefault(stored.lower(), set()).add(stored)
    synced = {}
    for userid in userids:
        spelt = alike.get(userid.lower(), set())
        if userid in spelt:
            synced[userid] = userid
        elif len(spelt) == 1:
            synced[userid] = next(iter(spelt))
    return synced


def as_stored(session: Session, userid: str | None) -> str | None:
    """A list's member filter, typed or linked in any case, as the member's userid is stored:
    the rows are matched exactly (ZhangSan found nothing of zhangsan's). One no member has
    stays as asked, and finds what it did; none asked (None, ""): None."""
    return (member_userid(session, userid) or userid) if userid else None
