"""messages.seq and archive_cursors.seq: 64-bit on PostgreSQL

WeCom's archive seq is an unsigned 64-bit number. The columns held 32 bits on PostgreSQL
(SQLite's integers are 64-bit already): once a corp's archive passed 2,147,483,647 messages
every batch failed, and the archive stood still. PostgreSQL rewrites `messages` for this.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 01:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

COLUMNS = (("messages", "seq"), ("archive_cursors", "seq"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(
            table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(
            table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False
        )
