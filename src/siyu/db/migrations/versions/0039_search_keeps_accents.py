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

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None

# As search_ddl("sqlite") made them on 2026-12-07, written out: a later change there must not
# change what this revision does.
FTS = "message_search_fts"
TRIGGERS = ("message_search_ai", "message_search_ad", "message_search_au")
CREATE = [
    f"CREATE VIRTUAL TABLE {FTS} USING fts5(tokens, content='message_search', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER message_search_ai AFTER INSERT ON message_search BEGIN "
    f"INSERT INTO {FTS}(rowid, tokens) VALUES (new.id, new.tokens); END",
    "CREATE TRIGGER message_search_ad AFTER DELETE ON message_search BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, tokens) VALUES ('delete', old.id, old.tokens); END",
    "CREATE TRIGGER message_search_au AFTER UPDATE ON message_search BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, tokens) VALUES ('delete', old.id, old.tokens); "
    f"INSERT INTO {FTS}(rowid, tokens) VALUES (new.id, new.tokens); END",
    f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')",  # from message_search's tokens
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute(f"DROP TABLE IF EXISTS {FTS}")
    for statement in CREATE:
        op.execute(statement)


def downgrade() -> None:
    pass  # an index that keeps accents answers 0038's queries as well
