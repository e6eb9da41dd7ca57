"""A value renamed wherever it is kept: a member's userid that WeCom changed (update_user with
NewUserID), as each domain's rename_member applies it to its own tables."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session


def rename_in(session: Session, column, old: str, new: str, *where) -> None:
    """The rows whose `column` (a mapped attribute) holds `old`, and match `where`, hold `new`."""
    query = update(column.class_).where(column == old, *where).values({column: new})
    session.execute(query.execution_options(synchronize_session=False))


def renamed(values: list, old: str, new: str) -> list:
    """A list (leaders, a channel's members) with `old` replaced by `new`."""
    return [new if value == old else value for value in values or []]
