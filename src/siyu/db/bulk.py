"""Set-wise writes of many rows of one tenant, for the hot paths (archive ingest).

They run on the session's connection, skipping the ORM's per-object work; the tenant is
stamped (inserts) or required in the WHERE clause (updates) here, since the ORM's tenant
scoping does not see these statements.

On PostgreSQL each call is ONE statement whatever the number of rows: the values travel
as one array per column and `unnest` turns them back into rows, so the statement text and
its parameters stay small (a multi-row VALUES would carry a parameter per cell and be
compiled anew each time; an executemany is a statement per row). SQLite runs in-process,
where an executemany is already cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache

from sqlalchemy import Table, bindparam, insert, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.db.scoping import TENANT

_PG = postgresql.dialect()


@cache
def _pg_type(table: Table, name: str) -> str:
    return table.c[name].type.compile(dialect=_PG)


def _q(name: str) -> str:
    return _PG.identifier_preparer.quote(name)


def _pg_arrays(table: Table, names: Sequence[str], rows: Sequence[dict]) -> tuple[str, dict]:
    """`unnest(CAST(:a AS type[]), ...)` over the columns, and its parameters."""
    params, parts = {}, []
    for i, name in enumerate(names):
        kind = _pg_type(table, name)
        column = [r[name] for r in rows]
        if kind in ("JSON", "JSONB"):
            column = [None if v is None else json.dumps(v, ensure_ascii=False) for v in column]
        params[f"c{i}"] = column
        parts.append(f"CAST(:c{i} AS {kind}[])")
    return f"unnest({', '.join(parts)})", params


def _with_defaults(table: Table, rows: list[dict]) -> list[dict]:
    """Fill the columns a row leaves out with their Python-side defaults, as the ORM and a
    Core insert would (the PostgreSQL statement below is text, so nobody else does)."""
    missing = [
        c for c in table.columns if c.name not in rows[0] and c.default is not None and not c.primary_key
    ]
    if not missing:
        return rows
    for row in rows:
        for c in missing:
            row[c.name] = c.default.arg(None) if c.default.is_callable else c.default.arg
    return rows


def insert_rows(
    session: Session,
    model,
    rows: Sequence[dict],
    conflict: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list:
    """INSERT rows of the session's tenant (every row a dict with the same keys). With
    `conflict`, rows whose (tenant_id, *conflict) exist already are skipped. Returns the
    `returning` columns of the inserted rows, in no particular order."""
    if not rows:
        return []
    table: Table = model.__table__
    tenant_id = session.info[TENANT]
    rows = _with_defaults(table, [{**r, "tenant_id": tenant_id} for r in rows])
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        names = list(rows[0])
        source, params = _pg_arrays(table, names, rows)
        sql = f"INSERT INTO {_q(table.name)} ({', '.join(map(_q, names))}) SELECT * FROM {source}"
        if conflict:
            sql += f" ON CONFLICT (tenant_id, {', '.join(map(_q, conflict))}) DO NOTHING"
        if returning:
            sql += f" RETURNING {', '.join(map(_q, returning))}"
        result = connection.execute(text(sql), params)
        return result.all() if returning else []
    if conflict:
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["tenant_id", *conflict])
    else:
        stmt = insert(table)
    if returning:
        return connection.execute(stmt.returning(*(table.c[n] for n in returning)), rows).all()
    connection.execute(stmt, rows)
    return []


def update_by_id(session: Session, model, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """UPDATE each row (a dict with "id" and `columns`) of the session's tenant."""
    if not rows:
        return
    table: Table = model.__table__
    tenant_id = session.info[TENANT]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        names = ["id", *columns]
        source, params = _pg_arrays(table, names, rows)
        t = _q(table.name)
        assignments = ", ".join(f"{_q(n)} = given.{_q(n)}" for n in columns)
        sql = (
            f"UPDATE {t} SET {assignments} FROM {source} AS given({', '.join(map(_q, names))}) "
            f"WHERE {t}.id = given.id AND {t}.tenant_id = :tenant_id"
        )
        connection.execute(text(sql), {**params, "tenant_id": tenant_id})
        return
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.tenant_id == tenant_id)
        .values({name: bindparam(f"b_{name}") for name in columns})
    )
    connection.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in rows])
