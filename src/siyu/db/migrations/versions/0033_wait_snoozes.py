"""sla_waits.snoozes: each person's latest snooze of a wait still running

A wait kept only the snooze in force. 张三 snoozed his customer for 30 minutes, an admin for
an hour (the longer holds), then shortened it to 15: 张三's 30 minutes were forgotten, and the
reminders came back after 15. Each person's latest snooze is kept now, and the longest of those
still running is the one in force. Waits from before have none: the one in force counts.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_waits", sa.Column("snoozes", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    op.drop_column("sla_waits", "snoozes")  # (SQLite 3.35 drops a column in place)
