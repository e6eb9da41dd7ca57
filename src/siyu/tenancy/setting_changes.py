"""Who changed a company setting of 设置, and when (SettingChange): the default welcome text and
the time zone, which any admin may change. The services that change them record it here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.tenancy.models import SettingChange

# who a change from `siyu tenant …` is recorded under: the operator, whom Siyu does not know
COMMAND_LINE = "命令行"
SETTINGS = ("welcome_text", "timezone")


def record(session: Session, setting: str, old: str, new: str, by: str, at: datetime) -> None:
    """A change of `setting` (the tenant's session's tenant) from `old` to `new`; nothing when
    they are the same, so that saving a setting unchanged leaves who last changed it."""
    if old == new:
        return
    session.add(
        SettingChange(
            setting=setting, old_value=old[:2000], new_value=new[:2000], changed_by=by[:200], changed_at=at
        )
    )
    session.flush()


def last(session: Session, settings: tuple[str, ...] = SETTINGS) -> dict[str, dict]:
    """Each setting's (of `settings`) last change (the tenant's session's tenant) as the page and the API show
    it: {setting: {old, new, by, at}}; a setting not changed since these were kept is absent."""
    changed = {}
    for setting in settings:
        row = session.scalars(
            select(SettingChange)
            .where(SettingChange.setting == setting)
            .order_by(SettingChange.changed_at.desc(), SettingChange.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            changed[setting] = {
                "old": row.old_value,
                "new": row.new_value,
                "by": row.changed_by,
                "at": row.changed_at,
            }
    return changed
