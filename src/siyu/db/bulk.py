"""Set-wise writes of many rows of one tenant, for the hot paths (archive ingest).

They run on the session's connection as the driver's own statements, skipping the ORM's
and Core's per-row work (each column's values still go through its type's bind
processing); the tenant is stamped (inserts) or required in the WHERE clause (updates)
here, since the ORM's tenant scoping does not see these statements.

PostgreSQL: each call is ONE statement whatever the number of rows: the values travel as
one array per column, in binary (%(name)b), and `unnest` turns them back into rows (a
multi-row VALUES would carry a parameter per cell; an executemany is a statement per row).
SQLite (in-process): inserts are multi-row VALUES up to its parameter limit, updates an
executemany of one prepared statement.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from itertools import chain

from sqlalchemy import JSON, Enum, Float, String, Table, TypeDecorator, any_, bindparam, cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from siyu.db.base import UTCDateTime
from siyu.db.scoping import TENANT

_PG = postgresql.dialect()


class JsonText(str):
    """A JSON column's value already serialized (say, as the source decrypted it): stored
    as it is, not serialized again."""


@cache
def _pg_type(table: Table, name: str) -> str:
    """The column's type for the array cast. Strings lose their length: an explicit cast
    would cut an overlong value silently, where the column's own assignment refuses it."""
    kind = table.c[name].type
    if isinstance(kind, String) and not isinstance(kind, Enum):
        return "VARCHAR"
    return kind.compile(dialect=_PG)


def _pg_values(table: Table, name: str, column: list) -> list:
    """One column's values as psycopg should dump them: through the column type's own
    `process_bind_param` (UTCDateTime refuses naive times), JSON as text, floats as floats
    (psycopg refuses an array of ints and floats mixed)."""
    kind = table.c[name].type
    if isinstance(kind, TypeDecorator):
        column = [kind.process_bind_param(v, _PG) for v in column]
        kind = kind.impl_instance
    if isinstance(kind, JSON):
        return [v if v is None or type(v) is JsonText else json.dumps(v, ensure_ascii=False) for v in column]
    if isinstance(kind, Float):
        return [None if v is None else float(v) for v in column]
    return column


class BinaryList(list):
    """A list psycopg sends in PostgreSQL's binary array format (`make_engine` registers its
    dumper). psycopg sends a plain list of strings in the text format, escaping each one in
    Python: a lookup of 600 keys measured 1.45 ms that way, 0.71 ms in binary."""


class _Listed(TypeDecorator):
    """A bound list as it is: ARRAY's own bind processing would copy it into a plain list."""

    impl = NullType
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return BinaryList(value)


def among(session: Session, column, values):
    """`column IN values` for a batch's worth of values. On PostgreSQL `= ANY(array)`: one
    parameter instead of one each, so the statement is compiled and parsed once, not anew
    for every batch size (which cost more than running it); the array goes in binary."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(cast(bindparam(None, values, type_=_Listed()), ARRAY(column.type)))
    return column.in_(values)


def _q(name: str) -> str:
    return _PG.identifier_preparer.quote(name)


def _pg_arrays(table: Table, names: Sequence[str], columns: Sequence[list]) -> tuple[str, dict]:
    """`unnest(CAST(:a AS type[]), ...)` over the columns, and its parameters."""
    params, parts = {}, []
    for i, (name, column) in enumerate(zip(names, columns, strict=True)):
        params[f"c{i}"] = _pg_values(table, name, column)
        # %(..)b: sent in PostgreSQL's binary format; the text format escapes every element
        parts.append(f"CAST(%(c{i})b AS {_pg_type(table, name)}[])")
    return f"unnest({', '.join(parts)})", params


def _columns(rows: Sequence[dict], names: Sequence[str]) -> list[list]:
    """The rows' values column by column (what both drivers' statements are built from)."""
    return [[r[name] for r in rows] for name in names]


def _with_defaults(table: Table, names: list[str], columns: list[list], count: int) -> None:
    """Add the columns the rows leave out that have Python-side defaults, filled as the ORM
    and a Core insert would (the statements here are text, so nobody else does)."""
    for c in table.columns:
        if c.name not in names and c.default is not None and not c.primary_key:
            names.append(c.name)
            if c.default.is_callable:
                columns.append([c.default.arg(None) for _ in range(count)])
            else:
                columns.append([c.default.arg] * count)


# The text of times written lately (see _sqlite_utc); emptied when it grows past the bound.
_UTC_TEXTS: dict[datetime, str] = {}
_UTC_TEXTS_BOUND = 50_000


def _sqlite_utc(value: datetime | None) -> str | None:
    """UTCDateTime's bind processing on SQLite, in one C call instead of three Python ones:
    the same refusal of naive times, the same text (SQLAlchemy's storage format
    YYYY-MM-DD HH:MM:SS.ffffff, in UTC). Remembered: formatting an aware time costs about
    1 us, and most of what ingest writes are times it has just written (a message's time is
    its conversation's last and its wait's start: 54 % of a 20,000-message import's)."""
    if value is None:
        return None
    text = _UTC_TEXTS.get(value)  # equal times are the same instant, whatever their zone
    if text is not None:
        return text
    if value.tzinfo is UTC:  # the usual case: "...ffffff+00:00" without its offset, one call
        text = value.isoformat(" ", "microseconds")[:-6]
    elif value.tzinfo is None:
        raise ValueError("naive datetime given; use siyu.db.utcnow()")
    else:
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if len(_UTC_TEXTS) >= _UTC_TEXTS_BOUND:
        _UTC_TEXTS.clear()
    _UTC_TEXTS[value] = text
    return text


def _processed(table: Table, names: Sequence[str], columns: Sequence[list], dialect) -> list[list]:
    """Each column's values as the driver takes them (the column type's bind processing)."""
    out = []
    for name, column in zip(names, columns, strict=True):
        kind = table.c[name].type
        if dialect.name == "sqlite" and isinstance(kind, UTCDateTime):
            process = _sqlite_utc
        else:
            process = kind.dialect_impl(dialect).bind_processor(dialect)
        if isinstance(kind, JSON) and process:
            out.append([v if type(v) is JsonText else process(v) for v in column])
        else:
            out.append([process(v) for v in column] if process else column)
    return out


def _results(table: Table, names: Sequence[str], rows, dialect) -> list[tuple]:
    processors = [table.c[n].type.dialect_impl(dialect).result_processor(dialect, None) for n in names]
    if not any(processors):
        return [tuple(r) for r in rows]
    return [tuple(p(v) if p else v for p, v in zip(processors, r, strict=True)) for r in rows]


def insert_rows(
    session: Session,
    model,
    rows: Sequence[dict],
    conflict: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple]:
    """INSERT rows of the session's tenant (every row a dict with the same keys). With
    `conflict`, rows whose (tenant_id, *conflict) exist already are skipped. Returns the
    `returning` columns of the inserted rows, in no particular order."""
    if not rows:
        return []
    table: Table = model.__table__
    tenant_id = session.info[TENANT]
    names = [name for name in rows[0] if name != "tenant_id"]
    columns = [*_columns(rows, names), [tenant_id] * len(rows)]
    names.append("tenant_id")
    _with_defaults(table, names, columns, len(rows))
    connection = session.connection()
    dialect = connection.dialect
    tail = ""
    if conflict:
        tail += f" ON CONFLICT (tenant_id, {', '.join(map(_q, conflict))}) DO NOTHING"
    if returning:
        tail += f" RETURNING {', '.join(map(_q, returning))}"
    head = f"INSERT INTO {_q(table.name)} ({', '.join(map(_q, names))})"
    if dialect.name == "postgresql":
        source, params = _pg_arrays(table, names, columns)
        result = connection.exec_driver_sql(f"{head} SELECT * FROM {source}{tail}", params)
        return _results(table, returning, result.all(), dialect) if returning else []
    # SQLite: multi-row VALUES, as many rows a statement as its parameter limit allows
    flat_rows = list(zip(*_processed(table, names, columns, dialect), strict=True))
    limit = connection.connection.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, limit // len(names))
    one = "(" + ", ".join("?" * len(names)) + ")"
    found = []
    for start in range(0, len(flat_rows), per):
        chunk = flat_rows[start : start + per]
        sql = f"{head} VALUES {', '.join([one] * len(chunk))}{tail}"
        result = connection.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))
        if returning:
            found.extend(result.all())
    return _results(table, returning, found, dialect)


def update_by_id(
    session: Session,
    model,
    rows: Sequence[dict],
    columns: Sequence[str],
    greatest: Sequence[str] = (),
    unless_changed: tuple[str, str] | None = None,
) -> int:
    """UPDATE each row (a dict with "id" and `columns`) of the session's tenant; returns how
    many were. A column in `greatest` takes the larger of its stored and its given value (never
    moves back, however concurrent writers interleave). `unless_changed` (a column, the text
    value it had when read): rows whose column holds another value by now are left as they are."""
    if not rows:
        return 0
    table: Table = model.__table__
    tenant_id = session.info[TENANT]
    connection = session.connection()
    t = _q(table.name)
    still, still_value = unless_changed or ("", "")
    if connection.dialect.name == "postgresql":
        names = ["id", *columns]
        source, params = _pg_arrays(table, names, _columns(rows, names))
        assignments = ", ".join(
            f"{_q(n)} = GREATEST({t}.{_q(n)}, given.{_q(n)})" if n in greatest else f"{_q(n)} = given.{_q(n)}"
            for n in columns
        )
        sql = (
            f"UPDATE {t} SET {assignments} FROM {source} AS given({', '.join(map(_q, names))}) "
            f"WHERE {t}.id = given.id AND {t}.tenant_id = %(tenant_id)s"
        )
        if still:
            sql += f" AND {t}.{_q(still)} = %(still_value)s"
        params = {**params, "tenant_id": tenant_id, "still_value": still_value}
        return connection.exec_driver_sql(sql, params).rowcount
    # SQLite: an executemany of one prepared statement
    names = [*columns, "id"]
    values = _processed(table, names, _columns(rows, names), connection.dialect)
    assignments = ", ".join(
        f"{_q(n)} = MAX({_q(n)}, ?)" if n in greatest else f"{_q(n)} = ?" for n in columns
    )
    sql = f"UPDATE {t} SET {assignments} WHERE id = ? AND tenant_id = {int(tenant_id)}"
    rows_values = list(zip(*values, strict=True))
    if still:
        sql += f" AND {_q(still)} = ?"
        rows_values = [(*row, still_value) for row in rows_values]
    return connection.exec_driver_sql(sql, rows_values).rowcount
