"""One page of a list, as the read sides return it, and paging by cursor (keyset).

A cursor holds the sort values of the row a page ended (or began) at, so the next page is
"the rows after these values", not "skip n rows": a row that stays where it is is never
skipped, however many rows above it moved while someone paged.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true

_BIGINT = 2**63
# Longer than any cursor `encode` makes (four sort values: ~140): a page's address bar takes any.
MAX_TOKEN_CHARS = 400


@dataclass
class Page:
    items: list[dict]
    total: int
    page: int | None  # None when the page was found by cursor
    per_page: int
    # Where the list pages by cursor: the tokens of the pages after and before this one (None
    # at either end).
    next: str | None = None
    prev: str | None = None

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


class BadCursor(ValueError):
    """A cursor token that this list did not hand out."""


NOT_HANDED_OUT = "这个游标不是该列表给出的 / this cursor is not one the list handed out"


def not_handed_out(param: str) -> str:
    """The refusal of a cursor, naming the parameter (`after`, `before`) it was sent in."""
    return f"{param} 不是该列表给出的游标 / {param} is not a cursor this list handed out"


@dataclass(frozen=True)
class SortKey:
    """One column of a list's order. NULLs sort where `nulls_last` says on every backend."""

    column: ColumnElement
    desc: bool = False
    nulls_last: bool = True

    def _way(self, backward: bool) -> tuple[bool, bool]:
        """(descending, NULLs last) as the rows are read: the other way round going back."""
        return (not self.desc, not self.nulls_last) if backward else (self.desc, self.nulls_last)

    def order(self, backward: bool = False):
        desc, nulls_last = self._way(backward)
        clause = self.column.desc() if desc else self.column.asc()
        return clause.nulls_last() if nulls_last else clause.nulls_first()

    def _beyond(self, value: Any, backward: bool) -> ColumnElement[bool]:
        """The rows whose value comes strictly after `value` in this key's order."""
        desc, nulls_last = self._way(backward)
        if value is None:
            return false() if nulls_last else self.column.is_not(None)
        past = self.column < value if desc else self.column > value
        return or_(past, self.column.is_(None)) if nulls_last else past

    def _same(self, value: Any) -> ColumnElement[bool]:
        return self.column.is_(None) if value is None else self.column == value

    @property
    def may_be_null(self) -> bool:
        """Whether a row can hold NULL here (a NOT NULL column's cannot: a cursor naming one
        was made up); an expression may."""
        return getattr(getattr(self.column, "expression", self.column), "nullable", True) is not False


def order_by(keys: tuple[SortKey, ...], backward: bool = False) -> list:
    return [k.order(backward) for k in keys]


def beyond(keys: tuple[SortKey, ...], values: tuple, backward: bool = False) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order of `keys` (before them when `backward`)."""
    terms, same = [], true()
    for key, value in zip(keys, values, strict=True):
        terms.append(and_(same, key._beyond(value, backward)))
        same = and_(same, key._same(value))
    return or_(*terms)


def read_cursor(after: str | None, before: str | None, kinds: tuple[type, ...]) -> tuple | None:
    """The sort values of the cursor given (`after` or `before`, not both), None for none."""
    if after and before:
        raise BadCursor("after 和 before 只能给一个 / give after or before, not both")
    param, token = ("after", after) if after else ("before", before)
    if not token:
        return None
    try:
        return decode(token, kinds)
    except BadCursor:  # a script holding both a next and a prev learns which one it mangled
        raise BadCursor(not_handed_out(param)) from None


@dataclass
class Slice:
    """The rows of one page, in the list's order, and whether pages lie after and before it."""

    rows: list
    page: int | None  # the page number asked for; None when found by cursor
    has_next: bool
    has_prev: bool
    after: str | None = None  # the cursor it was asked for after

    def prev(self, cursor_of) -> str | None:
        """The cursor of the page before (`cursor_of` a row: its cursor), None on the first. A
        page past a cursor whose rows all closed or moved since is empty, and leads back by that
        cursor itself: it had said it was the first, and the client could not page back."""
        if not self.has_prev:
            return None
        return cursor_of(self.rows[0]) if self.rows else self.after


def take(
    session,
    stmt,
    keys: tuple[SortKey, ...],
    kinds: tuple[type, ...],
    page: int,
    per_page: int,
    after: str | None = None,
    before: str | None = None,
    *,
    scalars: bool = False,
    holds=None,
) -> Slice:
    """One page of `stmt` (the list's rows, unordered and unpaged) in the order of `keys`: by
    number, or after / before a cursor of that list (BadCursor for one it did not hand out).
    Going back to the top gives the first page whole, even if rows moved meanwhile. `holds`:
    whether a row could hold a cursor's values together, where one key is made from another."""
    cursor = read_cursor(after, before, kinds)
    if cursor is not None and (
        any(v is None and not k.may_be_null for k, v in zip(keys, cursor, strict=True))
        or (holds is not None and not holds(cursor))
    ):
        raise BadCursor(not_handed_out("before" if before else "after"))  # a position no row holds
    backward = bool(before)
    paged = stmt.where(beyond(keys, cursor, backward)) if cursor is not None else stmt
    paged = paged.order_by(*order_by(keys, backward)).limit(per_page + 1)
    if cursor is None:
        paged = paged.offset((page - 1) * per_page)
    rows = list(session.scalars(paged) if scalars else session.execute(paged))
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backward:
        if not more:  # nothing before it: the top of the list
            return take(session, stmt, keys, kinds, 1, per_page, scalars=scalars)
        rows.reverse()
    return Slice(
        rows,
        None if cursor is not None else page,
        has_next=backward or more,
        has_prev=(backward and more) or (cursor is not None and not backward) or page > 1,
        after=after if cursor is not None and not backward else None,
    )


def encode(values: tuple) -> str:
    plain = [{"t": v.isoformat()} if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(token: str, kinds: tuple[type, ...]) -> tuple:
    """The values of a token from `encode`, each of its kind (int or datetime) or None."""
    if len(token) > MAX_TOKEN_CHARS:
        raise BadCursor(NOT_HANDED_OUT)
    try:
        plain = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError) as e:  # (thousands of nested [ recurse)
        raise BadCursor(NOT_HANDED_OUT) from e
    if not isinstance(plain, list) or len(plain) != len(kinds):
        raise BadCursor(NOT_HANDED_OUT)
    return tuple(_value(v, kind) for v, kind in zip(plain, kinds, strict=True))


def _value(v: Any, kind: type) -> Any:
    if v is None:
        return None
    if kind is int and type(v) is int and -_BIGINT <= v < _BIGINT:
        return v
    if kind is datetime and isinstance(v, dict) and isinstance(v.get("t"), str):
        try:
            found = datetime.fromisoformat(v["t"])
        except ValueError:
            found = None
        if found is not None and found.tzinfo is not None:
            try:  # a hand-made time past the calendar's ends once in UTC (the column's zone)
                return found.astimezone(UTC)
            except OverflowError:
                pass
    raise BadCursor(NOT_HANDED_OUT)
