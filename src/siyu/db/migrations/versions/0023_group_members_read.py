"""group_chats.members_read_at: when a group's member list was last read

Groups stored before 0021 had no members kept until their next change in WeCom: a customer
in one was in no group on their page. NULL (every group stored before this) is a group whose
members were never read; the worker reads them again, a few at a time.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("group_chats", sa.Column("members_read_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("group_chats", schema=None) as batch_op:
        batch_op.drop_column("members_read_at")
