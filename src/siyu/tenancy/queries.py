"""Reads of the corp's members, as the staff sync left them (siyu.tenancy.service writes them)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
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
