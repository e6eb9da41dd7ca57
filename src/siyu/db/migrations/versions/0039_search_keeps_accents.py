"""search_keeps_accents: SQLite's message index no longer folds é to e

FTS5's default tokenizer drops diacritics, so on SQLite "cafe" found "café" and the snippet
marked nothing in it, while PostgreSQL's index keeps the two apart. The FTS5 table is made
again with remove_diacritics 0 and rebuilt from message_search (its tokens are unchanged).
PostgreSQL's index is left as it is.

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-07 20:00:00
"""

from alembic import op

from siyu.conversations.search import search_ddl, search_drop_ddl

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "sqlite":
        return
    for statement in [*search_drop_ddl(dialect), *search_ddl(dialect)]:  # (search_ddl ends by rebuilding)
        op.execute(statement)


def downgrade() -> None:
    pass  # an index that keeps accents answers 0038's queries as well
