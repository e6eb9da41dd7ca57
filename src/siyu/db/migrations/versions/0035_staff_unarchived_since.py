"""staff.unarchived_since: when Siyu found a member off 会话存档's permit list

A member taken off the permit list has their replies archived no more: a customer waiting on
them would escalate on to a call though answered. WeCom tells no one, so Siyu reads the list
(siyu.conversations.tasks.read_permit_lists) and keeps, per member, since when they are off it:
their chats settle then, and a chat first pulled after (its messages sent before) starts
settled, as one whose contact ended does. NULL: archived, or never read off the list.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 14:40:00
"""

import sqlalchemy as sa
from alembic import op

from siyu.db.base import UTCDateTime

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("staff", sa.Column("unarchived_since", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("staff", "unarchived_since")  # (SQLite 3.35 drops a column in place)
