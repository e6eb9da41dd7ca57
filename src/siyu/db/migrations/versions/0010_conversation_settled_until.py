"""conversations: settled_until

A wait closed without a reply (marked "no reply needed", archiving declined, the customer and
the staff member no longer contacts) settles what the customer had said until then. Without a
record of it, a recall later in the chat (the customer taking back a newer question, the staff
member taking back a reply) looked for the first unanswered message and found the settled one:
a question marked 无需回复 came back and escalated to the leader and the phone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 02:40:00
"""

import sqlalchemy as sa
from alembic import op

from siyu.db.base import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("settled_until", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("settled_until")
