"""Reads of the corp's members, as the staff sync left them (siyu.tenancy.service writes them)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import bulk
from siyu.tenancy.models import Staff


def members_left(session: Session, userids: Iterable[str]) -> set[str]:
    """Those of `userids` the staff sync found no longer with the corp, in one read (a firing
    batch's agents: read one by one, they doubled firing's cost a step; a card's recipients).
    A member not synced yet is not among them: a message or a call to them is still tried."""
    wanted = set(userids) - {""}
    if not wanted:
        return set()
    return set(
        session.scalars(select(Staff.userid).where(bulk.among(session, Staff.userid, wanted), ~Staff.active))
    )


def still_with_the_corp(session: Session, userid: str) -> bool:
    """Synced and active: unlike members_left, one not synced yet counts as gone (a policy's
    escalation contact must be a member the sync knows)."""
    return session.scalar(select(Staff.id).where(Staff.userid == userid, Staff.active.is_(True))) is not None
