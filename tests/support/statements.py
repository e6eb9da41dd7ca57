"""The SQL statements a request runs, for tests that pin how often something is read (a page
reads a list once, not once a row)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def statements_matching(engine: Engine, pattern: str) -> Iterator[list[str]]:
    """The statements run on `engine` meanwhile that `pattern` finds (re.search), as a list
    that fills while the block runs."""
    reads: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        if re.search(pattern, statement):
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", seen)
